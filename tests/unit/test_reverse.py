"""The reverse of a release's schema changes, computed over snapshots (no server): what each change becomes, the
DDL, and what is at stake."""

from __future__ import annotations

import copy

import pytest
from ansible.module_utils.dbrelease import reverse, schema


def col(ctype, nullable=True, default=None, extra="", charset=None, collation=None, **more):
    entry = {"type": ctype, "nullable": nullable, "default": default, "extra": extra, "charset": charset,
             "collation": collation, "comment": ""}
    entry.update(more)
    return entry


def table(columns, indexes=None, fks=None, checks=None, options=None):
    return {"options": options or {"engine": "InnoDB", "collation": "utf8mb4_unicode_ci", "comment": "",
                                   "create_options": ""},
            "columns": dict(columns), "column_order": [c for c, _ in columns],
            "indexes": indexes or {"PRIMARY": {"unique": True, "type": "BTREE", "comment": "",
                                               "columns": [["id", None, "asc"]]}},
            "foreign_keys": fks or {}, "checks": checks or {}}


VARCHAR = dict(charset="utf8mb4", collation="utf8mb4_unicode_ci")
PRE = {
    "tables": {
        "orders": table([("id", col("int", False, extra="auto_increment")), ("customer_id", col("int", False)),
                         ("status", col("varchar(10)", default="'new'", **VARCHAR)),
                         ("total", col("decimal(10,2)"))]),
        "shop": table([("id", col("int", False)), ("odd `name`", col("text", **VARCHAR))]),
        "legacy": table([("id", col("int", False)), ("v", col("int"))]),
    },
    "views": {"v_orders": {"definition": "select 1", "check_option": "NONE", "security": "DEFINER"}},
    "routines": {"FUNCTION f": {"type": "FUNCTION", "body": "RETURN 1"}},
    "triggers": {"t1": {"table": "orders", "timing": "AFTER", "event": "INSERT", "statement": "SET @a = 1",
                        "order": 1},
                 "t2": {"table": "orders", "timing": "AFTER", "event": "INSERT", "statement": "SET @b = 1",
                        "order": 2}},
    "events": {},
}
PRE_SQL = schema.export_sql({
    "tables": {
        "orders": "CREATE TABLE `orders` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n"
                  "  `customer_id` int(11) NOT NULL,\n  `status` varchar(10) DEFAULT 'new',\n"
                  "  `total` decimal(10,2) DEFAULT NULL,\n"
                  "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4 "
                  "COLLATE=utf8mb4_unicode_ci",
        "shop": "CREATE TABLE `shop` (\n  `id` int(11) NOT NULL,\n  `odd ``name``` text DEFAULT NULL,\n"
                "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
        "legacy": "CREATE TABLE `legacy` (\n  `id` int(11) NOT NULL,\n  `v` int(11) DEFAULT NULL,\n"
                  "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    },
    "views": {"v_orders": "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW "
                          "`shop`.`v_orders` AS select 1 AS `1`"},
    "routines": {"FUNCTION f": "CREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int(11)\n"
                               "    DETERMINISTIC\n-- a comment; with a semicolon\nRETURN 1"},
    "triggers": {"t1": "CREATE DEFINER=`root`@`localhost` TRIGGER t1 AFTER INSERT ON orders FOR EACH ROW SET @a = 1",
                 "t2": "CREATE DEFINER=`root`@`localhost` TRIGGER `t2` AFTER INSERT ON orders FOR EACH ROW "
                       "SET @b = 1"},
    "events": {},
}, "shop")


def release(**changes):
    now = copy.deepcopy(PRE)
    for path, value in changes.items():
        target = now
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key]
        if value is None:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return now


def actions(items):
    return ["%s: %s" % (i["object"], i["action"]) for i in items]


def test_the_previous_definitions_are_read_back_from_what_export_sql_wrote():
    creates = reverse.parse_export(PRE_SQL)
    assert sorted(creates["tables"]) == ["legacy", "orders", "shop"]
    assert creates["routines"]["FUNCTION f"].endswith("-- a comment; with a semicolon\nRETURN 1")
    assert sorted(creates["triggers"]) == ["t1", "t2"] and list(creates["views"]) == ["v_orders"]
    parts = reverse.table_parts(creates["tables"]["shop"])
    assert parts["columns"] == {"id": "int(11) NOT NULL", "odd `name`": "text DEFAULT NULL"}
    assert parts["keys"] == {"PRIMARY": "PRIMARY KEY (`id`)"}
    assert reverse.table_parts(creates["tables"]["orders"])["options"] == {
        "ENGINE": "InnoDB", "CHARSET": "utf8mb4", "COLLATE": "utf8mb4_unicode_ci"}


