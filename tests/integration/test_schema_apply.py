"""schema_apply against a real MariaDB: plan on a temporary copy, lint, apply, promotion gate."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import schema_apply
from ansible.module_utils.dbrelease import schema
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ROOT, login_params

EXAMPLE_DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"


@pytest.fixture
def appdb(mariadb, dbname):
    """The example application's pre-release schema (tables, view, procedure, trigger) with a few rows."""
    mariadb.sql([s["sql"] for s in split_sql(PRE_RELEASE.read_text())], database=dbname)
    mariadb.sql([
        "INSERT INTO users (id, email, name) VALUES (1, 'a@example.test', 'Ann'), (2, 'b@example.test', 'Bob')",
        "INSERT INTO products (id, sku, title, price_cents) VALUES (1, 'S1', 'Tea', 100), (2, 'S2', 'Tea', 200),"
        " (3, 'S3', 'Tea', 300), (4, 'S4', 'Jam', 400), (5, 'S5', 'Jam', 500), (6, 'S6', 'Oil', 600)",
    ], database=dbname)
    return dbname


def params(admin_params, db, files, **extra):
    p = dict(admin_params, db=db, ddl_files=[str(f) for f in files], ddl_names=[], ddl_contents=[],
             environment="staging", allow_destructive=False, allow_blocking_alter=False,
             large_table_bytes=1 << 30, require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced")
    p.update(extra)
    return p


def ddl(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def objects(mariadb, db):
    conn = mariadb.root()
    try:
        return schema.snapshot(conn, db, "mariadb")["objects"]
    finally:
        conn.close()


def temp_schemas(mariadb):
    return [r[0] for r in mariadb.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                                      "WHERE SCHEMA_NAME LIKE '%\\_\\_dbrelease\\_plan\\_%'")]


def test_first_apply_changes_the_schema_and_a_second_run_reports_no_change(mariadb, appdb, admin_params):
    p = params(admin_params, appdb, [EXAMPLE_DDL])
    first = schema_apply.run(p)
    assert first["changed"] is True
    assert {c["object"] for c in first["changes"]} == {
        "table outbox", "table refresh_tokens", "view outbox_pending_summary"}
    assert [a["index"] for a in first["applied"]] == [1, 2, 3]
    assert "outbox" in objects(mariadb, appdb)["tables"]

    second = schema_apply.run(p)
    assert second["changed"] is False
    assert second["plan"] == [] and second["changes"] == []
    assert second["pre_sha256"] == second["post_sha256"] == first["post_sha256"]
    assert temp_schemas(mariadb) == []


def test_check_mode_plans_on_a_copy_and_changes_nothing(mariadb, appdb, admin_params):
    before = objects(mariadb, appdb)
    result = schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL]), check_mode=True)
    assert result["changed"] is True
    assert objects(mariadb, appdb) == before
    assert temp_schemas(mariadb) == []
    assert result["temp_schema"].startswith(appdb + "__dbrelease_plan_")
    plan = {c["object"]: c for c in result["plan"]}
    assert set(plan) == {"table outbox", "table refresh_tokens", "view outbox_pending_summary"}
    assert plan["table outbox"]["action"] == "create"
    assert plan["table refresh_tokens"]["statements"][0]["line"] == 22
    assert plan["view outbox_pending_summary"]["statements"][0]["index"] == 3
    assert result["applied"] == [] and "post_snapshot" not in result


def test_check_mode_plan_names_alters_and_diff_shows_before_and_after(mariadb, appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "alter.sql", "ALTER TABLE users ADD COLUMN IF NOT EXISTS locale VARCHAR(8) NULL;\n"
                                   "CREATE OR REPLACE VIEW order_totals AS SELECT user_id, COUNT(*) AS orders "
                                   "FROM orders GROUP BY user_id;\n")
    result = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True, diff_mode=True)
    plan = {c["object"]: c for c in result["plan"]}
    assert plan["table users"]["action"] == "alter"
    assert plan["table users"]["details"] == ["add column locale varchar(8)"]
    assert plan["view order_totals"]["action"] == "alter"
    assert "`locale`" not in result["diff"]["before"] and "`locale` varchar(8)" in result["diff"]["after"]
    assert "total_cents" in result["diff"]["before"] and "total_cents" not in result["diff"]["after"]
    alters = result["lint"]["alters"]
    assert [(a["table"], a["algorithm"], a["blocking"]) for a in alters] == [("users", "instant", False)]
    assert "locale" not in objects(mariadb, appdb)["tables"]["users"]["columns"]


