"""Replicas: a real MariaDB primary and a replica the test starts (binary logs, CHANGE MASTER TO with GTIDs).
The topology each reports, a release pointed at the replica refused, the lag gate before each statement (a replica
delayed with MASTER_DELAY, one with its SQL thread stopped), the online change pausing on lag and aborting cleanly,
and the plan schema built on the replica without reaching any binary log."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pymysql
import pytest
import schema_apply
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


def delay_once_copying(replica, seconds, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pt_osc_pids():
        time.sleep(0.05)
    replica.sql(["STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=%d" % seconds, "START SLAVE"])


def end_delay_once_paused(replica, timeout=60):
    """Once the copy is paused for the replica's lag, the delay goes: it catches up, and the copy resumes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopped_pt_osc():
        time.sleep(0.1)
    time.sleep(1.0)
    replica.sql(["STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=0", "START SLAVE"])


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
    # The plan's own temporary schema (created and dropped on the primary) reaches the replica 3 s late: the first
    # statement waits for it to be applied (at most 0 s behind).
    replica.sql(["STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=3", "START SLAVE"])
    text = ("ALTER TABLE entries ADD COLUMN IF NOT EXISTS currency CHAR(3) NULL;\n"
            "CREATE TABLE IF NOT EXISTS audit (id INT PRIMARY KEY);\n")
    result = schema_apply.run(params(primary, shop, tmp_path, text, replicas=[replica_entry(replica)],
                                     replica_max_lag=0, replica_lag_wait_seconds=30))
    first, second = result["execution"]["statements"]
    assert first["replica_lag"]["replica"]["lag_seconds"] >= 1 and first["replica_lag_waited_seconds"] >= 1
    assert first["replica_lag"]["replica"]["sql_delay"] == 3
    assert second["replica_lag"]["replica"]["lag_seconds"] is not None
    assert result["execution"]["summary"]["replica_lag_max_seconds"] >= 1
    replica.wait_caught_up(primary, timeout=30)
    assert "currency" in columns(replica, shop)


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
    # Once pt-osc runs, the replica applies what it receives 3 s late: with the copy's writes its lag goes over the
    # 1 s allowed, and the copy pauses.
    threading.Thread(target=delay_once_copying, args=(replica, 3), daemon=True).start()
    p = params(primary, shop, tmp_path, "ALTER TABLE entries MODIFY amount BIGINT NOT NULL;\n",
               replicas=[replica_entry(replica)], replica_max_lag=1, replica_lag_wait_seconds=lag_wait,
               online_min_bytes=1, online_chunk_time=0.1, lock_wait_timeout=2)
    if outcome == "paused":
        threading.Thread(target=end_delay_once_paused, args=(replica,), daemon=True).start()
        result = schema_apply.run(p)
        online = result["execution"]["statements"][0]["online"]
        assert online["ok"] and online["pauses"] and online["paused_seconds"] >= 1
        assert online["lag_max"] >= 2 and "bigint" in primary.sql("SHOW CREATE TABLE `%s`.entries" % shop)[0][1]
        return
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(p)
    online = err.value.result["execution"]["statements"][0]["online"]
    assert "pt-online-schema-change was aborted: replica lag stayed over schema_replica_max_lag 1 s" in err.value.msg
    assert "the original table is untouched" in err.value.msg and online["original_untouched"] is True
    assert online["cleanup"]["dropped_triggers"] and online["cleanup"]["dropped_tables"] == ["_entries_new"]
    assert primary.sql("SHOW CREATE TABLE `%s`.entries" % shop)[0][1] == before
    assert not primary.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%s'" % shop)
    assert {r[0] for r in primary.sql("SHOW TABLES FROM `%s`" % shop)} == {"entries"}


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
    assert passed["replicas"]["db2"]["lag_seconds"] <= 1 and passed["msg"].endswith("replicas: db2 %d s behind" % (
        passed["replicas"]["db2"]["lag_seconds"]))
    replica.sql("STOP SLAVE SQL_THREAD")
    try:
        stopped = run_module("db_topology", dict(gate, wait_seconds=2))
        assert stopped["failed"] and stopped["msg"] == (
            "replica lag over 1 s (max_lag) after waiting 2 s: db2 lag unknown (its SQL thread is stopped)")
        assert stopped["record"]["replicas"]["db2"]["lag_seconds"] is None
    finally:
        replica.sql("START SLAVE SQL_THREAD")
