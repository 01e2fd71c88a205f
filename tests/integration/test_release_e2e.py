"""End-to-end: `release.yml` against a real MariaDB loaded with the example app, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import local_host_vars, recap, run_playbook, write_inventory
from sandbox_db import Sandbox

VERSION = "v9.9.0-e2e"
DB = "arisgourmet"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"


def load_example(box: Sandbox):
    box.sql("CREATE DATABASE IF NOT EXISTS `%s`" % DB)
    client = shutil.which("mariadb") or shutil.which("mysql")
    for name in ("schema_pre_release.sql", "seed.sql"):
        with open(ROOT / "examples/app/db" / name, "rb") as handle:
            subprocess.run([client, "--no-defaults", "-uroot", "-S", box.socket, DB], stdin=handle, check=True)


def make_repo(base: Path) -> Path:
    repo = base / "app-repo"
    shutil.copytree(ROOT / "examples/app", repo, ignore=shutil.ignore_patterns("node_modules"))
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.test", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.test")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


class Release:
    """One example database on a server of its own, and an inventory that releases it."""

    def __init__(self, base: Path, box: Sandbox, **overrides):
        self.base, self.box = base, box
        self.artifacts = base / "artifacts"
        self.backups = base / "backups"
        host_vars = local_host_vars(
            box, ADMIN_USER, ADMIN_PASSWORD,
            release_db_name=DB,
            release_environment="staging",
            release_ddl_files=[str(DDL)],
            release_migration_command="npm run migrate:run",
            release_migration_chdir=str(ROOT / "examples/app/backend"),
            release_backup_dir=str(self.backups),
            release_artifacts_dir=str(self.artifacts),
            release_git_repo=str(make_repo(base)),
            # This staging database tags its releases itself (by default only production does).
            release_tag_environment="staging",
        )
        host_vars.update(overrides)
        self.inventory = write_inventory(base / "inventory.yml", {"db1": host_vars})

    def run(self, **kwargs):
        extra = {"release_version": VERSION}
        extra.update(kwargs.pop("extra_vars", {}))
        return run_playbook("release.yml", self.inventory, extra_vars=extra, **kwargs)

    @property
    def record(self) -> dict:
        return json.loads((self.artifacts / VERSION / "release.json").read_text())

    def tables(self):
        return {row[0] for row in self.box.sql("SHOW TABLES", DB)}


@pytest.fixture
def release(private_mariadb):
    base = Path(short_tmpdir("dbr-e2e-"))
    load_example(private_mariadb)
    yield Release(base, private_mariadb)
    shutil.rmtree(base, ignore_errors=True)


def _fail_text(proc):
    return "\n".join([proc.stdout[-6000:], proc.stderr[-3000:]])


def test_full_release_records_every_phase_and_a_rerun_changes_nothing(release):
    first = release.run()
    assert first.returncode == 0, _fail_text(first)
    assert {"outbox", "refresh_tokens"} <= release.tables()
    record = release.record
    for phase in ("preflight", "backup", "grants", "schema", "migrate", "verify", "tag"):
        entry = record["phases"][phase]
        assert entry["status"] == "ok", (phase, entry)
        assert {"changed", "started", "finished"} <= set(entry), (phase, entry)
    backup = record["phases"]["backup"]
    assert Path(backup["path"]).is_file() and backup["bytes"] == Path(backup["path"]).stat().st_size
    assert len(backup["sha256"]) == 64
    assert record["phases"]["schema"]["changed"] is True
    assert (release.artifacts / VERSION / "report.md").is_file()

    second = release.run()
    assert second.returncode == 0, _fail_text(second)
    assert recap(second.stdout)["db1"]["changed"] == 0, second.stdout[-4000:]
    assert release.record["phases"]["schema"]["changed"] is False


def test_check_mode_changes_nothing_in_the_database(release):
    before = release.tables()
    proc = release.run(check=True, diff=True)
    assert proc.returncode == 0, _fail_text(proc)
    assert release.tables() == before
    assert not (release.artifacts / VERSION / "release.json").exists()
    assert (release.artifacts / VERSION / "release.check.json").is_file()
    assert not list(release.backups.glob("*.sql*")) if release.backups.exists() else True


def test_wrong_password_fails_in_preflight_naming_user_and_host_and_changes_nothing(release):
    release.inventory = write_inventory(
        release.base / "bad.yml",
        {"db1": dict(json.loads(json.dumps(_host_vars(release))), release_db_admin_password="Wr0ng-Pw-xyz")})
    before = release.tables()
    proc = release.run()
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "preflight" in out.lower()
    assert "db_admin@socket %s" % release.box.socket in out
    assert "Wr0ng-Pw-xyz" not in out and ADMIN_PASSWORD not in out
    assert release.record["phases"]["preflight"]["status"] == "failed"
    assert "backup" not in release.record["phases"]
    assert release.tables() == before


def test_unreachable_server_fails_in_preflight_naming_the_endpoint(release):
    hv = _host_vars(release)
    hv.update(release_db_socket="", release_db_host="127.0.0.1", release_db_port=1)
    release.inventory = write_inventory(release.base / "unreachable.yml", {"db1": hv})
    proc = release.run()
    assert proc.returncode != 0
    assert "db_admin@127.0.0.1:1" in proc.stdout
    assert release.record["phases"]["preflight"]["status"] == "failed"


def test_ddl_syntax_error_stops_in_schema_with_the_backup_intact_and_recorded(release):
    bad = release.base / "bad.sql"
    bad.write_text(DDL.read_text() + "\nCREATE TABLE IF NOT EXISTS broken (id INT PRIMARY KEY,,);\n")
    hv = _host_vars(release)
    hv["release_ddl_files"] = [str(bad)]
    release.inventory = write_inventory(release.base / "bad-ddl.yml", {"db1": hv})
    proc = release.run()
    assert proc.returncode != 0
    record = release.record
    assert record["phases"]["schema"]["status"] == "failed"
    assert "bad.sql" in record["phases"]["schema"]["error"]
    assert "migrate" not in record["phases"] or record["phases"]["migrate"]["status"] != "ok"
    backup = record["phases"]["backup"]
    assert backup["status"] == "ok"
    check = subprocess.run(["sha256sum", "-c", Path(backup["path"]).name + ".sha256"],
                           cwd=Path(backup["path"]).parent, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def _host_vars(release):
    import yaml

    return dict(yaml.safe_load(release.inventory.read_text())["all"]["children"]["databases"]["hosts"]["db1"])


class ProcessWatcher(threading.Thread):
    """Reads every process's command line and environment-free argv every few milliseconds."""

    def __init__(self, needle: str):
        super().__init__(daemon=True)
        self.needle = needle.encode()
        self.seen = []
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue
                if self.needle in argv:
                    self.seen.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self.samples += 1
            time.sleep(0.005)


def test_password_never_appears_in_ps_logs_reports_or_artifacts(release):
    watcher = ProcessWatcher(ADMIN_PASSWORD)
    watcher.start()
    try:
        proc = release.run(args=("-vvv",))
    finally:
        watcher.stop.set()
        watcher.join()
    assert proc.returncode == 0, _fail_text(proc)
    assert watcher.samples > 50, "the process list was not sampled often enough"
    assert watcher.seen == [], watcher.seen[:3]
    assert ADMIN_PASSWORD not in proc.stdout and ADMIN_PASSWORD not in proc.stderr
    written = [p for d in (release.artifacts, release.backups) for p in d.rglob("*") if p.is_file()]
    assert written, "the run wrote nothing to check"
    for path in written:
        data = path.read_bytes()
        if path.suffix in (".gz", ".zst"):
            tool = ["zstd", "-dc"] if path.suffix == ".zst" else ["gzip", "-dc"]
            data = subprocess.run(tool + [str(path)], capture_output=True).stdout
        assert ADMIN_PASSWORD.encode() not in data, path
