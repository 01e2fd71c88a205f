#!/usr/bin/env python3
"""Benchmark: how long the verify phase's outbox_stats takes on an outbox of millions of rows.

Starts a throwaway MariaDB (scripts/sandbox_db.py) under a temporary directory, creates the example app's outbox and
refresh_tokens (examples/app/infra/ddls/create_distributed_tables.sql), fills the outbox with --rows events by
INSERT ... SELECT doubling (mostly old delivered events, spread over 30 days, plus a live tail of pending, failed,
dead and recently delivered ones), then times outbox_stats' gather() (exactly what the module runs) and, for
comparison, the runbook's plain `SELECT status, COUNT(*) FROM outbox GROUP BY status`. Prints EXPLAIN of every
query so index use is visible. The server and its files are removed at the end.

    .venv/bin/python scripts/bench_verify.py                    # 4,000,000 outbox rows
    .venv/bin/python scripts/bench_verify.py --rows 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "library"))

import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from benchmarks_doc import measured_on, write_section  # noqa: E402
from outbox_stats import OUTBOX_QUERIES, TOKEN_QUERIES, gather  # noqa: E402
from sandbox_db import Sandbox  # noqa: E402

DB = "bench_verify"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
# Loading speed only: this server is thrown away, so durability and the binlog do not matter.
FAST_LOAD = ("--innodb-buffer-pool-size=1G", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
             "--innodb-log-file-size=512M", "--innodb-doublewrite=0")


def create_tables(box):
    box.sql("CREATE DATABASE IF NOT EXISTS %s" % DB)
    box.sql("CREATE TABLE users (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB", DB)
    text = re.sub(r"^--.*$", "", DDL.read_text(), flags=re.M)
    box.sql([s for s in (part.strip() for part in text.split(";")) if s], DB)


def fill_outbox(box, rows, say):
    """Old delivered events by doubling (each copy shifted back by up to a day), then the live tail the health
    checks look at."""
    seed = min(rows, 1024)
    box.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts, created_at, "
            "available_at, delivered_at) "
            "SELECT 'order', seq, 'OrderPlaced', REPEAT('x', 200), 'delivered', 1, "
            "NOW(3) - INTERVAL (3600 + (seq * 7919) MOD (30 * 86400)) SECOND, NOW(3), "
            "NOW(3) - INTERVAL (3598 + (seq * 7919) MOD (30 * 86400)) SECOND FROM seq_1_to_%d" % seed, DB)
    total = seed
    while total < rows:
        batch = min(total, rows - total)
        started = time.monotonic()
        box.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts, "
                "created_at, available_at, delivered_at) "
                "SELECT aggregate_type, aggregate_id, event_type, payload, status, attempts, "
                "created_at - INTERVAL (id MOD 86400) SECOND, available_at, "
                "delivered_at - INTERVAL (id MOD 86400) SECOND FROM outbox LIMIT %d" % batch, DB)
        total += batch
        say("  outbox: %d rows (+%d in %.1fs)" % (total, batch, time.monotonic() - started))
    tail = ("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts, created_at, "
            "delivered_at) SELECT 'order', seq, 'OrderPlaced', '{}', '%s', %d, NOW(3) - INTERVAL %s SECOND, %s "
            "FROM seq_1_to_%d")
    box.sql([
        tail % ("delivered", 1, "FLOOR(RAND() * 600)", "NOW(3) - INTERVAL FLOOR(RAND() * 600) SECOND", 2000),
        tail % ("pending", 0, "FLOOR(RAND() * 30)", "NULL", 150),
        tail % ("failed", 3, "FLOOR(RAND() * 3600)", "NULL", 40),
        tail % ("dead", 10, "FLOOR(RAND() * 86400)", "NULL", 12),
    ], DB)


def fill_tokens(box, tokens, say):
    box.sql("INSERT INTO users (id) SELECT seq FROM seq_1_to_1000", DB)
    box.sql("INSERT INTO refresh_tokens (user_id, token_hash, issued_at, expires_at, revoked, revoked_at) "
            "SELECT 1 + seq MOD 1000, SHA2(seq, 256), NOW() - INTERVAL seq MOD 86400 SECOND, NOW() + INTERVAL 30 DAY, "
            "seq MOD 50 = 0, IF(seq MOD 50 = 0, NOW() - INTERVAL seq MOD 604800 SECOND, NULL) "
            "FROM seq_1_to_%d" % tokens, DB)
    say("  refresh_tokens: %d rows" % tokens)


def explain(box, sql, args):
    conn = box.root(DB)
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN " + sql, args)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def time_query(box, sql, runs):
    conn = box.root(DB)
    try:
        with conn.cursor() as cur:
            timings = []
            for _ in range(runs):
                started = time.monotonic()
                cur.execute(sql)
                cur.fetchall()
                timings.append(time.monotonic() - started)
            return timings
    finally:
        conn.close()


def run(rows=4_000_000, tokens=500_000, runs=5, keep=False, say=print):
    base = Path(tempfile.mkdtemp(prefix="dbr-bench-", dir="/tmp"))
    box = Sandbox(base)
    figures = {"rows": rows, "tokens": tokens, "runs": runs}
    try:
        (base / "tmp").mkdir()
        # Its own tmpdir: INSERT ... SELECT from the same table goes through a temporary table.
        box.start(extra_args=(*FAST_LOAD, "--tmpdir=%s" % (base / "tmp")), timeout=60)
        say("server %s (socket %s)" % (box.sql("SELECT VERSION()")[0][0], box.socket))
        started = time.monotonic()
        create_tables(box)
        fill_outbox(box, rows, say)
        fill_tokens(box, tokens, say)
        box.sql("ANALYZE TABLE outbox, refresh_tokens", DB)
        figures["load_seconds"] = round(time.monotonic() - started, 1)
        figures["outbox_rows"] = box.sql("SELECT COUNT(*) FROM outbox", DB)[0][0]
        say("loaded %d outbox rows and %d tokens in %.0fs" % (figures["outbox_rows"], tokens, figures["load_seconds"]))

        params = dict(login_user="root", login_password="", login_unix_socket=box.socket, connect_timeout=10)
        from ansible.module_utils.dbrelease.db import connect

        def timed_gather(exact_limit):
            timings, result = [], None
            for _ in range(runs):
                started = time.monotonic()
                conn = connect(params)
                try:
                    result = gather(conn, DB, "outbox", "refresh_tokens", 15, exact_limit, 30)
                finally:
                    conn.close()
                timings.append(time.monotonic() - started)
            return {"median": round(statistics.median(timings), 4), "max": round(max(timings), 4),
                    "min": round(min(timings), 4)}, result

        connects = []
        for _ in range(runs):
            started = time.monotonic()
            connect(params).close()
            connects.append(time.monotonic() - started)
        figures["connect_seconds"] = {"median": round(statistics.median(connects), 4)}
        # As the role runs it by default (verify_exact_count_limit: 200000, so both totals are estimated here).
        figures["outbox_stats_seconds"], result = timed_gather(200_000)
        # For comparison: exact totals forced (COUNT(*) over every delivered event and every token).
        figures["outbox_stats_exact_totals_seconds"], _ = timed_gather(10**12)
        figures["outbox_stats_result"] = {"outbox": result["outbox"], "refresh_tokens": result["refresh_tokens"]}

        naive = time_query(box, "SELECT status, COUNT(*) FROM outbox GROUP BY status", max(1, min(runs, 3)))
        figures["runbook_group_by_seconds"] = {"median": round(statistics.median(naive), 3),
                                               "max": round(max(naive), 3)}

        plans = {}
        # The queries the module plans for the example's outbox above exact_count_limit rows (the other templates
        # serve other outbox shapes; the exact totals are skipped at this size).
        names = {"status": "`status`", "created": "`created_at`", "delivered": "`delivered_at`",
                 "revoked": "`revoked`", "revoked_at": "`revoked_at`"}
        planned = {"outbox": ("count_status", "oldest_status", "delivered_recent", "status_recent"),
                   "refresh_tokens": ("revoked", "revoked_recent")}
        for table, queries in (("outbox", OUTBOX_QUERIES), ("refresh_tokens", TOKEN_QUERIES)):
            for name in planned[table]:
                sql = queries[name].format(t="`%s`" % table, **names)
                args = {"count_status": ["pending"], "oldest_status": ["pending"], "delivered_recent": [15],
                        "status_recent": ["failed", 15], "revoked_recent": [15]}.get(name)
                plan = explain(box, sql, args)
                plans["%s.%s" % (table, name)] = [{k: row.get(k) for k in ("type", "key", "rows", "Extra")}
                                                  for row in plan]
                conn = box.root(DB)
                try:
                    with conn.cursor() as cur:
                        took = []
                        for _ in range(runs):
                            started = time.monotonic()
                            cur.execute(sql, args)
                            cur.fetchall()
                            took.append(time.monotonic() - started)
                finally:
                    conn.close()
                plans["%s.%s" % (table, name)][0]["ms"] = round(statistics.median(took) * 1000, 2)
        figures["explain"] = plans
        return figures
    finally:
        if keep:
            say("kept the server: %s" % base)
        else:
            box.destroy()
            shutil.rmtree(base, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000, help="outbox rows (default 4,000,000)")
    parser.add_argument("--tokens", type=int, default=500_000, help="refresh_tokens rows (default 500,000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of outbox_stats (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the server running afterwards")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    say = (lambda *_: None) if args.json else (lambda msg: print(msg, flush=True))
    figures = run(args.rows, args.tokens, args.runs, args.keep, say)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
        return 0
    lines = report_lines(figures)
    print("\n" + "\n".join(lines))
    if not args.no_docs:
        write_section("verify", "\n".join([
            "## Verification on a large outbox (`scripts/bench_verify.py`)", "",
            "%s. Command: `make bench` (= `.venv/bin/python scripts/bench_verify.py --rows %d --tokens %d --runs %d`);"
            " data loaded in %.0f s." % (measured_on(load_before), args.rows, args.tokens, args.runs,
                                          figures["load_seconds"]),
            "", "```"] + lines + ["```"]))
    return 0


def report_lines(figures) -> list[str]:
    lines = []
    t = figures["outbox_stats_seconds"]
    lines.append("outbox_stats (connection included) on %d outbox rows, %d refresh tokens: median %.1f ms, max %.1f ms "
                 "over %d runs" % (figures["outbox_rows"], figures["tokens"], t["median"] * 1000, t["max"] * 1000,
                                   figures["runs"]))
    lines.append("  of which opening the connection (PyMySQL, unix socket): median %.1f ms"
                 % (figures["connect_seconds"]["median"] * 1000))
    t = figures["outbox_stats_exact_totals_seconds"]
    lines.append("outbox_stats with exact totals forced (verify_exact_count_limit above the row count): "
                 "median %.1f ms, max %.1f ms" % (t["median"] * 1000, t["max"] * 1000))
    lines.append("runbook's SELECT status, COUNT(*) ... GROUP BY status, for comparison: median %.2f s"
                 % figures["runbook_group_by_seconds"]["median"])
    lines.append("")
    lines.append("EXPLAIN (type, key, rows, Extra) and median time of each query:")
    for name, plan in figures["explain"].items():
        for row in plan:
            lines.append("  %-30s %-6s %-27s %-7s %-29s %s ms" % (
                name, row["type"], row["key"], row["rows"], row["Extra"], row.get("ms", "")))
    outbox = figures["outbox_stats_result"]["outbox"]
    lines.append("")
    lines.append("numbers: %s; oldest pending %.1fs; delivered in 15 min %d; failed/dead in 15 min %d/%d"
                 % (outbox["counts"], outbox["oldest_pending_age_seconds"] or 0, outbox["delivered_recent"],
                    outbox["failed_recent"], outbox["dead_recent"]))
    return lines

if __name__ == "__main__":
    sys.exit(main())
