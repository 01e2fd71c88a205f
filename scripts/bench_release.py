#!/usr/bin/env python3
"""Controller benchmark: the CPU-seconds and the tasks of one full demo release (release.yml, inventories/local).

Each run is a real first release of the demo (`make demo`): the example database is dropped and loaded again, the
artifacts, backups and the app repository are removed, so every run does the same work (preflight, lock,
maintenance on through the example backend's flag file, backup with its restore test, grants, schema, migrate with
npm, verify with the smoke endpoints, tag pushed to a bare remote, maintenance off, report).

    .venv/bin/python scripts/bench_release.py                   # 5 runs, medians; updates docs/benchmarks.md
    .venv/bin/python scripts/bench_release.py --runs 3 --root /tmp/other-checkout --no-docs   # another checkout
    .venv/bin/python scripts/bench_release.py --strategy mitogen_linear   # compare a strategy

CPU-seconds are user+sys of the ansible-playbook process tree (its workers, module processes and the clients
they run, everything it waits for), read with getrusage(RUSAGE_CHILDREN) around the run: wall time on a shared
machine says little, CPU-seconds say what the controller spent. The MariaDB server and the example backend are
not children of ansible-playbook and are not counted. Tasks are the recap's ok + failed (executed) and skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)"
                   r"\s+ignored=(?P<ignored>\d+)", re.M)
PHASES_OK = ("ok", "skipped")


def load_demo(root: Path):
    """The checkout's own scripts/demo.py (its setup, its example data, its app), imported as a module."""
    sys.path.insert(0, str(root / "scripts"))
    spec = importlib.util.spec_from_file_location("dbrelease_demo_%d" % abs(hash(str(root))), root / "scripts/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_recap(text: str) -> dict:
    """Pure: the PLAY RECAP counters per host."""
    return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(text)}


def reset(demo, root: Path, base: Path):
    """Back to the state before the first release: the example data only, no artifacts, backups or tag."""
    box = demo.Sandbox(base / "mariadb")
    box.sql(["DROP DATABASE IF EXISTS `%s`" % demo.DB_NAME, "DROP DATABASE IF EXISTS `dbrelease`"])
    demo.load_example(box)
    for path in (root / "artifacts" / "demo-db", base / "backups", base / "app-repo", base / "app-remote.git"):
        shutil.rmtree(path, ignore_errors=True)
    (base / "maintenance.flag").unlink(missing_ok=True)
    demo.prepare_repo(base)


def run_once(demo, root: Path, secrets_path: Path, app_port, strategy: str, extra_env: dict) -> dict:
    version = demo.VERSION
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "release.yml", "-i", "inventories/local",
           "-e", "@%s" % secrets_path, "-e", "release_version=%s" % version, "-e", "tag_git_remote=origin"]
    if app_port:
        cmd += ["-e", "demo_app_port=%d" % app_port]
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    env.update(extra_env)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    recap = parse_recap(proc.stdout).get("demo-db", {})
    record_path = root / "artifacts" / "demo-db" / version / "release.json"
    phases = json.loads(record_path.read_text()).get("phases", {}) if record_path.exists() else {}
    not_ok = {k: v.get("status") for k, v in phases.items() if v.get("status") not in PHASES_OK}
    return {"cpu_seconds": round(user + system, 2), "user": round(user, 2), "sys": round(system, 2),
            "wall_seconds": round(wall, 1), "load_before": round(load, 2), "returncode": proc.returncode,
            "tasks_executed": recap.get("ok", 0) + recap.get("failed", 0), "tasks_skipped": recap.get("skipped", 0),
            "recap": recap, "not_ok": not_ok, "output": proc.stdout[-4000:] + proc.stderr[-4000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strategy", default="", help="Ansible strategy (default linear)")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for ansible-playbook")
    parser.add_argument("--json", help="also write the runs to this file")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--stop", action="store_true", help="stop the demo server and backend afterwards")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    demo = load_demo(root)
    base = root / ".demo"
    extra_env = dict(item.split("=", 1) for item in args.env)
    secrets_path = demo.setup(base)
    app_port = demo.start_app(base)
    runs = []
    try:
        for i in range(args.runs):
            reset(demo, root, base)
            result = run_once(demo, root, secrets_path, app_port, args.strategy, extra_env)
            runs.append(result)
            print("run %d: CPU %.2f s (user %.2f, sys %.2f), wall %.1f s, tasks %d executed + %d skipped, load %.2f,"
                  " rc=%d%s" % (i + 1, result["cpu_seconds"], result["user"], result["sys"], result["wall_seconds"],
                                result["tasks_executed"], result["tasks_skipped"], result["load_before"],
                                result["returncode"], "; not ok: %s" % result["not_ok"] if result["not_ok"] else ""),
                  flush=True)
            if result["returncode"] != 0:
                print(result["output"])
    finally:
        if args.stop:
            demo.stop_app(base)
            demo.Sandbox(base / "mariadb").stop()
    summary = {k: statistics.median(r[k] for r in runs) for k in
               ("cpu_seconds", "user", "sys", "wall_seconds", "tasks_executed", "tasks_skipped", "load_before")}
    print("median of %d: CPU %.2f s, wall %.1f s, tasks %d executed + %d skipped, load %.2f" % (
        len(runs), summary["cpu_seconds"], summary["wall_seconds"], summary["tasks_executed"],
        summary["tasks_skipped"], summary["load_before"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"root": str(root), "strategy": args.strategy or "linear",
                                               "median": summary, "runs": [{k: v for k, v in r.items()
                                                                            if k != "output"} for r in runs]},
                                              indent=2) + "\n")
    ok = all(r["returncode"] == 0 and not r["not_ok"] for r in runs)
    if not args.no_docs and root == HERE and not args.strategy and ok:
        sys.path.insert(0, str(HERE / "scripts"))
        from benchmarks_doc import measured_on, write_section
        write_section("release", "\n".join([
            "## One release on the controller (`scripts/bench_release.py`)", "",
            "%s. Command: `.venv/bin/python scripts/bench_release.py --runs %d`: a real first release of the demo"
            " each time; CPU-seconds are user+sys of the ansible-playbook process tree." % (
                measured_on(summary["load_before"]), len(runs)), "",
            "| runs | controller CPU (median) | user | sys | tasks executed | tasks skipped | wall |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            "| %d | %.2f s | %.2f s | %.2f s | %d | %d | %.1f s |" % (
                len(runs), summary["cpu_seconds"], summary["user"], summary["sys"], summary["tasks_executed"],
                summary["tasks_skipped"], summary["wall_seconds"])]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
