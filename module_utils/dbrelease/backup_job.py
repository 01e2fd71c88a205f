"""Detached backup jobs: the module forks a worker and returns at once; `status` calls read its JSON status file.

The controller side (action_plugins/db_backup.py) polls the status every few seconds and prints progress. Each
status call renews a lease; a worker whose controller stopped polling (interrupted, connection lost) for longer
than the lease stops, and, like a cancelled or failed worker, removes its partial file: a dump is published only
after it is complete and verified, whatever happens to the controller.

The job directory is a private 0700 directory under the system temp dir (not the backup dir, which may be full);
it holds `status.json` and `lease` and nothing secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback

JOB_PREFIX = "dbrelease-backup-job-"
_JOB_RE = re.compile(r"^%s[A-Za-z0-9_]+$" % re.escape(JOB_PREFIX))


def new_job_dir() -> str:
    sweep()
    path = tempfile.mkdtemp(prefix=JOB_PREFIX)
    os.chmod(path, 0o700)
    return path


def sweep(older_than_s=600) -> list[str]:
    """Remove job directories nobody will read: finished or with a dead worker, and not polled for 10 minutes
    (a controller killed outright, with SIGKILL, never reads its job's final status)."""
    removed = []
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not _JOB_RE.match(name) or not os.path.isdir(path) or os.stat(path).st_uid != os.getuid():
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


def check_job_dir(path: str) -> str:
    """Only our own job directories may be read or signalled: refuse anything else."""
    real = os.path.realpath(path or "")
    if not _JOB_RE.match(os.path.basename(real)) or not os.path.isdir(real):
        raise ValueError("not a backup job directory: %s" % path)
    if os.stat(real).st_uid != os.getuid():
        raise ValueError("backup job directory %s belongs to another user" % path)
    return real


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


def lease_expired(job_dir, lease_s) -> str | None:
    if not lease_s:
        return None
    try:
        age = time.time() - os.stat(os.path.join(job_dir, "lease")).st_mtime
    except OSError:
        return None
    if age > lease_s:
        return "the controller stopped polling the backup for %ds (lease %ds): stopped" % (age, lease_s)
    return None


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def start(job_dir, work, lease_s):
    """Fork a detached worker running `work(report, should_stop)` -> result dict; return its pid.

    `report(snapshot)` writes progress; `should_stop()` returns a reason when cancelled or the lease expired.
    The worker writes {"state": "done", "result": ...} or {"state": "failed", "msg": ...} and exits.
    """
    touch_lease(job_dir)
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
        _run_worker(job_dir, work, lease_s)
    finally:
        os._exit(0)


def _detach_stdio():
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _stop_children():
    """SIGTERM the worker's process group (its dump and compressor): a stalled read returns at once."""
    try:
        os.killpg(os.getpgid(0), signal.SIGTERM)
    except OSError:
        pass


def _run_worker(job_dir, work, lease_s):
    stop = {"reason": None}

    def on_term(signum, frame):
        if stop["reason"] is None:
            stop["reason"] = "cancelled (signal %d)" % signum
            _stop_children()

    def watchdog():
        while stop["reason"] is None:
            reason = lease_expired(job_dir, lease_s)
            if reason:
                stop["reason"] = reason
                _stop_children()
                return
            time.sleep(1.0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    threading.Thread(target=watchdog, daemon=True).start()
    base = {"pid": os.getpid(), "started": time.time()}

    def report(snapshot):
        write_status(job_dir, dict(base, state="running", progress=snapshot))

    def should_stop():
        return stop["reason"]

    report({"stage": "starting"})
    try:
        result = work(report, should_stop)
        write_status(job_dir, dict(base, state="done", result=result))
    except Exception as exc:  # noqa: BLE001 - every failure must reach the status file
        msg = str(exc) or exc.__class__.__name__
        if stop["reason"]:
            msg = "%s; no backup was published and the partial file was removed (%s)" % (stop["reason"], msg)
        details = getattr(exc, "details", None) or {}
        write_status(job_dir, dict(base, state="failed", msg=msg, check=getattr(exc, "check", None),
                                   details=details, trace=traceback.format_exc()[-2000:]))
    # The controller removes the job directory when it reads the final status; if it never comes back (killed),
    # the worker removes it once the lease has expired.
    deadline = time.time() + max(lease_s or 0, 30) + 30
    while os.path.isdir(job_dir) and time.time() < deadline:
        time.sleep(1.0)
    remove(job_dir)


def status(job_dir) -> dict:
    """The job's status; renews the lease. A worker that vanished without a final status is reported failed."""
    touch_lease(job_dir)
    current = read_status(job_dir)
    if current.get("state") in ("running", "starting") and current.get("pid") and not pid_alive(current["pid"]):
        time.sleep(0.5)  # the final status may be being written right now
        current = read_status(job_dir)
        if current.get("state") in ("running", "starting"):
            current = dict(current, state="failed", msg="the backup worker (pid %s) died without a result"
                           % current.get("pid"))
    return current


def wait_status(job_dir, wait_s=0.0, every=0.1) -> dict:
    """The job's status once it has ended, or after `wait_s` seconds while it runs (a long poll: the controller
    learns of the end within `every` seconds instead of at its next poll, and makes fewer calls meanwhile)."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        current = status(job_dir)
        if current.get("state") not in ("running", "starting") or time.monotonic() >= deadline:
            return current
        time.sleep(every)


def cancel(job_dir, pid=None, wait_s=30.0) -> dict:
    """SIGTERM the worker and wait for its final status (it removes its partial file itself)."""
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


def remove(job_dir):
    shutil.rmtree(job_dir, ignore_errors=True)
