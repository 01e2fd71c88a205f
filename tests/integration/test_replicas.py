"""Replicas: a real MariaDB primary and a replica the test starts (binary logs, CHANGE MASTER TO with GTIDs).
The topology each reports, a release pointed at the replica refused, the lag gate before each statement (a replica
delayed with MASTER_DELAY, one with its SQL thread stopped), the online change pausing on lag and aborting cleanly,
and the plan schema built on the replica without reaching any binary log.

No test here waits for a lag to happen by the clock: the lag comes from MASTER_DELAY applied to writes the test
keeps making (`Writer`) until the run has reached the point under test (its connection to the replica, pt-osc
started, the copy paused), and the replica being behind is read from the replica before the run starts."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pymysql
import pytest
import schema_apply
from ansible.module_utils.dbrelease import topology
from ansible.module_utils.dbrelease.db import connect
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params, short_tmpdir
from helpers import run_module
from sandbox_db import Sandbox


@pytest.fixture(scope="module")
def pair():
    primary = Sandbox(short_tmpdir())
    primary.start(extra_args=("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"))
    primary.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    replica = Sandbox(short_tmpdir(), server_id=2)
    replica.start(extra_args=("--read-only=ON", "--innodb-flush-log-at-trx-commit=2"))
    replica.replicate_from(primary)
    replica.wait_caught_up(primary)
    yield primary, replica
    replica.destroy()
    primary.destroy()


@pytest.fixture
def shop(pair):
    """A database on the primary, replicated, with an `entries` table of 1000 rows."""
    primary, replica = pair
    db = "shop_" + uuid.uuid4().hex[:6]
    primary.sql(["CREATE DATABASE `%s`" % db,
                 "CREATE TABLE `%s`.entries (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, amount INT NOT NULL, "
                 "note VARCHAR(20) NOT NULL)" % db])
    primary.sql("INSERT INTO entries SELECT seq, seq MOD 1000, 'n' FROM seq_1_to_1000", database=db)
    replica.wait_caught_up(primary)
    yield db
    replica.sql(["STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=0", "START SLAVE"])
    primary.sql("DROP DATABASE IF EXISTS `%s`" % db)


def slave_status(replica):
    conn = replica.root()
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            return cur.fetchone()
    finally:
        conn.close()


def pt_osc_pids():
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and b"pt-online-schema-change" in Path("/proc/%s/cmdline" % pid).read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def stopped_pt_osc():
    """True while a pt-online-schema-change process is stopped (paused by SIGSTOP)."""
    for pid in pt_osc_pids():
        try:
            if Path("/proc/%s/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] == "T":
                return True
        except OSError:
            continue
    return False


def set_delay(replica, seconds):
    replica.sql(["STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=%d" % seconds, "START SLAVE"])


class When:
    """A thread that runs `action` once `condition()` holds (checked every 50 ms); `done` says it did. When it never
    does within `timeout`, `otherwise` runs (so that a broken feature fails the test instead of hanging it)."""

    def __init__(self, condition, action, timeout=90, otherwise=None):
        self.done = threading.Event()

        def run():
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition():
                    action()
                    self.done.set()
                    return
                time.sleep(0.05)
            if otherwise is not None:
                otherwise()

        threading.Thread(target=run, daemon=True).start()


class Writer:
    """The application writing one row to the primary every 0.1 s (table `ticks`) until stopped."""

    def __init__(self, box, db):
        box.sql("CREATE TABLE IF NOT EXISTS ticks (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL)",
                database=db)
        self.conn = box.root(db)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.conn.cursor() as cur:
            while not self.stopped.is_set():
                cur.execute("INSERT INTO ticks (at) VALUES (NOW(6))")
                self.stopped.wait(0.1)

    def stop(self):
        self.stopped.set()
        self.thread.join(10)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.conn.close()


class Load:
    """`n` sessions running SLEEP on the server (Threads_running goes over `n`) until released."""

    def __init__(self, box, n):
        self.box, self.conns = box, [box.root() for _ in range(n)]
        self.threads = [threading.Thread(target=self._sleep, args=(c,), daemon=True) for c in self.conns]
        for thread in self.threads:
            thread.start()
        ids = ",".join(str(c.thread_id()) for c in self.conns)
        deadline = time.monotonic() + 30
        try:
            while box.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (%s) AND "
                          "INFO = 'SELECT SLEEP(300)'" % ids)[0][0] < n:
                assert time.monotonic() < deadline, "the load never started"
                time.sleep(0.05)
        except BaseException:
            self.release()
            raise

    @staticmethod
    def _sleep(conn):
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT SLEEP(300)")
        except pymysql.err.MySQLError:
            pass

    def release(self, wait=True):
        """End the sleeps (once; a second call does nothing)."""
        conns, self.conns = self.conns, []
        if conns:
            self.box.sql(["KILL QUERY %d" % c.thread_id() for c in conns])
        for thread in self.threads if wait else ():
            thread.join(10)
        for conn in conns:
            conn.close()


def run_connected_to(replica):
    """True once the release's account has a session on the replica: the run's lag reads have begun."""
    return replica.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '%s'" % ADMIN_USER)[0][0] > 0


def wait_behind(replica, seconds, timeout=30):
    """Wait until the replica waits out MASTER_DELAY on an event at least `seconds` old."""
    deadline = time.monotonic() + timeout
    while True:
        status = slave_status(replica)
        if status["SQL_Remaining_Delay"] is not None and (status["Seconds_Behind_Master"] or 0) >= seconds:
            return
        assert time.monotonic() < deadline, "the replica never fell %d s behind: %s" % (seconds, status)
        time.sleep(0.1)


def replica_entry(replica, name="replica"):
    return {"name": name, "host": "127.0.0.1", "port": replica.port}


def params(box, db, tmp_path, text, **extra):
    path = tmp_path / "release.sql"
    path.write_text(text)
    p = dict(login_params(box), db=db, ddl_files=[str(path)], ddl_names=[], ddl_contents=[], environment="staging",
             allow_destructive=False, allow_blocking_alter=False, large_table_bytes=1 << 30,
             require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced")
    p.update(extra)
    return p


def columns(box, db, table="entries"):
    return {r[0] for r in box.sql("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' "
                                  "AND TABLE_NAME = '%s'" % (db, table))}


def test_each_endpoint_reports_its_topology(pair):
    primary, replica = pair
    seen = run_module("db_topology", dict(login_params(primary), replicas=[replica_entry(replica)],
                                          require_primary=True, max_lag=5, wait_seconds=10))
    assert not seen.get("failed"), seen
    topo = seen["topology"]
    assert topo["role"] == "primary" and topo["read_only"] is False and topo["replication"] == []
    assert topo["replicas_listed"] == [{"server_id": 2, "host": "127.0.0.1", "port": replica.port,
                                        "source_server_id": 1}]
    assert [d["user"] for d in topo["binlog_dump_threads"]] == ["sandbox_repl"]
    assert topo["gtid"]["mode"] == "mariadb" and topo["gtid"]["binlog_pos"].startswith("0-1-")
    assert seen["replicas"]["replica"]["lag_seconds"] == 0 and seen["unlisted_replicas"] == []
    alone = run_module("db_topology", dict(login_params(primary)))
    assert alone["unlisted_replicas"] == [{"server_id": 2, "host": "127.0.0.1", "port": replica.port,
                                           "seen_by": "replica list"}]
    other = run_module("db_topology", dict(login_params(replica)))
    assert other["topology"]["role"] == "replica" and other["topology"]["read_only"] is True
    source = other["topology"]["replication"][0]
    assert (source["source_port"], source["source_server_id"], source["gtid"]) == (
        primary.port, 1, "Using_Gtid=Slave_Pos")
    refused = run_module("db_topology", dict(login_params(replica), require_primary=True))
    assert refused["failed"] and "is a replica (it replicates from 127.0.0.1:%d" % primary.port in refused["msg"]


def test_a_release_pointed_at_the_replica_is_refused_before_anything(pair, shop, tmp_path):
    primary, replica = pair
    result = run_module("schema_apply", params(replica, shop, tmp_path,
                                               "ALTER TABLE entries ADD COLUMN IF NOT EXISTS c INT;\n"))
    assert result["failed"] and result["msg"].startswith(
        "refused before anything was planned or applied: db_admin@socket %s is a replica" % replica.socket)
    assert "it replicates from 127.0.0.1:%d" % primary.port in result["msg"]
    assert "read_only is ON" in result["msg"] and "Point the release at the primary" in result["msg"]
    assert "c" not in columns(replica, shop)
    assert not replica.sql("SHOW DATABASES LIKE '%\\_\\_dbrelease\\_plan\\_%'")


def test_each_statement_waits_for_a_delayed_replica_and_the_record_shows_the_lag(pair, shop, tmp_path):
    primary, replica = pair
    # The replica applies the application's writes 3 s late, and the application writes until the run connects to
    # the replica: the first gate finds it at least 2 s behind, and waits until it has executed the primary's
    # position (at most 0 s behind), which cannot happen before the last write is 3 s old. Statement #1 reaches it
    # 3 s late as well: the second gate finds it behind, and waits again.
    with Writer(primary, shop) as writer:
        replica.wait_caught_up(primary)
        set_delay(replica, 3)
        wait_behind(replica, 2)
        stopped = When(lambda: run_connected_to(replica), writer.stop)
        text = ("ALTER TABLE entries ADD COLUMN IF NOT EXISTS currency CHAR(3) NULL;\n"
                "CREATE TABLE IF NOT EXISTS audit (id INT PRIMARY KEY);\n")
        result = schema_apply.run(params(primary, shop, tmp_path, text, replicas=[replica_entry(replica)],
                                         replica_max_lag=0, replica_lag_wait_seconds=30))
    assert stopped.done.is_set()
    # Each gate let its statement run only once the replica had executed everything before it: #1 is there.
    assert "currency" in columns(replica, shop)
    first, second = result["execution"]["statements"]
    assert first["replica_lag"]["replica"]["lag_seconds"] >= 2 and first["replica_lag_waited_seconds"] >= 1
    assert second["replica_lag"]["replica"]["lag_seconds"] > 0 and second["replica_lag_waited_seconds"] >= 1
    assert first["replica_lag"]["replica"]["sql_delay"] == 3 and first["replica_lag"]["replica"]["caught_up"] is False
    assert result["execution"]["summary"]["replica_lag_max_seconds"] >= 2
    replica.wait_caught_up(primary, timeout=30)
    assert "audit" in {r[0] for r in replica.sql("SHOW TABLES FROM `%s`" % shop)}


def test_a_replica_that_lacks_the_latest_write_is_behind_from_the_first_read(pair, shop):
    # The replica has received a write it applies 3 s later; Seconds_Behind_Master reads 0 for the first second of
    # that wait (MariaDB 10.11), and 0 before the write has even arrived. The lag read compares positions instead.
    primary, replica = pair
    set_delay(replica, 3)
    replica.wait_caught_up(primary)
    conn = connect(login_params(primary))
    group = topology.Replicas(login_params(primary), [replica_entry(replica)], 1, primary=conn,
                              primary_flavor="mariadb")
    try:
        assert group.lags()["replica"]["lag_seconds"] == 0
        primary.sql("INSERT INTO entries VALUES (1000001, 1, 'late')", database=shop)
        target = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
        lag = group.lags()["replica"]
        # The write was not applied when the lag was read: it still is not now.
        assert replica.sql("SELECT MASTER_GTID_WAIT('%s', 0)" % target)[0][0] == -1
        assert lag["lag_seconds"] > 0 and not topology.lag_ok(lag, 0) and lag["caught_up"] is False
        seen = group.wait(0, time.monotonic() + 30)
        assert seen["waited"] >= 1 and seen["lags"]["replica"]["lag_seconds"] == 0
        assert seen["worst"]["replica"]["lag_seconds"] >= 1
        assert replica.sql("SELECT MASTER_GTID_WAIT('%s', 0)" % target)[0][0] == 0
    finally:
        group.close()
        conn.close()


def test_a_replica_with_its_sql_thread_stopped_stops_the_release_before_any_ddl(pair, shop, tmp_path):
    primary, replica = pair
    replica.sql("STOP SLAVE SQL_THREAD")
    try:
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(primary, shop, tmp_path, "CREATE TABLE IF NOT EXISTS audit (id INT PRIMARY KEY);\n",
                                    replicas=[replica_entry(replica, "db2")], replica_lag_wait_seconds=2))
        assert ("statement #1 (line 1) failed: refused before it ran: replica lag over 10 s (schema_replica_max_lag) "
                "after waiting 2 s: db2 lag unknown (its SQL thread is stopped)") in err.value.msg
        assert err.value.result["applied"] == [] and "audit" not in {
            r[0] for r in primary.sql("SHOW TABLES FROM `%s`" % shop)}
    finally:
        replica.sql("START SLAVE SQL_THREAD")


@pytest.mark.parametrize("lag_wait, outcome", [(60, "paused"), (1, "aborted")])
def test_the_online_change_pauses_while_the_replica_lags_and_aborts_cleanly_when_it_stays_behind(
        pair, shop, tmp_path, lag_wait, outcome):
    primary, replica = pair
    primary.sql("INSERT INTO entries SELECT seq, seq MOD 1000, 'm' FROM seq_1001_to_200000", database=shop)
    replica.wait_caught_up(primary, timeout=60)
    before = primary.sql("SHOW CREATE TABLE `%s`.entries" % shop)[0][1]
    # The copy cannot finish before the lag is seen: the server is over online_max_load (Threads_running, 12
    # sessions in SLEEP) from before the run, so pt-osc holds its copy after the first chunk, until the test lets
    # it go once the module has paused it for the replica's lag. That lag: once pt-osc runs, the replica applies
    # the application's writes 3 s late.
    load = Load(primary, 12)
    with Writer(primary, shop):
        delayed = When(lambda: bool(pt_osc_pids()), lambda: set_delay(replica, 3))

        def on_pause():  # the delay goes: the replica catches up, and the copy resumes
            load.release()
            set_delay(replica, 0)

        # The pause that ends in an abort lasts about lag_wait (1 s): the test does not need to see it; the
        # module's report says it happened. The one that resumes lasts until the test ends the delay.
        paused = When(stopped_pt_osc, on_pause, timeout=60, otherwise=load.release) if outcome == "paused" else None
        p = params(primary, shop, tmp_path, "ALTER TABLE entries MODIFY amount BIGINT NOT NULL;\n",
                   replicas=[replica_entry(replica)], replica_max_lag=1, replica_lag_wait_seconds=lag_wait,
                   online_min_bytes=1, online_chunk_time=0.1, lock_wait_timeout=2,
                   online_max_load="Threads_running=9")
        try:
            if outcome == "paused":
                result = schema_apply.run(p)
            else:
                with pytest.raises(schema_apply.SchemaFailure) as err:
                    schema_apply.run(p)
        finally:
            load.release(wait=False)
    online = (result if outcome == "paused" else err.value.result)["execution"]["statements"][0]["online"]
    assert delayed.done.is_set() and online["pauses"] and (paused is None or paused.done.is_set()), {
        k: online.get(k) for k in ("pauses", "lag_max", "seconds", "output_tail")}
    if outcome == "paused":
        assert online["ok"] and len(online["pauses"]) >= 1 and online["paused_seconds"] >= 1
        assert online["pauses"][0]["replicas"]["replica"]["lag_seconds"] > 1 and online["lag_max"] > 1
        assert "bigint" in primary.sql("SHOW CREATE TABLE `%s`.entries" % shop)[0][1]
        return
    assert online["pauses"][0]["replicas"]["replica"]["lag_seconds"] > 1
    assert "pt-online-schema-change was aborted: replica lag stayed over schema_replica_max_lag 1 s" in err.value.msg
    assert "the original table is untouched" in err.value.msg and online["original_untouched"] is True
    assert online["cleanup"]["dropped_triggers"] and online["cleanup"]["dropped_tables"] == ["_entries_new"]
    assert primary.sql("SHOW CREATE TABLE `%s`.entries" % shop)[0][1] == before
    assert not primary.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%s'" % shop)
    assert {r[0] for r in primary.sql("SHOW TABLES FROM `%s`" % shop)} == {"entries", "ticks"}


def test_the_plan_schema_is_built_on_the_replica_and_reaches_no_binary_log(pair, shop, tmp_path):
    primary, replica = pair
    replica_pos = replica.sql("SELECT @@gtid_binlog_pos")[0][0]
    primary_pos = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
    plan_server = {"host": "127.0.0.1", "port": replica.port}
    result = schema_apply.run(params(primary, shop, tmp_path, "ALTER TABLE entries ADD COLUMN IF NOT EXISTS c INT;\n",
                                     plan_server=plan_server), check_mode=True)
    assert [(c["object"], c["action"]) for c in result["plan"]] == [("table entries", "alter")]
    assert result["plan_server"]["role"] == "replica" and result["plan_server"]["sql_log_bin"] == 0
    assert result["plan_server"]["endpoint"] == "db_admin@127.0.0.1:%d" % replica.port
    assert result["lint"]["alters"][0]["algorithm"] == "instant"
    # Nothing written on the primary, nothing in either binary log, no errant transaction on the replica.
    assert primary.sql("SELECT @@gtid_binlog_pos")[0][0] == primary_pos
    assert replica.sql("SELECT @@gtid_binlog_pos")[0][0] == replica_pos
    assert not replica.sql("SHOW DATABASES LIKE '%\\_\\_dbrelease\\_plan\\_%'")
    status = slave_status(replica)
    assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes")


def test_the_lag_gate_between_fleet_batches_passes_a_caught_up_replica_and_stops_on_a_stopped_one(pair, shop):
    # fleet.yml's gate after each batch is this module call (db_topology with max_lag and wait_seconds); its waiting
    # is the lag gate of the schema phase (test above) and of tests/unit/test_topology.py.
    primary, replica = pair
    gate = dict(login_params(primary), replicas=[replica_entry(replica, "db2")], max_lag=1, wait_seconds=30)
    replica.wait_caught_up(primary)
    passed = run_module("db_topology", gate)
    assert not passed.get("failed"), passed
    assert passed["replicas"]["db2"]["lag_seconds"] <= 1 and passed["msg"].endswith("replicas: db2 %g s behind" % (
        passed["replicas"]["db2"]["lag_seconds"]))
    replica.sql("STOP SLAVE SQL_THREAD")
    try:
        stopped = run_module("db_topology", dict(gate, wait_seconds=2))
        assert stopped["failed"] and stopped["msg"] == (
            "replica lag over 1 s (max_lag) after waiting 2 s: db2 lag unknown (its SQL thread is stopped)")
        assert stopped["record"]["replicas"]["db2"]["lag_seconds"] is None
    finally:
        replica.sql("START SLAVE SQL_THREAD")
