"""The restore test proves the data: row checksums per table, missing DEFINER accounts, a table named like its
database, a time budget that samples and says so. Backups are taken by the db_backup module (the real dump client).
"""

from __future__ import annotations

import uuid

import pytest
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ROOT, login_params
from helpers import run_module

SCHEMAS = ROOT / "tests/fixtures/schemas"


@pytest.fixture(scope="module")
def films(mariadb):
    """filmstore (views over functions, triggers, generated columns, FULLTEXT, spatial, unicode) under the test's
    database name, the table `filmstore` named like it; plus objects whose DEFINER account does not exist."""
    dbname = "t_" + uuid.uuid4().hex[:10]
    mariadb.sql("CREATE DATABASE `%s`" % dbname)
    for name in ("filmstore.sql", "filmstore_seed.sql"):
        text = (SCHEMAS / name).read_text().replace("filmstore", dbname)
        mariadb.sql([s["sql"] for s in split_sql(text)], database=dbname)
    mariadb.sql(["CREATE DEFINER='ghost'@'%%' SQL SECURITY DEFINER VIEW ghost_titles AS SELECT %s.film_id, title "
                 "FROM film JOIN %s ON %s.id = film.film_id" % ("film", dbname, dbname),
                 "CREATE DEFINER='ghost'@'%' TRIGGER ghost_touch BEFORE UPDATE ON store FOR EACH ROW "
                 "SET NEW.address_id = NEW.address_id",
                 "CREATE DEFINER='ghost'@'%' PROCEDURE ghost_proc() SELECT 1",
                 "CREATE TABLE no_key (a INT, b VARCHAR(10))",
                 "INSERT INTO no_key VALUES (1, 'x'), (1, 'x'), (NULL, NULL)",
                 "CREATE TABLE many (id INT PRIMARY KEY, v VARCHAR(40), g INT AS (id * 2) VIRTUAL)",
                 "INSERT INTO many (id, v) SELECT seq, MD5(seq) FROM seq_1_to_30000"], database=dbname)
    yield dbname
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % dbname)


@pytest.fixture(scope="module")
def dump(mariadb, films, tmp_path_factory):
    """One backup of `films` for the module (the last test changes the source after it)."""
    backup_dir = tmp_path_factory.mktemp("backups")
    result = run_module("db_backup", dict(login_params(mariadb), database=films, backup_dir=str(backup_dir),
                                          label="v1"))
    assert result.get("changed") is True, result
    return result["path"]


def restore_test(mariadb, db, path, **extra):
    return run_module("backup_restore_check", dict(login_params(mariadb), path=path, database=db, **extra))


def test_a_real_schema_restores_with_equal_checksums_and_names_missing_definers(mariadb, films, dump):
    result = restore_test(mariadb, films, dump, chunk_rows=5000)
    assert not result.get("failed"), result.get("msg")
    assert result["ok"] and result["problems"] == []
    assert result["objects"] == {"tables": 15, "views": 6, "routines": 4, "triggers": 4, "events": 1}
    assert result["views_retargeted"] >= 1  # the dump names the source schema in the ghost-owned view
    assert result["missing_definers"] == [
        {"object": "procedure ghost_proc", "definer": "ghost@%"},
        {"object": "trigger ghost_touch", "definer": "ghost@%"},
        {"object": "view ghost_titles", "definer": "ghost@%"}]
    assert "restored with a DEFINER that does not exist on the server: procedure ghost_proc (ghost@%)" in result["msg"]
    sums = result["checksums"]
    # 30000 rows in chunks of 5000, and the open end after the last one (rows only the copy might hold).
    assert sums["many"]["method"] == "primary key" and sums["many"]["chunks"] == 7 and sums["many"]["checked"] == 7
    assert sums["many"]["rows_checked"] == 30000 and sums[films]["rows_checked"] == 2
    assert sums["no_key"]["method"] == "whole table" and sums["no_key"]["rows_checked"] == 3
    assert result["sampled"] == [] and all(not s["differences"] for s in sums.values())
    assert not [r for r in mariadb.sql("SHOW DATABASES") if "__dbrelease_restore_" in r[0]]


