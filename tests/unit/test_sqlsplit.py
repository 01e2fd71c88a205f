"""The statement splitter: quotes, comments, DELIMITER and line numbers, as the mysql/mariadb client splits."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease.sqlsplit import SplitError, split_sql, summary
from conftest import ROOT


@pytest.mark.parametrize("text, expected", [
    ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT ';' AS a; SELECT 2", ["SELECT ';' AS a", "SELECT 2"]),
    ("SELECT 'it''s; fine'; SELECT 2", ["SELECT 'it''s; fine'", "SELECT 2"]),
    ("SELECT 'a\\'; b'; SELECT 2", ["SELECT 'a\\'; b'", "SELECT 2"]),
    ('SELECT "x;y"; SELECT 2', ['SELECT "x;y"', "SELECT 2"]),
    ("SELECT `we;ird` FROM t; SELECT 2", ["SELECT `we;ird` FROM t", "SELECT 2"]),
    ("SELECT 1; -- a comment; not a statement\nSELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT 1; # hash comment;\nSELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT 1 /* inline; comment */ + 1;", ["SELECT 1   + 1"]),
    ("SELECT 5--1;", ["SELECT 5--1"]),
    ("/*!40101 SET NAMES utf8mb4 */;", ["/*!40101 SET NAMES utf8mb4 */"]),
    (";;  ;\n", []),
    ("", []),
])
def test_split_statements(text, expected):
    assert [s["sql"] for s in split_sql(text)] == expected


def test_delimiter_keeps_procedure_bodies_whole_and_switches_back():
    text = ("DELIMITER //\n"
            "CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND //\n"
            "DELIMITER ;\n"
            "SELECT 3;\n")
    stmts = split_sql(text, file="p.sql")
    assert [s["sql"] for s in stmts] == ["CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND", "SELECT 3"]
    assert [(s["index"], s["line"]) for s in stmts] == [(1, 2), (2, 8)]


def test_delimiter_is_case_insensitive_and_multi_character():
    stmts = split_sql("delimiter $$\nSELECT 1$$\nSELECT ';'$$\nDelimiter ;\nSELECT 2;")
    assert [s["sql"] for s in stmts] == ["SELECT 1", "SELECT ';'", "SELECT 2"]


def test_line_numbers_skip_comments_and_count_newlines_inside_strings():
    text = "-- header\n\n/* block\n comment */\nSELECT 'a\nb';\n\n  # x\n  SELECT 2;"
    stmts = split_sql(text, file="f.sql")
    assert [(s["index"], s["line"], s["file"]) for s in stmts] == [(1, 5, "f.sql"), (2, 9, "f.sql")]


@pytest.mark.parametrize("text, message", [
    ("SELECT 'oops;\nSELECT 2;", "f.sql line 1: unterminated ' quote"),
    ("SELECT 1;\nSELECT `x;", "f.sql line 2: unterminated ` quote"),
    ("SELECT 1; /* never closed", "f.sql line 1: unterminated /* comment"),
])
def test_unterminated_quote_or_comment_names_file_and_line(text, message):
    with pytest.raises(SplitError, match=message.replace("/*", r"/\*")):
        split_sql(text, file="f.sql")


def test_the_example_pre_release_schema_splits_into_its_statements():
    stmts = split_sql((ROOT / "examples/app/db/schema_pre_release.sql").read_text(), file="pre.sql")
    firsts = [s["sql"].split("(")[0].split(" AS")[0].strip() for s in stmts]
    assert firsts == ["CREATE TABLE IF NOT EXISTS users", "CREATE TABLE IF NOT EXISTS products",
                      "CREATE TABLE IF NOT EXISTS orders", "CREATE TABLE IF NOT EXISTS order_items",
                      "CREATE OR REPLACE VIEW order_totals", "CREATE PROCEDURE IF NOT EXISTS user_order_count",
                      "CREATE TRIGGER IF NOT EXISTS orders_status_default BEFORE INSERT ON orders FOR EACH ROW\nBEGIN"
                      "\n  IF NEW.status = '' THEN SET NEW.status = 'new'; END IF;\nEND"]
    assert stmts[5]["sql"].endswith("END") and "SELECT COUNT(*) INTO p_count" in stmts[5]["sql"]
    assert [s["line"] for s in stmts] == [2, 11, 20, 31, 40, 44, 48]


def test_summary_names_file_statement_and_line():
    st = split_sql("\n\nCREATE TABLE t (id INT);", file="a.sql")[0]
    assert summary(st) == "a.sql statement #1 (line 3): CREATE TABLE t (id INT)"
