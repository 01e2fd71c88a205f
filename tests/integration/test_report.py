"""report.md and the AWX stats, rendered by the record role from a release record as the phases write it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from helpers import ROOT, run_playbook

VERSION = "v1.2.0-canonical-schema"
NUMBERS = {"outbox": {"present": True, "counts": {"pending": 3, "delivered": 1200, "failed": 1, "dead": 0},
                      "oldest_pending_age_seconds": 2.5, "dead_letters": 0},
           "refresh_tokens": {"present": True, "revoked": 5, "total": 200},
           "server_time": "2026-11-28 06:00:00.000", "elapsed_seconds": 0.01}
AFTER = {"outbox": {"present": True, "counts": {"pending": 40, "delivered": 1300, "failed": 1, "dead": 2},
                    "oldest_pending_age_seconds": 700.0, "dead_letters": 2},
         "refresh_tokens": {"present": True, "revoked": 150, "total": 200},
         "server_time": "2026-11-28 06:10:00.000", "elapsed_seconds": 0.01}


def phase(status, started="2026-11-28T06:00:00+00:00", finished="2026-11-28T06:00:07+00:00", **outputs):
    entry = {"status": status, "changed": status == "ok", "started": started}
    if status != "running":
        entry["finished"] = finished
    entry.update(outputs)
    return entry


def write_record(tmp_path: Path, phases: dict, name="release.json") -> Path:
    record_dir = tmp_path / "artifacts" / VERSION
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / name).write_text(json.dumps({"version": VERSION, "database": "shop", "host": "db1",
                                               "created": "2026-11-28T06:00:00+00:00", "phases": phases}))
    return record_dir


def render(tmp_path: Path, check=False, env=None):
    playbook = tmp_path / "report.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Report", "hosts": "databases", "gather_facts": False,
                                         "vars_files": [str(ROOT / "vars/release.yml")], "tasks": [
        {"name": "Write the report", "ansible.builtin.import_role": {"name": "record", "tasks_from": "report"}}]}]))
    inv = tmp_path / "inventories" / "staging" / "hosts.yml"
    inv.parent.mkdir(parents=True, exist_ok=True)
    inv.write_text(yaml.safe_dump({"all": {"children": {"databases": {"hosts": {"db1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}},
        "vars": {"release_version": VERSION, "release_artifacts_dir": str(tmp_path / "artifacts")}}}))
    result = run_playbook(playbook, inv, check=check, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return inv, result


FAILED_AT_SCHEMA = {
    "preflight": phase("ok", server={"version": "10.11.6-MariaDB"}),
    "maintenance": phase("ok", state="on", driver="file"),
    "backup": phase("ok", started="2026-11-28T06:00:07+00:00", finished="2026-11-28T06:01:42+00:00",
                    path="/var/backups/shop_v1.sql.gz", sha256="ab" * 32, bytes=123456),
    "verify_baseline": phase("ok", baseline=NUMBERS),
    "schema": phase("failed", error="Apply the DDL: create_distributed_tables.sql statement 2: syntax error"),
}


def test_failed_release_report_lists_every_phase_the_error_and_the_commands_to_run_next(tmp_path):
    record_dir = write_record(tmp_path, FAILED_AT_SCHEMA)
    inv, _ = render(tmp_path)
    report = (record_dir / "report.md").read_text()
    assert report.startswith("# Release %s on db1: FAILED at schema" % VERSION)
    for name in FAILED_AT_SCHEMA:
        assert "\n| %s | **%s** |" % (name, FAILED_AT_SCHEMA[name]["status"]) in report
    assert "| 1m35s |" in report  # the backup's duration
    assert "`/var/backups/shop_v1.sql.gz`" in report and "ab" * 32 in report  # full in the backup section
    assert "**schema failed:** Apply the DDL: create_distributed_tables.sql statement 2: syntax error" in report
    assert "`ansible-playbook release.yml -i %s -e release_version=%s --tags schema`" % (inv, VERSION) in report
    assert "--tags schema,migrate,verify,tag`" in report
    assert ("`ansible-playbook rollback.yml -i %s -e release_version=%s -e release_rollback_confirm=true`"
            % (inv, VERSION)) in report
    assert "Maintenance mode is ON" in report and "playbooks/maintenance_off.yml" in report
    assert "No verdict yet" in report
    assert "| outbox.counts.pending | 3 | – |  |" in report  # the baseline is shown even before verify ran


def test_successful_release_report_puts_each_health_number_beside_its_baseline(tmp_path):
    phases = dict(FAILED_AT_SCHEMA, schema=phase("ok"), maintenance=phase("ok", state="off"),
                  verify=phase("ok", verdict="warn", baseline=NUMBERS, stats=AFTER,
                               baseline_source="captured before the schema phase of this run",
                               health={"verdict": "warn", "reasons": ["37 more pending events than the baseline."]},
                               smoke={"results": [{"name": "health", "ok": True, "reason": "200 in 0.01s"}]}),
                  tag=phase("skipped", reason="release_git_repo is not set, so no git tag was made"))
    record_dir = write_record(tmp_path, phases)
    render(tmp_path)
    report = (record_dir / "report.md").read_text()
    assert report.startswith("# Release %s on db1: OK" % VERSION)
    assert "Verdict: **WARN** (baseline captured before the schema phase of this run)." in report
    assert "- 37 more pending events than the baseline." in report
    assert "| outbox.counts.pending | 3 | 40 | +37 |" in report
    assert "| refresh_tokens.revoked | 5 | 150 | +145 |" in report
    assert "| outbox.oldest_pending_age_seconds | 2.5 | 700.0 | +697.5 |" in report
    assert "| refresh_tokens.total | 200 | 200 |  |\n" in report
    assert "server_time" not in report
    assert "| health | ok: 200 in 0.01s |" in report
    assert "No git tag was made (release_git_repo is not set" in report
    assert "Maintenance mode is" not in report
    assert "rollback.yml" in report  # the way back stays visible after a successful release


def test_rolled_back_release_report_says_so_and_offers_no_second_rollback(tmp_path):
    phases = dict(FAILED_AT_SCHEMA, rollback=phase("ok", restored_from="/var/backups/shop_v1.sql.gz", sha256="ab" * 32,
                                                   database="shop", seconds=3.2,
                                                   safety_dump={"path": "/var/backups/pre.sql.gz", "sha256": "cd"}))
    phases["schema"] = phase("ok")
    record_dir = write_record(tmp_path, phases)
    render(tmp_path)
    report = (record_dir / "report.md").read_text()
    assert report.startswith("# Release %s on db1: ROLLED BACK" % VERSION)
    assert "restored `/var/backups/shop_v1.sql.gz`" in report and "`/var/backups/pre.sql.gz`" in report
    assert "release_rollback_confirm" not in report


def test_check_mode_report_reads_the_dry_run_record_and_leaves_the_real_report_alone(tmp_path):
    record_dir = write_record(tmp_path, {"backup": phase("ok", path="/b.sql.gz", sha256="ef" * 32, bytes=1)})
    write_record(tmp_path, {"schema": phase("ok", plan="2 statements would run")}, name="release.check.json")
    (record_dir / "report.md").write_text("the real run's report\n")
    render(tmp_path, check=True)
    assert (record_dir / "report.md").read_text() == "the real run's report\n"
    dry = (record_dir / "report.check.md").read_text()
    assert "(dry run, --check)" in dry and "plan: 2 statements would run" in dry


def test_awx_stats_carry_the_result_the_backup_and_the_failed_phase(tmp_path):
    write_record(tmp_path, FAILED_AT_SCHEMA)
    _, result = render(tmp_path, env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
    stats = result.stdout.split("CUSTOM STATS:", 1)[1]
    assert "failed_phases" in stats and "schema" in stats
    assert "/var/backups/shop_v1.sql.gz" in stats
    assert "report.md" in stats


def test_rerun_command_switches_maintenance_on_again_when_the_failure_switched_it_off(tmp_path):
    phases = dict(FAILED_AT_SCHEMA, maintenance=phase("ok", state="off", driver="http", switched_off_by="failure"))
    record_dir = write_record(tmp_path, phases)
    render(tmp_path)
    report = (record_dir / "report.md").read_text()
    assert "--tags maintenance,schema`" in report
    assert "--tags maintenance,schema,migrate,verify,tag`" in report
    assert "Maintenance mode is" not in report
