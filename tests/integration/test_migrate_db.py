"""Migrations against a real MariaDB: the built-in sql driver and the command driver with a real tool (knex)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "library", "sql_migrate.py")
EXAMPLE = os.path.join(ROOT, "examples", "app")
BACKEND = os.path.join(EXAMPLE, "backend")
# Runs a module file as Ansible would, with the project's module_utils importable (AnsiballZ bundles them).
RUNNER = ("import runpy, ansible.module_utils as m; m.__path__.append(%r); "
          "runpy.run_path(%%r, run_name='__main__')" % os.path.join(ROOT, "module_utils"))


def run_module(args, check=False):
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}
    proc = subprocess.run([sys.executable, "-c", RUNNER % MODULE], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def base_args(mariadb, dbname, **extra):
    args = dict(login_user=ADMIN_USER, login_password=ADMIN_PASSWORD, login_unix_socket=mariadb.socket,
                db_name=dbname)
    args.update(extra)
    return args


def load_example(box, dbname):
    """The example app's pre-release schema, seed rows and the release DDL (outbox, refresh_tokens)."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    for rel in ("db/schema_pre_release.sql", "db/seed.sql", "infra/ddls/create_distributed_tables.sql"):
        with open(os.path.join(EXAMPLE, rel)) as handle:
            subprocess.run([client, "--socket", box.socket, "-uroot", dbname], stdin=handle, check=True,
                           capture_output=True)
    # The seed puts orders exactly N days ago; an hour earlier keeps them off the backfill's 7-day boundary, so
    # the expected count below does not depend on the second the test runs in.
    box.sql("UPDATE orders SET created_at = created_at - INTERVAL 1 HOUR", dbname)


def history(box, dbname, table="dbrelease_schema_history"):
    return box.sql("SELECT version, script, checksum, installed_by, execution_time_ms, success FROM `%s`.`%s` "
                   "ORDER BY installed_rank" % (dbname, table))


# -- sql driver -------------------------------------------------------------------------------------------------
def test_sql_driver_applies_the_example_release_once_in_version_order(mariadb, dbname):
    load_example(mariadb, dbname)
    recent = mariadb.sql("SELECT COUNT(*) FROM orders WHERE created_at >= NOW() - INTERVAL 7 DAY", dbname)[0][0]
    sql_dir = os.path.join(EXAMPLE, "db", "migrations")

    dry = run_module(base_args(mariadb, dbname, driver="sql", sql_dir=sql_dir), check=True)
    assert dry["changed"] and dry["pending"] == ["V1__backfill_outbox_order_events.sql",
                                                 "V2__add_orders_outbox_event_id.sql"]
    assert mariadb.sql("SHOW TABLES LIKE 'dbrelease_schema_history'", dbname) == ()

    first = run_module(base_args(mariadb, dbname, driver="sql", sql_dir=sql_dir))
    assert not first.get("failed"), first["msg"]
    assert first["changed"] and first["applied"] == dry["pending"]
    rows = history(mariadb, dbname)
    assert [(r[0], r[1], r[3], r[5]) for r in rows] == [
        ("1", "V1__backfill_outbox_order_events.sql", "db_admin", 1),
        ("2", "V2__add_orders_outbox_event_id.sql", "db_admin", 1)]
    with open(os.path.join(sql_dir, "V1__backfill_outbox_order_events.sql"), encoding="utf-8") as handle:
        assert rows[0][2] == hashlib.sha256(handle.read().encode()).hexdigest()
    assert recent > 0
    assert mariadb.sql("SELECT COUNT(*) FROM outbox WHERE event_type = 'order.created'", dbname)[0][0] == recent
    assert mariadb.sql("SELECT COUNT(*) FROM orders WHERE outbox_event_id IS NOT NULL", dbname)[0][0] == recent

    second = run_module(base_args(mariadb, dbname, driver="sql", sql_dir=sql_dir))
    assert second["changed"] is False and second["applied"] == [] and second["pending"] == []
    assert len(history(mariadb, dbname)) == 2


def test_sql_driver_refuses_an_edited_applied_file_naming_it(mariadb, dbname):
    scripts = {"V1__create_t.sql": "CREATE TABLE t (id INT PRIMARY KEY);",
               "V2__fill_t.sql": "INSERT INTO t VALUES (1);"}
    assert run_module(base_args(mariadb, dbname, driver="sql", scripts=scripts))["changed"]
    edited = dict(scripts, **{"V2__fill_t.sql": "INSERT INTO t VALUES (1), (2);",
                              "V3__more.sql": "INSERT INTO t VALUES (3);"})
    for check in (True, False):
        result = run_module(base_args(mariadb, dbname, driver="sql", scripts=edited), check=check)
        assert result["failed"] and "V2__fill_t.sql (applied" in result["msg"], result["msg"]
        assert "V1__create_t.sql" not in result["msg"]
    assert mariadb.sql("SELECT id FROM t ORDER BY id", dbname) == ((1,),)


