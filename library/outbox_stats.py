#!/usr/bin/python
"""Ansible module: read-only outbox and refresh-token numbers, with queries that stay fast on millions of rows."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: outbox_stats
short_description: Gather outbox and refresh-token health numbers (read-only, index-friendly)
description:
  - Reports what the runbook's post-deploy queries show (outbox events per status, revoked refresh tokens) plus
    the numbers a verdict needs, in the shape the C(outbox_health) filter takes.
  - "Every query is served by an index of C(infra/ddls/create_distributed_tables.sql): per-status counts and the
    oldest pending event by C(idx_outbox_status_created) on status and created_at, recent deliveries by
    C(idx_outbox_delivered) on delivered_at, revoked tokens by C(idx_refresh_tokens_revoked) on revoked and
    revoked_at.
    None scans the table, so the module stays fast on an outbox of millions of delivered rows."
  - Counting every delivered row (or every refresh token) would have to read a whole index, so those two totals are
    exact only while the table's estimated row count is at most I(exact_count_limit); above it they are the
    server's estimate, flagged with C(delivered_estimated) / C(total_estimated). The health verdict never depends
    on them.
  - All queries run in one read-only transaction with a consistent snapshot, under a per-statement time limit.
  - A missing table (or database) is reported with C(present=false), not as an error, since a baseline taken before the
    DDL created the tables is normal.
  - Never changes anything (C(changed=false)).
options:
  database:
    description: Database that holds the outbox and refresh-token tables.
    type: str
    required: true
  outbox_table:
    description: Name of the outbox table.
    type: str
    default: outbox
  tokens_table:
    description: Name of the refresh-token table.
    type: str
    default: refresh_tokens
  window_minutes:
    description: Length of the recent window for deliveries, failures, dead letters and revocations.
    type: int
    default: 15
  exact_count_limit:
    description: Count delivered events and all tokens exactly only when the table's estimated row count is at
      most this; above it, use the estimate. C(0) always estimates.
    type: int
    default: 200000
  statement_timeout:
    description: Seconds any one query may run before the server stops it (C(max_statement_time) on MariaDB,
      C(max_execution_time) on MySQL). C(0) for no limit.
    type: int
    default: 30
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same queries in check mode.
  diff_mode:
    support: none
requirements: [PyMySQL]
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Gather outbox and refresh-token numbers
  outbox_stats:
    database: arisgourmet
    window_minutes: 15
  register: __verify_stats
  no_log: false   # the result holds no secret; the password is a no_log parameter
"""

