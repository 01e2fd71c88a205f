"""The schema phase's run as a detached job, through ansible-playbook against a real MariaDB and a real
pt-online-schema-change: the console shows the online statement's progress while it runs, and Ctrl-C mid-change
aborts it, leaving the original table whole and no trace of the tool.

pt-osc is held mid-copy deterministically by its own throttle: `schema_online_max_load: Threads_running=8`, and the
test runs `SELECT SLEEP()` in 12 sessions of its own while it needs the change paused (KILL QUERY lets it go on).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pymysql
import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, short_tmpdir
from ddl_load import checksum, make_table
from helpers import FINISH, PLAY_HEADER, ROOT, VENV_BIN, local_host_vars, recap, write_inventory
from sandbox_db import Sandbox

ROWS = 300_000
VERSION = "v0.0.1-schema-job"
PLAYBOOK = """
- name: Schema phase only
  hosts: databases
  gather_facts: false
  tags: [schema]
""" + PLAY_HEADER + """\
  roles:
    - role: schema
""" + FINISH
PROGRESS_RE = re.compile(r"^\[db1\] schema: statement 1/1 release\.sql #1 \(line 1\) on entries, online via "
                         r"pt-online-schema-change: (.+) \((\d+\.\d) s\)$")


@pytest.fixture(scope="module")
def server():
    box = Sandbox(short_tmpdir())
    box.start(extra_args=("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"))
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


class Throttle:
    """Sessions of the test's own running SELECT SLEEP(): Threads_running over the change's max load pauses pt-osc."""

    def __init__(self, box, sessions=12):
        self.box = box
        self.conns = [pymysql.connect(unix_socket=box.socket, user="root") for _ in range(sessions)]
        self.threads = []

    def hold(self):
        def sleep(conn):
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT SLEEP(600)")
            except pymysql.err.MySQLError:
                pass

        self.threads = [threading.Thread(target=sleep, args=(c,), daemon=True) for c in self.conns]
        for thread in self.threads:
            thread.start()

    def release(self):
        killer = self.box.root()
        try:
            with killer.cursor() as cur:
                for conn in self.conns:
                    cur.execute("KILL QUERY %d" % conn.thread_id())
        finally:
            killer.close()
        for thread in self.threads:
            thread.join(10)

    def close(self):
        for conn in self.conns:
            conn.close()


class Playbook:
    """ansible-playbook started in its own process group, its output read line by line as it comes, timed."""

    def __init__(self, playbook, inventory):
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
        self.proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", str(inventory)],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.ended = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
        self.ended = time.monotonic()

    def progress(self):
        return [(t, m) for t, text in list(self.lines) for m in [PROGRESS_RE.match(text)] if m]

    def wait_for(self, predicate, timeout=120, what="a line"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if self.ended is not None:
                break
            time.sleep(0.05)
        raise AssertionError("never saw %s:\n%s" % (what, self.text()[-4000:]))

    def finish(self, timeout=180):
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(30)
        return self.text()

    def text(self):
        return "\n".join(text for _, text in list(self.lines))


def setup_release(server, tmp_path, alter, rows=ROWS):
    db = "ledger_" + uuid.uuid4().hex[:6]
    server.sql("CREATE DATABASE `%s`" % db)
    make_table(server, db, "entries", rows)
    ddl = tmp_path / "release.sql"
    ddl.write_text(alter)
    playbook = tmp_path / "schema_only.yml"
    playbook.write_text(PLAYBOOK)
    hv = local_host_vars(server, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=db,
                         release_ddl_files=[str(ddl)], release_artifacts_dir=str(tmp_path / "artifacts"),
                         schema_online_min_bytes=1 << 20, schema_online_progress_seconds=1,
                         schema_online_max_load="Threads_running=8", schema_online_chunk_time=0.2,
                         schema_lock_wait_timeout=1)
    inventory = write_inventory(tmp_path / "inventory.yml", {"db1": hv})
    return db, playbook, inventory


def leftovers(box, db):
    triggers = box.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%s'" % db)
    tables = box.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME "
                     "LIKE '\\_%%'" % db)
    return [r[0] for r in triggers], [r[0] for r in tables]


def pt_osc_processes(db):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                args = Path("/proc/%s/cmdline" % pid).read_bytes()
            except OSError:
                continue
            if b"pt-online-schema-change" in args and (",D=%s," % db).encode() in args:
                found.append(int(pid))
    return found


def release_record(tmp_path):
    return json.loads((tmp_path / "artifacts" / VERSION / "release.json").read_text())


def test_the_console_shows_the_online_change_while_it_runs(server, tmp_path):
    # Three times the rows: the copy must outlast pt-osc's first percent line (after 1 s) and the console's poll that
    # shows it; with 300 000 rows a quiet machine could copy them all in between.
    db, playbook, inventory = setup_release(server, tmp_path, "ALTER TABLE entries MODIFY amount BIGINT NOT NULL;\n",
                                            rows=3 * ROWS)
    before = checksum(server, db, "entries")
    throttle = Throttle(server)
    try:
        run = Playbook(playbook, inventory)
        # The first line with pt-osc's percent; then the change is held (paused by its max load) until two more
        # lines have come: they come while the statement runs, from the job, not after the module returned.
        first = run.wait_for(lambda: [p for p in run.progress() if "% copied" in p[1].group(1)],
                             what="a progress line with pt-osc's percent")[0]
        throttle.hold()
        run.wait_for(lambda: len([p for p in run.progress() if p[0] > first[0]]) >= 2 and
                     any("paused: Threads_running=" in p[1].group(1) for p in run.progress()),
                     what="two more progress lines, one saying the change is paused")
        seen_while_running = run.progress()
        assert run.ended is None and run.proc.poll() is None
        throttle.release()
        output = run.finish()
    finally:
        throttle.close()
    assert recap(output)["db1"]["failed"] == 0, output[-4000:]
    end = next(t for t, text in run.lines if text.startswith("PLAY RECAP"))
    assert len(seen_while_running) >= 3 and all(t < end for t, _ in seen_while_running)
    percent = re.match(r"(\d+)% copied, (\d\d:\d\d) remain$", first[1].group(1))
    assert percent and 0 <= int(percent.group(1)) <= 100, first[1].group(0)
    intervals = [b[0] - a[0] for a, b in zip(seen_while_running, seen_while_running[1:], strict=False)]
    # The record is the module's own result, as without the job: the change, what was applied, the tool's report.
    schema = release_record(tmp_path)["phases"]["schema"]
    assert schema["status"] == "ok" and schema["changed"] is True
    assert [(a["file"], a["index"]) for a in schema["applied"]] == [("release.sql", 1)]
    assert [(c["object"], c["action"]) for c in schema["changes"]] == [("table entries", "alter")]
    assert schema["failed_statement"] == {}
    online = schema["execution"]["statements"][0]["online"]
    assert online["ok"] is True and online["progress"] and online["paused_seconds"] == 0.0
    assert "`amount` bigint(20) NOT NULL" in server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]
    assert checksum(server, db, "entries") == before and leftovers(server, db) == ([], [])
    assert ADMIN_PASSWORD not in output
    print("progress lines while running: %d, intervals %s s" % (
        len(seen_while_running), ", ".join("%.1f" % i for i in intervals)))


def test_ctrl_c_mid_change_aborts_it_and_leaves_the_table_whole(server, tmp_path):
    alter = "ALTER TABLE entries MODIFY account_id BIGINT NOT NULL;\n"
    db, playbook, inventory = setup_release(server, tmp_path, alter)
    before = checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]
    throttle = Throttle(server)
    try:
        run = Playbook(playbook, inventory)
        run.wait_for(run.progress, what="a progress line of the online change")
        throttle.hold()
        run.wait_for(lambda: any("paused: Threads_running=" in p[1].group(1) for p in run.progress()),
                     what="the change paused mid-copy")
        # Mid-change: pt-osc's triggers and new table are there.
        triggers, tables = leftovers(server, db)
        assert triggers and "_entries_new" in tables and pt_osc_processes(db)
        os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C does to the foreground process group
        output = run.finish()
    finally:
        throttle.release()
        throttle.close()
    # (What the worker prints after the interrupt may not reach the console: Ansible's main process has gone.)
    assert "User interrupted execution" in output, output[-4000:]
    assert (checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]) == before
    assert checksum(server, db, "entries")[0] == ROWS
    assert leftovers(server, db) == ([], [])
    assert pt_osc_processes(db) == []
    # The record says the statement did not take effect.
    schema = release_record(tmp_path)["phases"]["schema"]
    assert schema["status"] == "failed" and "interrupted on the controller" in schema["error"]
    assert schema["applied"] == [] and schema["changes"] == []
    failed = schema["failed_statement"]
    assert (failed["file"], failed["index"]) == ("release.sql", 1)
    assert "aborted" in failed["error"] and "the original table is untouched" in failed["error"]
    online = schema["execution"]["statements"][0]["online"]
    assert online["original_untouched"] is True and online["aborted"].startswith("cancelled")
    assert ADMIN_PASSWORD not in output


def test_a_job_whose_controller_stops_polling_aborts_the_online_change(server, tmp_path):
    from conftest import login_params
    from helpers import run_module

    db, _playbook, _inventory = setup_release(server, tmp_path, "ALTER TABLE entries MODIFY amount BIGINT NOT NULL;\n")
    before = checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]
    args = dict(login_params(server), db=db, ddl_files=[str(tmp_path / "release.sql")], online_min_bytes=1 << 20,
                online_progress_seconds=1, online_max_load="Threads_running=8", online_chunk_time=0.2,
                lock_wait_timeout=1, lease_seconds=3)
    throttle = Throttle(server)
    try:
        started = run_module("schema_apply", dict(args, mode="start"))
        assert started["finished"] is False and started["job_dir"], started
        status = {"mode": "status", "job_dir": started["job_dir"], "db": db, "lease_seconds": 3}
        # Polled (the lease renewed) until pt-osc has made its triggers; then held by the throttle, and left alone.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not leftovers(server, db)[0]:
            assert run_module("schema_apply", status)["state"] == "running"
            time.sleep(0.3)
        throttle.hold()
        assert leftovers(server, db)[0] and pt_osc_processes(db)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (pt_osc_processes(db) or leftovers(server, db) != ([], [])):
            time.sleep(0.3)
        final = run_module("schema_apply", dict(status, wait_seconds=1))
    finally:
        throttle.release()
        throttle.close()
    assert final["state"] == "done", final
    result = final["result"]
    assert result["failed"] is True and "stopped polling the schema" in result["msg"]
    assert "the original table is untouched" in result["msg"] and result["record"]["applied"] == []
    assert (checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]) == before
    assert leftovers(server, db) == ([], []) and pt_osc_processes(db) == []
    assert not os.path.exists(started["job_dir"])
