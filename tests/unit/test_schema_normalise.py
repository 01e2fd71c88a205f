"""Schema normalisation, diff and plan hashing: pure functions, with MySQL 8 outputs from its reference manual
(tests/unit/fixtures/mysql8) beside MariaDB 10.11 outputs recorded from a real server (fixtures/mariadb10.11)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ansible.module_utils.dbrelease import schema

FIXTURES = Path(__file__).parent / "fixtures"


def tsv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        values = [None if v == "\\N" else v for v in line.split("\t")]
        values += [""] * (len(header) - len(values))
        rows.append(dict(zip(header, values, strict=True)))
    return rows


def normalised_columns(flavor, path):
    return {r["COLUMN_NAME"]: (schema.normalise_type(r["COLUMN_TYPE"]), r["IS_NULLABLE"],
                               schema.normalise_default(r["COLUMN_DEFAULT"], r["EXTRA"], flavor),
                               schema.normalise_extra(r["EXTRA"]))
            for r in tsv(path)}


@pytest.mark.parametrize("raw, expected", [
    ("int(11)", "int"),
    ("int(10) unsigned", "int unsigned"),
    ("int unsigned", "int unsigned"),
    ("bigint(20)", "bigint"),
    ("tinyint(1)", "tinyint(1)"),
    ("tinyint(4)", "tinyint"),
    ("int(5) unsigned zerofill", "int(5) unsigned zerofill"),
    ("INTEGER(11)", "int"),
    ("varchar(255)", "varchar(255)"),
    ("decimal(10,2)", "decimal(10,2)"),
    ("enum('a','b')", "enum('a','b')"),
])
def test_integer_display_widths_are_dropped_except_where_both_servers_keep_them(raw, expected):
    assert schema.normalise_type(raw) == expected


@pytest.mark.parametrize("flavor, default, extra, expected", [
    # MariaDB >= 10.2.7: quoted literals, bare expressions, the string NULL for DEFAULT NULL, SQL NULL for none.
    ("mariadb", "'new'", "", "'new'"),
    ("mariadb", "'it''s'", "", "'it''s'"),
    ("mariadb", "0", "", "'0'"),
    ("mariadb", "NULL", "", None),
    ("mariadb", None, "", None),
    ("mariadb", "current_timestamp()", "on update current_timestamp()", "current_timestamp"),
    ("mariadb", "current_timestamp(3)", "", "current_timestamp(3)"),
    ("mariadb", "'NULL'", "", "'NULL'"),
    # MySQL 8: bare values, SQL NULL for both, expressions flagged DEFAULT_GENERATED.
    ("mysql", "new", "", "'new'"),
    ("mysql", "it's", "", "'it''s'"),
    ("mysql", "0", "", "'0'"),
    ("mysql", None, "", None),
    ("mysql", "CURRENT_TIMESTAMP", "DEFAULT_GENERATED on update CURRENT_TIMESTAMP", "current_timestamp"),
    ("mysql", "CURRENT_TIMESTAMP(3)", "DEFAULT_GENERATED", "current_timestamp(3)"),
    ("mysql", "(rand() * 10)", "DEFAULT_GENERATED", "rand() * 10"),
    ("mysql", "NULL", "", "'NULL'"),
])
def test_column_defaults_read_the_same_on_both_servers(flavor, default, extra, expected):
    assert schema.normalise_default(default, extra, flavor) == expected


def test_information_schema_columns_of_mysql8_and_mariadb_normalise_to_the_same_rows():
    mysql = normalised_columns("mysql", FIXTURES / "mysql8/t_defaults.columns.tsv")
    mariadb = normalised_columns("mariadb", FIXTURES / "mariadb10.11/t_defaults.columns.tsv")
    assert mysql == mariadb
    assert mysql["updated_at"] == ("timestamp", "NO", "current_timestamp", "on update current_timestamp")
    assert mysql["id"][0] == "int unsigned" and mysql["flag"][0] == "tinyint(1)"


def test_show_create_table_of_mysql8_and_mariadb_normalise_to_the_same_columns():
    mysql = schema.normalise_show_create((FIXTURES / "mysql8/t_defaults.show_create.txt").read_text())
    mariadb = schema.normalise_show_create((FIXTURES / "mariadb10.11/t_defaults.show_create.txt").read_text())
    # Everything but the table options line (each server's default collation) reads the same.
    assert mysql.splitlines()[:-1] == mariadb.splitlines()[:-1]
    assert "  `qty` int NOT NULL DEFAULT 0," in mysql.splitlines()
    assert "AUTO_INCREMENT=" not in mysql and "AUTO_INCREMENT=" not in mariadb


def test_mysql8_check_constraints_lose_the_doubled_parentheses():
    text = schema.normalise_show_create((FIXTURES / "mysql8/t1_checks.show_create.txt").read_text())
    assert "  CONSTRAINT `t1_chk_2` CHECK (`i2` > `i1`)," in text.splitlines()
    assert "CHECK (`i2` <> 0) /*!80016 NOT ENFORCED */" in text
    clauses = {r["CONSTRAINT_NAME"]: schema.normalise_expression(r["CHECK_CLAUSE"].replace("`", ""))
               for r in tsv(FIXTURES / "mysql8/t1_checks.check_constraints.tsv")}
    # MariaDB 10.11 shows the same constraint as CHECK (`i2` > `i1`) (fixtures/mariadb10.11 README).
    assert clauses["t1_chk_2"] == schema.normalise_expression("`i2` > `i1`".replace("`", "")) == "i2 > i1"


@pytest.mark.parametrize("text, expected", [
    ("(a > 0)", "a > 0"),
    ("((a > 0))", "a > 0"),
    ("(a > 0) and (b > 0)", "(a > 0) and (b > 0)"),
    ("  now( ) ", "current_timestamp"),
    ("CURRENT_TIMESTAMP(6)", "current_timestamp(6)"),
    ("known + now_ts + `now`", "known + now_ts + `now`"),
])
def test_expressions_are_normalised(text, expected):
    assert schema.normalise_expression(text) == expected


def test_schema_qualifications_are_removed_so_copies_compare_equal():
    definition = "select `app`.`orders`.`user_id` AS `user_id` from `app`.`orders`"
    assert schema.strip_schema(definition, "app") == "select `orders`.`user_id` AS `user_id` from `orders`"
    assert schema.rewrite_schema(definition, "app", "app__tmp") == definition.replace("`app`.", "`app__tmp`.")


def table(columns, indexes=None, **options):
    return {"options": dict({"engine": "InnoDB", "collation": "utf8mb4_unicode_ci", "comment": "",
                             "create_options": ""}, **options),
            "columns": {name: {"type": t, "nullable": False, "default": None, "extra": "", "charset": None,
                               "collation": None, "comment": ""} for name, t in columns},
            "column_order": [name for name, _ in columns],
            "indexes": indexes or {}, "foreign_keys": {}, "checks": {}}


def objects(**tables):
    return {"tables": tables, "views": {}, "routines": {}, "triggers": {}, "events": {}}


def test_diff_lists_created_altered_and_dropped_objects_in_order():
    before = objects(a=table([("id", "int")]), b=table([("id", "int")]))
    after = objects(a=table([("id", "bigint"), ("x", "varchar(8)")]), c=table([("id", "int")]))
    after["views"]["v"] = {"definition": "select 1", "check_option": "NONE", "security": "DEFINER"}
    changes = schema.diff(before, after)
    assert [(c["object"], c["action"]) for c in changes] == [
        ("table a", "alter"), ("table b", "drop"), ("table c", "create"), ("view v", "create")]
    assert changes[0]["details"] == ["modify column id (type): int -> bigint", "add column x varchar(8)"]
    assert [c["action"] for c in changes[0]["columns"]] == ["modify", "add"]


def test_diff_of_identical_snapshots_is_empty_and_reorder_is_seen():
    base = objects(a=table([("id", "int"), ("x", "int")]))
    assert schema.diff(base, copy.deepcopy(base)) == []
    moved = objects(a=table([("x", "int"), ("id", "int")]))
    assert schema.diff(base, moved)[0]["details"] == ["reorder columns"]


def test_diff_reports_index_changes_with_structure():
    idx = {"uq": {"unique": True, "type": "BTREE", "comment": "", "columns": [["x", None, "asc"]]}}
    before = objects(a=table([("id", "int"), ("x", "int")]))
    after = objects(a=table([("id", "int"), ("x", "int")], indexes=idx))
    change = schema.diff(before, after)[0]
    assert change["details"] == ["add index uq"]
    assert change["indexes"] == [{"index": "uq", "action": "add", "before": None, "after": idx["uq"]}]


def test_plan_hash_depends_on_the_plan_and_the_file_checksums_only():
    before = objects(a=table([("id", "int")]))
    after = objects(a=table([("id", "int"), ("x", "int")]))
    changes = schema.diff(before, after)
    h1 = schema.plan_sha256(changes, {"a.sql": "11"})
    with_refs = [dict(c, statements=[{"file": "a.sql", "index": 1}]) for c in changes]
    assert schema.plan_sha256(with_refs, {"a.sql": "11"}) == h1
    assert schema.plan_sha256(changes, {"a.sql": "12"}) != h1
    assert schema.plan_sha256([], {"a.sql": "11"}) != h1


def test_compare_plans_names_objects_and_files_that_differ():
    approved = {"changes": [{"object": "table a", "action": "create", "details": []}],
                "files": {"a.sql": "1" * 64, "b.sql": "2" * 64}}
    current = {"changes": [{"object": "table a", "action": "alter", "details": ["add column x int"]},
                           {"object": "view v", "action": "create", "details": []}],
               "files": {"a.sql": "1" * 64, "b.sql": "3" * 64}}
    lines = schema.compare_plans(approved, current)
    assert lines == ["table a: approved create [], now alter ['add column x int']",
                     "view v: create now planned, not in the approved plan",
                     "DDL file b.sql: approved sha256 %s, now %s" % ("2" * 64, "3" * 64)]


def test_export_sql_wraps_routines_in_delimiters_and_drops_auto_increment():
    creates = {"tables": {"t": "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB AUTO_INCREMENT=9"},
               "views": {}, "routines": {"PROCEDURE p": "CREATE PROCEDURE `p`()\nBEGIN SELECT 1; END"},
               "triggers": {}, "events": {}}
    text = schema.export_sql(creates, "app")
    assert "AUTO_INCREMENT=9" not in text and "ENGINE=InnoDB;" in text
    assert "DELIMITER ;;\nCREATE PROCEDURE `p`()\nBEGIN SELECT 1; END ;;\nDELIMITER ;" in text


def fk(ref_table):
    return {"columns": ["x"], "ref_schema": None, "ref_table": ref_table, "ref_columns": ["id"],
            "on_update": "RESTRICT", "on_delete": "RESTRICT"}


def scoped_objects():
    objs = objects(users=table([("id", "int")]), orders=table([("id", "int")]), items=table([("id", "int")]),
                   other=table([("id", "int")]), logs=table([("id", "int")]))
    objs["tables"]["orders"]["foreign_keys"]["fk_user"] = fk("users")
    objs["tables"]["items"]["foreign_keys"]["fk_order"] = fk("orders")
    objs["views"] = {"v_orders": {"definition": "select `orders`.`id` AS `id` from `orders`"},
                     "v_top": {"definition": "select `v_orders`.`id` AS `id` from `v_orders` join `logs`"},
                     "v_other": {"definition": "select 1 from `other`"}}
    return objs


@pytest.mark.parametrize("sql, modified, tables, views", [
    # A new table referencing users: users only (nothing refers to the new table yet).
    ("CREATE TABLE t (user_id INT, FOREIGN KEY (user_id) REFERENCES users (id))", set(), {"users"}, set()),
    # Altering orders: its parent (users), its children (items), views over it and what they read.
    ("ALTER TABLE orders ADD COLUMN y INT", {"orders"}, {"orders", "users", "items", "logs"}, {"v_orders", "v_top"}),
    # Naming a view pulls in what it reads.
    ("CREATE OR REPLACE VIEW v_other AS SELECT 2 FROM `other`", set(), {"other"}, {"v_other"}),
    # Dropping users needs the tables whose foreign keys reference it.
    ("DROP TABLE IF EXISTS users", {"users"}, {"users", "orders"}, {"v_orders", "v_top"}),
])
def test_plan_scope_holds_what_the_statements_can_touch(sql, modified, tables, views):
    scope = schema.plan_scope([{"sql": sql}], scoped_objects(), modified)
    assert scope == {"tables": tables | ({"logs"} if views & {"v_top"} else set()), "views": views}
