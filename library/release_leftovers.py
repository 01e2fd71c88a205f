#!/usr/bin/python
"""Ansible module: remove what killed runs left behind (option files, partial dumps, temporary schemas and accounts)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_leftovers
short_description: Remove the leftovers of dbrelease runs that were killed, and say what was removed
description:
  - A run killed outright (SIGKILL, a crash, a host lost) cannot clean up after itself. This module, run at the
    start of every release, removes what such runs left, and only what they left - nothing whose owner still
    runs, whichever release that owner belongs to.
  - Client option files (they hold the password in clear) in private directories
    C(<tmp>/dbrelease-opt-<host>.b<boot>.p<pid>-*) whose writing process is gone (its C(flock) on the directory
    is free). Directories written by earlier versions (C(<tmp>/dbrelease-XXXXXXXX) with a C(client.cnf)) are
    removed once ten minutes old.
  - C(.<database>_*.partial) dumps in I(backup_dir) whose writer is gone (its C(flock) is free) and that were not
    written to for a minute.
  - Temporary schemas C(<db>__dbrelease_plan_<8 hex>) (the schema plan's structure copy) and
    C(<db>__dbrelease_restore_<8 hex>) (restore-test copies) whose creating connection is gone (the named lock
    C(GET_LOCK('<schema>')) that it held is free), on the server connected to.
  - The schema plan's temporary accounts C(dbrelease_plan_<8 hex>) whose creating connection is gone (its named
    lock C(GET_LOCK('<account name>')) is free).
  - Ansible's own C(~/.ansible/tmp/ansible-tmp-*) directories older than an hour are reported as a warning, never
    removed (see the README, "What a killed run leaves").
options:
  backup_dir:
    description: Directory of the database's backups on this host; empty skips the partial dumps.
    type: path
    default: ""
  database:
    description: Database whose partial dumps are looked for in I(backup_dir).
    type: str
    default: ""
  temp_dir:
    description: Where the option files' directories are looked for; the system's temporary directory when empty.
    type: path
    default: ""
  schemas:
    description: Look for temporary schemas and the plan's temporary accounts on the server (needs a connection).
    type: bool
    default: true
notes:
  - Dropping a temporary schema needs C(DROP) on C(<db>\_\_dbrelease\_%); schemas the account cannot see are not
    looked at. Dropping a plan account needs C(SELECT) on C(mysql.user) and C(CREATE USER) (without them, a
    warning says so).
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: reports what it would remove and removes nothing.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*, ssl_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Remove what killed runs left behind
  release_leftovers:
    backup_dir: /var/backups/dbrelease
    database: arisgourmet
  no_log: true
  register: __preflight_leftovers
"""

RETURN = r"""
removed:
  description: What was removed (or, in check mode, would be), each with C(kind) (C(option_file), C(partial_dump),
    C(schema), C(account)), C(name), C(what) and C(detail) (whose it was and why it counts as abandoned).
  returned: always
  type: list
  elements: dict
ansible_tmp:
  description: Ansible's own C(ansible-tmp-*) directories older than an hour in this user's C(~/.ansible/tmp).
  returned: always
  type: list
  elements: str
msg:
  description: What was removed (one entry per leftover), or that there was nothing.
  returned: always
  type: str
record:
  description: What the release record keeps (phases.preflight) - C(leftovers) with C(removed) and C(ansible_tmp).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import leftovers
from ansible.module_utils.dbrelease.db import DbError, connect, connection_argument_spec, require_pymysql


def main():
    spec = connection_argument_spec()
    spec.update(backup_dir=dict(type="path", default=""), database=dict(type="str", default=""),
                temp_dir=dict(type="path", default=""), schemas=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    check = module.check_mode
    removed = leftovers.sweep_option_dirs(p["temp_dir"] or None, check_mode=check)
    removed += leftovers.sweep_partials(p["backup_dir"], p["database"], check_mode=check)
    if p["schemas"]:
        require_pymysql(module)
        try:
            conn = connect(p)
        except DbError as exc:
            module.fail_json(msg=str(exc), removed=removed)
        problems = []
        try:
            removed += leftovers.sweep_schemas(conn, check_mode=check, problems=problems)
            removed += leftovers.sweep_plan_accounts(conn, check_mode=check, problems=problems)
        except Exception as exc:  # a server error: name what failed, never a bound value
            module.fail_json(msg="cannot look for or drop temporary schemas: %s" % exc, removed=removed)
        finally:
            conn.close()
        for problem in problems:
            module.warn(problem)
    stale = leftovers.ansible_tmp_leftovers()
    if stale:
        module.warn("%d of Ansible's own temporary directories are more than an hour old in ~/.ansible/tmp (%s); "
                    "with no ansible-playbook running, remove them (see the README, 'What a killed run leaves')"
                    % (len(stale), ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")))
    verb = "would remove" if check else "removed"
    msg = ("%s %d leftover(s) of killed runs: %s" % (verb, len(removed), "; ".join(map(leftovers.describe, removed)))
           if removed else "no leftovers of killed runs")
    if stale:
        msg += "; %d of Ansible's own ~/.ansible/tmp/ansible-tmp-* directories are over an hour old (kept)" % len(stale)
    module.exit_json(changed=bool(removed), removed=removed, ansible_tmp=stale, msg=msg,
                     record={"leftovers": {"removed": removed, "ansible_tmp": stale}})


if __name__ == "__main__":
    main()
