"""The fault matrix: each fault injected into a real release against real servers, and the four promises checked.

For every fault: the release stops at the right phase with a clear message; no data is lost (the pre-release data
is intact, or the verified backup exists and restores to it); the record (release.json) is truthful (the failed
phase says failed with the error, later phases are absent); and a rerun after the fault is fixed completes.
The table is printed at the end of the run (tests/faults/conftest.py). Run: .venv/bin/python -m pytest tests/faults
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import run_module  # noqa: E402

BACKUP_SUFFIXES = (".sql.gz", ".sql.zst", ".sql.gz.sha256", ".sql.zst.sha256")


def final_backups(folder: Path) -> list[Path]:
    """Files under a backup's final name (what an operator would restore from)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.name.endswith(BACKUP_SUFFIXES))


def verified_backup_restores(row, release, before) -> bool:
    """'No data lost' once the release got past the backup: the recorded backup exists, its sha256 checks, and it
    restores into a scratch database with exactly the pre-release fingerprint."""
    entry = release.phase("backup")
    path = Path(entry.get("path") or "/nonexistent")
    if entry.get("status") != "ok" or not path.is_file():
        return row.check("data intact", False, "no verified backup recorded: phases.backup=%s" % entry)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry.get("sha256"):
        return row.check("data intact", False, "backup %s: sha256 %s, record says %s" % (path, digest,
                                                                                          entry.get("sha256")))
    restored = release.server.restore_into(path, "restore_" + uuid.uuid4().hex[:6])
    return restored == before


