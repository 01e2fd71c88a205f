#!/usr/bin/python
"""Ansible module: read-only outbox and refresh-token numbers, with queries that stay fast on millions of rows."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: outbox_stats
short_description: Gather outbox and refresh-token health numbers from the outbox the database has (read-only)
description:
  - Reports what the runbook's post-deploy queries show (outbox events per status, revoked refresh tokens) plus
    the numbers a verdict needs, in the shape the C(outbox_health) filter takes.
  - "Discovers the outbox from the server (information_schema; no row is read for it): which column is the status,
    the creation time and the delivery time (common names such as C(status)/C(state), C(created_at)/C(inserted_at),
    C(delivered_at)/C(sent_at)/C(processed_at)/C(published_at), or I(columns)); the status values (from an ENUM
    definition, else C(SELECT DISTINCT) where an index makes it cheap); a separate dead-letter table
    (I(dead_letter_table)). Status values map to the verdict's notions C(pending), C(delivered), C(failed),
    C(dead) through defaults that cover the common names (C(new)/C(queued) are pending, C(sent)/C(processed)/
    C(published) delivered, C(error) failed, C(dlq)/C(parked) dead...) and I(status_map)."
  - "Three shapes: C(status) (a status column); C(delivered_column) (no status, a delivery timestamp: NULL means
    pending); C(delete_on_relay) (neither, Debezium-style: every row still in the table is pending, rows are deleted
    once relayed)."
  - "A number is read only where an index serves its query or the table is small (at most I(exact_count_limit)
    rows, estimated): nothing scans a large table, so the module stays fast on an outbox of millions of rows. A
    number the table cannot provide (no such column, no index on a large table, a query the server refused or
    stopped) is listed in C(unavailable) with the reason, and is absent from the result; it never fails the
    module."
  - Counting every delivered row (or every refresh token) would have to read a whole index, so those two totals are
    exact only while the table's estimated row count is at most I(exact_count_limit); above it they are the
    server's estimate, flagged with C(delivered_estimated) / C(total_estimated). The health verdict never depends
    on them.
  - With I(runbook_queries), also runs the runbook's two queries (C(SELECT status, COUNT(*) FROM outbox GROUP BY
    status) and C(SELECT COUNT(*) FROM refresh_tokens WHERE revoked = 1), with the real table and column names) and
    returns their rows as the server gave them. The first reads the whole outbox (it is what the DBA runs by hand);
    it runs under I(statement_timeout) like every query.
  - All queries run in one read-only transaction with a consistent snapshot, under a per-statement time limit.
  - A missing table (or database) is reported with C(present=false), not as an error, since a baseline taken before the
    DDL created the tables is normal.
  - Never changes anything (C(changed=false)). Fails only when it cannot connect, loses the connection, or a
    setting is unusable (an unknown key of I(columns) or I(status_map), a status under two notions).
options:
  database:
    description: Database that holds the outbox and refresh-token tables.
    type: str
    required: true
  outbox_table:
    description: Name of the outbox table.
    type: str
    default: outbox
  columns:
    description:
      - Which column plays which part, for names the discovery does not know. Keys C(status), C(created_at),
        C(delivered_at); a value of C("") says the table has no such column (for example C(status) on a
        Debezium-style outbox). Unset keys are discovered.
      - A column named here that the table does not have is reported in C(outbox.problems) (and the numbers that
        need it are unavailable).
    type: dict
    default: {}
  status_map:
    description:
      - Status values per notion, replacing the default list of each notion named (C(pending), C(delivered),
        C(failed), C(dead)) and C(ignored) for values deliberately left out of every check. Compared
        case-insensitively; numbers are compared as text.
      - "Defaults: pending C(pending new queued ready unsent created waiting scheduled retry retrying processing
        in_progress sending claimed locked); delivered C(delivered sent processed published done completed complete
        success succeeded relayed dispatched acked acknowledged); failed C(failed error errored failure); dead C(dead
        dlq parked dead_letter dead_lettered deadletter dead-letter quarantined poison discarded abandoned)."
    type: dict
    default: {}
  dead_letter_table:
    description: A separate dead-letter table whose rows count as dead letters. C(auto) looks for
      C(<outbox>_dead_letters), C(<outbox>_dead_letter), C(<outbox>_dlq), C(<outbox>_dead), C(<outbox>_parked),
      C(dead_letters), C(dead_letter), C(dead_letter_queue), C(dlq); C(none) for none.
    type: str
    default: auto
  tokens_table:
    description: Name of the refresh-token table.
    type: str
    default: refresh_tokens
  tokens_columns:
    description: Columns of the refresh-token table, keys C(revoked) (a 0/1 flag) and C(revoked_at) (a timestamp);
      unset keys are discovered (C(revoked)/C(is_revoked), C(revoked_at)/C(revoked_on)). Without a flag, a
      non-NULL C(revoked_at) means revoked.
    type: dict
    default: {}
  runbook_queries:
    description: Also run the runbook's two queries and return their rows (C(runbook)).
    type: bool
    default: false
  window_minutes:
    description: Length of the recent window for deliveries, failures, dead letters and revocations.
    type: int
    default: 15
  exact_count_limit:
    description: A table of at most this many rows (estimated) is small - any query may read it; above it only
      index-served queries run, delivered events and all tokens are the server's estimate, and a table without a
      status column is counted up to this bound. C(0) treats every table as large.
    type: int
    default: 200000
  statement_timeout:
    description: Seconds any one query may run before the server stops it (C(max_statement_time) on MariaDB,
      C(max_execution_time) on MySQL; a stopped query makes its number unavailable). C(0) for no limit.
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

- name: An outbox with its own names, and a dead-letter table
  outbox_stats:
    database: shop
    outbox_table: event_outbox
    columns: {status: state, created_at: inserted_at, delivered_at: sent_at}
    status_map: {delivered: [sent], dead: [dlq], ignored: [cancelled]}
    dead_letter_table: event_outbox_dlq

- name: A Debezium-style outbox (rows deleted once relayed)
  outbox_stats:
    database: shop
    columns: {status: ""}
"""

