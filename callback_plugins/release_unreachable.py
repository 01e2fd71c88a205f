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
  - This callback learns each host's record from the results of its C(release_phase) tasks (the phase
    mechanism). When the host becomes unreachable, every phase of that record still C(running) that started in
    this run is marked C(failed) with an error naming the host, its address, the phase, the task and Ansible's
    message, and C(Phase '<phase>' failed on <host>) is printed. The record is written with the phase mechanism's
    own code (module_utils/dbrelease/record.py, with the same file lock and atomic rename; C(release.check.json) under
    C(--check)).
  - Unreachable results of tasks with C(ignore_unreachable) are left alone (the host stays in the play).
  - It cannot switch maintenance mode off, release the release lock or write C(report.md), which all need the
    host (or its play). The error says so; a rerun after such a crash may need C(-e lock_force=true).
  - Loaded from C(callback_plugins/) (named in ansible.cfg, and beside release.yml), so it also acts when a
    single phase playbook runs; no C(callbacks_enabled) needed.
author: dbrelease
"""

import os

import ansible.module_utils
from ansible.plugins.callback import CallbackBase

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import record  # noqa: E402
from ansible.module_utils.dbrelease.clock import utc_now_iso as now_iso  # noqa: E402

RECORD_NAMES = (record.RECORD, record.CHECK_RECORD)
# The tasks whose results name the record they wrote.
RECORD_ACTIONS = ("release_phase", "release_record")


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


def record_failed(record_path, phase, error, changed):
    """Write `phase` as failed into the record at `record_path`; returns (ok, message)."""
    try:
        record.write(os.path.dirname(record_path), os.path.basename(record_path) == record.CHECK_RECORD,
                     [record.entry(phase, "failed", changed, {}, error)])
    except (OSError, ValueError) as exc:
        return False, str(exc)
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
        if path and str(result.task.action).endswith(RECORD_ACTIONS) and os.path.basename(path) in RECORD_NAMES:
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
        current = record.load(path)
        for phase in running_phases(current, self._started):
            error = unreachable_error(delegated or host, str(address) if address else None, phase,
                                      result.task.get_name(), result.result.get("msg"),
                                      delegated_from=host if delegated else None)
            ok, why = record_failed(path, phase, error, (current["phases"][phase] or {}).get("changed"))
            if not ok:
                self._display.warning("could not record phase %s of %s as failed in %s: %s" % (phase, host, path,
                                                                                                why))
            self._display.error("Phase '%s' failed on %s: %s. The record is in %s." % (phase, host, error, path))
