"""Data checks and lineage: what each column holds in terms of the real rows, statement by statement; the
predicates that count the rows a change breaks; renames and re-added columns; the narrow destructive override."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import datachecks as dc
from ansible.module_utils.dbrelease import ddl_lint, schema

A = dc.ALIAS


def col(type_, nullable=True, default=None, extra="", charset=None, collation=None, generated=None):
    spec = {"type": type_, "nullable": nullable, "default": default, "extra": extra, "charset": charset,
            "collation": collation, "comment": ""}
    if generated:
        spec["generated"] = generated
    return spec


def table(columns, indexes=None, fks=None, checks=None, raw_checks=None):
    return {"options": {}, "columns": dict(columns), "column_order": [c for c, _ in columns],
            "indexes": indexes or {}, "foreign_keys": fks or {}, "checks": checks or {},
            "raw_checks": raw_checks or {}}


def ref(i):
    return {"file": "r.sql", "index": i, "line": i, "sql": "#%d" % i}


@pytest.mark.parametrize("text, columns, expected", [
    ("`qty` > 0", {"qty": "c.q"}, "(c.q) > 0"),
    ("`status` in ('a','b') and length(`code`) < 5", {"status": "'new'", "code": "x"},
     "('new') in ('a','b') and length((x)) < 5"),
    ("`a` + `b`", {"a": "1", "b": None}, None),
    ("abs(`x`) = x_y", {"x": "c.x"}, "abs((c.x)) = x_y"),
])
def test_substitute_replaces_column_references_only(text, columns, expected):
    assert dc.substitute(text, columns) == expected


@pytest.mark.parametrize("spec, expected", [
    (col("varchar(10)", default="'new'"), "'new'"),
    (col("int", nullable=True), "NULL"),
    (col("int", nullable=False), "0"),
    (col("varchar(10)", nullable=False), "''"),
    (col("enum('a','b')", nullable=False), "'a'"),
    (col("datetime", nullable=False), "'0000-00-00 00:00:00'"),
    (col("bigint unsigned", nullable=False, extra="auto_increment"), None),
    (col("int", generated="`a` * 2"), "(%s.`a`) * 2" % A),
])
def test_the_value_a_new_column_gives_existing_rows(spec, expected):
    assert dc.new_column_value(spec, {"a": "%s.`a`" % A}) == expected


@pytest.mark.parametrize("before, after, fragment", [
    (col("int"), col("smallint"), "x < -32768 OR x > 32767"),
    (col("int unsigned"), col("tinyint unsigned"), "x < 0 OR x > 255"),
    (col("varchar(30)"), col("varchar(7)"), "CHAR_LENGTH(x) > 7"),
    (col("text"), col("tinytext"), "LENGTH(x) > 255"),
    (col("decimal(10,2)"), col("decimal(6,1)"), "ABS(x) >= POW(10, 5) OR x <> ROUND(x, 1)"),
    (col("double"), col("float"), "x <> CAST(x AS FLOAT)"),
    (col("enum('a','b','c')"), col("enum('a')"), "x IN ('b', 'c')"),
    (col("set('a','b')"), col("set('a')"), "FIND_IN_SET('b', x) > 0"),
    (col("datetime(6)"), col("datetime"), "MICROSECOND(x) MOD 1000000 <> 0"),
    (col("datetime"), col("timestamp"), "x < '1970-01-01 00:00:01' OR x > '2038-01-19 03:14:07'"),
    (col("datetime"), col("date"), "TIME(x) <> '00:00:00'"),
    (col("varchar(20)"), col("int"), "NOT (x REGEXP '^[+-]?[0-9]+$')"),
    (col("varchar(20)", charset="utf8mb4"), col("varchar(20)", charset="latin1"),
     "CAST(CONVERT(CONVERT(x USING latin1) USING utf8mb4) AS BINARY) <> CAST(x AS BINARY)"),
])
def test_narrowing_predicates_count_the_values_a_change_cannot_keep(before, after, fragment):
    assert ddl_lint.narrowing_reason(before["type"], after["type"], before["charset"], after["charset"])
    pred = dc.narrowing_predicate("x", before, after)
    assert fragment in pred


def test_a_change_that_cannot_be_checked_by_a_query_has_no_predicate():
    assert dc.narrowing_predicate("x", col("json"), col("point")) is None


@pytest.mark.parametrize("renames, net", [
    ([("a", "b")], {"a": "b"}),
    ([("a", "t"), ("b", "a"), ("t", "b")], {"a": "b", "b": "a"}),
    ([("a", "b"), ("b", "c")], {"a": "c"}),
    ([("a", "b"), ("b", "a")], {}),
])
def test_net_renames(renames, net):
    assert dc.net_renames(renames) == net


def hints(**extra):
    base = {"table_renames": [], "column_renames": [], "readded": set(), "ctas": False, "replace": False,
            "data_tables": set(), "truncate": set(), "unknown": False}
    base.update(extra)
    return base


EMP = table([("id", col("int", nullable=False)), ("nick", col("varchar(30)")), ("name", col("varchar(20)"))],
            indexes={"PRIMARY": {"unique": True, "type": "BTREE", "comment": "", "columns": [["id", None, "asc"]]}})


def test_a_check_on_a_column_added_by_an_earlier_statement_uses_its_default():
    lin = dc.Lineage("hr", {"emp": EMP})
    added = dict(EMP, columns=dict(EMP["columns"], status=col("varchar(10)", nullable=False, default="'new'")),
                 column_order=EMP["column_order"] + ["status"])
    lin.step(ref(1), {}, hints(), {"emp": EMP}, {"emp": added})
    checked = dict(added, checks={"chk": "x"}, raw_checks={"chk": "`status` in ('a','b')"})
    lin.step(ref(2), {}, hints(), {"emp": added}, {"emp": checked})
    (check,) = lin.checks
    assert check["check"] == "check_constraint" and check["when"] == "now"
    assert check["pred_now"] == "NOT (('new') in ('a','b'))" and check["depends_on"] == [ref(1)]
    assert check["pred_way"] == "NOT ((%s.`status`) in ('a','b'))" % A  # on the way: the real column by then


def test_a_data_statement_makes_later_checks_run_on_the_way():
    lin = dc.Lineage("hr", {"emp": EMP})
    lin.step(ref(1), {"category": "data"}, hints(data_tables={"emp"}), {}, {})
    strict = dict(EMP, columns=dict(EMP["columns"], nick=col("varchar(30)", nullable=False)))
    lin.step(ref(2), {}, hints(), {"emp": EMP}, {"emp": strict})
    (check,) = lin.checks
    assert (check["check"], check["when"], check["pred_now"]) == ("not_null", "on_the_way", None)
    assert check["pred_way"] == "%s.`nick` IS NULL" % A and check["way_table"] == "emp"


def test_renames_carry_the_real_column_and_table():
    lin = dc.Lineage("hr", {"emp": EMP})
    renamed = table([("id", col("int", nullable=False)), ("alias", col("varchar(30)")), ("name", col("varchar(20)"))],
                    indexes=EMP["indexes"])
    lin.step(ref(1), {}, hints(table_renames=[("emp", "staff")], column_renames=[("nick", "alias")]),
             {"emp": EMP}, {"staff": renamed})
    narrowed = dict(renamed, columns=dict(renamed["columns"], alias=col("varchar(5)")))
    lin.step(ref(2), {}, hints(), {"staff": renamed}, {"staff": narrowed})
    (check,) = lin.checks
    assert check["real_table"] == "emp"
    assert check["pred_now"] == "LENGTH({0}.`nick`) > 5 AND CHAR_LENGTH({0}.`nick`) > 5".format(A)
    assert lin.origins() == {"tables": {"staff": "emp"}, "columns": {"staff": {"id": "id", "alias": "nick",
                                                                                "name": "name"}}}
    assert lin.lost_values() == []


@pytest.mark.parametrize("steps", [
    # DROP nick; ADD nick (two statements), and DROP nick, ADD nick (one statement).
    [(hints(), "drop"), (hints(), "add")],
    [(hints(readded={"nick"}), "both")],
])
def test_a_column_dropped_and_re_added_is_lost(steps):
    lin = dc.Lineage("hr", {"emp": EMP})
    without = table([("id", col("int", nullable=False)), ("name", col("varchar(20)"))], indexes=EMP["indexes"])
    for i, (h, what) in enumerate(steps, 1):
        before, after = {"drop": (EMP, without), "add": (without, EMP), "both": (EMP, EMP)}[what]
        lin.step(ref(i), {}, h, {"emp": before}, {"emp": after})
    assert [(f["key"], f["reason"]) for f in lin.lost_values()] == [
        (["emp", "nick"], "drops and re-adds column nick: its values are lost")]
    moved = lin.origins()["columns"]["emp"]
    changes = schema.diff({"tables": {"emp": EMP}}, {"tables": {"emp": EMP}}, lin.origins())
    assert moved["nick"] is None and changes[0]["details"] == ["add column nick varchar(30)", "drop column nick"]


def test_a_table_dropped_and_created_again_is_a_recreate():
    lin = dc.Lineage("hr", {"emp": EMP})
    lin.step(ref(1), {}, hints(), {"emp": EMP}, {})
    lin.step(ref(2), {}, hints(), {}, {"emp": EMP})
    changes = schema.diff({"tables": {"emp": EMP}}, {"tables": {"emp": EMP}}, lin.origins())
    assert [(c["object"], c["action"]) for c in changes] == [("table emp", "recreate")]
    found = ddl_lint.destructive_findings(changes)
    assert [(f["key"], f["reason"]) for f in found] == [(["emp"], "drops and re-creates the table: its rows are lost")]


def test_a_foreign_key_to_a_table_the_release_creates_counts_every_child_row_with_a_value():
    lin = dc.Lineage("hr", {"emp": EMP})
    parent = table([("nick", col("varchar(30)", nullable=False))])
    lin.step(ref(1), {}, hints(), {}, {"nicks": parent})
    fk = {"fk": {"columns": ["nick"], "ref_schema": None, "ref_table": "nicks", "ref_columns": ["nick"],
                 "on_update": "RESTRICT", "on_delete": "RESTRICT"}}
    lin.step(ref(2), {}, hints(), {"emp": EMP}, {"emp": dict(EMP, foreign_keys=fk)})
    (check,) = lin.checks
    assert check["check"] == "foreign_key" and check["when"] == "now"
    assert check["sql_now"] == "SELECT COUNT(*) FROM `hr`.`emp` AS `c` WHERE (`c`.`nick`) IS NOT NULL"
    assert check["sql_way"] == ("SELECT COUNT(*) FROM `hr`.`emp` AS `c` LEFT JOIN `hr`.`nicks` AS `p` ON `p`.`nick` = "
                                "`c`.`nick` WHERE (`c`.`nick`) IS NOT NULL AND `p`.`nick` IS NULL")


def test_a_new_unique_key_over_an_added_column_with_a_constant_default_is_checked():
    lin = dc.Lineage("hr", {"emp": EMP})
    spec = dict(EMP, columns=dict(EMP["columns"], code=col("varchar(10)", nullable=False, default="'x'")),
                column_order=EMP["column_order"] + ["code"],
                indexes=dict(EMP["indexes"], uq={"unique": True, "type": "BTREE", "comment": "",
                                                 "columns": [["code", None, "asc"]]}))
    lin.step(ref(1), {}, hints(), {"emp": EMP}, {"emp": spec})
    (check,) = lin.checks
    assert check["check"] == "unique" and "GROUP BY 'x'" in check["sql_now"]


@pytest.mark.parametrize("finding, allow, allowed", [
    ({"key": ["orders", "legacy_flag"]}, ["orders.legacy_flag"], True),
    ({"key": ["orders", "legacy_flag"]}, ["orders.LEGACY_FLAG"], True),   # column names ignore case
    ({"key": ["orders", "other"]}, ["orders.legacy_flag"], False),
    ({"key": ["orders", "other"]}, ["orders.*"], True),
    ({"key": ["orders"]}, ["orders.*"], False),                           # dropping the table is not a column
    ({"key": ["orders"]}, ["orders"], True),
    ({"key": ["orders", "x"]}, ["orders"], False),
    ({"key": ["Orders"]}, ["orders"], False),                             # table names keep their case
    ({"key": ["odd.name", "c"]}, ["`odd.name`.c"], True),
    ({"key": ["orders"]}, True, True),
    ({"key": ["orders"]}, False, False),
    ({"key": ["orders"]}, [], False),
])
def test_the_destructive_override_allows_only_what_it_names(finding, allow, allowed):
    assert ddl_lint.allowed_destructive(finding, allow) is allowed


@pytest.mark.parametrize("columns, types, walks", [
    (["carrier_id"], {"carrier_id": "int(11)"}, True),
    (["carrier_id"], {"carrier_id": "bigint(20) unsigned"}, True),
    (["code"], {"code": "varchar(8)"}, False),  # strings compare under a collation: not walked
    (["a", "b"], {"a": "int(11)", "b": "int(11)"}, False),  # one column only
])
def test_a_foreign_key_over_one_indexed_integer_column_is_walked(columns, types, walks):
    spec = table([(c, col(t)) for c, t in types.items()],
                 indexes={"idx": {"unique": False, "columns": [[c, None] for c in columns]}})
    fk = {"columns": columns, "ref_columns": ["id"] * len(columns)}
    parent = {"rows": "real", "table": "carriers", "schema": None, "exprs": {"id": "%s.`id`" % A}}
    exprs = {c: "%s.`%s`" % (A, c) for c in columns}
    probe, walk = dc._orphan_looks("shop", "ships", fk, exprs, parent, spec)
    assert probe.startswith("SELECT COUNT(*) FROM (SELECT ") and "GROUP BY" in probe
    if not walks:
        assert walk is None
        return
    assert walk["first"] == "SELECT MIN(`carrier_id`) FROM `shop`.`ships`"
    assert walk["next"] == "SELECT MIN(`carrier_id`) FROM `shop`.`ships` WHERE `carrier_id` > "
    head, tail = walk["orphans"]
    assert head + "SELECT 7 AS `k0`" + tail == probe.replace(
        "SELECT `carrier_id` AS `k0` FROM `shop`.`ships` WHERE `carrier_id` IS NOT NULL GROUP BY `carrier_id`",
        "SELECT 7 AS `k0`")
    # No index leads with the column: neither look applies.
    bare = table([(c, col(t)) for c, t in types.items()])
    assert dc._orphan_looks("shop", "ships", fk, exprs, parent, bare) == (None, None)
