#!/usr/bin/env python3
"""Fleet benchmark: the wall time of a whole release over N databases, N = 1, 4 and 8 by default.

Each database is a throwaway MariaDB server of its own (scripts/sandbox_db.py) loaded with the example
application, reached with the local connection. Before every measured run each database is dropped and loaded
again, so every run does the same work (a real first release, not a no-op rerun). The playbook runs with
forks >= N and pipelining on. The migration and tag phases are switched off (they need npm and a git repository
per database and measure neither Ansible's parallelism nor the database); every other phase runs as in production.

    .venv/bin/python scripts/bench_fleet.py                      # release.yml, N = 1, 4, 8
    .venv/bin/python scripts/bench_fleet.py --fleet              # also fleet.yml for the largest N
    .venv/bin/python scripts/bench_fleet.py --sizes 1,8 --strategy free --json out.json
    .venv/bin/python scripts/bench_fleet.py --strategy mitogen_linear --no-docs   # Mitogen for Ansible, to compare

Prints one line per run (wall time, ratio to N=1, controller CPU, phases that did not end `ok`), the target
(N=8 in at most 2.5x the time of N=1) and the floor that CPU puts under the wall time (CPU seconds / cores), and
updates the fleet section of docs/benchmarks.md. Exits 1 when a run failed or the target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_release import strategy_env  # noqa: E402
from benchmarks_doc import measured_on, write_section  # noqa: E402
from sandbox_db import Sandbox  # noqa: E402

DB = "arisgourmet"
ADMIN_USER = "db_admin"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
TARGET_RATIO = 2.5
# The one list of phases (vars/release.yml).
PHASES = tuple(p["name"] for p in yaml.safe_load((ROOT / "vars/release.yml").read_text())["release_phases"])


def usable_cores() -> int:
    """The cores this process may run on (`taskset -c 0 ...` gives one), which its children inherit."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_example(box: Sandbox):
    box.sql(["DROP DATABASE IF EXISTS `%s`" % DB, "CREATE DATABASE `%s`" % DB])
    client = shutil.which("mariadb") or shutil.which("mysql")
    for name in ("schema_pre_release.sql", "seed.sql"):
        with open(ROOT / "examples/app/db" / name, "rb") as handle:
            subprocess.run([client, "--no-defaults", "-uroot", "-S", box.socket, DB], stdin=handle, check=True)


def write_inventory(base: Path, boxes, password, run_id, fleet_batch_size):
    hosts = {}
    for i, box in enumerate(boxes, start=1):
        name = "db%02d" % i
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "release_db_name": DB,
            "release_db_socket": box.socket,
            "release_db_host": "127.0.0.1",
            "release_db_port": box.port,
            "release_db_admin_user": ADMIN_USER,
            "release_environment": "staging",
            "release_ddl_files": [str(DDL)],
            "release_migration_command": "",
            "release_backup_dir": str(base / run_id / "backups" / name),
            "release_artifacts_dir": str(base / run_id / "artifacts" / name),
            "release_git_repo": "",
        }
    inventory = {"all": {
        "vars": {"fleet_artifacts_dir": str(base / run_id / "artifacts" / "fleet"),
                 "fleet_batch_size": fleet_batch_size},
        "children": {"databases": {"hosts": hosts}}}}
    path = base / run_id / "inventory.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    # The password goes in a 0600 vars file, never on the command line.
    secrets = base / run_id / "secrets.yml"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("release_db_admin_password: %s\n" % json.dumps(password))
    return path, secrets, list(hosts)