def test_sql_driver_records_a_failed_migration_and_refuses_until_repaired(mariadb, dbname):
    scripts = {"V1__ok.sql": "CREATE TABLE a (id INT PRIMARY KEY);",
               "V2__half.sql": "CREATE TABLE b (id INT PRIMARY KEY);\n\nINSERT INTO missing_table VALUES (1);\n",
               "V3__later.sql": "CREATE TABLE c (id INT PRIMARY KEY);"}
    failed = run_module(base_args(mariadb, dbname, driver="sql", scripts=scripts))
    assert failed["failed"]
    assert "V2__half.sql failed at statement #2 (line 3)" in failed["msg"]
    assert "The 1 statement(s) before it in this file took effect" in failed["msg"]
    assert failed["applied"] == ["V1__ok.sql"] and failed["failed_migration"] == "V2__half.sql"
    assert [(r[0], r[5]) for r in history(mariadb, dbname)] == [("1", 1), ("2", 0)]
    assert mariadb.sql("SHOW TABLES LIKE 'c'", dbname) == ()

    again = run_module(base_args(mariadb, dbname, driver="sql", scripts=scripts))
    assert again["failed"] and "V2__half.sql" in again["msg"] and "success=0" in again["msg"]
    assert mariadb.sql("SHOW TABLES LIKE 'c'", dbname) == ()

    # The operator fixes the file (and the half-applied state), then repairs.
    mariadb.sql("DROP TABLE b", dbname)
    fixed = dict(scripts, **{"V2__half.sql": "CREATE TABLE b (id INT PRIMARY KEY);\nINSERT INTO b VALUES (1);\n"})
    repaired = run_module(base_args(mariadb, dbname, driver="sql", scripts=fixed, repair=True))
    assert not repaired.get("failed"), repaired["msg"]
    assert repaired["repaired"] == ["V2__half.sql"] and repaired["applied"] == ["V2__half.sql", "V3__later.sql"]
    assert [(r[0], r[5]) for r in history(mariadb, dbname)] == [("1", 1), ("2", 1), ("3", 1)]


def test_sql_driver_check_mode_lists_pending_and_changes_nothing(mariadb, dbname):
    scripts = {"V1__a.sql": "CREATE TABLE a (id INT);", "V2__b.sql": "CREATE TABLE b (id INT);"}
    run_module(base_args(mariadb, dbname, driver="sql", scripts={"V1__a.sql": scripts["V1__a.sql"]}))
    dry = run_module(base_args(mariadb, dbname, driver="sql", scripts=scripts), check=True)
    assert dry["changed"] and dry["pending"] == ["V2__b.sql"] and dry["history"] == ["1"]
    assert mariadb.sql("SHOW TABLES LIKE 'b'", dbname) == ()


# -- command driver with a stand-in tool (checks what the tool receives) -----------------------------------------
TOOL = textwrap.dedent("""\
    import hashlib, os, sys
    import pymysql
    print("argv:", " ".join(sys.argv))
    print("password ok:", hashlib.sha256(os.environ["DB_PASSWORD"].encode()).hexdigest() == os.environ["EXPECT"])
    print("echo (a careless tool):", os.environ["DB_PASSWORD"])
    print("host/port/name/socket:", os.environ["DB_HOST"], os.environ["DB_PORT"], os.environ["DB_NAME"],
          os.environ.get("DB_SOCKET"))
    conn = pymysql.connect(unix_socket=os.environ["DB_SOCKET"], user=os.environ["DB_USER"],
                           password=os.environ["DB_PASSWORD"], database=os.environ["DB_NAME"], autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tool_history (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64))")
        for name in sys.argv[1:]:
            if name == "FAIL":
                print("migration failed: boom", file=sys.stderr)
                sys.exit(3)
            cur.execute("INSERT INTO tool_history (name) VALUES (%s)", (name,))
    print("Already up to date" if len(sys.argv) == 1 else "Batch run: %d" % (len(sys.argv) - 1))
""")


@pytest.fixture
def tool(tmp_path):
    path = tmp_path / "tool.py"
    path.write_text(TOOL)
    return path


def tool_args(mariadb, dbname, tool, names, **extra):
    return base_args(mariadb, dbname, driver="command", command="%s %s %s" % (sys.executable, tool, " ".join(names)),
                     chdir=str(tool.parent), history_table="tool_history",
                     environment={"EXPECT": hashlib.sha256(ADMIN_PASSWORD.encode()).hexdigest()}, **extra)


