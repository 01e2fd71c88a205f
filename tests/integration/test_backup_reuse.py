"""A rerun of a release reuses its backup only while the database still matches it (real MariaDB, binary log on):
writes since the backup, other than the release's own, mean a new backup, or a refusal that says why."""

from __future__ import annotations

import pytest
from conftest import login_params
from dbstate import run_sql
from helpers import run_module


@pytest.fixture
def shop(mariadb, dbname, tmp_path):
    run_sql(mariadb, dbname, "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, total INT);\n"
                             "INSERT INTO orders (total) VALUES (1), (2);\n")
    args = dict(login_params(mariadb), database=dbname, backup_dir=str(tmp_path), label="v7.1", mode="run")
    first = run_module("db_backup", args)
    assert first.get("failed") is not True, first.get("msg")
    return dict(box=mariadb, db=dbname, args=args, first=first)


def position(box):
    file_name, pos = box.sql("SHOW MASTER STATUS")[0][:2]
    return {"file": file_name, "pos": int(pos)}


def test_a_rerun_reuses_the_backup_while_nothing_but_the_release_wrote(shop):
    box, db = shop["box"], shop["db"]
    start = position(box)
    box.sql(["ALTER TABLE orders ADD COLUMN note VARCHAR(20)", "UPDATE orders SET note = 'migrated'"], database=db)
    own = [{"from": start, "to": position(box)}]
    box.sql(["CREATE DATABASE IF NOT EXISTS `%s_other`" % db,
             "CREATE TABLE IF NOT EXISTS `%s_other`.t (i INT)" % db, "INSERT INTO `%s_other`.t VALUES (1)" % db])
    try:
        again = run_module("db_backup", dict(shop["args"], reuse_own_writes=own))
    finally:
        box.sql("DROP DATABASE IF EXISTS `%s_other`" % db)
    assert again.get("failed") is not True, again.get("msg")
    assert again["reused"] is True and again["changed"] is False and again["path"] == shop["first"]["path"]
    assert again["reuse_check"]["action"] == "reuse"
    assert "nothing but this release wrote to the database" in again["msg"]


def test_writes_since_the_backup_mean_a_new_backup_that_says_why(shop):
    box, db = shop["box"], shop["db"]
    box.sql(["INSERT INTO orders (total) VALUES (3)", "UPDATE orders SET total = 9 WHERE id = 1"], database=db)
    planned = run_module("db_backup", shop["args"], check=True)
    assert planned["changed"] and planned["reuse_check"]["action"] == "new"
    again = run_module("db_backup", shop["args"])
    assert again["changed"] is True and again["reused"] is False and again["path"] != shop["first"]["path"]
    check = again["reuse_check"]
    assert check["action"] == "new" and check["backup"] == shop["first"]["path"]
    assert check["evidence"]["writes"]["transactions"] == 2
    assert "the database no longer matches the release's backup (2 transaction(s)" in check["msg"]


def test_once_the_release_changed_the_database_a_stale_backup_is_refused_with_the_way_out(shop):
    box, db = shop["box"], shop["db"]
    box.sql("INSERT INTO orders (total) VALUES (3)", database=db)  # the application, days later
    start = position(box)
    box.sql("ALTER TABLE orders ADD COLUMN note VARCHAR(20)", database=db)  # the release's schema phase
    own = [{"from": start, "to": position(box)}]
    refused = run_module("db_backup", dict(shop["args"], reuse_own_writes=own, reuse_changed="refuse"))
    assert refused["failed"] and refused["check"] == "reuse"
    assert "refusing to reuse the release's backup: the database no longer matches it (1 transaction(s)" in \
        refused["msg"]
    assert "backup_reuse_changed: reuse" in refused["msg"] and "backup_reuse_changed: new" in refused["msg"]
    kept = run_module("db_backup", dict(shop["args"], reuse_own_writes=own, reuse_changed="reuse"))
    assert kept["reused"] is True and "a restore rollback loses those writes" in kept["reuse_check"]["caveat"]
