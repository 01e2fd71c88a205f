"""The backup phase against a real MariaDB: published only verified, checks that catch damage, restore test.

Module-level checks run the module files as Ansible does (arguments from a file, never argv); phase-level checks
run playbooks/backup.yml for real.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params
from helpers import local_host_vars, recap, run_playbook, write_inventory

ROOT = Path(__file__).resolve().parent.parent.parent
APP = ROOT / "examples" / "app"
RUNNER = ("import runpy, sys, ansible.module_utils as m; m.__path__.append(%r); "
          "runpy.run_path(sys.argv.pop(1), run_name='__main__')" % str(ROOT / "module_utils"))


# -- helpers shared with test_backup_faults.py ------------------------------------------------------------------
def load_app_schema(box, db):
    """The example application's schema and seed, the canonical tables, and an event (client: DELIMITER)."""
    for path in (APP / "db" / "schema_pre_release.sql", APP / "db" / "seed.sql",
                 APP / "infra" / "ddls" / "create_distributed_tables.sql"):
        with open(path, "rb") as handle:
            subprocess.run(["mariadb", "--no-defaults", "-S", box.socket, "-uroot", db], stdin=handle, check=True)
    box.sql(["CREATE EVENT purge_delivered ON SCHEDULE EVERY 1 DAY ON COMPLETION PRESERVE ENABLE "
             "COMMENT 'purge' DO DELETE FROM outbox WHERE status = 'delivered'",
             "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
             "SELECT 'order', id, 'order.created', CONCAT('{\"order\":', id, '}') FROM orders"], database=db)


def fill_big_table(box, db, mb):
    """A table of about `mb` MiB of poorly compressible text (md5 strings), from the Sequence engine."""
    rows = int(mb * 1024 * 1024 / 140)
    box.sql(["CREATE TABLE big (id BIGINT AUTO_INCREMENT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32), "
             "d CHAR(32)) ENGINE=InnoDB",
             "INSERT INTO big (a, b, c, d) SELECT MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()) "
             "FROM seq_1_to_%d" % rows], database=db)


def run_module(name, args, check_mode=False):
    """Run library/<name>.py as Ansible would; returns its JSON result."""
    args = dict(args, _ansible_check_mode=check_mode)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / ("args-%s.json" % uuid.uuid4().hex)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        out = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "library" / (name + ".py")), str(path)],
                             capture_output=True, text=True, timeout=300)
    finally:
        path.unlink()
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, "module %s printed no result: %s %s" % (name, out.stdout, out.stderr)
    return json.loads(lines[-1])


def backup_inventory(tmp_path, box, db, backup_dir, **extra):
    hv = local_host_vars(box, ADMIN_USER, ADMIN_PASSWORD, release_db_name=db, release_version="v1.2.0",
                         release_backup_dir=str(backup_dir), release_artifacts_dir=str(tmp_path / "artifacts"),
                         release_environment="staging", lock_enabled=False, **extra)
    return write_inventory(tmp_path / "inventory" / "hosts.yml", {"db1": hv})


def record(tmp_path, version="v1.2.0"):
    return json.loads((tmp_path / "artifacts" / version / "release.json").read_text())


def files_in(directory):
    return sorted(os.listdir(directory))


def throwaway_databases(box):
    return [row[0] for row in box.sql("SHOW DATABASES") if "__dbrelease_restore_" in row[0]]


def rewrite_backup(path, transform):
    """Replace a .sql.gz backup's SQL with transform(sql) and give it a matching .sha256 (so only the content
    checks can catch what transform did)."""
    with gzip.open(path, "rb") as handle:
        sql = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(transform(sql))
    digest = subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[0]
    Path(path + ".sha256").write_text("%s  %s\n" % (digest, os.path.basename(path)))


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture
def app_db(mariadb, dbname):
    load_app_schema(mariadb, dbname)
    return dbname


@pytest.fixture
def dumped(mariadb, app_db, tmp_path):
    """One backup of the app database taken by the module (synchronously)."""
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    result = run_module("db_backup", dict(login_params(mariadb), database=app_db, backup_dir=str(backup_dir),
                                          label="v1"))
    assert result.get("changed") is True, result
    return result


