"""The unreachable-host callback: which phases it marks failed, what it says, and that it writes the record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("release_unreachable", ROOT / "callback_plugins/release_unreachable.py")
release_unreachable = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release_unreachable)

START = "2026-01-01T10:00:00+00:00"


def test_only_phases_running_since_this_run_started_are_marked():
    record = {"phases": {
        "preflight": {"status": "ok", "started": "2026-01-01T10:00:01+00:00"},
        "backup": {"status": "running", "started": "2026-01-01T10:00:05+00:00"},
        "schema": {"status": "running", "started": "2026-01-01T09:00:00+00:00"},  # an older, interrupted run
    }}
    assert release_unreachable.running_phases(record, START) == ["backup"]
    assert release_unreachable.running_phases({}, START) == []
    assert release_unreachable.running_phases({"phases": {"backup": None}}, START) == []


def test_the_error_names_the_host_its_address_the_phase_and_the_task():
    error = release_unreachable.unreachable_error("db1", "10.0.0.5", "backup", "Dump the database",
                                                  "Failed to connect\n  to the host via ssh")
    assert error.startswith("db1 became unreachable during the backup phase (host 10.0.0.5), in task "
                            "'Dump the database': Failed to connect to the host via ssh.")
    assert "release lock" in error


def test_a_delegated_host_is_named_with_the_host_it_worked_for():
    error = release_unreachable.unreachable_error("vault1", None, "backup", "Copy", None, delegated_from="db1")
    assert error.startswith("vault1 (delegated from db1) became unreachable during the backup phase, in task "
                            "'Copy': no message.")


def test_record_failed_writes_the_phase_through_the_release_record_module(tmp_path):
    path = tmp_path / "release.json"
    path.write_text(json.dumps({"phases": {"backup": {"status": "running", "started": START, "changed": False}}}))
    ok, why = release_unreachable.record_failed(str(path), "backup", "db1 became unreachable", False)
    assert ok, why
    entry = json.loads(path.read_text())["phases"]["backup"]
    assert entry["status"] == "failed" and entry["error"] == "db1 became unreachable"


def test_record_failed_reports_why_it_could_not_write(tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    ok, why = release_unreachable.record_failed(str(blocked / "release.json"), "backup", "gone", False)
    assert not ok and why
