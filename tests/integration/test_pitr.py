"""Binary logs against real MariaDB servers with the binary log on (ROW format) and off: what was written since a
position, retention against the rollback window, archiving, and point-in-time recovery (restore the backup, replay up
to the position the schema phase recorded just before its first DDL)."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params, short_tmpdir
from dbstate import dump_db, run_sql, schema_state
from helpers import run_module
from sandbox_db import Sandbox

SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50) NOT NULL, credit DECIMAL(8,2) DEFAULT 0);
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id));
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(60));
CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
INSERT INTO customers (name) VALUES ('Ana'), ('Bo'), ('Cy');
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20);
"""


def start_box(**options):
    box = Sandbox(short_tmpdir("dbr-pitr-"), **options)
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    return box


@pytest.fixture(scope="module")
def row_box():
    box = start_box(binlog_format="ROW", binlog_expire_seconds=3600)
    yield box
    box.destroy()


@pytest.fixture
def app(row_box, tmp_path):
    db = "pitr_%s" % tmp_path.name[-6:].replace("-", "_")
    row_box.sql(["DROP DATABASE IF EXISTS `%s`" % db, "CREATE DATABASE `%s`" % db,
                 "CREATE DATABASE IF NOT EXISTS `%s_other`" % db,
                 "CREATE TABLE IF NOT EXISTS `%s_other`.ledger (id INT PRIMARY KEY AUTO_INCREMENT, v INT)" % db])
    run_sql(row_box, db, SCHEMA)
    backup = dump_db(row_box, db, tmp_path / ("%s.sql.gz" % db))
    yield dict(box=row_box, db=db, backup=backup, tmp=tmp_path)
    row_box.sql(["DROP DATABASE IF EXISTS `%s`" % db, "DROP DATABASE IF EXISTS `%s_other`" % db])


def writes_before_the_release(box, db):
    """The application's writes between the backup and the release: rows, updates, deletes, a write made from
    another default database, a write fired by a trigger, and writes to another database (never replayed here)."""
    box.sql(["INSERT INTO orders (customer_id, total) VALUES (3, 30), (1, 11)",
             "UPDATE customers SET credit = credit + 5 WHERE id IN (1, 2)",
             "DELETE FROM orders WHERE id = 2",
             "INSERT INTO `%s_other`.ledger (v) VALUES (1), (2)" % db], database=db)
    box.sql(["INSERT INTO `%s`.customers (name) VALUES ('Dee')" % db,
             "INSERT INTO ledger (v) VALUES (3)"], database=db + "_other")


def release(box, db, tmp_path):
    """The schema phase for real (schema_apply records the position just before its first DDL), then writes."""
    result = run_module("schema_apply", dict(login_params(box), db=db, ddl_contents=[
        "CREATE TABLE refunds (id INT PRIMARY KEY, order_id INT NOT NULL);\n"
        "ALTER TABLE orders ADD COLUMN note VARCHAR(40) NULL;\n"], ddl_names=["v2.sql"]))
    assert result.get("ok"), result.get("msg")
    box.sql(["INSERT INTO refunds VALUES (1, 1)", "INSERT INTO orders (customer_id, total, note) VALUES (2, 5, 'x')",
             "UPDATE customers SET name = 'changed after the release'"], database=db)
    return result["binlog_before_ddl"]


def purge_all_but_the_current(box, timeout=20):
    """PURGE BINARY LOGS: MariaDB keeps a file until its binlog checkpoint has passed, so retry for a while."""
    deadline = time.monotonic() + timeout
    while True:
        current = box.sql("SHOW MASTER STATUS")[0][0]
        box.sql("PURGE BINARY LOGS TO '%s'" % current)
        if len(box.sql("SHOW BINARY LOGS")) == 1:
            return
        assert time.monotonic() < deadline, box.sql("SHOW BINARY LOGS")
        time.sleep(0.2)


def gtids(box):
    """The GTIDs of every transaction in the server's binary logs, in order."""
    found = []
    for name, _size in box.sql("SHOW BINARY LOGS"):
        for row in box.sql("SHOW BINLOG EVENTS IN '%s'" % name):
            if row[2] == "Gtid":
                found.append(row[5].split()[-1])
    return found


def test_pitr_keeps_the_writes_made_between_the_backup_and_the_first_ddl(app):
    box, db = app["box"], app["db"]
    writes_before_the_release(box, db)
    wanted = schema_state(box, db)
    other = schema_state(box, db + "_other")
    stop = release(box, db, app["tmp"])
    assert stop["file"].startswith("binlog.") and stop["pos"] > app["backup"]["position"]["binlog_pos"]
    info = run_module("binlog_info", dict(login_params(box), database=db, since=app["backup"]["position"],
                                          until=stop))
    assert info["writes"]["transactions"] == 4 and info["writes"]["statement_events"] == 0, info["writes"]
    result = run_module("db_restore", dict(login_params(box), database=db, path=app["backup"]["path"],
                                           sha256=app["backup"]["sha256"], journal_dir=str(app["tmp"]),
                                           replay={"start": app["backup"]["position"], "stop": stop}))
    assert result.get("failed") is not True, result.get("msg")
    assert result["method"] == "swap" and result["pitr"]["transactions"] == 4
    assert schema_state(box, db) == wanted  # the writes before the release kept; its DDL and what came after gone
    assert schema_state(box, db + "_other") == other  # nothing of another database was replayed
    seen = gtids(box)
    assert len(seen) == len(set(seen)), "a replayed transaction logged a GTID again"
    assert not any((app["tmp"] / name).exists() for name in result["pitr"]["files"])  # fetched copies removed


