"""Off the host: the backup phase copies its verified dump to a real second host (a network namespace with its
own sshd) with rsync over SSH, re-verifies it there, and keeps the last N verified backups on each side."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import topology  # noqa: E402
from helpers import VENV_BIN, run_playbook  # noqa: E402
from topology import running_topology  # noqa: E402

pytestmark = pytest.mark.skipif(topology.available() is not None, reason=str(topology.available()))

PHASE = ROOT / "playbooks" / "backup.yml"
DB, VAULT = "db1", "vault1"


@pytest.fixture(scope="module")
def topo():
    with running_topology(db_hosts=(DB,), vault_hosts=(VAULT,)) as topo:
        topo.sandbox(DB).sql([
            "CREATE DATABASE app",
            "CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(40))",
            "INSERT INTO app.items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        ])
        yield topo


@pytest.fixture(scope="module")
def golden(topo):
    """A real backup of `app` taken once by the backup phase, kept aside for the tests that need a file."""
    proc = release(topo.inventory(topo.base / "inventory.yml"), "v0.9")
    assert proc.returncode == 0, proc.stdout[-3000:]
    keep = topo.base / "golden"
    keep.mkdir()
    for path in topo.backup_dir(DB).glob("app_*"):
        shutil.copy2(path, keep / path.name)
    return keep / next(p.name for p in keep.glob("*.sql.gz"))


@pytest.fixture
def inventory(topo):
    """Fresh backup and vault directories and a fresh inventory for each test."""
    for path in (topo.backup_dir(DB), topo.vault_dir(VAULT), topo.host_dir(DB) / "artifacts"):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    topo.start_sshd(VAULT)
    topo.link(VAULT, up=True)
    return topo.inventory(topo.base / "inventory.yml")


@pytest.fixture
def backup(topo, golden, inventory):
    """The golden backup and its sidecars in the database host's backup directory."""
    for path in golden.parent.iterdir():
        shutil.copy2(path, topo.backup_dir(DB) / path.name)
    return topo.backup_dir(DB) / golden.name


