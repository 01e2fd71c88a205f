"""DDL on a live server: metadata-lock blockers, lock wait timeouts with retries, the watchdog, killing named idle
blockers, running dumps, and the backup's snapshot closed before the first DDL. Real MariaDB servers: one with the
metadata_lock_info plugin, one with performance_schema's MDL instrument, and the session server with neither."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pymysql
import pytest
import schema_apply
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, login_params, short_tmpdir
from ddl_load import Queries
from helpers import run_module
from sandbox_db import Sandbox

PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"
EXAMPLE_DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
APP_PASSWORD = "app-pw-" + uuid.uuid4().hex[:6]


def start_server(*extra):
    box = Sandbox(short_tmpdir())
    box.start(extra_args=extra)
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    for user in ("app_rw", "report_ro"):
        box.sql(["CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY '%s'" % (user, APP_PASSWORD),
                 "GRANT ALL ON *.* TO %s@'%%'" % user])
    return box


@pytest.fixture(scope="module")
def plugin_server():
    """MariaDB with the metadata_lock_info plugin (information_schema.METADATA_LOCK_INFO)."""
    box = start_server("--plugin-load-add=metadata_lock_info")
    yield box
    box.destroy()


@pytest.fixture(scope="module")
def ps_server():
    """MariaDB with performance_schema and its metadata lock instrument (as MySQL 8 has by default)."""
    box = start_server("--performance-schema=ON", "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON")
    yield box
    box.destroy()


@pytest.fixture(scope="module")
def plain_server(mariadb):
    """The session server (no lock information), with the application's accounts."""
    for user in ("app_rw", "report_ro"):
        mariadb.sql(["CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY '%s'" % (user, APP_PASSWORD),
                     "GRANT ALL ON *.* TO %s@'%%'" % user])
    yield mariadb
    mariadb.sql(["DROP USER IF EXISTS %s@'%%'" % user for user in ("app_rw", "report_ro")])


def app_db(box, outbox_only=False):
    """The example application's schema after the release (outbox included), with a few outbox rows; or only its
    outbox table (no routines or triggers, for an account that may not copy them)."""
    db = "shop_" + uuid.uuid4().hex[:8]
    box.sql("CREATE DATABASE `%s`" % db)
    statements = [s["sql"] for s in split_sql(EXAMPLE_DDL.read_text())[:1]] if outbox_only else \
        [s["sql"] for s in split_sql(PRE_RELEASE.read_text()) + split_sql(EXAMPLE_DDL.read_text())]
    box.sql(statements, database=db)
    box.sql(["INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) VALUES "
             "('order', %d, 'order.created', '{}')" % i for i in range(1, 6)], database=db)
    return db


