#!/usr/bin/python
"""Ansible module: the reverse of a release's schema changes, with what it would lose counted on the live data."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: schema_reverse
short_description: Compute the DDL that undoes a release's schema changes and count what it would lose
description:
  - Compares the snapshot taken before the release (the schema phase's C(pre.json)) with the database now (or with
    I(post_snapshot)) and writes the reverse (see C(module_utils/dbrelease/reverse.py)) - created objects dropped,
    changed views, routines, triggers and events back to their previous C(SHOW CREATE) text (C(pre.sql)), added
    columns dropped, modified columns back where every value fits, dropped columns and indexes added again, renames
    renamed back, table options back.
  - Counts, on the live data, what each step puts at stake - the rows in a table the release created, the values in
    a column it added, the rows that get a default instead of a dropped column's values, the values that would not
    fit a column's previous definition (such a modification is left out and named). Only counts are returned,
    never values.
  - Changes nothing. The DDL it returns is meant for C(schema_apply), which plans it on a temporary copy, lints it,
    checks the data and applies it like any release.
options:
  db:
    description: The database the release changed.
    type: str
    required: true
  pre_snapshot:
    description: The snapshot before the release (C(pre.json)) - its C(objects) (and C(sha256)).
    type: dict
    required: true
  pre_sql:
    description: The SHOW CREATE texts before the release (C(pre.sql)).
    type: str
    required: true
  post_snapshot:
    description: Compare with this snapshot (C(post.json)) instead of the database as it is now. Stakes are still
      counted on the live data.
    type: dict
  count:
    description: Count what is at stake (each count is a read of a table, bounded by I(count_seconds)).
    type: bool
    default: true
  count_seconds:
    description: Time limit of each count, in seconds; a count that runs out is reported as unknown.
    type: int
    default: 120
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: read-only; the same in check mode.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Compute the reverse of the release's schema changes
  schema_reverse:
    db: shop
    pre_snapshot: "{{ lookup('ansible.builtin.file', snapshots ~ '/pre.json') | from_json }}"
    pre_sql: "{{ lookup('ansible.builtin.file', snapshots ~ '/pre.sql') }}"
  no_log: true
  register: __reverse
"""

RETURN = r"""
ddl:
  description: The reverse DDL (for schema_apply's ddl_contents); only its header when there is nothing to reverse.
  returned: always
  type: str
steps:
  description: What the reverse does, one line per step (C(table orders - drop column note)).
  returned: always
  type: list
losses:
  description: What the reverse cannot keep, with the count at stake (rows of a table the release created, values of
    a column it added, a dropped column's values).
  returned: always
  type: list
not_reversed:
  description: Changes left as they are, and why (values that would not fit, a check that cannot be made here).
  returned: always
  type: list
lossless:
  description: True when the reverse loses nothing written since the release and reverses every change.
  returned: always
  type: bool
items:
  description: Each step with C(object), C(action), C(at_stake) (the count) and C(fits) (values that do not fit).
  returned: always
  type: list
pre_sha256:
  description: The hash of the snapshot before the release - what the schema's snapshot hash is once reversed.
  returned: always
  type: str
changes:
  description: Number of schema changes between before and now (0 - nothing to reverse).
  returned: always
  type: int
record:
  description: What the release record keeps - C(reverse) with C(steps), C(losses), C(not_reversed), C(lossless),
    C(changes), C(pre_sha256) (no DDL text, no values).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import reverse, schema
from ansible.module_utils.dbrelease.db import (  # noqa: I001 (module_utils import, resolved by Ansible)
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    quote_ident,
    require_pymysql,
    scrub,
    server_info,
)


def count(conn, db, query, flavor, seconds):
    """The count of a stake query on `db` (None when it ran out of time)."""
    import pymysql

    sql = query["sql"]
    if flavor == "mariadb":
        sql = "SET STATEMENT max_statement_time=%d FOR %s" % (seconds, sql)
    else:
        sql = sql.replace("SELECT ", "SELECT /*+ MAX_EXECUTION_TIME(%d) */ " % (seconds * 1000), 1)
    with conn.cursor() as cur:
        cur.execute("USE %s" % quote_ident(db))
        try:
            cur.execute(sql, query["args"] or None)
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in (1969, 3024):  # statement time exceeded
                return None
            raise
        return int(cur.fetchone()[0])


def run(module):
    p = module.params
    pre = p["pre_snapshot"].get("objects", p["pre_snapshot"])
    try:
        creates = reverse.parse_export(p["pre_sql"])
    except reverse.ReverseError as exc:
        module.fail_json(msg="pre.sql cannot be read: %s" % exc)
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        flavor = server_info(conn)["flavor"]
        now = (p["post_snapshot"] or {}).get("objects") or schema.snapshot(conn, p["db"], flavor)["objects"]
        changes = schema.diff(pre, now)
        items = reverse.plan(pre, now, creates)
        stakes, excluded = {}, set()
        if p["count"]:
            for item in items:
                if item.get("stake"):
                    stakes[item["id"]] = count(conn, p["db"], item["stake"], flavor, p["count_seconds"])
                if item.get("fit"):
                    found = count(conn, p["db"], item["fit"], flavor, p["count_seconds"])
                    stakes["fit:" + item["id"]] = found
                    if found is None or found > 0:
                        excluded.add(item["id"])
    except reverse.ReverseError as exc:
        module.fail_json(msg="cannot reverse the release's changes to %s: %s" % (p["db"], exc))
    except Exception as exc:  # noqa: BLE001 - a server error while reading or counting
        module.fail_json(msg=scrub("schema_reverse on %s as %s: %s" % (p["db"], endpoint(p), exc), p))
    finally:
        conn.close()
    summary = reverse.summary(items, stakes, excluded)
    if not p["count"]:
        summary["losses"].append("what is at stake was not counted (count: false)")
        summary["lossless"] = False
    result = dict(changed=False, ddl=reverse.ddl(items, excluded), changes=len(changes),
                pre_sha256=p["pre_snapshot"].get("sha256") or schema.snapshot_sha256(pre),
                items=[{"object": i["object"], "action": i["action"], "at_stake": stakes.get(i["id"]),
                        "fits": None if not i.get("fit") else stakes.get("fit:" + i["id"]),
                        "reversed": i["id"] not in excluded and not i.get("blocked")} for i in items],
                  **summary)
    result["record"] = {"reverse": {key: result[key] for key in ("steps", "losses", "not_reversed", "lossless",
                                                                 "changes", "pre_sha256")}}
    result["msg"] = "reverse of the release on %s: %d step(s), %s%s" % (
        p["db"], len(result["steps"]), "lossless" if result["lossless"] else "not lossless",
        (": " + "; ".join(result["losses"] + result["not_reversed"])) if not result["lossless"] else "")
    return result


def main():
    spec = connection_argument_spec()
    spec.update(db=dict(type="str", required=True), pre_snapshot=dict(type="dict", required=True),
                pre_sql=dict(type="str", required=True), post_snapshot=dict(type="dict"),
                count=dict(type="bool", default=True), count_seconds=dict(type="int", default=120))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