def module(topo, host, name, args, check=False, delegate=None):
    """One module run with `ansible HOST -m NAME` (no password in args): faster than a playbook."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    cmd = [str(VENV_BIN / "ansible"), host, "-i", str(topo.base / "inventory.yml"), "-m", name,
           "-a", json.dumps(args)] + (["--check"] if check else [])
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def copy_args(topo, src: Path, **over):
    args = {"src": str(src), "sha256": sha256(src), "sidecars": [str(src) + ".sha256", str(src) + ".manifest.json"],
            "vault": VAULT, "address": topo.ip(VAULT), "user": "root", "dest_dir": str(vault_dir(topo)),
            "ssh_key": str(topo.key),
            "ssh_options": ["-o", "UserKnownHostsFile=%s" % topo.known_hosts, "-o", "StrictHostKeyChecking=yes"]}
    args.update(over)
    return args


def release(inventory, version, **extra):
    return run_playbook(PHASE, inventory, extra_vars=dict(release_version=version, release_db_name="app", **extra),
                        timeout=300)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_backups(topo):
    return sorted(p.name for p in topo.backup_dir(DB).glob("app_*.sql.gz"))


def vault_dir(topo) -> Path:
    return topo.vault_dir(VAULT) / DB


def vault_entries(topo):
    return sorted(p.name for p in vault_dir(topo).iterdir()) if vault_dir(topo).exists() else []


def record(topo, version):
    return json.loads((topo.host_dir(DB) / "artifacts" / version / "release.json").read_text())["phases"]["backup"]


def copy_task_lines(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Copy the verified backup to each vault host" in line)
    return [line for line in lines[start + 1:start + 4] if "item=" in line]


def test_backup_is_copied_to_the_vault_and_its_sha256_verified_there(topo, inventory):
    proc = release(inventory, "v1.0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    rec = record(topo, "v1.0")
    local = Path(rec["path"])
    remote = vault_dir(topo) / local.name
    assert rec["status"] == "ok"
    assert rec["vault"] == {VAULT: str(remote)}
    assert sha256(remote) == sha256(local) == rec["sha256"]
    assert (vault_dir(topo) / (local.name + ".sha256")).read_text().split() == [rec["sha256"], local.name]
    assert json.loads((vault_dir(topo) / (local.name + ".manifest.json")).read_text())["database"] == "app"
    assert vault_entries(topo) == sorted([local.name, local.name + ".sha256", local.name + ".manifest.json"]), \
        "no staging leftovers"
    assert "changed: [db1] => (item=vault1)" in copy_task_lines(proc.stdout)

    # Rerun: the backup is reused and the vault already holds it, verified: nothing copied.
    mtime = remote.stat().st_mtime_ns
    again = release(inventory, "v1.0")
    assert again.returncode == 0, again.stdout[-3000:]
    assert "ok: [db1] => (item=vault1)" in copy_task_lines(again.stdout)
    assert remote.stat().st_mtime_ns == mtime


def test_the_binary_logs_since_the_backup_are_archived_and_copied_to_the_vault_verified(topo, inventory):
    """backup_binlog_archive: the closed binary logs written since the backup (the current one closed first), each
    with its .sha256, in the archive on the database host and on the vault, whose copy was verified there."""
    proc = release(inventory, "v1.1-binlogs", backup_binlog_archive=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    binlog = record(topo, "v1.1-binlogs")["binlog"]
    assert binlog["enabled"] is True and binlog["archive"], binlog
    archive = Path(binlog["archive_dir"])
    for name in binlog["archive"]:
        remote = vault_dir(topo) / "binlogs" / name
        assert sha256(remote) == sha256(archive / name) == (archive / (name + ".sha256")).read_text().split()[0]
    assert sorted(binlog["vault"]) == sorted("%s:%s" % (VAULT, vault_dir(topo) / "binlogs" / name)
                                             for name in binlog["archive"])


def test_unreachable_vault_fails_the_phase_clearly_and_a_rerun_after_the_fix_succeeds(topo, inventory):
    topo.stop_sshd(VAULT)
    proc = release(inventory, "v2.0")
    assert proc.returncode != 0
    rec = record(topo, "v2.0")
    assert rec["status"] == "failed"
    assert "vault vault1 (root@%s:22) unreachable over SSH" % topo.ip(VAULT) in rec["error"]
    assert "Connection refused" in rec["error"]
    assert vault_entries(topo) == []
    assert len(local_backups(topo)) == 1, "the local backup stays (it is verified)"

    topo.start_sshd(VAULT)
    rerun = release(inventory, "v2.0")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert record(topo, "v2.0")["status"] == "ok"
    assert local_backups(topo)[0] in vault_entries(topo)


def test_vault_link_down_times_out_with_a_clear_message(topo, backup):
    topo.link(VAULT, up=False)
    try:
        proc = module(topo, DB, "backup_vault_copy", copy_args(topo, backup, connect_timeout=2))
    finally:
        topo.link(VAULT, up=True)
    assert proc.returncode != 0
    assert "vault vault1 (root@%s:22) unreachable over SSH" % topo.ip(VAULT) in proc.stdout
    assert "timed out" in proc.stdout
    assert vault_entries(topo) == []


def test_checksum_mismatch_on_the_vault_fails_and_leaves_nothing_under_the_backup_name(topo, inventory):
    # A vault whose disk corrupts what it receives: rsync there is wrapped by a script flipping a byte of the
    # staged dump after the transfer, so only the verification on the vault can notice.
    wrapper = topo.host_dir(VAULT) / "corrupting-rsync"
    wrapper.write_text("#!/bin/sh\nrsync \"$@\"; rc=$?\n"
                       "for f in %s/*/.*.incoming-*/*.sql.gz; do\n"
                       "  [ -f \"$f\" ] && printf 'X' | dd of=\"$f\" bs=1 seek=30 count=1 conv=notrunc 2>/dev/null\n"
                       "done\nexit $rc\n" % topo.vault_dir(VAULT))
    wrapper.chmod(0o755)
    proc = release(inventory, "v3.0", backup_vault_rsync_path=str(wrapper))
    assert proc.returncode != 0
    rec = record(topo, "v3.0")
    assert rec["status"] == "failed"
    expected = sha256(Path(topo.backup_dir(DB)) / local_backups(topo)[0])
    assert "checksum mismatch on vault vault1" in rec["error"]
    assert "expected sha256 %s" % expected in rec["error"]
    assert "the vault computed " in rec["error"] and "removed" in rec["error"]
    assert vault_entries(topo) == [], "neither the corrupt copy nor its staging directory is left"

    rerun = release(inventory, "v3.0")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert sha256(vault_dir(topo) / local_backups(topo)[0]) == expected


def test_a_wrong_file_under_the_backup_name_on_the_vault_is_replaced_by_a_verified_copy(topo, backup):
    vault_dir(topo).mkdir(parents=True)
    (vault_dir(topo) / backup.name).write_bytes(b"not the backup")
    proc = module(topo, DB, "backup_vault_copy", copy_args(topo, backup))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "held %s with sha256 %s" % (backup.name, hashlib.sha256(b"not the backup").hexdigest()) in proc.stderr
    assert sha256(vault_dir(topo) / backup.name) == sha256(backup)
    assert vault_entries(topo) == sorted([backup.name, backup.name + ".sha256", backup.name + ".manifest.json"])


def test_check_mode_probes_the_vault_and_copies_nothing(topo, backup):
    proc = module(topo, DB, "backup_vault_copy", copy_args(topo, backup), check=True)
    assert proc.returncode == 0 and "CHANGED" in proc.stdout, proc.stdout + proc.stderr
    assert vault_entries(topo) == []
    topo.stop_sshd(VAULT)
    proc = module(topo, DB, "backup_vault_copy", copy_args(topo, backup), check=True)
    assert proc.returncode != 0 and "unreachable over SSH" in proc.stdout


def test_an_inconsistent_sidecar_is_refused_before_anything_is_sent(topo, backup):
    Path(str(backup) + ".sha256").write_text("%s  %s\n" % ("0" * 64, backup.name))
    proc = module(topo, DB, "backup_vault_copy", copy_args(topo, backup))
    assert proc.returncode != 0
    assert "names sha256 %s, not the backup's" % ("0" * 64) in proc.stdout
    assert vault_entries(topo) == []


def _plant(directory: Path, source: Path, name: str, database="app", sidecar=True):
    """A verified-looking backup `name` with the same content as `source` (older stamp), and its sidecars."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, directory / name)
    digest = sha256(source)
    if sidecar:
        (directory / (name + ".sha256")).write_text("%s  %s\n" % (digest, name))
        (directory / (name + ".manifest.json")).write_text(json.dumps({"database": database, "sha256": digest,
                                                                        "file": name}))


