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


@pytest.mark.parametrize("replica, primary, reached", [
    ("0-1-5", "0-1-5", True),
    ("0-1-6", "0-1-5", True),
    ("0-1-2", "0-1-5", False),
    ("0-1-9,1-3-4", "0-1-9,1-3-5", False),  # behind in one domain
    ("1-3-5,0-1-9", "0-1-9,1-3-5", True),
    ("0-1-9", "0-1-9,1-3-5", False),  # a domain it has never seen
    ("", "0-1-1", False),
    ("0-2-7", "", True),  # nothing written yet
])
def test_mariadb_gtid_positions_compare_per_domain(replica, primary, reached):
    assert tp.mariadb_gtid_reached(replica, primary) is reached


def test_domains_the_replica_does_not_replicate_are_not_waited_for():
    assert tp.mariadb_gtid_reached("0-1-9", "0-1-9,1-3-5", ignore_domains="1")
    assert tp.mariadb_gtid_reached("0-1-9", "0-1-9,1-3-5,2-3-1", do_domains="0")
    assert not tp.mariadb_gtid_reached("0-1-8", "0-1-9,1-3-5", ignore_domains="1,2")


@pytest.mark.parametrize("replica, primary, reached", [
    (("mysql-bin.000007", 400), ("mysql-bin.000007", 400), True),
    (("mysql-bin.000007", 399), ("mysql-bin.000007", 400), False),
    (("mysql-bin.000010", 4), ("mysql-bin.000009", 900000), True),  # the next file: numbers, not text
    (("mysql-bin.000009", 900000), ("mysql-bin.000010", 4), False),
    (("other-bin.000010", 4), ("mysql-bin.000009", 4), False),
])
def test_file_positions_compare_by_log_number(replica, primary, reached):
    assert tp.file_pos_reached(replica[0], replica[1], primary[0], primary[1]) is reached


def test_a_delayed_replica_waiting_on_an_event_shows_its_age_not_seconds_behind_master():
    # MariaDB 10.11 during the first second of the wait: Seconds_Behind_Master 0, SQL_Remaining_Delay 2 of 3.
    row = tp.normalise_replication(dict(MARIADB["show_all_slaves_status"][0], Seconds_Behind_Master=0, SQL_Delay=3,
                                        SQL_Remaining_Delay=2))
    assert tp.lag_from_rows([row], 1)["lag_seconds"] == 1


def test_positions_make_a_replica_that_lacks_a_write_behind_however_seconds_behind_master_reads():
    pending = []
    reached = {"p1": False, "p2": False}

    def read(caught_up, sbm=0):
        return {"lag_seconds": sbm, "caught_up": caught_up, "reached": lambda target: reached[target]}

    # First check: it lacks the position just read - behind, however little (never 0).
    pending.append((10.0, "p1"))
    assert tp.with_positions(read(False), pending, 10.0)["lag_seconds"] == 0.1
    assert not tp.lag_ok({"lag_seconds": 0.1}, 0) and tp.lag_ok({"lag_seconds": 0.1}, 1)
    # 2.34 s later it still lacks p1 (and p2, read now): 2.4 s behind, whatever Seconds_Behind_Master says.
    pending.append((12.34, "p2"))
    info = tp.with_positions(read(False), pending, 12.34)
    assert info["lag_seconds"] == 2.4 and "reached" not in info
    # It has executed p1, not p2: behind by the time since p2 was read; Seconds_Behind_Master counts when larger.
    reached["p1"] = True
    pending.append((13.0, "p3"))
    assert tp.with_positions(read(False), pending, 13.0)["lag_seconds"] == 0.7 and len(pending) == 2
    assert tp.with_positions(read(False, sbm=5), list(pending), 13.0)["lag_seconds"] == 5
    # Caught up with the position read now: 0, and nothing pending.
    assert tp.with_positions(read(True, sbm=3), pending, 14.0)["lag_seconds"] == 0 and pending == []
    # Positions that cannot be compared: Seconds_Behind_Master as read.
    assert tp.with_positions(read(None, sbm=2), [(1.0, "p1")], 14.0)["lag_seconds"] == 2
