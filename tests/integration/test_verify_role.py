"""The verify phase through ansible-playbook: baseline in the record, verdicts, smoke endpoints against the real
example server (examples/app/backend/server.js), and the watch window."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import FINISH, PLAY_HEADER, VENV_BIN, local_host_vars, run_playbook, write_inventory
from test_verify_outbox_stats import add_events, add_tokens, create_app_tables

VERSION = "v0.0.1-verify-test"
SERVER_JS = ROOT / "examples/app/backend/server.js"

# The part of playbooks/schema.yml that belongs to the verify role: the baseline, taken before the schema role.
BASELINE_PLAYBOOK = """
- name: Capture the baseline as playbooks/schema.yml does
  hosts: databases
  gather_facts: false
  tags: [schema]
""" + PLAY_HEADER + """\
  tasks:
    - name: Capture the outbox health baseline before any schema change
      ansible.builtin.import_role:
        name: verify
        tasks_from: baseline
""" + FINISH


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_server():
    """The example backend, started with node on a free localhost port; yields (base_url, fail_file)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("node is not installed: the smoke tests run the example server (apt-get install nodejs)")
    tmp = Path(short_tmpdir("dbr-app-"))
    fail_file = tmp / "health-fail"
    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", HEALTH_FAIL_FILE=str(fail_file))
    proc = subprocess.Popen([node, str(SERVER_JS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("example server did not start: %s" % proc.stdout.read().decode()) from None
            time.sleep(0.1)
    yield url, fail_file
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)


class Env:
    """A database with the app tables on the session server, an inventory, and a release record directory."""

    def __init__(self, box, db, base: Path):
        self.box, self.db, self.base = box, db, base
        self.artifacts = base / "artifacts"
        self.baseline_playbook = base / "baseline.yml"
        self.baseline_playbook.write_text(BASELINE_PLAYBOOK)

    def inventory(self, **overrides):
        hv = local_host_vars(self.box, ADMIN_USER, ADMIN_PASSWORD, release_db_name=self.db,
                             release_artifacts_dir=str(self.artifacts), verify_watch_seconds=0)
        hv.update(overrides)
        return write_inventory(self.base / "inventory.yml", {"db1": hv})

    def baseline(self, **overrides):
        return run_playbook(self.baseline_playbook, self.inventory(**overrides), {"release_version": VERSION})

    def verify(self, check=False, **overrides):
        return run_playbook("playbooks/verify.yml", self.inventory(**overrides), {"release_version": VERSION},
                            check=check)

    @property
    def record(self):
        return json.loads((self.artifacts / VERSION / "release.json").read_text())


@pytest.fixture
def env(mariadb, dbname):
    base = Path(short_tmpdir("dbr-verify-"))
    yield Env(mariadb, dbname, base)
    shutil.rmtree(base, ignore_errors=True)


def seed(env):
    create_app_tables(env.box, env.db)
    add_events(env.box, env.db, "delivered", 30, delivered_age_seconds=20)
    add_events(env.box, env.db, "pending", 2)
    add_tokens(env.box, env.db, 120)
    add_tokens(env.box, env.db, 5, revoked=True, revoked_age_seconds=86400)


def output(proc):
    return proc.stdout + proc.stderr


def test_healthy_release_passes_and_records_verdict_baseline_and_smoke(env, app_server):
    url, _ = app_server
    seed(env)
    assert env.baseline().returncode == 0
    add_events(env.box, env.db, "delivered", 10, delivered_age_seconds=1)
    proc = env.verify(verify_smoke_endpoints=[
        {"name": "health", "url": url + "/health", "status": [200], "body_contains": '"status":"ok"'},
        {"name": "version", "url": url + "/version", "body_regex": r'"version":"[0-9.]+"'},
    ])
    assert proc.returncode == 0, output(proc)
    assert "Outbox health on db1: OK" in proc.stdout
    phase = env.record["phases"]["verify"]
    assert phase["status"] == "ok"
    assert phase["verdict"] == "ok"
    assert phase["health"]["verdict"] == "ok"
    # The verdict with the baseline beside it.
    assert phase["baseline"]["outbox"]["counts"]["pending"] == 2
    assert phase["stats"]["outbox"]["counts"]["delivered"] == 40
    assert phase["baseline_source"] == "recorded in release.json at " + env.record["phases"]["verify_baseline"][
        "finished"]
    assert [r["name"] for r in phase["smoke"]["results"] if r["ok"]] == ["health", "version"]
    # A dry run verifies too, but does not sit through the watch window.
    started = time.monotonic()
    dry = env.verify(check=True, verify_watch_seconds=600, verify_watch_interval_seconds=60)
    assert dry.returncode == 0, output(dry)
    assert "the 600-second watch window is skipped" in dry.stdout
    assert time.monotonic() - started < 120
    # Nothing the run wrote or printed holds the password.
    for path in env.artifacts.rglob("*"):
        if path.is_file():
            assert ADMIN_PASSWORD not in path.read_text(errors="replace"), path
    assert ADMIN_PASSWORD not in output(proc)


def test_baseline_is_taken_before_the_tables_exist_and_a_rerun_keeps_it(env):
    assert env.baseline().returncode == 0
    first = env.record["phases"]["verify_baseline"]
    assert first["status"] == "ok"
    assert first["baseline"]["outbox"]["present"] is False
    seed(env)
    proc = env.baseline()
    assert proc.returncode == 0, output(proc)
    assert "kept from an earlier run" in proc.stdout
    assert env.record["phases"]["verify_baseline"]["baseline"] == first["baseline"]
    proc = env.baseline(verify_baseline_refresh=True)
    assert proc.returncode == 0, output(proc)
    assert env.record["phases"]["verify_baseline"]["baseline"]["outbox"]["counts"]["pending"] == 2


def test_verify_in_a_new_process_fails_when_a_migration_revoked_many_tokens_and_check_mode_says_so_too(env):
    seed(env)
    assert env.baseline().returncode == 0
    env.box.sql("UPDATE refresh_tokens SET revoked = 1, revoked_at = NOW() WHERE revoked = 0", env.db)
    before = env.record

    # A dry run reads and judges for real (it only reads), so it fails too, but leaves release.json alone.
    proc = env.verify(check=True)
    assert proc.returncode != 0
    assert env.record == before
    check_record = json.loads((env.artifacts / VERSION / "release.check.json").read_text())
    assert check_record["phases"]["verify"]["status"] == "failed"
    assert check_record["phases"]["verify"]["baseline"]["refresh_tokens"]["revoked"] == 5

    proc = env.verify()
    assert proc.returncode != 0
    assert "Revoked refresh tokens rose from 5 to 125 (+120 of 125 tokens)" in output(proc)
    phase = env.record["phases"]["verify"]
    assert phase["status"] == "failed"
    assert phase["verdict"] == "fail"
    assert phase["baseline"]["refresh_tokens"]["revoked"] == 5
    assert phase["stats"]["refresh_tokens"]["revoked"] == 125
    assert "Outbox health verdict fail" in phase["error"]


def test_without_a_baseline_verify_warns_and_names_the_schema_phase_or_fails_when_required(env):
    seed(env)
    proc = env.verify()
    assert proc.returncode == 0, output(proc)
    phase = env.record["phases"]["verify"]
    assert phase["verdict"] == "warn"
    assert phase["baseline"] is None
    assert any("run the schema phase first" in r for r in phase["health"]["reasons"])
    proc = env.verify(verify_require_baseline=True)
    assert proc.returncode != 0
    assert "run the schema" in output(proc) and "--tags schema" in output(proc)
    proc = env.verify(verify_fail_on_warn=True)
    assert proc.returncode != 0
    assert env.record["phases"]["verify"]["status"] == "failed"


def test_a_failing_smoke_endpoint_fails_verify_after_its_retries(env, app_server):
    url, _ = app_server
    seed(env)
    assert env.baseline().returncode == 0
    proc = env.verify(verify_smoke_attempts=3, verify_smoke_delay=0.2, verify_smoke_endpoints=[
        {"name": "health", "url": url + "/health"},
        {"name": "orders", "url": url + "/api/orders", "status": [200]},
    ])
    assert proc.returncode != 0
    assert "orders: status 404, expected 200" in output(proc)
    phase = env.record["phases"]["verify"]
    assert phase["status"] == "failed"
    assert phase["health"]["verdict"] == "ok"
    results = {r["name"]: r for r in phase["smoke"]["results"]}
    assert results["health"]["ok"] is True and results["health"]["attempts"] == 1
    assert results["orders"]["ok"] is False and results["orders"]["attempts"] == 3
    # Back-off: waits of 0.2 s then 0.4 s between the three tries.
    assert results["orders"]["elapsed_seconds"] >= 0.6


def test_watch_window_polls_and_prints_progress(env, app_server):
    url, _ = app_server
    seed(env)
    assert env.baseline().returncode == 0
    proc = env.verify(verify_watch_seconds=3, verify_watch_interval_seconds=1,
                      verify_smoke_endpoints=[{"name": "health", "url": url + "/health"}])
    assert proc.returncode == 0, output(proc)
    for poll in (1, 2, 3):
        assert "Watch %d/3 at" % poll in proc.stdout
    assert "Watch 4/" not in proc.stdout
    polls = env.record["phases"]["verify"]["watch"]["polls"]
    assert [p["poll"] for p in polls] == [1, 2, 3]
    assert all(p["verdict"] == "ok" and p["endpoints_ok"] == 1 for p in polls)
    # Poll 3 is due 3 s into the window (waits are rounded to whole seconds).
    assert polls[-1]["at_seconds"] >= 2.5


def test_watch_window_stops_at_the_first_failing_poll(env, app_server):
    url, fail_file = app_server
    seed(env)
    assert env.baseline().returncode == 0
    hv = env.inventory(verify_watch_seconds=30, verify_watch_interval_seconds=1,
                       verify_smoke_endpoints=[{"name": "health", "url": url + "/health"}])
    cmd = [str(VENV_BIN / "ansible-playbook"), "playbooks/verify.yml", "-i", str(hv),
           "-e", json.dumps({"release_version": VERSION})]
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   PYTHONUNBUFFERED="1", PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Watch 1/30 at" in line:
            fail_file.write_text("break it")  # the application turns unhealthy after the first poll
    rc = proc.wait(timeout=120)
    out = "".join(lines)
    assert rc != 0, out
    phase = env.record["phases"]["verify"]
    assert phase["status"] == "failed"
    verdicts = [p["verdict"] for p in phase["watch"]["polls"]]
    # The first poll after the break fails (normally poll 2; poll 3 if this machine is slow to read the output),
    # and the watch stops there instead of running its 30 polls.
    failed_at = len(verdicts)
    assert failed_at in (2, 3) and verdicts == ["ok"] * (failed_at - 1) + ["fail"], verdicts
    assert "Health failed during the watch window on db1, poll %d of 30" % failed_at in out
    assert "health failed" in " ".join(phase["watch"]["polls"][-1]["reasons"])
    assert "Watch %d/30" % (failed_at + 1) not in out
    assert time.monotonic() - started < 30
