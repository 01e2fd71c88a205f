"""The restore test on a separate restore server (a second real MariaDB): the source server is spared the restore.

The source only answers the comparison's reads; the throwaway copy is created, filled and dropped on the restore
server, reached with its own account.
"""

from __future__ import annotations

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params, short_tmpdir
from sandbox_db import Sandbox
from test_backup import load_app_schema, run_module, throwaway_databases

RESTORER, RESTORER_PASSWORD = "restorer", "Rest0re-Only-Pw"


def status(box, name):
    return int(box.sql("SHOW GLOBAL STATUS LIKE '%s'" % name)[0][1])


@pytest.fixture
def backup(mariadb, dbname, tmp_path):
    load_app_schema(mariadb, dbname)
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    result = run_module("db_backup", dict(login_params(mariadb), database=dbname, backup_dir=str(backup_dir),
                                          label="v1"))
    assert result.get("changed") is True, result
    return result


@pytest.fixture(scope="module")
def restore_server():
    """A second real MariaDB, shared by this file's tests, with an account of its own for the restore."""
    box = Sandbox(short_tmpdir())
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    box.sql(["CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'" % (RESTORER, RESTORER_PASSWORD),
             "GRANT ALL ON *.* TO '%s'@'localhost'" % RESTORER])
    yield box
    box.destroy()


def test_the_restore_test_runs_on_the_restore_server_and_spares_the_source(mariadb, dbname, backup, restore_server):
    before = {name: status(mariadb, name) for name in ("Com_create_db", "Com_drop_db", "Com_insert")}
    copies_before = status(restore_server, "Com_create_db")
    result = run_module("backup_restore_check", dict(
        login_params(mariadb), path=backup["path"], database=dbname,
        restore_server={"login_unix_socket": restore_server.socket, "login_user": RESTORER,
                        "login_password": RESTORER_PASSWORD}))
    assert not result.get("failed"), result.get("msg")
    assert result["ok"] and result["problems"] == []
    assert result["objects"] == {"tables": 6, "views": 2, "routines": 1, "triggers": 1, "events": 1}
    assert result["rows"]["orders"]["source"] == result["rows"]["orders"]["restored"] > 0
    # The rows were compared by checksum across the two servers, every row of every table.
    orders = result["checksums"]["orders"]
    assert orders["rows_checked"] == result["rows"]["orders"]["source"] and orders["differences"] == []
    assert result["sampled"] == []
    # DEFINERs are looked up among the source server's accounts (the restore server need not have them).
    assert result["missing_definers"] == []
    assert result["restore_server"]["endpoint"] == "%s@socket %s" % (RESTORER, restore_server.socket)
    assert "on the restore server %s@socket" % RESTORER in result["msg"]
    # The source server created, filled and dropped nothing; the restore server did, and dropped its copy.
    assert {name: status(mariadb, name) for name in before} == before
    assert status(restore_server, "Com_create_db") == copies_before + 1
    assert throwaway_databases(mariadb) == [] and throwaway_databases(restore_server) == []
    assert RESTORER_PASSWORD not in str(result) and "S3cret" not in str(result)


def test_a_restore_server_that_cannot_be_reached_fails_naming_it_and_leaves_nothing(mariadb, dbname, backup,
                                                                                      restore_server):
    result = run_module("backup_restore_check", dict(
        login_params(mariadb), path=backup["path"], database=dbname,
        restore_server={"login_unix_socket": restore_server.socket, "login_user": RESTORER,
                        "login_password": "wrong-password"}))
    assert result["failed"] is True and result["check"] == "connect"
    assert "on the restore server %s@socket %s failed: connect check failed: restore server: cannot connect" % (
        RESTORER, restore_server.socket) in result["msg"]
    assert "wrong-password" not in result["msg"]
    assert throwaway_databases(mariadb) == [] and throwaway_databases(restore_server) == []
