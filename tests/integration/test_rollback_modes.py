"""rollback.yml's modes against real MariaDB servers: schema (the reverse plan, keeping the writes), pitr (the backup
plus the binary logs up to the release's first DDL), maintenance that stays on after a failed rollback, and the backup
phase's binary log checks and reuse refusal. Each test runs the real playbooks."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, short_tmpdir
from dbstate import run_sql, schema_state
from helpers import ROOT, local_host_vars, run_playbook, write_inventory
from sandbox_db import Sandbox

VERSION = "v3.1.0-refunds"
APP = ROOT / "examples" / "app"
# The release: the example's outbox and refresh tokens (the verify phase checks their health), then this file.
RELEASE_DDL = """-- v3.1.0: refunds, and a note on orders.
CREATE TABLE IF NOT EXISTS refunds (
  id       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT UNSIGNED NOT NULL,
  cents    INT UNSIGNED NOT NULL,
  CONSTRAINT fk_refunds_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note VARCHAR(200) NULL AFTER status;
"""


def load_app(box, db):
    for name in ("schema_pre_release.sql", "seed.sql"):
        run_sql(box, db, (APP / "db" / name).read_text())


def inventory(box, db, base: Path, **extra):
    ddl = base / "v3.1.0.sql"
    ddl.write_text(RELEASE_DDL)
    hv = local_host_vars(box, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=db,
                         release_artifacts_dir=str(base / "artifacts"), release_backup_dir=str(base / "backups"),
                         release_ddl_files=[str(APP / "infra" / "ddls" / "create_distributed_tables.sql"), str(ddl)],
                         **extra)
    return write_inventory(base / "inv" / "hosts.yml", {"db1": hv})


def record(base: Path) -> dict:
    return json.loads((base / "artifacts" / VERSION / "release.json").read_text())


def report(base: Path) -> str:
    return (base / "artifacts" / VERSION / "report.md").read_text()


def old_rows(box, db):
    """Every row of the tables that existed before the release, in their pre-release columns."""
    out = {}
    for table, columns in (("users", "id, email, name"), ("orders", "id, user_id, status, total_cents"),
                           ("order_items", "order_id, product_id, quantity"), ("products", "id, sku, title")):
        out[table] = sorted(box.sql("SELECT %s FROM %s" % (columns, table), database=db))
    return out


def test_a_schema_rollback_keeps_the_writes_and_a_failed_rollback_keeps_maintenance_on(mariadb, dbname, tmp_path):
    box, db = mariadb, dbname
    load_app(box, db)
    before = schema_state(box, db, rows=False)
    flag = tmp_path / "maintenance.flag"
    inv = inventory(box, db, tmp_path, maintenance_enabled=True, maintenance_flag_path=str(flag),
                    maintenance_keep_on_failure=False)
    released = run_playbook(ROOT / "release.yml", inv)
    assert released.returncode == 0, released.stdout[-4000:]
    # The report of the release names its reverse plan and whether it is lossless.
    text = report(tmp_path)
    assert "## Rollback options" in text
    assert "`schema` (reverse the schema changes, keeping every row written since the release): 5 step(s), " \
           "**lossless**" in text
    assert "`pitr` (the backup, then the binary logs up to just before the first DDL): possible, up to" in text
    # The application writes after the release: old tables and new ones.
    box.sql(["INSERT INTO users (email, name) VALUES ('after@example.test', 'After')",
             "UPDATE orders SET status = 'paid', note = 'gift wrap' WHERE id = 1",
             "DELETE FROM order_items WHERE order_id = 2",
             "INSERT INTO refunds (order_id, cents) VALUES (1, 500)"], database=db)
    kept = old_rows(box, db)

    asked = run_playbook(ROOT / "rollback.yml", inv, extra_vars={"release_rollback_mode": "schema"})
    assert asked.returncode != 0 and "Rollback not confirmed, nothing was changed" in asked.stdout
    for words in ("-> schema  - reverse the release's schema changes", "restore - restore the verified backup",
                  "pitr    - restore that backup, then replay the binary logs",
                  "table refunds: drop", "table orders: drop column note",
                  "1 row(s) in refunds, a table the release created",
                  "1 row(s) with a value in orders.note, a column the release added",
                  "-e release_rollback_accept_loss=true"):
        assert words in asked.stdout, words
    not_accepted = run_playbook(ROOT / "rollback.yml", inv, extra_vars={
        "release_rollback_mode": "schema", "release_rollback_confirm": True})
    assert not_accepted.returncode != 0 and "is not lossless, so nothing was changed" in not_accepted.stdout
    assert "refunds" in {row[0] for row in box.sql("SHOW TABLES", database=db)}

    # A rollback that fails after maintenance went on (a swap demanded where another schema's foreign key makes it
    # impossible): nothing changed, and maintenance mode stays on although maintenance_keep_on_failure is false.
    box.sql(["CREATE DATABASE `%s_billing`" % db, "CREATE TABLE `%s_billing`.invoices (id INT PRIMARY KEY, "
             "user_id BIGINT UNSIGNED, FOREIGN KEY (user_id) REFERENCES `%s`.users (id))" % (db, db)])
    try:
        failed = run_playbook(ROOT / "rollback.yml", inv, extra_vars={
            "release_rollback_mode": "restore", "release_rollback_confirm": True, "rollback_method": "swap"})
    finally:
        box.sql(["SET foreign_key_checks = 0", "DROP DATABASE `%s_billing`" % db])
    assert failed.returncode != 0 and "a swap is impossible, so nothing was changed" in failed.stdout
    assert flag.exists(), "maintenance mode must stay on after a failed rollback"
    assert "Maintenance mode stays ON (file) because the rollback phase failed" in failed.stdout
    assert record(tmp_path)["phases"]["maintenance"]["state"] == "on"
    assert "maintenance mode stays on after a failed rollback" in report(tmp_path)
    assert old_rows(box, db) == kept

    # --check plans the reverse like any schema change (on a temporary copy) and changes nothing.
    dry = run_playbook(ROOT / "rollback.yml", inv, check=True, extra_vars={
        "release_rollback_mode": "schema", "release_rollback_confirm": True, "release_rollback_accept_loss": True})
    assert dry.returncode == 0, dry.stdout[-4000:]
    planned = json.loads((tmp_path / "artifacts" / VERSION / "release.check.json").read_text())["phases"]["rollback"]
    assert {c["object"] for c in planned["plan"]} >= {"table refunds", "table orders", "view outbox_pending_summary"}
    assert planned["applied"] == [] and old_rows(box, db) == kept
    assert "refunds" in {row[0] for row in box.sql("SHOW TABLES", database=db)}

    done = run_playbook(ROOT / "rollback.yml", inv, extra_vars={
        "release_rollback_mode": "schema", "release_rollback_confirm": True, "release_rollback_accept_loss": True})
    assert done.returncode == 0, done.stdout[-4000:]
    assert not flag.exists()
    assert schema_state(box, db, rows=False) == before  # the schema equals the pre-release snapshot
    assert old_rows(box, db) == kept  # every write to the old tables is there
    phase = record(tmp_path)["phases"]["rollback"]
    assert phase["status"] == "ok" and phase["mode"] == "schema"
    assert phase["reverse"]["steps"] == ["view outbox_pending_summary: drop", "table outbox: drop",
                                         "table refresh_tokens: drop", "table refunds: drop",
                                         "table orders: drop column note"]
    pre = json.loads((tmp_path / "artifacts" / VERSION / "schema" / "pre.json").read_text())
    assert phase["post_sha256"] == pre["sha256"]
    text = report(tmp_path)
    assert text.startswith("# Release %s on db1: ROLLED BACK" % VERSION)
    assert "mode `schema`" in text and "reverse plan: 5 step(s), not lossless" in text


@pytest.fixture
def row_server():
    box = Sandbox(short_tmpdir("dbr-rbm-"), binlog_format="ROW")
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


def test_pitr_keeps_the_writes_made_between_the_backup_and_the_release(row_server, tmp_path):
    box, db = row_server, "shop"
    box.sql("CREATE DATABASE shop")
    load_app(box, db)
    flag = tmp_path / "maintenance.flag"
    inv = inventory(box, db, tmp_path, maintenance_enabled=True, maintenance_flag_path=str(flag))
    # The backup is taken; the application writes (no maintenance between the phases run apart); then the schema.
    took = run_playbook(ROOT / "release.yml", inv, tags="backup")
    assert took.returncode == 0, took.stdout[-4000:]
    box.sql(["INSERT INTO users (email, name) VALUES ('between@example.test', 'Between')",
             "UPDATE products SET price_cents = price_cents + 1 WHERE id = 1"], database=db)
    wanted = schema_state(box, db)
    changed = run_playbook(ROOT / "release.yml", inv, tags="schema,verify")
    assert changed.returncode == 0, changed.stdout[-4000:]
    stop = record(tmp_path)["phases"]["schema"]["binlog_before_ddl"]
    assert stop["file"].startswith("binlog.") and "note" not in stop, stop
    # The stop is the start of the release's first DDL: its GTID event, then the statement on the database.
    first = box.sql("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT 2" % (stop["file"], stop["pos"]))
    assert first[0][2] == "Gtid" and not first[0][5].startswith("BEGIN"), first
    assert first[1][2] == "Query" and first[1][5].startswith("use `shop`; CREATE TABLE"), first
    box.sql(["INSERT INTO users (email, name) VALUES ('after@example.test', 'After the release')",
             "INSERT INTO refunds (order_id, cents) VALUES (1, 100)"], database=db)
    asked = run_playbook(ROOT / "rollback.yml", inv, extra_vars={"release_rollback_mode": "pitr"})
    assert asked.returncode != 0
    assert re.search(r"Written since the backup: \d+ transaction\(s\) on the database", asked.stdout), \
        asked.stdout[-3000:]
    assert re.search(r"taken \S+ \((\d+ h )?\d+ min old\)", asked.stdout)  # the backup's age
    # After the position before the first DDL: the release's DDL statements and the two writes after it.
    assert re.search(r"written after it, and lost: ([5-9]|\d\d) transaction\(s\) on the database", asked.stdout)

    done = run_playbook(ROOT / "rollback.yml", inv, extra_vars={
        "release_rollback_mode": "pitr", "release_rollback_confirm": True})
    assert done.returncode == 0, done.stdout[-4000:]
    assert schema_state(box, db) == wanted  # the backup, plus what was written before the release
    assert not flag.exists()
    phase = record(tmp_path)["phases"]["rollback"]
    assert phase["mode"] == "pitr" and phase["method"] == "swap" and phase["pitr"]["transactions"] == 2
    assert phase["kept"].startswith("shop__before_rollback_")
    assert "binary logs replayed from" in report(tmp_path)


def test_the_backup_phase_checks_binlog_retention_and_refuses_a_stale_backup_once_the_release_began(tmp_path):
    box = Sandbox(short_tmpdir("dbr-rbb-"), binlog_expire_seconds=3600)
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    try:
        box.sql("CREATE DATABASE shop")
        load_app(box, "shop")
        inv = inventory(box, "shop", tmp_path, release_rollback_window_hours=72)
        short = run_playbook(ROOT / "playbooks/backup.yml", inv)
        assert short.returncode != 0
        assert "binary logs expire after 1 h, before the end of the rollback window of 3 days" in short.stdout
        warned = run_playbook(ROOT / "playbooks/backup.yml", inv, extra_vars={"backup_binlog_retention": "warn"})
        assert warned.returncode == 0, warned.stdout[-3000:]
        binlog = record(tmp_path)["phases"]["backup"]["binlog"]
        assert binlog["enabled"] is True and binlog["retention"]["ok"] is False and binlog["expire_seconds"] == 3600
        box.sql("INSERT INTO users (email, name) VALUES ('late@example.test', 'Late')", database="shop")
        schema = run_playbook(ROOT / "release.yml", inv, tags="schema")
        assert schema.returncode == 0, schema.stdout[-3000:]
        again = run_playbook(ROOT / "playbooks/backup.yml", inv, extra_vars={"backup_binlog_retention": "warn"})
        assert again.returncode != 0
        assert "refusing to reuse the release's backup: the database no longer matches it (1 transaction(s)" \
            in again.stdout
        assert "backup_reuse_changed: reuse" in again.stdout
    finally:
        box.destroy()
        shutil.rmtree(tmp_path, ignore_errors=True)