RETURN = r"""
outbox:
  description: Outbox numbers. A number the table cannot provide is absent and listed in C(unavailable).
  returned: always
  type: dict
  contains:
    present: {description: Whether the table exists., type: bool}
    table: {description: The table read., type: str}
    shape: {description: "C(status), C(delivered_column) or C(delete_on_relay).", type: str}
    columns: {description: "The column of each role (C(status), C(created_at), C(delivered_at)), null when none.",
              type: dict}
    status_map: {description: The status values of each notion that were looked up., type: dict}
    status_values: {description: "The status values found (ENUM definition or DISTINCT), null when not listed.",
                    type: list}
    unmapped: {description: "Status values that map to no notion, with their row counts (null when not counted).",
               type: dict}
    by_status: {description: Exact rows per status value (small tables only)., type: dict}
    counts: {description: "Events per notion (C(pending), C(failed), C(dead) exact; C(delivered) see
      C(delivered_estimated)).", type: dict}
    delivered_estimated: {description: Whether C(counts.delivered) is the server's estimate., type: bool}
    oldest_pending_age_seconds: {description: Age of the oldest pending event (null when none)., type: float}
    delivered_recent: {description: Events delivered in the window (by the delivery timestamp)., type: int}
    failed_recent: {description: Events created in the window that are now failed., type: int}
    dead_recent: {description: "Events created in the window that are now dead, plus rows that reached the
      dead-letter table in the window.", type: int}
    dead_letters: {description: Dead letters (dead statuses plus the dead-letter table's rows)., type: int}
    dead_letter_table: {description: "The separate dead-letter table (C(table), C(rows), C(recent),
      C(time_column), C(discovered)), or null.", type: dict}
    unavailable: {description: "Numbers not available here, each with the reason.", type: dict}
    problems: {description: Settings that name something the table does not have., type: list}
    estimated_rows: {description: The server's estimate of the table's rows., type: int}
    window_minutes: {description: The window used., type: int}
  sample:
    present: true
    table: outbox
    shape: status
    columns: {status: status, created_at: created_at, delivered_at: delivered_at}
    counts: {pending: 3, delivered: 1200, failed: 1, dead: 0}
    delivered_estimated: false
    oldest_pending_age_seconds: 2.5
    delivered_recent: 40
    failed_recent: 0
    dead_recent: 0
    dead_letters: 0
    unavailable: {}
    window_minutes: 15
refresh_tokens:
  description: Refresh-token numbers (same conventions).
  returned: always
  type: dict
  sample: {present: true, table: refresh_tokens, revoked: 5, revoked_recent: 0, total: 200, total_estimated: false,
           unavailable: {}, window_minutes: 15}
runbook:
  description: "With I(runbook_queries): each runbook query (C(runbook), as the runbook writes it; C(query), as run
    here; C(as_written)) with C(columns) and C(rows) as the server returned them, or C(not_run) / C(error) with the
    reason."
  returned: when runbook_queries
  type: list
  sample:
    - {runbook: "SELECT status, COUNT(*) FROM outbox GROUP BY status", query: "SELECT status, COUNT(*) FROM outbox
       GROUP BY status", as_written: true, columns: [status, "COUNT(*)"], rows: [[pending, 3], [delivered, 1200]]}
database:
  description: The database inspected.
  returned: always
  type: str
server_time:
  description: The server's clock when the numbers were read, in the session time zone.
  returned: always
  type: str
elapsed_seconds:
  description: Time spent reading (discovery and queries).
  returned: always
  type: float
record:
  description: What the release record keeps (phases.verify_baseline.baseline, phases.verify.stats) - C(database),
    C(server_time), C(elapsed_seconds), C(outbox), C(refresh_tokens), and C(runbook) when read.
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
    require_pymysql,
    scrub,
    server_info,
)
from ansible.module_utils.dbrelease.outbox import (  # noqa: F401 - OUTBOX_QUERIES/TOKEN_QUERIES: bench and tests
    OUTBOX_QUERIES,
    TOKEN_QUERIES,
    OutboxSettingsError,
    gather,
)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        database=dict(type="str", required=True),
        outbox_table=dict(type="str", default="outbox"),
        tokens_table=dict(type="str", default="refresh_tokens"),
        columns=dict(type="dict", default={}),
        status_map=dict(type="dict", default={}),
        dead_letter_table=dict(type="str", default="auto"),
        tokens_columns=dict(type="dict", default={}),
        runbook_queries=dict(type="bool", default=False),
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
    started = time.monotonic()
    try:
        result = gather(conn, p["database"], p["outbox_table"], p["tokens_table"], p["window_minutes"],
                        p["exact_count_limit"], p["statement_timeout"], columns=p["columns"],
                        status_map_overrides=p["status_map"], dead_letter_table=p["dead_letter_table"],
                        token_columns=p["tokens_columns"], runbook_queries=p["runbook_queries"],
                        flavor=server_info(conn)["flavor"])
    except OutboxSettingsError as exc:
        module.fail_json(msg="outbox_stats: %s" % exc)
    except Exception as exc:  # a lost connection: say where, never the password
        module.fail_json(msg="outbox_stats: reading %s.%s / %s as %s failed: %s" % (
            p["database"], p["outbox_table"], p["tokens_table"], endpoint(p), scrub(str(exc), p)))
    finally:
        conn.close()
    result["elapsed_seconds"] = round(time.monotonic() - started, 4)
    record = {key: result[key] for key in ("database", "server_time", "elapsed_seconds", "outbox", "refresh_tokens",
                                           "runbook") if key in result}
    module.exit_json(changed=False, record=record, **result)


if __name__ == "__main__":
    main()
