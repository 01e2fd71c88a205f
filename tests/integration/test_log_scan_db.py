"""log_scan against a real MariaDB: the error log found from @@log_error, real aborted connections, a failed login
and a real deadlock counted from the mark on, while the test writes errors into an application log (and rotates
it) during the watch."""

from __future__ import annotations

import os
import socket
import threading
import time

import pymysql
import pytest
import yaml
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, login_params
from helpers import run_module

PATTERNS = yaml.safe_load((ROOT / "roles/verify/defaults/main.yml").read_text())["verify_log_patterns"]


def scan_args(box, app_log, **extra):
    args = dict(login_params(box), state="scan", server_log="auto", files=[str(app_log)], patterns=PATTERNS)
    args.update(extra)
    return args


def abort_a_connection(box):
    """A client that drops its TCP connection without saying goodbye (the server logs 'Aborted connection')."""
    conn = pymysql.connect(host="127.0.0.1", port=box.port, user=ADMIN_USER, password=ADMIN_PASSWORD.encode())
    conn._sock.shutdown(socket.SHUT_RDWR)
    conn._sock.close()


def fail_a_login(box):
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=box.port, user=ADMIN_USER, password=b"not-the-password")


def make_a_deadlock(box, dbname):
    box.sql("CREATE TABLE `%s`.t (id INT PRIMARY KEY, n INT) ENGINE=InnoDB" % dbname)
    box.sql("INSERT INTO `%s`.t VALUES (1, 0), (2, 0)" % dbname)
    a, b = box.root(dbname, autocommit=False), box.root(dbname, autocommit=False)
    try:
        a.cursor().execute("UPDATE t SET n = 1 WHERE id = 1")
        b.cursor().execute("UPDATE t SET n = 1 WHERE id = 2")
        errors = []

        def second():
            try:
                a.cursor().execute("UPDATE t SET n = 2 WHERE id = 2")
            except pymysql.err.OperationalError as exc:
                errors.append(exc.args[0])

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        try:
            b.cursor().execute("UPDATE t SET n = 2 WHERE id = 1")
        except pymysql.err.OperationalError as exc:
            errors.append(exc.args[0])
        waiter.join(10)
        assert 1213 in errors, errors  # ER_LOCK_DEADLOCK: a real deadlock happened
    finally:
        a.close()
        b.close()


def test_the_watch_counts_the_servers_and_the_applications_new_errors_by_pattern(mariadb, dbname, tmp_path):
    app_log = tmp_path / "app.log"
    app_log.write_text("2026-12-01T09:00:00Z ERROR an old error, before the release: not counted\n")
    abort_a_connection(mariadb)  # before the mark: not counted
    time.sleep(0.3)
    mark = run_module("log_scan", scan_args(mariadb, app_log, state="mark"))
    assert not mark.get("failed"), mark
    assert mark["server"]["path"] == str(mariadb.log) and mark["server"]["log_warnings"] >= 2
    assert set(mark["marks"]) == {str(mariadb.log), str(app_log)}

    mariadb.sql("SET GLOBAL innodb_print_all_deadlocks = ON")
    try:
        # The application logs while the watch polls: errors, a warning, a deadlock it saw, then a rotation.
        def application():
            with open(app_log, "a") as handle:
                handle.write('{"level":"error","msg":"outbox relay failed","err":"ECONNRESET"}\n')
                handle.write("2026-12-01T10:15:01Z WARN slow query: 2300 ms\n")
                handle.flush()
                time.sleep(0.4)
                handle.write("Error: ER_LOCK_DEADLOCK: Deadlock found when trying to get lock\n")
            os.rename(app_log, str(app_log) + ".1")  # logrotate's default: rename, then a new file
            with open(app_log, "a") as handle:
                handle.write("2026-12-01T10:16:00Z ERROR relay: cannot deliver event 91\n")
                handle.write("2026-12-01T10:16:00Z INFO processed 40 events\n")

        writer = threading.Thread(target=application)
        writer.start()
        abort_a_connection(mariadb)
        abort_a_connection(mariadb)
        fail_a_login(mariadb)
        make_a_deadlock(mariadb, dbname)
        writer.join()

        polls, marks, result = [], mark["marks"], None
        expected = {"aborted_connection": 2, "access_denied": 1, "deadlock": 2, "app_error": 2, "app_warning": 1}
        for _ in range(20):  # the watch: poll until the server has written its lines (or give up after ~5 s)
            result = run_module("log_scan", scan_args(mariadb, app_log, marks=marks))
            assert not result.get("failed"), result
            polls.append(result["new_counts"])
            marks = result["marks"]
            if all(result["counts"].get(k, 0) >= v for k, v in expected.items()):
                break
            time.sleep(0.25)
    finally:
        mariadb.sql("SET GLOBAL innodb_print_all_deadlocks = OFF")
    assert {k: result["counts"].get(k, 0) for k in expected} == expected, (result["counts"], polls)
    server, app = result["files"]
    assert server["counts"]["deadlock"] == 1 and app["counts"]["deadlock"] == 1
    assert app["counts"]["app_error"] == 2  # the old error before the mark is not counted
    assert any(p.get("app_error") for p in polls) and sum(p.get("app_error", 0) for p in polls) == 2
    assert any("Aborted connection" in s for s in server["samples"]["aborted_connection"])
    assert result["severity"]["error"] >= 4

    verdict = run_module("log_scan", scan_args(mariadb, app_log, marks=marks))
    assert verdict["new_counts"] == {} and verdict["counts"] == result["counts"]


def test_a_configured_log_that_does_not_exist_is_said_and_the_server_log_can_be_named(mariadb, tmp_path):
    missing = tmp_path / "no-such.log"
    mark = run_module("log_scan", dict(login_params(mariadb), state="mark", server_log=str(mariadb.log),
                                       files=[str(missing)], patterns=PATTERNS))
    result = run_module("log_scan", dict(login_params(mariadb), state="scan", server_log=str(mariadb.log),
                                         files=[str(missing)], patterns=PATTERNS, marks=mark["marks"]))
    assert "server" not in result  # a named path: the server is not asked
    server, app = result["files"]
    assert server["status"] == "ok" and app["status"] == "missing" and "does not exist" in app["note"]


def test_bad_patterns_and_a_wrong_password_fail_naming_the_setting(mariadb, tmp_path):
    bad = run_module("log_scan", dict(login_params(mariadb), files=[], patterns=[{"name": "x", "regex": "("}]))
    assert bad["failed"] and "log pattern x: invalid regex" in bad["msg"] and "verify_log_patterns" in bad["msg"]
    wrong = run_module("log_scan", dict(login_params(mariadb), login_password="nope-" + ADMIN_PASSWORD[::-1],
                                        patterns=PATTERNS))
    assert wrong["failed"] and "@@log_error" in wrong["msg"] and ADMIN_PASSWORD[::-1] not in wrong["msg"]

