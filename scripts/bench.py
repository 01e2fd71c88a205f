#!/usr/bin/env python3
"""`make bench`: runs every benchmark (scripts/bench_*.py) in turn and prints their figures.

Each benchmark starts its own throwaway MariaDB servers, prints its figures and the ratios against the targets
in the issues, and updates its own section of docs/benchmarks.md. Pass names to run only some:
    scripts/bench.py backup schema
Extra arguments after `--` go to every benchmark (e.g. `-- --size-mb 200` for a quick run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("schema", "ddl", "verify", "logs", "backup", "vault", "fleet")


def main(argv) -> int:
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    available = {p.stem[len("bench_"):]: p for p in sorted((ROOT / "scripts").glob("bench_*.py"))}
    names = argv or [n for n in ORDER if n in available] + sorted(set(available) - set(ORDER))
    failures = []
    for name in names:
        if name not in available:
            print("no benchmark named %r (have: %s)" % (name, ", ".join(sorted(available))))
            return 2
        print("\n===== bench %s =====" % name, flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(available[name]), *extra], cwd=ROOT)
        print("===== bench %s: exit %d, %.1f s =====" % (name, code, time.monotonic() - started), flush=True)
        if code:
            failures.append(name)
    if failures:
        print("benchmarks that failed or missed a target: %s" % ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
