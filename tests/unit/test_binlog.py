"""Pure logic of module_utils/dbrelease/binlog.py over recorded server outputs (MariaDB 10.11 from the sandbox;
MySQL 8.0 in the format its SHOW BINLOG EVENTS documents)."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import binlog

# SHOW BINLOG EVENTS rows recorded on MariaDB 10.11 (ROW format): writes to `a`, a write to `a` made from another
# default database, a DDL of another database, and a statement-format write.
MARIADB_EVENTS = [
    ("binlog.000002", 379, "Gtid", 1, 421, "BEGIN GTID 0-1-30"),
    ("binlog.000002", 421, "Annotate_rows", 1, 489, "INSERT INTO a.p (id,v) VALUES (2,'y'),(3,'z')"),
    ("binlog.000002", 489, "Table_map", 1, 534, "table_id: 32 (a.p)"),
    ("binlog.000002", 534, "Write_rows_v1", 1, 589, "table_id: 32 flags: STMT_END_F"),
    ("binlog.000002", 589, "Xid", 1, 620, "COMMIT /* xid=239 */"),
    ("binlog.000002", 620, "Gtid", 1, 662, "BEGIN GTID 0-1-31"),
    ("binlog.000002", 716, "Table_map", 1, 761, "table_id: 32 (a.p)"),
    ("binlog.000002", 761, "Update_rows_v1", 1, 817, "table_id: 32 flags: STMT_END_F"),
    ("binlog.000002", 817, "Xid", 1, 848, "COMMIT /* xid=242 */"),
    ("binlog.000002", 848, "Gtid", 1, 890, "GTID 0-1-32"),
    ("binlog.000002", 890, "Query", 1, 973, "CREATE DATABASE zz"),
    ("binlog.000002", 973, "Gtid", 1, 1015, "BEGIN GTID 0-1-33"),
    ("binlog.000002", 1015, "Table_map", 1, 1060, "table_id: 35 (zz.t)"),
    ("binlog.000002", 1060, "Write_rows_v1", 1, 1100, "table_id: 35 flags: STMT_END_F"),
    ("binlog.000002", 1100, "Xid", 1, 1131, "COMMIT /* xid=250 */"),
    ("binlog.000002", 1131, "Gtid", 1, 1173, "BEGIN GTID 0-1-34"),
    ("binlog.000002", 1173, "Table_map", 1, 1218, "table_id: 32 (a.p)"),
    ("binlog.000002", 1218, "Delete_rows_v1", 1, 1262, "table_id: 32 flags: STMT_END_F"),
    ("binlog.000002", 1262, "Table_map", 1, 1300, "table_id: 36 (a.audit)"),
    ("binlog.000002", 1300, "Write_rows_v1", 1, 1340, "table_id: 36 flags: STMT_END_F"),
    ("binlog.000002", 1340, "Xid", 1, 1371, "COMMIT /* xid=251 */"),
    ("binlog.000002", 1371, "Gtid", 1, 1413, "BEGIN GTID 0-1-35"),
    ("binlog.000002", 1413, "Query", 1, 1500, "use `zz`; INSERT INTO a.p VALUES (9, 'qualified')"),
    ("binlog.000002", 1500, "Query", 1, 1531, "COMMIT"),
    ("binlog.000002", 1531, "Gtid", 1, 1573, "GTID 0-1-36"),
    ("binlog.000002", 1573, "Query", 1, 1660, "use `a`; ALTER TABLE p ADD COLUMN n INT"),
]

MYSQL8_EVENTS = [
    ("binlog.000007", 157, "Anonymous_Gtid", 1, 236, "SET @@SESSION.GTID_NEXT= 'ANONYMOUS'"),
    ("binlog.000007", 236, "Query", 1, 311, "BEGIN"),
    ("binlog.000007", 311, "Table_map", 1, 367, "table_id: 91 (shop.orders)"),
    ("binlog.000007", 367, "Write_rows", 1, 412, "table_id: 91 flags: STMT_END_F"),
    ("binlog.000007", 412, "Xid", 1, 443, "COMMIT /* xid=17 */"),
    ("binlog.000007", 443, "Gtid", 1, 522, "SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:23'"),
    ("binlog.000007", 522, "Query", 1, 597, "BEGIN"),
    ("binlog.000007", 597, "Table_map", 1, 655, "table_id: 92 (shop_archive.orders)"),
    ("binlog.000007", 655, "Update_rows", 1, 700, "table_id: 92 flags: STMT_END_F"),
    ("binlog.000007", 700, "Xid", 1, 731, "COMMIT /* xid=18 */"),
]


def tally(events, database):
    counter = binlog.EventTally(database)
    for row in events:
        counter.feed(row)
    return counter.finish()


def test_the_tally_counts_what_touched_the_database_by_transaction_and_kind():
    found = tally(MARIADB_EVENTS, "a")
    assert found["transactions"] == 5
    assert found["row_events"] == 4 and found["row_events_by_table"] == {"audit": 1, "p": 3}
    assert found["statement_events"] == 2 and found["statement_positions"] == ["binlog.000002:1413",
                                                                              "binlog.000002:1573"]
    assert tally(MARIADB_EVENTS, "zz")["transactions"] == 2  # its CREATE DATABASE is not `zz`.x; its row write is


def test_the_tally_reads_mysql_8_events_and_never_confuses_a_database_with_a_longer_name():
    assert tally(MYSQL8_EVENTS, "shop") == {"transactions": 1, "row_events": 1, "statement_events": 0,
                                            "statement_positions": [], "events_read": 10,
                                            "row_events_by_table": {"orders": 1}}
    assert tally(MYSQL8_EVENTS, "shop_archive")["row_events_by_table"] == {"orders": 1}


@pytest.mark.parametrize("info, database, names", [
    ("use `shop`; INSERT INTO t VALUES (1)", "shop", True),
    ("use `other`; INSERT INTO shop.t VALUES (1)", "shop", True),
    ("use `other`; INSERT INTO `shop`.`t` VALUES (1)", "shop", True),
    ("use `other`; INSERT INTO myshop.t VALUES (1)", "shop", False),
    ("use `other`; INSERT INTO shop_x.t VALUES (1)", "shop", False),
    ("use `other`; UPDATE t SET v = 'shop.t'", "shop", True),  # inside a string: counted, which is the safe side
    ("CREATE DATABASE `shop__dbrelease_plan_1a2b`", "shop", False),
    ("use `shop__dbrelease_plan_1a2b`; CREATE TABLE t (id INT)", "shop", False),
])
def test_a_statement_names_the_database_by_default_or_by_qualified_names(info, database, names):
    assert binlog.names_database(info, database) is names


@pytest.mark.parametrize("variables, seconds", [
    ({"binlog_expire_logs_seconds": 0, "expire_logs_days": 0}, 0),
    ({"binlog_expire_logs_seconds": "2592000", "expire_logs_days": None}, 2592000),
    ({"binlog_expire_logs_seconds": 0, "expire_logs_days": "10.000000"}, 864000),
    ({"binlog_expire_logs_seconds": None, "expire_logs_days": "0.5"}, 43200),
    ({"binlog_expire_logs_seconds": 3600, "expire_logs_days": "3.000000"}, 3600),
])
def test_the_effective_expiry_follows_both_servers_settings(variables, seconds):
    assert binlog.expire_seconds(variables) == seconds


@pytest.mark.parametrize("status, window, ok, pitr, words", [
    ({"enabled": False}, 72, True, "not possible", "point-in-time recovery is not possible"),
    ({"enabled": True, "expire_seconds": 0}, 72, True, "possible", "never expire"),
    ({"enabled": True, "expire_seconds": 30 * 86400}, 72, True, "possible", "kept 30 days, at least"),
    ({"enabled": True, "expire_seconds": 86400}, 72, False, "possible", "expire after 24 h, before the end of the "
                                                                         "rollback window of 3 days"),
    ({"enabled": True, "expire_seconds": 0, "size_limit": 1 << 30}, 72, True, "possible", "max_binlog_total_size"),
])
def test_retention_is_judged_against_the_rollback_window(status, window, ok, pitr, words):
    verdict = binlog.retention_verdict(status, window)
    assert verdict["ok"] is ok and verdict["pitr"] == pitr and words in verdict["msg"]


def test_files_between_follow_the_server_order_and_say_when_one_was_purged():
    logs = [("binlog.000003", 100), ("binlog.000004", 200), ("binlog.000005", 300)]
    assert binlog.files_between(logs, {"file": "binlog.000003", "pos": 4}) == [n for n, _ in logs]
    assert binlog.files_between(logs, {"file": "binlog.000004", "pos": 9},
                                {"file": "binlog.000004", "pos": 90}) == ["binlog.000004"]
    with pytest.raises(binlog.BinlogError,
                       match=r"binlog.000001 .* was purged \(the oldest one left is binlog.000003\)"):
        binlog.files_between(logs, {"file": "binlog.000001", "pos": 4})


def test_positions_from_a_manifest_or_the_record_read_the_same():
    assert binlog.normalise_position({"binlog_file": "b.000002", "binlog_pos": "379", "gtid": "0-1-29"}) == {
        "file": "b.000002", "pos": 379, "gtid": "0-1-29"}
    assert binlog.normalise_position({"file": "b.000002", "pos": 5}) == {"file": "b.000002", "pos": 5}
    assert binlog.normalise_position({}) is None and binlog.normalise_position({"error": "denied"}) is None
    assert binlog.position_key({"file": "b.000010", "pos": 4}) > binlog.position_key({"file": "b.000009",
                                                                                     "pos": 9999})


def test_the_replay_command_filters_and_rewrites_per_flavour():
    start, stop = {"file": "binlog.000002", "pos": 379}, {"file": "binlog.000003", "pos": 1537}
    paths = ["/w/binlog.000002", "/w/binlog.000003"]
    maria = binlog.replay_command("/usr/bin/mariadb-binlog", "mariadb", paths, "shop", "shop__s", start, stop)
    assert maria == ["/usr/bin/mariadb-binlog", "--no-defaults", "--rewrite-db=shop->shop__s", "--database=shop",
                     "--skip-gtid-strict-mode", "--start-position=379", "--stop-position=1537"] + paths
    mysql = binlog.replay_command("/usr/bin/mysqlbinlog", "mysql", paths, "shop", "shop__s", start, stop)
    assert "--database=shop__s" in mysql and "--skip-gtids" in mysql
    with pytest.raises(binlog.BinlogError, match="not from binlog.000001"):
        binlog.replay_command("x", "mariadb", paths, "shop", "s", {"file": "binlog.000001", "pos": 4}, stop)
    fetch = binlog.fetch_command("/usr/bin/mariadb-binlog", "/tmp/x/client.cnf", "/b/pitr", ["binlog.000002"])
    assert fetch[:2] == ["/usr/bin/mariadb-binlog", "--defaults-extra-file=/tmp/x/client.cnf"]
    assert "--raw" in fetch and "--result-file=/b/pitr/" in fetch


def test_the_gtid_filter_drops_only_the_lines_that_give_a_transaction_its_old_gtid():
    text = (b"# at 379\n/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;\n"
            b"/*M!100001 SET @@session.server_id=1*//*!*/;\n/*M!100001 SET @@session.gtid_seq_no=30*//*!*/;\n"
            b"START TRANSACTION\n/*!*/;\nSET TIMESTAMP=1764586459/*!*/;\nINSERT INTO t VALUES ('gtid_seq_no=1')\n")
    filt = binlog.GtidLineFilter()
    out = b"".join(filt.feed(text[i:i + 7]) for i in range(0, len(text), 7)) + filt.flush()
    assert filt.dropped == 3
    assert out == (b"# at 379\nSTART TRANSACTION\n/*!*/;\nSET TIMESTAMP=1764586459/*!*/;\n"
                   b"INSERT INTO t VALUES ('gtid_seq_no=1')\n")


@pytest.mark.parametrize("tally_, text", [
    ({"transactions": 3, "row_events": 7, "statement_events": 0, "bytes": 4096, "complete": True},
     "3 transaction(s) (7 row event(s), 0 statement(s)) on the database, 4.0 KiB of binary log in all"),
    ({"transactions": 1, "row_events": 1, "statement_events": 0, "bytes": 10, "complete": False},
     "1 transaction(s) (1 row event(s), 0 statement(s)) on the database, 10 B of binary log in all (at least: the "
     "count stopped at its time budget)"),
])
def test_the_summary_says_how_much_was_written_without_any_row_data(tally_, text):
    assert binlog.writes_summary(tally_) == text


@pytest.mark.parametrize("text, redacted", [
    ("ERROR 1062 (23000) at line 40: Duplicate entry 'ana@example.test' for key 'email'",
     "ERROR 1062 (23000) at line 40: Duplicate entry '<value>' for key 'email'"),
    ("Incorrect integer value: 'abc' for column `shop`.`t`.`n` at row 1",
     "Incorrect integer value: '<value>' for column `shop`.`t`.`n` at row 1"),
    ("Table 'shop.orders' doesn't exist", "Table 'shop.orders' doesn't exist"),
])
def test_server_errors_lose_the_row_values_they_quote_and_keep_the_names(text, redacted):
    assert binlog.redact_values(text) == redacted


def test_account_statements_logged_after_a_default_database_are_not_writes_nor_ddl():
    # The plan's temporary account is dropped from a session whose default database is the release's (recorded).
    events = [("binlog.000001", 5854, "Gtid", 1, 5896, "GTID 0-1-23"),
              ("binlog.000001", 5896, "Query", 1, 6024, "use `shop`; DROP USER IF EXISTS 'dbr_plan'@'localhost'"),
              ("binlog.000001", 6024, "Gtid", 1, 6066, "GTID 0-1-24"),
              ("binlog.000001", 6066, "Query", 1, 6210, "use `shop`; CREATE TABLE refunds (id INT PRIMARY KEY)")]
    assert tally(events[:2], "shop")["statement_events"] == 0 and tally(events[:2], "shop")["transactions"] == 0
    assert binlog.first_ddl(events, "shop") == {"file": "binlog.000001", "pos": 6024}


def test_grants_naming_the_database_are_not_writes_to_it():
    events = [("binlog.000002", 4, "Gtid", 1, 40, "GTID 0-1-9"),
              ("binlog.000002", 40, "Query", 1, 90, "GRANT SELECT ON `a`.* TO `app`@`%`"),
              ("binlog.000002", 90, "Gtid", 1, 130, "GTID 0-1-10"),
              ("binlog.000002", 130, "Query", 1, 200, "REVOKE INSERT ON a.t FROM `app`@`%`")]
    assert tally(events, "a")["transactions"] == 0


MYSQL8_DDL = MYSQL8_EVENTS + [
    ("binlog.000007", 731, "Gtid", 1, 810, "SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:24'"),
    ("binlog.000007", 810, "Query", 1, 930, "use `shop_archive`; ALTER TABLE orders ADD COLUMN n INT"),
    ("binlog.000007", 930, "Gtid", 1, 1009, "SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:25'"),
    ("binlog.000007", 1009, "Query", 1, 1090, "GRANT SELECT ON shop.* TO 'r'@'%'"),
    ("binlog.000007", 1090, "Gtid", 1, 1169, "SET @@SESSION.GTID_NEXT= '3e11fa47-71ca-11e1-9e33-c80aa9429562:26'"),
    ("binlog.000007", 1169, "Query", 1, 1290, "use `shop`; CREATE TABLE refunds (id INT PRIMARY KEY)"),
]


@pytest.mark.parametrize("events, database, found", [
    # Transactions (BEGIN GTID, statement-format writes inside BEGIN ... COMMIT) are writes, not DDL; the ALTER is.
    (MARIADB_EVENTS, "a", {"file": "binlog.000002", "pos": 1531}),
    (MARIADB_EVENTS, "zz", None),  # CREATE DATABASE zz does not act on a schema zz holds
    (MYSQL8_DDL, "shop", {"file": "binlog.000007", "pos": 1090}),  # not the other database's ALTER, nor the GRANT
    (MYSQL8_DDL, "shop_archive", {"file": "binlog.000007", "pos": 731}),
    (MYSQL8_EVENTS, "shop", None),
])
def test_the_stop_is_the_start_of_the_first_ddl_group_on_the_database(events, database, found):
    assert binlog.first_ddl(events, database) == found


def test_a_position_that_cannot_be_refined_is_kept_and_says_why():
    class Gone:
        def cursor(self):
            raise OSError("connection closed")

    recorded = {"file": "binlog.000002", "pos": 379, "gtid": "0-1-29"}
    out = binlog.position_before_first_ddl(Gone(), "a", recorded)
    assert {k: out[k] for k in ("file", "pos", "gtid")} == recorded
    assert "could not be read (connection closed): position as recorded" in out["note"]
    assert binlog.position_before_first_ddl(Gone(), "a", {}) == {}
    assert binlog.position_before_first_ddl(Gone(), "a", {"error": "(1227) denied"}) == {"error": "(1227) denied"}
