"""Molecule verify (testinfra): what a release leaves behind on the database host, checked independently."""

import json
import os
from pathlib import Path

import pymysql
import yaml

BASE = Path(os.environ["MOLECULE_DEMO_BASE"])
VERSION = "v1.2.0-canonical-schema"
RECORD = BASE / "artifacts" / "molecule-db" / VERSION / "release.json"


def _password():
    return yaml.safe_load((BASE / "secrets.yml").read_text())["release_db_admin_password"]


def _query(sql):
    conn = pymysql.connect(unix_socket=str(BASE / "mariadb/mysqld.sock"), user="db_admin", password=_password(),
                           database="arisgourmet")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
# The one list of phases (vars/release.yml); maintenance is off in this scenario (recorded skipped).
PHASES = [p["name"] for p in yaml.safe_load((PROJECT / "vars/release.yml").read_text())["release_phases"]]


def test_every_phase_of_the_release_is_recorded_ok():
    record = json.loads(RECORD.read_text())
    # The phases, then the finish play's rollback plan; a staging release without a watch window skips the watch.
    statuses = {name: phase["status"] for name, phase in record["phases"].items() if name != "rollback_plan"}
    assert set(statuses) == set(PHASES), statuses
    for phase in PHASES:
        assert statuses[phase] == ("skipped" if phase in ("maintenance", "watch") else "ok"), statuses
    assert record["phases"]["rollback_plan"]["status"] == "ok"


def test_the_canonical_tables_exist_after_the_release():
    tables = {row[0] for row in _query("SHOW TABLES")}
    assert {"outbox", "refresh_tokens", "users", "orders"} <= tables


def test_the_backup_is_on_disk_and_its_checksum_verifies(host):
    backup = json.loads(RECORD.read_text())["phases"]["backup"]
    path = backup["path"]
    assert host.file(path).exists
    result = host.run("cd %s && sha256sum -c %s.sha256", os.path.dirname(path), os.path.basename(path))
    assert result.rc == 0, result.stderr


def test_the_release_is_tagged_in_the_app_repository(host):
    result = host.run("git -C %s tag -l %s --format='%%(objecttype) %%(refname:short)'", str(BASE / "app-repo"),
                      VERSION)
    assert result.stdout.strip() == "tag %s" % VERSION


def test_no_artifact_contains_the_admin_password():
    password = _password()
    for path in (BASE / "artifacts").rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="replace"), path
