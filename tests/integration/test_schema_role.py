"""The schema role through ansible-playbook against a real MariaDB: check mode, apply, rerun, record, snapshots,
plan file and the production promotion gate."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.dbrelease import schema
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT
from helpers import FINISH, PLAY_HEADER, local_host_vars, recap, run_playbook, write_inventory

VERSION = "v0.0.1-schema-test"
EXAMPLE_DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"

PLAYBOOK = """
- name: Schema phase only
  hosts: databases
  gather_facts: false
  tags: [schema]
""" + PLAY_HEADER + """\
  roles:
    - role: schema
""" + FINISH


def load_pre_release(box, db):
    box.sql("CREATE DATABASE IF NOT EXISTS `%s`" % db)
    box.sql([s["sql"] for s in split_sql(PRE_RELEASE.read_text())], database=db)


def objects(box, db):
    conn = box.root()
    try:
        return schema.snapshot(conn, db, "mariadb")["objects"]
    finally:
        conn.close()


def temp_schemas(box):
    return box.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%dbrelease_plan%'")


@pytest.fixture
def setup(mariadb, dbname, tmp_path):
    load_pre_release(mariadb, dbname)
    playbook = tmp_path / "schema_only.yml"
    playbook.write_text(PLAYBOOK)
    artifacts = tmp_path / "artifacts"

    def inventory(name, db, ddl_files, artifacts_dir=artifacts, **extra):
        hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=db,
                             release_ddl_files=[str(f) for f in ddl_files], release_artifacts_dir=str(artifacts_dir),
                             **extra)
        return write_inventory(tmp_path / ("%s.yml" % name), {"db1": hv})

    return playbook, artifacts, inventory


def assert_no_password(*texts):
    for text in texts:
        assert ADMIN_PASSWORD not in text


def test_role_check_then_apply_then_rerun_reports_no_change(mariadb, dbname, setup):
    playbook, artifacts, inventory = setup
    inv = inventory("staging", dbname, [EXAMPLE_DDL])
    release_dir = artifacts / VERSION
    before = objects(mariadb, dbname)

    check = run_playbook(playbook, inv, check=True, diff=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert objects(mariadb, dbname) == before and temp_schemas(mariadb) == ()
    check_record = json.loads((release_dir / "release.check.json").read_text())
    assert check_record["phases"]["schema"]["status"] == "ok"
    assert {c["object"] for c in check_record["phases"]["schema"]["plan"]} == {
        "table outbox", "table refresh_tokens", "view outbox_pending_summary"}
    assert (release_dir / "schema/check/pre.json").exists() and not (release_dir / "schema/pre.json").exists()
    assert "`aggregate_type` varchar(64) NOT NULL" in check.stdout  # the --diff definitions
    plan_file = artifacts.parent / "plans" / VERSION / ("%s.json" % dbname)
    assert not plan_file.exists()

    first = run_playbook(playbook, inv)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["db1"]["changed"] >= 1
    record = json.loads((release_dir / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "ok" and record["changed"] is True
    assert [a["index"] for a in record["applied"]] == [1, 2, 3]
    pre = json.loads((release_dir / "schema/pre.json").read_text())
    post = json.loads((release_dir / "schema/post.json").read_text())
    assert "outbox" not in pre["objects"]["tables"] and "outbox" in post["objects"]["tables"]
    assert "CREATE TABLE `users`" in (release_dir / "schema/pre.sql").read_text()
    assert "CREATE TABLE `outbox`" in (release_dir / "schema/post.sql").read_text()
    plan = json.loads(plan_file.read_text())
    assert plan["plan_sha256"] == record["plan_sha256"] and plan["files"] == record["files"]

    pre_text = (release_dir / "schema/pre.json").read_text()
    second = run_playbook(playbook, inv)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["db1"]["changed"] == 0, second.stdout
    record = json.loads((release_dir / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "ok" and record["changed"] is False and record["plan"] == []
    assert (release_dir / "schema/pre.json").read_text() == pre_text  # the pre-deploy snapshot is kept
    assert json.loads(plan_file.read_text())["plan_sha256"] == plan["plan_sha256"]  # approved plan kept
    assert temp_schemas(mariadb) == ()
    outputs = [check.stdout, check.stderr, first.stdout, first.stderr, second.stdout, second.stderr]
    outputs += [p.read_text() for p in artifacts.rglob("*") if p.is_file()]
    assert_no_password(*outputs)


def test_production_refuses_a_plan_that_differs_from_staging(mariadb, dbname, setup, tmp_path):
    playbook, artifacts, inventory = setup
    staged = run_playbook(playbook, inventory("staging", dbname, [EXAMPLE_DDL]))
    assert staged.returncode == 0, staged.stdout + staged.stderr

    prod_db = dbname  # production has the same database name on its own server; here: a fresh copy of pre-release
    mariadb.sql("DROP DATABASE `%s`" % prod_db)
    load_pre_release(mariadb, prod_db)
    changed_ddl = tmp_path / "ddls" / EXAMPLE_DDL.name
    changed_ddl.parent.mkdir()
    changed_ddl.write_text(EXAMPLE_DDL.read_text().replace("token_hash  CHAR(64)", "token_hash  CHAR(128)"))

    # Production keeps its own per-host artifacts directory; the plan file sits beside both (artifacts*/../plans).
    prod_artifacts = tmp_path / "artifacts-production"
    refused = run_playbook(playbook, inventory("production", prod_db, [changed_ddl], artifacts_dir=prod_artifacts,
                                               release_environment="production"))
    assert refused.returncode != 0
    assert "differs from the approved one" in refused.stdout
    assert "DDL file create_distributed_tables.sql" in refused.stdout
    record = json.loads((prod_artifacts / VERSION / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "failed" and "differs from the approved one" in record["error"]
    assert record["plan_gate"]["status"] == "differs" and record["applied"] == []
    assert "refresh_tokens" not in objects(mariadb, prod_db)["tables"]

    approved = run_playbook(playbook, inventory("production", prod_db, [EXAMPLE_DDL], artifacts_dir=prod_artifacts,
                                                release_environment="production"))
    assert approved.returncode == 0, approved.stdout + approved.stderr
    record = json.loads((prod_artifacts / VERSION / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "ok" and record["plan_gate"]["status"] == "approved"
    assert "refresh_tokens" in objects(mariadb, prod_db)["tables"]
    assert_no_password(refused.stdout, refused.stderr, approved.stdout, approved.stderr)


def test_syntax_error_stops_the_release_in_the_schema_phase(mariadb, dbname, setup, tmp_path):
    playbook, artifacts, inventory = setup
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE IF NOT EXISTS fine (id INT PRIMARY KEY);\n\nCREAT TABLE oops (id INT);\n")
    result = run_playbook(playbook, inventory("staging", dbname, [EXAMPLE_DDL, bad]))
    assert result.returncode != 0
    assert "bad.sql statement #2 (line 3)" in result.stdout
    record = json.loads((artifacts / VERSION / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "failed" and "bad.sql statement #2 (line 3)" in record["error"]
    assert record["failed_statement"]["file"] == "bad.sql" and record["failed_statement"]["line"] == 3
    assert (artifacts / VERSION / "schema/pre.json").exists()
    assert "outbox" not in objects(mariadb, dbname)["tables"] and temp_schemas(mariadb) == ()
    assert_no_password(result.stdout, result.stderr)


def test_role_takes_a_narrow_destructive_allowance_and_allowed_data_statements_and_the_report_says_so(
        mariadb, dbname, setup, tmp_path):
    playbook, artifacts, inventory = setup
    mariadb.sql(["ALTER TABLE users ADD COLUMN legacy_flag TINYINT NULL, ADD COLUMN legacy_note VARCHAR(20) NULL",
                 "INSERT INTO users (email, name, legacy_note) VALUES ('a@example.test', 'Ann', 'old')"],
                database=dbname)
    ddl = tmp_path / "cleanup.sql"
    ddl.write_text("UPDATE users SET legacy_note = NULL;\nALTER TABLE users DROP COLUMN legacy_flag;\n"
                   "ALTER TABLE users DROP COLUMN legacy_note;\n")
    # Allowing one column leaves the other drop refused, and the data statement needs its own allowance.
    narrow = run_playbook(playbook, inventory("narrow", dbname, [ddl], schema_allow_destructive=["users.legacy_flag"],
                                              schema_allow_statements=["data"]))
    assert narrow.returncode != 0
    record = json.loads((artifacts / VERSION / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "failed" and "drops column legacy_note" in record["error"]
    assert "drops column legacy_flag" not in record["error"] and record["applied"] == []
    no_data = run_playbook(playbook, inventory("no_data", dbname, [ddl], schema_allow_destructive=True))
    assert no_data.returncode != 0 and "schema_allow_statements: [data]" in no_data.stdout
    both = run_playbook(playbook, inventory("both", dbname, [ddl],
                                            schema_allow_destructive=["users.legacy_flag", "users.legacy_note"],
                                            schema_allow_statements=["data"]))
    assert both.returncode == 0, both.stdout + both.stderr
    record = json.loads((artifacts / VERSION / "release.json").read_text())["phases"]["schema"]
    assert record["status"] == "ok" and [(a["index"], a["rows"]) for a in record["applied"]] == [(1, 1), (2, 0), (3, 0)]
    assert record["data_statements"][0]["rows"] == 1
    report = (artifacts / VERSION / "report.md").read_text().splitlines()
    head = "\n".join(report[:8])
    assert "**Restore test: not run** - the backup phase has not run in this release" in head
    assert "This release made" in head and "destructive or irreversible changes, allowed by the inventory" in head
    assert "drops column legacy_flag" in "\n".join(report[8:])  # the section with the manual steps back
    assert "data statement(s) allowed in the schema phase changed 1 row(s)" in head
    assert_no_password(narrow.stdout, no_data.stdout, both.stdout, "\n".join(report))
