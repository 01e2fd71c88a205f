#!/usr/bin/python
"""Ansible module: the server's binary log, its retention, and what was written to a database since a position."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: binlog_info
short_description: Binary log status and retention, and how much was written to a database since a position
description:
  - Reads whether the server writes a binary log, its format, expiry (C(binlog_expire_logs_seconds),
    C(expire_logs_days)), the current position (file, offset, GTID) and the files it holds. Read-only.
  - With I(window_hours), says whether the binary logs are kept at least that long (the rollback window), and
    whether point-in-time recovery is possible at all.
  - With I(database) and I(since), counts what was written to the database from I(since) to I(until) (or now), from
    C(SHOW BINLOG EVENTS) - transactions, row events and statement events touching it, and the binary log bytes
    in the range. Never returns the text of an event (it holds row values).
  - With I(rows_then) (row counts recorded earlier, per table), gives the exact row counts now and the differences,
    the measure of what was written when the binary log cannot tell.
options:
  database:
    description: Database whose writes are counted.
    type: str
    default: ""
  since:
    description: Position to count from, C(file)/C(pos) (or a backup manifest's C(binlog_file)/C(binlog_pos)).
    type: dict
  until:
    description: Position to count to; empty - now.
    type: dict
  window_hours:
    description: Hours the binary logs must be kept (the rollback window); 0 gives no retention verdict.
    type: float
    default: 0
  rows_then:
    description: Row counts recorded earlier (table name to count); the counts now are compared with them.
    type: dict
  max_seconds:
    description: Time budget for reading the binary log; past it the counts are lower bounds (C(complete=false)).
    type: float
    default: 60
notes:
  - Needs BINLOG MONITOR (MariaDB >= 10.5.2) or REPLICATION CLIENT and REPLICATION SLAVE (MySQL) for the binary log
    parts; without them the status says why.
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: read-only; runs the same in check mode.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: How much was written since the backup
  binlog_info:
    database: shop
    since: "{{ backup.position }}"
    window_hours: 72
  no_log: true
"""

RETURN = r"""
binlog:
  description: C(enabled), C(format), C(row_image), C(expire_seconds), C(server_id), C(basename), C(position),
    C(files) (name and size of each).
  returned: always
  type: dict
retention:
  description: C(ok), C(pitr) (C(possible) or C(not possible)) and C(msg).
  returned: when window_hours > 0
  type: dict
writes:
  description: C(transactions), C(row_events), C(statement_events), C(row_events_by_table), C(bytes), C(from),
    C(to), C(complete), C(files), C(seconds).
  returned: when database and since are given and the binary log covers the range
  type: dict
writes_error:
  description: Why the writes could not be counted from the binary log (off, purged, not allowed).
  returned: when they could not
  type: str
rows:
  description: Per table, C(then), C(now), C(difference).
  returned: when rows_then is given
  type: dict
summary:
  description: One line for people, naming what was written (no row data).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import binlog
from ansible.module_utils.dbrelease.db import (  # noqa: I001 (module_utils import, resolved by Ansible)
    DbError,
    connect,
    connection_argument_spec,
    quote_ident,
    require_pymysql,
    scrub,
    server_info,
)


def row_changes(conn, database, rows_then) -> dict:
    out = {}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN "
                    "('BASE TABLE', 'SYSTEM VERSIONED')", (database,))
        tables = {row[0] for row in cur.fetchall()}
        for table in sorted(tables | set(rows_then)):
            now = None
            if table in tables:
                cur.execute("SELECT COUNT(*) FROM %s.%s" % (quote_ident(database), quote_ident(table)))
                now = int(cur.fetchone()[0])
            then = rows_then.get(table)
            then = int(then) if then is not None else None
            out[table] = {"then": then, "now": now,
                          "difference": (now or 0) - (then or 0) if (now is not None or then is not None) else 0}
    return out


def summary(result) -> str:
    parts = []
    if "writes" in result:
        parts.append(binlog.writes_summary(result["writes"]))
    elif result.get("writes_error"):
        parts.append("the binary log cannot tell what was written (%s)" % result["writes_error"])
    if "rows" in result:
        changed = {t: r for t, r in result["rows"].items() if r["difference"]}
        parts.append("row counts: %s" % (", ".join("%s %+d" % (t, r["difference"]) for t, r in sorted(changed.items()))
                                         or "unchanged"))
    return "; ".join(parts) or "binary log %s" % ("on" if result["binlog"]["enabled"] else "off")


def run(module):
    p = module.params
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        flavor = server_info(conn)["flavor"]
        result = {"changed": False}
        try:
            result["binlog"] = binlog.status(conn, flavor)
        except Exception as exc:  # noqa: BLE001 - the account may not read the binary log status
            result["binlog"] = {"enabled": None, "error": scrub(str(exc), p)}
        if p["window_hours"]:
            result["retention"] = binlog.retention_verdict(result["binlog"], p["window_hours"])
        since = binlog.normalise_position(p["since"])
        if p["database"] and p["since"] is not None:
            if not result["binlog"].get("enabled"):
                result["writes_error"] = "the server writes no binary log" if result["binlog"].get(
                    "enabled") is False else result["binlog"].get("error", "unknown")
            elif not since:
                result["writes_error"] = "no binary log position was recorded to count from"
            else:
                try:
                    result["writes"] = binlog.writes_since(conn, p["database"], since,
                                                           binlog.normalise_position(p["until"]),
                                                           max_seconds=p["max_seconds"])
                except binlog.BinlogError as exc:
                    result["writes_error"] = str(exc)
                except Exception as exc:  # noqa: BLE001 - privileges (BINLOG MONITOR / REPLICATION SLAVE)
                    result["writes_error"] = "SHOW BINLOG EVENTS failed: %s" % scrub(str(exc), p)
        if p["database"] and p["rows_then"] is not None:
            result["rows"] = row_changes(conn, p["database"], p["rows_then"])
        result["summary"] = summary(result)
        return result
    finally:
        conn.close()


def main():
    spec = connection_argument_spec()
    spec.update(database=dict(type="str", default=""), since=dict(type="dict"), until=dict(type="dict"),
                window_hours=dict(type="float", default=0), rows_then=dict(type="dict"),
                max_seconds=dict(type="float", default=60))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