def test_command_gets_credentials_in_its_environment_only_and_its_output_is_scrubbed(mariadb, dbname, tool):
    result = run_module(tool_args(mariadb, dbname, tool, ["m1", "m2"]))
    assert not result.get("failed"), result.get("msg")
    assert "password ok: True" in result["stdout"]
    assert "echo (a careless tool): ********" in result["stdout"]
    assert "host/port/name/socket: localhost 3306 %s %s" % (dbname, mariadb.socket) in result["stdout"]
    argv_line = next(line for line in result["stdout"].splitlines() if line.startswith("argv:"))
    assert ADMIN_PASSWORD not in argv_line
    assert ADMIN_PASSWORD not in json.dumps(result) and ADMIN_PASSWORD not in result["log"]
    assert result["changed"] and result["applied"] == ["m1", "m2"]


def test_command_with_nothing_new_in_its_history_reports_no_change(mariadb, dbname, tool):
    assert run_module(tool_args(mariadb, dbname, tool, ["m1"]))["changed"]
    again = run_module(tool_args(mariadb, dbname, tool, []))
    assert again["changed"] is False and again["applied"] == [] and again["rc"] == 0


def test_without_a_history_table_the_nothing_to_migrate_regex_decides(mariadb, dbname, tool):
    args = tool_args(mariadb, dbname, tool, [], nochange_regex="(?i)already up.to.date")
    args.pop("history_table")
    assert run_module(args)["changed"] is False
    args = tool_args(mariadb, dbname, tool, ["m1"], nochange_regex="(?i)already up.to.date")
    args.pop("history_table")
    assert run_module(args)["changed"] is True


def test_a_failing_command_fails_with_its_output_and_what_it_applied_first(mariadb, dbname, tool):
    result = run_module(tool_args(mariadb, dbname, tool, ["m1", "FAIL", "m3"]))
    assert result["failed"] and result["rc"] == 3
    assert "failed (rc=3)" in result["msg"] and "after applying m1" in result["msg"] and "boom" in result["msg"]
    assert result["applied"] == ["m1"] and "boom" in result["log"]


def test_check_mode_runs_nothing_and_lists_the_files_the_history_lacks(mariadb, dbname, tool, tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name in ("m1", "m2"):
        (migrations / name).write_text("")
    run_module(tool_args(mariadb, dbname, tool, ["m1"]))
    dry = run_module(tool_args(mariadb, dbname, tool, ["m2"], migrations_dir=str(migrations)), check=True)
    assert dry["changed"] and dry["pending"] == ["m2"] and "stdout" not in dry
    assert mariadb.sql("SELECT name FROM tool_history", dbname) == (("m1",),)


# -- command driver with the example backend's real tool: knex + mysql2 from npm --------------------------------
@pytest.fixture(scope="module")
def backend():
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: the knex example needs them (apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(BACKEND, "node_modules", "knex")):
        proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", BACKEND], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, "npm ci failed: %s" % proc.stderr[-2000:]
    return BACKEND


def knex_args(mariadb, dbname, **extra):
    return base_args(mariadb, dbname, driver="command", command="npm run migrate:run", chdir=BACKEND,
                     history_table="auto", migrations_dir=os.path.join(BACKEND, "migrations"), **extra)


def test_knex_migrations_run_once_with_history_and_check_mode_lists_them_first(mariadb, dbname, backend):
    load_example(mariadb, dbname)
    recent = mariadb.sql("SELECT COUNT(*) FROM orders WHERE created_at >= NOW() - INTERVAL 7 DAY", dbname)[0][0]
    names = sorted(os.listdir(os.path.join(BACKEND, "migrations")))

    dry = run_module(knex_args(mariadb, dbname), check=True)
    assert dry["changed"] and dry["pending"] == names
    assert mariadb.sql("SHOW TABLES LIKE 'knex_migrations'", dbname) == ()

    first = run_module(knex_args(mariadb, dbname))
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["applied"] == names, first["stdout"]
    assert first["history_table"] == "knex_migrations"  # found by `auto`
    assert "Batch 1 run: 2 migrations" in first["stdout"]
    assert mariadb.sql("SELECT COUNT(*) FROM outbox WHERE event_type = 'order.created'", dbname)[0][0] == recent
    assert mariadb.sql("SELECT COUNT(*) FROM orders WHERE outbox_event_id IS NOT NULL", dbname)[0][0] == recent

    second = run_module(knex_args(mariadb, dbname))
    assert second["changed"] is False and second["applied"] == [] and "Already up to date" in second["stdout"]
    assert ADMIN_PASSWORD not in json.dumps([first, second])


def test_knex_failure_fails_the_module_with_the_tool_error(mariadb, dbname, backend):
    # No example schema here: the backfill's INSERT INTO outbox fails, as it would if the DDL had not run.
    result = run_module(knex_args(mariadb, dbname))
    assert result["failed"] and result["rc"] != 0
    assert "outbox" in result["msg"] and "doesn't exist" in result["msg"]
    assert result["applied"] == []
