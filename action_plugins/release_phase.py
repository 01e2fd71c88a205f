"""The phase mechanism: records a phase of the release (running, ok, failed, skipped) in the release record.

Runs in Ansible's worker process on the controller, without a module process (the record is on the controller).
What it does, in the order of a phase (docs/architecture.md, "Phases", is the user's guide):

- `status: running` (the phase's first task): refreshes the release lock when a third of its TTL has passed since
  this run last refreshed it, writes the phase as running, and returns `record` (what earlier phases recorded:
  release.json, under --check with release.check.json on top), `previous` (this phase's entry before this
  attempt), `dir` (the release directory) and `stamp` (a compact UTC time for file names).
- `status: ok` / `skipped` (the phase's last task, or its skip): writes the phase with its outputs: the `record`
  parts of the results named at `running` (each module returns the part the record keeps), then `outputs`, then
  `reason`. `changed` is whether one of those results changed something. Prints each result's `msg`.
- `status: failed` (the phase's rescue): writes the phase failed with `ansible_failed_task`'s name and
  `ansible_failed_result`'s message, prints it, and puts the host into the group `dbrelease_failed`: later phase
  plays skip it, the finish play cleans up and then stops it with that error.

Who writes the record: the run that holds the release lock. A phase started with `before_lock: true` (preflight,
lock) is kept in memory until the lock phase ends with `locked: true`, and is written then. A run that stops before
it holds the lock writes its failure only when the record shows no other run holding the lock and the failure
does not say `record_busy` (the lock is held by another run of this release, or this run lost it); otherwise it
writes nothing at all, and the finish play leaves maintenance mode, the lock and the report alone. Playbooks that
take no lock (a phase playbook run by hand) write as they go. Under --check every write goes to release.check.json.

The state of this run is the host fact `dbrelease_run`: `owner` (may switch maintenance off and release the lock at
the end), `writes` (may write the record and the report), `failed` ({phase, error} of the phase that stopped the
host), `phase` (the phase running now), `lock` (the lock this run holds), `before_lock`, `held`.
"""

from __future__ import annotations

import os
import time

import ansible.module_utils
from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import record  # noqa: E402
from ansible.module_utils.dbrelease.clock import utc_now_iso, utc_stamp  # noqa: E402

display = Display()

STATE_FACT = "dbrelease_run"
FAILED_GROUP = "dbrelease_failed"
ARGUMENT_SPEC = dict(
    phase=dict(type="str", required=True),
    status=dict(type="str", choices=["running", "ok", "failed", "skipped"], default="running"),
    results=dict(type="list", elements="str", default=[]),
    outputs=dict(type="dict", default={}),
    reason=dict(type="str", default=""),
    requires=dict(type="list", elements="str", default=[]),
    files=dict(type="list", elements="dict", default=[], options=dict(
        path=dict(type="path", required=True),
        name=dict(type="str", required=True),
        content=dict(type="str", required=True),
        force=dict(type="bool", default=True),
    )),
    before_lock=dict(type="bool", default=False),
    locked=dict(type="bool", default=False),
)
REQUIRED_IF = [("status", "skipped", ("reason",))]
# The lock is refreshed at the start of a phase once this share of its TTL has passed since the last refresh (unless
# the lock phase says otherwise: lock_refresh_seconds).
REFRESH_SHARE = 1.0 / 3


def failure_text(failed_task, failed_result) -> str:
    """Pure: `<task name>: <message>` of the task that failed (the first failed item's message for a loop)."""
    failed_result = failed_result or {}
    msg = failed_result.get("msg")
    items = failed_result.get("results")
    if isinstance(items, list):
        item_msgs = [str(i.get("msg")) for i in items if isinstance(i, dict) and i.get("failed") and i.get("msg")]
        if item_msgs:
            msg = "; ".join(item_msgs)
    if not msg:
        msg = failed_result.get("stderr") or "failed"
    name = (failed_task or {}).get("name") or "?"
    return "%s: %s" % (name, " ".join(str(msg).split()))


def messages(values) -> list:
    """Pure: the `msg` of each result that ran (each item of a loop)."""
    out = []
    for value in values:
        if not isinstance(value, dict) or value.get("skipped"):
            continue
        if isinstance(value.get("results"), list) and "msg" not in value:
            out += messages(value["results"])
        elif isinstance(value.get("msg"), str) and value["msg"]:
            out.append(value["msg"])
    return out


