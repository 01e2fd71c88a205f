"""The whole release.yml over SSH against real hosts: two database hosts (each its own mariadbd and sshd, in its own
network namespace) and a backup vault host, the controller in the root namespace (tests/topology.py).

One topology and one release (then a rerun) shared by every test of the module, so the file stays around a minute.
Where things happen: the database work runs on each database host over SSH (its modules connect to the host's own
server over TCP); the backup is written on the database host and pushed from there to the vault with rsync over
SSH; the release record, report, schema snapshots, migration log and git tag are written on the controller
(their tasks delegate to localhost), the record at <release_artifacts_dir>/<release_version>/release.json. The
topology gives each database host its own release_artifacts_dir (BASE/hosts/<host>/artifacts). The namespaces
share one filesystem, so a path used on the wrong side would not fail here: these tests prove the SSH plumbing,
the per-host inventory and the vault copy, not the separation of the controller's and the hosts' disks.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import topology  # noqa: E402

# Every phase a full release records, in order (maintenance is skipped by design: maintenance_enabled is false for
# the example app, which has no maintenance endpoint running here).
from helpers import PHASES, recap, run_playbook  # noqa: E402
from topology import running_topology  # noqa: E402

pytestmark = pytest.mark.skipif(topology.available() is not None, reason=str(topology.available()))

VERSION = "v1.2.0-ssh"
DB_HOSTS, VAULT = ("db1", "db2"), "vault1"
DATABASE = "arisgourmet"


class CommandLineWatch(threading.Thread):
    """Samples every process's command line (what `ps` shows) while a release runs; keeps those holding `secret`."""

    def __init__(self, secret: str):
        super().__init__(daemon=True)
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(0.05):
            self.samples += 1
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path("/proc", pid, "cmdline").read_bytes()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.leaks.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])

    def stop(self):
        self._stop_event.set()
        self.join(timeout=5)


