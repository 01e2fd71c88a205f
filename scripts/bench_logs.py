#!/usr/bin/env python3
"""Benchmark: how fast the watch reads logs (log_scan's scan_file with the verify role's default patterns).

Writes, under a temporary directory, a MariaDB error log and an application log of --size-mb MiB each, made of
realistic lines (mostly notes and info lines, with aborted connections, access denials, deadlocks, replication
errors, warnings, JSON and plain-text application errors spread through them), then times, per log:

- `scan_file` from the start of the file, as a watch poll reads what was written since its mark (exactly what the
  log_scan module runs on the database host), CPU seconds and wall seconds, median of --runs;
- for comparison, every pattern tried on every line (`classify` per line: the straightforward way);
- for comparison, `grep -c -E` with the patterns' alternatives joined (counting by hand, one pattern at a time, as
  the runbook's "revisar logs" would).

Checks that the three agree on the number of matching lines, prints the figures, and updates its section of
docs/benchmarks.md. No server is needed: the reading is file I/O and matching. The files are removed at the end.

    .venv/bin/python scripts/bench_logs.py                  # 2 x 64 MiB (log_scan's max_bytes per read)
    .venv/bin/python scripts/bench_logs.py --size-mb 8 --runs 1 --no-doc
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from ansible.module_utils.dbrelease.logscan import classify, compile_patterns, mark_file, scan_file  # noqa: E402
from benchmarks_doc import measured_on, write_section  # noqa: E402

DEFAULTS = ROOT / "roles/verify/defaults/main.yml"

SERVER_LINES = [
    (900, "2026-12-01 10:{m:02d}:{s:02d} 0 [Note] InnoDB: Buffer pool(s) load completed at 261201 10:{m:02d}:{s:02d}"),
    (400, "2026-12-01 10:{m:02d}:{s:02d} {t} [Note] Detected table cache mutex contention at instance 1: 30% waits."),
    (60, "2026-12-01 10:{m:02d}:{s:02d} {t} [Warning] Aborted connection {t} to db: 'shop' user: 'app' host: "
         "'10.0.3.{h}' (Got an error reading communication packets)"),
    (15, "2026-12-01 10:{m:02d}:{s:02d} {t} [Warning] Access denied for user 'report'@'10.0.3.{h}' (using password: "
         "YES)"),
    (10, "2026-12-01 10:{m:02d}:{s:02d} {t} [Warning] IP address '10.0.3.{h}' could not be resolved: Name or service "
         "not known"),
    (3, "2026-12-01 10:{m:02d}:{s:02d} {t} [Note] InnoDB: Transactions deadlock detected, dumping detailed "
        "information."),
    (2, "2026-12-01 10:{m:02d}:{s:02d} {t} [ERROR] Slave SQL: Error 'Duplicate entry '{t}' for key 'PRIMARY'' on "
        "query. Default database: 'shop'. Internal MariaDB error code: 1062"),
    (2, "2026-12-01 10:{m:02d}:{s:02d} {t} [ERROR] mariadbd: Table './shop/orders' is marked as crashed and should "
        "be repaired"),
]
APP_LINES = [
    (800, '{{"level":"info","time":"2026-12-01T10:{m:02d}:{s:02d}Z","msg":"GET /api/orders/{t} 200","ms":{h}}}'),
    (500, "2026-12-01T10:{m:02d}:{s:02d}Z INFO relay: delivered event {t} to orders-service in {h} ms"),
    (30, '{{"level":"warn","time":"2026-12-01T10:{m:02d}:{s:02d}Z","msg":"slow query","ms":{t}}}'),
    (20, "2026-12-01T10:{m:02d}:{s:02d}Z WARN pool: waited {h} ms for a connection"),
    (10, '{{"level":"error","time":"2026-12-01T10:{m:02d}:{s:02d}Z","msg":"outbox relay failed","err":"ECONNRESET"}}'),
    (5, "2026-12-01T10:{m:02d}:{s:02d}Z ERROR relay: cannot deliver event {t}: upstream answered 503"),
    (2, "Error: ER_LOCK_DEADLOCK: Deadlock found when trying to get lock; try restarting transaction"),
    (2, "TypeError: Cannot read properties of undefined (reading 'id')"),
]


def write_log(path, lines, size, seed):
    """`size` bytes (whole lines) drawn from `lines` by their weights."""
    rng = random.Random(seed)
    weights = [w for w, _ in lines]
    templates = [t for _, t in lines]
    written = 0
    with open(path, "w") as handle:
        while written < size:
            batch = []
            for template in rng.choices(templates, weights, k=2000):
                batch.append(template.format(m=rng.randrange(60), s=rng.randrange(60), t=rng.randrange(1, 99999),
                                             h=rng.randrange(1, 255)) + "\n")
            text = "".join(batch)
            handle.write(text)
            written += len(text)
    return os.path.getsize(path)


def timed(fn, runs):
    """(median cpu s, median wall s, last result) over `runs` calls."""
    cpu, wall, result = [], [], None
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), result


def per_line(path, compiled, kind):
    counts = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name = classify(line.rstrip("\n"), compiled, kind)
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts


def grep_count(path, patterns, kind):
    """Lines matched by any pattern that applies to `kind`, with GNU grep (-P: the patterns are Python/PCRE)."""
    parts = []
    for item in patterns:
        if item.get("applies_to", "all") in ("all", kind):
            regex = item["regex"]
            parts.extend(regex if isinstance(regex, list) else [regex])
    proc = subprocess.run(["grep", "-c", "-P", "|".join("(?:%s)" % p for p in parts), str(path)],
                          capture_output=True, text=True)
    return int(proc.stdout.strip() or 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=64, help="size of each log (default 64: one full read)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    patterns = yaml.safe_load(DEFAULTS.read_text())["verify_log_patterns"]
    compiled = compile_patterns(patterns)
    work = Path(tempfile.mkdtemp(prefix="dbr-bench-logs-"))
    rows = []
    ok = True
    try:
        for kind, lines, name in (("server", SERVER_LINES, "mariadb.err"), ("application", APP_LINES, "app.log")):
            path = work / name
            size = write_log(path, lines, int(args.size_mb * (1 << 20)), seed=len(name))
            mark = dict(mark_file(str(path)), offset=0)  # a mark at the start: the whole file is "new"
            cpu, wall, scanned = timed(lambda p=path, m=mark, k=kind, n=size: scan_file(
                str(p), m, compiled, k, max_bytes=n + 1), args.runs)
            line_cpu, _line_wall, by_line = timed(lambda p=path, k=kind: per_line(p, compiled, k), 1)
            _g, grep_wall, grepped = timed(lambda p=path, k=kind: grep_count(p, patterns, k), 1)
            found = sum(scanned["new_counts"].values())
            agree = scanned["new_counts"] == by_line and found == grepped
            ok = ok and agree and scanned["bytes_read"] == size
            rows.append({"kind": kind, "mib": size / (1 << 20), "lines": scanned["lines_read"], "matched": found,
                         "cpu": cpu, "wall": wall, "line_cpu": line_cpu, "grep_wall": grep_wall, "agree": agree,
                         "counts": scanned["new_counts"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = ["| log | MiB | lines | lines matched | scan_file CPU s | MiB per CPU-s | wall s | every pattern on every "
             "line, CPU s | grep -cP, wall s | counts agree |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        table.append("| %s | %.0f | %d | %d | %.2f | %.0f | %.2f | %.2f | %.2f | %s |" % (
            r["kind"], r["mib"], r["lines"], r["matched"], r["cpu"], r["mib"] / max(r["cpu"], 1e-9), r["wall"],
            r["line_cpu"], r["grep_wall"], "yes" if r["agree"] else "NO"))
    counts = "; ".join("%s: %s" % (r["kind"], ", ".join("%s %d" % kv for kv in sorted(r["counts"].items())))
                       for r in rows)
    command = ".venv/bin/python scripts/bench_logs.py --size-mb %g --runs %d" % (args.size_mb, args.runs)
    body = "\n".join([
        "## Log reading during the watch (`scripts/bench_logs.py`)",
        "",
        "%s. Command: `make bench` (= `%s`)." % (measured_on(load), command),
        "",
        "`scan_file` (what `log_scan` runs on the database host at each watch poll) with the verify role's default "
        "`verify_log_patterns`, reading each log whole from a mark at its start; median of %d runs. A watch poll "
        "reads at most `verify_log_max_bytes` (64 MiB) per log." % args.runs,
        "",
        *table,
        "",
        "Counts: %s." % counts,
    ])
    print(body)
    if not ok:
        print("the three ways of counting disagree, or not every byte was read", file=sys.stderr)
    if not args.no_doc:
        write_section("logs", body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
