"""rollback.yml against a real MariaDB: after a release and a rollback, schema and data equal the pre-release
snapshot; without the confirmation, or with a backup that is not the one recorded, nothing changes."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ansible.module_utils.dbrelease.db import client_option_file
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params
from helpers import ROOT, local_host_vars, recap, run_playbook, write_inventory

VERSION = "v1.2.0-canonical-schema"
APP = ROOT / "examples" / "app"
DDL = APP / "infra" / "ddls" / "create_distributed_tables.sql"


def option_file(box):
    """The project's option file, readable by mariadb-dump too (which has no connect-timeout option)."""
    return client_option_file(login_params(box))


def mariadb_client(box, dbname, sql_file):
    with option_file(box) as cnf, open(sql_file, "rb") as handle:
        subprocess.run(["mariadb", "--defaults-extra-file=%s" % cnf, dbname], stdin=handle, check=True)


def snapshot(box, dbname):
    """Everything that makes up the database: objects' definitions, every row, default charset/collation."""
    conn = box.root(dbname)
    snap = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = %s", (dbname,))
            snap["schema"] = cur.fetchall()
            cur.execute("SHOW FULL TABLES")
            for name, kind in sorted(cur.fetchall()):
                if kind == "VIEW":
                    cur.execute("SHOW CREATE VIEW `%s`" % name)
                    snap["view " + name] = cur.fetchone()[1]
                    continue
                cur.execute("SHOW CREATE TABLE `%s`" % name)
                snap["table " + name] = cur.fetchone()[1]
                cur.execute("SELECT * FROM `%s`" % name)
                snap["rows " + name] = sorted(map(repr, cur.fetchall()))
            cur.execute("SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
                        "WHERE ROUTINE_SCHEMA = %s ORDER BY 1", (dbname,))
            snap["routines"] = cur.fetchall()
            cur.execute("SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, ACTION_STATEMENT "
                        "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY 1", (dbname,))
            snap["triggers"] = cur.fetchall()
    finally:
        conn.close()
    return snap


def take_backup(box, dbname, backup_dir: Path) -> dict:
    """A backup in the backup role's format: NAME.sql.gz + NAME.sql.gz.sha256 (sha256sum -c format)."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    path = backup_dir / ("%s_%s.sql.gz" % (dbname, VERSION))
    with option_file(box) as cnf:
        dump = subprocess.run(["mariadb-dump", "--defaults-extra-file=%s" % cnf, "--single-transaction",
                               "--routines", "--events", "--triggers", "--hex-blob", dbname],
                              check=True, capture_output=True).stdout
    path.write_bytes(gzip.compress(dump))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (backup_dir / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
    return {"path": str(path), "sha256": digest, "bytes": path.stat().st_size}


def release(box, dbname):
    """What a release does to the database: the DDL (new tables, a view), then the application writes rows."""
    mariadb_client(box, dbname, DDL)
    box.sql(["INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES ('order', '1', 'x', '{}')",
             "INSERT INTO refresh_tokens (user_id, token_hash, expires_at) VALUES (1, REPEAT('a', 64), NOW())",
             "UPDATE users SET name = 'changed' WHERE id <= 10",
             "DELETE FROM order_items WHERE order_id <= 5",
             "INSERT INTO users (email, name) VALUES ('new@example.test', 'New')",
             "CREATE PROCEDURE added_by_release() SELECT 1",
             "ALTER TABLE products ADD COLUMN stock INT NOT NULL DEFAULT 0"], database=dbname)


@pytest.fixture
def released(mariadb, dbname, tmp_path):
    """The example app's pre-release database, its verified backup recorded in release.json, then the release."""
    mariadb_client(mariadb, dbname, APP / "db" / "schema_pre_release.sql")
    mariadb_client(mariadb, dbname, APP / "db" / "seed.sql")
    before = snapshot(mariadb, dbname)
    backup = take_backup(mariadb, dbname, tmp_path / "backups")
    artifacts = tmp_path / "artifacts"
    record_dir = artifacts / VERSION
    record_dir.mkdir(parents=True)
    (record_dir / "release.json").write_text(json.dumps({
        "version": VERSION, "database": dbname, "host": "db1",
        "phases": {"backup": dict(backup, status="ok", changed=True)}}))
    release(mariadb, dbname)
    after = snapshot(mariadb, dbname)
    assert after != before
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=dbname,
                         release_artifacts_dir=str(artifacts), release_backup_dir=str(tmp_path / "backups"),
                         release_ddl_files=[str(DDL)])
    inv = write_inventory(tmp_path / "inv" / "hosts.yml", {"db1": hv})
    return dict(before=before, after=after, backup=backup, record_dir=record_dir, inv=inv, dbname=dbname)


