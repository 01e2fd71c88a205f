"""The release, end to end, on a real primary with a replica: an open transaction that read from outbox blocks
ALTER TABLE outbox; the application's queries on outbox never wait on the release; the release stops in the schema
phase and its record and report name the blocker; the replica's lag and the topology are recorded; the backup's
snapshot transaction was over before the first DDL. A release pointed at the replica is refused in preflight."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pymysql
import pytest
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from ddl_load import Queries
from helpers import local_host_vars, run_playbook, write_inventory
from sandbox_db import Sandbox

VERSION = "v15.0.0-ddl"
DB = "arisgourmet"
APP_PASSWORD = "app-" + uuid.uuid4().hex[:8]
RELEASE_DDL = ("CREATE TABLE IF NOT EXISTS release_notes (id INT PRIMARY KEY, note VARCHAR(200));\n"
               "ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace_id VARCHAR(64) NULL;\n")


@pytest.fixture(scope="module")
def pair():
    primary = Sandbox(short_tmpdir())
    primary.start(extra_args=("--plugin-load-add=metadata_lock_info", "--general-log=ON", "--log-output=TABLE"))
    primary.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    primary.sql(["CREATE USER app_rw@'%%' IDENTIFIED BY '%s'" % APP_PASSWORD, "GRANT ALL ON %s.* TO app_rw@'%%'" % DB])
    replica = Sandbox(short_tmpdir(), server_id=2)
    replica.start(extra_args=("--read-only=ON",))
    replica.replicate_from(primary)
    primary.sql("CREATE DATABASE %s" % DB)
    pre = ROOT / "examples/app/db/schema_pre_release.sql"
    ddl = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
    primary.sql([st["sql"] for st in split_sql(pre.read_text()) + split_sql(ddl.read_text())], database=DB)
    primary.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) SELECT 'order', seq, "
                "'order.created', '{}' FROM seq_1_to_50", database=DB)
    replica.wait_caught_up(primary)
    yield primary, replica
    replica.destroy()
    primary.destroy()


def inventory(base, box, replica, **extra):
    ddl = base / "release.sql"
    ddl.write_text(RELEASE_DDL)
    settings = dict(release_db_name=DB, release_ddl_files=[str(ddl)], release_migration_command="",
                    release_backup_dir=str(base / "backups"), release_artifacts_dir=str(base / "artifacts"),
                    release_db_replicas=[{"name": "replica", "host": "127.0.0.1", "port": replica.port}])
    settings.update(extra)
    host_vars = local_host_vars(box, ADMIN_USER, ADMIN_PASSWORD, **settings)
    return write_inventory(base / "inventory.yml", {"db1": host_vars})


def test_an_idle_transaction_on_outbox_stops_the_release_which_names_it_and_the_application_never_waits(pair):
    primary, replica = pair
    base = Path(short_tmpdir("dbr-ddl-"))
    try:
        inv = inventory(base, primary, replica, schema_lock_wait_timeout=2, schema_lock_budget_seconds=4)
        blocker = pymysql.connect(host="127.0.0.1", port=primary.port, user="app_rw", password=APP_PASSWORD,
                                  database=DB, autocommit=True)
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT id, status FROM outbox WHERE id = 7")
            cur.fetchall()
        app_conn = pymysql.connect(host="127.0.0.1", port=primary.port, user="app_rw", password=APP_PASSWORD,
                                   database=DB, autocommit=True)
        with Queries(app_conn, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'") as app:
            proc = run_playbook("release.yml", inv, extra_vars={"release_version": VERSION})
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output[-4000:]
        assert ADMIN_PASSWORD not in output and APP_PASSWORD not in output
        record = json.loads((base / "artifacts" / VERSION / "release.json").read_text())
        phases = record["phases"]
        assert phases["backup"]["status"] == "ok" and phases["schema"]["status"] == "failed"
        who = "session %d app_rw@127.0.0.1:" % blocker.thread_id()
        assert who in phases["schema"]["error"] and "holds SHARED_READ on outbox" in phases["schema"]["error"]
        assert "release.sql #1" in phases["schema"]["error"]  # what took effect before
        # The topology and the replica's lag, in the record.
        assert phases["preflight"]["topology"]["role"] == "primary"
        assert phases["preflight"]["replicas"]["replica"]["lag_seconds"] == 0
        statements = phases["schema"]["execution"]["statements"]
        assert statements[0]["replica_lag"]["replica"]["lag_seconds"] is not None
        assert [b["id"] for b in statements[1]["blockers"]] == [blocker.thread_id()]
        report = (base / "artifacts" / VERSION / "report.md").read_text()
        assert "## DDL on the primary" in report and "Endpoint: primary; replicas: replica 0 s behind" in report
        assert "Sessions in the way of release.sql #2:" in report and who in report
        # The application's queries on outbox never waited on the release (the ALTER never started).
        assert app.errors == [] and app.latencies and app.worst < 1.0, app.worst
        assert "trace_id" not in {r[0] for r in primary.sql("SHOW COLUMNS FROM outbox", database=DB)}
        # The backup's consistent-snapshot session had quit before the schema phase's first DDL.
        log = primary.sql("SELECT event_time, thread_id, command_type, CONVERT(argument USING utf8mb4) "
                          "FROM mysql.general_log ORDER BY event_time")
        snapshots = {r[1] for r in log if "WITH CONSISTENT SNAPSHOT" in r[3]}
        assert snapshots, "the backup phase opened a consistent snapshot"
        first_ddl = min(r[0] for r in log if r[2] == "Query" and "__dbrelease_plan_" in r[3] and
                        r[3].upper().startswith("CREATE DATABASE"))
        for thread in snapshots:
            assert max(r[0] for r in log if r[1] == thread and r[2] == "Quit") < first_ddl, thread
        with blocker.cursor() as cur:
            cur.execute("COMMIT")  # the release never touched the application's session
        blocker.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_release_pointed_at_the_replica_is_refused_in_preflight(pair):
    primary, replica = pair
    base = Path(short_tmpdir("dbr-ddl-"))
    try:
        inv = inventory(base, replica, replica, release_db_replicas=[])
        proc = run_playbook("playbooks/preflight.yml", inv, extra_vars={"release_version": VERSION})
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "is a replica (it replicates from 127.0.0.1:%d" % primary.port in output
        assert "Point the release at the primary" in output and ADMIN_PASSWORD not in output
        record = json.loads((base / "artifacts" / VERSION / "release.json").read_text())
        assert record["phases"]["preflight"]["status"] == "failed"
    finally:
        shutil.rmtree(base, ignore_errors=True)
