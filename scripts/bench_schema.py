#!/usr/bin/env python3
"""Benchmark the schema dry-run: the example DDL planned against a 200-table schema on a throwaway MariaDB.

Builds the example application's pre-release schema plus N generated tables (columns of several types, secondary
and unique indexes, foreign keys to `users` on a third of them, a view for every tenth table), then times
`schema_apply` in check mode (copy into a temporary schema, apply, diff, drop) with the example DDL.

    .venv/bin/python scripts/bench_schema.py [--tables 200] [--runs 3] [--limit 5.0] [--json]

Exit status 1 when the median run exceeds --limit seconds (the issue's target is 5 s).
"""

from __future__ import annotations

import argparse
import json
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
from benchmarks_doc import write_section  # noqa: E402
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=200, help="tables in the schema in all (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=5.0, help="seconds allowed for the median run")
    parser.add_argument("--copy", choices=("referenced", "full"), default="referenced",
                        help="what the temporary copy holds (schema_plan_copy); default referenced")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    # `make bench` passes the same extra arguments to every benchmark: ignore the ones meant for others.
    args, _ = parser.parse_known_args(argv)

    box = Sandbox(tempfile.mkdtemp(prefix="dbr-bench-", dir="/tmp"))
    password = "bench-" + uuid.uuid4().hex
    box.start()
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
        leftovers = box.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE "
                            "'%dbrelease_plan%'")[0][0]
        report = {
            "tables": int(counts.get("BASE TABLE", 0)), "views": int(counts.get("VIEW", 0)),
            "ddl": str(EXAMPLE_DDL.relative_to(ROOT)), "runs": [round(t, 3) for t in timings],
            "median_seconds": round(statistics.median(timings), 3), "limit_seconds": args.limit,
            "plan": plan, "temp_schemas_left": int(leftovers), "copy": args.copy, "copied": copied,
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
    ok = report["median_seconds"] <= args.limit and report["temp_schemas_left"] == 0
    if not args.no_docs:
        update_docs(report, ok)
    return 0 if ok else 1


def update_docs(report, ok):
    """Replace this benchmark's section of docs/benchmarks.md, keeping the others."""
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
            "met" if ok else "MISSED", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
    ]))

if __name__ == "__main__":
    sys.exit(main())
