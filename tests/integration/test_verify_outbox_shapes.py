"""outbox_stats and outbox_health on outboxes unlike the example app's, against a real MariaDB.

Each shape is one a team really runs: a relay outbox with its own names and statuses and no delivery timestamp,
a Debezium-style outbox with no status at all (rows deleted once relayed), an outbox with a separate dead-letter
table, an outbox with integer status codes, and a database with no outbox at all. The old module failed on all of
them with "Unknown column" before the schema phase; now each gives the numbers it can, says which it cannot and
why, and the verdict rests on the rest.
"""

from __future__ import annotations

import threading

import pytest
from ansible.module_utils.dbrelease.db import connect
from helpers import run_module
from outbox_health import outbox_health
from outbox_stats import gather


def read(params, db, **kwargs):
    options = dict(outbox_table="outbox", tokens_table="refresh_tokens", window=15, exact_limit=1000000,
                   statement_timeout=30)
    options.update(kwargs)
    positional = [options.pop(k) for k in ("outbox_table", "tokens_table", "window", "exact_limit",
                                           "statement_timeout")]
    conn = connect(params)
    try:
        return gather(conn, db, *positional, runbook_queries=True, **options)
    finally:
        conn.close()


RELAY = """CREATE TABLE event_outbox (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  topic VARCHAR(100) NOT NULL,
  body JSON NOT NULL,
  state VARCHAR(16) NOT NULL DEFAULT 'new',
  inserted_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_state_inserted (state, inserted_at)
) ENGINE=InnoDB"""


def relay_rows(box, db, state, n, age_seconds=0):
    box.sql("INSERT INTO event_outbox (topic, body, state, inserted_at) SELECT 'orders', '{}', '%s', "
            "NOW(3) - INTERVAL %d SECOND FROM seq_1_to_%d" % (state, age_seconds, n), db)


def test_a_relay_outbox_with_its_own_names_and_statuses_is_read_without_a_delivery_timestamp(mariadb, dbname,
                                                                                              admin_params):
    mariadb.sql(RELAY, dbname)
    relay_rows(mariadb, dbname, "new", 3, age_seconds=50)
    relay_rows(mariadb, dbname, "sent", 40, age_seconds=3000)
    relay_rows(mariadb, dbname, "error", 2, age_seconds=30)
    relay_rows(mariadb, dbname, "dlq", 1, age_seconds=4000)
    stats = read(admin_params, dbname, outbox_table="event_outbox")
    outbox = stats["outbox"]
    assert outbox["shape"] == "status"
    assert outbox["columns"] == {"status": "state", "created_at": "inserted_at", "delivered_at": None}
    assert outbox["counts"] == {"pending": 3, "delivered": 40, "failed": 2, "dead": 1}
    assert 49 <= outbox["oldest_pending_age_seconds"] < 80
    assert outbox["failed_recent"] == 2 and outbox["dead_recent"] == 0
    assert "delivered_recent" not in outbox
    assert "no delivered_at column" in outbox["unavailable"]["delivered_recent"]
    # The runbook's query, with this table's names, and its rows as the server returned them.
    outbox_query = stats["runbook"][0]
    assert outbox_query["query"] == "SELECT state, COUNT(*) FROM event_outbox GROUP BY state"
    assert outbox_query["as_written"] is False
    assert sorted(outbox_query["rows"]) == [["dlq", 1], ["error", 2], ["new", 3], ["sent", 40]]

    # Large-table mode (every table counts as large): only index-served numbers, still the same counts.
    big = read(admin_params, dbname, outbox_table="event_outbox", exact_limit=0)["outbox"]
    assert {k: big["counts"][k] for k in ("pending", "failed", "dead")} == {"pending": 3, "failed": 2, "dead": 1}
    assert big["delivered_estimated"] is True and big["status_values_source"] == "distinct"

    baseline = stats
    relay_rows(mariadb, dbname, "error", 60, age_seconds=5)
    health = outbox_health(read(admin_params, dbname, outbox_table="event_outbox"), {}, baseline)
    assert health["verdict"] == "fail"
    assert [c["name"] for c in health["checks"] if c["level"] == "fail"] == ["failures_increase"]
    assert any("idle_relay" in s and "no delivered_at column" in s for s in health["not_available"])


DEBEZIUM = """CREATE TABLE outbox (
  id CHAR(36) NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL,
  aggregateid VARCHAR(255) NOT NULL,
  type VARCHAR(255) NOT NULL,
  payload LONGTEXT,
  occurred_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB"""


