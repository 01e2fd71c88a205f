"""The release as a DBA runs it: the watch with the application serving, the tag after production, nothing skipped in
silence. release.yml for real, against real MariaDB servers and the example app's real node process.

- A staging release of the example app with maintenance mode (the app's own flag file): the verify phase runs while
  the app is in maintenance (its /health answers 503 "maintenance", which a smoke endpoint checks), maintenance goes
  off, the watch polls /health answering 200; the tag is not made in staging, the one production will make is
  recorded. Then the app breaks and the watch is rerun with verify_watch_failure_action: maintenance_on: it fails at
  once, names what regressed, prints the rollback command, and maintenance mode is back on.
- A production release of a database with no outbox, a destructive change allowed, no smoke endpoint and no vault:
  refused until backup_vault_required is false; then the restore test runs on a separate restore server (a second
  MariaDB), the outbox checks are "not applicable", the report's first lines say what did not run and what was
  destroyed, its "Next" never says there is nothing else to do, and the tag is made after the watch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import local_host_vars, run_playbook
from sandbox_db import Sandbox
from test_release_e2e import make_repo

VERSION = "v14.0.0-order"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
SERVER_JS = ROOT / "examples/app/backend/server.js"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app(tmp_path):
    """The example backend (node), with its maintenance flag and its health-failure switch under tmp_path."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("node is not installed: the watch runs against the example server (apt-get install nodejs)")
    port = free_port()
    flag, fail = tmp_path / "maintenance.flag", tmp_path / "health-fail"
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", MAINTENANCE_FILE=str(flag),
               HEALTH_FAIL_FILE=str(fail), SCHEMA_VERSION=VERSION)
    proc = subprocess.Popen([node, str(SERVER_JS)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/version", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the example server did not start") from None
            time.sleep(0.1)
    yield {"url": url, "flag": flag, "fail": fail}
    proc.terminate()
    proc.wait(timeout=10)


def write_inventory(path, databases, others=None):
    inv = {"all": {"children": {"databases": {"hosts": databases}}}}
    for group, hosts in (others or {}).items():
        inv["all"]["children"][group] = {"hosts": hosts}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def read(path):
    return json.loads(Path(path).read_text())


def output(proc):
    return proc.stdout[-8000:] + proc.stderr[-3000:]


def test_staging_verifies_in_maintenance_watches_the_app_serving_and_leaves_the_tag_to_production(mariadb, dbname,
                                                                                                   tmp_path, app):
    client = shutil.which("mariadb") or shutil.which("mysql")
    for name in ("schema_pre_release.sql", "seed.sql"):
        with open(ROOT / "examples/app/db" / name, "rb") as handle:
            subprocess.run([client, "--no-defaults", "-uroot", "-S", mariadb.socket, dbname], stdin=handle,
                           check=True)
    repo = make_repo(tmp_path)
    artifacts = tmp_path / "artifacts"
    url = app["url"]
    hv = local_host_vars(
        mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, release_environment="staging",
        release_ddl_files=[str(DDL)], release_backup_dir=str(tmp_path / "backups"),
        release_artifacts_dir=str(artifacts), release_git_repo=str(repo), lock_schema="lk_" + dbname,
        backup_restore_test=False, maintenance_enabled=True, maintenance_driver="file",
        maintenance_flag_path=str(app["flag"]),
        verify_smoke_endpoints=[
            # Answers during maintenance: checked by the verify phase, before maintenance mode goes off.
            {"name": "version", "url": url + "/version", "body_contains": '"schema":"%s"' % VERSION,
             "in_maintenance": True},
            # Proves the verify phase ran with the application in maintenance mode.
            {"name": "health-in-maintenance", "url": url + "/health", "status": [503],
             "body_contains": '"status":"maintenance"', "in_maintenance": True},
            # The application serving traffic: checked by the watch phase.
            {"name": "health", "url": url + "/health", "status": [200], "body_contains": '"status":"ok"'},
        ],
        verify_watch_endpoints=[{"name": "health", "url": url + "/health", "status": [200]}],
        verify_watch_seconds=3, verify_watch_interval_seconds=1, verify_smoke_attempts=2, verify_smoke_delay=0.2)
    inventory = write_inventory(tmp_path / "inventory.yml", {"db1": hv})
    proc = run_playbook("release.yml", inventory, {"release_version": VERSION})
    assert proc.returncode == 0, output(proc)
    record = read(artifacts / VERSION / "release.json")
    phases = record["phases"]
    # maintenance on, schema, verify in maintenance, maintenance off, watch with the app serving, tag.
    maintenance, verify, watch, tag = phases["maintenance"], phases["verify"], phases["watch"], phases["tag"]
    assert maintenance["switched_off_by"] == "verify" and maintenance["state"] == "off"
    assert maintenance["started"] <= phases["schema"]["started"] <= phases["schema"]["finished"] <= verify["started"]
    assert verify["finished"] <= maintenance["switched_off_at"] <= watch["started"] <= watch["finished"]
    assert watch["finished"] <= tag["finished"]
    assert verify["smoke"]["maintenance"] == "on"
    assert [r["name"] for r in verify["smoke"]["results"] if r["ok"]] == ["version", "health-in-maintenance"]
    assert [r["name"] for r in watch["serving_smoke"]["results"] if r["ok"]] == ["health"]
    assert [p["poll"] for p in watch["polls"]] == [1, 2, 3]
    assert all(p["verdict"] == "ok" and p["endpoints_ok"] == 1 for p in watch["polls"]), watch["polls"]
    assert not app["flag"].exists()
    # The release's DDL creates the outbox: it was absent at the baseline and is checked after the schema phase.
    assert phases["verify_baseline"]["baseline"]["outbox"]["present"] is False
    assert verify["expected_tables"] == ["outbox", "refresh_tokens"]
    assert verify["stats"]["outbox"]["present"] is True and verify["verdict"] == "ok", verify["health"]
    # The runbook's queries, before and after.
    assert verify["stats"]["runbook"][0]["query"] == "SELECT status, COUNT(*) FROM outbox GROUP BY status"
    assert phases["verify_baseline"]["baseline"]["runbook"][0]["not_run"].endswith("has no outbox table outbox")
    # Staging does not tag: it records the tag production will create.
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert tag["status"] == "skipped" and tag["deferred_to"] == "production"
    assert tag["would_create"]["tag"] == VERSION and tag["would_create"]["commit"] == head
    assert subprocess.run(["git", "tag", "-l", VERSION], cwd=repo, capture_output=True, text=True).stdout == ""
    report = (artifacts / VERSION / "report.md").read_text()
    head_lines = report.split("## Phases")[0]
    assert "No git tag was made here: the production release will create tag %s on commit %s" % (
        VERSION, head[:12]) in head_lines
    assert "## The runbook's queries" in report and "status\tCOUNT(*)" in report
    assert "Nothing else to do" not in report.split("## Next")[1]

    # The application breaks; the watch is rerun, asked to put maintenance mode back on when it fails.
    app["fail"].write_text("broken")
    proc = run_playbook("release.yml", inventory, {"release_version": VERSION,
                                                   "verify_watch_failure_action": "maintenance_on"}, tags="watch")
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())  # the console wraps long messages
    assert "WATCH FAILED on db1: With maintenance mode off, the smoke test failed on db1" in out
    assert "What regressed: endpoint health failed: status 503" in out
    assert "To roll back: ansible-playbook rollback.yml -i %s -e release_version=%s -e release_rollback_confirm=true" \
        % (inventory, VERSION) in out
    record = read(artifacts / VERSION / "release.json")
    assert record["phases"]["watch"]["status"] == "failed"
    assert record["phases"]["watch"]["failure_action"] == "maintenance_on"
    assert record["phases"]["maintenance"]["state"] == "on" and app["flag"].exists()
    assert record["phases"]["maintenance"]["switched_on_by"].startswith("watch failure")
    report = (artifacts / VERSION / "report.md").read_text()
    first = report.split("## Phases")[0]
    assert "The watch failed with the application serving traffic" in first and "rollback.yml" in first
    assert "Maintenance mode is ON" in report.split("## Next")[1]
    assert ADMIN_PASSWORD not in report