def lock_to_keep(outputs) -> dict | None:
    """Pure: what the mechanism keeps of the lock this run took (for the refreshes), from the lock phase's outputs."""
    if not outputs.get("token") or outputs.get("check_mode"):
        return None
    ttl = int(outputs.get("ttl_minutes") or 60)
    return {"name": outputs.get("name"), "token": outputs["token"], "ttl_minutes": ttl,
            "refresh_seconds": int(outputs.get("refresh_seconds") or ttl * 60 * REFRESH_SHARE),
            "lock_schema": outputs.get("lock_schema") or "dbrelease",
            "lock_table": outputs.get("lock_table") or "dbrelease_lock", "refreshed": time.time()}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF)
        self._check = bool(self._task.check_mode)

        def var(name):
            return self._templar.template(task_vars.get(name))

        host = var("inventory_hostname")
        try:
            self._dir = record.record_dir(var("release_artifacts_dir"), var("release_version"), var("playbook_dir"),
                                          host)
            bad_version = None
        except record.BadVersion as exc:
            # A version that could name a directory outside the artifacts (`../..`, a newline): this run writes
            # nothing anywhere, its failure included, and no phase starts.
            self._dir, bad_version = None, str(exc)
        self._top = {"version": var("release_version") or "", "host": host, "database": var("release_db_name") or ""}
        state = dict((task_vars.get("ansible_facts") or {}).get(STATE_FACT) or {})
        phase, status = args["phase"], args["status"]
        now = utc_now_iso()
        result.update(changed=False, phase=phase, status=status, dir=self._dir)

        if bad_version:
            state.update(before_lock=False, held=[], owner=False, writes=False, lock=None)
            if status == "running":
                raise AnsibleActionFail(bad_version)
        if status == "running":
            if args["before_lock"] and not self._check and not state.get("before_lock"):
                # The first phase of a run that takes the lock: this run's state starts here.
                state = {"before_lock": True, "held": [], "owner": False, "writes": False}
            before = record.view(self._dir, self._check)
            previous = (before.get("phases") or {}).get(phase) or {}
            missing = record.missing_phases(before, args["requires"])
            if missing:
                raise AnsibleActionFail(self._missing_text(phase, missing, var))
            self._refresh_lock(state, task_vars)
            state["phase"] = {"name": phase, "results": args["results"]}
            self._write(state, [record.entry(phase, "running", False, args["outputs"], None, now)], result)
            result.update(record=record.view(self._dir, self._check), previous=previous, started=now,
                          stamp=utc_stamp())
        else:
            current = state.get("phase") or {}
            names = args["results"] or (current.get("results", []) if current.get("name") == phase else [])
            values = [task_vars.get(name) for name in names]
            failed_result = task_vars.get("ansible_failed_result") if status == "failed" else None
            parts = [part for value in values for part in record.record_parts(value)]
            parts += record.record_parts(failed_result)
            outputs = record.merge_outputs(parts)
            outputs.update(args["outputs"])
            if args["reason"]:
                outputs["reason"] = args["reason"]
            changed = any(record.result_changed(v) for v in values) or record.result_changed(failed_result)
            if status == "failed":
                error = failure_text(task_vars.get("ansible_failed_task"), failed_result)
                self._failed(state, record.entry(phase, status, changed, outputs, error, now),
                             bool((failed_result or {}).get("record_busy")), result)
                self._files(state, args["files"])
                # The first failure of the run is the one it stops with (a failed clean-up after it is recorded too).
                if not state.get("failed"):
                    state["failed"] = {"phase": phase, "error": error, "dir": self._dir}
                result.update(add_group=FAILED_GROUP, error=error)
                display.display("Phase '%s' failed on %s: %s%s" % (
                    phase, host, error, "" if result.get("record_path") else
                    ". Nothing was written anywhere for this release_version" if self._dir is None else
                    ". Nothing was written to the release record (%s), which is not this run's" % self._dir),
                    color=C.COLOR_ERROR)
            else:
                item = record.entry(phase, status, changed, outputs, None, now)
                if args["locked"]:
                    # The release lock is this run's (or the lock is off): the record is this run's from here.
                    held = state.get("held") or []
                    state.update(before_lock=False, held=[], owner=True, writes=True, lock=lock_to_keep(outputs))
                    self._write(state, held + [item], result)
                else:
                    self._write(state, [item], result)
                self._files(state, args["files"])
                for msg in messages(values):
                    display.display("%s | %s: %s" % (host, phase, " ".join(msg.split())))
                if args["reason"]:
                    display.display("%s | %s%s: %s" % (host, phase, " skipped" if status == "skipped" else "",
                                                       " ".join(args["reason"].split())))
            state["phase"] = {}
        result["ansible_facts"] = {STATE_FACT: state}
        return result

    def _write(self, state, entries, result):
        """Write `entries` now, hold them until the lock is taken, or drop them when the record is not this run's."""
        if self._dir is None:
            return
        if not self._check and state.get("before_lock"):
            state["held"] = (state.get("held") or []) + entries
            return
        if not self._check and state.get("writes") is False:
            return
        _record, path = record.write(self._dir, self._check, entries, self._top)
        result["record_path"] = path

    def _files(self, state, files):
        """The files kept with the release (snapshots, outputs): written in check mode too (the roles name them
        apart), never by a run whose record is another run's."""
        if self._dir is None or (not self._check and (state.get("writes") is False or state.get("before_lock"))):
            return
        by_dir: dict = {}
        for item in files:
            by_dir.setdefault(item["path"], []).append(item)
        for directory, items in by_dir.items():
            try:
                record.write_artifacts(directory, items, check_mode=False)
            except (ValueError, OSError) as exc:
                raise AnsibleActionFail("release_phase: writing %s failed: %s" % (directory, exc)) from exc

    def _missing_text(self, phase, missing, var):
        """Why a phase cannot start: which phases it needs, as recorded, and what to run first."""
        inventory = " -i ".join(var("ansible_inventory_sources") or [var("inventory_dir") or "<inventory>"])
        tag = record.phase_tag(var("release_phases"), missing[0][0])
        return ("Cannot run the %s phase yet: %s in %s/release.json. Run it first: ansible-playbook release.yml -i "
                "%s --tags %s" % (phase, ", ".join("phase '%s' is %s" % item for item in missing), self._dir,
                                  inventory, tag))

    def _failed(self, state, item, busy, result):
        """A phase failed. Before the lock (or after losing it) the record may be another run's: write only when
        nothing says so."""
        if self._dir is None:
            return
        if busy:
            state.update(before_lock=False, held=[], owner=False, writes=False, lock=None)
            return
        if not self._check and state.get("before_lock"):
            held = state.get("held") or []
            live = record.live_lock(record.load(record.record_path(self._dir, False)))
            state.update(before_lock=False, held=[], owner=False, writes=not live)
            if not live:
                self._write(state, held + [item], result)
            return
        self._write(state, [item], result)

    def _refresh_lock(self, state, task_vars):
        """Push the release lock's expiry forward once `refresh_seconds` (lock_refresh_seconds, a third of the TTL by
        default) have passed since this run last did."""
        lock = state.get("lock")
        if self._check or not lock or time.time() - lock["refreshed"] < lock["refresh_seconds"]:
            return
        args = {"name": lock["name"], "state": "refresh", "token": lock["token"], "ttl_minutes": lock["ttl_minutes"],
                "lock_schema": lock["lock_schema"], "lock_table": lock["lock_table"]}
        # The connection every play passes its database modules (vars/release.yml), as the lock phase's own task had.
        args.update(self._templar.template(task_vars.get("release_db_login")) or {})
        args["_ansible_no_log"] = True
        refreshed = self._execute_module(module_name="ansible.legacy.release_lock", module_args=args,
                                         task_vars=task_vars)
        if refreshed.get("failed"):
            raise _LockLost(refreshed.get("msg") or "refreshing the release lock failed")
        lock["refreshed"] = time.time()


class _LockLost(AnsibleActionFail):
    """This run no longer holds the release lock: the record is whoever's holds it now (`record_busy`)."""

    def __init__(self, message):
        super().__init__(message, result={"record_busy": True})
