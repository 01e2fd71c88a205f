"""Maintenance mode through the real playbooks: on before the release, off at the end or after a failure (unless
configured to stay on), a no-op when never switched on; file, command and http drivers (a real HTTP server)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, recap, run_playbook

VERSION = "v9.9.9-maint"


class Endpoint:
    """A real HTTP server on a free localhost port that records every call (and can be told to fail)."""

    def __init__(self):
        self.calls = []
        self.fail_with = None
        self.fail_paths = ()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                endpoint.calls.append((self.command, self.path, json.loads(body) if body else None))
                status = endpoint.fail_with if self.path in endpoint.fail_paths else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def release_playbook(tmp_path: Path) -> Path:
    """maintenance on -> a phase that fails when asked (with the phase mechanism) -> finish, as release.yml runs
    them (release_goes_on: the phase playbooks leave the clean-up to the finish play)."""
    path = tmp_path / "release.yml"
    path.write_text(yaml.safe_dump([
        {"name": "Maintenance on", "ansible.builtin.import_playbook": str(ROOT / "playbooks/maintenance_on.yml"),
         "vars": {"release_goes_on": True}},
        {"name": "A phase", "hosts": "{{ release_hosts | default('databases') | release_phase_hosts }}",
         "gather_facts": False, "tags": ["schema"], "tasks": [{
             "name": "Run the schema phase",
             "block": [{"name": "Start the schema phase", "release_phase": {"phase": "schema"}},
                       {"name": "Apply the DDL", "ansible.builtin.fail": {"msg": "the DDL broke at statement 3"},
                        "when": "fail_phase | default(false) | bool"},
                       {"name": "Finish the schema phase", "release_phase": {"phase": "schema", "status": "ok"}}],
             "rescue": [{"name": "Record why the schema phase failed",
                         "release_phase": {"phase": "schema", "status": "failed"}},
                        {"name": "Stop this play here", "ansible.builtin.meta": "end_host"}]}]},
        {"name": "Finish", "ansible.builtin.import_playbook": str(ROOT / "playbooks/finish.yml")},
    ], sort_keys=False))
    return path


def inventory(tmp_path: Path, app_hosts=(), **group_vars) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    gv = {"release_version": VERSION, "release_db_name": "shop", "release_artifacts_dir": str(tmp_path / "artifacts"),
          "lock_enabled": False}
    gv.update(group_vars)
    inv = {"all": {"vars": gv, "children": {"databases": {"hosts": {"db1": dict(local)}}}}}
    if app_hosts:
        inv["all"]["children"]["app"] = {"hosts": {h: dict(local) for h in app_hosts}}
    path = tmp_path / "inv" / "hosts.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inv))
    return path


def record(tmp_path):
    return json.loads((tmp_path / "artifacts" / VERSION / "release.json").read_text())


@pytest.fixture
def flag(tmp_path):
    return tmp_path / "www" / "maintenance.flag"


def test_file_driver_flag_is_on_during_the_release_and_off_after_it(tmp_path, flag):
    flag.parent.mkdir()
    inv = inventory(tmp_path, app_hosts=["app1"], maintenance_enabled=True, maintenance_flag_path=str(flag))
    on = run_playbook(ROOT / "playbooks/maintenance_on.yml", inv)
    assert on.returncode == 0, on.stdout
    assert "db1 -> app1" in on.stdout  # written on the app host, not on the database host
    assert VERSION in flag.read_text()
    phase = record(tmp_path)["phases"]["maintenance"]
    assert phase["status"] == "ok" and phase["state"] == "on" and phase["driver"] == "file"
    again = run_playbook(ROOT / "playbooks/maintenance_on.yml", inv)
    assert recap(again.stdout)["db1"]["changed"] == 0

    # A new process (the finish play) switches it off because the record says it is on.
    done = run_playbook(ROOT / "playbooks/finish.yml", inv)
    assert done.returncode == 0, done.stdout
    assert not flag.exists()
    phase = record(tmp_path)["phases"]["maintenance"]
    assert phase["state"] == "off" and phase["switched_off_by"] == "finish"
    assert recap(run_playbook(ROOT / "playbooks/finish.yml", inv).stdout)["db1"]["changed"] == 0


def test_failed_phase_switches_maintenance_off_and_keeps_the_phase_error(tmp_path, flag):
    flag.parent.mkdir()
    inv = inventory(tmp_path, maintenance_enabled=True, maintenance_flag_path=str(flag))
    result = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
    assert result.returncode != 0
    assert not flag.exists()
    rec = record(tmp_path)
    assert rec["phases"]["schema"]["status"] == "failed"
    assert rec["phases"]["maintenance"]["state"] == "off"
    assert rec["phases"]["maintenance"]["switched_off_by"] == "failure"
    assert "Phase 'schema' failed on db1: Apply the DDL: the DDL broke at statement 3" in result.stdout


def test_keep_on_failure_leaves_maintenance_on_and_says_how_to_switch_it_off(tmp_path, flag):
    flag.parent.mkdir()
    inv = inventory(tmp_path, maintenance_enabled=True, maintenance_flag_path=str(flag),
                    maintenance_keep_on_failure=True)
    result = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
    assert result.returncode != 0
    assert flag.exists()
    assert "Maintenance mode stays ON" in result.stdout
    assert "playbooks/maintenance_off.yml -i %s" % inv in result.stdout
    assert record(tmp_path)["phases"]["maintenance"]["state"] == "on"
    off = run_playbook(ROOT / "playbooks/maintenance_off.yml", inv)
    assert off.returncode == 0, off.stdout
    assert not flag.exists()
    assert record(tmp_path)["phases"]["maintenance"]["state"] == "off"


def test_never_switched_on_is_a_no_op_at_the_end_and_after_a_failure(tmp_path, flag):
    flag.parent.mkdir()
    flag.write_text("someone else's maintenance\n")  # not ours: must survive
    inv = inventory(tmp_path, maintenance_flag_path=str(flag))
    ok = run_playbook(release_playbook(tmp_path), inv)
    assert ok.returncode == 0, ok.stdout
    assert recap(ok.stdout)["db1"]["changed"] == 0
    failed = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
    assert failed.returncode != 0
    assert flag.read_text() == "someone else's maintenance\n"
    phase = record(tmp_path)["phases"]["maintenance"]
    assert phase["status"] == "skipped" and "maintenance_enabled is false" in phase["reason"]


def test_required_but_not_enabled_stops_before_anything_changes(tmp_path, flag):
    inv = inventory(tmp_path, maintenance_required=True, maintenance_flag_path=str(flag))
    result = run_playbook(release_playbook(tmp_path), inv)
    assert result.returncode != 0
    assert "maintenance_required is true for db1 but maintenance_enabled is false" in result.stdout
    rec = record(tmp_path)
    assert rec["phases"]["maintenance"]["status"] == "failed"
    assert "schema" not in rec["phases"]
    # A tag-limited rerun of a later phase is refused as well.
    rerun = run_playbook(release_playbook(tmp_path), inv, tags="schema")
    assert rerun.returncode != 0
    assert "maintenance_required is true for db1 but maintenance_enabled is false" in rerun.stdout
    assert "schema" not in record(tmp_path)["phases"]


def test_check_mode_plans_the_flag_without_writing_it(tmp_path, flag):
    flag.parent.mkdir()
    inv = inventory(tmp_path, maintenance_enabled=True, maintenance_flag_path=str(flag))
    result = run_playbook(release_playbook(tmp_path), inv, check=True)
    assert result.returncode == 0, result.stdout
    assert not flag.exists()
    assert not (tmp_path / "artifacts" / VERSION / "release.json").exists()


def test_command_driver_runs_the_on_and_off_commands(tmp_path):
    marker = tmp_path / "maint-on"
    inv = inventory(tmp_path, maintenance_enabled=True, maintenance_driver="command",
                    maintenance_on_command="touch %s" % marker, maintenance_off_command="rm -f %s" % marker)
    on = run_playbook(ROOT / "playbooks/maintenance_on.yml", inv)
    assert on.returncode == 0, on.stdout
    assert marker.exists()
    failed = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
    assert failed.returncode != 0
    assert not marker.exists()


def test_http_driver_calls_on_then_off_against_a_real_server(tmp_path):
    with Endpoint() as api:
        inv = inventory(tmp_path, maintenance_enabled=True, maintenance_driver="http",
                        maintenance_http_on_url=api.url + "/maintenance")
        result = run_playbook(release_playbook(tmp_path), inv)
        assert result.returncode == 0, result.stdout
        assert api.calls == [("POST", "/maintenance", {"maintenance": True, "release": VERSION}),
                             ("POST", "/maintenance", {"maintenance": False, "release": VERSION})]
        failed = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
        assert failed.returncode != 0
        assert [c[2]["maintenance"] for c in api.calls[2:]] == [True, False]
        assert record(tmp_path)["phases"]["maintenance"]["where"] == api.url + "/maintenance"


def test_http_off_failure_after_a_failed_phase_is_recorded_and_the_phase_error_still_reported(tmp_path):
    with Endpoint() as api:
        inv = inventory(tmp_path, maintenance_enabled=True, maintenance_driver="http",
                        maintenance_http_on_url=api.url + "/on", maintenance_http_off_url=api.url + "/off")
        assert run_playbook(ROOT / "playbooks/maintenance_on.yml", inv).returncode == 0
        api.fail_with, api.fail_paths = 503, ("/off",)
        result = run_playbook(release_playbook(tmp_path), inv, extra_vars={"fail_phase": True})
        assert result.returncode != 0
        assert ("POST", "/off", {"maintenance": False, "release": VERSION}) in api.calls
        assert "maintenance mode could not be switched off" in result.stdout
        expected = "Phase 'schema' failed on db1: Apply the DDL: the DDL broke at statement 3"
        assert expected in result.stdout, result.stdout[-3000:]
        rec = record(tmp_path)
        assert rec["phases"]["maintenance"]["state"] == "unknown"
        assert rec["phases"]["schema"]["error"].endswith("the DDL broke at statement 3")
