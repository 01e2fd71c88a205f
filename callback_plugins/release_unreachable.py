"""Ansible callback: a host that becomes unreachable mid-phase gets that phase recorded as failed, with why."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: release_unreachable
type: notification
short_description: Record the phase a database host was in as failed when the host becomes unreachable
description:
  - When a host becomes unreachable (a crash, a power loss, a cut link), Ansible runs no C(rescue) for it and drops
    it from every later play; when every host of a play is gone it ends the playbook, so no later play (not even
    one on localhost) could record what happened. The host's C(release.json) would keep its phase C(running),
    with no error.
  - This callback learns each host's record from the results of its C(release_record) tasks. When the host
    becomes unreachable, every phase of that record still C(running) that started in this run is marked
    C(failed) with an error naming the host, its address, the phase, the task and Ansible's message, and
    C(Phase '<phase>' failed on <host>) is printed. The record is written by the C(release_record) module itself,
    run on the controller (same file lock and atomic rename; C(release.check.json) under C(--check)).
  - Unreachable results of tasks with C(ignore_unreachable) are left alone (the host stays in the play).
  - It cannot switch maintenance mode off, release the release lock or write C(report.md), which all need the
    host (or its play). The error says so; a rerun after such a crash may need C(-e lock_force=true).
  - Loaded from C(callback_plugins/) (named in ansible.cfg, and beside release.yml), so it also acts when a
    single phase playbook runs; no C(callbacks_enabled) needed.
author: dbrelease
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile

from ansible.plugins.callback import CallbackBase

RECORD_NAMES = ("release.json", "release.check.json")


def now_iso():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def running_phases(record, since):
    """Pure: the phases of `record` still `running` that started at or after `since` (this run), in order."""
    phases = (record or {}).get("phases") or {}
    return [name for name, entry in phases.items()
            if (entry or {}).get("status") == "running" and str(entry.get("started") or "") >= (since or "")]


def unreachable_error(host, address, phase, task, message, delegated_from=None):
    """Pure: the recorded error for `phase` of a host that became unreachable during `task`."""
    who = "%s (delegated from %s)" % (host, delegated_from) if delegated_from else host
    where = " (host %s)" % address if address and address != host else ""
    return ("%s became unreachable during the %s phase%s, in task '%s': %s. Nothing more could run on it: "
            "maintenance mode and the release lock stay as the run left them" % (
                who, phase, where, task, " ".join(str(message or "no message").split()) or "no message"))


def _load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _module_path():
    """The release_record module, as Ansible finds it (library path of ansible.cfg), or beside this plugin."""
    try:
        from ansible.plugins.loader import module_loader

        found = module_loader.find_plugin("release_record")
    except Exception:  # any loader trouble: fall back to the repository layout
        found = None
    return found or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "library",
                                 "release_record.py")


def record_failed(record_path, phase, error, changed):
    """Write `phase` as failed through the release_record module; returns (ok, message)."""
    args = {"path": os.path.dirname(record_path), "phase": phase, "status": "failed", "changed": bool(changed),
            "error": error, "_ansible_check_mode": os.path.basename(record_path) == "release.check.json"}
    fd, args_path = tempfile.mkstemp(prefix="release-record-args.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        proc = subprocess.run([sys.executable, _module_path(), args_path], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    finally:
        os.unlink(args_path)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = {"failed": True, "msg": (proc.stderr or proc.stdout).strip()[-300:]}
    if proc.returncode != 0 or out.get("failed"):
        return False, str(out.get("msg") or "release_record exited %d" % proc.returncode)
    return True, ""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "release_unreachable"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = now_iso()
        self._records = {}

    def v2_playbook_on_start(self, playbook):
        self._started = now_iso()

    def v2_runner_on_ok(self, result):
        # release_record is always delegated to localhost: result.host is the database host it records.
        path = (result.result or {}).get("record_path")
        if path and str(result.task.action).endswith("release_record") and os.path.basename(path) in RECORD_NAMES:
            self._records[result.host.get_name()] = path

    def v2_runner_on_unreachable(self, result):
        if result.task.ignore_unreachable:
            return
        host = result.host.get_name()
        path = self._records.get(host)
        if not path:
            return
        delegated = result.task.delegate_to if result.task.delegate_to not in (None, "", host) else None
        if delegated:
            address = (result.result.get("_ansible_delegated_vars") or {}).get("ansible_host")
        else:
            address = result.host.vars.get("ansible_host")
        record = _load(path)
        for phase in running_phases(record, self._started):
            error = unreachable_error(delegated or host, str(address) if address else None, phase,
                                      result.task.get_name(), result.result.get("msg"),
                                      delegated_from=host if delegated else None)
            ok, why = record_failed(path, phase, error, (record["phases"][phase] or {}).get("changed"))
            if not ok:
                self._display.warning("could not record phase %s of %s as failed in %s: %s" % (phase, host, path,
                                                                                                why))
            self._display.error("Phase '%s' failed on %s: %s. The record is in %s." % (phase, host, error, path))
