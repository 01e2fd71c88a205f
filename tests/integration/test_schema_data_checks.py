"""The dry-run sees the data: every change rows can break is counted against the real rows before anything runs.

Schemas in the style of the public employees and world samples (tests/fixtures/schemas), with rows that break
the new definitions. Each case: check mode refuses with the count, the real run refuses before applying anything,
and the same change passes once the data is clean (or the offending statement is left out).
"""

from __future__ import annotations

import pytest
import schema_apply
from ansible.module_utils.dbrelease import schema
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ROOT

SCHEMAS = ROOT / "tests/fixtures/schemas"


def load(box, db, *names):
    for name in names:
        box.sql([s["sql"] for s in split_sql((SCHEMAS / name).read_text())], database=db)


@pytest.fixture
def hr(mariadb, dbname):
    load(mariadb, dbname, "personnel.sql", "personnel_seed.sql", "atlas.sql", "atlas_seed.sql")
    return dbname


def params(admin_params, db, text, **extra):
    p = dict(admin_params, db=db, ddl_files=[], ddl_names=["release.sql"], ddl_contents=[text],
             environment="staging", allow_destructive=False, allow_statements=[], allow_blocking_alter=False,
             large_table_bytes=1 << 30, require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced")
    p.update(extra)
    return p


def snapshot(box, db):
    conn = box.root()
    try:
        return schema.snapshot(conn, db, "mariadb")["objects"]
    finally:
        conn.close()


def refused(admin_params, db, text, check_mode=True, **extra):
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, db, text, **extra), check_mode=check_mode)
    return err.value


@pytest.mark.parametrize("text, check, rows, message", [
    ("ALTER TABLE employees MODIFY nickname VARCHAR(30) NOT NULL", "not_null", 3,
     "3 row(s) with NULL in nickname, which it makes NOT NULL"),
    ("ALTER TABLE salaries ADD CONSTRAINT chk_salary CHECK (salary >= 50000)", "check_constraint", 1,
     "1 row(s) violating the CHECK chk_salary"),
    ("ALTER TABLE badges ADD CONSTRAINT fk_badge_emp FOREIGN KEY (emp_no) REFERENCES employees (emp_no)",
     "foreign_key", 2, "2 orphan row(s) for the new foreign key fk_badge_emp (emp_no -> employees)"),
    ("ALTER TABLE titles ADD UNIQUE KEY uq_title (title)", "unique", 2,
     "1 value(s) already duplicated over 2 rows for the new unique key uq_title"),
    ("ALTER TABLE employees MODIFY last_name VARCHAR(7) NOT NULL", "narrowing", 1,
     "1 row(s) whose last_name does not fit"),
    ("ALTER TABLE salaries MODIFY salary SMALLINT NOT NULL", "narrowing", 4, "4 row(s) whose salary does not fit"),
    ("ALTER TABLE country MODIFY local_name VARCHAR(45) CHARACTER SET latin1 NOT NULL DEFAULT ''", "narrowing", 1,
     "1 row(s) whose local_name does not fit the new type or character set"),
    ("ALTER TABLE country MODIFY life_expectancy DECIMAL(3,0) NULL", "narrowing", 3,
     "3 row(s) whose life_expectancy does not fit"),
    ("ALTER TABLE country MODIFY continent ENUM('Asia','Europe') NOT NULL DEFAULT 'Asia'", "narrowing", 1,
     "1 row(s) whose continent does not fit"),
    # Checks that depend on an earlier statement: evaluated against the data as it leaves it.
    ("ALTER TABLE employees ADD COLUMN status VARCHAR(10) NOT NULL DEFAULT 'new';\n"
     "ALTER TABLE employees ADD CONSTRAINT chk_status CHECK (status IN ('active', 'left'))", "check_constraint", 5,
     "(checked against the data as release.sql #1 (line 1) leave(s) it)"),
    ("ALTER TABLE employees ADD COLUMN badge INT NULL;\nALTER TABLE employees MODIFY badge INT NOT NULL", "not_null",
     5, "5 row(s) with NULL in badge"),
    ("RENAME TABLE badges TO staff_badges;\nALTER TABLE staff_badges CHANGE code badge_code VARCHAR(3) NULL",
     "narrowing", 3, "table staff_badges: 3 row(s) whose badge_code does not fit"),
    # A new parent table of this release has no rows: every child row with a value is an orphan.
    ("CREATE TABLE IF NOT EXISTS staff (emp_no INT PRIMARY KEY);\n"
     "ALTER TABLE badges ADD CONSTRAINT fk_badge_staff FOREIGN KEY (emp_no) REFERENCES staff (emp_no)",
     "foreign_key", 4, "4 orphan row(s) for the new foreign key fk_badge_staff"),
])
def test_a_change_the_current_rows_break_is_refused_with_their_count(mariadb, hr, admin_params, text, check, rows,
                                                                     message):
    before = snapshot(mariadb, hr)
    failure = refused(admin_params, hr, text + ";\n", allow_destructive=True)
    assert "refused before applying anything to %s" % hr in failure.msg and message in failure.msg, failure.msg
    found = [c for c in failure.result["data_checks"] if c["rows"]]
    assert [(c["check"], c["rows"], c["when"]) for c in found] == [(check, rows, "now")]
    # The real run refuses the same way, before applying anything (no statement ran).
    failure = refused(admin_params, hr, text + ";\n", check_mode=False, allow_destructive=True)
    assert failure.result["applied"] == [] and snapshot(mariadb, hr) == before


