"""Lock guard: the sources chosen per server flavor and version, and the blockers found in the rows the servers
return (MySQL 8 from its manual, MariaDB 10.11 recorded from a real server: see fixtures/*/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.dbrelease import lock_guard as lg

FIXTURES = Path(__file__).parent / "fixtures"
MYSQL8 = json.loads((FIXTURES / "mysql8" / "mdl_outbox_blocked.json").read_text())
MARIADB = json.loads((FIXTURES / "mariadb10.11" / "mdl_outbox_blocked.json").read_text())

P_S_ON = {"performance_schema": 1, "mdl_instrument": "YES", "global_instrumentation": "YES",
          "statements_current": "YES", "process_privilege": True}


@pytest.mark.parametrize("flavor, version, probes, mdl, processlist, last", [
    ("mysql", (8, 0, 36), P_S_ON, lg.MDL_PERFORMANCE_SCHEMA, "performance_schema", True),
    ("mysql", (8, 0, 21), P_S_ON, lg.MDL_PERFORMANCE_SCHEMA, "information_schema", True),
    ("mysql", (8, 0, 36), {"performance_schema": 0, "process_privilege": True}, None, "information_schema", False),
    ("mysql", (5, 7, 44), dict(P_S_ON, mdl_instrument="NO", statements_current="NO"), None, "information_schema",
     False),
    ("mariadb", (10, 11, 6), {"performance_schema": 0, "metadata_lock_info": "ACTIVE", "process_privilege": True},
     lg.MDL_PLUGIN, "information_schema_ms", False),
    ("mariadb", (10, 11, 6), dict(P_S_ON, statements_current="NO", metadata_lock_info="ACTIVE"),
     lg.MDL_PERFORMANCE_SCHEMA, "information_schema_ms", False),
    ("mariadb", (10, 6, 2), {"performance_schema": 0, "metadata_lock_info": None, "process_privilege": True}, None,
     "information_schema_ms", False),
])
def test_sources_are_chosen_per_flavor_and_version(flavor, version, probes, mdl, processlist, last):
    caps = lg.choose_sources(flavor, version, probes)
    assert (caps["mdl"], caps["processlist"], caps["last_statement"]) == (mdl, processlist, last)
    assert bool(caps["notes"]) is (mdl is None)
    if mdl is None:
        assert "tables are unknown" in caps["notes"][0]
        assert ("metadata_lock_info" in caps["notes"][0]) is (flavor == "mariadb")


def test_an_account_without_process_is_told_it_is_blind():
    caps = lg.choose_sources("mysql", (8, 0, 36), dict(P_S_ON, process_privilege=False))
    assert any("lacks the PROCESS privilege" in n for n in caps["notes"])


def mysql8_state(**extra_rows):
    caps = lg.choose_sources("mysql", MYSQL8["server"]["version_tuple"], MYSQL8["probes"])
    rows = dict(processlist=MYSQL8["processlist"], trx=MYSQL8["innodb_trx"], mdl=MYSQL8["metadata_locks"],
                last=MYSQL8["last_statement"])
    rows.update(extra_rows)
    return lg.state_from_rows(caps, rows["processlist"], rows["trx"], rows["mdl"], rows["last"])


def test_mysql8_the_idle_transaction_that_read_outbox_is_the_blocker_named_with_its_last_statement():
    own = (MYSQL8["ids"]["ddl"], MYSQL8["ids"]["guard"])
    blockers = lg.find_blockers(mysql8_state(), "app", ["outbox"], own)
    assert [b["id"] for b in blockers] == [6]
    b = blockers[0]
    assert (b["user"], b["host"], b["kind"], b["trx_seconds"], b["idle_seconds"]) == (
        "app_rw", "10.0.4.17:51538", "transaction", 3, 3.0)
    assert b["locks"] == ["holds SHARED_READ on outbox"] and b["tables_known"]
    assert b["statement"] is None and b["last_statement"] == "SELECT * FROM outbox WHERE id = ?"
    text = lg.describe(b)
    assert text.startswith("session 6 app_rw@10.0.4.17:51538 (db app), in a transaction for 3 s, idle for 3 s")
    assert "holds SHARED_READ on outbox" in text and "last statement: SELECT * FROM outbox WHERE id = ?" in text
    assert "42" not in text  # the value the application bound is never shown


def test_mysql8_a_queued_query_is_not_a_blocker_but_another_waiting_ddl_is():
    blockers = lg.find_blockers(mysql8_state(), "app", ["outbox"], own_ids=(MYSQL8["ids"]["guard"],))
    kinds = {b["id"]: b["kind"] for b in blockers}
    assert kinds == {6: "transaction", 7: "ddl"}
    ddl = next(b for b in blockers if b["id"] == 7)
    assert "waits for EXCLUSIVE on outbox" in ddl["locks"]
    assert ddl["statement"] == "ALTER TABLE outbox ADD COLUMN w INT, ALGORITHM=INSTANT"


def test_mysql8_other_tables_and_the_event_scheduler_are_left_alone():
    assert lg.find_blockers(mysql8_state(), "app", ["users"], (7, 9)) == []
    assert lg.find_blockers(mysql8_state(), "other_db", ["outbox"], (7, 9)) == []


@pytest.mark.parametrize("rows, mode", [("flush_tables_with_read_lock", "SHARED"),
                                        ("lock_instance_for_backup", "SHARED")])
def test_mysql8_global_read_and_backup_locks_block_every_ddl(rows, mode):
    session = [12 if rows.startswith("flush") else 13, "backup", "localhost", None, "Sleep", 40, "", None]
    state = mysql8_state(mdl=MYSQL8[rows], processlist=MYSQL8["processlist"] + [session])
    blockers = lg.find_blockers(state, "app", ["users"], (7, 9))
    assert [(b["id"], b["kind"]) for b in blockers] == [(session[0], "global lock")]
    assert blockers[0]["locks"][0].startswith("holds %s" % mode)


@pytest.mark.parametrize("source", [lg.MDL_PERFORMANCE_SCHEMA, lg.MDL_PLUGIN])
def test_mariadb_recorded_both_sources_name_the_same_blocker(source):
    caps = lg.choose_sources("mariadb", (10, 11, 19), {"performance_schema": 1, "mdl_instrument": "YES",
                                                       "global_instrumentation": "YES", "process_privilege": True}
                             if source == lg.MDL_PERFORMANCE_SCHEMA else
                             {"metadata_lock_info": "ACTIVE", "process_privilege": True})
    assert caps["mdl"] == source
    rows = MARIADB["metadata_locks" if source == lg.MDL_PERFORMANCE_SCHEMA else "metadata_lock_info"]
    state = lg.state_from_rows(caps, MARIADB["processlist"], MARIADB["innodb_trx"], rows)
    ids = MARIADB["ids"]
    blockers = lg.find_blockers(state, "app", ["outbox"], (ids["ddl"], ids["guard"]))
    assert [(b["id"], b["user"], b["kind"], b["locks"]) for b in blockers] == [
        (ids["blocker"], "app_rw", "transaction", ["holds SHARED_READ on outbox"])]


def test_mariadb_recorded_without_lock_information_old_transactions_count_with_tables_unknown():
    caps = lg.choose_sources("mariadb", (10, 11, 19), {"process_privilege": True})
    state = lg.state_from_rows(caps, MARIADB["processlist"], MARIADB["innodb_trx"], ())
    ids = MARIADB["ids"]
    own = (ids["ddl"], ids["guard"])
    found = lg.find_blockers(state, "app", ["outbox"], own, min_trx_seconds=2)
    assert [(b["id"], b["tables_known"]) for b in found] == [(ids["blocker"], False)]
    assert "tables it holds unknown" in lg.describe(found[0])
    # Younger than the lock wait timeout: left to the timeout and the watchdog.
    assert lg.find_blockers(state, "app", ["outbox"], own, min_trx_seconds=10) == []
    # Another session's ALTER waiting for outbox is seen from the process list.
    assert [b["kind"] for b in lg.find_blockers(state, "app", ["outbox"], (ids["guard"],), 10)] == ["ddl"]


def test_a_running_dump_of_the_database_always_blocks():
    dump = [31, "backup", "localhost", "app", "Query", 12.5, "Sending data",
            "SELECT /*!40001 SQL_NO_CACHE */ `id`, `v` FROM `orders`"]
    caps = lg.choose_sources("mariadb", (10, 11, 19), {"metadata_lock_info": "ACTIVE", "process_privilege": True})
    state = lg.state_from_rows(caps, [dump], [[31, 13, "RUNNING", None]], ())
    found = lg.find_blockers(state, "app", ["outbox"])
    assert [(b["id"], b["kind"]) for b in found] == [(31, "backup")]
    assert "a running backup" in lg.describe(found[0])
    assert lg.find_blockers(state, "other", ["outbox"]) == []


@pytest.mark.parametrize("sql, shown", [
    ("SELECT * FROM outbox WHERE email = 'ann@example.test' AND id IN (1, 22)",
     "SELECT * FROM outbox WHERE email = ? AND id IN (?, ?)"),
    ("UPDATE `t2` SET v = -3.5e2 WHERE k = \"x\"", "UPDATE `t2` SET v = ? WHERE k = ?"),
    ("ALTER USER app IDENTIFIED BY 's3cr''et'", "ALTER USER app IDENTIFIED BY ?"),
    ("SELECT c1, t1.c2 FROM t1 WHERE x = 0xFF", "SELECT c1, t1.c2 FROM t1 WHERE x = ?"),
])
def test_statements_of_other_sessions_lose_their_literals(sql, shown):
    assert lg.redact(sql) == shown


def test_long_statements_are_cut():
    assert len(lg.redact("SELECT " + ", ".join("c%d" % i for i in range(200)) + " FROM t")) == 160


def blocker(user="report", host="10.1.1.5:4410", command="Sleep", kind="transaction"):
    return {"user": user, "host": host, "command": command, "kind": kind}


@pytest.mark.parametrize("b, accounts, allowed", [
    (blocker(), ["report"], True),
    (blocker(), ["report@10.1.1.5"], True),
    (blocker(), ["report@%"], True),
    (blocker(), ["report@10.9.9.9"], False),
    (blocker(), ["app"], False),
    (blocker(command="Query", kind="statement"), ["report"], False),
    (blocker(kind="backup"), ["report"], False),
    (blocker(kind="ddl", command="Query"), ["report"], False),
    (blocker(host="localhost"), ["report@localhost"], True),
    (blocker(), [], False),
])
def test_only_idle_sessions_of_named_accounts_may_be_killed(b, accounts, allowed):
    assert lg.killable(b, accounts) is allowed


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_grows_and_keeps_jitter_within_bounds(attempt):
    top = min(2.0, 0.1 * 2 ** attempt)
    assert lg.backoff(attempt, rand=lambda: 0.0) == pytest.approx(top / 2)
    assert lg.backoff(attempt, rand=lambda: 1.0) == pytest.approx(top)


def test_watchdog_sees_the_ddl_waiting_and_who_queues_behind_it_on_mysql8_whole_seconds():
    first_seen = {}
    waiting, queued = lg.queued_behind(MYSQL8["waiting"], 7, (9,), first_seen, now=100.0)
    assert waiting == [7] and queued == [(8, 0.0, "SELECT COUNT(*) FROM outbox WHERE v = ?")]
    # TIME stays 0 on MySQL for the first second: the watchdog's own clock counts the wait.
    _, queued = lg.queued_behind(MYSQL8["waiting"], 7, (9,), first_seen, now=101.3)
    assert queued[0][1] == pytest.approx(1.3)


def test_watchdog_matches_an_online_tools_ddl_by_its_statement():
    rows = [[40, 2, "Waiting for table metadata lock", "CREATE TRIGGER `pt_osc_app_outbox_ins` AFTER INSERT ..."],
            [41, 1, "Waiting for table metadata lock", "SELECT 1 FROM outbox"]]
    waiting, queued = lg.queued_behind(rows, None, (), {}, 10.0, match=lambda info: "pt_osc_" in info)
    assert waiting == [40] and [q[0] for q in queued] == [41]


class RecordedServer:
    """read_state's answers in turn, from recorded rows; KILLs are noted (no server is involved)."""

    def __init__(self, states):
        self.states = list(states)
        self.killed = []