def test_routines_triggers_and_foreign_keys_are_copied_so_unchanged_ones_are_not_in_the_plan(
        mariadb, appdb, admin_params, tmp_path):
    mariadb.sql("CREATE EVENT IF NOT EXISTS purge_nothing ON SCHEDULE EVERY 1 DAY ENABLE DO SELECT 1",
                database=appdb)
    f = ddl(tmp_path, "proc.sql", "DELIMITER //\nCREATE OR REPLACE PROCEDURE user_order_count("
                                  "IN p_user BIGINT UNSIGNED, OUT p_count INT)\nBEGIN\n"
                                  "  SELECT COUNT(*) INTO p_count FROM orders WHERE user_id = p_user AND status <> 'x';"
                                  "\nEND //\nDELIMITER ;\n")
    result = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
    # The procedure was created by root; the release replaces it as db_admin: its definer changes too.
    assert [(c["object"], c["action"], c["details"]) for c in result["plan"]] == [
        ("routine PROCEDURE user_order_count", "alter", ["body changed", "definer changed"])]
    assert result["plan_copied"]["events"] == 1 and result["plan_copied"]["triggers"] == 1
    assert result["plan_copied"]["routines"] == 1
    assert objects(mariadb, appdb)["events"]["purge_nothing"]["status"] == "ENABLED"
    assert temp_schemas(mariadb) == []


def test_qualified_names_in_the_ddl_are_planned_on_the_copy_not_the_target(mariadb, appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "qualified.sql", "CREATE TABLE IF NOT EXISTS `%s`.audit (id INT PRIMARY KEY);\n"
                                       "CREATE TABLE IF NOT EXISTS %s.audit2 (id INT PRIMARY KEY);\n" % (appdb, appdb))
    result = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
    assert {c["object"] for c in result["plan"]} == {"table audit", "table audit2"}
    assert "audit" not in objects(mariadb, appdb)["tables"]


def test_syntax_error_names_file_statement_and_line_and_applies_nothing(mariadb, appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "broken.sql", "-- release DDL\nCREATE TABLE IF NOT EXISTS t_ok (id INT PRIMARY KEY);\n\n"
                                    "ALTER TABLE users ADD COLUMN IF NOT EXISTS nick VARCHAR(20);\n"
                                    "/* the bad one */\nCREATE TABLE IF NOT EXISTS t_bad (id INT PRIMARY KEY,,);\n")
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [f]))
    assert "broken.sql statement #3 (line 6)" in err.value.msg
    assert "nothing was applied" in err.value.msg
    assert err.value.result["failed_statement"]["line"] == 6
    assert "t_ok" not in objects(mariadb, appdb)["tables"]
    assert temp_schemas(mariadb) == []


def test_statement_failing_on_the_target_names_what_already_took_effect(mariadb, appdb, admin_params, tmp_path):
    # The copy has no rows, so only the real rows break the CREATE ... SELECT (ids * 1000 do not fit a TINYINT):
    # rows a query copies are not checked before, and DDL is not transactional.
    f = ddl(tmp_path, "partial.sql", "CREATE TABLE IF NOT EXISTS audit_log (id INT PRIMARY KEY);\n"
                                     "CREATE TABLE IF NOT EXISTS user_codes (n TINYINT) "
                                     "SELECT id * 1000 AS n FROM users;\n"
                                     "CREATE TABLE IF NOT EXISTS never_made (id INT PRIMARY KEY);\n")
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [f]))
    msg = err.value.msg
    assert "partial.sql statement #2 (line 2) failed" in msg
    assert "partial.sql #1 (line 1)" in msg and "table audit_log (create)" in msg
    res = err.value.result
    assert [a["index"] for a in res["applied"]] == [1]
    assert res["failed_statement"]["index"] == 2 and res["changed"] is True
    tables = objects(mariadb, appdb)["tables"]
    assert "audit_log" in tables and "never_made" not in tables
    assert temp_schemas(mariadb) == []


