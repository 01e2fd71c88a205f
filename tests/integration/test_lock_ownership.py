"""A run that does not hold the release lock changes nothing that is not its own (issue 13), with real runs.

1. Two concurrent runs of the same release share the artifacts directory. The first holds the lock in the middle
   of its schema phase (a DDL statement that waits for a user lock the test holds, on the real server, until the
   second run is over); the second is refused at the lock. The second must
   leave the first's release.json byte for byte, write no report, leave the maintenance flag on, and the first must
   complete.
2. playbooks/preflight.yml run alone takes the lock and releases it at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import FINISH, PLAY_HEADER, VENV_BIN, local_host_vars, recap, run_playbook, write_inventory

VERSION = "v4.0.0-ownership"
PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
HOLD = "dbrelease_test_hold"


@pytest.fixture
def release(mariadb, dbname):
    base = Path(short_tmpdir("dbr-own-"))
    client = shutil.which("mariadb") or shutil.which("mysql")
    with open(PRE_RELEASE, "rb") as handle:
        subprocess.run([client, "--no-defaults", "-uroot", "-S", mariadb.socket, dbname], stdin=handle, check=True)
    # The release's DDL, then a statement that waits (on the plan copy, and again for real) until the test lets go
    # of a user lock, so that a second run arrives while the first holds the release lock mid-schema, however long
    # the second run takes on a loaded machine.
    slow = base / "slow.sql"
    slow.write_text(DDL.read_text() + "\nCREATE TABLE IF NOT EXISTS release_pause AS SELECT GET_LOCK('%s', 600) "
                    "AS got, RELEASE_LOCK('%s') AS released;\n" % (HOLD, HOLD))
    flag = base / "www" / "maintenance.flag"
    flag.parent.mkdir()
    lock_schema = "lk_" + dbname
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, release_environment="staging",
                         release_ddl_files=[str(slow)], release_migration_command="",
                         release_backup_dir=str(base / "backups"), release_artifacts_dir=str(base / "artifacts"),
                         release_git_repo="", lock_schema=lock_schema, backup_restore_test=False,
                         maintenance_enabled=True, maintenance_flag_path=str(flag))
    inventory = write_inventory(base / "inventory.yml", {"db1": hv})
    state = {"base": base, "inventory": inventory, "flag": flag, "record_dir": base / "artifacts" / VERSION,
             "lock_schema": lock_schema, "box": mariadb}
    yield state
    if state.get("first") is not None and state["first"].poll() is None:  # a failed test: stop its run
        state["first"].kill()
        state["first"].wait()
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % lock_schema)
    shutil.rmtree(base, ignore_errors=True)


def start(inventory, playbook="release.yml"):
    """Starts ansible-playbook; its output goes to a file (a pipe nobody reads while the test waits could fill and
    stall the run). `output(proc)` waits for the end and returns it."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), playbook, "-i", str(inventory),
                             "-e", json.dumps({"release_version": VERSION})],
                            cwd=ROOT, env=env, text=True, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def output(proc, timeout=300):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        proc.log.seek(0)
        raise AssertionError("ansible-playbook did not end within %d s; its output:\n%s"
                             % (timeout, proc.log.read()[-6000:])) from None
    proc.log.seek(0)
    text = proc.log.read()
    proc.log.close()
    return text


def phase_status(record_dir, name):
    try:
        return json.loads((record_dir / "release.json").read_text())["phases"][name]["status"]
    except (OSError, ValueError, KeyError):
        return None


def lock_row(box, schema):
    rows = box.sql("SELECT holder FROM `%s`.dbrelease_lock" % schema)
    return json.loads(rows[0][0]) if rows else None


def test_a_second_run_refused_at_the_lock_changes_nothing_and_the_first_completes(release):
    holder = release["box"].root()
    with holder.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 10)", (HOLD,))
        assert cur.fetchone()[0] == 1
    try:
        check_the_second_run_changes_nothing(release)
    finally:
        holder.close()  # lets the first run go on
    assert_the_first_run_completes(release)