def params(box, db, text, tmp_path, **extra):
    path = tmp_path / "release.sql"
    path.write_text(text)
    p = dict(login_params(box), db=db, ddl_files=[str(path)], ddl_names=[], ddl_contents=[],
             environment="staging", allow_destructive=False, allow_blocking_alter=False, large_table_bytes=1 << 30,
             require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced")
    p.update(extra)
    return p


def assert_blockers(statement, idle_id, app_id):
    """The idle transaction is named, as idle. The application's own query may be named too when the guard's look
    caught one in flight (more likely on a loaded machine): it did hold the lock then, as a statement or as the
    autocommit transaction of that statement (the guard's reads of the locks and of the process list are two
    moments, so its command may already read Sleep)."""
    named = {b["id"]: b for b in statement["blockers"]}
    assert idle_id in named and set(named) <= {idle_id, app_id}, named
    assert named[idle_id]["command"].lower() == "sleep", named
    if app_id in named:
        assert named[app_id]["kind"] in ("statement", "transaction"), named


def app_conn(box, db, user="app_rw"):
    """A connection as the application (over TCP, so its host shows an address)."""
    return pymysql.connect(host="127.0.0.1", port=box.port, user=user, password=APP_PASSWORD, database=db,
                           autocommit=True)


def idle_transaction_on_outbox(box, db, user="app_rw"):
    """An open transaction that read from outbox and then went idle: it holds outbox's metadata lock."""
    conn = app_conn(box, db, user)
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT id, status FROM outbox WHERE id = 3")
        cur.fetchall()
    return conn


def AppQueries(box, db, sql="SELECT COUNT(*) FROM outbox WHERE status = 'pending'"):
    """The application using outbox every 50 ms from its own session, each query timed."""
    return Queries(app_conn(box, db), sql)


def after_statement_1(box, db, action, delay=1.2, timeout=60):
    """Run `action` `delay` s after statement #1 of RELEASE took effect (the guard is then busy with #2)."""
    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and "id" not in columns(box, db, "release_notes"):
            time.sleep(0.05)
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def columns(box, db, table="outbox"):
    return {r[0] for r in box.sql("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' "
                                  "AND TABLE_NAME = '%s'" % (db, table))}


RELEASE = ("CREATE TABLE IF NOT EXISTS release_notes (id INT PRIMARY KEY, note VARCHAR(200));\n"
           "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace_id VARCHAR(64) NULL;\n")


def test_an_idle_transaction_that_read_outbox_is_named_and_the_application_never_waits(plugin_server, tmp_path):
    db = app_db(plugin_server)
    blocker = idle_transaction_on_outbox(plugin_server, db)
    try:
        with AppQueries(plugin_server, db) as app:
            app_id = app.conn.thread_id()
            time.sleep(0.3)
            result = run_module("schema_apply", params(plugin_server, db, RELEASE, tmp_path, lock_wait_timeout=2,
                                                       lock_budget_seconds=3))
        msg = result["msg"]
        assert result.get("failed") and "release.sql statement #2 (line 2) failed: refused before it ran" in msg
        assert "session %d app_rw@127.0.0.1:" % blocker.thread_id() in msg and "(db %s)" % db in msg
        assert "in a transaction for " in msg and "holds SHARED_READ on outbox" in msg
        assert "current statement: none (idle)" in msg and "schema_kill_idle_blockers (app_rw)" in msg
        assert "Statements executed before it, which stay in effect (DDL is not transactional): release.sql #1" \
            in msg
        assert ADMIN_PASSWORD not in msg and APP_PASSWORD not in str(result)
        execution = result["execution"]
        assert execution["lock_information"] == "information_schema.METADATA_LOCK_INFO"
        seen = execution["statements"][1]
        assert seen["attempts"] == 0
        assert_blockers(seen, blocker.thread_id(), app_id)
        assert seen["tables"] == ["outbox"] and seen["waited_seconds"] >= 2.5
        # The ALTER never started: the application's queries on outbox never waited on it.
        assert app.errors == [] and app.worst < 1.0, app.worst
        assert "trace_id" not in columns(plugin_server, db) and "id" in columns(plugin_server, db, "release_notes")
        # The blocker was left alone: its transaction is still there to commit.
        with blocker.cursor() as cur:
            cur.execute("COMMIT")
    finally:
        blocker.close()


def test_the_guard_waits_for_a_blocker_that_finishes_and_runs_the_plans_algorithm(ps_server, tmp_path):
    db = app_db(ps_server)
    blocker = idle_transaction_on_outbox(ps_server, db)
    after_statement_1(ps_server, db, blocker.commit)
    try:
        with AppQueries(ps_server, db) as app:
            app_id = app.conn.thread_id()
            result = schema_apply.run(params(ps_server, db, RELEASE, tmp_path, lock_wait_timeout=2,
                                             lock_budget_seconds=20))
        assert result["changed"] is True and "trace_id" in columns(ps_server, db)
        execution = result["execution"]
        assert execution["lock_information"] == "performance_schema.metadata_locks"
        alter = execution["statements"][1]
        assert alter["algorithm_clause"] == "ALGORITHM=INSTANT" and alter["attempts"] == 1
        assert alter["waited_seconds"] >= 1.0
        assert_blockers(alter, blocker.thread_id(), app_id)
        assert alter["retries"] == [] and alter["watchdog"] == []
        assert execution["summary"]["lock_checks"] >= 3
        assert app.errors == [] and app.worst < 1.0, app.worst
    finally:
        blocker.close()


def test_without_lock_information_the_watchdog_kills_the_ddl_the_application_queues_behind(plain_server, tmp_path):
    # No plugin, no performance_schema: a transaction younger than the lock wait timeout (60 s here, longer than the
    # whole run) is invisible to the guard, so the ALTER starts and waits for outbox's lock; the application's
    # queries queue behind it until the watchdog kills it. That transaction was open all the time the ALTER waited:
    # the guard then counts it as a blocker (no second attempt queues the application again), waits for it, and
    # when the budget is spent stops, naming it.
    db = app_db(plain_server)
    blocker = idle_transaction_on_outbox(plain_server, db)
    try:
        with AppQueries(plain_server, db) as app:
            app_id = app.conn.thread_id()
            with pytest.raises(schema_apply.SchemaFailure) as err:
                schema_apply.run(params(plain_server, db, RELEASE, tmp_path, lock_wait_timeout=60,
                                        lock_budget_seconds=4, watchdog_queue_seconds=0.5))
        msg, execution = err.value.msg, err.value.result["execution"]
        assert "metadata_lock_info" in execution["notes"][0]
        alter = execution["statements"][1]
        assert alter["attempts"] == 1 and len(alter["watchdog"]) == 1 and alter["watchdog"][0]["queued"]
        assert alter["watchdog"][0]["queued"][0]["statement"] == "SELECT COUNT(*) FROM outbox WHERE status = ?"
        assert [r["error"] for r in alter["retries"]] == ["(1317) Query execution was interrupted"]
        assert alter["retries"][0]["backoff_seconds"] > 0
        assert "release.sql statement #2 (line 2) failed: stopped (waited " in msg
        assert "1 attempt(s): 0 stopped by the lock wait timeout (schema_lock_wait_timeout), 1 killed by the " \
               "watchdog because sessions queued behind it" in msg
        assert "session %d app_rw@" % blocker.thread_id() in msg and "tables it holds unknown" in msg
        assert "its transaction was open all the time the statement waited for its metadata lock" in msg
        assert_blockers(alter, blocker.thread_id(), app_id)
        # Never longer than the lock wait timeout: the watchdog cut the one wait at about half a second.
        assert app.errors == [] and app.worst < 1.5, app.worst
        assert "trace_id" not in columns(plain_server, db)
        with blocker.cursor() as cur:
            cur.execute("SELECT 1")  # the application's session was never killed
    finally:
        blocker.close()


def test_a_lock_wait_timeout_is_retried_with_jitter_until_the_lock_comes(ps_server, tmp_path):
    # An account without PROCESS sees no other session: the guard is blind (and says so), the lock wait timeout
    # and the retries still keep the statement from waiting long at a time.
    db = app_db(ps_server, outbox_only=True)
    user = "ddl_only_" + db[-6:]
    escaped = db.replace("_", "\\_")
    ps_server.sql(["CREATE USER '%s'@'localhost' IDENTIFIED BY 'Pw-%s'" % (user, db),
                   "GRANT ALL ON `%s`.* TO '%s'@'localhost'" % (escaped, user),
                   "GRANT ALL ON `%s\\_\\_dbrelease\\_plan\\_%%`.* TO '%s'@'localhost' WITH GRANT OPTION"
                   % (escaped, user),
                   # the plan runs the release's DDL as a temporary account it creates and drops
                   "GRANT CREATE USER ON *.* TO '%s'@'localhost'" % user])
    blocker = idle_transaction_on_outbox(ps_server, db)
    after_statement_1(ps_server, db, blocker.commit, delay=2.5)
    try:
        p = params(ps_server, db, RELEASE, tmp_path, login_user=user, login_password="Pw-" + db,
                   lock_wait_timeout=1, lock_budget_seconds=30)
        result = schema_apply.run(p)
        alter = result["execution"]["statements"][1]
        assert any("lacks the PROCESS privilege" in n for n in result["execution"]["notes"])
        assert alter["attempts"] >= 2 and alter["retries"]
        assert all(r["error"].startswith("(1205) Lock wait timeout exceeded") for r in alter["retries"])
        assert all("lock wait timeout after" in r["why"] for r in alter["retries"])
        assert len({r["backoff_seconds"] for r in alter["retries"]}) == len(alter["retries"])
        assert "trace_id" in columns(ps_server, db)
    finally:
        blocker.close()
        ps_server.sql("DROP USER IF EXISTS '%s'@'localhost'" % user)


def test_named_idle_blockers_are_killed_and_a_running_statement_of_the_same_account_is_waited_for(
        plugin_server, tmp_path):
    db = app_db(plugin_server)
    idle = idle_transaction_on_outbox(plugin_server, db, user="report_ro")
    # The same account runs a statement on outbox that lasts until the test lets it end (it waits for a user lock
    # the test holds, with outbox open).
    holder = plugin_server.root()
    holder.cursor().execute("SELECT GET_LOCK('bench_hold', 10)")
    busy = app_conn(plugin_server, db, user="report_ro")
    running = threading.Thread(target=lambda: busy.cursor().execute(
        "SELECT GET_LOCK('bench_hold', 30), COUNT(*) FROM outbox"), daemon=True)
    other = idle_transaction_on_outbox(plugin_server, db, user="app_rw")
    other.commit()  # app_rw's session stays connected, idle, with no transaction
    running.start()
    after_statement_1(plugin_server, db, lambda: holder.cursor().execute("SELECT RELEASE_LOCK('bench_hold')"),
                      delay=1.5)
    try:
        with AppQueries(plugin_server, db) as app:
            result = schema_apply.run(params(plugin_server, db, RELEASE, tmp_path, lock_budget_seconds=20,
                                             kill_idle_blockers=["report_ro@127.0.0.1"]))
        alter = result["execution"]["statements"][1]
        assert [k["id"] for k in alter["killed"]] == [idle.thread_id()]
        assert "in a transaction for" in alter["killed"][0]["description"]
        assert busy.thread_id() in [b["id"] for b in alter["blockers"]]  # waited for, not killed
        assert alter["waited_seconds"] >= 1.0 and "trace_id" in columns(plugin_server, db)
        with pytest.raises(pymysql.err.OperationalError):
            idle.cursor().execute("SELECT 1")
        running.join(10)
        with busy.cursor() as cur, other.cursor() as cur2:
            cur.execute("SELECT 1")
            cur2.execute("SELECT 1")
        assert app.errors == [] and app.worst < 1.0
    finally:
        for conn in (idle, busy, other, holder):
            conn.close()


def test_a_running_dump_of_the_database_blocks_ddl_until_it_ends(ps_server, tmp_path):
    db = app_db(ps_server)
    ps_server.sql(["INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
                   "SELECT 'order', seq, 'order.created', REPEAT('x', 400) FROM seq_1_to_20000"], database=db)
    # A dump whose output nobody reads stalls inside its consistent-snapshot transaction (a hung backup job).
    with open(tmp_path / "dump.cnf", "w") as handle:
        handle.write("[client]\nuser=root\nsocket=%s\n" % ps_server.socket)
    dump = subprocess.Popen(["mariadb-dump", "--defaults-extra-file=%s" % (tmp_path / "dump.cnf"),
                             "--single-transaction", "--quick", db], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not ps_server.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE "
                                "'%%SQL_NO_CACHE%%' AND DB = '%s'" % db):
            assert time.monotonic() < deadline, "the dump never started reading"
            time.sleep(0.05)
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(ps_server, db, RELEASE, tmp_path, lock_blockers="refuse"))
        # Even statement #1 (a new table) waits: DDL during the dump would break the dump of what it has not read.
        assert "statement #1 (line 1) failed: refused before it ran (schema_lock_blockers is refuse)" in err.value.msg
        assert "a running backup" in err.value.msg and "SQL_NO_CACHE" in err.value.msg
        assert err.value.result["applied"] == []
        blockers = err.value.result["execution"]["statements"][0]["blockers"]
        assert [b["kind"] for b in blockers] == ["backup"]
        dump.communicate(timeout=60)
        assert dump.returncode == 0
        assert schema_apply.run(params(ps_server, db, RELEASE, tmp_path))["changed"] is True
    finally:
        dump.kill()
        dump.wait()