def run_once(base, boxes, password, playbook, strategy, version, fleet_batch_size, pipelining):
    for box in boxes:
        load_example(box)
    run_id = "%s-%d-%s" % (Path(playbook).stem, len(boxes), uuid.uuid4().hex[:6])
    inventory, secrets, hosts = write_inventory(base, boxes, password, run_id, fleet_batch_size)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORKS=str(max(len(boxes), 10)),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.update(strategy_env(strategy))  # Mitogen's strategies too (--strategy mitogen_linear)
    # The local connection reads `pipelining` from [defaults]/[connection] or ANSIBLE_PIPELINING, not from the
    # [ssh_connection] section of ansible.cfg: without it every task spawns shells to make, fill, chmod and remove
    # a temporary directory.
    env["ANSIBLE_PIPELINING"] = "True" if pipelining else "False"
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(inventory),
           "-e", "@%s" % secrets, "-e", json.dumps({"release_version": version})]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    log = base / run_id / "ansible.log"
    log.write_text(proc.stdout + proc.stderr)
    not_ok = {}
    for host in hosts:
        record_path = base / run_id / "artifacts" / host / version / "release.json"
        phases = json.loads(record_path.read_text()).get("phases", {}) if record_path.exists() else {}
        bad = {name: phases.get(name, {}).get("status", "missing") for name in PHASES
               if phases.get(name, {}).get("status") not in ("ok", "skipped")}
        if bad:
            not_ok[host] = bad
    return {"playbook": playbook, "databases": len(boxes), "wall_seconds": round(wall, 1),
            "controller_cpu_seconds": round(cpu, 1), "strategy": strategy or "linear", "pipelining": pipelining,
            "returncode": proc.returncode, "not_ok": not_ok, "log": str(log)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,8", help="comma-separated numbers of databases (default 1,4,8)")
    parser.add_argument("--fleet", action="store_true", help="also time fleet.yml over the largest N")
    parser.add_argument("--fleet-batch-size", default="100%", help="fleet.yml batch size after the canary")
    parser.add_argument("--strategy", default="", help="Ansible strategy (linear by default; free to compare)")
    parser.add_argument("--no-pipelining", action="store_true", help="measure without pipelining, to compare")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directories and logs")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    base = Path(tempfile.mkdtemp(prefix="dbr-bf-", dir="/tmp"))
    password = "bench-" + uuid.uuid4().hex
    boxes = []
    results = []
    try:
        for i in range(max(sizes)):
            box = Sandbox(base / ("m%02d" % i)).start()
            box.create_admin(ADMIN_USER, password)
            boxes.append(box)
        print("%d MariaDB servers up under %s; %d CPU(s), load %.1f" % (
            len(boxes), base, usable_cores(), os.getloadavg()[0]), flush=True)
        runs = [("release.yml", n) for n in sizes] + ([("fleet.yml", max(sizes))] if args.fleet else [])
        for playbook, n in runs:
            version = "bench-%s" % uuid.uuid4().hex[:8]
            result = run_once(base, boxes[:n], password, playbook, args.strategy, version, args.fleet_batch_size,
                              not args.no_pipelining)
            result["load_before"] = round(os.getloadavg()[0], 1)
            results.append(result)
            one = next((r["wall_seconds"] for r in results if r["databases"] == 1 and r["playbook"] == playbook),
                       None)
            ratio = " (%.2fx N=1)" % (result["wall_seconds"] / one) if one and n > 1 else ""
            print("%-11s N=%d: %6.1f s%s, CPU %.0f s, rc=%d%s" % (
                playbook, n, result["wall_seconds"], ratio, result["controller_cpu_seconds"], result["returncode"],
                "; not ok: %s" % json.dumps(result["not_ok"]) if result["not_ok"] else ""), flush=True)
    finally:
        for box in boxes:
            box.stop(kill=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    lines, met = report_lines(results, usable_cores())
    print("\n".join(lines[-2:]))
    if not args.no_docs and not args.strategy and not args.no_pipelining:
        write_section("fleet", "\n".join([
            "## Fleet (`scripts/bench_fleet.py`)", "",
            "%s. Command: `make bench` (= `.venv/bin/python scripts/bench_fleet.py --sizes %s`). Each database is"
            " its own MariaDB server loaded with the example application; every run is a real first release"
            " (preflight, lock, backup with its restore test, grants, schema, verify; migrate and tag off)."
            % (measured_on(load_before), args.sizes), ""] + lines))
    return 0 if met and all(r["returncode"] == 0 and not r["not_ok"] for r in results) else 1


def report_lines(results, cores):
    """The table, then the target's verdict and what bounds it; returns (lines, target met or not measurable)."""
    one = next((r for r in results if r["databases"] == 1 and r["playbook"] == "release.yml"), None)
    lines = ["| playbook | databases | wall | vs N=1 | controller CPU | CPU / cores (floor) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append("| %s | %d | %.1f s | %s | %.0f s | %.1f s |" % (
            r["playbook"], r["databases"], r["wall_seconds"],
            "%.2fx" % (r["wall_seconds"] / one["wall_seconds"]) if one else "-", r["controller_cpu_seconds"],
            r["controller_cpu_seconds"] / cores))
    largest = max((r for r in results if r["playbook"] == "release.yml"), key=lambda r: r["databases"])
    if not one or largest["databases"] == 1:
        return lines + ["", "No target: needs N=1 and a larger N."], True
    ratio = largest["wall_seconds"] / one["wall_seconds"]
    met = ratio <= TARGET_RATIO
    per_db = largest["controller_cpu_seconds"] / largest["databases"]
    lines += ["", "Target: %d databases in at most %.1fx the time of one: **%s** (%.2fx). The controller spends"
              " %.1f CPU-seconds per database (Ansible's workers and module processes, the clients of the dump and"
              " the restore test), so on %d cores %d databases cannot take less than %.1f s of wall time: %.0f%% of"
              " the measured %.1f s; that floor alone is %.2fx the time of N=1." % (
                  largest["databases"], TARGET_RATIO, "met" if met else "MISSED", ratio, per_db, cores,
                  largest["databases"], largest["controller_cpu_seconds"] / cores,
                  100.0 * largest["controller_cpu_seconds"] / cores / largest["wall_seconds"],
                  largest["wall_seconds"], largest["controller_cpu_seconds"] / cores / one["wall_seconds"])]
    return lines, met


if __name__ == "__main__":
    sys.exit(main())
