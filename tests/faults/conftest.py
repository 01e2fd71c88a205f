"""The fault matrix: fixtures that build a real release to break, and the table printed at the end of the run.

Every fault test is marked `@pytest.mark.fault(key, name, phase)`; its `row` fixture is the matrix row it fills
in while it checks the four promises (stops at the right phase with a clear message, no data lost, a truthful
record, a rerun that completes). `pytest_terminal_summary` prints the rows as a table, skipped faults included
("not covered" with the reason).

This file never imports the root `conftest` by name: pytest loads both files as the module `conftest`, so the
fault tests get their own server fixtures (and their own admin password) from here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "scripts", ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import PHASES, VENV_BIN, local_host_vars, run_playbook, write_inventory  # noqa: E402
from sandbox_db import Sandbox  # noqa: E402

ADMIN_USER = "db_admin"
FAULT_ADMIN_PASSWORD = "Fault-Adm1n-Pw-" + uuid.uuid4().hex[:8]
WRONG_PASSWORD = "Wr0ng-Fault-Pw-" + uuid.uuid4().hex[:6]
VERSION = "v7.7.0-faults"
EXAMPLE = ROOT / "examples/app"
DDL = EXAMPLE / "infra/ddls/create_distributed_tables.sql"
COLUMNS = ("phase stopped at", "message ok", "data intact", "record truthful", "rerun completes")


def scratch_dir(prefix="dbr-f-") -> Path:
    """A short path under /tmp: unix socket paths are limited to 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def mariadb_client() -> str:
    return shutil.which("mariadb") or shutil.which("mysql")


# -- the matrix ------------------------------------------------------------------------------------------------
MATRIX: list[FaultRow] = []