def test_a_release_adding_a_table_and_a_column_is_reversed_by_dropping_them_with_the_rows_at_stake():
    now = release(tables__refunds=table([("id", col("int", False)), ("order_id", col("int", False))],
                                        fks={"refunds_order": {"columns": ["order_id"], "ref_schema": None,
                                                               "ref_table": "orders", "ref_columns": ["id"],
                                                               "on_update": "RESTRICT", "on_delete": "RESTRICT"}}))
    now["tables"]["orders"]["columns"]["note"] = col("varchar(40)", default="'none'", **VARCHAR)
    now["tables"]["orders"]["column_order"].insert(2, "note")
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert actions(items) == ["table refunds: drop", "table orders: drop column note"]
    assert items[0]["stake"]["sql"] == "SELECT COUNT(*) FROM `refunds` WHERE 1 = 1"
    assert items[1]["stake"] == {"sql": "SELECT COUNT(*) FROM `orders` WHERE `note` IS NOT NULL AND NOT "
                                        "(`note` <=> %s)", "args": ["none"],
                                 "what": "row(s) with a value in orders.note, a column the release added"}
    assert reverse.ddl(items).endswith("DROP TABLE IF EXISTS `refunds`;\n\nALTER TABLE `orders` DROP COLUMN `note`;\n")
    assert reverse.summary(items, {items[0]["id"]: 0, items[1]["id"]: 0})["lossless"] is True
    lossy = reverse.summary(items, {items[0]["id"]: 3, items[1]["id"]: 0})
    assert lossy["lossless"] is False and lossy["losses"] == ["3 row(s) in refunds, a table the release created"]


def test_changed_objects_get_their_previous_text_back_after_what_uses_them_is_dropped():
    now = release(views__v_orders={"definition": "select 2", "check_option": "NONE", "security": "DEFINER"})
    now["routines"] = {"FUNCTION f": {"type": "FUNCTION", "body": "RETURN 2"}, "PROCEDURE p": {"type": "PROCEDURE"}}
    del now["triggers"]["t2"]
    now["events"]["nightly"] = {"definition": "x"}
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert actions(items) == [
        "event nightly: drop", "view v_orders: drop before recreating the previous one",
        "routine FUNCTION f: drop before recreating the previous one", "routine PROCEDURE p: drop",
        "routine FUNCTION f: create the previous definition", "view v_orders: create the previous definition",
        "trigger t2: create the previous definition"]
    text = reverse.ddl(items)
    assert "CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW" in text
    assert "DELIMITER ;;\nCREATE DEFINER=`root`@`localhost` FUNCTION `f`() RETURNS int(11)\n    DETERMINISTIC\n" \
           "-- a comment; with a semicolon\nRETURN 1 ;;\nDELIMITER ;" in text
    assert "DROP PROCEDURE IF EXISTS `p`;" in text


def test_renames_are_renamed_back_and_a_dropped_column_comes_back_in_its_place_with_its_loss_named():
    now = release()
    now["tables"]["legacy_v1"] = now["tables"].pop("legacy")
    shop = now["tables"]["shop"]
    shop["columns"] = {"id": shop["columns"]["id"], "notes": shop["columns"]["odd `name`"]}
    shop["column_order"] = ["id", "notes"]
    orders = now["tables"]["orders"]
    del orders["columns"]["status"]
    orders["column_order"].remove("status")
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert actions(items) == [
        "table legacy_v1: rename back to legacy",
        "table orders: add column status again (its values are not brought back)",
        "table shop: rename column notes back to odd `name`"]
    text = reverse.ddl(items)
    assert "RENAME TABLE `legacy_v1` TO `legacy`;" in text
    assert "ALTER TABLE `orders` ADD COLUMN `status` varchar(10) DEFAULT 'new' AFTER `customer_id`;" in text
    assert "ALTER TABLE `shop` CHANGE COLUMN `notes` `odd ``name``` text DEFAULT NULL;" in text
    lost = reverse.summary(items, {items[1]["id"]: 7})
    assert lost["losses"] == ["column orders.status was dropped by the release: its values are only in the backup "
                              "(7 row(s) of orders that get status's default instead of their old value)"]