# -- the dump ----------------------------------------------------------------------------------------------------
def test_backup_is_published_verified_with_sha256sum_file_and_manifest(mariadb, app_db, dumped, tmp_path):
    path = dumped["path"]
    names = files_in(tmp_path / "backups")
    base = os.path.basename(path)
    assert names == [base, base + ".manifest.json", base + ".sha256"]
    check = subprocess.run(["sha256sum", "-c", base + ".sha256"], cwd=tmp_path / "backups", capture_output=True,
                           text=True)
    assert check.returncode == 0 and check.stdout.strip() == base + ": OK"
    assert dumped["checks"] == {"checksum": True, "decompress": True, "trailer": True}
    manifest = json.loads(Path(dumped["manifest"]).read_text())
    assert manifest["database"] == app_db and manifest["sha256"] == dumped["sha256"]
    assert manifest["bytes"]["compressed"] == os.path.getsize(path)
    assert manifest["bytes"]["uncompressed"] == len(gzip.open(path).read())
    assert manifest["position"]["binlog_file"].startswith("binlog.") and manifest["position"]["gtid"]
    tables = {t["name"]: t for t in manifest["tables"]}
    assert tables["orders"]["type"] == "table" and tables["orders"]["rows_estimate"] > 0
    assert tables["order_totals"]["type"] == "view"
    assert manifest["server"]["flavor"] == "mariadb" and "mariadb-dump" in manifest["tools"]
    assert not any("defaults-extra-file" in arg for arg in manifest["command"])


def test_dump_has_no_create_database_or_use_and_holds_routines_triggers_events(dumped):
    sql = gzip.open(dumped["path"]).read().decode()
    assert not re.search(r"^CREATE DATABASE|^USE ", sql, re.M)
    for needle in ("PROCEDURE `user_order_count`", "TRIGGER IF NOT EXISTS orders_status_default",
                   "EVENT `purge_delivered`", "CHANGE MASTER TO MASTER_LOG_FILE"):
        assert needle in sql
    assert sql.rstrip().splitlines()[-1].startswith("-- Dump completed")


def test_zstd_compression_writes_a_verified_sql_zst(mariadb, app_db, tmp_path):
    result = run_module("db_backup", dict(login_params(mariadb), database=app_db, backup_dir=str(tmp_path),
                                          compression="zstd"))
    assert result["path"].endswith(".sql.zst") and result["compressor"] == "zstd"
    out = subprocess.run(["zstd", "-dc", result["path"]], capture_output=True, check=True).stdout
    assert out.rstrip().splitlines()[-1].startswith(b"-- Dump completed")


def test_backup_of_a_missing_database_fails_naming_it_and_writes_nothing(mariadb, tmp_path):
    result = run_module("db_backup", dict(login_params(mariadb), database="no_such_db_x", backup_dir=str(tmp_path)))
    assert result["failed"] and "no_such_db_x does not exist" in result["msg"]
    assert ADMIN_PASSWORD not in json.dumps(result)
    assert files_in(tmp_path) == []


def test_check_mode_reports_the_file_and_creates_nothing(mariadb, app_db, tmp_path):
    result = run_module("db_backup", dict(login_params(mariadb), database=app_db, backup_dir=str(tmp_path),
                                          label="v1"), check_mode=True)
    assert result["changed"] is True and result["path"].startswith(str(tmp_path / (app_db + "_v1_")))
    assert "--single-transaction" in result["command"] and "OPTION_FILE" not in result["command"]
    assert files_in(tmp_path) == []


def test_rerun_with_the_same_label_reuses_the_valid_backup_and_reports_no_change(mariadb, app_db, dumped, tmp_path):
    again = run_module("db_backup", dict(login_params(mariadb), database=app_db,
                                         backup_dir=str(tmp_path / "backups"), label="v1"))
    assert again["changed"] is False and again["reused"] is True and again["path"] == dumped["path"]
    # A reused backup must still be valid: corrupt it and the next run dumps a new one.
    with open(dumped["path"], "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00")
    third = run_module("db_backup", dict(login_params(mariadb), database=app_db,
                                         backup_dir=str(tmp_path / "backups"), label="v1"))
    assert third["changed"] is True and third["path"] != dumped["path"]


# -- integrity checks ---------------------------------------------------------------------------------------------
def test_verify_passes_a_good_backup(dumped, app_db):
    result = run_module("backup_verify", {"path": dumped["path"], "database": app_db})
    assert not result.get("failed") and result["failed_checks"] == []
    assert result["checks"] == {"checksum": True, "decompress": True, "trailer": True, "manifest": True}


