"""Identifier-aware schema qualifiers: only real schema qualifiers are rewritten, never table or column names."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import sqlident

INFO_SCHEMA_VIEW = (
    "select `shop`.`shop`.`id` AS `id`,`shop`.`shop`.`shop` AS `shop`,`f`(`shop`.`shop`.`shop`) AS `g`,"
    "`shop`.`f`(1) AS `h` from (`shop`.`shop` join `shop`.`items` on(`shop`.`shop`.`id` = "
    "`shop`.`items`.`shop_id`)) where `shop`.`shop`.`shop` in (select `shop`.`shop`.`shop` from `shop`.`shop`)")
SHOW_CREATE_VIEW = (
    "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select `shop`.`id` AS "
    "`id`,`shop`.`shop` AS `shop`,`f`(`shop`.`shop`) AS `g`,`shop`.`f`(1) AS `h` from (`shop` join `items` "
    "on(`shop`.`id` = `items`.`shop_id`)) where `shop`.`shop` in (select `shop`.`shop` from `shop`)")


@pytest.mark.parametrize("sql, expected", [
    # A database, a table and a column all named `shop`: only schema qualifiers move.
    (INFO_SCHEMA_VIEW, INFO_SCHEMA_VIEW.replace("`shop`.`shop`.", "`tmp`.`shop`.").replace(
        "`shop`.`items`", "`tmp`.`items`").replace("`shop`.`f`", "`tmp`.`f`").replace(
        "from `shop`.`shop`)", "from `tmp`.`shop`)").replace("(`shop`.`shop` join", "(`tmp`.`shop` join")),
    (SHOW_CREATE_VIEW, SHOW_CREATE_VIEW.replace("`shop`.`f`(1)", "`tmp`.`f`(1)")),
    ("ALTER TABLE shop.shop ADD COLUMN shop INT", "ALTER TABLE `tmp`.shop ADD COLUMN shop INT"),
    ("CREATE VIEW v AS SELECT shop.id FROM shop.shop JOIN shop.items ON shop.id = items.shop_id",
     "CREATE VIEW v AS SELECT shop.id FROM `tmp`.shop JOIN `tmp`.items ON shop.id = items.shop_id"),
    ("SELECT a.x, b.y FROM shop.a, shop.b WHERE a.x = shop.f(b.y)",
     "SELECT a.x, b.y FROM `tmp`.a, `tmp`.b WHERE a.x = `tmp`.f(b.y)"),
    ("CREATE TABLE shop.t AS SELECT a.x, shop.y FROM a, shop",
     "CREATE TABLE `tmp`.t AS SELECT a.x, shop.y FROM a, shop"),
    ("INSERT INTO shop.t (a, b) SELECT t.a, t.b FROM shop.t2 t",
     "INSERT INTO `tmp`.t (a, b) SELECT t.a, t.b FROM `tmp`.t2 t"),
    ("DROP TABLE IF EXISTS shop.a, shop.b", "DROP TABLE IF EXISTS `tmp`.a, `tmp`.b"),
    ("RENAME TABLE shop.a TO shop.b, shop.c TO shop.d", "RENAME TABLE `tmp`.a TO `tmp`.b, `tmp`.c TO `tmp`.d"),
    ("CREATE TRIGGER shop.tr BEFORE INSERT ON shop.t FOR EACH ROW SET NEW.x = shop.f(NEW.y)",
     "CREATE TRIGGER `tmp`.tr BEFORE INSERT ON `tmp`.t FOR EACH ROW SET NEW.x = `tmp`.f(NEW.y)"),
    ("CREATE INDEX i ON shop.t (c)", "CREATE INDEX i ON `tmp`.t (c)"),
    ("DROP INDEX i ON shop.t", "DROP INDEX i ON `tmp`.t"),
    ("UPDATE shop.a, shop.b SET a.x = b.y WHERE a.id = b.id",
     "UPDATE `tmp`.a, `tmp`.b SET a.x = b.y WHERE a.id = b.id"),
    ("SELECT 'shop.t', \"shop.x\" FROM t -- shop.t\n", "SELECT 'shop.t', \"shop.x\" FROM t -- shop.t\n"),
    ("/*!50001 VIEW `v` AS select `shop`.`t`.`id` AS `id` from `shop`.`t` */",
     "/*!50001 VIEW `v` AS select `tmp`.`t`.`id` AS `id` from `tmp`.`t` */"),
    ("SELECT NEXTVAL(shop.seq), NEXT VALUE FOR shop.seq2", "SELECT NEXTVAL(`tmp`.seq), NEXT VALUE FOR `tmp`.seq2"),
    ("SELECT x FROM shop . t", "SELECT x FROM `tmp` . t"),
    ("SELECT 1.5, t.5x, .5 FROM t", "SELECT 1.5, t.5x, .5 FROM t"),
    ("CREATE TABLE t (a INT, b INT AS (a + 1), FOREIGN KEY (a) REFERENCES shop.p (id))",
     "CREATE TABLE t (a INT, b INT AS (a + 1), FOREIGN KEY (a) REFERENCES `tmp`.p (id))"),
    ("ALTER TABLE t RENAME TO shop.u", "ALTER TABLE t RENAME TO `tmp`.u"),
    ("ALTER TABLE t RENAME AS shop.u", "ALTER TABLE t RENAME AS `tmp`.u"),
    ("SELECT t.*, shop.t.* FROM shop.t", "SELECT t.*, `tmp`.t.* FROM `tmp`.t"),
    ("SELECT d.x FROM (SELECT shop.t.x FROM shop.t) AS d, shop.u",
     "SELECT d.x FROM (SELECT `tmp`.t.x FROM `tmp`.t) AS d, `tmp`.u"),
    ("CALL shop.p(1)", "CALL `tmp`.p(1)"),
    ("SELECT `we.ird`.`c` FROM `shop`.`we.ird`", "SELECT `we.ird`.`c` FROM `tmp`.`we.ird`"),
    ("LOCK TABLES shop.a READ, shop.b WRITE", "LOCK TABLES `tmp`.a READ, `tmp`.b WRITE"),
    ("SELECT 1 FROM t JOIN shop ON shop.active", "SELECT 1 FROM t JOIN shop ON shop.active"),
    ("DELETE FROM shop.t WHERE t.x IN (SELECT y FROM shop.u)",
     "DELETE FROM `tmp`.t WHERE t.x IN (SELECT y FROM `tmp`.u)"),
    ("SELECT * FROM t WHERE col LIKE shop.c", "SELECT * FROM t WHERE col LIKE shop.c"),
    ("CREATE TABLE t2 LIKE shop.t", "CREATE TABLE t2 LIKE `tmp`.t"),
    ("SELECT @@session.sql_mode, @x.y FROM shop.t", "SELECT @@session.sql_mode, @x.y FROM `tmp`.t"),
    ("SELECT s.x FROM shop.t AS s LEFT JOIN shop.u u USING (id) JOIN shop.w FORCE INDEX (i) ON w.a = s.a",
     "SELECT s.x FROM `tmp`.t AS s LEFT JOIN `tmp`.u u USING (id) JOIN `tmp`.w FORCE INDEX (i) ON w.a = s.a"),
    ("SELECT `ñame`.`x` FROM `shop`.`ñame`", "SELECT `ñame`.`x` FROM `tmp`.`ñame`"),
    ("SELECT x FROM Shop.t", "SELECT x FROM Shop.t"),  # another schema on a case-sensitive server
])
def test_only_real_schema_qualifiers_are_rewritten(sql, expected):
    assert sqlident.rewrite_schema(sql, "shop", "tmp") == expected


def test_rewrite_back_and_forth_is_the_identity():
    there = sqlident.rewrite_schema(INFO_SCHEMA_VIEW, "shop", "shop__dbrelease_plan_1a2b")
    assert "`shop__dbrelease_plan_1a2b`.`shop`.`shop`" in there
    assert sqlident.rewrite_schema(there, "shop__dbrelease_plan_1a2b", "shop") == INFO_SCHEMA_VIEW


def test_removing_the_qualifier_keeps_table_and_column_names():
    assert sqlident.rewrite_schema(INFO_SCHEMA_VIEW, "shop", None).startswith(
        "select `shop`.`id` AS `id`,`shop`.`shop` AS `shop`,`f`(`shop`.`shop`) AS `g`,`f`(1) AS `h` from "
        "(`shop` join `items` on(`shop`.`id` = `items`.`shop_id`))")
    assert sqlident.rewrite_schema("SELECT x FROM shop . t", "shop", None) == "SELECT x FROM t"


def test_case_folding_for_servers_that_fold_names():
    assert sqlident.rewrite_schema("SELECT x FROM Shop.t", "shop", "tmp", fold=True) == "SELECT x FROM `tmp`.t"


def test_schema_qualifiers_and_object_references():
    sql = "SELECT a.x FROM shop.a JOIN other.b ON a.id = b.id WHERE other.f(a.x) > 0 AND q.r.s = 1"
    assert sqlident.schema_qualifiers(sql) == {"shop", "other", "q"}
    assert sqlident.object_references("SELECT v1.x FROM v1 JOIN (v2 JOIN t ON t.a = v2.a) ON v1.a = t.a") >= {
        (None, "v1"), (None, "v2"), (None, "t")}


@pytest.mark.parametrize("text, parts", [
    ("orders.legacy_flag", ["orders", "legacy_flag"]),
    ("`a.b`.c", ["a.b", "c"]),
    ("`orders`.`legacy flag`", ["orders", "legacy flag"]),
    ("orders", ["orders"]),
])
def test_split_qualified(text, parts):
    assert sqlident.split_qualified(text) == parts


def test_lexer_round_trips_and_keeps_strings_whole():
    sql = "SELECT 'a\\'b', \"c\"\"d\", `e``f` /* g */ # h\n FROM x -- i"
    tokens = sqlident.lex(sql)
    assert "".join(t for _k, t in tokens) == sql
    assert ("string", "'a\\'b'") in tokens and ("ident", "`e``f`") in tokens