class FaultRow:
    """One fault's line in the matrix. `check` records a promise (kept or not, with why); `verdict` asserts."""

    def __init__(self, key, name, phase):
        self.key, self.name, self.expected_phase = key, name, phase
        self.stopped_at = None
        self.cells = {}
        self.forced = False  # the rerun needed lock_force (a dead run's lock)
        self.outcome = None  # passed / failed / skipped (set by pytest_runtest_makereport)
        self.reason = ""
        self.evidence = []

    def check(self, column, ok, detail=""):
        assert column in COLUMNS, column
        self.cells[column] = (bool(ok), detail)
        return bool(ok)

    def note(self, text):
        """Evidence that the fault really happened (printed under the table)."""
        self.evidence.append(text)

    def verdict(self):
        missing = [c for c in COLUMNS if c not in self.cells]
        broken = ["%s: %s" % (c, self.cells[c][1]) for c in COLUMNS if c in self.cells and not self.cells[c][0]]
        assert not broken and not missing, "fault '%s' broke its promises:\n  %s" % (
            self.name, "\n  ".join(broken + ["%s: not checked" % c for c in missing]))

    # -- the four promises, checked the same way for every fault --------------------------------------------
    def stopped(self, proc, release, needles=(), record_needles=None):
        """The release stopped at the expected phase, said why in words an operator can act on (naming each of
        `needles`, never a password), and its record says that phase failed with the error, later phases absent."""
        out = (proc.stdout or "") + (proc.stderr or "")
        phases = release.record.get("phases", {})
        failed = [p for p in phases if (phases[p] or {}).get("status") == "failed"]
        self.stopped_at = ",".join(failed) or ("none (rc=0)" if proc.returncode == 0 else "none recorded")
        self.check("phase stopped at", proc.returncode != 0 and failed == [self.expected_phase],
                   "rc=%s, failed phases in the record: %s; %s" % (proc.returncode, failed or "none",
                                                                   failure_excerpt(out)))
        said = failure_text(out)
        head = "Phase '%s' failed" % self.expected_phase
        missing = [n for n in needles if n.lower() not in said.lower()]
        leaks = leaked_passwords(out, release)
        self.check("message ok", head in said and not missing and not leaks,
                   "; ".join(filter(None, [
                       "" if head in said else "no error saying %r" % head,
                       "the error does not say %s" % missing if missing else "",
                       "a password appears in %s" % leaks if leaks else "",
                       failure_excerpt(out) if (missing or head not in said) else ""])))
        entry = phases.get(self.expected_phase) or {}
        error = str(entry.get("error") or "")
        index = PHASES.index(self.expected_phase)
        later = [p for p in PHASES[index + 1:] if p in phases]
        unsettled = [p for p in PHASES[:index] if p in phases and phases[p].get("status") not in ("ok", "skipped")]
        record_missing = [n for n in (needles if record_needles is None else record_needles)
                          if n.lower() not in json.dumps(entry).lower()]
        self.check("record truthful",
                   entry.get("status") == "failed" and error and not later and not unsettled and not record_missing,
                   "; ".join(filter(None, [
                       "phases.%s is %s" % (self.expected_phase, json.dumps(entry)[:300])
                       if entry.get("status") != "failed" or not error else "",
                       "later phases recorded: %s" % later if later else "",
                       "earlier phases not ok: %s" % unsettled if unsettled else "",
                       "the recorded error does not say %s" % record_missing if record_missing else ""])))
        return out

    def rerun_release(self, release, **kwargs):
        """Run the release again after the fix. A run that died with its server or host could not release its
        release lock (the lock is a row on that server): the lock then refuses a plain rerun until it expires
        (lock_ttl_minutes). The documented operator step for a run known to be dead is -e lock_force=true: taken
        only when the lock refused the plain rerun, and shown in the matrix as `yes (lock_force)`."""
        proc = release.run()
        # A rerun of the same release refused at the lock writes nothing into the record (it is the holder's,
        # here the dead run's): the refusal is in its output.
        said = failure_text((proc.stdout or "") + (proc.stderr or ""))
        if proc.returncode != 0 and "Phase 'lock' failed" in said and "held by" in said:
            self.forced = True
            self.note("a plain rerun was refused by the dead run's release lock (%s); rerun with -e lock_force=true"
                      % said.partition("held by ")[2][:90])
            proc = release.run(extra_vars={"lock_force": True})
        return self.rerun(proc, release, **kwargs)

    def rerun(self, proc, release, required=("preflight", "lock", "backup", "schema", "verify")):
        """After the fix, the same release completes and its record shows every phase ok (or skipped)."""
        phases = release.record.get("phases", {})
        statuses = {p: (e or {}).get("status") for p, e in phases.items()}
        bad = {p: s for p, s in statuses.items() if s not in ("ok", "skipped")}
        missing = [p for p in required if p not in phases]
        return self.check("rerun completes", proc.returncode == 0 and not bad and not missing,
                          "rc=%s, phases not ok: %s, missing: %s; %s" % (
                              proc.returncode, bad or "none", missing or "none",
                              failure_excerpt((proc.stdout or "") + (proc.stderr or ""))))

    # -- across processes: under pytest-xdist a worker fills the row, the controller prints the table ------------
    FIELDS = ("stopped_at", "cells", "forced", "outcome", "reason", "evidence")

    def state(self) -> dict:
        return {field: getattr(self, field) for field in self.FIELDS}

    def load(self, state: dict):
        for field in self.FIELDS:
            setattr(self, field, state[field])
        self.cells = {column: tuple(cell) for column, cell in self.cells.items()}

    def cell(self, column):
        if self.outcome == "skipped":
            return "not covered" if column == COLUMNS[0] else "-"
        if column == COLUMNS[0] and column in self.cells:
            return "%s (%s)" % (self.stopped_at or "none", "ok" if self.cells[column][0] else "expected %s" %
                                self.expected_phase)
        if column not in self.cells:
            return "not reached"
        if column == "rerun completes" and self.forced and self.cells[column][0]:
            return "yes (lock_force)"
        return "yes" if self.cells[column][0] else "NO"


_CONFIG = None