def test_clean_data_passes_the_same_checks(mariadb, hr, admin_params):
    text = ("ALTER TABLE employees MODIFY nickname VARCHAR(30) NOT NULL DEFAULT '';\n"
            "ALTER TABLE salaries ADD CONSTRAINT chk_salary CHECK (salary >= 10000);\n"
            "ALTER TABLE titles ADD UNIQUE KEY uq_emp_title (emp_no, title);\n"
            "ALTER TABLE country MODIFY local_name VARCHAR(45) CHARACTER SET latin1 NOT NULL DEFAULT '';\n")
    mariadb.sql(["UPDATE employees SET nickname = first_name WHERE nickname IS NULL",
                 "UPDATE country SET local_name = 'Nippon' WHERE code = 'JPN'"], database=hr)
    result = schema_apply.run(params(admin_params, hr, text, allow_destructive=["country.local_name"]))
    assert result["changed"] and [c["rows"] for c in result["data_checks"]] == [0, 0, 0, 0]
    assert {d["object"]: d["allowed"] for d in result["lint"]["destructive"]} == {"table country": True}


def test_nothing_is_applied_when_a_later_statement_would_fail(mariadb, hr, admin_params):
    text = ("CREATE TABLE IF NOT EXISTS audit (id INT PRIMARY KEY);\n"
            "ALTER TABLE employees ADD COLUMN IF NOT EXISTS locale CHAR(5) NULL;\n"
            "ALTER TABLE badges ADD CONSTRAINT fk_badge_emp FOREIGN KEY (emp_no) REFERENCES employees (emp_no);\n")
    before = snapshot(mariadb, hr)
    failure = refused(admin_params, hr, text, check_mode=False)
    assert "release.sql #3 (line 3) would fail or change them" in failure.msg
    assert snapshot(mariadb, hr) == before and "audit" not in snapshot(mariadb, hr)["tables"]


def test_a_check_that_depends_on_a_data_statement_runs_on_the_way(mariadb, hr, admin_params):
    text = ("UPDATE employees SET nickname = first_name WHERE nickname IS NULL;\n"
            "ALTER TABLE employees MODIFY nickname VARCHAR(30) NOT NULL;\n")
    plan = schema_apply.run(params(admin_params, hr, text, allow_statements=["data"]), check_mode=True)
    way = [c for c in plan["data_checks"] if c["when"] == "on_the_way"]
    assert [(c["check"], c["statement"]["index"], c["rows"]) for c in way] == [("not_null", 2, None)]
    assert any("checked on the way: table employees, before release.sql #2 (line 2)" in r
               for r in plan["lint"]["report"])
    assert plan["changed"] and any(d["allowed_by"] == "schema_allow_statements" for d in plan["lint"]["destructive"]
                                   if "allowed_by" in d)
    result = schema_apply.run(params(admin_params, hr, text, allow_statements=["data"]))
    assert [(a["index"], a["rows"]) for a in result["applied"]] == [(1, 3), (2, 0)]
    assert result["data_statements"] == [result["applied"][0]] and result["changed"]
    assert [c["rows"] for c in result["data_checks"]] == [0]


