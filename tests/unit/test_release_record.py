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
    from helpers import run_module

    return run_module("release_record", args, check=check)


def test_check_mode_writes_a_separate_record_and_never_the_real_one(tmp_path):
    real = _run_module({"path": str(tmp_path), "phase": "backup", "status": "ok", "outputs": {"bytes": 1}})
    assert real["record_path"].endswith("/release.json")
    dry = _run_module({"path": str(tmp_path), "phase": "backup", "status": "failed", "error": "x"}, check=True)
    assert dry["record_path"].endswith("/release.check.json")
    stored = json.loads((tmp_path / "release.json").read_text())
    assert stored["phases"]["backup"]["status"] == "ok"
    assert stored["phases"]["backup"]["bytes"] == 1


def test_artifacts_are_written_once_atomically_and_force_false_keeps_the_first(tmp_path):
    target = tmp_path / "v1" / "schema"
    files = [{"name": "pre.json", "content": "{}\n", "force": False},
             {"name": "post.sql", "content": "A", "force": True}]
    assert rr.write_artifacts(str(target), files, check_mode=False) == ["pre.json", "post.sql"]
    assert oct(target.stat().st_mode & 0o777) == "0o750"
    assert oct((target / "pre.json").stat().st_mode & 0o777) == "0o640"
    assert rr.write_artifacts(str(target), files, check_mode=False) == []  # same content: nothing written
    changed = [{"name": "pre.json", "content": "{\"x\": 1}\n", "force": False}, {"name": "post.sql", "content": "B"}]
    assert rr.write_artifacts(str(target), changed, check_mode=False) == ["post.sql"]
    assert (target / "pre.json").read_text() == "{}\n" and (target / "post.sql").read_text() == "B"
    assert sorted(p.name for p in target.iterdir()) == ["post.sql", "pre.json"]  # no temporary file left


def test_artifacts_in_check_mode_report_what_would_be_written_and_write_nothing(tmp_path):
    target = tmp_path / "dry"
    assert rr.write_artifacts(str(target), [{"name": "report.md", "content": "x"}], check_mode=True) == ["report.md"]
    assert not target.exists()


@pytest.mark.parametrize("name", ["", "..", "../escape", "a/b"])
def test_an_artifact_name_with_a_directory_part_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        rr.write_artifacts(str(tmp_path / "d"), [{"name": "ok", "content": ""}, {"name": name, "content": ""}], False)
    assert not (tmp_path / "d").exists()


def test_the_action_plugin_writes_in_process_what_the_module_writes(tmp_path):
    """release_record delegated to localhost runs in Ansible's worker (action plugin), with the module's results."""
    root = rr.__file__.rsplit("/library/", 1)[0]
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"release_record": {"path": str(tmp_path / "rec"), "phase": "backup", "status": "ok",
                            "outputs": {"bytes": 7}}, "delegate_to": "localhost", "register": "w"},
        {"release_record": {"path": str(tmp_path / "rec"), "state": "artifacts",
                            "files": [{"name": "report.md", "content": "# r\n"}]}, "register": "a"},
        {"release_record": {"path": str(tmp_path / "rec"), "state": "read"}, "register": "r"},
        {"ansible.builtin.assert": {"that": [
            "w.record_path.endswith('/release.json')", "not w.changed", "a.changed", "a.written == ['report.md']",
            "r.record.phases.backup.bytes == 7"]}},
        {"release_record": {"path": str(tmp_path / "rec"), "status": "ok"}, "register": "bad",
         "ignore_errors": True},
        {"ansible.builtin.assert": {"that": ["bad.failed", "'phase' in bad.msg"]}},
    ]}]))
    proc = subprocess.run([sys.executable.rsplit("/", 1)[0] + "/ansible-playbook", str(play), "-i", "localhost,",
                           "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable],
                          capture_output=True, text=True, cwd=root,
                          env={"ANSIBLE_CONFIG": root + "/ansible.cfg", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "rec" / "release.json").read_text())["phases"]["backup"]["status"] == "ok"
    assert (tmp_path / "rec" / "report.md").read_text() == "# r\n"