def test_retention_keeps_the_last_n_verified_backups_on_both_sides_and_never_the_newest(topo, golden, inventory):
    old = ["app_v0.%d_2026010%dT000000Z.sql.gz" % (i, i) for i in (1, 2, 3)]
    src = golden
    for side in (topo.backup_dir(DB), vault_dir(topo)):
        for name in old:
            _plant(side, src, name)
        _plant(side, src, "app_v0.0_20250101T000000Z.sql.gz", sidecar=False)  # unverified: left alone
        _plant(side, src, "app_other_20250101T000000Z.sql.gz", database="app_other")  # another database

    # No record says v0.1 - v0.3 were verified in production: their backups stay, on the host and on the vault,
    # however many there are.
    proc = release(inventory, "v5.0", backup_retention_count=2)
    assert proc.returncode == 0, proc.stdout[-3000:]
    newest = Path(record(topo, "v5.0")["path"]).name
    for side in (topo.backup_dir(DB), vault_dir(topo)):
        present = sorted(p.name for p in side.iterdir())
        assert all(name in present for name in old), present
    retention = record(topo, "v5.0")["retention"]
    assert [p["release"] for p in retention["local"]["protected"]] == ["v0.2", "v0.1"]
    assert [p["release"] for p in retention["vaults"][VAULT]["protected"]] == ["v0.2", "v0.1"]

    # Their records now say they were verified in production (verify and watch ok): retention may let them go.
    for version in ("v0.1", "v0.2", "v0.3"):
        path = topo.host_dir(DB) / "artifacts" / version / "release.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": version, "environment": "production", "phases": {
            "verify": {"status": "ok"}, "watch": {"status": "ok"}}}))
    proc = release(inventory, "v5.0", backup_retention_count=2)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert record(topo, "v5.0")["retention"]["verified_releases"] == ["v0.1", "v0.2", "v0.3"]
    for side in (topo.backup_dir(DB), vault_dir(topo)):
        present = sorted(p.name for p in side.iterdir())
        assert newest in present and old[2] in present, "the newest two verified backups are kept"
        for gone in old[:2]:
            assert not any(p.startswith(gone) for p in present), "older verified backups go with their sidecars"
        assert "app_v0.0_20250101T000000Z.sql.gz" in present
        assert "app_other_20250101T000000Z.sql.gz" in present

    # A dry run of keep=1 on the vault: the plan, nothing deleted.
    args = {"path": str(vault_dir(topo)), "database": "app", "keep": 1}
    dry = module(topo, VAULT, "backup_retention", args, check=True)
    assert dry.returncode == 0 and old[2] in dry.stdout, dry.stdout + dry.stderr
    assert (vault_dir(topo) / old[2]).exists()

    # keep 1: only the newest remains among app's verified backups, even when told to protect nothing else.
    for host, side in ((DB, topo.backup_dir(DB)), (VAULT, vault_dir(topo))):
        proc = module(topo, host, "backup_retention", dict(args, path=str(side)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert sorted(p.name[:-len(".sha256")] for p in side.glob("app_v*.sha256")) == [newest]


def test_retention_count_below_one_is_refused(topo, inventory, golden):
    proc = module(topo, DB, "backup_retention", {"path": str(golden.parent), "database": "app", "keep": 0})
    assert proc.returncode != 0
    assert "backup_retention_count must be at least 1" in proc.stdout
    assert golden.exists()