def test_verify_catches_a_truncated_file_and_says_which_checks_failed(dumped):
    size = os.path.getsize(dumped["path"])
    os.truncate(dumped["path"], size // 2)
    result = run_module("backup_verify", {"path": dumped["path"]})
    assert result["failed"]
    assert set(result["failed_checks"]) == {"checksum", "decompress", "trailer"}
    assert "checksum check failed: sha256 mismatch" in result["msg"]
    assert "decompress check failed" in result["msg"]


def test_verify_catches_one_corrupted_byte(dumped):
    with open(dumped["path"], "r+b") as handle:
        handle.seek(os.path.getsize(dumped["path"]) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    result = run_module("backup_verify", {"path": dumped["path"]})
    assert result["failed"] and "checksum" in result["failed_checks"]
    assert "checksum check failed: sha256 mismatch" in result["msg"]


def test_verify_catches_a_dump_cut_short_even_with_a_matching_checksum(dumped):
    rewrite_backup(dumped["path"], lambda sql: sql[: len(sql) * 2 // 3])
    result = run_module("backup_verify", {"path": dumped["path"]})
    assert result["failed"] and result["failed_checks"] == ["trailer", "manifest"]
    assert "trailer check failed: the dump does not end with '-- Dump completed'" in result["msg"]


# -- restore test ---------------------------------------------------------------------------------------------
def test_restore_test_matches_every_object_and_row_and_drops_the_copy(mariadb, app_db, dumped):
    result = run_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=app_db))
    assert not result.get("failed"), result.get("msg")
    assert result["ok"] and result["problems"] == [] and result["changed"] is False
    assert result["objects"] == {"tables": 6, "views": 2, "routines": 1, "triggers": 1, "events": 1}
    assert result["rows"]["orders"]["source"] == result["rows"]["orders"]["restored"] > 0
    assert result["events_disabled"] == 1
    assert throwaway_databases(mariadb) == []


def test_restore_test_catches_a_dump_that_lacks_a_table(mariadb, app_db, dumped):
    def drop_products(sql):
        start = sql.index(b"--\n-- Table structure for table `products`")
        end = sql.index(b"--\n-- Table structure for table `refresh_tokens`")
        return sql[:start] + sql[end:]

    rewrite_backup(dumped["path"], drop_products)
    verify = run_module("backup_verify", {"path": dumped["path"]})
    assert verify["checks"]["checksum"] and verify["checks"]["trailer"]  # only the restore test can see it
    result = run_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=app_db))
    assert result["failed"] and result["check"] == "compare"
    assert "table products is missing from the restored copy" in result["msg"]
    assert throwaway_databases(mariadb) == []


def test_restore_test_catches_a_row_count_difference_when_exact(mariadb, app_db, dumped):
    mariadb.sql("INSERT INTO products (sku, title, price_cents) VALUES ('late-sku', 'after the dump', 1)",
                database=app_db)
    exact = run_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=app_db))
    assert exact["failed"] and re.search(r"table products has \d+ rows in the restored copy but \d+ in the source",
                                         exact["msg"])
    live = run_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=app_db,
                                                  exact_counts=False))
    assert not live.get("failed") and live["live_differences"]["products"]["difference"] == 1


def test_restore_test_drops_the_copy_when_the_restore_itself_fails(mariadb, app_db, dumped):
    rewrite_backup(dumped["path"], lambda sql: sql.replace(b"INSERT INTO `orders`", b"INSERT INTO `orders` oops", 1))
    result = run_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=app_db))
    assert result["failed"] and result["check"] == "restore" and "restore check failed" in result["msg"]
    assert "ERROR 1064" in result["msg"] and ADMIN_PASSWORD not in result["msg"]
    assert throwaway_databases(mariadb) == []


# -- recent backup (preflight) --------------------------------------------------------------------------------
def test_recent_finds_the_newest_valid_backup_and_judges_its_age(mariadb, app_db, dumped, tmp_path):
    args = {"backup_dir": str(tmp_path / "backups"), "database": app_db}
    fresh = run_module("backup_recent", dict(args, max_age_hours=1))
    assert fresh["found"] and fresh["valid"] and fresh["recent"] and fresh["path"] == dumped["path"]
    old = run_module("backup_recent", dict(args, max_age_hours=0))
    assert old["valid"] and not old["recent"] and "backup_recent_max_age_hours" in old["reason"]
    with open(dumped["path"], "ab") as handle:
        handle.write(b"x")
    corrupt = run_module("backup_recent", dict(args, max_age_hours=1))
    assert corrupt["found"] and corrupt["valid"] is False and not corrupt["recent"]
    none = run_module("backup_recent", dict(args, database=app_db + "_other"))
    assert not none["found"] and not none["recent"] and "no backup of" in none["reason"]