def test_the_backups_snapshot_transaction_is_closed_before_the_first_ddl(tmp_path):
    # Every statement the server receives goes to mysql.general_log, in order: the dump's session (the one that
    # opened the consistent snapshot) must have quit before schema_apply's first session connects.
    box = Sandbox(short_tmpdir())
    box.start(extra_args=("--general-log=ON", "--log-output=TABLE", "--performance-schema=ON",
                          "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON"))
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    try:
        db = app_db(box)
        backup_dir = tmp_path / "backups"
        backup_dir.mkdir()
        conn = login_params(box)
        job = run_module("db_backup", dict(conn, database=db, backup_dir=str(backup_dir), mode="start",
                                           label="v1", lease_seconds=120))
        assert not job.get("failed"), job
        status = {}
        for _ in range(120):
            status = run_module("db_backup", dict(conn, mode="status", job_dir=job["job_dir"], wait_seconds=1,
                                                  lease_seconds=120))
            if status.get("state") in ("done", "failed") or status.get("failed"):
                break
        assert status.get("state") == "done", status
        result = schema_apply.run(params(box, db, RELEASE, tmp_path))
        assert result["changed"] is True
        assert result["execution"]["statements"][0]["blockers"] == []
        log = box.sql("SELECT event_time, thread_id, command_type, CONVERT(argument USING utf8mb4) "
                      "FROM mysql.general_log ORDER BY event_time, thread_id")
        snapshot = [r for r in log if "WITH CONSISTENT SNAPSHOT" in r[3]]
        assert len(snapshot) == 1, "one dump, one consistent-snapshot transaction"
        dump_thread = snapshot[0][1]
        dump_start = min(r[0] for r in log if r[1] == dump_thread)
        dump_quit = max(r[0] for r in log if r[1] == dump_thread and r[2] == "Quit")
        first_ddl = min(r[0] for r in log if r[2] == "Query" and r[0] > dump_start and r[1] != dump_thread and
                        r[3].lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "RENAME")))
        assert dump_quit < first_ddl, (dump_quit, first_ddl)
        apply_threads = {r[1] for r in log if r[2] == "Query" and "ADD COLUMN IF NOT EXISTS trace_id" in r[3]}
        assert all(min(r[0] for r in log if r[1] == t) > dump_quit for t in apply_threads)
    finally:
        box.destroy()
