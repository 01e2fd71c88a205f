"""outbox_stats against a real MariaDB: the numbers, index use, read-only access, and the verdicts they give."""

from __future__ import annotations

import re

import pytest
from ansible.module_utils.dbrelease.db import connect
from conftest import ROOT
from outbox_health import outbox_health
from outbox_stats import OUTBOX_QUERIES, TOKEN_QUERIES, gather

DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"


def create_app_tables(box, db):
    """The example app's outbox and refresh_tokens (the real DDL file), with the users table they reference."""
    box.sql("CREATE TABLE IF NOT EXISTS users (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "email VARCHAR(190) NOT NULL) ENGINE=InnoDB", db)
    text = re.sub(r"^--.*$", "", DDL.read_text(), flags=re.M)
    box.sql([s for s in (part.strip() for part in text.split(";")) if s], db)


def add_events(box, db, status, n=1, age_seconds=0, delivered_age_seconds=None):
    """Insert n outbox events created age_seconds ago (delivered delivered_age_seconds ago, when given)."""
    delivered = ("NOW(3) - INTERVAL %d SECOND" % delivered_age_seconds) if delivered_age_seconds is not None \
        else "NULL"
    box.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, created_at, delivered_at) "
            "SELECT 'order', seq, 'OrderPlaced', '{}', '%s', NOW(3) - INTERVAL %d SECOND, %s FROM seq_1_to_%d"
            % (status, age_seconds, delivered, n), db)


def add_tokens(box, db, n, revoked=False, revoked_age_seconds=0):
    box.sql("INSERT IGNORE INTO users (id, email) VALUES (1, 'a@example.test')", db)
    box.sql("INSERT INTO refresh_tokens (user_id, token_hash, expires_at, revoked, revoked_at) "
            "SELECT 1, SHA2(CONCAT(UUID(), seq), 256), NOW() + INTERVAL 30 DAY, %d, %s FROM seq_1_to_%d"
            % (1 if revoked else 0, ("NOW() - INTERVAL %d SECOND" % revoked_age_seconds) if revoked else "NULL", n),
            db)


def read(params, db, **kwargs):
    options = dict(outbox_table="outbox", tokens_table="refresh_tokens", window=15, exact_limit=1000000,
                   statement_timeout=30)
    options.update(kwargs)
    conn = connect(params)
    try:
        return gather(conn, db, options["outbox_table"], options["tokens_table"], options["window"],
                      options["exact_limit"], options["statement_timeout"])
    finally:
        conn.close()


def test_missing_tables_are_reported_absent_not_as_an_error(mariadb, dbname, admin_params):
    stats = read(admin_params, dbname)
    assert stats["outbox"]["present"] is False
    assert stats["refresh_tokens"]["present"] is False
    stats = read(admin_params, "no_such_database_here")
    assert stats["outbox"]["present"] is False


def test_numbers_match_the_rows(mariadb, dbname, admin_params):
    create_app_tables(mariadb, dbname)
    add_events(mariadb, dbname, "pending", 3, age_seconds=90)
    add_events(mariadb, dbname, "pending", 2, age_seconds=5)
    add_events(mariadb, dbname, "delivered", 7, age_seconds=60, delivered_age_seconds=30)
    add_events(mariadb, dbname, "delivered", 4, age_seconds=7200, delivered_age_seconds=3600)  # outside the window
    add_events(mariadb, dbname, "failed", 2, age_seconds=60)
    add_events(mariadb, dbname, "failed", 1, age_seconds=7200)
    add_events(mariadb, dbname, "dead", 1, age_seconds=7200)
    add_tokens(mariadb, dbname, 10)
    add_tokens(mariadb, dbname, 4, revoked=True, revoked_age_seconds=7200)
    add_tokens(mariadb, dbname, 3, revoked=True, revoked_age_seconds=10)

    stats = read(admin_params, dbname)
    outbox, tokens = stats["outbox"], stats["refresh_tokens"]
    assert outbox["present"] is True
    assert outbox["counts"] == {"pending": 5, "delivered": 11, "failed": 3, "dead": 1}
    assert outbox["delivered_estimated"] is False
    assert 89 <= outbox["oldest_pending_age_seconds"] < 120
    assert outbox["delivered_recent"] == 7
    assert outbox["failed_recent"] == 2
    assert outbox["dead_recent"] == 0
    assert outbox["dead_letters"] == 1
    assert tokens == {"present": True, "table": "refresh_tokens", "window_minutes": 15, "revoked": 7,
                      "revoked_recent": 3, "total": 17, "total_estimated": False, "unavailable": {}, "problems": [],
                      "columns": {"revoked": "revoked", "revoked_at": "revoked_at"}}
    assert outbox["shape"] == "status" and outbox["unavailable"] == {} and outbox["unmapped"] == {}
    assert outbox["by_status"] == {"pending": 5, "delivered": 11, "failed": 3, "dead": 1}


def test_no_pending_event_means_no_age(mariadb, dbname, admin_params):
    create_app_tables(mariadb, dbname)
    add_events(mariadb, dbname, "delivered", 2, delivered_age_seconds=1)
    assert read(admin_params, dbname)["outbox"]["oldest_pending_age_seconds"] is None