SLOW_DDL = ("CREATE TABLE IF NOT EXISTS audit_log (id INT PRIMARY KEY);\n"
            "CREATE TABLE IF NOT EXISTS audit_seen (id INT PRIMARY KEY);\n"
            "CREATE TABLE IF NOT EXISTS release_audit AS SELECT SLEEP(2) AS slept;\n"
            "CREATE TABLE IF NOT EXISTS never_made (id INT PRIMARY KEY);\n")


def run_in_background(p):
    """schema_apply.run(p) in a thread; returns (thread, outcome dict with `error` once it has ended)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = schema_apply.run(p)
        except schema_apply.SchemaFailure as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_slow_statement(box, db, thread):
    """The processlist id of the SLEEP statement running on `db` itself (not on the plan's copy)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and thread.is_alive():
        rows = box.sql("SELECT id FROM information_schema.processlist WHERE db = '%s' AND info LIKE '%%SLEEP(2)%%'"
                       " AND info NOT LIKE '%%processlist%%'" % db)
        if rows:
            return rows[0][0]
        time.sleep(0.02)
    raise AssertionError("the slow statement never ran on %s" % db)


def test_a_connection_lost_mid_statement_is_said_and_the_schema_is_read_again_after_reconnecting(
        mariadb, appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "slow.sql", SLOW_DDL)
    thread, outcome = run_in_background(params(admin_params, appdb, [f]))
    mariadb.sql("KILL CONNECTION %d" % wait_for_slow_statement(mariadb, appdb, thread))
    thread.join(60)
    msg, res = outcome["error"].msg, outcome["error"].result
    assert "slow.sql statement #3 (line 3) failed: the connection to the server was lost while it ran" in msg
    assert "slow.sql #1 (line 1) CREATE TABLE IF NOT EXISTS audit_log" in msg and "slow.sql #2 (line 2)" in msg
    assert "(read after reconnecting): table audit_log (create), table audit_seen (create)" in msg
    assert [a["index"] for a in res["applied"]] == [1, 2]
    assert res["failed_statement"]["index"] == 3 and res["failed_statement"]["connection_lost"] is True
    assert "post_sha256" in res and res["changed"] is True
    tables = objects(mariadb, appdb)["tables"]
    assert {"audit_log", "audit_seen"} <= set(tables) and "never_made" not in tables


def test_the_server_dying_mid_statement_names_the_statement_and_what_completed_before_it(private_mariadb, tmp_path):
    private_mariadb.sql("CREATE DATABASE shop")
    p = params(login_params(private_mariadb), "shop", [ddl(tmp_path, "slow.sql", SLOW_DDL)], connect_timeout=2)
    thread, outcome = run_in_background(p)
    wait_for_slow_statement(private_mariadb, "shop", thread)
    os.kill(private_mariadb.pid(), signal.SIGKILL)
    thread.join(60)
    msg, res = outcome["error"].msg, outcome["error"].result
    assert "slow.sql statement #3 (line 3) failed: the connection to the server was lost while it ran" in msg
    assert "could not be reached again (cannot connect as db_admin@socket %s" % private_mariadb.socket in msg
    assert "took effect (DDL is not transactional): slow.sql #1 (line 1) CREATE TABLE IF NOT EXISTS audit_log" in msg
    assert "slow.sql #2 (line 2) CREATE TABLE IF NOT EXISTS audit_seen" in msg and "never_made" not in msg
    assert "Whether statement #3 itself took effect is unknown" in msg
    assert [a["index"] for a in res["applied"]] == [1, 2] and res["failed_statement"]["index"] == 3
    assert res["failed_statement"]["connection_lost"] is True and p["login_password"] not in msg


@pytest.mark.parametrize("statement, reason", [
    ("ALTER TABLE products DROP COLUMN title", "drops column title"),
    ("ALTER TABLE products MODIFY title VARCHAR(100) NOT NULL", "narrows column title"),
    ("ALTER TABLE products MODIFY price_cents SMALLINT UNSIGNED NOT NULL", "narrows column price_cents"),
    ("DROP TABLE IF EXISTS order_items", "drops the table"),
])
def test_destructive_change_is_refused_unless_allowed(mariadb, appdb, admin_params, tmp_path, statement, reason):
    f = ddl(tmp_path, "destructive.sql", statement + ";\n")
    before = objects(mariadb, appdb)
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [f]))
    assert "refused before applying anything" in err.value.msg and reason in err.value.msg
    assert "schema_allow_destructive" in err.value.msg
    assert objects(mariadb, appdb) == before
    allowed = schema_apply.run(params(admin_params, appdb, [f], allow_destructive=True))
    assert allowed["changed"] is True and allowed["lint"]["destructive"]


