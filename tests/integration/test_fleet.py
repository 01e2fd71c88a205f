"""fleet.yml against three real MariaDB servers: the canary first, a health gate, then the others in a batch."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import local_host_vars, run_playbook
from sandbox_db import Sandbox

VERSION = "v9.9.1-fleet"
DB = "arisgourmet"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
HOSTS = ("db1", "db2", "db3")


def load_example(box: Sandbox):
    box.sql("CREATE DATABASE IF NOT EXISTS `%s`" % DB)
    client = shutil.which("mariadb") or shutil.which("mysql")
    for name in ("schema_pre_release.sql", "seed.sql"):
        with open(ROOT / "examples/app/db" / name, "rb") as handle:
            subprocess.run([client, "--no-defaults", "-uroot", "-S", box.socket, DB], stdin=handle, check=True)


def make_outbox_unhealthy(box: Sandbox):
    """The outbox exists already (as the DDL would create it) with an event pending for an hour: a stalled relay."""
    create_outbox = DDL.read_text().split(";")[0].split("\n\n", 1)[-1]
    assert "CREATE TABLE IF NOT EXISTS outbox" in create_outbox
    box.sql([create_outbox,
             "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at, available_at) "
             "VALUES ('order', '1', 'order.created', '{}', NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR)"],
            database=DB)


class Fleet:
    def __init__(self, base: Path, boxes: dict):
        self.base, self.boxes = base, boxes
        hosts = {}
        for name, box in boxes.items():
            hosts[name] = local_host_vars(
                box, ADMIN_USER, ADMIN_PASSWORD,
                release_db_name=DB,
                release_environment="staging",
                release_ddl_files=[str(DDL)],
                release_migration_command="",
                release_backup_dir=str(base / "backups" / name),
                release_artifacts_dir=str(base / "artifacts" / name),
                release_git_repo="",
            )
        inventory = {"all": {
            "vars": {"fleet_artifacts_dir": str(base / "artifacts" / "fleet"), "fleet_batch_size": 2},
            "children": {
                "databases": {"hosts": hosts},
                "canary": {"hosts": {"db1": {}}},
            }}}
        self.inventory = base / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def run(self, **kwargs):
        return run_playbook("fleet.yml", self.inventory, extra_vars={"release_version": VERSION},
                            args=("--forks", "4"), **kwargs)

    def record(self, host) -> dict:
        path = self.base / "artifacts" / host / VERSION / "release.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def summary(self) -> dict:
        return json.loads((self.base / "artifacts" / "fleet" / VERSION / "summary.json").read_text())

    def tables(self, host):
        return {row[0] for row in self.boxes[host].sql("SHOW TABLES", DB)}


@pytest.fixture
def fleet():
    base = Path(short_tmpdir("dbr-fleet-"))
    boxes = {}
    try:
        for name in HOSTS:
            boxes[name] = Sandbox(base / ("mdb-" + name)).start()
            boxes[name].create_admin(ADMIN_USER, ADMIN_PASSWORD)
            load_example(boxes[name])
        yield Fleet(base, boxes)
    finally:
        for box in boxes.values():
            box.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _out(proc):
    return "\n".join([proc.stdout[-8000:], proc.stderr[-3000:]])


def test_unhealthy_canary_stops_the_rollout_before_any_other_schema_change(fleet):
    make_outbox_unhealthy(fleet.boxes["db1"])

    proc = fleet.run()

    assert proc.returncode != 0, _out(proc)
    canary = fleet.record("db1").get("phases", {})
    assert canary.get("schema", {}).get("status") == "ok", (canary, _out(proc))
    assert canary["verify"]["status"] == "failed", canary["verify"]
    for host in ("db2", "db3"):
        assert "schema" not in fleet.record(host).get("phases", {}), host
        assert not {"outbox", "refresh_tokens"} & fleet.tables(host), host
    summary = fleet.summary()
    assert summary["outcome"] == "stopped"
    by_host = {d["host"]: d for d in summary["databases"]}
    assert by_host["db1"]["stage"] == "canary"
    assert by_host["db1"]["outcome"] == "failed" and by_host["db1"]["detail"].startswith("verify")
    assert by_host["db2"]["outcome"] == by_host["db3"]["outcome"] == "not_started"
    assert "db1" in summary["reason"]
    assert ADMIN_PASSWORD not in (fleet.base / "artifacts" / "fleet" / VERSION / "summary.md").read_text()


def test_healthy_fleet_releases_the_canary_first_then_the_batch(fleet):
    proc = fleet.run()

    assert proc.returncode == 0, _out(proc)
    records = {host: fleet.record(host)["phases"] for host in HOSTS}
    for host, phases in records.items():
        assert phases["verify"]["status"] == "ok", (host, phases["verify"])
        assert {"outbox", "refresh_tokens"} <= fleet.tables(host), host
    # The batch started only after the canary had passed verification.
    for host in ("db2", "db3"):
        assert records[host]["preflight"]["started"] >= records["db1"]["verify"]["finished"], host
    summary = fleet.summary()
    assert summary["outcome"] == "completed", summary
    assert [(d["host"], d["stage"], d["outcome"]) for d in summary["databases"]] == [
        ("db1", "canary", "released"), ("db2", "batch 1", "released"), ("db3", "batch 1", "released")]
    plan = json.loads((fleet.base / "artifacts" / "fleet" / VERSION / "plan.json").read_text())
    assert plan["canary"] == ["db1"] and plan["batches"] == [["db2", "db3"]]
