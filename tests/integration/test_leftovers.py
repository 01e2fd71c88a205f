"""Runs killed with SIGKILL leave an option file, a partial dump or a temporary schema; the next run's clean-up
(release_leftovers) removes them, says what it removed, and never touches what a live run holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from conftest import ADMIN_PASSWORD, login_params
from helpers import ROOT, run_module, start_module


def wait_for(predicate, timeout=30.0, what="condition", every=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting for " + what)


def kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def schemas(box, pattern):
    return [row[0] for row in box.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME "
                                      "LIKE '%s'" % pattern)]


def age(path, seconds):
    """Make `path` look untouched for `seconds` (what waiting that long would do)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def sweep(box, tmp_path, **extra):
    args = dict(login_params(box), temp_dir=str(tmp_path), **extra)
    return run_module("release_leftovers", args)


# A worker that writes the file-based option file (as tools that reread it need) and runs a client with it, then
# waits to be killed: what a module process is while its client tool runs.
WORKER = textwrap.dedent("""
    import json, subprocess, sys, time
    import ansible.module_utils
    ansible.module_utils.__path__.append(%r)
    from ansible.module_utils.dbrelease.db import client_option_file
    params = json.loads(sys.stdin.read())
    with client_option_file(params) as path:
        client = subprocess.Popen(["mariadb", "--defaults-extra-file=" + path, "-N", "-e", "SELECT SLEEP(60)"])
        print(json.dumps({"path": path, "client": client.pid}), flush=True)
        time.sleep(120)
""") % str(ROOT / "module_utils")


def test_the_option_file_of_a_killed_worker_is_removed_with_its_owner_named_and_a_live_one_is_kept(mariadb,
                                                                                                     tmp_path):
    params = login_params(mariadb)
    env = dict(os.environ, TMPDIR=str(tmp_path))
    live = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    dead = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    clients = []
    try:
        for proc in (live, dead):
            proc.stdin.write(json.dumps(params))
            proc.stdin.close()
        live_info, dead_info = (json.loads(proc.stdout.readline()) for proc in (live, dead))
        clients = [live_info["client"], dead_info["client"]]
        with open(dead_info["path"]) as handle:
            assert ADMIN_PASSWORD in handle.read()  # what a killed run leaves: the password in clear
        for info in (live_info, dead_info):
            age(os.path.dirname(info["path"]), 3600)
        kill(dead)
        assert os.path.exists(dead_info["path"])

        result = sweep(mariadb, tmp_path, schemas=False)
        assert result["changed"] is True, result
        assert [item["name"] for item in result["removed"]] == [dead_info["path"]]
        assert "pid %d on " % dead.pid in result["msg"] and "client option file" in result["msg"]
        assert not os.path.exists(os.path.dirname(dead_info["path"]))
        assert os.path.exists(live_info["path"]), "the live worker's file was removed"
        assert ADMIN_PASSWORD not in json.dumps(result)

        again = sweep(mariadb, tmp_path, schemas=False)
        assert again["changed"] is False and again["msg"].startswith("no leftovers of killed runs")
    finally:
        for pid in clients:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in (live, dead):
            if proc.poll() is None:
                kill(proc)


def test_a_plan_schema_of_a_killed_schema_apply_is_dropped_and_a_running_plan_keeps_its_own(mariadb, dbname,
                                                                                             tmp_path):
    mariadb.sql(["CREATE TABLE t%02d (id INT PRIMARY KEY, v VARCHAR(20), KEY (v))" % i for i in range(40)],
                database=dbname)
    ddl = tmp_path / "change.sql"
    ddl.write_text("ALTER TABLE t00 ADD COLUMN w INT;\n")
    args = dict(login_params(mariadb), db=dbname, ddl_files=[str(ddl)], plan_copy="full")
    pattern = "%s\\_\\_dbrelease\\_plan\\_%%" % dbname
    blocker = mariadb.root()
    proc = start_module("schema_apply", args)
    try:
        name = wait_for(lambda: schemas(mariadb, pattern), what="the plan schema")[0]
        # The next statement of the plan waits behind the global read lock: the run is frozen mid-plan.
        with blocker.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        assert proc.poll() is None
        # While it lives, its schema is its own: the clean-up of another run keeps it.
        kept = sweep(mariadb, tmp_path)
        assert kept["changed"] is False and schemas(mariadb, pattern) == [name], kept
        kill(proc)
    finally:
        with blocker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        blocker.close()
        if proc.poll() is None:
            kill(proc)
    assert schemas(mariadb, pattern) == [name], "SIGKILL left no plan schema to clean up"

    result = wait_for(lambda: (lambda r: r if r["removed"] else None)(sweep(mariadb, tmp_path)),
                      timeout=10, what="the killed run's connection to go", every=0.2)
    account = "dbrelease_plan_" + name.rsplit("_", 1)[1]
    assert [(item["kind"], item["name"]) for item in result["removed"]] == [("schema", name),
                                                                            ("account", account + "@localhost")]
    assert "structure copy made for the schema plan" in result["msg"] and "connection that created it is gone" in \
        result["msg"]
    assert "temporary account the schema plan ran its DDL as" in result["msg"]
    assert schemas(mariadb, pattern) == []
    assert not mariadb.sql("SELECT 1 FROM mysql.user WHERE User = '%s'" % account)
    # The database itself was never touched by the killed plan.
    assert not mariadb.sql("SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' AND "
                           "COLUMN_NAME = 'w'" % dbname)


