#!/usr/bin/env python3
"""Controller benchmark: the CPU-seconds and the tasks of one full demo release (release.yml, inventories/local).

Each run is a real first release of the demo (`make demo`): the example database is dropped and loaded again, the
artifacts, backups and the app repository are removed, so every run does the same work (preflight, lock,
maintenance on through the example backend's flag file, backup with its restore test, grants, schema, migrate with
npm, verify with the smoke endpoints, tag pushed to a bare remote, maintenance off, report).

    .venv/bin/python scripts/bench_release.py                   # 5 runs, medians; updates docs/benchmarks.md
    .venv/bin/python scripts/bench_release.py --runs 3 --root /tmp/other-checkout --no-docs   # another checkout
    .venv/bin/python scripts/bench_release.py --strategy mitogen_linear   # compare a strategy
    .venv/bin/python scripts/bench_release.py --runs 3 --before /tmp/old-checkout --also-strategy mitogen_linear

With --before (an older checkout, e.g. `git worktree add /tmp/old <commit>`) and --also-strategy, each round runs
every variant once, in turn (the old checkout, this one, this one with the other strategy), so that a machine whose
load changes during the benchmark weighs on all of them alike; the section in docs/benchmarks.md then shows each
variant's medians and the ratios to the old checkout (issue 12's target: at most half the CPU-seconds and half the
tasks). Mitogen's strategies (`mitogen_*`) are found in the installed `ansible_mitogen` package.

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


def strategy_env(strategy: str) -> dict:
    """The environment that selects an Ansible strategy: ANSIBLE_STRATEGY, and for Mitogen's strategies the
    directory of the installed ansible_mitogen package that holds them. {} for Ansible's default (linear)."""
    if not strategy or strategy == "linear":
        return {}
    env = {"ANSIBLE_STRATEGY": strategy}
    if strategy.startswith("mitogen"):
        spec = importlib.util.find_spec("ansible_mitogen")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("strategy %s: the mitogen package is not installed in this venv" % strategy)
        env["ANSIBLE_STRATEGY_PLUGINS"] = os.path.join(list(spec.submodule_search_locations)[0], "plugins",
                                                       "strategy")
    return env


def run_once(demo, root: Path, secrets_path: Path, app_port, strategy: str, extra_env: dict) -> dict:
    version = demo.VERSION
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "release.yml", "-i", "inventories/local",
           "-e", "@%s" % secrets_path, "-e", "release_version=%s" % version, "-e", "tag_git_remote=origin"]
    if app_port:
        cmd += ["-e", "demo_app_port=%d" % app_port]
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(strategy_env(strategy))
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


SUMMARY_KEYS = ("cpu_seconds", "user", "sys", "wall_seconds", "tasks_executed", "tasks_skipped", "load_before")


def summarise(runs: list[dict]) -> dict:
    """Pure: the medians of the runs."""
    return {k: statistics.median(r[k] for r in runs) for k in SUMMARY_KEYS}


