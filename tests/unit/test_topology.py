"""Topology: replication status of MySQL 8 (from its manual) and MariaDB 10.11 (recorded) in one shape, roles,
the refusal of a replica target, and replica lag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.dbrelease import topology as tp

FIXTURES = Path(__file__).parent / "fixtures"
MYSQL8 = json.loads((FIXTURES / "mysql8" / "replication.json").read_text())
MARIADB = json.loads((FIXTURES / "mariadb10.11" / "replication.json").read_text())


@pytest.mark.parametrize("flavor, version, status, hosts", [
    ("mysql", (8, 0, 36), "SHOW REPLICA STATUS", "SHOW REPLICAS"),
    ("mysql", (8, 0, 22), "SHOW REPLICA STATUS", "SHOW REPLICAS"),
    ("mysql", (8, 0, 21), "SHOW SLAVE STATUS", "SHOW SLAVE HOSTS"),
    ("mysql", (5, 7, 44), "SHOW SLAVE STATUS", "SHOW SLAVE HOSTS"),
    ("mariadb", (10, 11, 6), "SHOW ALL SLAVES STATUS", "SHOW SLAVE HOSTS"),
])
def test_the_statements_follow_the_server(flavor, version, status, hosts):
    assert (tp._status_sql(flavor, version), tp._hosts_sql(flavor, version)) == (status, hosts)


def test_mysql8_replica_status_reads_in_the_common_shape():
    row = tp.normalise_replication(MYSQL8["show_replica_status"][0])
    assert (row["source_host"], row["source_port"], row["source_server_id"]) == ("db1.internal", 3306, 101)
    assert (row["io_running"], row["sql_running"], row["seconds_behind"]) == ("Yes", "Yes", 7)
    assert row["gtid"] == "auto_position" and row["executed_gtid_set"].endswith(":1-5819")
    assert tp.lag_from_rows([row], 101) == {"lag_seconds": 7, "io_running": "Yes", "sql_running": "Yes",
                                            "sql_delay": 0, "source_server_id": 101, "reason": ""}


def test_mariadb_recorded_replica_status_reads_in_the_same_shape():
    row = tp.normalise_replication(MARIADB["show_all_slaves_status"][0])
    assert (row["source_host"], row["source_port"]) == ("127.0.0.1", MARIADB["primary_port"])
    assert row["source_server_id"] == MARIADB["primary_server_id"] and row["gtid"] == "Using_Gtid=Slave_Pos"
    assert tp.lag_from_rows([row], 1)["lag_seconds"] == 0
    hosts = [tp.normalise_replica_host(r) for r in MARIADB["show_slave_hosts"]]
    assert hosts == [{"server_id": 2, "host": "127.0.0.1", "port": MARIADB["replica_port"], "source_server_id": 1}]


def test_mysql8_replicas_listed_by_the_primary():
    assert [tp.normalise_replica_host(r) for r in MYSQL8["show_replicas"]] == [
        {"server_id": 102, "host": "db2.internal", "port": 3306, "source_server_id": 101}]


@pytest.mark.parametrize("rows, reason", [
    (MYSQL8["show_replica_status_sql_stopped"], "its SQL thread is stopped: Error 'Duplicate entry"),
    (MARIADB["show_all_slaves_status_sql_stopped"], "its SQL thread is stopped"),
])
def test_a_stopped_sql_thread_is_unknown_lag_and_never_passes(rows, reason):
    lag = tp.lag_from_rows([tp.normalise_replication(r) for r in rows])
    assert lag["lag_seconds"] is None and lag["reason"].startswith(reason)
    assert not tp.lag_ok(lag, 3600) and tp.lag_text(lag).startswith("lag unknown (its SQL thread is stopped")


def test_a_replica_of_another_primary_is_not_taken_for_ours():
    row = tp.normalise_replication(MYSQL8["show_replica_status"][0])
    lag = tp.lag_from_rows([row], primary_server_id=7)
    assert lag["lag_seconds"] is None and "replicates from server_id 101, not from the primary (server_id 7)" in \
        lag["reason"]


def test_no_replication_is_unknown_lag():
    assert tp.lag_from_rows([])["reason"] == "no replication is set up on it"


@pytest.mark.parametrize("read_only, super_read_only, rows, role", [
    (0, None, [], "primary"),
    ("OFF", "OFF", [], "primary"),
    (1, None, [], "replica"),
    (0, 1, [], "replica"),
    (0, None, [{"io_running": "Yes", "sql_running": "Yes"}], "replica"),
    (0, None, [{"io_running": "Connecting", "sql_running": "No"}], "replica"),
    # Replication set up but stopped, on a writable server: still a replica (paused for maintenance, say).
    (0, None, [{"io_running": "No", "sql_running": "No"}], "replica"),
])
def test_roles(read_only, super_read_only, rows, role):
    assert tp.role_of(read_only, super_read_only, rows) == role


def test_a_replica_target_is_refused_with_where_it_replicates_from():
    row = tp.normalise_replication(MYSQL8["show_replica_status"][0])
    topo = {"role": "replica", "replication": [row], "read_only": True, "super_read_only": True}
    text = tp.replica_refusal(topo, "db_admin@db2.internal:3306")
    assert text.startswith("db_admin@db2.internal:3306 is a replica (it replicates from db1.internal:3306")
    assert "read_only is ON; super_read_only is ON" in text and "Point the release at the primary" in text
    assert tp.replica_refusal({"role": "primary", "replication": [], "read_only": False}, "x") == ""


def test_replica_connection_parameters_default_to_the_primarys_account():
    base = {"login_user": "db_admin", "login_password": "pw", "login_host": "db1", "login_port": 3306,
            "login_unix_socket": "/run/mysqld/mysqld.sock", "connect_timeout": 5}
    params = tp.replica_params(base, {"name": "db2", "host": "db2", "port": "3307"})
    assert params == dict(base, login_host="db2", login_port=3307, login_unix_socket="")
    own = tp.replica_params(base, {"host": "db3", "user": "monitor", "password": "m"})
    assert (own["login_user"], own["login_password"], own["login_port"]) == ("monitor", "m", 3306)
    assert tp.replica_name({}, own) == "db3:3306"
    by_socket = tp.replica_params(base, {"socket": "/run/db2.sock"})
    assert by_socket["login_unix_socket"] == "/run/db2.sock" and by_socket["login_host"] == "db1"


def test_the_lag_gate_waits_then_refuses_naming_the_replica():
    class Fake(tp.Replicas):
        def __init__(self, answers):
            self.answers, self.items, self.errors = list(answers), [], {}

        def lags(self):
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    clock = {"now": 0.0}

    def sleep(s):
        clock["now"] += s

    fast = Fake([{"db2": {"lag_seconds": 30}}, {"db2": {"lag_seconds": 4}}, {"db2": {"lag_seconds": 1}}])
    seen = fast.wait(5, deadline=60, clock=lambda: clock["now"], sleep=sleep)
    assert seen["lags"] == {"db2": {"lag_seconds": 4}} and seen["worst"]["db2"]["lag_seconds"] == 30
    stuck = Fake([{"db2": {"lag_seconds": None, "reason": "its SQL thread is stopped"}}])
    with pytest.raises(tp.LagTooHigh) as err:
        stuck.wait(5, deadline=clock["now"] + 3, clock=lambda: clock["now"], sleep=sleep)
    assert err.value.message() == ("replica lag over 5 s (schema_replica_max_lag) after waiting 3 s: db2 lag "
                                   "unknown (its SQL thread is stopped)")
