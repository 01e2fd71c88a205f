"""The release lock against a real MariaDB: one release at a time, expiry takeover, release only by the holder."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid

import pytest
from ansible.module_utils.dbrelease.db import DbError, connect
from ansible.module_utils.dbrelease.lock import LockHeld, ReleaseLock
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "library", "release_lock.py")
# Runs a module file as Ansible would, with the project's module_utils importable (AnsiballZ bundles them).
RUNNER = ("import runpy, ansible.module_utils as m; m.__path__.append(%r); "
          "runpy.run_path(%%r, run_name='__main__')" % os.path.join(ROOT, "module_utils"))


def _lock(params, name, schema):
    return ReleaseLock(connect(params), name, schema=schema)


def _holder(tag):
    return {"controller": "ctl-%s" % tag, "user": "user%s" % tag, "pid": os.getpid(), "release": "v-%s" % tag}


def _contender(params, name, schema, tag, barrier, queue):
    """One release trying to take the lock at the same moment as the others."""
    try:
        lock = _lock(params, name, schema)
        barrier.wait(timeout=20)
        result = lock.acquire(_holder(tag), ttl_seconds=600)
        queue.put((tag, "acquired", result["token"]))
    except LockHeld as exc:
        queue.put((tag, "refused", str(exc)))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put((tag, "error", repr(exc)))


@pytest.fixture
def lock_schema(mariadb):
    schema = "lk_" + uuid.uuid4().hex[:10]
    yield schema
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % schema)


def test_concurrent_releases_exactly_one_takes_the_lock_and_the_others_are_told_who(mariadb, lock_schema):
    params = login_params(mariadb)
    contenders = 4
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(contenders)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(params, "shop", lock_schema, str(i), barrier, queue))
             for i in range(contenders)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert [r for r in results if r[1] == "error"] == []
    winners = [r for r in results if r[1] == "acquired"]
    losers = [r for r in results if r[1] == "refused"]
    assert len(winners) == 1 and len(losers) == contenders - 1
    winner_tag = winners[0][0]
    for _, _, message in losers:
        assert "held by user%s@ctl-%s" % (winner_tag, winner_tag) in message
        assert "release v-%s" % winner_tag in message
        assert " since " in message
    row = _lock(params, "shop", lock_schema).read()
    assert row["token"] == winners[0][2]


def test_a_lock_held_for_one_database_does_not_block_another_database(mariadb, lock_schema):
    params = login_params(mariadb)
    first = _lock(params, "shop", lock_schema).acquire(_holder("a"), ttl_seconds=600)
    second = _lock(params, "billing", lock_schema).acquire(_holder("b"), ttl_seconds=600)
    assert first["acquired"] and second["acquired"]


def test_an_expired_lock_of_a_killed_run_is_taken_over_and_the_previous_holder_recorded(mariadb, lock_schema):
    params = login_params(mariadb)
    dead = _lock(params, "shop", lock_schema).acquire(_holder("dead"), ttl_seconds=1)
    with pytest.raises(LockHeld):
        _lock(params, "shop", lock_schema).acquire(_holder("early"), ttl_seconds=600)
    time.sleep(1.3)
    taken = _lock(params, "shop", lock_schema).acquire(_holder("new"), ttl_seconds=600)
    assert taken["acquired"] and taken["token"] != dead["token"]
    assert taken["takeover"]["holder"]["controller"] == "ctl-dead"
    row = _lock(params, "shop", lock_schema).read()
    assert row["holder"]["controller"] == "ctl-new"
    assert row["takeover_of"]["holder"]["controller"] == "ctl-dead"
    # The dead run, if it wakes up, has lost the lock: its heartbeat and its release are refused.
    with pytest.raises(DbError, match="lost the release lock.*usernew@ctl-new"):
        _lock(params, "shop", lock_schema).refresh(dead["token"], 600)
    with pytest.raises(DbError, match="refusing to release.*held by usernew@ctl-new"):
        _lock(params, "shop", lock_schema).release(dead["token"])
    assert _lock(params, "shop", lock_schema).read()["token"] == taken["token"]


def test_heartbeat_keeps_a_lock_alive_past_its_first_expiry(mariadb, lock_schema):
    params = login_params(mariadb)
    held = _lock(params, "shop", lock_schema).acquire(_holder("a"), ttl_seconds=2)
    time.sleep(1.2)
    _lock(params, "shop", lock_schema).refresh(held["token"], 2)
    time.sleep(1.2)
    with pytest.raises(LockHeld):
        _lock(params, "shop", lock_schema).acquire(_holder("b"), ttl_seconds=600)


def test_release_by_the_holder_frees_the_lock_and_a_second_release_is_a_no_op(mariadb, lock_schema):
    params = login_params(mariadb)
    held = _lock(params, "shop", lock_schema).acquire(_holder("a"), ttl_seconds=600)
    assert _lock(params, "shop", lock_schema).release(held["token"])["released"] is True
    assert _lock(params, "shop", lock_schema).read() is None
    assert _lock(params, "shop", lock_schema).release(held["token"])["released"] is False
    assert _lock(params, "shop", lock_schema).acquire(_holder("b"), ttl_seconds=600)["acquired"]


def test_the_same_token_re_enters_instead_of_refusing_itself(mariadb, lock_schema):
    params = login_params(mariadb)
    held = _lock(params, "shop", lock_schema).acquire(_holder("a"), ttl_seconds=600)
    again = _lock(params, "shop", lock_schema).acquire(_holder("a"), ttl_seconds=600, token=held["token"])
    assert again["reentrant"] and again["token"] == held["token"]


# -- the module, as Ansible runs it -----------------------------------------------------------------------------
def run_module(args, check=False):
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}
    proc = subprocess.run([sys.executable, "-c", RUNNER % MODULE], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=60,
                          env={"PYTHONPATH": os.pathsep.join(sys.path), "PATH": os.environ["PATH"]})
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def module_args(mariadb, schema, **extra):
    args = dict(login_user=ADMIN_USER, login_password=ADMIN_PASSWORD, login_unix_socket=mariadb.socket,
                name="shop", lock_schema=schema, holder={"controller": "ctl", "user": "alice", "pid": 42})
    args.update(extra)
    return args


def test_check_mode_on_a_free_lock_creates_nothing(mariadb, lock_schema):
    result = run_module(module_args(mariadb, lock_schema), check=True)
    assert not result.get("failed") and result["would_acquire"] is True and result["changed"] is False
    assert mariadb.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'"
                       % lock_schema)[0][0] == 0


def test_check_mode_on_a_held_lock_fails_naming_the_holder_and_takes_nothing(mariadb, lock_schema):
    held = run_module(module_args(mariadb, lock_schema))
    assert held["acquired"] and held["token"]
    dry = run_module(module_args(mariadb, lock_schema, holder={"user": "bob", "controller": "ctl2"}), check=True)
    assert dry["failed"] and "held by alice@ctl (pid 42)" in dry["msg"]
    assert ADMIN_PASSWORD not in json.dumps(dry)
    assert _lock(login_params(mariadb), "shop", lock_schema).read()["token"] == held["token"]


def test_module_release_by_a_non_holder_is_refused_and_by_the_holder_succeeds(mariadb, lock_schema):
    held = run_module(module_args(mariadb, lock_schema))
    wrong = run_module(module_args(mariadb, lock_schema, state="absent", token=uuid.uuid4().hex))
    assert wrong["failed"] and "held by alice@ctl" in wrong["msg"] and "state" not in wrong
    right = run_module(module_args(mariadb, lock_schema, state="absent", token=held["token"]))
    assert right["released"] is True and right["state"] == "absent"


def test_module_wrong_password_names_the_account_not_the_password(mariadb, lock_schema):
    result = run_module(module_args(mariadb, lock_schema, login_password="not-" + ADMIN_PASSWORD))
    assert result["failed"] and "db_admin@socket" in result["msg"]
    assert ADMIN_PASSWORD not in result["msg"]