def section_lines(variants: list[dict]) -> list[str]:
    """Pure: the table of docs/benchmarks.md's release section, one row per variant, with the ratios to the first
    variant when it is the older checkout (`before`), then the verdict on issue 12's targets."""
    before = next((v for v in variants if v["label"].startswith("before")), None)
    lines = ["| variant | runs | controller CPU (median) | user | sys | tasks executed | tasks skipped | wall |"
             " CPU vs before | tasks vs before |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    def ratio(v, key):
        if not before or v is before or not before["median"][key]:
            return "-"
        return "%.2fx" % (v["median"][key] / before["median"][key])

    for v in variants:
        m = v["median"]
        lines.append("| %s | %d | %.2f s | %.2f s | %.2f s | %d | %d | %.1f s | %s | %s |" % (
            v["label"], len(v["runs"]), m["cpu_seconds"], m["user"], m["sys"], m["tasks_executed"],
            m["tasks_skipped"], m["wall_seconds"], ratio(v, "cpu_seconds"), ratio(v, "tasks_executed")))
    now = next((v for v in variants if v["label"] == "this checkout"), None)
    if before and now:
        cpu = now["median"]["cpu_seconds"] / before["median"]["cpu_seconds"]
        tasks = now["median"]["tasks_executed"] / before["median"]["tasks_executed"]
        lines += ["", "Targets (issue 12): controller CPU at most half of before: **%s** (%.2fx); tasks executed at"
                  " most half: **%s** (%.2fx)." % ("met" if cpu <= 0.5 else "MISSED", cpu,
                                                  "met" if tasks <= 0.5 else "MISSED", tasks)]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strategy", default="", help="Ansible strategy (default linear)")
    parser.add_argument("--before", type=Path, help="an older checkout, measured in the same rounds, to compare")
    parser.add_argument("--also-strategy", action="append", default=[],
                        help="also measure the checkout with this strategy in the same rounds (e.g. mitogen_linear)")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE for ansible-playbook")
    parser.add_argument("--json", help="also write the runs to this file")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--stop", action="store_true", help="stop the demo server and backend afterwards")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    extra_env = dict(item.split("=", 1) for item in args.env)
    # (label, checkout, strategy); each checkout runs its own demo (server, backend, data) under its .demo/.
    variants = ([{"label": "before (%s)" % args.before, "root": args.before.resolve(), "strategy": ""}]
                if args.before else [])
    variants.append({"label": "this checkout" if not args.strategy else "this checkout, %s" % args.strategy,
                     "root": root, "strategy": args.strategy})
    variants += [{"label": "this checkout, %s" % name, "root": root, "strategy": name} for name in args.also_strategy]
    demos = {}
    for v in variants:
        if v["root"] not in demos:
            demo = load_demo(v["root"])
            base = v["root"] / ".demo"
            demos[v["root"]] = (demo, base, demo.setup(base), demo.start_app(base))
        v["runs"] = []
    try:
        for i in range(args.runs):
            for v in variants:
                demo, base, secrets_path, app_port = demos[v["root"]]
                reset(demo, v["root"], base)
                result = run_once(demo, v["root"], secrets_path, app_port, v["strategy"], extra_env)
                v["runs"].append(result)
                print("run %d, %s: CPU %.2f s (user %.2f, sys %.2f), wall %.1f s, tasks %d executed + %d skipped,"
                      " load %.2f, rc=%d%s" % (
                          i + 1, v["label"], result["cpu_seconds"], result["user"], result["sys"],
                          result["wall_seconds"], result["tasks_executed"], result["tasks_skipped"],
                          result["load_before"], result["returncode"],
                          "; not ok: %s" % result["not_ok"] if result["not_ok"] else ""), flush=True)
                if result["returncode"] != 0:
                    print(result["output"])
    finally:
        if args.stop:
            for demo, base, _secrets, _port in demos.values():
                demo.stop_app(base)
                demo.Sandbox(base / "mariadb").stop()
    for v in variants:
        v["median"] = summarise(v["runs"])
        print("median of %d, %s: CPU %.2f s, wall %.1f s, tasks %d executed + %d skipped, load %.2f" % (
            len(v["runs"]), v["label"], v["median"]["cpu_seconds"], v["median"]["wall_seconds"],
            v["median"]["tasks_executed"], v["median"]["tasks_skipped"], v["median"]["load_before"]))
    if args.json:
        Path(args.json).write_text(json.dumps([{"label": v["label"], "root": str(v["root"]),
                                                "strategy": v["strategy"] or "linear", "median": v["median"],
                                                "runs": [{k: x for k, x in r.items() if k != "output"}
                                                         for r in v["runs"]]} for v in variants], indent=2) + "\n")
    ok = all(r["returncode"] == 0 and not r["not_ok"] for v in variants for r in v["runs"])
    lines = section_lines(variants)
    print("\n".join(lines))
    if not args.no_docs and root == HERE and not args.strategy and ok:
        sys.path.insert(0, str(HERE / "scripts"))
        from benchmarks_doc import measured_on, write_section
        loads = [r["load_before"] for v in variants for r in v["runs"]]
        command = "`.venv/bin/python scripts/bench_release.py --runs %d%s%s`" % (
            args.runs, " --before <old checkout>" if args.before else "",
            "".join(" --also-strategy %s" % n for n in args.also_strategy))
        write_section("release", "\n".join([
            "## One release on the controller (`scripts/bench_release.py`)", "",
            "%s; load average %.1f to %.1f during the runs, the machine is shared, so CPU-seconds are inflated as"
            " well as wall times. Command: %s: a real first release of the demo each time, the variants taking"
            " turns in each round; CPU-seconds are user+sys of the ansible-playbook process tree." % (
                measured_on(variants[0]["runs"][0]["load_before"]), min(loads), max(loads), command), ""]
            + lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
