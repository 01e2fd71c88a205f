"""The lock role as a release uses it: two concurrent ansible-playbook runs against one database, one proceeds."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, ADMIN_USER, ROOT, short_tmpdir
from helpers import FINISH, PLAY_HEADER, VENV_BIN, local_host_vars, recap, run_playbook, write_inventory

PLAYBOOK = """\
- name: Hold the release lock, migrate, release it
  hosts: databases
  gather_facts: false
""" + PLAY_HEADER + """\
  tasks:
    - name: Take the release lock
      ansible.builtin.import_role:
        name: lock
    - name: Hold it until the test lets go, as a release's phases do
      ansible.builtin.wait_for:
        path: "{{ hold_until }}"
        timeout: 150
      when:
        - hold_until | length > 0
    - name: Run the migrations
      ansible.builtin.import_role:
        name: migrate
    - name: Release the release lock
      ansible.builtin.import_role:
        name: lock
        tasks_from: release
""" + FINISH


class Setup:
    def __init__(self, mariadb, dbname, **overrides):
        self.base = Path(short_tmpdir("dbr-lock-"))
        self.box = mariadb
        self.dbname = dbname
        self.schema = "lk_" + uuid.uuid4().hex[:10]
        self.artifacts = self.base / "artifacts"
        self.playbook = self.base / "lock_play.yml"
        self.playbook.write_text(PLAYBOOK)
        host_vars = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_db_name=dbname,
                                    release_artifacts_dir=str(self.artifacts), release_migration_command="",
                                    lock_schema=self.schema, hold_until="")
        host_vars.update(overrides)
        self.inventory = write_inventory(self.base / "inventory.yml", {"db1": host_vars})

    def cmd(self, version, **extra):
        return [str(VENV_BIN / "ansible-playbook"), str(self.playbook), "-i", str(self.inventory),
                "-e", json.dumps(dict(release_version=version, **extra))]

    def lock_row(self):
        rows = self.box.sql("SELECT token, holder FROM `%s`.dbrelease_lock" % self.schema)
        return rows[0] if rows else None

    def record(self, version):
        return json.loads((self.artifacts / version / "release.json").read_text())


@pytest.fixture
def setup(mariadb, dbname):
    s = Setup(mariadb, dbname)
    yield s
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % s.schema)


def test_two_concurrent_releases_exactly_one_proceeds_and_the_other_names_the_holder(setup):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    # The winner holds the lock until this file exists: the test lets go only once the loser has ended, so a
    # loaded machine cannot reorder the two (a fixed pause could run out before the loser's failure path ends).
    release_file = setup.base / "let-go"
    procs = {version: subprocess.Popen(setup.cmd(version, hold_until=str(release_file)), cwd=ROOT, env=env,
                                       text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for version in ("v1-alpha", "v1-beta")}
    # The loser stops; while the winner still holds the lock, the loser's failure path must not free it.
    outputs, row_after_loser = {}, None
    deadline = time.time() + 180
    while len(outputs) < 2 and time.time() < deadline:
        for version, proc in procs.items():
            if version not in outputs and proc.poll() is not None:
                outputs[version] = proc.stdout.read()
                if len(outputs) == 1:
                    row_after_loser = setup.lock_row()
                    release_file.write_text("go")
        time.sleep(0.2)
    assert len(outputs) == 2, "the runs did not finish"
    results = {version: recap(out)["db1"] for version, out in outputs.items()}
    winners = [v for v, r in results.items() if r["failed"] == 0]
    losers = [v for v, r in results.items() if r["failed"] > 0]
    assert len(winners) == 1 and len(losers) == 1, outputs
    winner, loser = winners[0], losers[0]
    assert "is held by" in outputs[loser] and "release %s" % winner in outputs[loser]
    assert " since " in outputs[loser]
    assert row_after_loser is not None and json.loads(row_after_loser[1])["release"] == winner

    loser_lock = setup.record(loser)["phases"]["lock"]
    assert loser_lock["status"] == "failed" and "release %s" % winner in loser_lock["error"]
    winner_lock = setup.record(winner)["phases"]["lock"]
    assert winner_lock["status"] == "ok" and winner_lock["released"] is True
    assert winner_lock["holder"]["release"] == winner and winner_lock["holder"]["pid"]
    assert setup.lock_row() is None
    for out in outputs.values():
        assert ADMIN_PASSWORD not in out


def test_check_mode_verifies_the_lock_is_free_and_takes_nothing(setup):
    proc = run_playbook(setup.playbook, setup.inventory, extra_vars={"release_version": "v2"}, check=True)
    assert recap(proc.stdout)["db1"]["failed"] == 0, proc.stdout
    assert setup.box.sql("SHOW DATABASES LIKE '%s'" % setup.schema) == ()
    record = json.loads((setup.artifacts / "v2" / "release.check.json").read_text())
    assert record["phases"]["lock"]["status"] == "ok" and record["phases"]["lock"]["check_mode"] is True


def test_a_lock_left_by_a_killed_run_is_taken_over_after_its_ttl_and_recorded(setup):
    # A run killed while holding the lock: its row stays, with an expiry already in the past.
    setup.box.sql([
        "CREATE DATABASE `%s`" % setup.schema,
        "CREATE TABLE `%s`.dbrelease_lock (lock_name VARCHAR(191) PRIMARY KEY, token CHAR(32) NOT NULL, "
        "holder TEXT NOT NULL, acquired_at DATETIME(3) NOT NULL, heartbeat_at DATETIME(3) NOT NULL, "
        "expires_at DATETIME(3) NOT NULL, takeover_of TEXT NULL)" % setup.schema,
        "INSERT INTO `%s`.dbrelease_lock VALUES ('%s', '%s', '{\"user\": \"ghost\", \"controller\": \"gone\"}', "
        "UTC_TIMESTAMP(3) - INTERVAL 3 HOUR, UTC_TIMESTAMP(3) - INTERVAL 2 HOUR, UTC_TIMESTAMP(3) - INTERVAL 1 HOUR, "
        "NULL)" % (setup.schema, setup.dbname, uuid.uuid4().hex),
    ])
    proc = run_playbook(setup.playbook, setup.inventory, extra_vars={"release_version": "v3"})
    assert recap(proc.stdout)["db1"]["failed"] == 0, proc.stdout
    assert "took over the release lock of '%s' from ghost@gone" % setup.dbname in proc.stdout
    lock = setup.record("v3")["phases"]["lock"]
    assert lock["takeover"]["holder"]["user"] == "ghost" and lock["released"] is True
