"""The migrate role as a release runs it: knex from the example backend (command driver) and the sql driver."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, short_tmpdir
from helpers import FINISH, PLAY_HEADER, local_host_vars, recap, run_playbook, write_inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "app"
BACKEND = EXAMPLE / "backend"
KNEX_MIGRATIONS = sorted(os.listdir(BACKEND / "migrations"))
SQL_MIGRATIONS = ["V1__backfill_outbox_order_events.sql", "V2__add_orders_outbox_event_id.sql"]

PLAYBOOK = """\
- name: Migrate under the release lock
  hosts: databases
  gather_facts: false
""" + PLAY_HEADER + """\
  tasks:
    - name: Take the release lock
      ansible.builtin.import_role:
        name: lock
    - name: Run the migrations
      ansible.builtin.import_role:
        name: migrate
    - name: Release the release lock
      ansible.builtin.import_role:
        name: lock
        tasks_from: release
""" + FINISH


def load_example(box, dbname):
    client = shutil.which("mariadb") or shutil.which("mysql")
    for rel in ("db/schema_pre_release.sql", "db/seed.sql", "infra/ddls/create_distributed_tables.sql"):
        with open(EXAMPLE / rel) as handle:
            subprocess.run([client, "--socket", box.socket, "-uroot", dbname], stdin=handle, check=True,
                           capture_output=True)


class Release:
    def __init__(self, box, dbname, **overrides):
        self.box, self.dbname = box, dbname
        self.base = Path(short_tmpdir("dbr-mig-"))
        self.artifacts = self.base / "artifacts"
        self.playbook = self.base / "migrate_play.yml"
        self.playbook.write_text(PLAYBOOK)
        host_vars = local_host_vars(box, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname,
                                    release_artifacts_dir=str(self.artifacts),
                                    lock_schema="lk_" + dbname)
        host_vars.update(overrides)
        self.inventory = write_inventory(self.base / "inventory.yml", {"db1": host_vars})

    def run(self, version="v1", check=False):
        proc = run_playbook(self.playbook, self.inventory, extra_vars={"release_version": version}, check=check)
        return proc, recap(proc.stdout).get("db1", {})

    def record(self, version="v1", check=False):
        return json.loads((self.artifacts / version / ("release.check.json" if check else "release.json")).read_text())

    def cleanup(self):
        self.box.sql("DROP DATABASE IF EXISTS `lk_%s`" % self.dbname)
        shutil.rmtree(self.base, ignore_errors=True)


class PsWatcher(threading.Thread):
    """Polls the process list while a run goes on; remembers any command line that shows the secret."""

    def __init__(self, secret):
        super().__init__(daemon=True)
        self.secret, self.seen, self.samples = secret, [], 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.samples += 1
            self.seen += [line for line in out.splitlines() if self.secret in line]
            self.stop.wait(0.05)


@pytest.fixture
def knex_release(mariadb, dbname):
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: the knex example needs them (apt-get install nodejs npm)")
    if not (BACKEND / "node_modules" / "knex").is_dir():
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(BACKEND)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, "npm ci failed: %s" % proc.stderr[-2000:]
    load_example(mariadb, dbname)
    release = Release(mariadb, dbname, release_migration_command="npm run migrate:run",
                      release_migration_chdir=str(BACKEND))
    yield release
    release.cleanup()


def test_knex_release_dry_run_lists_pending_then_applies_once_and_keeps_the_output(knex_release):
    proc, counts = knex_release.run(check=True)
    assert counts["failed"] == 0, proc.stdout
    dry = knex_release.record(check=True)["phases"]["migrate"]
    assert dry["driver"] == "command" and dry["pending"] == KNEX_MIGRATIONS and dry["applied"] == []
    assert knex_release.box.sql("SHOW TABLES LIKE 'knex_migrations'", knex_release.dbname) == ()

    watcher = PsWatcher(ADMIN_PASSWORD)
    watcher.start()
    try:
        proc, counts = knex_release.run()
    finally:
        watcher.stop.set()
        watcher.join()
    assert counts["failed"] == 0, proc.stdout
    assert watcher.samples > 5 and watcher.seen == []
    phase = knex_release.record()["phases"]["migrate"]
    assert phase["status"] == "ok" and phase["changed"] is True
    assert phase["applied"] == KNEX_MIGRATIONS and phase["history_table"] == "knex_migrations"
    output = Path(phase["output_file"])
    assert output.parent == knex_release.artifacts / "v1" / "migrate"
    assert "Batch 1 run: 2 migrations" in output.read_text()

    proc, counts = knex_release.run()
    assert counts["failed"] == 0 and counts["changed"] == 0, proc.stdout
    again = knex_release.record()["phases"]["migrate"]
    assert again["changed"] is False and again["applied"] == []
    assert "Already up to date" in Path(again["output_file"]).read_text()

    for path in knex_release.artifacts.rglob("*"):
        if path.is_file():
            assert ADMIN_PASSWORD not in path.read_text(errors="replace"), path


def test_sql_driver_release_applies_the_example_files_and_a_rerun_changes_nothing(mariadb, dbname):
    load_example(mariadb, dbname)
    release = Release(mariadb, dbname, migrate_sql_dir=str(EXAMPLE / "db" / "migrations"))
    try:
        proc, counts = release.run()
        assert counts["failed"] == 0, proc.stdout
        phase = release.record()["phases"]["migrate"]
        assert phase["driver"] == "sql" and phase["applied"] == SQL_MIGRATIONS and phase["changed"] is True
        assert "applied V2__add_orders_outbox_event_id.sql" in Path(phase["output_file"]).read_text()
        proc, counts = release.run()
        assert counts["failed"] == 0 and counts["changed"] == 0, proc.stdout
    finally:
        release.cleanup()


def test_a_failing_migration_stops_the_phase_records_the_file_and_keeps_the_output(mariadb, dbname):
    migrations = Path(short_tmpdir("dbr-sql-"))
    (migrations / "V1__ok.sql").write_text("CREATE TABLE a (id INT PRIMARY KEY);\n")
    (migrations / "V2__broken.sql").write_text("CREATE TABLE b (id INT PRIMARY KEY);\n"
                                               "INSERT INTO nowhere VALUES (1);\n")
    release = Release(mariadb, dbname, migrate_sql_dir=str(migrations))
    try:
        proc, counts = release.run()
        assert counts["failed"] == 1
        assert "V2__broken.sql failed at statement #2 (line 2)" in proc.stdout
        record = release.record()
        phase = record["phases"]["migrate"]
        assert phase["status"] == "failed" and "V2__broken.sql" in phase["error"]
        assert phase["failed_migration"] == "V2__broken.sql" and phase["applied"] == ["V1__ok.sql"]
        assert "FAILED V2__broken.sql" in Path(phase["output_file"]).read_text()
        # The failure path released the lock: the next release is not blocked by this one.
        assert record["phases"]["lock"]["released"] is True
        assert mariadb.sql("SELECT COUNT(*) FROM `lk_%s`.dbrelease_lock" % dbname)[0][0] == 0
    finally:
        release.cleanup()
        shutil.rmtree(migrations, ignore_errors=True)