RETURN = r"""
outbox:
  description: Outbox numbers.
  returned: always
  type: dict
  contains:
    present: {description: Whether the table exists., type: bool}
    counts: {description: "Events per status (C(pending), C(failed), C(dead) exact; C(delivered) see
      C(delivered_estimated)).", type: dict}
    delivered_estimated: {description: Whether C(counts.delivered) is the server's estimate., type: bool}
    oldest_pending_age_seconds: {description: Age of the oldest pending event (null when none)., type: float}
    delivered_recent: {description: Events delivered in the window (C(delivered_at))., type: int}
    failed_recent: {description: Events created in the window that are now C(failed)., type: int}
    dead_recent: {description: Events created in the window that are now C(dead)., type: int}
    dead_letters: {description: Dead-letter size (C(status = 'dead'))., type: int}
    window_minutes: {description: The window used., type: int}
  sample:
    present: true
    counts: {pending: 3, delivered: 1200, failed: 1, dead: 0}
    delivered_estimated: false
    oldest_pending_age_seconds: 2.5
    delivered_recent: 40
    failed_recent: 0
    dead_recent: 0
    dead_letters: 0
    window_minutes: 15
refresh_tokens:
  description: Refresh-token numbers.
  returned: always
  type: dict
  sample: {present: true, revoked: 5, revoked_recent: 0, total: 200, total_estimated: false, window_minutes: 15}
database:
  description: The database inspected.
  returned: always
  type: str
server_time:
  description: The server's clock when the numbers were read, in the session time zone.
  returned: always
  type: str
elapsed_seconds:
  description: Time spent running the queries.
  returned: always
  type: float
record:
  description: What the release record keeps (phases.verify_baseline.baseline, phases.verify.stats) - C(database),
    C(server_time), C(elapsed_seconds), C(outbox), C(refresh_tokens).
  returned: success
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    quote_ident,
    require_pymysql,
    scrub,
    server_info,
)

# Index-friendly queries. `{t}` is the quoted `database`.`table`; values are bound parameters.
# Kept here as data so scripts/bench_verify.py can EXPLAIN exactly what the module runs.
OUTBOX_QUERIES = {
    # idx_outbox_status_created: an equality range on the first column, one per status.
    "count_status": "SELECT COUNT(*) FROM {t} WHERE status = %s",
    # idx_outbox_status_created: MIN of the second column for a fixed first column is read from the index edge.
    "oldest_pending": "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(3)) / 1000000 "
                      "FROM {t} WHERE status = 'pending'",
    # idx_outbox_delivered: a range over the last minutes only.
    "delivered_recent": "SELECT COUNT(*) FROM {t} WHERE delivered_at >= NOW(3) - INTERVAL %s MINUTE",
    # idx_outbox_status_created: (status, created_at) range.
    "status_recent": "SELECT COUNT(*) FROM {t} WHERE status = %s AND created_at >= NOW(3) - INTERVAL %s MINUTE",
    # The runbook's own query; exact, but reads the whole index: used only while the table is small.
    "group_by_status": "SELECT status, COUNT(*) FROM {t} GROUP BY status",
}
TOKEN_QUERIES = {
    # idx_refresh_tokens_revoked: the runbook's query, an equality range on `revoked`.
    "revoked": "SELECT COUNT(*) FROM {t} WHERE revoked = 1",
    # idx_refresh_tokens_revoked: (revoked, revoked_at) range.
    "revoked_recent": "SELECT COUNT(*) FROM {t} WHERE revoked = 1 AND revoked_at >= NOW() - INTERVAL %s MINUTE",
    # Exact total; reads the smallest index: used only while the table is small.
    "total": "SELECT COUNT(*) FROM {t}",
}
WATCHED_STATUSES = ("pending", "failed", "dead")


def scalar(cur, sql, args=None):
    cur.execute(sql, args)
    row = cur.fetchone()
    return row[0] if row else None


def table_estimates(cur, database, tables):
    """{table: estimated_rows} for the tables that exist (information_schema; no table is read)."""
    placeholders = ", ".join(["%s"] * len(tables))
    cur.execute("SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (" + placeholders + ")", [database, *tables])
    return {name: int(rows or 0) for name, rows in cur.fetchall()}


def outbox_numbers(cur, qualified, estimate, window, exact_limit):
    out = {"present": True, "window_minutes": window}
    if estimate <= exact_limit:
        cur.execute(OUTBOX_QUERIES["group_by_status"].format(t=qualified))
        counts = {str(status): int(n) for status, n in cur.fetchall()}
        out["delivered_estimated"] = False
    else:
        counts = {}
        out["delivered_estimated"] = True
    for status in WATCHED_STATUSES:
        if status not in counts:
            counts[status] = int(scalar(cur, OUTBOX_QUERIES["count_status"].format(t=qualified), [status]) or 0)
    if out["delivered_estimated"]:
        counts["delivered"] = max(0, estimate - sum(counts[s] for s in WATCHED_STATUSES))
    counts.setdefault("delivered", 0)
    out["counts"] = counts
    age = scalar(cur, OUTBOX_QUERIES["oldest_pending"].format(t=qualified))
    out["oldest_pending_age_seconds"] = None if age is None else max(0.0, round(float(age), 3))
    out["delivered_recent"] = int(scalar(cur, OUTBOX_QUERIES["delivered_recent"].format(t=qualified), [window]))
    for status in ("failed", "dead"):
        out[status + "_recent"] = int(scalar(cur, OUTBOX_QUERIES["status_recent"].format(t=qualified),
                                             [status, window]))
    out["dead_letters"] = counts["dead"]
    return out


def token_numbers(cur, qualified, estimate, window, exact_limit):
    out = {"present": True, "window_minutes": window}
    out["revoked"] = int(scalar(cur, TOKEN_QUERIES["revoked"].format(t=qualified)))
    out["revoked_recent"] = int(scalar(cur, TOKEN_QUERIES["revoked_recent"].format(t=qualified), [window]))
    if estimate <= exact_limit:
        out["total"] = int(scalar(cur, TOKEN_QUERIES["total"].format(t=qualified)))
        out["total_estimated"] = False
    else:
        out["total"] = max(estimate, out["revoked"])
        out["total_estimated"] = True
    return out


def set_statement_timeout(cur, flavor, seconds):
    if not seconds:
        return
    if flavor == "mariadb":
        cur.execute("SET SESSION max_statement_time = %s", [float(seconds)])
    else:
        cur.execute("SET SESSION max_execution_time = %s", [int(seconds) * 1000])


def gather(conn, database, outbox_table, tokens_table, window, exact_limit, statement_timeout):
    """All the numbers, read in one read-only snapshot. Pure reads: nothing is written."""
    flavor = server_info(conn)["flavor"]
    started = time.monotonic()
    with conn.cursor() as cur:
        set_statement_timeout(cur, flavor, statement_timeout)
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            server_time = str(scalar(cur, "SELECT NOW(3)"))
            estimates = table_estimates(cur, database, [outbox_table, tokens_table])
            result = {"database": database, "server_time": server_time}
            if outbox_table in estimates:
                result["outbox"] = outbox_numbers(cur, quote_ident(database) + "." + quote_ident(outbox_table),
                                                  estimates[outbox_table], window, exact_limit)
            else:
                result["outbox"] = {"present": False, "counts": {}, "oldest_pending_age_seconds": None,
                                    "window_minutes": window}
            if tokens_table in estimates:
                result["refresh_tokens"] = token_numbers(cur, quote_ident(database) + "." + quote_ident(tokens_table),
                                                         estimates[tokens_table], window, exact_limit)
            else:
                result["refresh_tokens"] = {"present": False, "window_minutes": window}
        finally:
            cur.execute("COMMIT")
    result["elapsed_seconds"] = round(time.monotonic() - started, 4)
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        database=dict(type="str", required=True),
        outbox_table=dict(type="str", default="outbox"),
        tokens_table=dict(type="str", default="refresh_tokens"),
        window_minutes=dict(type="int", default=15),
        exact_count_limit=dict(type="int", default=200000),
        statement_timeout=dict(type="int", default=30),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_pymysql(module)
    p = module.params
    if p["window_minutes"] < 1:
        module.fail_json(msg="outbox_stats: window_minutes must be at least 1, got %d" % p["window_minutes"])
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = gather(conn, p["database"], p["outbox_table"], p["tokens_table"], p["window_minutes"],
                        p["exact_count_limit"], p["statement_timeout"])
    except Exception as exc:  # PyMySQL errors and timeouts: say where, never the password
        module.fail_json(msg="outbox_stats: reading %s.%s / %s as %s failed: %s" % (
            p["database"], p["outbox_table"], p["tokens_table"], endpoint(p), scrub(str(exc), p)))
    finally:
        conn.close()
    record = {key: result.get(key) for key in ("database", "server_time", "elapsed_seconds", "outbox",
                                               "refresh_tokens")}
    module.exit_json(changed=False, record=record, **result)


if __name__ == "__main__":
    main()