def find_process(names: tuple[str, ...], needle: str):
    """The pid of a running process whose program is one of `names` and whose argv mentions `needle`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path("/proc/%s/cmdline" % pid).read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) in names \
                and any(needle.encode() in a for a in argv):
            return int(pid)
    return None


def alive(pid) -> bool:
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(predicate, proc, timeout=120, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    return None


def partial_bytes(folder: Path) -> int:
    """How much a running dump has written so far: the size of the hidden `.NAME.partial` files in `folder`."""
    total = 0
    for path in folder.glob(".*.partial") if folder.exists() else ():
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def dump_under_way(release, dump) -> bool:
    """The dump has started writing its partial file (or already ended: then the kill comes too late anyway)."""
    return not alive(dump) or partial_bytes(release.backups) > 0


def fault_not_injected(row, why):
    """The test's timing missed the fault: said as such, not reported as the product's failure."""
    row.note("fault NOT injected: %s" % why)
    pytest.fail("fault not injected (the test's timing missed; this says nothing about the product): %s" % why)


def published_backups_verified(folder: Path) -> bool:
    """Every file under a backup's final name is a complete, published backup: data file and .sha256 side by
    side, and `sha256sum -c` passes. (A run that died after publishing leaves a good backup, not a leftover.)"""
    dumps = [p for p in final_backups(folder) if not p.name.endswith(".sha256")]
    sums = [p for p in final_backups(folder) if p.name.endswith(".sha256")]
    if not dumps or sorted(p.name + ".sha256" for p in dumps) != sorted(p.name for p in sums):
        return False
    return all(subprocess.run(["sha256sum", "-c", p.name], cwd=p.parent, capture_output=True).returncode == 0
               for p in sums)


# -- 1 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("1", "wrong credentials", "preflight")
def test_wrong_credentials_stop_in_preflight_naming_user_and_host_and_the_fixed_rerun_completes(
        row, kit, make_server, make_release):
    server = make_server()
    release = make_release(server, release_db_admin_password=kit.WRONG_PASSWORD)
    before = server.fingerprint()

    proc = release.run()
    row.stopped(proc, release, needles=["db_admin@socket %s" % server.box.socket, "Access denied"])
    row.check("data intact", server.fingerprint() == before, "the database changed after a refused login")

    release.write(release_db_admin_password=kit.FAULT_ADMIN_PASSWORD)
    row.rerun_release(release)
    row.verdict()


# -- 2 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("2", "concurrent release", "lock")
def test_a_second_release_is_refused_naming_the_holder_and_runs_once_the_first_is_done(
        row, kit, make_server, make_release):
    server = make_server()
    release = make_release(server)
    login = dict(login_user=kit.ADMIN_USER, login_password=kit.FAULT_ADMIN_PASSWORD,
                 login_unix_socket=server.box.socket, login_host="127.0.0.1", login_port=server.box.port)
    # The first release: holds the lock of this database, as release_lock leaves it after its preflight.
    first = run_module("release_lock", dict(login, name=server.db, state="present", ttl_minutes=30,
                                            holder={"user": "alice", "controller": "ops-bastion", "pid": 4242,
                                                    "release": "v7.6.9-first"}))
    assert first.get("acquired") is True, first
    row.note("release_lock held by alice@ops-bastion (release v7.6.9-first) before the second release started")
    before = server.fingerprint()

    proc = release.run()
    row.stopped(proc, release, needles=["alice@ops-bastion", "v7.6.9-first", "since"])
    still = run_module("release_lock", dict(login, name=server.db, state="read"))
    row.check("data intact", server.fingerprint() == before and "alice@ops-bastion" in str(still.get("msg")),
              "database changed, or the refused release took the first one's lock away: %s" % still.get("msg"))

    done = run_module("release_lock", dict(login, name=server.db, state="absent", token=first["token"]))
    assert done.get("released") is True, done
    row.rerun_release(release)
    row.verdict()


# -- 3 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("3", "DDL edited between staging and production", "schema")
def test_production_refuses_a_ddl_edited_after_staging_saying_what_differs_and_runs_the_approved_one(
        row, kit, make_server, make_release):
    staging_db, production_db = make_server(db="shop"), make_server(db="shop")
    shared = kit.scratch_dir("dbr-fp-")
    try:
        ddl = shared / "create_distributed_tables.sql"
        original = kit.DDL.read_text()
        ddl.write_text(original)
        plan_file = shared / "plans" / "shop.json"
        common = dict(release_ddl_files=[str(ddl)], schema_plan_file=str(plan_file))
        staging = make_release(staging_db, release_environment="staging", **common)
        # No vault host in this matrix: said so, as production requires (recorded in the release).
        production = make_release(production_db, release_environment="production", backup_vault_required=False,
                                  **common)

        staged = staging.run()
        assert staged.returncode == 0 and plan_file.is_file(), \
            "the staging release must complete and record its plan: %s" % kit.failure_excerpt(staged.stdout)
        row.note("staging approved plan %s" % plan_file.name)

        ddl.write_text(original.replace("last_error    VARCHAR(1024)   NULL,",
                                        "last_error    VARCHAR(1024)   NULL,\n  trace_id      VARCHAR(64)     NULL,"))
        assert ddl.read_text() != original
        before = production_db.fingerprint()
        proc = production.run()
        out = row.stopped(proc, production, needles=["differs from the approved", "create_distributed_tables.sql"])
        if "trace_id" not in kit.failure_text(out):
            row.note("the gate names the edited file and its sha256s, but not the changed object (outbox gains "
                     "column trace_id)")
        intact = production_db.fingerprint() == before
        row.check("data intact", intact and verified_backup_restores(row, production, before),
                  "production changed, or its backup does not restore to the pre-release data")

        ddl.write_text(original)
        row.rerun_release(production)
        tables = {r[0] for r in production_db.sql("SHOW TABLES")}
        assert {"outbox", "refresh_tokens"} <= tables or not row.cells["rerun completes"][0]
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    row.verdict()


# -- 4 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("4", "disk full during the backup", "backup")
def test_a_full_backup_disk_stops_the_release_before_any_schema_change_and_leaves_no_backup_behind(
        row, kit, make_server, make_release, tmpfs):
    server = make_server()
    server.fill_outbox(rows=4000, payload_bytes=512)  # ~4 MB of random hex, ~2 MB compressed > 1 MB of disk
    small = tmpfs("1m")
    release = make_release(server, release_backup_dir=str(small))
    before = server.fingerprint()

    proc = release.run()
    row.stopped(proc, release, needles=["No space left on device"])
    leftovers = [p.name for p in small.iterdir()]
    row.note("backup_dir was a 1 MiB tmpfs; left in it after the failure: %s" % (leftovers or "nothing"))
    row.check("data intact", server.fingerprint() == before and not final_backups(small),
              "database changed, or a file under a backup's name was left: %s" % final_backups(small))

    subprocess.run(["umount", str(small)], check=True)  # the fix: a disk with room
    row.rerun_release(release)
    row.verdict()


# -- 5 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("5", "database server killed mid-dump", "backup")
def test_the_server_dying_mid_dump_fails_the_backup_leaves_no_backup_and_the_restarted_rerun_completes(
        row, kit, make_server, make_release):
    server = make_server()
    server.fill_outbox(rows=20000, payload_bytes=512)  # ~20 MB of SQL: the dump runs for a fraction of a second
    release = make_release(server)
    before = server.fingerprint()

    proc = release.start()
    dump = wait_for(lambda: find_process(("mariadb-dump", "mysqldump"), server.db), proc, step=0.005)
    dumping = False
    if dump is not None:
        # Kill as soon as the dump's partial file has its first bytes: the dump is under way, far from its end.
        wait_for(lambda: dump_under_way(release, dump), proc, step=0.002)
        dumping, written = alive(dump), partial_bytes(release.backups)
        killed = server.kill()
        row.note("mariadbd pid %d SIGKILLed while mariadb-dump pid %d was %s (partial file: %d bytes)" % (
            killed, dump, "running" if dumping else "already gone", written))
    result = release.finish(proc)
    assert dump is not None, "the dump never started: %s" % kit.failure_excerpt(result.stdout)
    if not dumping:
        server.restart()
        fault_not_injected(row, "mariadb-dump pid %d had already ended when mariadbd was killed" % dump)

    row.stopped(result, release, needles=["mariadb-dump"], record_needles=["dump"])
    server.restart()
    row.check("data intact", server.fingerprint() == before and not final_backups(release.backups),
              "data differs after the restart, or a file under a backup's name was left: %s"
              % final_backups(release.backups))

    row.rerun_release(release)
    row.verdict()


# -- 6 ----------------------------------------------------------------------------------------------------------
@pytest.mark.fault("6", "database server killed mid-DDL", "schema")
def test_the_server_dying_mid_ddl_is_recorded_with_the_statements_that_took_effect_and_the_rerun_completes(
        row, kit, make_server, make_release):
    server = make_server()
    base = kit.scratch_dir("dbr-fd-")
    try:
        ddl = base / "release.sql"
        ddl.write_text(kit.DDL.read_text() + (
            "\n-- a slow statement: the server is killed while it runs\n"
            "CREATE TABLE IF NOT EXISTS release_audit AS SELECT SLEEP(3) AS slept;\n"
            "CREATE TABLE IF NOT EXISTS after_audit (id INT PRIMARY KEY);\n"))
        release = make_release(server, release_ddl_files=[str(ddl)])
        before = server.fingerprint()

        proc = release.start()
        sleeping = None
        deadline = time.monotonic() + 120
        while sleeping is None and time.monotonic() < deadline and proc.poll() is None:
            sleeping = next((r for r in server.processlist() if r[1] == server.db and "SLEEP(3)" in (r[4] or "")),
                            None)
            time.sleep(0.05)
        if sleeping is not None:
            killed = server.kill()
            row.note("mariadbd pid %d SIGKILLed during statement %r" % (killed, sleeping[4][:60]))
        result = release.finish(proc)
        assert sleeping is not None, "the slow statement never ran: %s" % kit.failure_excerpt(result.stdout)

        row.stopped(result, release, needles=["release.sql"], record_needles=["release.sql"])
        server.restart()
        tables = {r[0] for r in server.sql("SHOW TABLES")}
        entry = release.phase("schema")
        applied = json.dumps(entry.get("applied") or [])
        took = applied + str(entry.get("error") or "")
        failed_index = (entry.get("failed_statement") or {}).get("index")
        # Truthful: what the record says took effect is what the server has after its restart.
        claims = {"outbox took effect": "outbox" in took, "refresh_tokens took effect": "refresh_tokens" in took,
                  "statement #4 failed": failed_index == 4 or "#4" in str(entry.get("error")),
                  "after_audit not claimed": "after_audit" not in applied}
        truthful = {"outbox", "refresh_tokens"} <= tables and "after_audit" not in tables and all(claims.values())
        if not truthful:
            row.check("record truthful", False, "server has %s; record: %s; error: %s" % (
                sorted(tables), claims, str(entry.get("error"))[:300]))
        kept = {k: v for k, v in server.fingerprint().items() if k in before}
        row.check("data intact", kept == before and verified_backup_restores(row, release, before),
                  "pre-release objects changed, or the backup does not restore to them")

        row.rerun_release(release)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    row.verdict()


# -- 7, 8: the network-namespace topology ------------------------------------------------------------------------
# Ansible's SSH connection gets keepalives, as an operator's ansible.cfg would have: without them a host that
# vanished mid-task leaves the controller waiting on a dead TCP connection forever.
KEEPALIVE = "-o ServerAliveInterval=2 -o ServerAliveCountMax=3"


def ssh_keepalive(topo):
    return {"ansible_ssh_common_args": " ".join(topo.ssh_options()) + " " + KEEPALIVE}


def vault_backups(topo, db) -> list[Path]:
    return [p for p in final_backups(topo.vault_dir("vault1")) if p.name.startswith(db + "_")]


def local_backup_checks(release) -> bool:
    """The backup on the database host is complete and its sha256 file checks (sha256sum -c)."""
    dumps = [p for p in final_backups(release.backups) if not p.name.endswith(".sha256")]
    if len(dumps) != 1:
        return False
    check = subprocess.run(["sha256sum", "-c", dumps[0].name + ".sha256"], cwd=dumps[0].parent,
                           capture_output=True, text=True)
    return check.returncode == 0


@pytest.mark.fault("7a", "vault host gone mid-copy", "backup")
def test_the_vault_host_going_away_mid_copy_fails_the_backup_keeps_the_local_one_and_the_rerun_completes(
        row, kit, topo_release):
    factory, hosts = topo_release
    server, release = factory()
    topo = release.topo
    release.write(**ssh_keepalive(topo))
    server.fill_outbox(rows=20000, payload_bytes=512)
    before = server.fingerprint()
    hosts.slow_link("vault1", "40mbit")  # ~12 MB of backup: a few seconds on the wire

    proc = release.start()
    rsync = wait_for(lambda: find_process(("rsync",), topo.ip("vault1")), proc)
    if rsync:
        time.sleep(0.5)
        hosts.link("vault1", up=False)
        row.note("vault1's link taken down while rsync pid %d was copying (%s)" % (
            rsync, "still running" if alive(rsync) else "already finished"))
    result = release.finish(proc)
    assert rsync, "the copy to the vault never started: %s" % kit.failure_excerpt(result.stdout)

    row.stopped(result, release, needles=["vault1"])
    same, local, early = server.fingerprint() == before, local_backup_checks(release), vault_backups(topo, server.db)
    row.check("data intact", same and local and not early,
              "database unchanged: %s; local backup complete and checks: %s; on the vault under a final name: %s"
              % (same, local, [p.name for p in early]))

    hosts.clear_link("vault1")
    hosts.link("vault1", up=True)
    if row.rerun_release(release):
        row.check("rerun completes", len(vault_backups(topo, server.db)) >= 1,
                  "the rerun completed but the vault holds no backup of %s" % server.db)
    row.verdict()


@pytest.mark.fault("7b", "database host gone mid-copy", "backup")
def test_the_database_host_crashing_mid_copy_stops_the_release_and_the_rerun_after_reboot_completes(
        row, kit, topo_release):
    factory, hosts = topo_release
    server, release = factory()
    topo = release.topo
    release.write(**ssh_keepalive(topo))
    server.fill_outbox(rows=20000, payload_bytes=512)
    before = server.fingerprint()
    hosts.slow_link("vault1", "40mbit")

    proc = release.start()
    rsync = wait_for(lambda: find_process(("rsync",), topo.ip("vault1")), proc)
    if rsync:
        time.sleep(0.5)
        killed = hosts.crash("db1")
        row.note("db1 crashed (%d processes of its namespace SIGKILLed, link down) while rsync pid %d copied"
                 % (killed, rsync))
    result = release.finish(proc)
    assert rsync, "the copy to the vault never started: %s" % kit.failure_excerpt(result.stdout)

    row.stopped(result, release, needles=["db1"])
    hosts.revive("db1")
    after, early = server.fingerprint(), vault_backups(topo, server.db)
    row.check("data intact", after == before and not early,
              "after db1's reboot the data differs in %s; on the vault under a final name: %s" % (
                  sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
                  [p.name for p in early]))

    row.rerun_release(release)
    row.verdict()


@pytest.mark.fault("8", "database host gone mid-dump (SSH)", "backup")
def test_the_database_host_crashing_mid_dump_over_ssh_stops_the_release_and_the_rerun_after_reboot_completes(
        row, kit, topo_release):
    factory, hosts = topo_release
    server, release = factory()
    topo = release.topo
    release.write(**ssh_keepalive(topo))
    server.fill_outbox(rows=20000, payload_bytes=512)
    before = server.fingerprint()

    proc = release.start()
    dump = wait_for(lambda: find_process(("mariadb-dump", "mysqldump"), server.db), proc, step=0.005)
    dumping = False
    if dump:
        # Crash as soon as the dump's partial file has its first bytes: the dump is under way, far from its end.
        wait_for(lambda: dump_under_way(release, dump), proc, step=0.002)
        dumping, written = alive(dump), partial_bytes(release.backups)
        killed = hosts.crash("db1")
        row.note("db1 crashed (%d processes of its namespace SIGKILLed, link down) while mariadb-dump pid %d was "
                 "%s (partial file: %d bytes)" % (killed, dump, "running" if dumping else "already gone", written))
    result = release.finish(proc)
    assert dump, "the dump never started: %s" % kit.failure_excerpt(result.stdout)
    if not dumping:
        hosts.revive("db1")
        fault_not_injected(row, "mariadb-dump pid %d had already ended when db1 crashed" % dump)

    row.stopped(result, release, needles=["db1"])
    hosts.revive("db1")
    left = final_backups(release.backups)
    row.check("data intact", server.fingerprint() == before and not left,
              "data differs after db1's reboot, or a file under a backup's name was left: %s%s" % (
                  [p.name for p in left],
                  " (complete and verified: the dump ended before the crash)" if published_backups_verified(
                      release.backups) else " (not a complete, verified backup)" if left else ""))

    row.rerun_release(release)
    row.verdict()