# -- the phase, through ansible-playbook ----------------------------------------------------------------------
def test_backup_phase_records_outputs_then_a_rerun_changes_nothing(mariadb, app_db, tmp_path):
    backup_dir = tmp_path / "backups"
    inventory = backup_inventory(tmp_path, mariadb, app_db, backup_dir)
    first = run_playbook("playbooks/backup.yml", inventory)
    assert recap(first.stdout)["db1"]["failed"] == 0, first.stdout[-3000:]
    assert ADMIN_PASSWORD not in first.stdout + first.stderr
    phase = record(tmp_path)["phases"]["backup"]
    assert phase["status"] == "ok" and phase["changed"] is True
    assert phase["path"].startswith(str(backup_dir)) and os.path.getsize(phase["path"]) == phase["bytes"]
    assert phase["verified"] == {"checksum": True, "decompress": True, "trailer": True}
    assert phase["restore_test"]["ran"] and phase["restore_test"]["ok"]
    fastest = next(t for t in ("igzip", "pigz", "gzip") if shutil.which(t))  # level 1: igzip where installed
    assert phase["compression"] == "gzip" and phase["compressor"] == fastest and len(phase["sha256"]) == 64
    assert phase["manifest"] == phase["path"] + ".manifest.json" and phase["duration_s"] > 0
    second = run_playbook("playbooks/backup.yml", inventory)
    assert recap(second.stdout)["db1"]["changed"] == 0, second.stdout[-3000:]
    assert record(tmp_path)["phases"]["backup"]["reused"] is True