def read_record(record_dir):
    return json.loads((record_dir / "release.json").read_text())


class ProcessWatcher(threading.Thread):
    """Reads every process's command line (as `ps` shows it) until stopped; keeps the ones of client tools."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.seen = set()

    def run(self):
        while not self.stop.is_set():
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if any(tool in args for tool in ("mariadb", "gzip", "pigz", "zstd", "ansible")):
                    self.seen.add(args)
            time.sleep(0.01)


def test_rollback_restores_the_pre_release_schema_and_data(mariadb, released):
    watcher = ProcessWatcher()
    watcher.start()
    try:
        result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={"release_rollback_confirm": True})
    finally:
        watcher.stop.set()
        watcher.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert watcher.seen and not [args for args in watcher.seen if ADMIN_PASSWORD in args]
    assert snapshot(mariadb, released["dbname"]) == released["before"]

    phase = read_record(released["record_dir"])["phases"]["rollback"]
    assert phase["status"] == "ok" and phase["changed"] is True
    assert phase["restored_from"] == released["backup"]["path"]
    assert phase["sha256"] == released["backup"]["sha256"]
    assert phase["character_set"] == "utf8mb4"
    # The database as the release left it was dumped first, so the rollback can itself be undone.
    safety = Path(phase["safety_dump"]["path"])
    assert safety.exists() and hashlib.sha256(safety.read_bytes()).hexdigest() == phase["safety_dump"]["sha256"]
    assert b"outbox" in gzip.decompress(safety.read_bytes())
    report = (released["record_dir"] / "report.md").read_text()
    assert "rollback" in report
    output = result.stdout + result.stderr
    assert ADMIN_PASSWORD not in output
    for path in released["record_dir"].rglob("*"):
        assert ADMIN_PASSWORD not in path.read_text(errors="replace")


def test_rollback_without_confirmation_explains_and_changes_nothing(mariadb, released):
    result = run_playbook(ROOT / "rollback.yml", released["inv"])
    assert result.returncode != 0
    assert "-e release_rollback_confirm=true" in result.stdout
    assert "Rollback not confirmed, nothing was changed" in result.stdout
    assert released["backup"]["path"] in result.stdout
    # Before the confirmation: the backup's age and what was written since it. This record (written by the fixture)
    # holds neither the backup's time nor its binary log position, and the text says so rather than guessing.
    assert "taken at an unknown time" in result.stdout
    assert "Written since the backup: the binary log cannot tell (no binary log position was recorded" in result.stdout
    assert snapshot(mariadb, released["dbname"]) == released["after"]
    assert "rollback" not in read_record(released["record_dir"])["phases"]
    assert recap(result.stdout)["db1"]["changed"] == 0


def test_rollback_refuses_a_backup_whose_checksum_does_not_match(mariadb, released):
    path = Path(released["backup"]["path"])
    data = gzip.decompress(path.read_bytes()).replace(b"User 1", b"User X", 1)
    path.write_bytes(gzip.compress(data))  # a complete, valid dump, but not the one the release took
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={"release_rollback_confirm": True})
    assert result.returncode != 0
    assert "checksum mismatch" in result.stdout, result.stdout
    assert snapshot(mariadb, released["dbname"]) == released["after"]
    phase = read_record(released["record_dir"])["phases"]["rollback"]
    assert phase["status"] == "failed" and "checksum mismatch" in phase["error"]


def test_rollback_refuses_a_truncated_dump_even_with_a_matching_checksum(mariadb, released, tmp_path):
    path = Path(released["backup"]["path"])
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) // 2]))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={
        "release_rollback_confirm": True, "rollback_backup_path": str(path), "rollback_backup_sha256": digest})
    assert result.returncode != 0
    assert "checksum mismatch" in result.stdout  # the NAME.sha256 file beside it still names the real dump
    (path.parent / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={
        "release_rollback_confirm": True, "rollback_backup_path": str(path), "rollback_backup_sha256": digest})
    assert result.returncode != 0
    assert "the dump is incomplete" in result.stdout
    assert snapshot(mariadb, released["dbname"]) == released["after"]


def test_rollback_check_mode_verifies_and_plans_without_changing_anything(mariadb, released):
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={"release_rollback_confirm": True},
                          check=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Would restore" in result.stdout
    assert snapshot(mariadb, released["dbname"]) == released["after"]
    assert "rollback" not in read_record(released["record_dir"])["phases"]
    check = json.loads((released["record_dir"] / "release.check.json").read_text())
    assert "swap it in as %s with one RENAME TABLE" % released["dbname"] in check["phases"]["rollback"]["plan"]


def test_rollback_with_no_backup_in_the_record_says_what_is_missing(mariadb, released):
    (released["record_dir"] / "release.json").write_text(json.dumps({"version": VERSION, "phases": {}}))
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={"release_rollback_confirm": True})
    assert result.returncode != 0
    assert "records no verified backup" in result.stdout
    assert snapshot(mariadb, released["dbname"]) == released["after"]



def test_rollback_restores_what_the_real_backup_phase_saved(mariadb, dbname, tmp_path):
    """The same proof with the backup taken by playbooks/backup.yml (the backup role records phases.backup)."""
    mariadb_client(mariadb, dbname, APP / "db" / "schema_pre_release.sql")
    mariadb_client(mariadb, dbname, APP / "db" / "seed.sql")
    before = snapshot(mariadb, dbname)
    artifacts = tmp_path / "artifacts"
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=dbname,
                         release_artifacts_dir=str(artifacts), release_backup_dir=str(tmp_path / "backups"),
                         release_ddl_files=[str(DDL)])
    inv = write_inventory(tmp_path / "inv" / "hosts.yml", {"db1": hv})
    backup_run = run_playbook(ROOT / "playbooks/backup.yml", inv)
    assert backup_run.returncode == 0, backup_run.stdout[-3000:]
    backup = read_record(artifacts / VERSION)["phases"]["backup"]
    # The restore test read every table of its copy in full: each gets the digest a rollback's copy must match.
    digests = {t: c.get("digest") for t, c in backup["restore_test"]["checksums"].items()}
    assert digests and all(len(d or "") == 16 for d in digests.values()), digests
    release(mariadb, dbname)
    assert snapshot(mariadb, dbname) != before

    result = run_playbook(ROOT / "rollback.yml", inv, extra_vars={"release_rollback_confirm": True})
    assert result.returncode == 0, result.stdout[-3000:]
    assert snapshot(mariadb, dbname) == before
    phase = read_record(artifacts / VERSION)["phases"]["rollback"]
    assert phase["sha256"] == backup["sha256"]
    assert "checksums" in phase["verified"]["expected"] and phase["verified"]["problems"] == []


def test_rollback_restores_a_zstd_backup(mariadb, released):
    """`.sql.zst` backups (backup_compression: zstd) go through `zstd -dc | mariadb`."""
    gz = Path(released["backup"]["path"])
    zst = gz.with_name(gz.name.replace(".sql.gz", ".sql.zst"))
    subprocess.run(["zstd", "-q", "-o", str(zst)], input=gzip.decompress(gz.read_bytes()), check=True)
    digest = hashlib.sha256(zst.read_bytes()).hexdigest()
    (zst.parent / (zst.name + ".sha256")).write_text("%s  %s\n" % (digest, zst.name))
    result = run_playbook(ROOT / "rollback.yml", released["inv"], extra_vars={
        "release_rollback_confirm": True, "rollback_backup_path": str(zst), "rollback_backup_sha256": digest})
    assert result.returncode == 0, result.stdout[-3000:]
    assert snapshot(mariadb, released["dbname"]) == released["before"]


def test_full_release_then_rollback_gives_back_the_pre_release_database_and_the_report_says_so(
        mariadb, dbname, tmp_path):
    """release.yml (maintenance on, backup, grants, schema, verify, finish) then rollback.yml: the proof end to end,
    with report.md showing every phase, the health numbers beside their baseline, and the next commands."""
    mariadb_client(mariadb, dbname, APP / "db" / "schema_pre_release.sql")
    mariadb_client(mariadb, dbname, APP / "db" / "seed.sql")
    before = snapshot(mariadb, dbname)
    artifacts = tmp_path / "artifacts"
    flag = tmp_path / "maintenance.flag"
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=dbname,
                         release_artifacts_dir=str(artifacts), release_backup_dir=str(tmp_path / "backups"),
                         release_ddl_files=[str(DDL)], maintenance_enabled=True, maintenance_flag_path=str(flag))
    inv = write_inventory(tmp_path / "inv" / "hosts.yml", {"db1": hv})
    # The dry run skips verify: under --check the new tables do not exist, which verify reports as a failure.
    dry = run_playbook(ROOT / "release.yml", inv, check=True, args=("--skip-tags", "verify"))
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert snapshot(mariadb, dbname) == before and not flag.exists()
    assert (artifacts / VERSION / "report.check.md").read_text().startswith(
        "# Release %s on db1: OK (dry run, --check)" % VERSION)
    assert not (artifacts / VERSION / "release.json").exists()
    released = run_playbook(ROOT / "release.yml", inv)
    assert released.returncode == 0, released.stdout[-4000:]
    assert {"outbox", "refresh_tokens"} <= {row[0] for row in mariadb.sql("SHOW TABLES", dbname)}
    assert not flag.exists()  # on during the release, off at the end
    rec = read_record(artifacts / VERSION)
    assert rec["phases"]["maintenance"]["state"] == "off"
    report = (artifacts / VERSION / "report.md").read_text()
    assert report.startswith("# Release %s on db1: OK" % VERSION)
    for name in ("preflight", "maintenance", "backup", "schema", "verify", "tag"):
        assert "\n| %s | **" % name in report
    assert "| outbox.present | no | yes | changed |" in report  # the baseline (before the DDL) beside the result
    assert "Release %s on db1: OK" % VERSION in report
    rollback_cmd = ("ansible-playbook rollback.yml -i %s -e release_version=%s -e release_rollback_confirm=true"
                    % (inv, VERSION))
    assert rollback_cmd in report

    flag_seen = threading.Event()
    stop = threading.Event()

    def watch_flag():
        while not stop.is_set():
            if flag.exists():
                flag_seen.set()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_flag, daemon=True)
    watcher.start()
    try:
        result = run_playbook(ROOT / "rollback.yml", inv, extra_vars={"release_rollback_confirm": True})
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stdout[-4000:]
    assert snapshot(mariadb, dbname) == before
    assert flag_seen.is_set() and not flag.exists()  # in maintenance during the restore, not after it
    report = (artifacts / VERSION / "report.md").read_text()
    assert report.startswith("# Release %s on db1: ROLLED BACK" % VERSION)
    assert rec["phases"]["backup"]["path"] in report
