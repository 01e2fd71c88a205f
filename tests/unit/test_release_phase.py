"""The phase mechanism: its pure functions, and release_phase itself in real plays on localhost (no database).

What it must do: record running/ok/failed/skipped with outputs taken from the modules' `record` parts, keep the
record in memory until the release lock is taken, and write nothing at all for a run whose record is another
run's (refused at the lock by a run of the same release, or the record shows another run holding the lock).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from ansible.module_utils.dbrelease import record
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("release_phase_plugin", ROOT / "action_plugins/release_phase.py")
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)


# -- pure functions -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("result, parts", [
    ({"record": {"a": 1}}, [{"a": 1}]),
    ({"results": [{"record": {"vault": {"v1": "/d/x"}}}, {"skipped": True}, {"record": {"vault": {"v2": "/e/x"}}}]},
     [{"vault": {"v1": "/d/x"}}, {"vault": {"v2": "/e/x"}}]),
    ({"skipped": True}, []),
    (None, []),
    ("text", []),
])
def test_record_parts_come_from_a_result_or_from_each_loop_item(result, parts):
    assert record.record_parts(result) == parts


def test_record_parts_merge_in_order_dicts_recursively():
    merged = record.merge_outputs([{"path": "/b", "vault": {}, "verified": {"checksum": True}},
                                   {"vault": {"v1": "/d"}}, {"vault": {"v2": "/e"}, "verified": {"trailer": True}},
                                   {"path": "/c"}])
    assert merged == {"path": "/c", "vault": {"v1": "/d", "v2": "/e"}, "verified": {"checksum": True, "trailer": True}}


@pytest.mark.parametrize("result, changed", [
    ({"changed": True}, True), ({"changed": False}, False),
    ({"results": [{"changed": False}, {"changed": True}]}, True), ({"skipped": True}, False), (None, False)])
def test_a_phase_changed_when_one_of_its_results_did(result, changed):
    assert record.result_changed(result) is changed


@pytest.mark.parametrize("phases, required, missing", [
    ({"verify": {"status": "ok"}}, ["verify"], []),
    ({"verify": {"status": "skipped"}}, ["verify"], []),
    ({"verify": {"status": "failed"}}, ["verify"], [("verify", "failed")]),
    ({}, ["verify", "schema"], [("verify", "not recorded"), ("schema", "not recorded")]),
    ({"verify": {"status": "running"}}, [], []),
])
def test_missing_phases_name_what_is_not_ok_or_skipped(phases, required, missing):
    assert record.missing_phases({"phases": phases}, required) == missing


def test_the_tag_that_reruns_a_phase_comes_from_the_list_of_phases():
    phases = [{"name": "lock", "tags": ["always", "preflight"]}, {"name": "verify_baseline", "tags": ["schema"]}]
    assert record.phase_tag(phases, "verify_baseline") == "schema"
    assert record.phase_tag(phases, "lock") == "preflight"
    assert record.phase_tag(phases, "unknown") == "unknown"


@pytest.mark.parametrize("lock, live", [
    ({"status": "ok", "token": "t"}, True),
    ({"status": "ok", "token": "t", "released": True}, False),
    ({"status": "failed"}, False),
    ({"status": "ok", "token": "t", "check_mode": True}, False),
    (None, False),
])
def test_a_record_shows_a_live_lock_until_its_run_released_it(lock, live):
    rec = {"phases": {"lock": lock}} if lock else {}
    assert (record.live_lock(rec) is not None) is live


def test_the_failure_names_the_task_and_each_failed_loop_item():
    assert plugin.failure_text({"name": "Dump"}, {"msg": "disk\n full"}) == "Dump: disk full"
    loop = {"msg": "One or more items failed", "results": [{"failed": True, "msg": "vault1 unreachable"},
                                                           {"failed": False, "msg": "ok"},
                                                           {"failed": True, "msg": "vault2 mismatch"}]}
    assert plugin.failure_text({"name": "Copy"}, loop) == "Copy: vault1 unreachable; vault2 mismatch"
    assert plugin.failure_text(None, {"stderr": "boom"}) == "?: boom"


def test_messages_of_results_that_ran_are_shown():
    assert plugin.messages([{"msg": "a"}, {"skipped": True, "msg": "no"}, {"results": [{"msg": "b"}, {}]}, None]) == [
        "a", "b"]


def test_the_view_lays_the_dry_run_phases_over_the_real_record(tmp_path):
    (tmp_path / "release.json").write_text(json.dumps({"version": "v1", "phases": {"a": {"status": "ok"},
                                                                                   "b": {"status": "ok"}}}))
    (tmp_path / "release.check.json").write_text(json.dumps({"phases": {"b": {"status": "failed"}}}))
    assert record.view(str(tmp_path), False)["phases"]["b"]["status"] == "ok"
    seen = record.view(str(tmp_path), True)
    assert seen["version"] == "v1" and seen["phases"] == {"a": {"status": "ok"}, "b": {"status": "failed"}}


# -- release_phase in real plays ------------------------------------------------------------------------------------
def run_play(tmp_path, tasks, check=False, extra=None):
    play = [{"hosts": "db1", "gather_facts": False, "vars_files": [str(ROOT / "vars/release.yml")],
             "vars": dict({"release_version": "v1", "release_artifacts_dir": str(tmp_path / "art")}, **(extra or {})),
             "tasks": tasks}]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    inventory = tmp_path / "inv.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"db1": {"ansible_connection": "local",
                                                               "ansible_python_interpreter": sys.executable}}}}))
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(path), "-i", str(inventory)]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def rec(tmp_path, name="release.json"):
    path = tmp_path / "art" / "v1" / name
    return json.loads(path.read_text()) if path.exists() else None


FAKE_MODULE = {"ansible.builtin.set_fact": {"__fake_result": {"changed": True, "msg": "did the thing",
                                                               "record": {"path": "/b/x.sql.gz", "bytes": 3}}}}


def test_a_phase_records_running_then_ok_with_its_modules_record_parts_and_prints_their_messages(tmp_path):
    proc = run_play(tmp_path, [
        {"name": "Start", "release_phase": {"phase": "backup", "results": ["__fake_result"]}, "register": "start"},
        {"name": "Look at the record while the phase runs", "ansible.builtin.copy": {
            "content": "{{ lookup('release_record') | to_json }}", "dest": str(tmp_path / "during.json"),
            "mode": "0600"}},
        dict(FAKE_MODULE, name="Work"),
        {"name": "Finish", "release_phase": {"phase": "backup", "status": "ok", "outputs": {"extra": 1}}},
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "during.json").read_text())["phases"]["backup"]["status"] == "running"
    entry = rec(tmp_path)["phases"]["backup"]
    assert entry["status"] == "ok" and entry["changed"] is True
    assert entry["path"] == "/b/x.sql.gz" and entry["bytes"] == 3 and entry["extra"] == 1
    assert entry["started"] <= entry["finished"]
    assert "db1 | backup: did the thing" in proc.stdout
    assert rec(tmp_path)["version"] == "v1" and rec(tmp_path)["host"] == "db1"


def test_a_skip_is_recorded_with_its_reason_and_a_failure_with_the_task_and_the_host_stops(tmp_path):
    proc = run_play(tmp_path, [
        {"name": "Skip", "release_phase": {"phase": "tag", "status": "skipped", "reason": "no repository"}},
        {"block": [{"name": "Start", "release_phase": {"phase": "schema"}},
                   {"name": "Apply the DDL", "ansible.builtin.fail": {"msg": "statement 3 broke"}}],
         "rescue": [{"name": "Record", "release_phase": {"phase": "schema", "status": "failed"}},
                    {"name": "Stop", "ansible.builtin.meta": "end_host"}]},
        {"name": "Never", "ansible.builtin.copy": {"content": "x", "dest": str(tmp_path / "never"), "mode": "0600"}},
    ])
    assert proc.returncode == 0, proc.stdout
    phases = rec(tmp_path)["phases"]
    assert phases["tag"] == dict(phases["tag"], status="skipped", reason="no repository")
    assert phases["schema"]["status"] == "failed" and phases["schema"]["error"] == "Apply the DDL: statement 3 broke"
    assert "Phase 'schema' failed on db1: Apply the DDL: statement 3 broke" in proc.stdout
    assert not (tmp_path / "never").exists()


def test_a_phase_refuses_to_start_before_the_phases_it_requires(tmp_path):
    proc = run_play(tmp_path, [
        {"block": [{"name": "Start", "release_phase": {"phase": "tag", "requires": ["verify"]}}],
         "rescue": [{"name": "Record", "release_phase": {"phase": "tag", "status": "failed"}}]},
    ])
    assert proc.returncode == 0, proc.stdout
    error = rec(tmp_path)["phases"]["tag"]["error"]
    assert "phase 'verify' is not recorded" in error and "--tags verify" in error


def test_before_the_lock_nothing_is_written_and_the_lock_writes_it_all(tmp_path):
    proc = run_play(tmp_path, [
        {"name": "Start preflight", "release_phase": {"phase": "preflight", "before_lock": True}},
        {"name": "Nothing yet", "ansible.builtin.stat": {"path": str(tmp_path / "art/v1/release.json")},
         "register": "before"},
        {"name": "Preflight ok", "release_phase": {"phase": "preflight", "status": "ok"}},
        {"name": "Lock ok", "release_phase": {"phase": "lock", "status": "ok", "locked": True,
                                              "outputs": {"token": "t1", "name": "db", "ttl_minutes": 60}}},
        {"name": "Check", "ansible.builtin.assert": {"that": ["not before.stat.exists",
                                                             "ansible_facts.dbrelease_run.owner"]}},
    ])
    assert proc.returncode == 0, proc.stdout
    phases = rec(tmp_path)["phases"]
    assert phases["preflight"]["status"] == "ok" and phases["lock"]["token"] == "t1"
    assert phases["preflight"]["started"] <= phases["lock"]["finished"]


def refused_run(tmp_path, busy):
    return run_play(tmp_path, [
        {"name": "Start preflight", "release_phase": {"phase": "preflight", "before_lock": True}},
        {"name": "Preflight ok", "release_phase": {"phase": "preflight", "status": "ok"}},
        {"block": [{"name": "Take the release lock", "ansible.builtin.fail": {"msg": "held by alice"},
                    "vars": {}, "register": "__lock_result"}],
         "rescue": [{"name": "Pretend the refusal says record_busy", "ansible.builtin.set_fact": {
                         "ansible_failed_result": {"msg": "held by alice", "record_busy": busy}}},
                    {"name": "Record", "release_phase": {"phase": "lock", "status": "failed"}}]},
        {"name": "Keep the state", "ansible.builtin.copy": {"content": "{{ ansible_facts.dbrelease_run | to_json }}",
                                                           "dest": str(tmp_path / "state.json"), "mode": "0600"}},
    ])


def test_a_run_refused_by_another_run_of_the_same_release_writes_nothing(tmp_path):
    proc = refused_run(tmp_path, busy=True)
    assert proc.returncode == 0, proc.stdout
    assert rec(tmp_path) is None
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["owner"] is False and state["writes"] is False and state["failed"]["phase"] == "lock"
    assert "Nothing was written to the release record" in proc.stdout


def test_a_run_stopped_before_the_lock_writes_nothing_while_the_record_shows_another_run_holding_it(tmp_path):
    target = tmp_path / "art" / "v1"
    target.mkdir(parents=True)
    theirs = {"version": "v1", "phases": {"lock": {"status": "ok", "token": "theirs"},
                                          "schema": {"status": "running", "started": "2026-01-01T00:00:00+00:00"}}}
    (target / "release.json").write_text(json.dumps(theirs))
    before = (target / "release.json").read_bytes()
    proc = refused_run(tmp_path, busy=False)
    assert proc.returncode == 0, proc.stdout
    assert (target / "release.json").read_bytes() == before
    assert json.loads((tmp_path / "state.json").read_text())["writes"] is False


def test_a_run_stopped_before_the_lock_records_its_failure_when_the_record_is_free(tmp_path):
    proc = refused_run(tmp_path, busy=False)
    assert proc.returncode == 0, proc.stdout
    phases = rec(tmp_path)["phases"]
    assert phases["preflight"]["status"] == "ok" and phases["lock"]["status"] == "failed"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["owner"] is False and state["writes"] is True


def test_under_check_mode_the_phases_go_to_the_check_record_only(tmp_path):
    proc = run_play(tmp_path, [
        {"name": "Start", "release_phase": {"phase": "preflight", "before_lock": True}},
        {"name": "Ok", "release_phase": {"phase": "preflight", "status": "ok"}},
    ], check=True)
    assert proc.returncode == 0, proc.stdout
    assert rec(tmp_path) is None and rec(tmp_path, "release.check.json")["phases"]["preflight"]["status"] == "ok"


def test_files_kept_with_the_phase_are_written_atomically_and_force_false_keeps_the_first(tmp_path):
    files = [{"path": str(tmp_path / "art/v1/schema"), "name": "pre.json", "content": "{{ content }}",
              "force": False}]
    for content in ("first", "second"):
        proc = run_play(tmp_path, [{"name": "Ok", "release_phase": {"phase": "schema", "status": "ok",
                                                                     "files": files}}], extra={"content": content})
        assert proc.returncode == 0, proc.stdout
    target = tmp_path / "art/v1/schema/pre.json"
    assert target.read_text() == "first" and oct(target.stat().st_mode & 0o777) == "0o640"
