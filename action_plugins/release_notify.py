"""Controller half of release_notify: tell people about this host's release, in the worker process, no module.

The record is on the controller and the receivers are reached from it, so the notification never needs the host's
connection: a host that is unreachable is still told about (the callback `release_notify` uses the same code for the
outcome owed when no task can run any more). This plugin:

- works on this host's release directory (`release_artifacts_dir`, `release_version`, as `release_phase` does) and
  reads the record as the phases see it (under --check with the dry run's phases on top);
- masks the admin password (the `login_password` of `release_db_login`, the one name it travels under) and the
  e-mail password in everything it sends;
- remembers when this run opened the release (`start` or `rollback_start`) in the host fact `dbrelease_notify`, so
  that the closing notification (`finish`, `rollback`) judges only the phases of this run, and takes the phase that
  stopped the run from the phase mechanism's `dbrelease_run.failed` (the record's entry may have been rewritten by
  the clean-up since);
- sends nothing under --check, except the outcome of a dry run whose plan waits for approval;
- records each notification in the release record (`notifications.<event>`: outcome, time, deliveries) when the
  record is this run's (`dbrelease_run.writes`), so a run refused at the lock writes nothing;
- never fails on a delivery: each one that fails is a warning and a line in the record.
"""

from __future__ import annotations

import os

import ansible.module_utils
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import notify, record  # noqa: E402
from ansible.module_utils.dbrelease.clock import utc_now_iso  # noqa: E402

display = Display()

NOTIFY_FACT = "dbrelease_notify"
OPENING = {"start": "finish", "rollback_start": "rollback"}
# The module's own options (library/release_notify.py documents them); the plugin fills in the rest.
ARGUMENT_SPEC = dict(
    event=dict(type="str", default="finish", choices=["start", "finish", "refused", "rollback_start", "rollback",
                                                      "watch"]),
    events=dict(type="list", elements="str", default=[]),
    approval_pending=dict(type="bool", default=False),
    context=dict(type="dict", default={}),
    webhooks=dict(type="list", elements="str", default=[], no_log=True),
    email=dict(type="dict", default={}),
    timeout=dict(type="float", default=10.0),
    attempts=dict(type="int", default=2),
    validate_only=dict(type="bool", default=False),
)


def record_entry(notifications, event, entry):
    """Pure: the record's `notifications` with this event's entry (one per event: the last one of its kind)."""
    merged = dict(notifications or {})
    merged[event] = entry
    return merged


def delivery_line(host, result):
    """Pure: one line for the console about what was told and to whom."""
    if result.get("skipped") and not result.get("deliveries"):
        return "%s | notify %s: %s" % (host, result.get("outcome") or result.get("event"), result["skipped"])
    failed = ["%s %s" % (d["target"], d["error"]) for d in result["deliveries"] if d["ok"] is False]
    return "%s | notify %s: delivered %d of %d%s" % (
        host, result.get("outcome"), result["sent"], len(result["deliveries"]),
        ("; not delivered: " + "; ".join(failed)) if failed else "")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)

        def var(name):
            return self._templar.template(task_vars.get(name))

        host = var("inventory_hostname")
        directory = record.record_dir(var("release_artifacts_dir"), var("release_version"), var("playbook_dir"), host)
        check = bool(self._task.check_mode)
        facts = task_vars.get("ansible_facts") or {}
        run = dict(facts.get("dbrelease_run") or {})
        opened = dict(facts.get(NOTIFY_FACT) or {})
        event = args["event"]
        now = utc_now_iso()
        login = var("release_db_login") or {}
        params = dict(args, path=directory, check_record=check, redact=[login.get("login_password") or ""],
                      run_started=now if event in OPENING else opened.get("started") or "")
        params["context"] = dict({"report": os.path.join(directory, "report.check.md" if check else "report.md")},
                                 **args["context"])
        params["context"].update(version=var("release_version") or "", host=host, database=var("release_db_name") or "")
        if run.get("failed") and event in ("finish", "rollback"):
            params["context"]["failed"] = {"phase": run["failed"].get("phase"), "error": run["failed"].get("error")}
        view = record.view(directory, check)
        send = not check or (event == "finish" and args["approval_pending"])
        try:
            outcome = notify.notify(params, view, send=send)
        except notify.ConfigError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(outcome)
        result["record_dir"] = directory
        if args["validate_only"]:
            return result
        if event in OPENING:
            result["ansible_facts"] = {NOTIFY_FACT: {"started": now, "opened": event}}
        if send and run.get("writes") is not False and not outcome["skipped"].startswith("no notification"):
            try:
                current = record.load(record.record_path(directory, check))
                record.write(directory, check, [], top={
                    "notifications": record_entry(current.get("notifications"), event, outcome["record"])})
            except OSError as exc:  # a notifier never fails the release, nor does recording what it did
                result["record_error"] = "%s: %s" % (directory, exc.strerror or exc)
                display.warning("the %s notification of %s could not be recorded in %s: %s (the release goes on)"
                                % (outcome["outcome"], host, directory, exc.strerror or exc))
        for entry in outcome["deliveries"]:
            if entry["ok"] is False:
                display.warning("the %s notification of %s to %s was not delivered: %s (the release goes on; "
                                "recorded)" % (outcome["outcome"], host, entry["target"], entry["error"]))
        display.display(delivery_line(host, outcome))
        return result