def query(topo, host: str, sql: str):
    conn = pymysql.connect(host=topo.ip(host), port=3306, user=topology.ADMIN_USER, password=topo.admin_password,
                           database=DATABASE, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def tables(topo, host: str) -> set[str]:
    return {row[0] for row in query(topo, host, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")}


@pytest.fixture(scope="module")
def topo():
    with running_topology(db_hosts=DB_HOSTS, vault_hosts=(VAULT,)) as topo:
        topo.load_example_app()
        yield topo


@pytest.fixture(scope="module")
def runs(topo):
    """release.yml over SSH against `databases` (db1, db2) with `backup_vault` (vault1), then the same again."""
    # A staging release that makes the tag itself (release_tag_environment), so the push over the controller is seen.
    inventory = topo.inventory(topo.base / "inventory.yml", release=True,
                               db_vars={"release_tag_environment": "staging"})
    before = {host: tables(topo, host) for host in DB_HOSTS}
    watch = CommandLineWatch(topo.admin_password)
    watch.start()
    try:
        first = run_playbook("release.yml", inventory, extra_vars={"release_version": VERSION}, timeout=600)
        rerun = run_playbook("release.yml", inventory, extra_vars={"release_version": VERSION}, timeout=600)
    finally:
        watch.stop()
    return {"first": first, "rerun": rerun, "before": before, "watch": watch}


def record(topo, host: str) -> dict:
    artifacts = Path(topo.host_vars(host)["release_artifacts_dir"])
    return json.loads((artifacts / VERSION / "release.json").read_text())


def test_release_over_ssh_records_every_phase_ok_on_each_database_host(topo, runs):
    first = runs["first"]
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    counts = recap(first.stdout)
    assert set(counts) == set(DB_HOSTS), "the vault host is reached by the database hosts, not played against"
    for host in DB_HOSTS:
        assert counts[host]["failed"] == 0 and counts[host]["unreachable"] == 0, counts
        rec = record(topo, host)
        assert (rec["version"], rec["host"], rec["database"]) == (VERSION, host, DATABASE)
        # The phases, then what the finish play records after them (the rollback plan).
        statuses = {name: phase["status"] for name, phase in rec["phases"].items() if name != "rollback_plan"}
        assert list(statuses) == list(PHASES), statuses
        assert rec["phases"]["rollback_plan"]["status"] == "ok", rec["phases"]["rollback_plan"]
        # A staging release (the default environment): no watch window and no serving endpoint to watch, recorded as
        # skipped with why.
        skipped = ("maintenance", "watch")
        assert {p: s for p, s in statuses.items() if p not in skipped} == {p: "ok" for p in PHASES
                                                                          if p not in skipped}
        assert [statuses[p] for p in skipped] == ["skipped"] * 2
        assert "no watch window" in rec["phases"]["watch"]["reason"]
        assert "maintenance_enabled is false" in rec["phases"]["maintenance"]["reason"]
        # Each host's release went to that host's own server over the network, as db_admin@%.
        assert rec["phases"]["preflight"]["endpoint"] == "db_admin@%s:3306" % topo.ip(host)
        assert rec["phases"]["preflight"]["current_user"] == "db_admin@%"
        # The tag phase runs on the controller (release_git_repo is a controller path) and pushes to origin.
        assert rec["phases"]["tag"]["tag"] == VERSION
        for repo in (topo.host_dir(host) / "app-repo", topo.host_dir(host) / "app-remote.git"):
            tags = subprocess.run(["git", "-C", str(repo), "tag", "-l", VERSION], capture_output=True, text=True)
            assert tags.stdout.split() == [VERSION], (repo, tags.stderr)


def test_release_creates_outbox_and_refresh_tokens_on_both_servers(topo, runs):
    assert runs["first"].returncode == 0, runs["first"].stdout[-4000:]
    for host in DB_HOSTS:
        assert not {"outbox", "refresh_tokens"} & runs["before"][host], "the example starts before the release"
        assert {"outbox", "refresh_tokens", "users", "orders"} <= tables(topo, host)
        (bind,), = query(topo, host, "SELECT @@bind_address")
        assert bind == topo.ip(host)


def test_each_backup_is_copied_to_the_vault_and_its_sha256_verifies_there(topo, runs):
    assert runs["first"].returncode == 0, runs["first"].stdout[-4000:]
    for host in DB_HOSTS:
        backup = record(topo, host)["phases"]["backup"]
        name = Path(backup["path"]).name
        remote_dir = topo.vault_dir(VAULT) / host
        assert backup["vault"] == {VAULT: str(remote_dir / name)}
        # Computed on each host itself, over SSH: the dump on the database host, its copy on the vault.
        local = topo.ssh(host, "sha256sum %s" % backup["path"]).stdout.split()[0]
        check = topo.ssh(VAULT, "cd %s && sha256sum -c %s.sha256 && sha256sum %s" % (remote_dir, name, name),
                         check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.splitlines()[0] == "%s: OK" % name
        assert check.stdout.splitlines()[1].split()[0] == local == backup["sha256"]
        assert json.loads((remote_dir / (name + ".manifest.json")).read_text())["database"] == DATABASE


def test_a_rerun_over_ssh_changes_nothing_on_either_host(runs):
    first, rerun = recap(runs["first"].stdout), recap(runs["rerun"].stdout)
    assert runs["rerun"].returncode == 0, runs["rerun"].stdout[-4000:]
    for host in DB_HOSTS:
        assert first[host]["changed"] > 0, "the first release changed the host"
        assert rerun[host]["changed"] == 0 and rerun[host]["failed"] == 0, rerun


def test_the_admin_password_appears_in_no_output_artifact_or_command_line(topo, runs):
    secret = topo.admin_password
    for name in ("first", "rerun"):
        assert secret not in runs[name].stdout + runs[name].stderr, "%s run output" % name
    watch = runs["watch"]
    assert watch.samples > 100, "the command-line watch ran during the releases"
    assert watch.leaks == [], watch.leaks[:3]
    scanned = 0
    for host in topo.hosts():
        for path in topo.host_dir(host).rglob("*"):
            if not path.is_file() or "mysql" in path.relative_to(topo.host_dir(host)).parts[:1]:
                continue  # mysql/ is the server's own data directory
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            assert secret.encode() not in data, path
            scanned += 1
    assert scanned > 10, "records, reports, backups, manifests and vault copies were scanned"