@pytest.mark.parametrize("old, new, predicate", [
    (col("varchar(10)", **VARCHAR), col("varchar(50)", **VARCHAR), "((CHAR_LENGTH(`c`) > 10))"),
    (col("varchar(50)", **VARCHAR), col("varchar(10)", **VARCHAR), None),
    (col("int"), col("bigint"), "((`c` < -2147483648 OR `c` > 2147483647))"),
    (col("bigint"), col("int"), None),
    (col("int unsigned"), col("int"), "((`c` < 0 OR `c` > 4294967295))"),
    (col("decimal(10,2)"), col("decimal(12,4)"), "((ABS(`c`) >= 100000000 OR `c` <> ROUND(`c`, 2)))"),
    (col("text", **VARCHAR), col("mediumtext", **VARCHAR), "((LENGTH(`c`) > 65535))"),
    (col("int", nullable=False), col("int"), "((`c` IS NULL))"),
    (col("datetime"), col("datetime(3)"), "((MICROSECOND(`c`) % 1000000 <> 0))"),
    (col("varchar(10)", default="'a'", **VARCHAR), col("varchar(10)", default="'b'", **VARCHAR), None),
    (col("varchar(10)", charset="latin1", collation="latin1_swedish_ci"), col("varchar(10)", **VARCHAR),
     "((`c` IS NOT NULL AND CONVERT(CONVERT(`c` USING latin1) USING utf8mb4) <> `c`))"),
    (col("json"), col("longtext"), "unknown"),
])
def test_a_modified_column_goes_back_only_where_the_values_fit_and_the_check_is_exact(old, new, predicate):
    found = reverse.fit_predicate("c", old, new)
    assert (found if found in (None, "unknown") else found[0]) == predicate


def test_enum_values_outside_the_previous_list_are_counted_with_bound_values():
    where, args = reverse.fit_predicate("s", col("enum('a','b''c')"), col("enum('a','b''c','new')"))
    assert where == "((`s` NOT IN (%s, %s)))" and args == ["a", "b'c"]


def test_a_widened_column_that_holds_longer_values_is_left_out_and_named():
    now = release()
    now["tables"]["orders"]["columns"]["status"] = col("varchar(50)", default="'new'", **VARCHAR)
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert actions(items) == ["table orders: modify column status back"]
    assert reverse.ddl(items) .endswith("ALTER TABLE `orders` MODIFY COLUMN `status` varchar(10) DEFAULT 'new';\n")
    summary = reverse.summary(items, {"fit:" + items[0]["id"]: 2}, excluded={items[0]["id"]})
    assert summary["not_reversed"] == ["table orders: modify column status back left as it is: 2 value(s) of "
                                       "orders.status that do not fit its previous definition varchar(10)"]
    assert summary["lossless"] is False
    assert "MODIFY" not in reverse.ddl(items, excluded={items[0]["id"]})


def test_a_column_the_release_narrowed_goes_back_but_its_cut_values_are_named():
    now = release()
    now["tables"]["orders"]["columns"]["status"] = col("varchar(4)", default="'new'", **VARCHAR)
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert "fit" not in items[0]  # a widening: every value fits
    assert reverse.summary(items, {})["losses"] == ["the release narrowed orders.status from varchar(10) to "
                                                    "varchar(4): values it cut are not brought back"]


def test_moved_columns_go_back_to_their_place():
    now = release()
    order = now["tables"]["orders"]["column_order"]
    order.remove("total")
    order.insert(1, "total")
    items = reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))
    assert reverse.ddl(items).endswith("ALTER TABLE `orders` MODIFY COLUMN `total` decimal(10,2) DEFAULT NULL AFTER "
                                       "`status`;\n")


def test_created_tables_are_dropped_children_first():
    fk = {"columns": ["a_id"], "ref_schema": None, "ref_table": "a", "ref_columns": ["id"], "on_update": "RESTRICT",
          "on_delete": "RESTRICT"}
    now = release(tables__a=table([("id", col("int", False))]),
                  tables__b=table([("id", col("int", False)), ("a_id", col("int"))], fks={"b_a": fk}))
    assert [i["object"] for i in reverse.plan(PRE, now, reverse.parse_export(PRE_SQL))] == ["table b", "table a"]


def test_nothing_to_reverse_gives_an_empty_reverse():
    items = reverse.plan(PRE, copy.deepcopy(PRE), reverse.parse_export(PRE_SQL))
    assert items == [] and reverse.summary(items, {})["lossless"] is True
    assert reverse.ddl(items).count("\n") == 1


def test_a_dropped_table_without_its_previous_definition_is_an_error_naming_it():
    now = release(tables__legacy=None, tables__other=table([("x", col("int"))]))
    with pytest.raises(reverse.ReverseError, match="table legacy was dropped by the release"):
        reverse.plan(PRE, now, {"tables": {}, "views": {}, "routines": {}, "triggers": {}, "events": {}})