@pytest.fixture
def recorded(monkeypatch):
    def install(states):
        server = RecordedServer(states)
        monkeypatch.setattr(lg, "read_state", lambda conn, caps, db: server.states.pop(0) if len(server.states) > 1
                            else server.states[0])
        monkeypatch.setattr(lg, "_kill", lambda conn, what, pid: server.killed.append((what, pid)))
        return server
    return install


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_waiting_backs_off_until_the_blocker_goes(recorded):
    blocked, clear = mysql8_state(), mysql8_state(processlist=MYSQL8["processlist"][:4], trx=[],
                                                  mdl=MYSQL8["metadata_locks"][1:])
    recorded([blocked, blocked, blocked, clear])
    clock = Clock()
    seen = lg.wait_until_clear(None, {}, "app", ["outbox"], (7, 9), deadline=30, clock=clock, sleep=clock.sleep)
    assert seen["checks"] == 4 and [b["id"] for b in seen["blockers_seen"]] == [6]
    assert len(clock.sleeps) == 3 and clock.sleeps[0] < clock.sleeps[2] <= 0.4
    assert seen["waited"] == pytest.approx(sum(clock.sleeps), abs=1e-3)


def test_waiting_stops_at_the_deadline_naming_the_blockers(recorded):
    recorded([mysql8_state()])
    clock = Clock()
    with pytest.raises(lg.Blocked) as err:
        lg.wait_until_clear(None, {}, "app", ["outbox"], (7, 9), deadline=5, clock=clock, sleep=clock.sleep)
    assert [b["id"] for b in err.value.blockers] == [6] and err.value.waited == pytest.approx(5)
    assert "session 6 app_rw@" in err.value.blockers[0]["description"] and err.value.checks > 3