def test_check_mode_names_the_leftovers_and_removes_nothing(mariadb, dbname, tmp_path):
    name = "%s__dbrelease_restore_%s" % (dbname, uuid.uuid4().hex[:8])
    mariadb.sql(["CREATE DATABASE `%s`" % name, "CREATE TABLE `%s`.copy (id INT)" % name])
    try:
        dry = run_module("release_leftovers", dict(login_params(mariadb), temp_dir=str(tmp_path)), check=True)
        assert dry["changed"] is True and "would remove 1 leftover" in dry["msg"], dry
        assert "restore-test copy of a backup" in dry["msg"] and schemas(mariadb, name) == [name]
        done = sweep(mariadb, tmp_path)
        assert [item["name"] for item in done["removed"]] == [name] and schemas(mariadb, name) == []
    finally:
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % name)


def test_a_schema_that_only_looks_temporary_is_never_dropped(mariadb, tmp_path):
    names = ["shop__dbrelease_plan_notahex", "shop__dbrelease_keep_0123abcd", "shop__dbrelease_plan_0123abcd_x"]
    mariadb.sql(["CREATE DATABASE `%s`" % name for name in names])
    try:
        result = sweep(mariadb, tmp_path)
        assert result["removed"] == [] and sorted(schemas(mariadb, "shop\\_\\_dbrelease%")) == sorted(names)
    finally:
        mariadb.sql(["DROP DATABASE IF EXISTS `%s`" % name for name in names])


@pytest.fixture
def big_db(mariadb):
    name = "big_" + uuid.uuid4().hex[:8]
    mariadb.sql("CREATE DATABASE `%s`" % name)
    mariadb.sql(["CREATE TABLE `rows` (id INT AUTO_INCREMENT PRIMARY KEY, a CHAR(64), b CHAR(64))",
                 "INSERT INTO `rows` (a, b) SELECT MD5(RAND()), MD5(RAND()) FROM seq_1_to_60000"], database=name)
    yield name
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % name)


def test_a_killed_dump_leaves_its_partial_which_only_a_dead_writer_loses_and_its_password_never_touched_a_disk(
        mariadb, big_db, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    opt_dirs = tmp_path / "tmp"
    opt_dirs.mkdir()
    holder = mariadb.root(big_db)
    with holder.cursor() as cur:
        cur.execute("LOCK TABLES `rows` WRITE")  # the dump's FLUSH TABLES WITH READ LOCK waits: a long dump
    args = dict(login_params(mariadb), database=big_db, backup_dir=str(backup_dir), label="v1", mode="run")
    proc = start_module("db_backup", args, env={"TMPDIR": str(opt_dirs)})
    try:
        partial = wait_for(lambda: [backup_dir / n for n in os.listdir(backup_dir) if n.endswith(".partial")],
                           what="the partial dump")[0]
        # The client itself, once exec'd: argv[0] is the dump binary (the dump starts as `stdbuf ... mariadb-dump`,
        # which then execs it; in between, the same pid's command line can read empty). Read once, kept.
        dump_pid, argv = wait_for(lambda: [(int(p), argv) for p in os.listdir("/proc") if p.isdigit()
                                           for argv in [_cmdline(p).split(b"\0")]
                                           if os.path.basename(argv[0]) in (b"mariadb-dump", b"mysqldump")
                                           and big_db.encode() in argv], what="the dump client")[0]
        option = [a for a in argv if a.startswith(b"--defaults-extra-file=")]
        assert option and option[0].startswith(b"--defaults-extra-file=/dev/fd/"), argv
        assert os.listdir(opt_dirs) == [], "an option file was written to disk"
        # A live writer's partial is kept, however old it looks.
        age(partial, 3600)
        assert sweep(mariadb, tmp_path, backup_dir=str(backup_dir), database=big_db, schemas=False)["removed"] == []
        kill(proc)
    finally:
        holder.close()
        if proc.poll() is None:
            kill(proc)
    assert partial.exists()
    wait_for(lambda: not os.path.exists("/proc/%d" % dump_pid) or b"mariadb-dump" not in _cmdline(str(dump_pid)),
             what="the orphaned dump client to end", every=0.1)
    age(partial, 30)
    young = sweep(mariadb, tmp_path, backup_dir=str(backup_dir), database=big_db, schemas=False)
    assert young["removed"] == [] and partial.exists(), "a partial written to 30 s ago was removed"
    age(partial, 120)
    result = sweep(mariadb, tmp_path, backup_dir=str(backup_dir), database=big_db, schemas=False)
    assert [item["name"] for item in result["removed"]] == [str(partial)] and not partial.exists()
    assert "unfinished dump" in result["msg"] and "its writer is gone" in result["msg"]


def _cmdline(pid: str) -> bytes:
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def test_a_killed_restore_test_leaves_its_copy_for_the_next_cleanup(mariadb, big_db, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    dumped = run_module("db_backup", dict(login_params(mariadb), database=big_db, backup_dir=str(backup_dir),
                                          label="v1", mode="run"))
    assert dumped.get("path"), dumped
    pattern = "%s\\_\\_dbrelease\\_restore\\_%%" % big_db
    proc = start_module("backup_restore_check", dict(login_params(mariadb), path=dumped["path"], database=big_db))
    try:
        name = wait_for(lambda: schemas(mariadb, pattern), what="the restore-test copy")[0]
        kill(proc)
    finally:
        if proc.poll() is None:
            kill(proc)
    assert schemas(mariadb, pattern) == [name]
    result = wait_for(lambda: (lambda r: r if r["removed"] else None)(sweep(mariadb, tmp_path)), timeout=30,
                      what="the killed run's connection to go", every=0.2)
    assert [(item["kind"], item["name"]) for item in result["removed"]] == [("schema", name)]
    assert schemas(mariadb, pattern) == []
