#!/usr/bin/python
"""Ansible module: which privileges the connected account lacks for the phases a run will execute (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_privileges
short_description: Say, before anything changes, which privileges the release account lacks for the phases to run
description:
  - Reads the connected account's own grants (C(SHOW GRANTS), with its active roles) and compares them with the
    least privileges each phase of I(phases) needs (C(module_utils/dbrelease/privileges.py), listed in the README's
    "Least privilege" table) on the database, its temporary plan and restore copies, the lock's schema, C(mysql),
    and the server.
  - Conditional privileges count only when they apply - C(RELOAD) and C(BINLOG MONITOR) when the server writes a
    binary log, C(BINLOG ADMIN) when the restore test skips it, C(SET USER) when the database holds views,
    routines, triggers or events of another DEFINER, C(SUPER) when it holds triggers or stored functions while the
    server writes a binary log without C(log_bin_trust_function_creators) (the server demands it to create them).
  - C(ALL PRIVILEGES) covers everything; C(SUPER) covers the split-off administrative privileges on MySQL and on
    MariaDB before 11.0; MySQL 8 spellings (C(SYSTEM_VARIABLES_ADMIN), C(SET_USER_ID), C(REPLICATION CLIENT)) count.
  - Read-only; C(changed) is always false. Fails, listing every lacking privilege with the phase and the reason,
    unless I(fail=false). Optional privileges (a phase works without them, seeing less - C(PROCESS) for the lock
    guard, the replication monitoring ones for the topology check) are only warned about.
options:
  database:
    description: The release database.
    type: str
    required: true
  phases:
    description: The phases this run will execute.
    type: list
    elements: str
    required: true
  lock_schema:
    description: The schema of the release lock's table.
    type: str
    default: dbrelease
  restore_test:
    description: Whether the backup phase restore-tests its backup (the account then needs privileges on
      C(<db>__dbrelease_restore_%)).
    type: bool
    default: true
  skip_binlog:
    description: Whether the restore test skips the binary log (it then needs C(BINLOG ADMIN)).
    type: bool
    default: true
  fail:
    description: Fail when a privilege is lacking (otherwise only report it).
    type: bool
    default: true
notes:
  - Privileges granted on single tables or columns are not counted (the phases need them on whole schemas).
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*, ssl_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Say which privileges the release account lacks
  db_privileges:
    database: arisgourmet
    phases: [preflight, lock, backup, grants, schema, migrate, verify, tag]
  no_log: true
"""

RETURN = r"""
account:
  description: The account as the server sees it (C(CURRENT_USER())).
  returned: when connected
  type: str
required:
  description: Every privilege the phases need under this server's conditions (C(phase), C(scope), C(privilege),
    C(why)).
  returned: when connected
  type: list
  elements: dict
missing:
  description: Those the account lacks, each with C(on) (the object it is needed on).
  returned: when connected
  type: list
  elements: dict
conditions:
  description: C(log_bin), C(restore_test), C(skip_binlog), C(other_definers), C(stored_code_binlog) as found.
  returned: when connected
  type: dict
record:
  description: What the release record keeps (phases.preflight) - C(privileges) with C(account), C(phases),
    C(conditions) and C(missing).
  returned: when connected
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import privileges as priv
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    server_info,
)


def main():
    spec = connection_argument_spec()
    spec.update(database=dict(type="str", required=True), phases=dict(type="list", elements="str", required=True),
                lock_schema=dict(type="str", default="dbrelease"), skip_binlog=dict(type="bool", default=True),
                restore_test=dict(type="bool", default=True),
                fail=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    p = module.params
    unknown = [phase for phase in p["phases"] if phase not in priv.PHASES]
    if unknown:
        module.fail_json(msg="unknown phase(s) %s; known: %s" % (", ".join(unknown), ", ".join(priv.PHASES)))
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        server = server_info(conn)
        user, grants, _lines = priv.account_grants(conn, server["flavor"])
        found = priv.conditions(conn, p["database"], p["skip_binlog"], p["restore_test"])
    except Exception as exc:  # a server error: name the account, never a bound value
        module.fail_json(msg="cannot read the grants of %s: %s" % (endpoint(p), exc))
    finally:
        conn.close()
    needed = priv.required(p["phases"], found)
    lacking = priv.missing(needed, grants, priv.scope_names(p["database"], p["lock_schema"]), server["flavor"],
                           server["version_tuple"])
    result = dict(changed=False, account=user, required=needed, missing=lacking, conditions=found,
                  record={"privileges": {"account": user, "phases": p["phases"], "conditions": found,
                                         "missing": lacking}})
    needed_missing, optional_missing = priv.split_missing(lacking)
    notes = ""
    if optional_missing:
        notes = "; without these the phases work but see less: %s" % priv.summary(optional_missing)
        module.warn("%s lacks optional privileges%s" % (user, notes))
    if needed_missing:
        msg = "%s lacks privileges for this run (nothing was changed): %s%s" % (
            user, priv.summary(needed_missing), notes)
        if p["fail"]:
            module.fail_json(msg=msg, **result)
        module.warn(msg)
        module.exit_json(msg=msg, **result)
    module.exit_json(msg="%s has every privilege the phases %s need%s" % (user, ", ".join(p["phases"]), notes),
                     **result)


if __name__ == "__main__":
    main()
