"""The release account with exactly the privileges the README lists (generated from privileges.PHASES) does every
phase's work on a real server; db_privileges says, before anything changes, what an account lacks."""

from __future__ import annotations

import sys
import uuid

import pytest
from ansible.module_utils.dbrelease import privileges as priv
from helpers import run_module

RELEASE = ["preflight", "lock", "maintenance", "backup", "grants", "schema", "migrate", "verify", "tag"]
CONDITIONS = {"log_bin": True, "restore_test": True, "skip_binlog": True, "other_definers": True,
                  "stored_code_binlog": True, "binlog_untrusted": True}
PASSWORD = "Least-€-" + uuid.uuid4().hex[:6]


@pytest.fixture
def shop(mariadb):
    name = "lp_" + uuid.uuid4().hex[:8]
    lock = name + "_lock"
    mariadb.sql("CREATE DATABASE `%s`" % name)
    # Objects of another definer (root): the restore test needs SET USER to load them.
    mariadb.sql(["CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(9,2))",
                 "INSERT INTO orders VALUES (1, 9.5), (2, 12)",
                 "CREATE DEFINER=`root`@`localhost` VIEW big_orders AS SELECT id FROM orders WHERE total > 10",
                 "CREATE DEFINER=`root`@`localhost` TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW "
                 "SET NEW.total = ROUND(NEW.total, 2)"], database=name)
    user = "rel_" + uuid.uuid4().hex[:6]
    statements = ["CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'" % (user, PASSWORD)]
    statements += priv.grant_statements(name, lock, RELEASE + ["rollback"], CONDITIONS,
                                        account="'%s'@'localhost'" % user)
    mariadb.sql(statements)
    yield {"db": name, "lock": lock, "user": user}
    mariadb.sql(["DROP USER IF EXISTS '%s'@'localhost'" % user, "DROP DATABASE IF EXISTS `%s`" % name,
                 "DROP DATABASE IF EXISTS `%s`" % lock])


def params(mariadb, shop):
    return dict(login_user=shop["user"], login_password=PASSWORD, login_unix_socket=mariadb.socket,
                connect_timeout=5)


def test_the_documented_privileges_are_enough_for_every_phase_and_nothing_is_reported_lacking(mariadb, shop,
                                                                                               tmp_path):
    p = params(mariadb, shop)
    check = run_module("db_privileges", dict(p, database=shop["db"], phases=RELEASE + ["rollback"],
                                             lock_schema=shop["lock"]))
    assert [m for m in check.get("missing", []) if not m["optional"]] == [] and not check.get("failed"), check
    # SUPER (needed for the trigger, binlog on) covers the replication monitoring and CONNECTION ADMIN on 10.11.
    assert {m["privilege"] for m in check["missing"]} == {"PROCESS"}, "optional ones are only noted"
    assert "without these the phases work but see less" in check["msg"]
    assert check["conditions"] == CONDITIONS

    lock = run_module("release_lock", dict(p, name=shop["db"], lock_schema=shop["lock"],
                                           holder={"user": "t", "controller": "c"}))
    assert lock.get("acquired"), lock
    backups = tmp_path / "backups"
    backups.mkdir()
    dumped = run_module("db_backup", dict(p, database=shop["db"], backup_dir=str(backups), label="v1", mode="run"))
    assert dumped.get("path"), dumped
    restored = run_module("backup_restore_check", dict(p, path=dumped["path"], database=shop["db"]))
    assert restored.get("ok") is True, restored
    grants = run_module("db_grants", dict(p, user=shop["user"], hosts=["localhost"],
                                          privileges={"default": "%s.*:SELECT" % shop["db"]}))
    assert "accounts" in grants, grants
    ddl = tmp_path / "change.sql"
    ddl.write_text("CREATE TABLE outbox (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload JSON);\n"
                   "ALTER TABLE orders ADD COLUMN note VARCHAR(20) NULL;\n"
                   "CREATE OR REPLACE DEFINER=CURRENT_USER VIEW open_orders AS SELECT id FROM orders;\n")
    applied = run_module("schema_apply", dict(p, db=shop["db"], ddl_files=[str(ddl)]))
    assert applied.get("changed") is True and not applied.get("failed"), applied
    script = tmp_path / "migrate.py"
    script.write_text("import os, pymysql\n"
                      "c = pymysql.connect(unix_socket=os.environ['DB_SOCKET'], user=os.environ['DB_USER'],\n"
                      "                    password=os.environ['DB_PASSWORD'].encode(), database=os.environ['DB_NAME'],"
                      " autocommit=True)\n"
                      "c.cursor().execute('UPDATE orders SET note = %s WHERE id = 1', ('migrated',))\n")
    migrated = run_module("sql_migrate", dict(p, driver="command", db_name=shop["db"],
                                              command="%s %s" % (sys.executable, script), history_table=""))
    assert migrated.get("rc") == 0, migrated
    rolled = run_module("db_restore", dict(p, database=shop["db"], path=dumped["path"], sha256=dumped["sha256"],
                                           safety_dump_dir=str(tmp_path / "safety")))
    assert not rolled.get("failed"), rolled
    assert mariadb.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND "
                       "TABLE_NAME = 'outbox'" % shop["db"])[0][0] == 0
    released = run_module("release_lock", dict(p, name=shop["db"], lock_schema=shop["lock"], state="absent",
                                               token=lock["token"]))
    assert released.get("released") is True, released


def test_an_account_lacking_privileges_is_told_which_for_which_phase_before_anything_changes(mariadb, shop):
    p = params(mariadb, shop)
    mariadb.sql("REVOKE SUPER ON *.* FROM '%s'@'localhost'" % shop["user"])
    result = run_module("db_privileges", dict(p, database=shop["db"], phases=["schema"], lock_schema=shop["lock"]))
    # SUPER covers SET USER on 10.11 (the plan copy's stored code gets the temporary account as DEFINER)
    assert sorted((m["privilege"], m["on"]) for m in result["missing"] if not m["optional"]) == [
        ("SET USER", "*.*"), ("SUPER", "*.*")], result
    assert "log_bin_trust_function_creators" in result["msg"]
    mariadb.sql(["DROP TRIGGER orders_bi", "REVOKE CREATE ON `%s`.* FROM '%s'@'localhost'" % (
        priv._escape(shop["lock"]), shop["user"])], database=shop["db"])
    result = run_module("db_privileges", dict(p, database=shop["db"], phases=["preflight", "lock", "backup"],
                                              lock_schema=shop["lock"]))
    assert result["failed"] and "nothing was changed" in result["msg"], result
    lacking = {(m["phase"], m["privilege"], m["on"]) for m in result["missing"] if not m["optional"]}
    assert lacking == {("lock", "CREATE", "%s.*" % shop["lock"]), ("backup", "BINLOG MONITOR", "*.*"),
                       ("backup", "BINLOG ADMIN", "*.*"), ("backup", "SET USER", "*.*")}
    assert "restore test sets sql_log_bin=0" in result["msg"] and "DEFINER is another account" in result["msg"]
    # Phases that do not run are not held against the account.
    schema_only = run_module("db_privileges", dict(p, database=shop["db"], phases=["schema", "verify"],
                                                   lock_schema=shop["lock"]))
    assert not [m for m in schema_only["missing"] if not m["optional"]] and not schema_only.get("failed"), schema_only
