#!/usr/bin/env python3
"""Benchmark the vault copy against a raw rsync of the same file, on the namespace topology.

    python scripts/bench_vault.py [--file BACKUP.sql.gz | --size-mb 512] [--runs 3] [--json]

Builds a throwaway topology (one database host, one vault; tests/topology.py), puts the file on the database
host (a real backup when --file is given, else random bytes, which compress like a compressed dump: not at
all), then from the database host's namespace times, alternately, `runs` times each:

- raw:   rsync -e "ssh <same options>" FILE vault:DIR/     (what a DBA would type; no verification)
- vault: the backup_vault_copy module through Ansible (probe, rsync to a staging name, fsync, sha256 on the
         vault, rename), i.e. the task the backup phase runs, with Ansible's own overhead included;
- vault_no_fsync: the same with backup_vault_fsync=false (what the flush to the vault's disk costs).

Prints the medians and the ratio vault/raw (target <= 1.5). `make bench` calls `bench()` (or this CLI).
Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from topology import running_topology  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(4 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _prepare(topo, db: str, source: Path | None, size_mb: int) -> tuple[Path, str]:
    backups = topo.backup_dir(db)
    name = "bench_vault_20260101T000000Z.sql.gz"
    target = backups / name
    if source:
        shutil.copyfile(source, target)
    else:
        with open(target, "wb") as fh:
            for _ in range(size_mb):
                fh.write(os.urandom(1 << 20))
    digest = _sha256(target)
    (backups / (name + ".sha256")).write_text("%s  %s\n" % (digest, name))
    (backups / (name + ".manifest.json")).write_text(json.dumps({"database": "bench_vault", "sha256": digest}))
    return target, digest


def _raw_rsync(topo, db, vault, src: Path, dest: str) -> float:
    ssh = ["ssh", "-o", "BatchMode=yes", *topo.ssh_options()]
    cmd = ["ip", "netns", "exec", topo.netns(db), "rsync", "-e", " ".join(shlex.quote(a) for a in ssh),
           str(src), "root@%s:%s/" % (topo.ip(vault), dest)]
    topo.ssh(vault, "rm -rf %s && mkdir -p %s" % (dest, dest))
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - started


def _vault_copy(topo, db, vault, src: Path, digest: str, dest: str, fsync: bool) -> float:
    topo.ssh(vault, "rm -rf %s" % dest)
    args = {"src": str(src), "sha256": digest, "sidecars": [str(src) + ".sha256", str(src) + ".manifest.json"],
            "vault": vault, "address": topo.ip(vault), "user": "root", "dest_dir": dest, "ssh_key": str(topo.key),
            "ssh_options": ["-o", "UserKnownHostsFile=%s" % topo.known_hosts, "-o", "StrictHostKeyChecking=yes"],
            "fsync": fsync}
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "ansible"), db, "-i", str(topo.inventory()), "-m", "backup_vault_copy",
                           "-a", json.dumps(args)], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0 or "CHANGED" not in proc.stdout:
        raise RuntimeError("vault copy failed: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return elapsed


def bench(file=None, size_mb=512, runs=3) -> dict:
    """Run the comparison; returns the figures (seconds are medians over `runs`)."""
    db, vault = "db1", "vault1"
    with running_topology(db_hosts=(db,), vault_hosts=(vault,)) as topo:
        src, digest = _prepare(topo, db, Path(file) if file else None, size_mb)
        dest_root = topo.vault_dir(vault)
        raw, copy, copy_nofsync = [], [], []
        for _ in range(runs):
            raw.append(_raw_rsync(topo, db, vault, src, "%s/raw" % dest_root))
            copy.append(_vault_copy(topo, db, vault, src, digest, "%s/db1" % dest_root, True))
            copy_nofsync.append(_vault_copy(topo, db, vault, src, digest, "%s/nofsync" % dest_root, False))
        size = src.stat().st_size
    raw_s, copy_s, nofsync_s = statistics.median(raw), statistics.median(copy), statistics.median(copy_nofsync)
    return {
        "file_bytes": size,
        "runs": runs,
        "raw_rsync_s": round(raw_s, 2),
        "vault_copy_s": round(copy_s, 2),
        "vault_copy_no_fsync_s": round(nofsync_s, 2),
        "raw_rsync_mb_s": round(size / raw_s / 1e6, 1),
        "vault_copy_mb_s": round(size / copy_s / 1e6, 1),
        "ratio": round(copy_s / raw_s, 2),
        "ratio_no_fsync": round(nofsync_s / raw_s, 2),
        "target_ratio": 1.5,
        "all_s": {"raw": [round(x, 2) for x in raw], "vault": [round(x, 2) for x in copy],
                  "vault_no_fsync": [round(x, 2) for x in copy_nofsync]},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", help="a real backup to copy (default: random bytes)")
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = bench(args.file, args.size_mb, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        mb = result["file_bytes"] / 1e6
        print("vault copy of %.0f MB, median of %d runs" % (mb, result["runs"]))
        print("  raw rsync over ssh           %6.2f s  %7.1f MB/s" % (result["raw_rsync_s"], result["raw_rsync_mb_s"]))
        print("  backup_vault_copy (ansible)  %6.2f s  %7.1f MB/s  %.2fx raw (target <= 1.5x)"
              % (result["vault_copy_s"], result["vault_copy_mb_s"], result["ratio"]))
        print("  same without fsync           %6.2f s            %.2fx raw"
              % (result["vault_copy_no_fsync_s"], result["ratio_no_fsync"]))
    return 0 if result["ratio"] <= result["target_ratio"] else 1


if __name__ == "__main__":
    sys.exit(main())
