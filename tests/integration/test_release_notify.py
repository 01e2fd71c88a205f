"""The release tells people, reads the logs during its watch, and writes the Prometheus textfile; then
post_release_watch.yml keeps watching it. Real runs of release.yml and post_release_watch.yml against a real MariaDB,
a real HTTP receiver (and one that is down, one that is slow) and a real SMTP server with STARTTLS and a login; the
test writes errors into the application log while the release watches it, and rotates it.

One release (module-scoped) is shared by the checks of what it told and by the watch runs that follow it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, login_params, short_tmpdir
from helpers import local_host_vars, run_module, run_playbook, write_inventory
from prometheus_client.parser import text_string_to_metric_families
from receivers import HttpReceiver, SmtpReceiver, closed_port_url, make_certificate

VERSION = "v7.1.0-notify"
PRE_RELEASE = ROOT / "examples/app/db/schema_pre_release.sql"
DDL = ROOT / "examples/app/infra/ddls/create_distributed_tables.sql"
SMTP_PASSWORD = "smtp-'Pw\"#9"
TOKEN = "T0KEN-in-the-url"


def load_schema(box, dbname, path=PRE_RELEASE):
    client = shutil.which("mariadb") or shutil.which("mysql")
    with open(path, "rb") as handle:
        subprocess.run([client, "--no-defaults", "-uroot", "-S", box.socket, dbname], stdin=handle, check=True)


class Setup:
    """A database, the receivers, an application log and an inventory that releases it with notifications."""

    def __init__(self, box, dbname, base: Path, failing_receivers=True, **overrides):
        self.box, self.dbname, self.base = box, dbname, base
        self.record_dir = base / "artifacts" / VERSION
        self.hook, self.slow = HttpReceiver(), HttpReceiver(delay=4)
        cert, key = make_certificate(base)
        self.smtp = SmtpReceiver("starttls", cert, key, login=("dbrelease", SMTP_PASSWORD))
        self.app_log = base / "logs" / "backend.log"
        self.app_log.parent.mkdir()
        self.app_log.write_text("2026-01-01T00:00:00Z ERROR an error from before the release: not counted\n")
        self.textfile = base / "textfile" / "dbrelease.prom"
        self.textfile.parent.mkdir()
        hv = local_host_vars(
            box, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname, release_environment="staging",
            release_ddl_files=[str(DDL)], release_migration_command="", release_backup_dir=str(base / "backups"),
            release_artifacts_dir=str(base / "artifacts"), release_git_repo="", lock_schema="lk_" + dbname,
            backup_restore_test=False,
            release_notify_webhooks=[self.hook.url("/hooks/" + TOKEN)]
            + ([self.slow.url("/slow"), closed_port_url()] if failing_receivers else []),
            release_notify_email={"to": ["dba@example.test"], "from": "dbrelease@example.test",
                                  "smtp_host": "127.0.0.1", "smtp_port": self.smtp.port, "tls": "starttls",
                                  "username": "dbrelease", "password": SMTP_PASSWORD, "ca_file": cert},
            release_notify_timeout=1,
            release_watch_log_files=[str(self.app_log)],
            release_metrics_textfile=str(self.textfile),
            release_verify_watch_minutes=0.1, verify_watch_interval_seconds=3)
        hv.update(overrides)
        self.inventory = write_inventory(base / "inventory.yml", {"db1": hv})

    def run(self, playbook="release.yml", **kwargs):
        extra = {"release_version": VERSION}
        extra.update(kwargs.pop("extra_vars", {}))
        return run_playbook(playbook, self.inventory, extra_vars=extra, **kwargs)

    @property
    def record(self):
        return json.loads((self.record_dir / "release.json").read_text())

    def posts(self):
        return self.hook.json_bodies()

    def close(self):
        for receiver in (self.hook, self.slow, self.smtp):
            receiver.close()


def phase_status(record_dir, name):
    try:
        return json.loads((record_dir / "release.json").read_text())["phases"][name]["status"]
    except (OSError, ValueError, KeyError):
        return None


def text(proc):
    return proc.stdout[-6000:] + proc.stderr[-3000:]


def assert_no_secret(*blobs):
    for blob in blobs:
        for secret in (ADMIN_PASSWORD, SMTP_PASSWORD, TOKEN):
            assert secret not in blob, "%r reached %s" % (secret, blob[:300])


@pytest.fixture(scope="module")
def released(mariadb):
    dbname = "shop-eu_notify"
    mariadb.sql("CREATE DATABASE `%s`" % dbname)
    load_schema(mariadb, dbname)
    base = Path(short_tmpdir("dbr-ntf-"))
    setup = Setup(mariadb, dbname, base)

    def application():
        """The application logs errors while the release verifies, then rotates its log and logs more once the
        verify phase has read the logs (it writes the textfile right after): only a watch poll can count those."""
        deadline = time.monotonic() + 300
        while phase_status(setup.record_dir, "verify") != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(setup.app_log, "a") as handle:
            handle.write('{"level":"error","msg":"outbox relay failed","err":"ECONNRESET"}\n')
            handle.write("2026-12-01T10:15:01Z WARN slow query: 2300 ms\n")
        while not setup.textfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.rename(setup.app_log, str(setup.app_log) + ".1")
        with open(setup.app_log, "a") as handle:
            handle.write("2026-12-01T10:16:00Z ERROR relay: cannot deliver event 91\n")
            handle.write("Error: ER_LOCK_DEADLOCK: Deadlock found when trying to get lock\n")

    writer = threading.Thread(target=application, daemon=True)
    writer.start()
    started = time.monotonic()
    proc = setup.run()
    setup.seconds = time.monotonic() - started
    writer.join(5)
    setup.proc = proc
    yield setup
    setup.close()
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % dbname)
    mariadb.sql("DROP DATABASE IF EXISTS `lk_%s`" % dbname)
    shutil.rmtree(base, ignore_errors=True)


def test_the_release_passes_and_tells_its_start_and_its_end_through_every_driver(released):
    assert released.proc.returncode == 0, text(released.proc)
    starts = [p for p in released.posts() if p["dbrelease"]["event"] == "start"]
    ends = [p for p in released.posts() if p["dbrelease"]["event"] == "finish"]
    assert len(starts) == 1 and len(ends) == 1, released.posts()
    assert starts[0]["title"] == "dbrelease %s on db1 (shop-eu_notify): started" % VERSION
    end = ends[0]
    assert end["title"] == "dbrelease %s on db1 (shop-eu_notify): OK" % VERSION
    assert end["dbrelease"]["outcome"] == "success" and end["dbrelease"]["environment"] == "staging"
    assert end["dbrelease"]["phases"]["schema"] == "ok" and end["dbrelease"]["verdict"] == "warn"
    assert "Log lines since the release started: app_error 2, app_warning 1, deadlock 1." in end["text"]
    assert end["dbrelease"]["report"] == str(released.record_dir / "report.md")
    subjects = [m["data"].split("Subject: ", 1)[1].splitlines()[0] for m in released.smtp.messages]
    assert subjects == [starts[0]["title"], end["title"]]
    assert released.smtp.logins and all(login == "dbrelease" for _mech, login in released.smtp.logins)
    assert_no_secret(*(json.dumps(p) for p in released.posts()), *(m["data"] for m in released.smtp.messages),
                     json.dumps(released.record), (released.record_dir / "report.md").read_text())


def test_receivers_that_are_down_or_slow_are_recorded_not_fatal(released):
    notes = released.record["notifications"]
    for event in ("start", "finish"):
        deliveries = notes[event]["deliveries"]
        assert [d["driver"] for d in deliveries] == ["webhook", "webhook", "webhook", "email"]
        assert [d["ok"] for d in deliveries] == [True, False, False, True], deliveries
        assert deliveries[1]["error"] == "timed out after 1 s" and deliveries[2]["error"] == "connection refused"
        assert all(TOKEN not in d["target"] for d in deliveries)
    report = (released.record_dir / "report.md").read_text()
    assert "## Notifications" in report and "timed out after 1 s" in report
    output = " ".join((released.proc.stdout + released.proc.stderr).split())
    assert "was not delivered: timed out after 1 s (the release goes on; recorded)" in output


def test_the_logs_are_read_from_the_release_start_through_the_rotation(released):
    preflight = released.record["phases"]["preflight"]["log_marks"]
    assert {f["kind"] for f in preflight["files"]} == {"server", "application"}
    logs = released.record["phases"]["verify"]["logs"]
    assert logs["counts"] == {"app_error": 2, "app_warning": 1, "deadlock": 1}, logs
    server, app = logs["files"]
    assert server["path"] == str(released.box.log) and server["status"] == "ok"
    assert app["path"] == str(released.app_log) and app["status"] == "ok"
    assert logs["health"]["verdict"] == "warn" and any("app_error" in r for r in logs["health"]["reasons"])
    # The lines written after the verify phase's own read (the rotation, the second error, the deadlock) were
    # counted by the watch's polls.
    polls = released.record["phases"]["verify"]["watch"]["polls"]
    assert len(polls) == 2 and all(p["verdict"] == "warn" for p in polls), polls
    assert polls[-1]["logs"] == {"error": 3, "warning": 1}, polls
    report = (released.record_dir / "report.md").read_text()
    assert "## Logs since the release started" in report and "backend.log" in report


def test_the_textfile_holds_the_figures_of_the_last_poll(released):
    families = {f.name: f for f in text_string_to_metric_families(released.textfile.read_text())}
    pending = [s for s in families["dbrelease_outbox_events"].samples if s.labels["status"] == "pending"]
    assert pending and pending[0].labels["database"] == "shop-eu_notify" and pending[0].value == 0
    assert families["dbrelease_verify_verdict"].samples[0].value == 1  # warn: the application logged errors
    lines = {s.labels["pattern"]: s.value for s in families["dbrelease_log_matched_lines"].samples}
    assert lines == {"app_error": 2, "app_warning": 1, "deadlock": 1}
    assert [n for n in os.listdir(released.textfile.parent)] == ["dbrelease.prom"]


def run_watch(released, **extra):
    before = len(released.posts())
    proc = released.run("post_release_watch.yml", extra_vars=extra)
    told = [p for p in released.posts()[before:] if p["dbrelease"]["event"] == "watch"]
    return proc, told, released.record["phases"]["post_release_watch"]


def test_the_watch_tells_a_regression_once_and_its_end_once(released):
    if released.proc.returncode:
        pytest.skip("the release failed")
    proc, told, watch = run_watch(released)
    assert proc.returncode == 0, text(proc)
    assert watch["verdict"] == "ok" and watch["change"] == "unchanged" and watch["runs"] == 1 and not told
    assert watch["logs"]["new_counts"] == {}  # the release's own verify read the logs up to its end
    families = {f.name for f in text_string_to_metric_families(released.textfile.read_text())}
    assert "dbrelease_watch_end_timestamp_seconds" in families

    # The relay stops: 1500 events pending, more than the baseline's + 1000.
    released.box.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
                     "SELECT 'order', seq, 'order.created', '{}' FROM seq_1_to_1500", released.dbname)
    with open(released.app_log, "a") as handle:
        handle.write("2026-12-02T10:00:00Z ERROR relay: cannot deliver event 1501\n")
    proc, told, watch = run_watch(released)
    assert proc.returncode != 0 and "found it unhealthy" in proc.stdout, text(proc)
    assert watch["verdict"] == "fail" and watch["change"] == "regression" and watch["runs"] == 2
    assert watch["logs"]["new_counts"] == {"app_error": 1}
    assert len(told) == 1 and told[0]["dbrelease"]["outcome"] == "regression", told
    assert "Verdict FAIL (previous run: ok)." in told[0]["text"] and "backlog grew" in told[0]["text"]

    proc, told, watch = run_watch(released)
    assert proc.returncode != 0 and watch["change"] == "unchanged" and watch["runs"] == 3
    assert told == []  # a lasting problem is told once

    # The period is over (a watch of 1 second): the run says so, tells it once, and reads nothing.
    proc, told, watch = run_watch(released, release_watch_hours=0.0003)
    assert proc.returncode == 0, text(proc)
    assert watch["status"] == "skipped" and watch["state"] == "ended" and "nothing more to verify" in watch["reason"]
    assert [t["dbrelease"]["outcome"] for t in told] == ["watch_ended"] and watch["runs"] == 3
    assert [h["verdict"] for h in watch["history"]] == ["ok", "fail", "fail"]
    proc, told, watch = run_watch(released, release_watch_hours=0.0003)
    assert proc.returncode == 0 and told == [] and watch["change"] == "unchanged"


def test_a_rollback_tells_its_start_and_how_it_ended(released):
    """The last use of the shared release: rollback.yml restores its backup and tells it through every driver."""
    if released.proc.returncode:
        pytest.skip("the release failed")
    before = len(released.posts())
    proc = released.run("rollback.yml", extra_vars={"release_rollback_confirm": True})
    assert proc.returncode == 0, text(proc)
    told = released.posts()[before:]
    assert [(p["dbrelease"]["event"], p["dbrelease"]["outcome"]) for p in told] == [
        ("rollback_start", "rollback_start"), ("rollback", "rollback")], told
    assert told[0]["title"].endswith(": rollback started") and told[1]["title"].endswith(": ROLLED BACK")
    assert told[1]["dbrelease"]["phases"]["rollback"] == "ok" and "back at the release's backup" in told[1]["text"]
    assert "Subject: " + told[1]["title"] in released.smtp.messages[-1]["data"]
    notes = released.record["notifications"]
    assert notes["rollback_start"]["sent"] == 2 and notes["rollback"]["outcome"] == "rollback"
    assert_no_secret(json.dumps(told), released.smtp.messages[-1]["data"], json.dumps(released.record))


def test_a_failed_release_tells_the_phase_and_a_refused_run_never_claims_the_other_failed(mariadb, dbname):
    load_schema(mariadb, dbname)
    base = Path(short_tmpdir("dbr-ntf2-"))
    (base / "www").write_text("a file where the flag's directory should be\n")
    setup = Setup(mariadb, dbname, base, failing_receivers=False, release_watch_log_files=[],
                  release_verify_watch_minutes=0, maintenance_enabled=True,
                  maintenance_flag_path=str(base / "www" / "maintenance.flag"))
    try:
        failed = setup.run()
        assert failed.returncode != 0, text(failed)
        end = [p for p in setup.posts() if p["dbrelease"]["event"] == "finish"]
        assert len(end) == 1 and end[0]["title"].endswith(": FAILED at maintenance"), setup.posts()
        assert end[0]["dbrelease"]["failed_phase"] == "maintenance" and "maintenance.flag" in end[0]["text"]
        assert setup.record["notifications"]["finish"]["outcome"] == "failure"

        # Another run of this release holds the lock: this run is refused, says so (not that the other run failed),
        # and writes nothing into the record, which is the other run's.
        held = run_module("release_lock", dict(login_params(mariadb), name=dbname, state="present",
                                               lock_schema="lk_" + dbname, holder={
                                                   "release": VERSION, "user": "bob", "controller": "ops2",
                                                   "pid": 4242}))
        assert held.get("acquired"), held
        before = (setup.record_dir / "release.json").read_bytes()
        posts = len(setup.posts())
        refused = setup.run()
        assert refused.returncode != 0, text(refused)
        told = setup.posts()[posts:]
        assert [p["dbrelease"]["outcome"] for p in told] == ["refused"], told
        assert "not started" in told[0]["title"] and "FAILED" not in json.dumps(told)
        assert "bob" in told[0]["text"] and "This run changed nothing." in told[0]["text"]
        assert (setup.record_dir / "release.json").read_bytes() == before
        assert_no_secret(json.dumps(setup.posts()), *(m["data"] for m in setup.smtp.messages))
    finally:
        setup.close()
        mariadb.sql("DROP DATABASE IF EXISTS `lk_%s`" % dbname)
        shutil.rmtree(base, ignore_errors=True)


def test_a_host_that_vanishes_is_still_told_by_the_callback(tmp_path):
    """A host that becomes unreachable runs no finish play: the callback tells the outcome it was owed."""
    hook = HttpReceiver()
    try:
        artifacts = tmp_path / "artifacts"
        inventory = write_inventory(tmp_path / "inventory.yml", {"db1": {
            "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": int(
                closed_port_url().rsplit(":", 1)[1].split("/")[0]), "ansible_user": "nobody",
            "ansible_ssh_common_args": "-o ConnectTimeout=2 -o StrictHostKeyChecking=no",
            "release_artifacts_dir": str(artifacts), "release_db_name": "shop",
            "release_notify_webhooks": [hook.url("/hooks/" + TOKEN)], "release_environment": "production"}})
        playbook = tmp_path / "vanish.yml"
        playbook.write_text("""
- name: A phase on a host that is gone
  hosts: databases
  gather_facts: false
  vars_files: [%s/vars/release.yml]
  tasks:
    - name: Start the backup phase
      release_phase:
        phase: backup
    - name: Tell people the release started
      release_notify:
        event: start
        webhooks: "{{ release_notify_webhooks }}"
      no_log: true
    - name: Reach the host
      ansible.builtin.ping:
""" % ROOT)
        proc = run_playbook(str(playbook), inventory, extra_vars={"release_version": VERSION})
    finally:
        hook.close()
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, text(proc)
    outcomes = [(p["dbrelease"]["event"], p["dbrelease"]["outcome"]) for p in hook.json_bodies()]
    assert outcomes == [("start", "start"), ("finish", "failure")], outcomes
    end = hook.json_bodies()[1]
    assert end["title"].endswith(": FAILED at backup") and "became unreachable during the backup phase" in end["text"]
    assert "could not run its finish play" in end["text"]
    record = json.loads((artifacts / VERSION / "release.json").read_text())
    assert record["notifications"]["finish"]["outcome"] == "failure"
    assert record["phases"]["backup"]["status"] == "failed"
