"""`release.yml --tags schema`, then `release.yml --tags verify` in a new process: verify compares with the baseline
that the first run recorded before its schema phase. (Tag-limited runs keep this test short; the whole release is
the e2e test's.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import local_host_vars, run_playbook, write_inventory
from test_verify_outbox_stats import add_tokens

VERSION = "v9.9.1-verify-rerun"
DB = "arisgourmet"


@pytest.fixture
def example(private_mariadb):
    # The e2e test's loader: the example app's pre-release schema and seed data.
    from test_release_e2e import load_example, make_repo

    base = Path(short_tmpdir("dbr-vrr-"))
    load_example(private_mariadb)
    hv = local_host_vars(
        private_mariadb, ADMIN_USER, ADMIN_PASSWORD,
        release_db_name=DB,
        release_environment="staging",
        release_ddl_files=[str(ROOT / "examples/app/infra/ddls/create_distributed_tables.sql")],
        release_migration_command="",
        release_backup_dir=str(base / "backups"),
        release_artifacts_dir=str(base / "artifacts"),
        release_git_repo=str(make_repo(base)),
    )
    yield private_mariadb, write_inventory(base / "inventory.yml", {"db1": hv}), base
    shutil.rmtree(base, ignore_errors=True)


def test_tag_limited_verify_rerun_compares_with_the_recorded_baseline(example):
    import json

    box, inventory, base = example
    first = run_playbook("release.yml", inventory, {"release_version": VERSION}, tags="schema")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    record = json.loads((base / "artifacts" / VERSION / "release.json").read_text())
    baseline = record["phases"]["verify_baseline"]["baseline"]
    # Taken before the schema phase: the DDL had not created the outbox yet.
    assert baseline["outbox"]["present"] is False
    assert record["phases"]["schema"]["status"] == "ok"
    assert "outbox" in {row[0] for row in box.sql("SHOW TABLES", DB)}

    # After the schema change, something revokes many refresh tokens; verify in a new process must notice.
    add_tokens(box, DB, 150, revoked=True)
    rerun = run_playbook("release.yml", inventory, {"release_version": VERSION}, tags="verify")
    assert rerun.returncode != 0
    assert "Revoked refresh tokens rose from 0 to 150" in rerun.stdout
    record = json.loads((base / "artifacts" / VERSION / "release.json").read_text())
    assert record["phases"]["verify"]["status"] == "failed"
    assert record["phases"]["verify"]["baseline_source"].startswith("recorded in release.json")
    assert record["phases"]["verify_baseline"]["baseline"] == baseline
