"""Faults during the backup phase, each against a real server: the phase fails with a clear message, nothing
unverified is left under a backup's name, and a rerun after the fault is fixed succeeds. And the password never
shows in `ps`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD
from helpers import recap, run_playbook
from test_backup import ROOT, backup_inventory, files_in, fill_big_table, load_app_schema, record, stalled_dump


def start_playbook(inventory, **extra_env):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **extra_env)
    return subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/backup.yml", "-i",
                             str(inventory)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def partial_size(directory):
    sizes = [os.path.getsize(directory / n) for n in files_in(directory) if n.endswith(".partial")]
    return sizes[0] if sizes else -1


def assert_no_backup_left(directory):
    """Nothing that could pass for a backup: no dump, no checksum, no manifest, no partial."""
    assert files_in(directory) == []


@pytest.fixture
def tmpfs_dir(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_server_killed_mid_dump_fails_clearly_leaves_nothing_and_a_rerun_succeeds(private_mariadb, tmp_path):
    box = private_mariadb
    box.sql("CREATE DATABASE shop")
    fill_big_table(box, "shop", 48)
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    # pigz -9 on one thread keeps the dump streaming for seconds (with small buffers), so the kill lands in the
    # middle of the data: as soon as the first compressed block is written.
    inventory = backup_inventory(tmp_path, box, "shop", backup_dir, backup_compression_level=9,
                                 backup_compression_threads=1, backup_restore_test=False)
    proc = start_playbook(inventory)
    try:
        wait_for(lambda: partial_size(backup_dir) > 0, 120, "the dump to write data")
        box.stop(kill=True)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert recap(output)["db1"]["failed"] == 1, output[-3000:]
    assert "Phase 'backup' failed on db1" in output
    # The client names the lost server as 2013 "Lost connection" when the kill lands during a query, as 2006
    # "Server has gone away" when it lands between two (the data read, the next statement not yet answered).
    assert "mariadb-dump exited with status" in output, output[-3000:]
    assert "Lost connection" in output or 'Got error: 2006: "Server has gone away"' in output, output[-3000:]
    assert ADMIN_PASSWORD not in output
    phase = record(tmp_path)["phases"]["backup"]
    assert phase["status"] == "failed" and "mariadb-dump exited with status" in phase["error"]
    assert_no_backup_left(backup_dir)

    box.start()
    rerun = run_playbook("playbooks/backup.yml", inventory, extra_vars={"backup_compression_level": 0,
                                                                        "backup_compression_threads": 0})
    assert recap(rerun.stdout)["db1"]["failed"] == 0, rerun.stdout[-3000:]
    assert record(tmp_path)["phases"]["backup"]["status"] == "ok"
    assert len([n for n in files_in(backup_dir) if n.endswith(".sql.gz")]) == 1


def test_disk_full_fails_clearly_leaves_nothing_and_a_rerun_with_space_succeeds(mariadb, dbname, tmpfs_dir, tmp_path):
    load_app_schema(mariadb, dbname)
    fill_big_table(mariadb, dbname, 8)  # about 4 MiB compressed: more than the 2 MiB filesystem holds
    inventory = backup_inventory(tmp_path, mariadb, dbname, tmpfs_dir, backup_restore_test=False,
                                 backup_create_dir=False)
    out = run_playbook("playbooks/backup.yml", inventory)
    assert recap(out.stdout)["db1"]["failed"] == 1, out.stdout[-3000:]
    assert "No space left on device" in out.stdout and "backup_dir" in out.stdout, out.stdout[-3000:]
    assert record(tmp_path)["phases"]["backup"]["status"] == "failed"
    assert_no_backup_left(tmpfs_dir)

    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs_dir)], check=True)
    rerun = run_playbook("playbooks/backup.yml", inventory)
    assert recap(rerun.stdout)["db1"]["failed"] == 0, rerun.stdout[-3000:]
    phase = record(tmp_path)["phases"]["backup"]
    assert phase["status"] == "ok" and os.path.getsize(phase["path"]) == phase["bytes"] > 2 * 1024 * 1024


def arg_after_dump_client(args: str) -> str:
    """The dump client's first argument in a `ps` line (the client may show briefly behind its `stdbuf` wrapper)."""
    words = args.split()
    at = next(i for i, word in enumerate(words) if os.path.basename(word) == "mariadb-dump")
    return words[at + 1] if at + 1 < len(words) else ""


def environ_has(pid, marker):
    """True when process `pid` carries `marker` in its environment (inherited from the playbook we started)."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone already, or not ours to read
        return False


def test_password_never_appears_in_the_process_list_during_dump_and_restore_test(mariadb, dbname, tmp_path):
    load_app_schema(mariadb, dbname)
    inventory = backup_inventory(tmp_path, mariadb, dbname, tmp_path / "backups")  # staging: restore test on
    # Every process is searched for the password; the dump's argv is checked on this run's own processes, which
    # carry a marker in their environment (the async dump is re-parented, so the process tree cannot tell).
    marker = "DBRELEASE_TEST_RUN=%d-%d" % (os.getpid(), time.monotonic_ns())
    seen, ours = [], []
    with stalled_dump(mariadb, dbname, 6):
        proc = start_playbook(inventory, DBRELEASE_TEST_RUN=marker.split("=", 1)[1])
        while proc.poll() is None:
            table = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
            rows = [line.split(None, 1) for line in table.splitlines() if len(line.split(None, 1)) == 2]
            seen.extend(args for _, args in rows if "mariadb" in args or ADMIN_PASSWORD in args)
            ours.extend(args for pid, args in rows if "mariadb-dump" in args and environ_has(pid, marker))
            time.sleep(0.02)
        output = proc.communicate()[0]
    assert recap(output)["db1"]["failed"] == 0, output[-3000:]
    # Other tests' dumps may run beside this one; the client's `--version` probe (which tells its option spelling)
    # connects to nothing and carries no option file.
    dumps = [line for line in ours if "mariadb-dump" in line and arg_after_dump_client(line) != "--version"]
    assert dumps and all(arg_after_dump_client(line).startswith("--defaults-extra-file=") for line in dumps)
    assert not [line for line in seen if ADMIN_PASSWORD in line]
    assert ADMIN_PASSWORD not in output
    backup = record(tmp_path)["phases"]["backup"]
    for path in (backup["path"] + ".manifest.json", backup["path"] + ".sha256"):
        assert ADMIN_PASSWORD not in Path(path).read_text()
    assert ADMIN_PASSWORD not in (tmp_path / "artifacts" / "v1.2.0" / "release.json").read_text()
