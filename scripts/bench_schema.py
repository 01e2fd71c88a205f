#!/usr/bin/env python3
"""Benchmark the schema dry-run: the example DDL planned against a 200-table schema on a throwaway MariaDB, and
the time the data checks add on a table of 2 M rows.

Builds the example application's pre-release schema plus N generated tables (columns of several types, secondary
and unique indexes, foreign keys to `users` on a third of them, a view for every tenth table), then times
`schema_apply` in check mode (copy into a temporary schema, apply, diff, drop) with the example DDL.

Then fills `big_orders` with --rows rows (2 M) and plans a release that the data checks must verify against every
row: a column made NOT NULL and shortened, a new CHECK, a character set narrowed to latin1, a new foreign key
(over clean data, so the plan passes), alternately with the data checks and with them made a no-op: the time the
checks add must stay within --checks-ratio (2) times the run without them (the issue's words). The ratio of the
whole run with them to the run without them is printed beside it.

    .venv/bin/python scripts/bench_schema.py [--tables 200] [--runs 3] [--limit 5.0] [--rows 2000000] [--json]

Exit status 1 when the median run exceeds --limit seconds (the issue's target is 5 s) or the data checks miss
their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "library"))

import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

import schema_apply  # noqa: E402
from ansible.module_utils.dbrelease.sqlsplit import split_sql  # noqa: E402
from benchmarks_doc import measured_on, write_section  # noqa: E402
from sandbox_db import Sandbox  # noqa: E402

EXAMPLE_DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"


def generated_tables(count):
    stmts = []
    for i in range(count):
        fk = ""
        if i % 3 == 0:
            fk = (",\n  KEY idx_user (user_id),\n"
                  "  CONSTRAINT fk_gen_%03d_user FOREIGN KEY (user_id) REFERENCES users (id)" % i)
        stmts.append(
            "CREATE TABLE gen_%03d (\n"
            "  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,\n"
            "  user_id BIGINT UNSIGNED NOT NULL,\n"
            "  code VARCHAR(64) NOT NULL,\n"
            "  status ENUM('new','done','failed') NOT NULL DEFAULT 'new',\n"
            "  amount DECIMAL(12,2) NOT NULL DEFAULT 0,\n"
            "  note TEXT NULL,\n"
            "  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n"
            "  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,\n"
            "  PRIMARY KEY (id),\n"
            "  UNIQUE KEY uq_code (code),\n"
            "  KEY idx_status_created (status, created_at)%s\n"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" % (i, fk))
        if i % 10 == 0:
            stmts.append("CREATE OR REPLACE VIEW gen_%03d_summary AS SELECT status, COUNT(*) AS n FROM gen_%03d "
                         "GROUP BY status" % (i, i))
    return stmts


DATA_CHECK_DDL = """\
ALTER TABLE big_orders MODIFY note VARCHAR(64) NOT NULL;
ALTER TABLE big_orders ADD CONSTRAINT chk_big_amount CHECK (amount >= 0);
ALTER TABLE big_orders MODIFY code VARCHAR(32) CHARACTER SET latin1 NOT NULL;
ALTER TABLE big_orders ADD CONSTRAINT fk_big_orders_user FOREIGN KEY (user_id) REFERENCES users (id);
"""


def fill_big_orders(box, rows):
    """`big_orders`: `rows` rows of clean data (every check passes), from the Sequence engine."""
    box.sql(["INSERT IGNORE INTO users (id, email, name) VALUES (1, 'a@bench.test', 'A'), (2, 'b@bench.test', 'B')",
             "CREATE TABLE big_orders (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
             "user_id BIGINT UNSIGNED NOT NULL, note VARCHAR(100) NULL, amount INT NOT NULL, "
             "code VARCHAR(32) CHARACTER SET utf8mb4 NOT NULL, created_at DATETIME NOT NULL DEFAULT "
             "CURRENT_TIMESTAMP, KEY idx_user (user_id)) ENGINE=InnoDB",
             "INSERT INTO big_orders (user_id, note, amount, code) SELECT 1 + seq %% 2, CONCAT('order note ', seq), "
             "seq %% 1000, MD5(seq) FROM seq_1_to_%d" % rows], database="bench")


def bench_data_checks(params, runs):
    """(plan seconds without the data checks, with them, checks found, the runs of each): the same check-mode run
    over big_orders, alternately with the data checks and with them made a no-op; medians of `runs`."""
    p = dict(params, ddl_files=[], ddl_names=["data_checks.sql"], ddl_contents=[DATA_CHECK_DDL],
             allow_destructive=True)
    real_evaluate = schema_apply.datachecks.evaluate
    without, with_checks, found = [], [], []
    for _ in range(runs):
        schema_apply.datachecks.evaluate = lambda conn, db, checks, mode, **kw: checks
        try:
            started = time.perf_counter()
            schema_apply.run(p, check_mode=True)
            without.append(round(time.perf_counter() - started, 3))
        finally:
            schema_apply.datachecks.evaluate = real_evaluate
        started = time.perf_counter()
        result = schema_apply.run(p, check_mode=True)
        with_checks.append(round(time.perf_counter() - started, 3))
        found = [(c["check"], c["rows"]) for c in result["data_checks"]]
    return statistics.median(without), statistics.median(with_checks), found, without, with_checks


def bare_scan_seconds(box, runs):
    """The median time of one `SELECT COUNT(*)` of big_orders on one connection: what reading the table once costs
    on this machine, the floor of any exact check over columns no index holds."""
    conn = box.root("bench")
    try:
        timings = []
        with conn.cursor() as cur:
            for _ in range(runs):
                started = time.perf_counter()
                cur.execute("SELECT COUNT(*) FROM big_orders")
                cur.fetchall()
                timings.append(time.perf_counter() - started)
        return round(statistics.median(timings), 3)
    finally:
        conn.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=200, help="tables in the schema in all (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=5.0, help="seconds allowed for the median run")
    parser.add_argument("--copy", choices=("referenced", "full"), default="referenced",
                        help="what the temporary copy holds (schema_plan_copy); default referenced")
    parser.add_argument("--rows", type=int, default=2000000, help="rows of big_orders for the data checks (2 M)")
    parser.add_argument("--checks-ratio", type=float, default=2.0,
                        help="the time the data checks add, at most this many times the plan without them")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    # `make bench` passes the same extra arguments to every benchmark: ignore the ones meant for others.
    args, _ = parser.parse_known_args(argv)

    box = Sandbox(tempfile.mkdtemp(prefix="dbr-bench-", dir="/tmp"))
    password = "bench-" + uuid.uuid4().hex
    load_before = os.getloadavg()[0]
    # A buffer pool that holds big_orders, as a production server's holds its hot tables.
    box.start(extra_args=["--innodb-buffer-pool-size=512M"])
    try:
        box.create_admin("db_admin", password)
        box.sql("CREATE DATABASE bench")
        pre = [s["sql"] for s in split_sql(PRE_RELEASE.read_text())]
        box.sql(pre, database="bench")
        base_tables = len(box.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bench' "
                                  "AND TABLE_TYPE = 'BASE TABLE'"))
        box.sql(generated_tables(args.tables - base_tables), database="bench")
        counts = dict(box.sql("SELECT TABLE_TYPE, COUNT(*) FROM information_schema.TABLES "
                              "WHERE TABLE_SCHEMA = 'bench' GROUP BY TABLE_TYPE"))
        params = dict(login_user="db_admin", login_password=password, login_unix_socket=box.socket,
                      login_host="127.0.0.1", login_port=box.port, connect_timeout=10, db="bench",
                      ddl_files=[str(EXAMPLE_DDL)], ddl_names=[], ddl_contents=[], environment="staging",
                      allow_destructive=False, allow_blocking_alter=False, large_table_bytes=1 << 30,
                      require_approved_plan=False, approved_plan=None, plan_override=False,
                      temp_schema_prefix="__dbrelease_plan_", plan_copy=args.copy)
        timings, plan = [], None
        for _ in range(args.runs):
            started = time.perf_counter()
            result = schema_apply.run(params, check_mode=True)
            timings.append(time.perf_counter() - started)
            plan = [(c["object"], c["action"]) for c in result["plan"]]
            copied = result["plan_copied"]
        fill_started = time.perf_counter()
        fill_big_orders(box, args.rows)
        fill_seconds = time.perf_counter() - fill_started
        plan_s, with_s, found, plan_runs, check_runs = bench_data_checks(params, args.runs)
        scan_s = bare_scan_seconds(box, args.runs)
        leftovers = box.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE "
                            "'%dbrelease_plan%'")[0][0]
        report = {
            "tables": int(counts.get("BASE TABLE", 0)), "views": int(counts.get("VIEW", 0)),
            "ddl": str(EXAMPLE_DDL.relative_to(ROOT)), "runs": [round(t, 3) for t in timings],
            "median_seconds": round(statistics.median(timings), 3), "limit_seconds": args.limit,
            "plan": plan, "temp_schemas_left": int(leftovers), "copy": args.copy, "copied": copied,
            "data_checks": {"rows": args.rows, "plan_seconds": plan_s, "with_checks_seconds": with_s,
                            "ratio": round(with_s / plan_s, 2) if plan_s else None,
                            "added_seconds": round(with_s - plan_s, 3),
                            "added_ratio": round((with_s - plan_s) / plan_s, 2) if plan_s else None,
                            "bare_scan_seconds": scan_s,
                            "limit_ratio": args.checks_ratio, "checks": found, "plan_runs": plan_runs,
                            "check_runs": check_runs, "fill_seconds": round(fill_seconds, 1)},
            "load_before": load_before,
        }
    finally:
        box.destroy()
    if args.json:
        print(json.dumps(report))
    else:
        print("schema dry-run of %s against %d tables and %d views: median %.2f s over %d runs (%s), limit %.1f s"
              % (report["ddl"], report["tables"], report["views"], report["median_seconds"], args.runs,
                 ", ".join("%.2f" % t for t in report["runs"]), args.limit))
        print("plan: %s" % ", ".join("%s %s" % (a, o) for o, a in report["plan"]))
        print("temporary copy (%s): %s" % (args.copy, ", ".join("%d %s" % (n, k) for k, n in copied.items())))
        dc = report["data_checks"]
        print("data checks on %d rows: dry-run %.2f s without them, %.2f s with them (%s)"
              % (dc["rows"], dc["plan_seconds"], dc["with_checks_seconds"],
                 ", ".join("%s=%s" % c for c in dc["checks"])))
        print("the checks add %.2f s: %.2fx the dry-run without them, limit %.1fx (the whole run with them: %.2fx); "
              "a bare COUNT(*) of the table takes %.2f s"
              % (dc["added_seconds"], dc["added_ratio"], dc["limit_ratio"], dc["ratio"], dc["bare_scan_seconds"]))
    dc = report["data_checks"]
    checks_ok = (dc["added_ratio"] is not None and dc["added_ratio"] <= dc["limit_ratio"]
                 and all(r == 0 for _c, r in dc["checks"]))
    ok = report["median_seconds"] <= args.limit and report["temp_schemas_left"] == 0 and checks_ok
    if not args.no_docs:
        update_docs(report, checks_ok)
    return 0 if ok else 1


def update_docs(report, checks_ok):
    """Replace this benchmark's section of docs/benchmarks.md, keeping the others."""
    dc = report["data_checks"]
    write_section("schema", "\n".join([
        "## Schema dry-run (`scripts/bench_schema.py`)",
        "",
        "`schema_apply` in check mode with `%s` against %d tables and %d views on a throwaway MariaDB "
        "(copy into a temporary schema, apply, diff, drop; `--copy %s`, the copy held %s)." % (
            report["ddl"], report["tables"], report["views"], report["copy"],
            ", ".join("%d %s" % (n, k) for k, n in report["copied"].items())),
        "",
        "| median | runs | target | result | measured |",
        "| --- | --- | --- | --- | --- |",
        "| %.2f s | %s | < %.0f s | %s | %s |" % (
            report["median_seconds"], ", ".join("%.2f" % t for t in report["runs"]), report["limit_seconds"],
            "met" if report["median_seconds"] <= report["limit_seconds"] else "MISSED",
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        "",
        "### Data checks on %s rows" % "{:,}".format(report["data_checks"]["rows"]),
        "",
        "The check-mode run of a release over `big_orders` (%s rows, clean data): a column made NOT NULL and "
        "shortened, a new CHECK, a character set narrowed to latin1, a new foreign key; alternately with the data "
        "checks and with them made a no-op (the plan without them: copy, statements on the copy, diff). The "
        "checks count the offending rows against the real table: one scan for the row-level ones (two key ranges "
        "on two connections), the foreign key by its index's distinct values; they start as soon as the last "
        "statement ran on the copy. Target: the time they add within %.0fx the run without them. Medians of %d "
        "runs; the server's buffer pool (512 MiB) holds the table." % (
            "{:,}".format(report["data_checks"]["rows"]), report["data_checks"]["limit_ratio"], len(report["runs"])),
        "",
        "| without the checks | with them | what they add | target | result | with / without | a bare COUNT(*) "
        "| checks found |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| %.2f s (%s) | %.2f s (%s) | %.2f s = %.2fx the run without them | <= %.0fx | %s | %.2fx | %.2f s | %s |" % (
            report["data_checks"]["plan_seconds"], ", ".join("%.2f" % t for t in report["data_checks"]["plan_runs"]),
            report["data_checks"]["with_checks_seconds"],
            ", ".join("%.2f" % t for t in report["data_checks"]["check_runs"]),
            dc["added_seconds"], dc["added_ratio"] or 0, report["data_checks"]["limit_ratio"],
            "met" if checks_ok else "MISSED", report["data_checks"]["ratio"] or 0, dc["bare_scan_seconds"],
            ", ".join("%s: %s rows" % c for c in dc["checks"])),
        "",
        "The issue's words are \"the time the data checks add ... must stay within 2x the time of the plan without "
        "them\"; the target column reads them so (what the checks add, against the run without them). The ratio "
        "of the whole run with them to the run without them is shown beside it: the stricter reading, under which "
        "the checks could add at most one run without them. A bare COUNT(*) of the table, on one connection, is "
        "what reading the rows once costs here.",
        "",
        "What bounds the ratio: the checks read every row of the columns no index answers (here one scan of the "
        "table with four predicates, split over the two cores), while the dry-run without them, on a copy of the "
        "two tables the release names, is short; a slower plan (`--copy full`, a larger copy) or a server with "
        "more cores than this shared 2-core machine brings the ratio down. How they got here (a scan counting "
        "the rows breaking any check, the foreign key as an anti-join, key ranges in parallel) is in "
        "`docs/schema-plan.md`.",
        "",
        measured_on(report["load_before"]) + ". Command: `make bench` (= `.venv/bin/python scripts/bench_schema.py`).",
    ]))

if __name__ == "__main__":
    sys.exit(main())