def test_a_debezium_outbox_without_status_gives_its_backlog_and_says_what_it_cannot(mariadb, dbname, admin_params):
    mariadb.sql(DEBEZIUM, dbname)
    mariadb.sql("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, occurred_at) "
                "SELECT UUID(), 'order', seq, 'OrderPlaced', '{}', NOW(3) - INTERVAL 20 SECOND FROM seq_1_to_4",
                dbname)
    stats = read(admin_params, dbname)
    outbox = stats["outbox"]
    assert outbox["shape"] == "delete_on_relay"
    assert outbox["counts"] == {"pending": 4}
    assert 19 <= outbox["oldest_pending_age_seconds"] < 60
    for metric in ("delivered_recent", "failed", "failed_recent", "dead", "dead_recent"):
        assert "rows are deleted once relayed" in outbox["unavailable"][metric], metric
    assert stats["runbook"][0]["not_run"].startswith("table outbox has no status column")
    assert stats["runbook"][1]["not_run"].endswith("has no refresh-token table refresh_tokens")

    # A large Debezium outbox: counted up to the bound; the age needs an index on occurred_at, and says so.
    big = read(admin_params, dbname, exact_limit=2)["outbox"]
    assert big["counts"]["pending"] >= 3 and big["pending_estimated"] is True
    assert "no index starts with (occurred_at)" in big["unavailable"]["oldest_pending_age_seconds"]

    health = outbox_health(stats, {}, stats)
    assert health["verdict"] == "ok", health
    assert len(health["not_available"]) == 3
    assert health["not_applicable"][0].startswith("Not applicable: %s has no refresh-token table" % dbname)


def test_an_outbox_with_a_separate_dead_letter_table_counts_its_rows_as_dead_letters(mariadb, dbname, admin_params):
    mariadb.sql(["CREATE TABLE outbox (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload TEXT, "
                 "status ENUM('pending','published','failed') NOT NULL DEFAULT 'pending', "
                 "created_at DATETIME(3) NOT NULL DEFAULT NOW(3), published_at DATETIME(3) NULL, "
                 "KEY (status, created_at), KEY (published_at)) ENGINE=InnoDB",
                 "CREATE TABLE outbox_dead_letters (id BIGINT AUTO_INCREMENT PRIMARY KEY, outbox_id BIGINT, "
                 "payload TEXT, last_error TEXT, failed_at DATETIME(3) NOT NULL DEFAULT NOW(3), KEY (failed_at)) "
                 "ENGINE=InnoDB",
                 "INSERT INTO outbox (payload, status, published_at) SELECT '{}', 'published', NOW(3) "
                 "FROM seq_1_to_20",
                 "INSERT INTO outbox_dead_letters (outbox_id, payload, failed_at) "
                 "SELECT seq, '{}', NOW(3) - INTERVAL 2 DAY FROM seq_1_to_2"], dbname)
    baseline = read(admin_params, dbname)
    outbox = baseline["outbox"]
    assert outbox["dead_letter_table"] == {"table": "outbox_dead_letters", "time_column": "failed_at",
                                           "estimated_rows": outbox["dead_letter_table"]["estimated_rows"],
                                           "discovered": True, "rows": 2, "rows_estimated": False, "recent": 0}
    assert outbox["counts"]["dead"] == 2 and outbox["dead_letters"] == 2 and outbox["dead_recent"] == 0
    assert outbox["delivered_recent"] == 20
    mariadb.sql("INSERT INTO outbox_dead_letters (outbox_id, payload) SELECT seq, '{}' FROM seq_1_to_11", dbname)
    now = read(admin_params, dbname)
    assert now["outbox"]["counts"]["dead"] == 13 and now["outbox"]["dead_recent"] == 11
    health = outbox_health(now, {}, baseline)
    assert health["verdict"] == "fail"
    assert "dead letters (status 'dead' and table outbox_dead_letters) rose from 2 to 13" not in health["reasons"][0]
    assert "table outbox_dead_letters) rose from 2 to 13" in health["reasons"][0]
    # Switched off: the table is not read at all.
    assert read(admin_params, dbname, dead_letter_table="none")["outbox"]["dead_letter_table"] is None