def test_refuse_policy_does_not_wait(recorded):
    recorded([mysql8_state()])
    clock = Clock()
    with pytest.raises(lg.Blocked):
        lg.wait_until_clear(None, {}, "app", ["outbox"], (7, 9), deadline=60, refuse=True, clock=clock,
                            sleep=clock.sleep)
    assert clock.sleeps == []


def test_a_named_idle_blocker_is_killed_and_nothing_else(recorded):
    clear = mysql8_state(processlist=MYSQL8["processlist"][:4], trx=[], mdl=MYSQL8["metadata_locks"][1:])
    server = recorded([mysql8_state(), clear])
    clock = Clock()
    seen = lg.wait_until_clear(None, {}, "app", ["outbox"], (7, 9), deadline=60, kill_accounts=["app_rw"],
                               clock=clock, sleep=clock.sleep)
    assert server.killed == [("CONNECTION", 6)] and [k["id"] for k in seen["killed"]] == [6]
    assert clock.sleeps == []
    # The queued application query (session 8, also app_rw) was never a candidate.
    assert all(pid != 8 for _, pid in server.killed)


def test_without_lock_information_a_transaction_open_across_a_failed_attempt_blocks_whatever_its_age():
    # The attempt waited for outbox's lock while session 6's transaction (1 s old, younger than the lock wait
    # timeout) was open: still open - same trx_id and start - it is the suspect; a new transaction of the same
    # session, or one that began after the attempt, is not.
    caps = lg.choose_sources("mariadb", (10, 11, 19), {"process_privilege": True})
    ids = MARIADB["ids"]
    own = (ids["ddl"], ids["guard"])
    trx = [[6, 1, "RUNNING", None, "421", "2026-12-01 14:00:01"]]
    before = lg.state_from_rows(caps, MARIADB["processlist"], trx, ())
    assert lg.find_blockers(before, "app", ["outbox"], own, min_trx_seconds=10) == []
    suspects = lg.open_transactions(before, "app")
    assert suspects == {(6, "421", "2026-12-01 14:00:01")}
    assert lg.open_transactions(before, "other_db") == set()
    later = lg.state_from_rows(caps, MARIADB["processlist"], [[6, 2, "RUNNING", None, "421", "2026-12-01 14:00:01"]],
                               ())
    found = lg.find_blockers(later, "app", ["outbox"], own, min_trx_seconds=10, suspects=suspects)
    assert [(b["id"], b["tables_known"]) for b in found] == [(6, False)]
    assert "open all the time the statement waited for its metadata lock" in lg.describe(found[0])
    renewed = lg.state_from_rows(caps, MARIADB["processlist"], [[6, 0, "RUNNING", None, "421", "2026-12-01 14:00:03"]],
                                 ())
    assert lg.find_blockers(renewed, "app", ["outbox"], own, min_trx_seconds=10, suspects=suspects) == []