def test_widening_a_column_is_not_destructive(appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "widen.sql", "ALTER TABLE products MODIFY title VARCHAR(500) NOT NULL;\n")
    result = schema_apply.run(params(admin_params, appdb, [f]))
    assert result["changed"] is True and result["lint"]["destructive"] == []


def test_new_unique_index_over_duplicates_is_found_with_the_count(mariadb, appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "unique.sql", "ALTER TABLE products ADD UNIQUE KEY IF NOT EXISTS uq_title (title);\n")
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
    dup = err.value.result["lint"]["duplicates"]
    assert dup == [{"object": "table products", "index": "uq_title", "columns": ["title"], "duplicate_values": 2,
                    "rows_involved": 5, "statements": dup[0]["statements"]}]
    assert "2 value(s) already duplicated over 5 rows" in err.value.msg
    mariadb.sql(["DELETE FROM products WHERE id IN (2, 3, 5)"], database=appdb)
    assert schema_apply.run(params(admin_params, appdb, [f]))["changed"] is True


def test_blocking_alter_of_a_large_table_is_refused_in_production_only(mariadb, appdb, admin_params, tmp_path):
    # INT -> BIGINT copies the table on MariaDB/MySQL (not INSTANT/INPLACE): found by trying on the copy.
    f = ddl(tmp_path, "widen_int.sql", "ALTER TABLE products MODIFY price_cents BIGINT UNSIGNED NOT NULL;\n")
    prod = params(admin_params, appdb, [f], environment="production", large_table_bytes=1)
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(prod)
    assert "would copy table products" in err.value.msg and "schema_allow_blocking_alter" in err.value.msg
    alter = err.value.result["lint"]["alters"][0]
    assert alter["algorithm"] == "copy" and alter["blocking"] and alter["table_bytes"] > 1
    assert alter["source"] == "tried on the temporary copy"
    # Staging only reports it; production with the allowance applies it.
    staged = schema_apply.run(params(admin_params, appdb, [f], large_table_bytes=1), check_mode=True)
    assert staged["lint"]["alters"][0]["blocking"] and any("blocks writes" in r for r in staged["lint"]["report"])
    assert schema_apply.run(dict(prod, allow_blocking_alter=True))["changed"] is True


def test_online_index_build_is_not_blocking(appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "index.sql", "CREATE INDEX IF NOT EXISTS idx_products_title ON products (title);\n")
    result = schema_apply.run(params(admin_params, appdb, [f], environment="production", large_table_bytes=1),
                              check_mode=True)
    alter = result["lint"]["alters"][0]
    assert (alter["algorithm"], alter["lock"], alter["blocking"]) == ("inplace", "none", False)