def test_integer_status_codes_map_through_the_users_status_map_and_unknown_codes_warn(mariadb, dbname,
                                                                                      admin_params):
    mariadb.sql(["CREATE TABLE outbox (id BIGINT AUTO_INCREMENT PRIMARY KEY, status TINYINT NOT NULL DEFAULT 0, "
                 "created_at DATETIME NOT NULL DEFAULT NOW(), sent_at DATETIME NULL, KEY (status, created_at)) "
                 "ENGINE=InnoDB",
                 "INSERT INTO outbox (status, sent_at) SELECT 1, NOW() FROM seq_1_to_5",
                 "INSERT INTO outbox (status) VALUES (0), (0), (2), (7)"], dbname)
    default = read(admin_params, dbname)["outbox"]
    assert default["unmapped"] == {"0": 2, "1": 5, "2": 1, "7": 1}
    mapping = {"pending": [0], "delivered": [1], "failed": [2], "dead": [9]}
    stats = read(admin_params, dbname, status_map_overrides=mapping)
    assert stats["outbox"]["counts"] == {"pending": 2, "delivered": 5, "failed": 1, "dead": 0}
    assert stats["outbox"]["unmapped"] == {"7": 1}
    health = outbox_health(stats, {}, stats)
    assert health["verdict"] == "warn"
    assert health["reasons"] == ["Outbox status values that no notion covers: '7' (1 row); their events are in none "
                                 "of the checks: map them in verify_outbox_status_map (pending, delivered, failed, "
                                 "dead or ignored)."]
    mapping["ignored"] = [7]
    assert outbox_health(read(admin_params, dbname, status_map_overrides=mapping), {}, stats)["verdict"] == "ok"


def test_no_outbox_at_all_is_not_applicable_and_the_release_passes_on_the_rest(mariadb, dbname, admin_params):
    mariadb.sql("CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(50))", dbname)
    result = run_module("outbox_stats", dict(admin_params, database=dbname, runbook_queries=True))
    assert result.get("failed") is not True, result
    assert result["outbox"]["present"] is False and result["refresh_tokens"]["present"] is False
    assert [q["not_run"] for q in result["runbook"]] == [
        "database %s has no outbox table outbox" % dbname,
        "database %s has no refresh-token table refresh_tokens" % dbname]
    health = outbox_health(result, {}, result)
    assert health["verdict"] == "ok"
    assert len(health["not_applicable"]) == 2
    # A release whose DDL creates the outbox must find it afterwards.
    assert outbox_health(result, {}, result, ["outbox"])["verdict"] == "fail"


def test_settings_that_name_missing_columns_are_reported_not_fatal_and_a_bad_map_is_refused(mariadb, dbname,
                                                                                            admin_params):
    mariadb.sql(RELAY, dbname)
    result = run_module("outbox_stats", dict(admin_params, database=dbname, outbox_table="event_outbox",
                                             columns={"delivered_at": "shipped_at"}))
    assert result.get("failed") is not True, result
    assert result["outbox"]["problems"] == [
        "verify_outbox_columns.delivered_at names column shipped_at, which the table does not have"]
    result = run_module("outbox_stats", dict(admin_params, database=dbname, status_map={"pendng": ["new"]}))
    assert result["failed"] is True
    assert "verify_outbox_status_map has unknown key(s) pendng" in result["msg"]


def test_a_query_the_server_stops_makes_its_number_unavailable_not_the_release_fail(mariadb, dbname, admin_params):
    """A table write-locked by someone else: every read of it waits, and the statement time limit stops it."""
    mariadb.sql(["CREATE TABLE outbox (id INT AUTO_INCREMENT PRIMARY KEY, status VARCHAR(10), created_at DATETIME, "
                 "KEY (status, created_at))", "INSERT INTO outbox (status, created_at) VALUES ('pending', NOW())"],
                dbname)
    locker = mariadb.root(dbname)
    held, done = threading.Event(), threading.Event()

    def hold():
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES outbox WRITE")
            held.set()
            done.wait(60)
            cur.execute("UNLOCK TABLES")

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        stats = read(admin_params, dbname, statement_timeout=1)
    finally:
        done.set()
        thread.join()
        locker.close()
    outbox = stats["outbox"]
    assert outbox["present"] is True
    stopped = "the server stopped the query after verify_statement_timeout=1 s"
    assert outbox["unavailable"]["pending"] == stopped, outbox
    assert stats["runbook"][0]["error"] == stopped
    assert outbox_health(stats, {}, None)["verdict"] == "warn"  # no baseline; nothing else to judge


@pytest.mark.parametrize("ddl, shape", [
    ("CREATE TABLE outbox (id INT PRIMARY KEY, created_at DATETIME, processed_at DATETIME NULL, "
     "KEY (processed_at))", "delivered_column"),
    ("CREATE TABLE `out box` (id INT PRIMARY KEY, status VARCHAR(9), created_at DATETIME)", "status"),
], ids=["processed_at marks delivery", "a table name with a space"])
def test_other_shapes(mariadb, dbname, admin_params, ddl, shape):
    mariadb.sql(ddl, dbname)
    table = "out box" if "`out box`" in ddl else "outbox"
    stats = read(admin_params, dbname, outbox_table=table)
    assert stats["outbox"]["shape"] == shape
    assert stats["outbox"]["counts"]["pending"] == 0
    if table == "out box":
        assert stats["runbook"][0]["query"] == "SELECT status, COUNT(*) FROM `out box` GROUP BY status"
