"""Pure functions of the migrations: script names, checksums, the plan's refusals, history diffs, the environment."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import migrate as mg


@pytest.mark.parametrize(
    "name, version, key, description",
    [
        ("V1__init.sql", "1", (1,), "init"),
        ("V1.2__add_orders_currency.sql", "1.2", (1, 2), "add orders currency"),
        ("V1_10__x.sql", "1.10", (1, 10), "x"),
        ("V2026_11_01_1__backfill.sql", "2026.11.01.1", (2026, 11, 1, 1), "backfill"),
        ("/srv/app/V3__path_is_ignored.sql", "3", (3,), "path is ignored"),
    ],
)
def test_versioned_script_names_parse_into_sortable_versions(name, version, key, description):
    info = mg.parse_script_name(name)
    assert (info["version"], info["key"], info["description"]) == (version, key, description)


@pytest.mark.parametrize("name", ["v1__lower.sql", "V1_init.sql", "V__x.sql", "V1__x.txt", "R__repeatable.sql",
                                  "V1.a__x.sql"])
def test_names_that_are_not_versioned_migrations_are_not_parsed(name):
    assert mg.parse_script_name(name) is None


def test_scripts_sort_by_numeric_version_not_by_text():
    scripts = mg.collect_scripts({"V10__c.sql": "", "V2__b.sql": "", "V1.5__a.sql": ""})
    assert [s["script"] for s in scripts] == ["V1.5__a.sql", "V2__b.sql", "V10__c.sql"]


def test_a_misnamed_file_and_a_duplicate_version_are_refused_by_name():
    with pytest.raises(mg.MigrationError, match="notes.sql is not a versioned migration"):
        mg.collect_scripts({"V1__a.sql": "", "notes.sql": ""})
    with pytest.raises(mg.MigrationError, match="same version 1.1"):
        mg.collect_scripts({"V1.1__a.sql": "", "V1_1__b.sql": ""})


def test_checksum_ignores_line_endings_but_not_content():
    assert mg.checksum("SELECT 1;\nSELECT 2;\n") == mg.checksum("SELECT 1;\r\nSELECT 2;\r\n")
    assert mg.checksum("SELECT 1;") != mg.checksum("SELECT 2;")


def _history(version, script, content, success=True):
    return {"version": version, "script": script, "checksum": mg.checksum(content), "success": success,
            "installed_on": "2026-11-01 10:00:00"}


SCRIPTS = {"V1__a.sql": "SELECT 1;", "V2__b.sql": "SELECT 2;", "V3__c.sql": "SELECT 3;"}


@pytest.mark.parametrize(
    "history, pending",
    [
        ([], ["V1__a.sql", "V2__b.sql", "V3__c.sql"]),
        ([_history("1", "V1__a.sql", "SELECT 1;")], ["V2__b.sql", "V3__c.sql"]),
        ([_history(v, "V%s" % v, "SELECT %s;" % v) for v in ("1", "2", "3")], []),
    ],
)
def test_plan_lists_what_the_history_lacks_in_version_order(history, pending):
    plan = mg.plan(mg.collect_scripts(SCRIPTS), history)
    assert [s["script"] for s in plan["pending"]] == pending


def test_plan_refuses_an_applied_file_that_was_edited_and_names_it():
    history = [_history("1", "V1__a.sql", "SELECT 1;"), _history("2", "V2__b.sql", "SELECT 'original';")]
    with pytest.raises(mg.MigrationError, match=r"V2__b\.sql \(applied 2026-11-01") as err:
        mg.plan(mg.collect_scripts(SCRIPTS), history)
    assert "V1__a.sql" not in str(err.value)


def test_plan_refuses_to_continue_after_a_failed_migration():
    history = [_history("1", "V1__a.sql", "SELECT 1;", success=False)]
    with pytest.raises(mg.MigrationError, match="V1__a.sql.*failed.*success=0.*migrate_sql_repair"):
        mg.plan(mg.collect_scripts(SCRIPTS), history)


def test_plan_refuses_a_pending_file_older_than_the_newest_applied_unless_allowed():
    history = [_history("1", "V1__a.sql", "SELECT 1;"), _history("3", "V3__c.sql", "SELECT 3;")]
    with pytest.raises(mg.MigrationError, match="V2__b.sql.*older than the newest applied version 3"):
        mg.plan(mg.collect_scripts(SCRIPTS), history)
    plan = mg.plan(mg.collect_scripts(SCRIPTS), history, out_of_order=True)
    assert [s["script"] for s in plan["pending"]] == ["V2__b.sql"]


def test_plan_reports_applied_versions_whose_file_is_gone_without_failing():
    history = [_history("1", "V1__a.sql", "SELECT 1;"), _history("0.9", "V0.9__old.sql", "x")]
    plan = mg.plan(mg.collect_scripts(SCRIPTS), history, out_of_order=True)
    assert [h["script"] for h in plan["missing"]] == ["V0.9__old.sql"]


def test_new_history_entries_are_the_rows_added_by_the_run():
    before = [("m1.js", ("1", "m1.js", "1")), ("m2.js", ("2", "m2.js", "1"))]
    after = before + [("m3.js", ("3", "m3.js", "2"))]
    assert mg.new_history_entries(before, after) == ["m3.js"]
    assert mg.new_history_entries(after, after) == []


def test_pending_files_are_migration_files_missing_from_the_history(tmp_path):
    for name in ("001_a.js", "002_b.js", "003_c.js", ".hidden"):
        (tmp_path / name).write_text("")
    history = [("001_a.js", ()), ("002_b", ())]  # knex lists file names; other tools list stems
    assert mg.pending_files(str(tmp_path), history) == ["003_c.js"]
    assert mg.pending_files(str(tmp_path / "missing"), history) is None


def test_migration_env_carries_the_credentials_and_the_socket_only_when_used():
    params = {"login_user": "db_admin", "login_password": "pw", "login_host": "db1", "login_port": 3307,
              "login_unix_socket": ""}
    env = mg.migration_env(params, "shop", {"NODE_ENV": "production", "DB_NAME": "ignored"},
                           base={"PATH": "/bin", "DB_SOCKET": "/stale.sock"})
    assert env == {"PATH": "/bin", "NODE_ENV": "production", "DB_HOST": "db1", "DB_PORT": "3307",
                   "DB_USER": "db_admin", "DB_PASSWORD": "pw", "DB_NAME": "shop"}
    env = mg.migration_env(dict(params, login_unix_socket="/run/mysqld.sock"), "shop", base={})
    assert env["DB_SOCKET"] == "/run/mysqld.sock"


def test_split_table_accepts_schema_qualified_names():
    assert mg.split_table("knex_migrations", "shop") == ("shop", "knex_migrations")
    assert mg.split_table("meta.`SequelizeMeta`", "shop") == ("meta", "SequelizeMeta")


def test_error_excerpt_keeps_the_error_lines_and_drops_stack_frames():
    node = ("migration failed with error: INSERT INTO outbox ... - Table 'shop.outbox' doesn't exist\n"
            "Error: INSERT INTO outbox ...\n    at Packet.asError (packet.js:930:17)\n"
            "    at Query.execute (command.js:29:26)\n")
    assert mg.error_excerpt(node) == ("migration failed with error: INSERT INTO outbox ... - Table 'shop.outbox' "
                                      "doesn't exist | Error: INSERT INTO outbox ...")
    assert mg.error_excerpt("x" * 400, width=10) == "xxxxxxx..."
