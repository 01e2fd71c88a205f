#!/usr/bin/python
"""Ansible module: verify that an account exists at each host with the expected privileges (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_grants
short_description: Verify an account's hosts and privileges, reporting what is missing or extra per account
description:
  - For each host in I(hosts), checks that C(user@host) exists and compares C(SHOW GRANTS FOR) with the
    privileges expected for it, in community.mysql's C(priv) syntax.
  - Read-only (the runbook asks to confirm the grants, not to change them); C(changed) is always false.
  - Password hashes and authentication strings in C(SHOW GRANTS) output are redacted before they are returned.
  - Needs SELECT on C(mysql.*) to read another account's grants.
options:
  user:
    description: Account name to verify.
    type: str
    required: true
  hosts:
    description: Host parts the account must exist at.
    type: list
    elements: str
    default: [localhost, "%"]
  privileges:
    description: Expected privileges per host, community.mysql C(priv) syntax (C(*.*:ALL,GRANT)). The key
      C(default) applies to hosts not listed.
    type: dict
    required: true
  fail_on_extra:
    description: Fail when an account has privileges beyond the expected ones (otherwise they are reported).
    type: bool
    default: false
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Verify db_admin at localhost and %
  db_grants:
    user: db_admin
    hosts: [localhost, "%"]
    privileges:
      default: "*.*:ALL,GRANT"
  no_log: true
"""

RETURN = r"""
accounts:
  description: Per account C(user@host), whether it exists, its redacted grants, and what is missing or extra.
  returned: always
  type: dict
ok:
  description: True when every account exists and has every expected privilege.
  returned: always
  type: bool
msg:
  description: The accounts checked, and any with more privileges than expected.
  returned: success
  type: str
record:
  description: What the release record keeps (phases.grants) - C(accounts).
  returned: success and on a verification failure
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    require_pymysql,
    server_info,
)
from ansible.module_utils.dbrelease.grants import (
    GrantSpecError,
    compare,
    parse_priv_spec,
    parse_show_grants,
    redact,
)


def check_accounts(conn, user, hosts, privileges, flavor):
    accounts = {}
    with conn.cursor() as cur:
        for host in hosts:
            name = "%s@%s" % (user, host)
            spec = privileges.get(host, privileges.get("default"))
            expected = parse_priv_spec(spec)
            cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
            if not cur.fetchone()[0]:
                accounts[name] = {"exists": False, "expected": spec, "missing": {o: sorted(p) for o, p in
                                                                                  expected.items()}, "extra": {}}
                continue
            cur.execute("SHOW GRANTS FOR %s@%s", (user, host))
            lines = [row[0] for row in cur.fetchall()]
            result = compare(expected, parse_show_grants(lines), flavor)
            accounts[name] = {"exists": True, "expected": spec, "grants": [redact(line) for line in lines],
                              **result}
    return accounts


def summary(accounts, fail_on_extra):
    problems = []
    for name, acct in accounts.items():
        if not acct["exists"]:
            problems.append("%s does not exist" % name)
            continue
        for obj, privs in acct["missing"].items():
            problems.append("%s lacks %s on %s" % (name, ",".join(privs), obj))
        if fail_on_extra:
            for obj, privs in acct["extra"].items():
                problems.append("%s has unexpected %s on %s" % (name, ",".join(privs), obj))
    return problems


def main():
    spec = connection_argument_spec()
    spec.update(
        user=dict(type="str", required=True),
        hosts=dict(type="list", elements="str", default=["localhost", "%"]),
        privileges=dict(type="dict", required=True),
        fail_on_extra=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    p = module.params
    missing_spec = [h for h in p["hosts"] if h not in p["privileges"] and "default" not in p["privileges"]]
    if missing_spec:
        module.fail_json(msg="no expected privileges for host(s) %s: add them (or a 'default' key) to "
                             "grants_privileges" % ", ".join(missing_spec))
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        flavor = server_info(conn)["flavor"]
        accounts = check_accounts(conn, p["user"], p["hosts"], p["privileges"], flavor)
    except GrantSpecError as exc:
        module.fail_json(msg="grants_privileges: %s" % exc)
    except Exception as exc:  # a server error: name the account, never a bound value
        module.fail_json(msg="cannot read the grants of %s: %s (the admin user needs SELECT on mysql.*)"
                             % (p["user"], exc))
    finally:
        conn.close()
    problems = summary(accounts, p["fail_on_extra"])
    if problems:
        module.fail_json(msg="grant verification failed: " + "; ".join(problems), accounts=accounts, ok=False,
                         record={"accounts": accounts})
    extra = ["%s has more than expected: %s" % (name, account["extra"]) for name, account in accounts.items()
             if account.get("extra")]
    msg = "%s verified at %s%s" % (p["user"], ", ".join(p["hosts"]), ("; " + "; ".join(extra)) if extra else "")
    module.exit_json(changed=False, accounts=accounts, ok=True, msg=msg, record={"accounts": accounts})


if __name__ == "__main__":
    main()