def test_large_tables_estimate_the_totals_but_count_the_watched_statuses_exactly(mariadb, dbname, admin_params):
    create_app_tables(mariadb, dbname)
    add_events(mariadb, dbname, "delivered", 50, delivered_age_seconds=1)
    add_events(mariadb, dbname, "pending", 4)
    add_events(mariadb, dbname, "dead", 2)
    add_tokens(mariadb, dbname, 6, revoked=True)
    mariadb.sql("ANALYZE TABLE outbox, refresh_tokens", dbname)
    stats = read(admin_params, dbname, exact_limit=0)
    assert stats["outbox"]["delivered_estimated"] is True
    assert stats["outbox"]["counts"]["pending"] == 4
    assert stats["outbox"]["counts"]["dead"] == 2
    assert stats["refresh_tokens"]["total_estimated"] is True
    assert stats["refresh_tokens"]["revoked"] == 6


def test_a_select_only_account_is_enough(mariadb, dbname, admin_params):
    """The module only reads: an account with SELECT and nothing else gathers everything."""
    create_app_tables(mariadb, dbname)
    add_events(mariadb, dbname, "pending", 2)
    mariadb.sql(["CREATE USER IF NOT EXISTS 'verify_ro'@'localhost' IDENTIFIED BY 'ro-Pw-1'",
                 "GRANT SELECT ON `%s`.* TO 'verify_ro'@'localhost'" % dbname])
    try:
        params = dict(admin_params, login_user="verify_ro", login_password="ro-Pw-1")
        assert read(params, dbname)["outbox"]["counts"]["pending"] == 2
    finally:
        mariadb.sql("DROP USER IF EXISTS 'verify_ro'@'localhost'")


def explain_keys(box, db, sql, args):
    conn = box.root(db)
    try:
        with conn.cursor() as cur:
            cur.execute("EXPLAIN " + sql, args)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


@pytest.mark.parametrize("table, name, args, index", [
    ("outbox", "count_status", ["pending"], "idx_outbox_status_created"),
    ("outbox", "oldest_status", ["pending"], None),  # "Select tables optimized away": read from the index edge
    ("outbox", "delivered_recent", [15], "idx_outbox_delivered"),
    ("outbox", "status_recent", ["failed", 15], "idx_outbox_status_created"),
    ("refresh_tokens", "revoked", None, "idx_refresh_tokens_revoked"),
    ("refresh_tokens", "revoked_recent", [15], "idx_refresh_tokens_revoked"),
])
def test_each_query_is_served_by_its_index(mariadb, dbname, table, name, args, index):
    create_app_tables(mariadb, dbname)
    # Enough old delivered rows that a table scan would lose; a few rows of each kind the queries look for.
    add_events(mariadb, dbname, "delivered", 4000, age_seconds=86400, delivered_age_seconds=86000)
    for status in ("pending", "failed", "dead"):
        add_events(mariadb, dbname, status, 5)
    add_tokens(mariadb, dbname, 3000)
    add_tokens(mariadb, dbname, 5, revoked=True)
    mariadb.sql("ANALYZE TABLE outbox, refresh_tokens", dbname)
    sql = (OUTBOX_QUERIES if table == "outbox" else TOKEN_QUERIES)[name].format(
        t="`%s`" % table, status="`status`", created="`created_at`", delivered="`delivered_at`", revoked="`revoked`",
        revoked_at="`revoked_at`")
    plan = explain_keys(mariadb, dbname, sql, args)
    if index is None:
        assert plan[0]["Extra"] == "Select tables optimized away", plan
    else:
        assert plan[0]["key"] == index, plan
        assert plan[0]["type"] in ("ref", "range"), plan


# -- the verdicts these numbers give, against a baseline read from the same server ---------------------------------
@pytest.mark.parametrize("change, failing", [
    (lambda box, db: add_events(box, db, "pending", 1200), "backlog_growth"),
    (lambda box, db: add_events(box, db, "pending", 1, age_seconds=3600), "stalled_relay"),
    (lambda box, db: add_events(box, db, "failed", 60), "failures_increase"),
    (lambda box, db: add_events(box, db, "dead", 11), "dead_letters_increase"),
    (lambda box, db: box.sql("UPDATE refresh_tokens SET revoked = 1, revoked_at = NOW() WHERE revoked = 0", db),
     "revoked_tokens_increase"),
], ids=["growing backlog", "stalled relay", "jump in failures", "jump in dead letters", "mass token revocation"])
def test_each_kind_of_trouble_after_the_baseline_fails_verification(mariadb, dbname, admin_params, change, failing):
    create_app_tables(mariadb, dbname)
    add_events(mariadb, dbname, "delivered", 20, delivered_age_seconds=5)
    add_events(mariadb, dbname, "pending", 2)
    add_tokens(mariadb, dbname, 150)
    baseline = read(admin_params, dbname)
    assert outbox_health(read(admin_params, dbname), {}, baseline)["verdict"] == "ok"
    change(mariadb, dbname)
    health = outbox_health(read(admin_params, dbname), {}, baseline)
    assert health["verdict"] == "fail", health
    assert [c["name"] for c in health["checks"] if c["level"] == "fail"] == [failing]