def test_promotion_gate_refuses_a_changed_ddl_and_says_what_differs(mariadb, appdb, admin_params, tmp_path):
    staging = schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL]))
    approved = {"plan_sha256": staging["plan_sha256"], "files": staging["files"], "changes": staging["plan"]}

    prod_db = appdb + "_prod"
    mariadb.sql("CREATE DATABASE `%s`" % prod_db)
    try:
        mariadb.sql([s["sql"] for s in split_sql(PRE_RELEASE.read_text())], database=prod_db)
        gate = dict(environment="production", require_approved_plan=True, approved_plan=approved)
        same = schema_apply.run(params(admin_params, prod_db, [EXAMPLE_DDL], **gate), check_mode=True)
        assert same["plan_gate"]["status"] == "approved" and same["plan_sha256"] == staging["plan_sha256"]

        changed = ddl(tmp_path, EXAMPLE_DDL.name, EXAMPLE_DDL.read_text().replace(
            "last_error    VARCHAR(1024)", "last_error    VARCHAR(2048)"))
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(admin_params, prod_db, [changed], **gate))
        msg = err.value.msg
        assert "differs from the approved one" in msg and "schema_plan_override" in msg
        assert "DDL file create_distributed_tables.sql: approved sha256 %s" % staging["files"][EXAMPLE_DDL.name] in msg
        assert "outbox" not in objects(mariadb, prod_db)["tables"]

        with pytest.raises(schema_apply.SchemaFailure) as missing:
            schema_apply.run(params(admin_params, prod_db, [EXAMPLE_DDL], **dict(gate, approved_plan=None)))
        assert "no approved plan" in missing.value.msg

        forced = schema_apply.run(params(admin_params, prod_db, [changed], **gate, plan_override=True))
        assert forced["changed"] is True and forced["plan_gate"]["status"] == "overridden"
        assert forced["warnings"] and "overridden" in forced["warnings"][0]
    finally:
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % prod_db)


def test_promotion_gate_names_schema_drift(mariadb, appdb, admin_params):
    staging = schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL]), check_mode=True)
    approved = {"plan_sha256": staging["plan_sha256"], "files": staging["files"], "changes": staging["plan"]}
    # Drift: someone created outbox by hand (without one of its indexes) after staging approved the plan.
    create_outbox = split_sql(EXAMPLE_DDL.read_text())[0]["sql"].replace(
        ",\n  KEY idx_outbox_aggregate (aggregate_type, aggregate_id)", "")
    assert "idx_outbox_aggregate" not in create_outbox
    mariadb.sql(create_outbox, database=appdb)
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL], environment="production",
                                require_approved_plan=True, approved_plan=approved), check_mode=True)
    assert "table outbox: create in the approved plan, not planned now" in err.value.msg


def test_temporary_schema_is_dropped_when_the_plan_fails_unexpectedly(mariadb, appdb, admin_params, monkeypatch):
    real_snapshot = schema.snapshot
    calls = []

    def failing_snapshot(conn, db, flavor):
        calls.append(db)
        if "__dbrelease_plan_" in db:
            assert temp_schemas(mariadb), "the copy exists while the plan runs"
            raise RuntimeError("forced failure while planning")
        return real_snapshot(conn, db, flavor)

    monkeypatch.setattr(schema, "snapshot", failing_snapshot)
    with pytest.raises(RuntimeError, match="forced failure"):
        schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL]), check_mode=True)
    assert any("__dbrelease_plan_" in c for c in calls)
    assert temp_schemas(mariadb) == []


def test_ddl_given_as_text_is_checksummed_like_the_file(appdb, admin_params):
    text = EXAMPLE_DDL.read_text()
    by_text = schema_apply.run(params(admin_params, appdb, [], ddl_names=[EXAMPLE_DDL.name], ddl_contents=[text]),
                               check_mode=True)
    by_file = schema_apply.run(params(admin_params, appdb, [EXAMPLE_DDL]), check_mode=True)
    assert by_text["files"] == by_file["files"] and by_text["plan_sha256"] == by_file["plan_sha256"]


def test_non_idempotent_statements_are_reported(appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "plain.sql", "CREATE TABLE audit (id INT PRIMARY KEY);\n"
                                   "ALTER TABLE users ADD COLUMN nick VARCHAR(20);\n"
                                   "CREATE INDEX idx_users_name ON users (name);\n")
    result = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
    findings = [(f["index"], f["finding"]) for f in result["lint"]["idempotence"]]
    assert [i for i, _ in findings] == [1, 2, 3]
    assert "without IF NOT EXISTS" in findings[0][1] and "nick" in findings[1][1]