def test_pitr_is_refused_when_the_range_holds_statement_format_writes(app):
    box, db = app["box"], app["db"]
    conn = box.root(db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO customers (name) VALUES ('by statement')")
    conn.close()
    before = schema_state(box, db)
    stop = release(box, db, app["tmp"])
    after = schema_state(box, db)
    result = run_module("db_restore", dict(login_params(box), database=db, path=app["backup"]["path"],
                                           sha256=app["backup"]["sha256"], journal_dir=str(app["tmp"]),
                                           replay={"start": app["backup"]["position"], "stop": stop}))
    assert result["failed"] and "statement-format event(s)" in result["msg"] and "binlog_format=ROW" in result["msg"]
    assert schema_state(box, db) == after != before


def command_logger(directory, tool, log):
    """A `tool` earlier on PATH that appends its command line to `log`, then runs the real one: every run seen,
    however short."""
    real = shutil.which(tool)
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / tool
    shim.write_text('#!/bin/sh\nprintf "%%s\\n" "$0 $*" >> "%s"\nexec "%s" "$@"\n' % (log, real))
    shim.chmod(0o755)
    return directory


def test_archived_binlogs_are_verified_and_serve_a_pitr_after_the_server_purged_them(tmp_path, monkeypatch):
    box = start_box(binlog_format="ROW")
    try:
        db = "shop"
        box.sql(["CREATE DATABASE shop", "CREATE DATABASE shop_other",
                 "CREATE TABLE shop_other.ledger (id INT PRIMARY KEY AUTO_INCREMENT, v INT)"])
        run_sql(box, db, SCHEMA)
        backup = dump_db(box, db, tmp_path / "shop.sql.gz")
        writes_before_the_release(box, db)
        wanted = schema_state(box, db)
        stop = release(box, db, tmp_path)
        archive = tmp_path / "binlogs"
        args = dict(login_params(box), since=backup["position"], dest_dir=str(archive), rotate=True)
        planned = run_module("binlog_archive", args, check=True)
        assert planned["changed"] and not archive.exists()
        log = tmp_path / "commands.log"
        shims = command_logger(tmp_path / "shims", "mariadb-binlog", log)
        with monkeypatch.context() as env:
            env.setenv("PATH", "%s:%s" % (shims, os.environ["PATH"]))
            first = run_module("binlog_archive", args)
        seen = log.read_text().splitlines()
        fetches = [cmd for cmd in seen if "--raw" in cmd]
        assert fetches and not [cmd for cmd in seen if ADMIN_PASSWORD in cmd]
        assert all("--defaults-extra-file=" in cmd for cmd in fetches)
        assert first["changed"] and first["files"] and all(f["copied"] for f in first["files"])
        for item in first["files"]:
            assert (archive / (item["file"] + ".sha256")).read_text().split()[0] == item["sha256"]
        again = run_module("binlog_archive", dict(args, rotate=False))
        assert again["changed"] is False and [f["file"] for f in again["files"]] == [f["file"] for f in first["files"]]
        purge_all_but_the_current(box)
        restore = dict(login_params(box), database=db, path=backup["path"], sha256=backup["sha256"],
                       journal_dir=str(tmp_path), replay={"start": backup["position"], "stop": stop})
        gone = run_module("db_restore", restore)
        assert gone["failed"] and "neither on the server nor in" in gone["msg"] and stop["file"] in gone["msg"]
        damaged = archive / first["files"][0]["file"]
        original = damaged.read_bytes()
        damaged.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        bad = run_module("db_restore", dict(restore, replay=dict(restore["replay"], binlog_dir=str(archive),
                                                                 format="ROW")))
        assert bad["failed"] and "checksum mismatch for archived binary log" in bad["msg"]
        damaged.write_bytes(original)
        done = run_module("db_restore", dict(restore, replay=dict(restore["replay"], binlog_dir=str(archive),
                                                                  format="ROW")))
        assert done.get("failed") is not True, done.get("msg")
        assert set(done["pitr"]["sources"].values()) == {"archive"}
        assert schema_state(box, db) == wanted
    finally:
        box.destroy()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_retention_is_judged_against_the_rollback_window_and_no_binlog_means_no_pitr(row_box, tmp_path):
    short = run_module("binlog_info", dict(login_params(row_box), window_hours=72))
    assert short["binlog"]["enabled"] and short["binlog"]["expire_seconds"] == 3600
    assert short["retention"]["ok"] is False and "expire after 1 h, before the end of the rollback window of 3 " \
        "days" in short["retention"]["msg"]
    assert run_module("binlog_info", dict(login_params(row_box), window_hours=0.5))["retention"]["ok"] is True
    box = start_box(log_bin=False)
    try:
        off = run_module("binlog_info", dict(login_params(box), window_hours=72, database="mysql",
                                             since={"file": "binlog.000001", "pos": 4}, rows_then={"db": 0}))
        assert off["binlog"]["enabled"] is False
        assert off["retention"]["pitr"] == "not possible"
        assert "point-in-time recovery is not possible: the server writes no binary log" in off["retention"]["msg"]
        assert off["writes_error"] == "the server writes no binary log"
        assert off["rows"]["db"]["now"] >= 0 and "row counts" in off["summary"]
    finally:
        box.destroy()
