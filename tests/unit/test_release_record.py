"""The release record's merge logic (pure) and the module's atomic, check-mode-safe writes."""

import json
import subprocess
import sys

import pytest
import release_record as rr


@pytest.mark.parametrize(
    "before, status, changed, outputs, error, expect",
    [
        ({}, "running", False, {}, None, {"status": "running", "changed": False, "started": "T"}),
        ({"status": "running", "started": "S", "changed": False}, "ok", True, {"sha256": "ab"}, None,
         {"status": "ok", "changed": True, "started": "S", "finished": "T", "sha256": "ab"}),
        ({"status": "running", "started": "S", "changed": False}, "failed", False, {}, "boom",
         {"status": "failed", "changed": False, "started": "S", "finished": "T", "error": "boom"}),
        ({"status": "failed", "started": "S", "error": "boom", "path": "/old"}, "running", False, {}, None,
         {"status": "running", "changed": False, "started": "T", "previous_status": "failed"}),
    ],
)
def test_merge_phase_keeps_start_and_replaces_failed_attempts(before, status, changed, outputs, error, expect):
    record = {"phases": {"backup": before}} if before else {}
    merged = rr.merge_phase(record, "backup", status, changed, outputs, error, "T")
    assert merged["phases"]["backup"] == expect


def _run_module(args, check=False):
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}
    proc = subprocess.run([sys.executable, rr.__file__], input=json.dumps(payload), capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(sys.path)})
    return json.loads(proc.stdout)


def test_check_mode_writes_a_separate_record_and_never_the_real_one(tmp_path):
    real = _run_module({"path": str(tmp_path), "phase": "backup", "status": "ok", "outputs": {"bytes": 1}})
    assert real["record_path"].endswith("/release.json")
    dry = _run_module({"path": str(tmp_path), "phase": "backup", "status": "failed", "error": "x"}, check=True)
    assert dry["record_path"].endswith("/release.check.json")
    stored = json.loads((tmp_path / "release.json").read_text())
    assert stored["phases"]["backup"]["status"] == "ok"
    assert stored["phases"]["backup"]["bytes"] == 1
