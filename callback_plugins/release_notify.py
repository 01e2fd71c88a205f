"""Ansible callback: a release that was announced is always followed by its outcome, even when no task could run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: release_notify
type: notification
short_description: Send the outcome of a release whose run ended before its finish play could tell it
description:
  - The release tells people that it started (the C(release_notify) task after the lock) and how it ended (the
    C(release_notify) task of the finish play). When a host can no longer run tasks (it became unreachable after
    a crash, a power loss, a cut link) or the playbook ended before the finish play, that last task never runs.
    This callback remembers, per host, which C(release_notify) events ran in this run; when the run ends
    (C(v2_playbook_on_stats), which always runs) it sends the outcome still owed, C(finish) after C(start) and
    C(rollback) after C(rollback_start), with the same code as the task, and records the delivery in the release
    record (C(notifications)).
  - A run that never announced a start (refused at the release lock, failed in preflight, a dry run) is not told by
    this callback, so a refused run never claims that another run's release failed.
  - The settings are the project-wide C(release_notify_webhooks), C(release_notify_email), C(release_notify_events)
    and C(release_notify_timeout) of the host, as the inventory (and vault) give them; the admin password (the
    C(login_password) of C(release_db_login)) is masked in what is sent.
  - A run interrupted by Ctrl-C (or an AWX cancel) ends without C(v2_playbook_on_stats); nothing is sent then (AWX's
    own notification templates report a cancelled job).
  - Loaded from C(callback_plugins/) (named in ansible.cfg); no C(callbacks_enabled) needed. In a run without a
    C(release_notify) task it does nothing.
author: dbrelease
"""

import os

import ansible.module_utils
from ansible.plugins.callback import CallbackBase

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import notify, record  # noqa: E402
from ansible.module_utils.dbrelease.clock import utc_now_iso  # noqa: E402

RECORD_ACTIONS = ("release_phase", "release_record")
OWED = (("start", "finish"), ("rollback_start", "rollback"))
SETTINGS = {
    "release_notify_webhooks": [],
    "release_notify_email": {},
    "release_notify_events": [],
    "release_notify_timeout": 10,
    "release_environment": "",
    "release_db_login": {},
    "release_version": "",
    "release_db_name": "",
}


def owed_events(told):
    """Pure: the closing events still owed for the events `told` in this run, in order."""
    return [close for open_, close in OWED if open_ in told and close not in told]


def notify_owed(record_dir, event, since, settings, host=""):
    """Send `event` for the release in `record_dir` and record it; returns the notification's result."""
    params = {
        "event": event,
        "events": settings.get("release_notify_events") or [],
        "run_started": since,
        "check_record": False,
        "approval_pending": False,
        "context": {"environment": settings.get("release_environment") or "",
                    "report": os.path.join(record_dir, "report.md"),
                    "version": settings.get("release_version") or "", "host": host,
                    "database": settings.get("release_db_name") or "",
                    "note": "Told when the run ended: the host could not run its finish play."},
        "webhooks": settings.get("release_notify_webhooks") or [],
        "email": settings.get("release_notify_email") or {},
        "timeout": float(settings.get("release_notify_timeout") or 10),
        "attempts": 2,
        "redact": [(settings.get("release_db_login") or {}).get("login_password") or ""],
    }
    result = notify.notify(params, record.load(record.record_path(record_dir, False)))
    if not result["skipped"].startswith("no notification"):
        current = record.load(record.record_path(record_dir, False))
        notifications = dict(current.get("notifications") or {})
        notifications[event] = result["record"]
        record.write(record_dir, False, [], top={"notifications": notifications})
    return result


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "release_notify"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = utc_now_iso()
        self._records = {}
        self._told = {}
        self._play = None

    def v2_playbook_on_start(self, playbook):
        self._started = utc_now_iso()

    def v2_playbook_on_play_start(self, play):
        self._play = play

    def v2_runner_on_ok(self, result):
        host = result.host.get_name()
        action = str(result.task.action)
        path = (result.result or {}).get("record_path")
        if path and action.endswith(RECORD_ACTIONS) and os.path.basename(path) == record.RECORD:
            self._records[host] = os.path.dirname(path)
        # The notification tasks carry no_log (the e-mail password): their event is read from the task itself.
        if action.endswith("release_notify") and not result.task.check_mode:
            self._told.setdefault(host, set()).add(str(result.task.args.get("event") or "finish"))

    def _settings(self, host):
        """The host's notification settings, templated as the tasks see them (vault values included)."""
        from ansible.template import Templar

        manager = self._play.get_variable_manager()
        variables = manager.get_vars(play=self._play, host=manager._inventory.get_host(host))
        templar = Templar(loader=self._play.get_loader(), variables=variables)
        settings = {}
        for name, default in SETTINGS.items():
            try:
                settings[name] = templar.template(variables.get(name, default))
            except Exception as exc:  # an undefined vault value: say which setting, never its value
                settings[name] = default
                self._display.warning("release_notify: %s of %s could not be read (%s)"
                                      % (name, host, type(exc).__name__))
        settings["record_dir"] = record.record_dir(
            templar.template(variables.get("release_artifacts_dir")), settings["release_version"],
            variables.get("playbook_dir"), host)
        return settings

    def v2_playbook_on_stats(self, stats):
        for host, told in sorted(self._told.items()):
            owed = owed_events(told)
            if not owed or self._play is None:
                continue
            try:
                settings = self._settings(host)
            except Exception as exc:  # never let a notification break the end of the run
                self._display.warning("release_notify: the settings of %s could not be read (%s)"
                                      % (host, type(exc).__name__))
                continue
            record_dir = self._records.get(host) or settings["record_dir"]
            for event in owed:
                try:
                    result = notify_owed(record_dir, event, self._started, settings, host)
                except Exception as exc:
                    self._display.warning("release_notify: the %s notification of %s was not sent: %s"
                                          % (event, host, type(exc).__name__))
                    continue
                for entry in result["deliveries"]:
                    if entry["ok"] is False:
                        self._display.warning("the %s notification of %s to %s was not delivered: %s (recorded)"
                                              % (result["outcome"], host, entry["target"], entry["error"]))
                if result["deliveries"]:
                    self._display.display("%s | notify %s (the run ended before its finish play could): delivered "
                                          "%d of %d" % (host, result["outcome"], result["sent"],
                                                        len(result["deliveries"])))