@pytest.mark.parametrize("text", [
    EXAMPLE_DDL.read_text(),
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS locale VARCHAR(8) NULL;\n",
    "CREATE OR REPLACE VIEW order_totals AS SELECT user_id, COUNT(*) AS orders FROM orders GROUP BY user_id;\n",
    "ALTER TABLE orders DROP FOREIGN KEY IF EXISTS fk_orders_user;\nDROP TABLE IF EXISTS order_items;\n",
])
def test_a_copy_of_the_referenced_objects_plans_the_same_as_a_full_copy(appdb, admin_params, tmp_path, text):
    f = ddl(tmp_path, "release.sql", text)
    scoped = schema_apply.run(params(admin_params, appdb, [f], allow_destructive=True), check_mode=True)
    full = schema_apply.run(params(admin_params, appdb, [f], allow_destructive=True, plan_copy="full"),
                            check_mode=True)
    assert scoped["plan"] == full["plan"] and scoped["plan_sha256"] == full["plan_sha256"]
    assert full["plan_copied"]["tables"] == 4 and scoped["plan_copied"]["tables"] <= 4


def test_a_change_to_a_referenced_key_fails_on_the_copy_as_it_would_for_real(mariadb, appdb, admin_params, tmp_path):
    # orders.user_id references users.id: the copy must hold orders too, or this would wrongly pass.
    f = ddl(tmp_path, "parent.sql", "ALTER TABLE users MODIFY id INT NOT NULL AUTO_INCREMENT;\n")
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(admin_params, appdb, [f], allow_destructive=True), check_mode=True)
    assert "failed on a copy of the schema" in err.value.msg and "parent.sql statement #1 (line 1)" in err.value.msg
    assert "orders" in str(err.value.msg) or "foreign key" in err.value.msg.lower()
    assert temp_schemas(mariadb) == []


@pytest.mark.parametrize("statement, message", [
    ("CREATE TABLE IF NOT EXISTS `{other}`.t (id INT PRIMARY KEY)", "names schema {other}"),
    ("CREATE TABLE IF NOT EXISTS {other}.t (id INT PRIMARY KEY)", "names schema {other}"),
    ("USE {other}", "names schema {other}"),
    ("DROP DATABASE IF EXISTS {other}", "acts on a whole database"),
    ("CREATE OR REPLACE VIEW `{other}`.v AS SELECT 1 AS one", "names schema {other}"),
    ("CREATE TRIGGER IF NOT EXISTS tr BEFORE INSERT ON {other}.t FOR EACH ROW SET @a = 1", "names schema {other}"),
])
def test_statements_reaching_outside_the_target_schema_are_refused_before_anything_runs(
        mariadb, appdb, admin_params, tmp_path, statement, message):
    other = appdb + "_other"
    mariadb.sql("CREATE DATABASE `%s`" % other)
    try:
        f = ddl(tmp_path, "outside.sql", "CREATE TABLE IF NOT EXISTS fine (id INT PRIMARY KEY);\n" +
                statement.format(other=other) + ";\n")
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
        assert "outside.sql statement #2 (line 2)" in err.value.msg and message.format(other=other) in err.value.msg
        count = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s'" % other
        assert mariadb.sql(count)[0][0] == 0
        assert mariadb.sql("SHOW DATABASES LIKE '%s'" % other)
        assert "fine" not in objects(mariadb, appdb)["tables"]
    finally:
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % other)


def test_the_target_schema_name_inside_string_literals_is_left_alone(appdb, admin_params, tmp_path):
    f = ddl(tmp_path, "literal.sql", "CREATE OR REPLACE VIEW hosts AS SELECT '%s.example.test' AS host, "
                                     "'`%s`.x' AS q;\n" % (appdb, appdb))
    plan = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True, diff_mode=True)
    assert "'%s.example.test'" % appdb in plan["diff"]["after"]
    applied = schema_apply.run(params(admin_params, appdb, [f]))
    assert applied["plan_sha256"] == plan["plan_sha256"] and applied["changed"] is True


