"""Detached jobs on the managed host: a module forks a worker and returns at once; `status` calls read its JSON
status file. One mechanism for every long module run the controller follows live (db_backup's dump, schema_apply's
statements): the controller half is `plugin_utils/job.py` of the dbrelease.core collection.

The module's `mode` is the protocol: `start` forks the work and returns a job directory, `status` waits for the
job's status (a long poll) and renews a lease, `cancel` stops it. Each status call renews the lease; a worker whose
controller stopped polling (interrupted, connection lost) for longer than the lease stops as if cancelled. Stopping
is the work's business: it is told through `should_stop()` (and its process group gets SIGTERM), and what it leaves
is its own promise (the backup removes its partial file; the schema change stops its online tool, which drops its
triggers and new table).

The job directory is a private 0700 directory under the system temp dir (not the backup dir, which may be full),
named `dbrelease-<kind>-job-*`; it holds `status.json` and `lease` and nothing secret.

Stdlib only (runs on target hosts).
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback

# The module options of the protocol, merged into the argument_spec of a module that runs as a job.
MODES = ["run", "start", "status", "cancel"]


def argument_spec(lease_seconds=120):
    return dict(
        mode=dict(type="str", choices=MODES, default="run"),
        job_dir=dict(type="path"),
        lease_seconds=dict(type="int", default=lease_seconds),
        wait_seconds=dict(type="float", default=0),
    )


class Jobs:
    """The jobs of one kind (`backup`, `schema`): their directories, status files, leases, workers.

    `stopped_note` is appended to the message of a job that failed after being stopped (cancelled or lease
    expired): what the work promises to have left behind."""

    def __init__(self, kind, stopped_note=""):
        self.kind = kind
        self.prefix = "dbrelease-%s-job-" % kind
        self.stopped_note = stopped_note
        self._re = re.compile(r"^%s[A-Za-z0-9_]+$" % re.escape(self.prefix))

    # -- directories --------------------------------------------------------------------------------------------
    def new_job_dir(self) -> str:
        self.sweep()
        path = tempfile.mkdtemp(prefix=self.prefix)
        os.chmod(path, 0o700)
        return path

    def sweep(self, older_than_s=600) -> list[str]:
        """Remove job directories nobody will read: finished or with a dead worker, and not polled for 10 minutes
        (a controller killed outright, with SIGKILL, never reads its job's final status)."""
        removed = []
        base = tempfile.gettempdir()
        for name in os.listdir(base):
            path = os.path.join(base, name)
            if not self._re.match(name) or not os.path.isdir(path) or os.stat(path).st_uid != os.getuid():
                continue
            try:
                idle = time.time() - os.stat(os.path.join(path, "lease")).st_mtime
            except OSError:
                idle = time.time() - os.stat(path).st_mtime
            current = read_status(path)
            finished = current.get("state") in ("done", "failed") or not pid_alive(current.get("pid"))
            if idle > older_than_s and finished:
                remove(path)
                removed.append(path)
        return removed

    def check_job_dir(self, path: str) -> str:
        """Only our own job directories of this kind may be read or signalled: refuse anything else."""
        real = os.path.realpath(path or "")
        if not self._re.match(os.path.basename(real)) or not os.path.isdir(real):
            raise ValueError("not a %s job directory: %s" % (self.kind, path))
        if os.stat(real).st_uid != os.getuid():
            raise ValueError("%s job directory %s belongs to another user" % (self.kind, path))
        return real

    def lease_expired(self, job_dir, lease_s) -> str | None:
        if not lease_s:
            return None
        try:
            age = time.time() - os.stat(os.path.join(job_dir, "lease")).st_mtime
        except OSError:
            return None
        if age > lease_s:
            return "the controller stopped polling the %s for %ds (lease %ds): stopped" % (self.kind, age, lease_s)
        return None

    # -- the worker ---------------------------------------------------------------------------------------------
    def live(self, **match) -> list[dict]:
        """The jobs of this kind running now (their worker alive) whose `about` (see start()) has every item of
        `match`: their status dicts, with `job_dir`."""
        found = []
        base = tempfile.gettempdir()
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if not self._re.match(name) or not os.path.isdir(path):
                continue
            current = read_status(path)
            about = current.get("about") or {}
            if current.get("state") in ("running", "starting") and pid_alive(current.get("pid")) and all(
                    about.get(k) == v for k, v in match.items()):
                found.append(dict(current, job_dir=path))
        return found

    def wait_for_others(self, timeout_s, every=1.0, **match) -> tuple[float, list[dict]]:
        """Wait (up to `timeout_s`) until no job of this kind matching `match` runs: (seconds waited, the jobs still
        running). A job whose controller was killed stops by itself once its lease expires."""
        started = time.monotonic()
        while True:
            others = self.live(**match)
            if not others or time.monotonic() - started >= timeout_s:
                return round(time.monotonic() - started, 1), others
            time.sleep(every)

    def start(self, job_dir, work, lease_s, about=None):
        """Fork a detached worker running `work(report, should_stop)` -> result dict; return its pid. `about` (a
        small dict, e.g. the database) is kept in every status the worker writes, for live().

        `report(snapshot)` writes progress; `should_stop()` returns a reason when cancelled or the lease expired.
        The worker writes {"state": "done", "result": ...} or {"state": "failed", "msg": ...} and exits.
        """
        touch_lease(job_dir)
        preload()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write_fd)
            with os.fdopen(read_fd) as pipe:
                worker = pipe.read().strip()
            os.waitpid(pid, 0)
            return int(worker) if worker.isdigit() else None
        # First child: new session, fork again so the worker is not our child and survives the module's exit.
        try:
            os.close(read_fd)
            os.setsid()
            worker = os.fork()
            if worker:
                os.write(write_fd, str(worker).encode())
                os._exit(0)
            os.close(write_fd)
            _detach_stdio()
            _close_inherited()
            # The objects inherited from the process that started the job are never collected here: the collector's
            # passes leave them (and their pages, shared with that process until written) alone.
            gc.freeze()
            self._run_worker(job_dir, work, lease_s, about)
        finally:
            os._exit(0)

    def _run_worker(self, job_dir, work, lease_s, about=None):
        stop = {"reason": None}

        def on_term(signum, frame):
            if stop["reason"] is None:
                stop["reason"] = "cancelled (signal %d)" % signum
                _stop_children()

        def watchdog():
            while stop["reason"] is None:
                reason = self.lease_expired(job_dir, lease_s)
                if reason:
                    stop["reason"] = reason
                    _stop_children()
                    return
                time.sleep(1.0)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        threading.Thread(target=watchdog, daemon=True).start()
        base = {"pid": os.getpid(), "started": time.time(), "about": about or {}}

        def report(snapshot):
            write_status(job_dir, dict(base, state="running", progress=snapshot, reported=time.time()))

        def should_stop():
            return stop["reason"]

        report({"stage": "starting"})
        try:
            result = work(report, should_stop)
            write_status(job_dir, dict(base, state="done", result=result, stopped=stop["reason"]))
        except Exception as exc:  # noqa: BLE001 - every failure must reach the status file
            msg = str(exc) or exc.__class__.__name__
            if stop["reason"]:
                msg = "%s%s (%s)" % (stop["reason"], "; " + self.stopped_note if self.stopped_note else "", msg)
            details = getattr(exc, "details", None) or {}
            write_status(job_dir, dict(base, state="failed", msg=msg, check=getattr(exc, "check", None),
                                       details=details, trace=traceback.format_exc()[-2000:]))
        # The controller removes the job directory when it reads the final status; if it never comes back (killed),
        # the worker removes it once the lease has expired.
        deadline = time.time() + max(lease_s or 0, 30) + 30
        while os.path.isdir(job_dir) and time.time() < deadline:
            time.sleep(1.0)
        remove(job_dir)

    # -- the protocol's other calls -----------------------------------------------------------------------------
    def status(self, job_dir) -> dict:
        """The job's status (with `now`, the host's clock, to age its `reported` progress); renews the lease. A
        worker that vanished without a final status is reported failed."""
        touch_lease(job_dir)
        current = dict(read_status(job_dir), now=time.time())
        if current.get("state") in ("running", "starting") and current.get("pid") and not pid_alive(current["pid"]):
            time.sleep(0.5)  # the final status may be being written right now
            current = read_status(job_dir)
            if current.get("state") in ("running", "starting"):
                current = dict(current, state="failed", msg="the %s worker (pid %s) died without a result"
                               % (self.kind, current.get("pid")))
        return current

    def wait_status(self, job_dir, wait_s=0.0, every=0.1) -> dict:
        """The job's status once it has ended, or after `wait_s` seconds while it runs (a long poll: the controller
        learns of the end within `every` seconds instead of at its next poll, and makes fewer calls meanwhile)."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            current = self.status(job_dir)
            if current.get("state") not in ("running", "starting") or time.monotonic() >= deadline:
                return current
            time.sleep(every)

    def cancel(self, job_dir, pid=None, wait_s=60.0) -> dict:
        """SIGTERM the worker and wait (up to `wait_s`) for its final status: the work cleans up itself."""
        current = read_status(job_dir)
        pid = pid or current.get("pid")
        if current.get("state") in ("running", "starting") and pid and pid_alive(pid):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and pid_alive(pid):
                if read_status(job_dir).get("state") in ("done", "failed"):
                    break
                time.sleep(0.1)
            current = read_status(job_dir)
        return current

    def serve(self, module, params):
        """Answer the protocol's `status` and `cancel` calls for `module` (AnsibleModule) and exit: the job's
        status, its directory removed once its final status has been read."""
        try:
            job_dir = self.check_job_dir(params["job_dir"])
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        if params["mode"] == "status":
            state = self.wait_status(job_dir, min(params["wait_seconds"], params["lease_seconds"] / 2.0))
        else:
            state = self.cancel(job_dir)
        if state.get("state") in ("done", "failed"):
            remove(job_dir)
        module.exit_json(changed=False, **state)


def preload():
    """Import every module of the module's AnsiballZ payload before forking: Ansible removes the payload (a zip the
    module imports from) when the module exits, and the worker outlives it, so a module it imports only later
    (an error path, the result's encoder) would be gone. Outside a payload (direct execution, tests) nothing to do."""
    import importlib
    import sys
    import zipimport

    archives = {getattr(m, "__loader__", None).archive for m in list(sys.modules.values())
                if isinstance(getattr(m, "__loader__", None), zipimport.zipimporter)}
    for archive in archives:
        import zipfile

        with zipfile.ZipFile(archive) as payload:
            names = payload.namelist()
        for name in names:
            if not name.startswith("ansible/") or not name.endswith(".py"):
                continue
            dotted = name[:-3].replace("/", ".")
            if dotted.endswith(".__init__"):
                dotted = dotted[:-9]
            if dotted in sys.modules:
                continue
            try:
                importlib.import_module(dotted)
            except Exception:  # noqa: BLE001 - an optional module this host cannot import is not needed either
                pass


def write_status(job_dir, status: dict):
    tmp = os.path.join(job_dir, ".status.json.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(status, handle)
    os.replace(tmp, os.path.join(job_dir, "status.json"))


def read_status(job_dir) -> dict:
    try:
        with open(os.path.join(job_dir, "status.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"state": "starting"}


def touch_lease(job_dir):
    path = os.path.join(job_dir, "lease")
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.utime(path, None)


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _detach_stdio():
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _close_inherited():
    """Close every descriptor above stdio that the worker inherited: the module process's or, when the start runs
    directly in Ansible's worker (plugin_utils/direct.py), that worker's pipes to Ansible's main process and whatever
    else it holds open. The work opens what it needs itself (its connections, its files) once it runs, so a job never
    keeps a pipe of the controller open, nor a file or a lock of the run that started it."""
    try:
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        os.closerange(3, 65536)


def _stop_children():
    """SIGTERM the worker's process group (a backup's dump and compressor: a stalled read returns at once). Tools
    started in a session of their own (the online schema change tool) are stopped by the work itself."""
    try:
        os.killpg(os.getpgid(0), signal.SIGTERM)
    except OSError:
        pass


def remove(job_dir):
    shutil.rmtree(job_dir, ignore_errors=True)