def test_an_on_the_way_check_that_fails_stops_before_its_statement_and_says_what_ran(mariadb, hr, admin_params):
    text = ("UPDATE employees SET nickname = NULL WHERE emp_no = 10002;\n"
            "ALTER TABLE employees MODIFY nickname VARCHAR(30) NOT NULL;\n")
    failure = refused(admin_params, hr, text, check_mode=False, allow_statements=["data"])
    assert "stopped before release.sql statement #2 (line 2)" in failure.msg
    assert "4 row(s) with NULL in nickname" in failure.msg and "release.sql #1 (line 1)" in failure.msg
    assert [a["index"] for a in failure.result["applied"]] == [1]
    assert snapshot(mariadb, hr)["tables"]["employees"]["columns"]["nickname"]["nullable"] is True


@pytest.mark.parametrize("text", [
    "ALTER TABLE employees DROP COLUMN nickname;\nALTER TABLE employees ADD COLUMN nickname VARCHAR(30) NULL;",
    "ALTER TABLE employees DROP COLUMN nickname, ADD COLUMN nickname VARCHAR(30) NULL;",
    "ALTER TABLE employees DROP COLUMN nickname;\nALTER TABLE employees ADD COLUMN nickname VARCHAR(40) NULL;",
])
def test_dropping_and_re_adding_a_column_is_destructive_whatever_the_new_definition(mariadb, hr, admin_params,
                                                                                    text):
    failure = refused(admin_params, hr, text)
    assert "drops and re-adds column nickname: its values are lost" in failure.msg
    assert "schema_allow_destructive to the objects, e.g. [employees.nickname]" in failure.msg
    allowed = schema_apply.run(params(admin_params, hr, text, allow_destructive=["employees.nickname"]))
    assert allowed["changed"] and mariadb.sql("SELECT COUNT(nickname) FROM %s.employees" % hr)[0][0] == 0


def test_dropping_and_re_creating_a_table_is_destructive(mariadb, hr, admin_params):
    create = split_sql((SCHEMAS / "personnel.sql").read_text())
    badges = next(s["sql"] for s in create if s["sql"].startswith("CREATE TABLE badges"))
    text = "DROP TABLE IF EXISTS badges;\n%s;\n" % badges
    failure = refused(admin_params, hr, text)
    assert "table badges drops and re-creates the table: its rows are lost" in failure.msg
    plan = schema_apply.run(params(admin_params, hr, text, allow_destructive=["badges"]), check_mode=True)
    assert [(c["object"], c["action"]) for c in plan["plan"]] == [("table badges", "recreate")]


def test_allowing_one_destructive_change_leaves_the_others_refused(mariadb, hr, admin_params):
    text = "ALTER TABLE employees DROP COLUMN nickname;\nALTER TABLE employees DROP COLUMN hire_date;\n"
    failure = refused(admin_params, hr, text, allow_destructive=["employees.nickname"])
    assert "drops column hire_date" in failure.msg and "drops column nickname" not in failure.msg
    found = {tuple(d["key"]): d["allowed"] for d in failure.result["lint"]["destructive"]}
    assert found == {("employees", "nickname"): True, ("employees", "hire_date"): False}
    for allow in (["employees.*"], True, ["`employees`.`nickname`", "employees.hire_date"]):
        assert schema_apply.run(params(admin_params, hr, text, allow_destructive=allow), check_mode=True)["ok"]


@pytest.mark.parametrize("text, plan", [
    ("ALTER TABLE employees RENAME COLUMN nickname TO alias;",
     [("table employees", "alter", ["rename column nickname -> alias"])]),
    ("ALTER TABLE employees CHANGE nickname alias VARCHAR(40) NULL;",
     [("table employees", "alter", ["rename column nickname -> alias",
                                    "modify column alias (type): varchar(30) -> varchar(40)"])]),
    ("ALTER TABLE employees RENAME COLUMN nickname TO NickName;",
     [("table employees", "alter", ["rename column nickname -> NickName"])]),
    ("RENAME TABLE badges TO staff_badges;",
     [("table staff_badges", "rename", ["rename table badges -> staff_badges"])]),
    ("ALTER TABLE badges RENAME TO Badges;", [("table Badges", "rename", ["rename table badges -> Badges"])]),
    ("RENAME TABLE badges TO tmp_b, salaries TO badges, tmp_b TO salaries;",
     # MariaDB renames the generated names of foreign keys (<table>_ibfk_<n>) with their table.
     [("table badges", "rename", ["rename table salaries -> badges", "add foreign key badges_ibfk_1",
                                  "drop foreign key salaries_ibfk_1"]),
      ("table salaries", "rename", ["rename table badges -> salaries"])]),
])
def test_renames_are_planned_as_renames_and_keep_the_data(mariadb, hr, admin_params, text, plan):
    rows = {t: mariadb.sql("SELECT COUNT(*) FROM %s.%s" % (hr, t))[0][0] for t in ("badges", "salaries")}
    check = schema_apply.run(params(admin_params, hr, text), check_mode=True)
    assert [(c["object"], c["action"], c["details"]) for c in check["plan"]] == plan
    assert check["lint"]["destructive"] == []
    real = schema_apply.run(params(admin_params, hr, text))
    assert [(c["object"], c["action"], c["details"]) for c in real["changes"]] == plan
    if "nickname" in text:
        column = text.split(" TO ")[-1].split(" ")[0].rstrip(";") if " TO " in text else "alias"
        assert mariadb.sql("SELECT COUNT(`%s`) FROM %s.employees" % (column, hr))[0][0] == 2
    if "salaries TO badges" in text:
        assert mariadb.sql("SELECT COUNT(*) FROM %s.badges" % hr)[0][0] == rows["salaries"]