@pytest.fixture(scope="module")
def restore_box():
    box = Sandbox(short_tmpdir())
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


BILLING = [
    "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL)",
    "CREATE TABLE invoices (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, amount_cents INT NOT NULL, "
    "legacy_code CHAR(8) NULL, KEY (customer_id), CONSTRAINT fk_inv_customer FOREIGN KEY (customer_id) "
    "REFERENCES customers (id))",
    "INSERT INTO customers (name) SELECT CONCAT('c', seq) FROM seq_1_to_20",
    "INSERT INTO invoices (customer_id, amount_cents, legacy_code) SELECT 1 + seq % 20, seq * 100, "
    "IF(seq % 3 = 0, CONCAT('L', seq), NULL) FROM seq_1_to_60",
]


def test_production_refuses_without_a_vault_then_reports_what_did_not_run_and_what_was_destroyed(
        mariadb, dbname, tmp_path, restore_box):
    mariadb.sql(BILLING, dbname)
    ddl = tmp_path / "drop_legacy_code.sql"
    ddl.write_text("ALTER TABLE invoices DROP COLUMN IF EXISTS legacy_code;\n"
                   "CREATE INDEX IF NOT EXISTS idx_invoices_amount ON invoices (amount_cents);\n")
    repo = make_repo(tmp_path)
    artifacts = tmp_path / "artifacts"
    hv = local_host_vars(
        mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, release_environment="production",
        release_ddl_files=[str(ddl)], release_backup_dir=str(tmp_path / "backups"),
        release_artifacts_dir=str(artifacts), release_git_repo=str(repo), lock_schema="lk_" + dbname,
        maintenance_required=False, schema_require_approved_plan=False, schema_allow_destructive=True,
        verify_watch_seconds=1, verify_watch_interval_seconds=1)
    restore1 = {"ansible_host": "127.0.0.1", "release_db_port": restore_box.port, "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable}
    inventory = write_inventory(tmp_path / "inventory.yml", {"db1": hv}, {"restore_servers": {"restore1": restore1}})

    proc = run_playbook("release.yml", inventory, {"release_version": VERSION})
    assert proc.returncode != 0
    assert "db1 is released in production and the inventory has no backup_vault host" in output(proc)
    assert "backup_vault_required: false" in output(proc)
    assert [row[0] for row in mariadb.sql("SHOW COLUMNS FROM invoices", dbname)].count("legacy_code") == 1

    hv.update(backup_vault_required=False, backup_restore_server="restore1")
    inventory = write_inventory(tmp_path / "inventory.yml", {"db1": hv}, {"restore_servers": {"restore1": restore1}})
    copies_before = int(restore_box.sql("SHOW GLOBAL STATUS LIKE 'Com_create_db'")[0][1])
    proc = run_playbook("release.yml", inventory, {"release_version": VERSION})
    assert proc.returncode == 0, output(proc)
    record = read(artifacts / VERSION / "release.json")
    phases = record["phases"]
    assert "legacy_code" not in [row[0] for row in mariadb.sql("SHOW COLUMNS FROM invoices", dbname)]
    # The restore test ran on the restore server, which created (and dropped) the throwaway copy.
    restore = phases["backup"]["restore_test"]
    assert restore["ran"] and restore["ok"] and restore["restore_server"] == "%s@127.0.0.1:%d" % (
        ADMIN_USER, restore_box.port)
    assert int(restore_box.sql("SHOW GLOBAL STATUS LIKE 'Com_create_db'")[0][1]) == copies_before + 1
    assert phases["preflight"]["restore_server"]["host"] == "restore1"
    assert phases["preflight"]["environment"] == "production"
    assert phases["backup"]["vault_required"] is False
    # No outbox here, none created: not applicable, and the release passes on its other gates (at most warn: no
    # smoke endpoint).
    assert phases["verify"]["stats"]["outbox"]["present"] is False
    assert phases["verify"]["health"]["not_applicable"][0].startswith("Not applicable: %s has no outbox" % dbname)
    assert phases["verify"]["verdict"] == "warn"
    # The tag is made in production, after the watch.
    assert phases["tag"]["status"] == "ok" and phases["watch"]["finished"] <= phases["tag"]["finished"]
    assert subprocess.run(["git", "tag", "-l", VERSION], cwd=repo, capture_output=True,
                          text=True).stdout.strip() == VERSION

    report = (artifacts / VERSION / "report.md").read_text()
    first, rest = report.split("## Phases", 1)
    assert "No smoke endpoint is configured (verify_smoke_endpoints)" in first
    assert "No off-host copy of the backup was made by this release: backup_vault_required is false" in first
    assert "This release made 1 destructive or irreversible change, allowed by the inventory: table invoices" in first
    assert "## Destructive and irreversible changes" in rest
    destructive = rest.split("## Destructive and irreversible changes", 1)[1]
    assert "drops column legacy_code of table invoices" in destructive
    assert "the values of column legacy_code" in destructive
    assert "ALTER TABLE `%s`.`invoices` ADD COLUMN `legacy_code`" % dbname in destructive
    assert "sha256sum -c %s.sha256" % phases["backup"]["path"] in destructive
    nxt = report.split("## Next", 1)[1]
    assert "Nothing else to do" not in nxt and "Pending: 1 destructive change" in nxt
    assert "Not applicable: %s has no outbox table outbox" % dbname in report
    assert ADMIN_PASSWORD not in report