def test_backup_phase_check_mode_creates_no_file(mariadb, app_db, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    inventory = backup_inventory(tmp_path, mariadb, app_db, backup_dir)
    out = run_playbook("playbooks/backup.yml", inventory, check=True)
    assert recap(out.stdout)["db1"]["failed"] == 0, out.stdout[-3000:]
    assert "would dump %s to %s/%s_v1.2.0_" % (app_db, backup_dir, app_db) in out.stdout
    assert files_in(backup_dir) == []


def test_preflight_records_the_recent_valid_backup(mariadb, app_db, dumped, tmp_path):
    inventory = backup_inventory(tmp_path, mariadb, app_db, Path(dumped["path"]).parent)
    out = run_playbook("playbooks/preflight.yml", inventory)
    assert recap(out.stdout)["db1"]["failed"] == 0, out.stdout[-3000:]
    recent = record(tmp_path)["phases"]["preflight"]["backup_recent"]
    assert recent["path"] == dumped["path"] and recent["valid"] is True and recent["recent"] is True
    assert "Recent valid backup: %s" % dumped["path"] in out.stdout


@contextlib.contextmanager
def stalled_dump(box, db, seconds, started_when=None):
    """Hold a write lock on a table for `seconds`: the dump's FLUSH TABLES WITH READ LOCK waits for it, so the
    dump runs (silently, from the server's side) at least that long. With `started_when` (a callable), the seconds
    count from when it first returns true (the dump has started), not from now: on a loaded machine the playbook
    may take a while to get there."""
    conn = box.root(db)
    with conn.cursor() as cur:
        cur.execute("LOCK TABLES orders WRITE")
    def release():  # closing the session releases the lock
        if conn.open:
            conn.close()

    def release_later():
        deadline = time.monotonic() + 300
        while started_when is not None and not started_when() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(seconds)
        release()

    timer = threading.Thread(target=release_later, daemon=True)
    timer.cancel = release  # the context's exit releases the lock whatever the thread is doing
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        release()


def test_long_dump_shows_progress_at_least_every_10_seconds(mariadb, app_db, tmp_path):
    backups = tmp_path / "backups"
    inventory = backup_inventory(tmp_path, mariadb, app_db, backups, backup_restore_test=False)
    dump_started = []

    def dumping():
        if not dump_started and backups.is_dir() and any(n.endswith(".partial") for n in os.listdir(backups)):
            dump_started.append(time.monotonic())
        return bool(dump_started)

    with stalled_dump(mariadb, app_db, 16, started_when=dumping):
        out = run_playbook("playbooks/backup.yml", inventory)
        finished = time.monotonic()
    took = finished - dump_started[0] if dump_started else 0
    assert recap(out.stdout)["db1"]["failed"] == 0, out.stdout[-3000:]
    lines = [line for line in out.stdout.splitlines() if "] backup of %s dumping:" % app_db in line]
    assert took > 16 and len(lines) >= 2, out.stdout[-3000:]
    assert re.search(r"\[db1\] backup of \w+ dumping: [\d.]+ (B|KiB|MiB) dumped, [\d.]+ (B|KiB|MiB) written, "
                     r"[\d.]+ (B|KiB|MiB)/s, \d+s elapsed", lines[-1])


def test_a_job_whose_controller_stops_polling_stops_itself_and_removes_its_partial(mariadb, app_db, tmp_path):
    args = dict(login_params(mariadb), database=app_db, backup_dir=str(tmp_path), lease_seconds=2)
    with stalled_dump(mariadb, app_db, 30):
        started = run_module("db_backup", dict(args, mode="start"))
        assert started["finished"] is False and started["job_dir"]
        # The detached job opens its partial file on its own time (later on a loaded machine): wait for it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(n.endswith(".partial") for n in files_in(tmp_path)):
            time.sleep(0.02)
        assert any(n.endswith(".partial") for n in files_in(tmp_path))
        # nobody polls: the lease (2 s) expires and the job stops, long before the 30 s stall ends
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and files_in(tmp_path):
            time.sleep(0.2)
        assert files_in(tmp_path) == []
        status = run_module("db_backup", {"mode": "status", "job_dir": started["job_dir"]})
    assert status["state"] == "failed" and "stopped polling" in status["msg"]
    assert "no backup was published" in status["msg"]
    assert not os.path.exists(started["job_dir"])  # a finished job's directory is removed once read


def test_controller_interrupt_cancels_the_dump_and_leaves_no_backup(mariadb, app_db, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    inventory = backup_inventory(tmp_path, mariadb, app_db, backup_dir, backup_restore_test=False)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    with stalled_dump(mariadb, app_db, 40):
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/backup.yml",
                                 "-i", str(inventory)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(n.endswith(".partial") for n in files_in(backup_dir)):
                time.sleep(0.2)
            assert any(n.endswith(".partial") for n in files_in(backup_dir)), "the dump never started"
            time.sleep(3)
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground process group
            output = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and files_in(backup_dir):
            time.sleep(0.2)
        assert files_in(backup_dir) == [], output[-3000:]
        dumps = [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
                 .splitlines() if "mariadb-dump" in line and line.endswith(" " + app_db)]
        assert dumps == []
    # Once the lock is gone a dump that was still running would publish a file: there must be none.
    time.sleep(2)
    assert files_in(backup_dir) == []


def _fds(pid):
    """{fd: what it points to} of a live process."""
    out = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        with contextlib.suppress(OSError):
            out[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
    return out


def test_the_dump_job_started_in_ansibles_worker_holds_none_of_the_controllers_pipes(mariadb, app_db, tmp_path):
    """On the controller the job is forked from Ansible's worker itself (no module process): once detached it must
    keep none of that worker's descriptors, above all its pipes to Ansible's main process, nor the terminal's."""
    backup_dir, job_tmp = tmp_path / "backups", tmp_path / "jobs"
    backup_dir.mkdir()
    job_tmp.mkdir()
    inventory = backup_inventory(tmp_path, mariadb, app_db, backup_dir, backup_restore_test=False)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), TMPDIR=str(job_tmp))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/backup.yml",
                             "-i", str(inventory)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        with stalled_dump(mariadb, app_db, 60):
            job_pid, deadline = None, time.monotonic() + 60
            while job_pid is None and time.monotonic() < deadline:
                for status in job_tmp.glob("dbrelease-backup-job-*/status.json"):
                    with contextlib.suppress(OSError, ValueError):
                        job_pid = json.loads(status.read_text()).get("pid")
                time.sleep(0.1)
            assert job_pid, "the backup job never reported"
            controller = _fds(proc.pid)
            job = _fds(job_pid)
            with open("/proc/%d/cmdline" % job_pid, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode()
        output = proc.communicate(timeout=120)[0]
    finally:  # whatever failed above, the playbook does not outlive the test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert recap(output)["db1"]["failed"] == 0, output[-3000:]
    # Forked from Ansible's worker (its command line), not from a module process (python ... AnsiballZ_...).
    assert "ansible-playbook" in cmdline and "AnsiballZ" not in cmdline, cmdline
    assert all(job.get(fd) == os.devnull for fd in (0, 1, 2)), job
    pipes = {target for target in controller.values() if target.startswith(("pipe:", "socket:"))}
    assert pipes, controller  # Ansible's main process talks to its workers through pipes
    shared = {fd: target for fd, target in job.items() if target in pipes}
    assert shared == {}, (shared, job)