# A new foreign key over an indexed integer column: the first look walks its distinct values (one index dive each,
# datachecks.WALK_LIMIT at most) instead of reading every index entry; past the limit, the GROUP BY look runs. Odd
# names (a % in a table name, a space in a column's) go through both, and the counts are exact either way.
FK_TABLES = ("CREATE TABLE carriers (id INT PRIMARY KEY)",
             "CREATE TABLE `100% shipments` (id INT AUTO_INCREMENT PRIMARY KEY, `carrier id` INT NULL, "
             "KEY idx_carrier (`carrier id`))")
FK_DDL = ("ALTER TABLE `100% shipments` ADD CONSTRAINT fk_ship_carrier FOREIGN KEY (`carrier id`) "
          "REFERENCES carriers (id);\n")


MANY = 40  # more values than the walk takes: the GROUP BY look


@pytest.mark.parametrize("distinct, orphan_rows", [(3, 0), (3, 5), (MANY, 0), (MANY, 7)])
def test_a_new_foreign_key_over_few_or_many_values_counts_its_orphans_exactly(mariadb, dbname, admin_params, distinct,
                                                                                orphan_rows, monkeypatch):
    from ansible.module_utils.dbrelease import datachecks

    assert datachecks.WALK_LIMIT < MANY
    walks = []
    real_walk = datachecks._walk_values

    def recorded(cur, walk, limit=datachecks.WALK_LIMIT):
        walks.append(real_walk(cur, walk, limit))
        return walks[-1]

    monkeypatch.setattr(datachecks, "_walk_values", recorded)
    mariadb.sql(list(FK_TABLES) + [
        "INSERT INTO carriers (id) SELECT seq FROM seq_1_to_%d" % distinct,
        # 300 rows per carrier, NULLs (never orphans) and, when asked, rows of carrier 9999, which does not exist.
        "INSERT INTO `100%% shipments` (`carrier id`) SELECT 1 + seq %% %d FROM seq_1_to_%d" % (distinct,
                                                                                             300 * distinct),
        "INSERT INTO `100% shipments` (`carrier id`) SELECT NULL FROM seq_1_to_4"]
        + (["INSERT INTO `100%% shipments` (`carrier id`) SELECT 9999 FROM seq_1_to_%d" % orphan_rows]
           if orphan_rows else []), database=dbname)
    conn = mariadb.root(database=dbname)
    try:
        with conn.cursor() as cur:
            walk = {"first": "SELECT MIN(`carrier id`) FROM `100% shipments`",
                    "next": "SELECT MIN(`carrier id`) FROM `100% shipments` WHERE `carrier id` > "}
            walked = real_walk(cur, walk)
    finally:
        conn.close()
    expected = list(range(1, distinct + 1)) + ([9999] if orphan_rows else [])
    assert walked == (expected if len(expected) <= datachecks.WALK_LIMIT else None)
    if orphan_rows:
        failure = refused(admin_params, dbname, FK_DDL)
        assert "%d orphan row(s) for the new foreign key fk_ship_carrier" % orphan_rows in failure.msg, failure.msg
        assert [(c["check"], c["rows"]) for c in failure.result["data_checks"]] == [("foreign_key", orphan_rows)]
    else:
        result = schema_apply.run(params(admin_params, dbname, FK_DDL), check_mode=True)
        assert [(c["check"], c["rows"]) for c in result["data_checks"]] == [("foreign_key", 0)]
    # The check's first look was that walk (through the release's own statements), with what it found.
    assert walks and walks[0] == walked, walks
