"""Ansible callback: write the fleet summary when a fleet.yml run ends, however it ends."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_summary
type: notification
short_description: Write the fleet release summary (summary.json and summary.md) at the end of fleet.yml
description:
  - Acts only in a run that contains the planning play of fleet.yml, which sets the C(__fleet_plan) fact. When
    the run ends it reads every database's release record and writes
    C(<fleet_artifacts_dir>/<release_version>/summary.json) and C(summary.md), or C(summary.check.*) under
    C(--check).
  - It is a callback because Ansible ends a playbook as soon as every host of a play has failed (for example the
    canary failing verification), so no later play could write the summary then, while C(v2_playbook_on_stats)
    always runs.
  - Loaded automatically from C(callback_plugins/) beside fleet.yml (no C(callbacks_enabled) needed). In any
    other playbook it does nothing.
author: dbrelease
"""

import json
import os

import ansible.module_utils
import yaml
from ansible.plugins.callback import CallbackBase

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.join(_ROOT, "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(os.path.join(_ROOT, "module_utils"))

from ansible.module_utils.dbrelease.clock import utc_now_iso  # noqa: E402
from ansible.module_utils.dbrelease.files import make_private_dirs, write_atomic  # noqa: E402

PLAN_FACT = "__fleet_plan"
# The one list of phases (vars/release.yml, release_phases): the order the summary lists them in.
with open(os.path.join(_ROOT, "vars", "release.yml")) as _handle:
    PHASE_ORDER = tuple(p["name"] for p in yaml.safe_load(_handle)["release_phases"])


def _load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _release_order(phases):
    """Phase names in the order release.yml runs them, unknown ones after."""
    known = [name for name in PHASE_ORDER if name in phases]
    return known + sorted(name for name in phases if name not in PHASE_ORDER)


def host_outcome(record, started):
    """Pure: what happened to one database in this run, judged by its release record.

    Returns (outcome, detail): `released` (verify passed during this run and nothing failed), `failed` (a phase of
    this run failed), `incomplete` (phases ran but verify did not pass), `not_started` (no phase ran in this run).
    """
    phases = (record or {}).get("phases") or {}
    fresh = {name: p for name, p in phases.items() if str(p.get("started") or "") >= started}
    if not fresh:
        return "not_started", ""
    failed = [name for name, p in fresh.items() if p.get("status") == "failed"]
    if failed:
        name = failed[0]
        return "failed", "%s: %s" % (name, fresh[name].get("error") or "no error recorded")
    running = [name for name, p in fresh.items() if p.get("status") == "running"]
    if running:
        return "incomplete", "%s still marked running (the run was interrupted)" % running[0]
    verify = fresh.get("verify")
    if verify and verify.get("status") == "ok":
        return "released", ""
    return "incomplete", "verify %s" % ((verify or {}).get("status") or "did not run")


def build_summary(plan, records, stats, gate_failures, finished):
    """Pure: the fleet summary from the plan, each database's record, the play recap and the gates' messages."""
    stages = [("canary", plan.get("canary") or [])]
    stages += [("batch %d" % (i + 1), hosts) for i, hosts in enumerate(plan.get("batches") or [])]
    databases = []
    for stage, hosts in stages:
        for host in hosts:
            record = records.get(host) or {}
            outcome, detail = host_outcome(record, plan.get("started") or "")
            host_stats = stats.get(host) or {}
            if host_stats.get("unreachable") and outcome != "released":
                outcome, detail = "unreachable", detail or "host unreachable"
            phases = record.get("phases") or {}
            databases.append({
                "host": host,
                "stage": stage,
                "database": record.get("database", ""),
                "outcome": outcome,
                "detail": detail,
                "record": (plan.get("records") or {}).get(host, ""),
                "phases": {name: phases[name].get("status") for name in _release_order(phases)
                           if str(phases[name].get("started") or "") >= (plan.get("started") or "")},
                "recap": host_stats,
            })
    counts = {}
    for entry in databases:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    not_started = counts.get("not_started", 0)
    if databases and counts.get("released", 0) == len(databases):
        outcome = "completed"
        reason = ("every database passed the dry run" if plan.get("check_mode")
                  else "every database released and verified")
    elif databases and not not_started and not gate_failures:
        outcome = "completed_with_failures"
        reason = "every batch ran; %d of %d database(s) not released, within fleet_max_fail_percentage %s" % (
            len(databases) - counts.get("released", 0), len(databases), plan.get("max_fail_percentage"))
    else:
        outcome = "stopped"
        first_bad = next((d for d in databases if d["outcome"] in ("failed", "unreachable", "incomplete")), None)
        if gate_failures:
            reason = gate_failures[-1]
        elif first_bad:
            reason = "%s (%s) %s: %s; %d database(s) after it not started" % (
                first_bad["host"], first_bad["stage"], first_bad["outcome"], first_bad["detail"], not_started)
        else:
            reason = "the run ended before every database was released"
    return {
        "version": plan.get("version"),
        "check_mode": bool(plan.get("check_mode")),
        "started": plan.get("started"),
        "finished": finished,
        "outcome": outcome,
        "reason": reason,
        "counts": counts,
        "max_fail_percentage": plan.get("max_fail_percentage"),
        "batch_size": plan.get("batch_size"),
        "databases": databases,
    }


def render_markdown(summary):
    lines = [
        "# Fleet release %s: %s" % (summary["version"], summary["outcome"]),
        "",
        "%s%s" % (summary["reason"], " (dry run: --check)" if summary["check_mode"] else ""),
        "",
        "Started %s, finished %s. Counts: %s." % (
            summary["started"], summary["finished"],
            ", ".join("%s %d" % (k, v) for k, v in sorted(summary["counts"].items())) or "none"),
        "",
        "| database host | stage | outcome | phases | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in summary["databases"]:
        phases = ", ".join("%s %s" % (k, v) for k, v in entry["phases"].items()) or "-"
        lines.append("| %s | %s | %s | %s | %s |" % (
            entry["host"], entry["stage"], entry["outcome"], phases,
            (entry["detail"] or "").replace("|", "\\|").replace("\n", " ")))
    lines += ["", "Each database's own record: `release.json` and `report.md` under its `release_artifacts_dir`."]
    return "\n".join(lines) + "\n"


def _write_atomic(path, text):
    make_private_dirs(os.path.dirname(path))
    write_atomic(path, text)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "fleet_summary"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plan = None
        self._gate_failures = []

    def v2_runner_on_ok(self, result):
        facts = (result._result or {}).get("ansible_facts") or {}
        if PLAN_FACT in facts and isinstance(facts[PLAN_FACT], dict):
            self._plan = dict(facts[PLAN_FACT])

    def v2_runner_on_failed(self, result, ignore_errors=False):
        # The gates run on localhost; their message says why the rollout stopped.
        if self._plan is not None and result._host.get_name() == "localhost":
            msg = (result._result or {}).get("msg")
            if msg:
                self._gate_failures.append(" ".join(str(msg).split()))

    def v2_playbook_on_stats(self, stats):
        if self._plan is None:
            return
        plan = self._plan
        records = {host: _load(path) for host, path in (plan.get("records") or {}).items()}
        recap = {host: stats.summarize(host) for host in stats.processed}
        finished = utc_now_iso()
        summary = build_summary(plan, records, recap, self._gate_failures, finished)
        stem = "summary.check" if summary["check_mode"] else "summary"
        try:
            _write_atomic(os.path.join(plan["dir"], stem + ".json"),
                          json.dumps(summary, indent=2, sort_keys=True) + "\n")
            _write_atomic(os.path.join(plan["dir"], stem + ".md"), render_markdown(summary))
        except OSError as exc:
            self._display.warning("fleet summary not written to %s: %s" % (plan.get("dir"), exc))
            return
        where = os.path.join(plan["dir"], stem + ".md")
        self._display.display("Fleet %s: %s. %s. Summary: %s" % (
            summary["version"], summary["outcome"], summary["reason"].rstrip("."), where))