def test_an_account_without_super_plans_with_grants_on_the_database_and_its_plan_schemas(
        mariadb, appdb, admin_params, tmp_path):
    # The view, procedure and trigger have DEFINER=root@localhost; the copy falls back to the connected user.
    user, password = "schema_only_" + appdb[-6:], "Pw-" + appdb
    escaped = appdb.replace("_", "\\_")
    # CREATE USER and the GRANT OPTION on the plan schemas: the plan runs the DDL as a temporary account of its own.
    mariadb.sql(["CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'" % (user, password),
                 "GRANT ALL ON `%s`.* TO '%s'@'localhost'" % (escaped, user),
                 "GRANT ALL ON `%s\\_\\_dbrelease\\_plan\\_%%`.* TO '%s'@'localhost' WITH GRANT OPTION" % (
                     escaped, user),
                 "GRANT CREATE USER ON *.* TO '%s'@'localhost'" % user])
    try:
        limited = dict(admin_params, login_user=user, login_password=password)
        f = ddl(tmp_path, "view.sql", "CREATE OR REPLACE VIEW order_totals AS SELECT user_id FROM orders;\n")
        # MariaDB hides a routine's body from accounts that are not its definer: said, not guessed.
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(limited, appdb, [f], plan_copy="full"), check_mode=True)
        assert "hides the definition of routine %s.PROCEDURE user_order_count" % appdb in err.value.msg
        assert "%s@socket" % user in err.value.msg and password not in err.value.msg
        mariadb.sql("GRANT SELECT ON mysql.proc TO '%s'@'localhost'" % user)
        # Binary logging is on: without SUPER, creating the trigger in the copy is refused, and said so.
        with pytest.raises(schema_apply.SchemaFailure) as err:
            schema_apply.run(params(limited, appdb, [f], plan_copy="full"), check_mode=True)
        assert "cannot copy trigger orders_status_default into the temporary schema: (1419)" in err.value.msg
        assert "log_bin_trust_function_creators=1" in err.value.msg and temp_schemas(mariadb) == []
        mariadb.sql("SET GLOBAL log_bin_trust_function_creators = 1")
        result = schema_apply.run(params(limited, appdb, [f], plan_copy="full"), check_mode=True)
        assert [(c["object"], c["action"]) for c in result["plan"]] == [("view order_totals", "alter")]
        assert result["plan_copied"]["triggers"] == 1 and temp_schemas(mariadb) == []
    finally:
        mariadb.sql(["SET GLOBAL log_bin_trust_function_creators = 0", "DROP USER IF EXISTS '%s'@'localhost'" % user])


def test_a_view_and_a_trigger_may_read_and_write_another_schema_in_their_bodies(mariadb, appdb, admin_params,
                                                                                  tmp_path):
    other = appdb + "_audit"
    mariadb.sql(["CREATE DATABASE `%s`" % other, "CREATE TABLE `%s`.log (what VARCHAR(40))" % other,
                 "INSERT INTO `%s`.log VALUES ('kept')" % other])
    try:
        f = ddl(tmp_path, "cross.sql", "CREATE OR REPLACE VIEW audit_log AS SELECT what FROM `%s`.log;\n"
                                       "CREATE TRIGGER IF NOT EXISTS users_audit AFTER INSERT ON users FOR EACH ROW "
                                       "INSERT INTO `%s`.log VALUES ('user');\n" % (other, other))
        plan = schema_apply.run(params(admin_params, appdb, [f]), check_mode=True)
        assert [(c["object"], c["action"]) for c in plan["plan"]] == [
            ("view audit_log", "create"), ("trigger users_audit", "create")]
        result = schema_apply.run(params(admin_params, appdb, [f]))
        assert [(c["object"], c["action"]) for c in result["changes"]] == [
            ("view audit_log", "create"), ("trigger users_audit", "create")]
        assert mariadb.sql("SELECT what FROM `%s`.audit_log" % appdb) == (("kept",),)
    finally:
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % other)