def check_the_second_run_changes_nothing(release):
    release["first"] = first = start(release["inventory"])
    # Waits for an event (the record says the schema phase runs), not for a time: the deadline only bounds a broken
    # run on a loaded machine.
    deadline = time.monotonic() + 600
    while phase_status(release["record_dir"], "schema") != "running":
        assert first.poll() is None, output(first)[-4000:]
        assert time.monotonic() < deadline, "the first run never reached its schema phase"
        time.sleep(0.2)
    # The first run holds the lock, in the middle of its schema change, with the application in maintenance.
    record_before = (release["record_dir"] / "release.json").read_bytes()
    assert release["flag"].exists()
    holder = lock_row(release["box"], release["lock_schema"])

    second = start(release["inventory"])
    out = output(second)
    assert phase_status(release["record_dir"], "schema") == "running", "the first run is not mid-schema any more"
    assert second.returncode != 0, out
    assert recap(out)["db1"]["failed"] == 1
    assert "is held by" in out and "release %s" % VERSION in out
    assert "Nothing was written: the release record belongs to the run that holds the lock." in out
    # Nothing of the first run's was touched: its record, its report (none yet), its maintenance mode, its lock.
    assert (release["record_dir"] / "release.json").read_bytes() == record_before
    assert not (release["record_dir"] / "report.md").exists()
    assert not (release["record_dir"] / "release.check.json").exists()
    assert release["flag"].exists()
    assert lock_row(release["box"], release["lock_schema"]) == holder
    assert ADMIN_PASSWORD not in out


def assert_the_first_run_completes(release):
    first = release["first"]
    out_first = output(first)
    assert first.returncode == 0, out_first[-4000:]
    record = json.loads((release["record_dir"] / "release.json").read_text())
    assert {name: p["status"] for name, p in record["phases"].items() if p["status"] != "ok"} == {
        "migrate": "skipped", "watch": "skipped", "tag": "skipped"}, record["phases"]
    assert record["phases"]["lock"]["released"] is True and record["phases"]["maintenance"]["state"] == "off"
    assert not release["flag"].exists() and lock_row(release["box"], release["lock_schema"]) is None
    assert (release["record_dir"] / "report.md").read_text().startswith("# Release %s on db1: OK" % VERSION)
    assert ADMIN_PASSWORD not in out_first


def test_preflight_run_alone_releases_the_lock_it_took(release):
    proc = run_playbook("playbooks/preflight.yml", release["inventory"], extra_vars={"release_version": VERSION})
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert lock_row(release["box"], release["lock_schema"]) is None
    lock = json.loads((release["record_dir"] / "release.json").read_text())["phases"]["lock"]
    assert lock["status"] == "ok" and lock["released"] is True and lock["token"]
    # So a release right after it is not refused.
    again = start(release["inventory"], "playbooks/preflight.yml")
    out = output(again)
    assert again.returncode == 0, out[-4000:]
    assert lock_row(release["box"], release["lock_schema"]) is None


REFRESH_PLAYBOOK = """
- name: Take the lock, refresh it at a phase's start, then lose it to another run
  hosts: databases
  gather_facts: false
""" + PLAY_HEADER + """\
  tasks:
    - name: Take the release lock
      ansible.builtin.import_role:
        name: lock
    - name: Let the refresh interval pass
      ansible.builtin.pause:
        seconds: 3
    - name: Run phase one, whose start refreshes the lock
      block:
        - {name: Start phase one, release_phase: {phase: one}}
        - {name: Finish phase one, release_phase: {phase: one, status: ok}}
      rescue:
        - {name: Record why phase one failed, release_phase: {phase: one, status: failed}}
        - {name: Stop, ansible.builtin.meta: end_host}
    - name: Another run takes the lock over (as after an expiry)
      ansible.builtin.command:
        argv: [mariadb, --no-defaults, -uroot, -S, "{{ release_db_socket }}", -e,
               "UPDATE `{{ lock_schema }}`.dbrelease_lock SET token = REPEAT('9', 32)"]
      changed_when: true
    - name: Let the refresh interval pass again
      ansible.builtin.pause:
        seconds: 3
    - name: Run phase two, whose start finds the lock lost
      block:
        - {name: Start phase two, release_phase: {phase: two}}
        - {name: Finish phase two, release_phase: {phase: two, status: ok}}
      rescue:
        - {name: Record why phase two failed, release_phase: {phase: two, status: failed}}
        - {name: Stop, ansible.builtin.meta: end_host}
""" + FINISH


def test_a_phase_refreshes_the_lock_and_a_run_that_lost_it_writes_nothing_more(release):
    playbook = release["base"] / "refresh.yml"
    playbook.write_text(REFRESH_PLAYBOOK)
    proc = run_playbook(playbook, release["inventory"],
                        extra_vars={"release_version": VERSION, "lock_refresh_seconds": 2})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    row = release["box"].sql("SELECT acquired_at, heartbeat_at, token FROM `%s`.dbrelease_lock"
                             % release["lock_schema"])[0]
    assert row[1] > row[0], "phase one's start did not refresh the lock"
    assert "lost the release lock" in out
    assert "Nothing was written: the release record belongs to the run that holds the lock." in out
    phases = json.loads((release["record_dir"] / "release.json").read_text())["phases"]
    assert phases["one"]["status"] == "ok" and "two" not in phases
    assert "released" not in phases["lock"]
    assert not (release["record_dir"] / "report.md").exists()
    assert not release["flag"].exists()  # this play never switched maintenance on
