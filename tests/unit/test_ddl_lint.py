"""DDL lint: statement targets, idempotence per server flavor, narrowing, destructive plans, online ALTER rules."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import ddl_lint as lint


def st(sql, index=1, line=1, file="r.sql"):
    return {"file": file, "index": index, "line": line, "sql": sql}


@pytest.mark.parametrize("sql, verb, kind, name, table", [
    ("CREATE TABLE IF NOT EXISTS outbox (id INT)", "create", "table", "outbox", "outbox"),
    ("CREATE TABLE `app`.`t` (id INT)", "create", "table", "t", "t"),
    ("create table app.t (id int)", "create", "table", "t", "t"),
    ("CREATE TABLE app.`t` (id INT)", "create", "table", "t", "t"),
    ("CREATE TABLE `app`.t (id INT)", "create", "table", "t", "t"),
    ("CREATE UNIQUE INDEX uq ON `users` (email)", "create", "index", "uq", "users"),
    ("CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`a`@`%` SQL SECURITY INVOKER VIEW v AS SELECT 1",
     "create", "view", "v", None),
    ("CREATE DEFINER=CURRENT_USER PROCEDURE p() BEGIN END", "create", "procedure", "p", None),
    ("CREATE TRIGGER IF NOT EXISTS tr BEFORE INSERT ON orders FOR EACH ROW SET @a = 1",
     "create", "trigger", "tr", "orders"),
    ("ALTER TABLE users ADD COLUMN x INT", "alter", "table", "users", "users"),
    ("ALTER ONLINE IGNORE TABLE users FORCE", "alter", "table", "users", "users"),
    ("DROP TABLE IF EXISTS a", "drop", "table", "a", "a"),
    ("DROP INDEX i ON t", "drop", "index", "i", "t"),
    ("TRUNCATE TABLE t", "truncate", "table", "t", "t"),
    ("TRUNCATE t", "truncate", "table", "t", "t"),
])
def test_statement_target(sql, verb, kind, name, table):
    info = lint.statement_target(sql)
    assert (info["verb"], info["kind"], info["name"], info["table"]) == (verb, kind, name, table)


@pytest.mark.parametrize("clause, kind", [
    ("ADD COLUMN x INT", "add_column"),
    ("ADD x INT AFTER id", "add_column"),
    ("ADD COLUMN IF NOT EXISTS x INT", "add_column"),
    ("ADD INDEX i (x)", "add_index"),
    ("ADD UNIQUE KEY IF NOT EXISTS u (x)", "add_index"),
    ("ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES t (id)", "add_foreign_key"),
    ("ADD CONSTRAINT c CHECK (x > 0)", "add_check"),
    ("ADD FULLTEXT INDEX ft (body)", "add_fulltext"),
    ("DROP COLUMN x", "drop_column"),
    ("DROP x", "drop_column"),
    ("DROP INDEX i", "drop_index"),
    ("DROP FOREIGN KEY fk", "drop_foreign_key"),
    ("RENAME COLUMN a TO b", "rename_column"),
    ("RENAME TO t2", "rename_table"),
    ("ALTER COLUMN x SET DEFAULT 1", "alter_default"),
    ("MODIFY x BIGINT", "modify_column"),
    ("CHANGE x y INT", "modify_column"),
    ("CONVERT TO CHARACTER SET utf8mb4", "convert_charset"),
    ("ENGINE=InnoDB", "rebuild_option"),
    ("COMMENT 'x'", "table_option"),
    ("ALGORITHM=INPLACE", "algorithm_option"),
])
def test_alter_clause_kind(clause, kind):
    info = lint.statement_target("ALTER TABLE t " + clause)
    assert [lint.clause_kind(c) for c in info["clauses"]] == [kind]


@pytest.mark.parametrize("sql, flavor, expected", [
    ("CREATE TABLE t (id INT)", "mariadb", "CREATE TABLE t without IF NOT EXISTS"),
    ("CREATE TABLE IF NOT EXISTS t (id INT)", "mariadb", None),
    ("CREATE INDEX i ON t (x)", "mariadb", "CREATE INDEX i without IF NOT EXISTS"),
    ("CREATE INDEX i ON t (x)", "mysql", "MySQL has no CREATE INDEX IF NOT EXISTS"),
    ("CREATE INDEX IF NOT EXISTS i ON t (x)", "mariadb", None),
    ("ALTER TABLE t ADD COLUMN x INT", "mariadb", "'ADD COLUMN x INT' without IF NOT EXISTS"),
    ("ALTER TABLE t ADD COLUMN x INT", "mysql", "MySQL has no IF [NOT] EXISTS here"),
    ("ALTER TABLE t ADD COLUMN IF NOT EXISTS x INT, ADD INDEX IF NOT EXISTS i (x)", "mariadb", None),
    ("ALTER TABLE t DROP COLUMN x", "mariadb", "without IF EXISTS"),
    ("ALTER TABLE t MODIFY x BIGINT", "mariadb", None),
    ("CREATE VIEW v AS SELECT 1", "mariadb", "without OR REPLACE"),
    ("CREATE OR REPLACE VIEW v AS SELECT 1", "mysql", None),
    # Never IF NOT EXISTS for a body: it keeps the old one.
    ("CREATE PROCEDURE p() BEGIN END", "mariadb", "use CREATE OR REPLACE PROCEDURE (IF NOT EXISTS would keep"),
    ("CREATE PROCEDURE p() BEGIN END", "mysql", "precede it with DROP PROCEDURE IF EXISTS"),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1", "mariadb", "CREATE OR REPLACE TRIGGER"),
    ("CREATE PROCEDURE IF NOT EXISTS p() BEGIN END", "mariadb", "a changed body in this file would not be applied"),
    ("CREATE OR REPLACE PROCEDURE p() BEGIN END", "mariadb", None),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1", "mysql", "precede it with DROP EVENT IF EXISTS"),
    ("DROP TABLE t", "mariadb", "without IF EXISTS"),
    ("DROP TABLE IF EXISTS t", "mariadb", None),
    ("RENAME TABLE a TO b", "mariadb", "fails on a second run"),
    ("INSERT INTO t VALUES (1)", "mariadb", "adds rows"),
    ("INSERT IGNORE INTO t VALUES (1)", "mariadb", None),
])
def test_idempotence_findings(sql, flavor, expected):
    version = (10, 11, 6) if flavor == "mariadb" else (8, 0, 36)
    found = lint.idempotence_findings(st(sql), flavor, version)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0]


def test_old_mysql_procedures_are_told_to_drop_first():
    found = lint.idempotence_findings(st("CREATE PROCEDURE p() BEGIN END"), "mysql", (8, 0, 20))
    assert "DROP PROCEDURE IF EXISTS" in found[0]


@pytest.mark.parametrize("drop, create, rerunnable", [
    ("DROP TRIGGER IF EXISTS tr", "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1", True),
    ("DROP PROCEDURE IF EXISTS `P`", "CREATE DEFINER=CURRENT_USER PROCEDURE p() BEGIN END", True),
    ("DROP FUNCTION IF EXISTS f", "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1", True),
    ("DROP VIEW IF EXISTS v", "CREATE VIEW v AS SELECT 1", True),
    ("DROP TABLE IF EXISTS t", "CREATE TABLE t (id INT)", True),
    ("DROP PROCEDURE IF EXISTS other", "CREATE PROCEDURE p() BEGIN END", False),
    ("DROP FUNCTION IF EXISTS p", "CREATE PROCEDURE p() BEGIN END", False),
    ("DROP PROCEDURE p", "CREATE PROCEDURE p() BEGIN END", False),
])
def test_a_create_after_a_matching_drop_if_exists_in_the_same_file_is_rerunnable(drop, create, rerunnable):
    for flavor, version in (("mariadb", (10, 11, 6)), ("mysql", (8, 0, 36))):
        found = lint.idempotence_findings(st(create, 2), flavor, version, previous=[st(drop, 1)])
        assert (found == []) is rerunnable, (flavor, found)


@pytest.mark.parametrize("before, after, narrowing", [
    ("int", "bigint", False),
    ("bigint", "int", True),
    ("int unsigned", "int", True),
    ("int unsigned", "bigint", False),
    ("int", "int unsigned", True),
    ("tinyint(1)", "smallint", False),
    ("varchar(255)", "varchar(100)", True),
    ("varchar(100)", "varchar(255)", False),
    ("varchar(100)", "text", False),
    ("text", "varchar(100)", True),
    ("longtext", "mediumtext", True),
    ("char(64)", "varchar(64)", False),
    ("varchar(64)", "varbinary(64)", True),
    ("decimal(10,2)", "decimal(12,2)", False),
    ("decimal(10,2)", "decimal(10,1)", True),
    ("decimal(10,2)", "decimal(9,2)", True),
    ("int", "decimal(12,0)", False),
    ("bigint", "decimal(10,0)", True),
    ("double", "float", True),
    ("float", "double", False),
    ("enum('a','b')", "enum('a','b','c')", False),
    ("enum('a','b')", "enum('a')", True),
    ("datetime(3)", "datetime", True),
    ("datetime", "datetime(3)", False),
    ("datetime", "date", True),
    ("date", "datetime", False),
    ("datetime", "timestamp", True),
    ("int", "varchar(20)", False),
    ("int", "varchar(5)", True),
    ("varchar(20)", "int", True),
])
def test_narrowing_reason(before, after, narrowing):
    assert (lint.narrowing_reason(before, after) is not None) is narrowing


@pytest.mark.parametrize("before, after, narrowing", [
    ("utf8mb4", "latin1", True),
    ("utf8mb3", "latin1", True),
    ("utf8mb4", "utf8mb3", True),
    ("latin1", "ascii", True),
    ("latin2", "latin1", True),
    ("latin1", "utf8mb4", False),
    ("latin1", "utf8mb3", False),
    ("utf8mb3", "utf8mb4", False),
    ("ascii", "latin1", False),
    ("utf8", "utf8mb3", False),
])
def test_character_set_changes_that_cannot_hold_every_character_are_narrowing(before, after, narrowing):
    found = lint.narrowing_reason("varchar(10)", "varchar(10)", before, after)
    assert (found is not None and "character set" in found) is narrowing


def col(t, charset=None):
    return {"type": t, "charset": charset}


def test_destructive_findings_from_a_plan():
    changes = [
        {"object": "table a", "kind": "tables", "name": "a", "action": "drop"},
        {"object": "table b", "kind": "tables", "name": "b", "action": "alter", "columns": [
            {"column": "x", "action": "drop", "before": col("int")},
            {"column": "y", "action": "modify", "before": col("varchar(20)"), "after": col("varchar(10)")},
            {"column": "z", "action": "modify", "before": col("int"), "after": col("bigint")},
            {"column": "w", "action": "add", "after": col("int")},
        ]},
        {"object": "view v", "kind": "views", "name": "v", "action": "drop"},
    ]
    refs = {"table b": [{"file": "r.sql", "index": 2, "line": 5}]}
    found = lint.destructive_findings(changes, refs)
    assert [(f["object"], f["reason"].split(":")[0]) for f in found] == [
        ("table a", "drops the table and its rows"), ("table b", "drops column x"), ("table b", "narrows column y")]
    assert found[1]["statements"] == refs["table b"]


def test_row_destroying_statements():
    stmts = [st("TRUNCATE TABLE orders"), st("CREATE OR REPLACE TABLE users (id INT)", 2),
             st("CREATE OR REPLACE TABLE fresh (id INT)", 3)]
    found = lint.row_destroying_statements(stmts, {"orders": {}, "users": {}})
    assert [(f["object"], f["statements"][0]["index"]) for f in found] == [("table orders", 1), ("table users", 2)]


@pytest.mark.parametrize("clause, flavor, version, expected", [
    # MySQL: INSTANT ADD COLUMN from 8.0.12 (last position only until 8.0.29).
    ("ADD COLUMN x INT", "mysql", (8, 0, 11), "inplace"),
    ("ADD COLUMN x INT", "mysql", (8, 0, 12), "instant"),
    ("ADD COLUMN x INT AFTER id", "mysql", (8, 0, 28), "inplace"),
    ("ADD COLUMN x INT AFTER id", "mysql", (8, 0, 29), "instant"),
    ("DROP COLUMN x", "mysql", (8, 0, 28), "inplace"),
    ("DROP COLUMN x", "mysql", (8, 0, 29), "instant"),
    ("RENAME COLUMN a TO b", "mysql", (8, 0, 27), "inplace"),
    ("RENAME COLUMN a TO b", "mysql", (8, 0, 28), "instant"),
    # MariaDB: INSTANT ADD COLUMN from 10.3 (last), any position and DROP COLUMN from 10.4.
    ("ADD COLUMN x INT", "mariadb", (10, 2, 40), "inplace"),
    ("ADD COLUMN x INT", "mariadb", (10, 3, 0), "instant"),
    ("ADD COLUMN x INT FIRST", "mariadb", (10, 3, 39), "inplace"),
    ("ADD COLUMN x INT FIRST", "mariadb", (10, 4, 0), "instant"),
    ("DROP COLUMN x", "mariadb", (10, 3, 39), "inplace"),
    ("DROP COLUMN x", "mariadb", (10, 11, 6), "instant"),
    # Both: indexes in place, type changes and new foreign keys copy.
    ("ADD INDEX i (x)", "mysql", (8, 0, 36), "inplace"),
    ("ADD INDEX i (x)", "mariadb", (10, 11, 6), "inplace"),
    ("MODIFY x BIGINT", "mysql", (8, 0, 36), "copy"),
    ("MODIFY x BIGINT", "mariadb", (10, 11, 6), "copy"),
    ("ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES t (id)", "mysql", (8, 0, 36), "copy"),
    ("ALTER COLUMN x SET DEFAULT 0", "mysql", (8, 0, 36), "instant"),
    ("CONVERT TO CHARACTER SET utf8mb4", "mariadb", (10, 11, 6), "copy"),
])
def test_online_alter_rules_per_flavor_and_version(clause, flavor, version, expected):
    clauses = lint.statement_target("ALTER TABLE t " + clause)["clauses"]
    assert lint.expected_algorithm(lint.clause_kind(clauses[0]), flavor, version, clauses[0]) == expected


def test_a_statement_is_as_blocking_as_its_worst_clause():
    sql = "ALTER TABLE t ADD COLUMN x INT, ADD INDEX i (x), MODIFY y BIGINT"
    assert lint.statement_algorithm_by_rules(sql, "mysql", (8, 0, 36)) == "copy"
    assert lint.statement_algorithm_by_rules("ALTER TABLE t ADD COLUMN x INT, ADD INDEX i (x)", "mysql",
                                             (8, 0, 36)) == "inplace"


@pytest.mark.parametrize("algorithm, lock, expected", [
    ("instant", "none", False), ("inplace", "none", False), ("inplace", "shared", True), ("copy", "shared", True),
])
def test_blocking(algorithm, lock, expected):
    assert lint.blocking(algorithm, lock) is expected


def test_human_bytes():
    from ansible.module_utils.dbrelease.units import human_bytes

    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024 ** 3, 3 * 1024 ** 4)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 GiB", "3.0 TiB"]