def __getattr__(name):
    """`from conftest import X` in a test module elsewhere may find this module when a whole-suite run loaded it
    last (both files are the module `conftest`): hand out the root conftest's names, not look-alikes."""
    root = ROOT / "tests" / "conftest.py"
    plugin = _CONFIG.pluginmanager.get_plugin(str(root)) if _CONFIG is not None else None
    if plugin is not None and hasattr(plugin, name):
        return getattr(plugin, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def failure_text(out: str) -> str:
    """Only what ansible-playbook said about failures: each `[ERROR]`/`fatal:`/`failed:` block up to the next task
    or play. The operator's message is judged on this, not on the whole log (which echoes file names and
    inputs anyway)."""
    blocks, keep = [], False
    for line in out.splitlines():
        if line.startswith(("[ERROR]", "fatal:", "failed:", "ERROR!")):
            keep = True
        elif line.startswith(("TASK [", "PLAY [", "PLAY RECAP", "RUNNING HANDLER", "TASKS RECAP")):
            keep = False
        if keep:
            blocks.append(line)
    return "\n".join(blocks)


def failure_excerpt(out: str, limit=500) -> str:
    """The lines of an ansible-playbook output that say what failed (for the matrix notes)."""
    lines = [line.strip() for line in out.splitlines()
             if line.lstrip().startswith(("fatal:", "failed:", "ERROR!", "[ERROR]")) or "\"msg\":" in line]
    return (" / ".join(lines)[:limit]) if lines else ""


def leaked_passwords(out: str, release) -> list:
    """Where a password shows up: the output, or any uncompressed artifact of the release."""
    found = []
    for password in (FAULT_ADMIN_PASSWORD, WRONG_PASSWORD):
        if password in out:
            found.append("ansible-playbook output")
        for path in release.written_files():
            if path.suffix in (".gz", ".zst", ".partial") or path.stat().st_size > 50_000_000:
                continue
            if password.encode() in path.read_bytes():
                found.append(str(path))
    return found


def pytest_configure(config):
    global _CONFIG
    _CONFIG = config
    config.addinivalue_line("markers", "fault(key, name, phase): a line of the fault matrix")


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("fault")
        if mark is not None:
            row = FaultRow(*mark.args, **mark.kwargs)
            item.stash[_ROW_KEY] = row
            MATRIX.append(row)


_ROW_KEY = pytest.StashKey[FaultRow]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    row = item.stash.get(_ROW_KEY, None)
    if row is not None and (report.when == "call" or report.outcome != "passed"):
        if report.skipped:
            row.outcome = "skipped"
            longrepr = report.longrepr
            row.reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            row.reason = row.reason.removeprefix("Skipped: ")
        elif report.failed and row.outcome != "failed":
            row.outcome = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            row.reason = crash.message if crash is not None else str(report.longrepr)[-400:]
        elif report.when == "call" and report.passed:
            row.outcome = "passed"
    if row is not None:
        # The row travels with its report (pytest-xdist sends user_properties to the controller); a fresh list, since
        # a report's list is its item's.
        report.user_properties = [p for p in report.user_properties if p[0] != _ROW_PROPERTY]
        report.user_properties.append((_ROW_PROPERTY, dict(row.state(), key=row.key, name=row.name,
                                                           phase=row.expected_phase)))
    return report


_ROW_PROPERTY = "fault_matrix_row"


def pytest_runtest_logreport(report):
    """Where the table is printed (this process, or the controller of pytest-xdist workers), each row is the one its
    test's process filled in."""
    for name, state in report.user_properties:
        if name != _ROW_PROPERTY:
            continue
        row = next((r for r in MATRIX if r.key == state["key"]), None)
        if row is None:  # the controller of pytest-xdist workers collects nothing itself
            row = FaultRow(state["key"], state["name"], state["phase"])
            MATRIX.append(row)
        row.load(state)


_SELF = sys.modules[__name__]


@pytest.fixture
def kit():
    """This module (constants and helpers) for the tests: they cannot `import conftest`, which is ambiguous."""
    return _SELF


@pytest.fixture
def row(request):
    found = request.node.stash.get(_ROW_KEY, None)
    assert found is not None, "a fault test needs @pytest.mark.fault(key, name, phase)"
    return found


def _key_order(key: str):
    """Matrix order: "7a" after "6" and before "7b" and "8"."""
    digits = len(key) - len(key.lstrip("0123456789"))
    return (int(key[:digits] or 0), key[digits:])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = sorted((r for r in MATRIX if r.outcome is not None), key=lambda r: _key_order(r.key))
    if not rows:
        return
    header = ("fault",) + COLUMNS + ("result",)
    table = [header]
    for r in rows:
        table.append(("%s. %s" % (r.key, r.name),) + tuple(r.cell(c) for c in COLUMNS)
                     + ({"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(r.outcome, "?"),))
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix")
    for n, line in enumerate(table):
        write(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            write("-+-".join("-" * w for w in widths))
    notes = []
    for r in rows:
        if r.outcome == "skipped":
            notes.append("%s. not covered: %s" % (r.key, r.reason))
        for column in COLUMNS:
            if column in r.cells and not r.cells[column][0]:
                notes.append("%s. %s: %s" % (r.key, column, r.cells[column][1]))
        if r.outcome == "failed" and not any(not ok for ok, _ in r.cells.values()):
            notes.append("%s. failed: %s" % (r.key, r.reason.splitlines()[0] if r.reason else "?"))
        for text in r.evidence:
            notes.append("%s. fault injected: %s" % (r.key, text))
    if notes:
        write("")
        for text in notes:
            write(text[:400])


# -- real servers and releases -----------------------------------------------------------------------------------
class Server:
    """A throwaway MariaDB of one test's own (Sandbox), with the example application's pre-release database."""

    def __init__(self, base: Path, db: str, box=None):
        self.base, self.db = base, db
        self.box = box or Sandbox(base)

    def start(self, timeout=30.0):
        # Its own tmpdir: internal temporary tables of a shared /tmp can be removed under the server's feet.
        tmp = self.base / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self.box.start(extra_args=("--tmpdir=%s" % tmp,), timeout=timeout)
        return self

    def kill(self):
        """SIGKILL mariadbd (a crash, not a shutdown); returns the pid that was killed."""
        pid = self.box.pid()
        assert pid, "the server is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.box.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    def restart(self):
        """Start the crashed server again on the same datadir and port (InnoDB crash recovery runs)."""
        if os.path.exists(self.box.socket):
            os.unlink(self.box.socket)
        self.start(timeout=60)

    def load_example(self):
        self.box.sql("CREATE DATABASE IF NOT EXISTS `%s`" % self.db)
        for name in ("schema_pre_release.sql", "seed.sql"):
            self.client_file(EXAMPLE / "db" / name)

    def client_file(self, path: Path, database=None):
        with open(path, "rb") as handle:
            subprocess.run([mariadb_client(), "--no-defaults", "-uroot", "-S", self.box.socket, database or self.db],
                           stdin=handle, check=True, capture_output=True)

    def sql(self, statements, database=None):
        return self.box.sql(statements, database or self.db)

    def fill_outbox(self, rows: int, payload_bytes: int = 512):
        """Create the release's outbox ahead of time (its DDL is idempotent) and fill it with delivered events
        whose payload is random hex: big, poorly compressible dumps from a small number of rows."""
        self.client_file(DDL)
        self.sql("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts,"
                 " created_at, available_at, delivered_at)"
                 " SELECT 'order', seq, 'order.created', HEX(RANDOM_BYTES(%d)), 'delivered', 1,"
                 " NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR, NOW(3) - INTERVAL 59 MINUTE"
                 " FROM seq_1_to_%d" % (min(payload_bytes, 1024), rows))

    def fingerprint(self, database=None) -> dict:
        """What 'no data lost' means: every table's row count and CHECKSUM TABLE, and the routines, triggers and
        views, of the database as the release found it."""
        db = database or self.db
        conn = self.box.root(db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema=%s"
                            " ORDER BY table_name", (db,))
                tables = cur.fetchall()
                out = {}
                for name, kind in tables:
                    if kind != "BASE TABLE":
                        out["view " + name] = True
                        continue
                    cur.execute("SELECT COUNT(*) FROM `%s`" % name)
                    count = cur.fetchone()[0]
                    cur.execute("CHECKSUM TABLE `%s`" % name)
                    out["table " + name] = (count, cur.fetchone()[1])
                cur.execute("SELECT routine_type, routine_name FROM information_schema.routines"
                            " WHERE routine_schema=%s", (db,))
                out.update({"%s %s" % r: True for r in cur.fetchall()})
                cur.execute("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema=%s", (db,))
                out.update({"trigger %s" % r: True for r in cur.fetchall()})
                return out
        finally:
            conn.close()

    def restore_into(self, backup: Path, database: str) -> dict:
        """Restore a backup file into `database` (dropped first) and return that database's fingerprint."""
        self.box.sql(["DROP DATABASE IF EXISTS `%s`" % database, "CREATE DATABASE `%s`" % database])
        tool = ["zstd", "-dc"] if backup.suffix == ".zst" else ["gzip", "-dc"]
        unpack = subprocess.Popen(tool + [str(backup)], stdout=subprocess.PIPE)
        load = subprocess.run([mariadb_client(), "--no-defaults", "-uroot", "-S", self.box.socket, database],
                              stdin=unpack.stdout, capture_output=True)
        unpack.stdout.close()
        assert unpack.wait() == 0 and load.returncode == 0, load.stderr.decode()[-400:]
        try:
            return self.fingerprint(database)
        finally:
            self.box.sql("DROP DATABASE IF EXISTS `%s`" % database)

    def processlist(self):
        try:
            return self.box.sql("SELECT id, db, command, time, info FROM information_schema.processlist"
                                " WHERE info IS NOT NULL")
        except pymysql.MySQLError:
            return ()


class Release:
    """release.yml against one Server, with a fresh artifacts and backup folder; the inventory can be rewritten
    between runs (the fault, then the fix)."""

    def __init__(self, base: Path, server: Server, **overrides):
        self.base, self.server = base, server
        self.artifacts = base / "artifacts"
        self.backups = base / "backups"
        self.host_vars = local_host_vars(
            server.box, ADMIN_USER, FAULT_ADMIN_PASSWORD,
            release_db_name=server.db,
            release_environment="staging",
            release_ddl_files=[str(DDL)],
            release_migration_command="",
            release_backup_dir=str(self.backups),
            release_artifacts_dir=str(self.artifacts),
            # The fault tests restore the backup themselves where it matters; the phase's own restore test is
            # covered by the backup tests and would only slow the matrix down.
            backup_restore_test=False,
            verify_watch_minutes=0,
        )
        self.host_vars.update(overrides)
        self.backups = Path(self.host_vars["release_backup_dir"])
        self.version = VERSION
        self.write()

    def write(self, **changes):
        self.host_vars.update(changes)
        self.inventory = write_inventory(self.base / "inventory.yml", {"db1": self.host_vars})
        return self

    def run_extra(self, extra_vars):
        return self.run(extra_vars=extra_vars)

    def command(self, extra_vars=None, playbook="release.yml"):
        extra = {"release_version": self.version}
        extra.update(extra_vars or {})
        return [str(VENV_BIN / "ansible-playbook"), playbook, "-i", str(self.inventory), "-e", json.dumps(extra)]

    def run(self, extra_vars=None, playbook="release.yml", timeout=300):
        extra = {"release_version": self.version}
        extra.update(extra_vars or {})
        return run_playbook(playbook, self.inventory, extra_vars=extra, timeout=timeout)

    def start(self, extra_vars=None, playbook="release.yml"):
        """The release as a background process (for faults injected while it runs); see `finish`."""
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
        return subprocess.Popen(self.command(extra_vars, playbook), cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    @staticmethod
    def finish(proc, timeout=240):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    @property
    def record_path(self) -> Path:
        return self.artifacts / self.version / "release.json"

    @property
    def record(self) -> dict:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return {}

    def phase(self, name) -> dict:
        return self.record.get("phases", {}).get(name) or {}

    def wait_for_phase(self, name, status="running", timeout=120, proc=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.phase(name).get("status") == status:
                return True
            if proc is not None and proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def written_files(self):
        return [p for d in (self.artifacts, self.backups) if d.exists() for p in d.rglob("*") if p.is_file()]


@pytest.fixture(scope="session")
def template_datadir():
    """One initialised (never started) datadir that each test's server copies: mariadb-install-db takes seconds."""
    base = scratch_dir("dbr-ftpl-")
    box = Sandbox(base)
    box.initialise()
    yield box.datadir
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_server(template_datadir):
    """Factory: Server(db) started, with the example's pre-release schema and seed loaded; destroyed afterwards."""
    made = []

    def factory(db=None, load=True) -> Server:
        server = Server(scratch_dir(), db or "shop_" + uuid.uuid4().hex[:6])
        made.append(server)
        shutil.copytree(template_datadir, server.box.datadir, symlinks=True)
        server.start()
        server.box.create_admin(ADMIN_USER, FAULT_ADMIN_PASSWORD)
        if load:
            server.load_example()
        return server

    yield factory
    for server in made:
        server.box.destroy()


@pytest.fixture
def make_release():
    """Factory: Release(server, **host var overrides) in a fresh folder; removed afterwards."""
    bases = []

    def factory(server: Server, **overrides) -> Release:
        base = scratch_dir("dbr-fr-")
        bases.append(base)
        return Release(base, server, **overrides)

    yield factory
    for base in bases:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tmpfs():
    """Factory: a small tmpfs mounted at a fresh directory (a disk that fills up), unmounted afterwards."""
    mounts = []

    def factory(size="1m") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small filesystem needs root")
        target = scratch_dir("dbr-full-")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", str(target)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.strip())
        mounts.append(target)
        return target

    yield factory
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
        shutil.rmtree(target, ignore_errors=True)


# -- the network-namespace topology (faults 7 and 8) -------------------------------------------------------------
class TopoRelease(Release):
    """release.yml over SSH against database host db1 of a Topology, pushing its backup to vault1."""

    def __init__(self, base: Path, server: Server, topo, **overrides):
        self.topo = topo
        super().__init__(base, server, **overrides)

    def write(self, **changes):
        import yaml

        self.host_vars.update(changes)
        hv = dict(self.topo.host_vars("db1"))
        hv.update({k: v for k, v in self.host_vars.items()
                   if k not in ("ansible_connection", "ansible_python_interpreter", "release_db_socket",
                                "release_db_host", "release_db_port")})
        inv = {"all": {"children": {
            "databases": {"hosts": {"db1": hv}},
            "backup_vault": {"hosts": {"vault1": self.topo.host_vars("vault1")}},
        }}}
        self.inventory = self.base / "inventory.yml"
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(yaml.safe_dump(inv, sort_keys=False))
        return self


class Hosts:
    """Faults on the topology's hosts: a slow link, a link down, a host crash (every process in its namespace)."""

    def __init__(self, topo):
        self.topo = topo

    def slow_link(self, host, rate="40mbit"):
        """Shape the traffic towards `host` (a WAN link to a remote vault): copies take seconds, not milliseconds."""
        subprocess.run(["tc", "qdisc", "replace", "dev", self.topo.veth(host), "root", "tbf", "rate", rate,
                        "burst", "64kb", "latency", "400ms"], check=True, capture_output=True)

    def clear_link(self, host):
        subprocess.run(["tc", "qdisc", "del", "dev", self.topo.veth(host), "root"], capture_output=True)

    def link(self, host, up):
        self.topo.link(host, up=up)

    def crash(self, host):
        """Power loss: SIGKILL every process of the host's namespace (mariadbd, sshd, sessions, jobs); link down."""
        pids = subprocess.run(["ip", "netns", "pids", self.topo.netns(host)], capture_output=True,
                              text=True).stdout.split()
        self.topo.link(host, up=False)
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        self._clear_shared_home_locks()
        return len(pids)

    @staticmethod
    def _clear_shared_home_locks():
        """The namespaces share the controller's filesystem, home included. A shell of the crashed host's SSH
        sessions may have been inside `pyenv rehash` (root's .bashrc runs `pyenv init`), whose lock file
        (~/.pyenv/shims/.pyenv-shim) then stays: every later SSH command of every host, and the controller, would
        wait 60 s for it. A separate machine's crash leaves its own disk, not the others': remove the lock once
        no rehash holds it."""
        lock = Path(os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))) / "shims" / ".pyenv-shim"
        rehashing = subprocess.run(["pgrep", "-f", "pyenv-rehash"], capture_output=True, text=True).stdout.split()
        if lock.exists() and not rehashing:
            lock.unlink(missing_ok=True)

    def revive(self, host):
        """Power back on: link up, then the topology's idempotent `up` restarts sshd and mariadbd."""
        self.clear_link(host)
        self.topo.link(host, up=True)
        self.topo.up()


@pytest.fixture(scope="module")
def topology():
    """One topology (db1 with mariadbd + sshd, vault1 with sshd) for the topology faults; removed afterwards."""
    try:
        import topology as topo_mod
    except ImportError as exc:
        pytest.skip("tests/topology.py is not importable: %s" % exc)
    reason = topo_mod.available()
    if reason:
        pytest.skip("the namespace topology is unavailable here: %s" % reason)
    with topo_mod.running_topology(db_hosts=("db1",), vault_hosts=("vault1",),
                                   admin_password=FAULT_ADMIN_PASSWORD) as topo:
        yield topo


@pytest.fixture
def topo_release(topology):
    """Factory: a database of the test's own on db1 (example loaded), and a TopoRelease of it."""
    made = []
    hosts = Hosts(topology)

    def factory(**overrides):
        db = "shop_" + uuid.uuid4().hex[:6]
        server = Server(topology.host_dir("db1") / "mysql", db, box=topology.sandbox("db1"))
        server.load_example()
        base = scratch_dir("dbr-ft-")
        backups = topology.backup_dir("db1") / db
        release = TopoRelease(base, server, topology, release_backup_dir=str(backups),
                              backup_vault_connect_timeout=2, **overrides)
        made.append((release, backups))
        return server, release

    yield factory, hosts
    for host in ("db1", "vault1"):
        hosts.clear_link(host)
        topology.link(host, up=True)
    topology.up()
    for release, backups in made:
        try:
            release.server.box.sql("DROP DATABASE IF EXISTS `%s`" % release.server.db)
        except pymysql.MySQLError:
            pass
        shutil.rmtree(backups, ignore_errors=True)
        shutil.rmtree(release.base, ignore_errors=True)