def test_over_the_budget_large_tables_are_sampled_and_said_so(mariadb, films, dump):
    result = restore_test(mariadb, films, dump, chunk_rows=500, checksum_budget_s=0.05)
    assert not result.get("failed"), result.get("msg")
    many = result["checksums"]["many"]
    assert result["sampled"] == ["many"] and many["sampled"] and many["every"] >= 2, result["checksums"]
    assert many["chunks"] == 61 and 1 < many["checked"] < 61
    assert result["checksums"]["language"]["checked"] == 1 and not result["checksums"]["language"]["sampled"]
    assert "rows compared on sampled chunks only (checksum budget 0.05 s): many" in result["msg"]


def test_a_changed_row_with_the_same_count_is_found_by_its_chunk(mariadb, films, dump):
    path = dump  # taken before the changes below: this test runs last
    mariadb.sql(["UPDATE many SET v = 'changed after the dump' WHERE id = 12345",
                 "UPDATE address SET location = POINT(0, 0) WHERE address_id = 2"], database=films)
    exact = restore_test(mariadb, films, path, chunk_rows=5000)
    assert exact["failed"] and exact["check"] == "compare"
    assert "table many holds different rows in the restored copy: rows [10000]..[15000]" in exact["msg"]
    assert "table address holds different rows" in exact["msg"]
    assert "has" not in exact["msg"].split("differs from")[1].split("rows in the restored copy")[0]  # counts agree
    live = restore_test(mariadb, films, path, chunk_rows=5000, exact_counts=False)
    assert not live.get("failed"), live.get("msg")
    assert live["live_differences"]["many"]["contents"]["chunks_differing"] == 1


def test_the_restore_test_runs_when_release_environment_is_unset_and_the_report_says_when_it_does_not(
        mariadb, films, tmp_path):
    import json

    from conftest import ADMIN_PASSWORD, ADMIN_USER
    from helpers import FINISH, PLAY_HEADER, local_host_vars, run_playbook, write_inventory

    playbook = tmp_path / "backup_then_finish.yml"
    playbook.write_text("- name: Backup phase\n  hosts: databases\n  gather_facts: false\n  tags: [backup]\n" +
                        PLAY_HEADER + "  roles:\n    - role: backup\n" + FINISH)

    def backup_phase(name, **extra):
        hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=films, release_version="v9-" + name,
                             release_backup_dir=str(tmp_path / name / "backups"), lock_enabled=False,
                             release_artifacts_dir=str(tmp_path / name / "artifacts"), **extra)
        inventory = write_inventory(tmp_path / name / "hosts.yml", {"db1": hv})
        result = run_playbook(playbook, inventory)
        release_dir = tmp_path / name / "artifacts" / ("v9-" + name)
        return result, json.loads((release_dir / "release.json").read_text()), (release_dir / "report.md").read_text()

    result, record, report = backup_phase("unset")  # no release_environment: the README's default, staging
    assert result.returncode == 0, result.stdout + result.stderr
    test = record["phases"]["backup"]["restore_test"]
    assert test["ran"] and test["ok"] and test["checksums"]["many"]["method"] == "primary key"
    assert [m["object"] for m in test["missing_definers"]] == ["procedure ghost_proc", "trigger ghost_touch",
                                                               "view ghost_titles"]
    assert "Restore test: not run" not in report
    assert "restored 3 object(s) whose DEFINER account does not exist" in "\n".join(report.splitlines()[:6])

    result, record, report = backup_phase("prod", release_environment="production")
    assert result.returncode == 0, result.stdout + result.stderr
    assert record["phases"]["backup"]["restore_test"]["ran"] is False
    head = "\n".join(report.splitlines()[:4])
    assert "**Restore test: not run** - backup_restore_test is false (it is on by default only when " \
           "release_environment is staging; here it is production)." in head
