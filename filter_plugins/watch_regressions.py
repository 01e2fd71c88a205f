"""Filter plugin: watch_regressions, what regressed at a failing watch poll compared with the verify phase."""

from __future__ import annotations

DOCUMENTATION = r"""
name: watch_regressions
short_description: What regressed at a watch poll - each failing check with its level at verify, and failed endpoints
description:
  - Compares the health verdict of a watch poll (the C(outbox_health) result) with the one the verify phase recorded,
    and lists, worst first, every check that is C(fail) (or C(warn) with I(fail_on_warn)) at the poll, saying what it
    was at verify, followed by every endpoint that failed.
  - Each item is one sentence, for the console and the report of a failed watch.
  - Pure function; raises an error naming the bad input.
positional: at_verify, failed_endpoints, fail_on_warn
options:
  _input:
    description: The poll's health verdict (C(outbox_health) result).
    type: dict
    required: true
  at_verify:
    description: The verify phase's health verdict (C(phases.verify.health)); empty when unknown.
    type: dict
    default: {}
  failed_endpoints:
    description: The endpoints that failed at the poll, as smoke_check results (C(name), C(reason)) or names.
    type: list
    default: []
  fail_on_warn:
    description: Count C(warn) checks as regressions too.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Say what regressed
  ansible.builtin.debug:
    msg: "{{ poll_health | watch_regressions(verify_health, failed_endpoints) }}"
# - "stalled_relay (ok at verify, fail now): The oldest pending outbox event is 700 seconds old, ..."
# - "endpoint health failed: status 503, expected [200]"
"""

RETURN = r"""
_value:
  description: One sentence per regression, failing checks first, then endpoints.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

_ORDER = {"fail": 0, "warn": 1}


def _checks(health, where):
    """{check name: check} of an outbox_health result."""
    if health in (None, ""):
        return {}
    if not isinstance(health, dict):
        raise AnsibleFilterError("watch_regressions: %s must be an outbox_health result (a dict), got %s"
                                 % (where, type(health).__name__))
    checks = health.get("checks") or []
    if not isinstance(checks, list):
        raise AnsibleFilterError("watch_regressions: %s.checks must be a list" % where)
    return {c.get("name"): c for c in checks if isinstance(c, dict)}


def watch_regressions(poll_health, at_verify=None, failed_endpoints=None, fail_on_warn=False):
    """Pure: the regressions of a watch poll (see DOCUMENTATION)."""
    now = _checks(poll_health, "the poll's health")
    before = _checks(at_verify or {}, "at_verify")
    counted = ("fail", "warn") if fail_on_warn else ("fail",)
    items = []
    for name, check in sorted(now.items(), key=lambda kv: (_ORDER.get(kv[1].get("level"), 9), str(kv[0]))):
        level = check.get("level")
        if level not in counted:
            continue
        was = (before.get(name) or {}).get("level")
        items.append("%s (%s): %s" % (name, "%s at verify, %s now" % (was, level) if was else "%s now" % level,
                                      check.get("reason") or "no reason given"))
    if not isinstance(failed_endpoints or [], list):
        raise AnsibleFilterError("watch_regressions: failed_endpoints must be a list")
    for endpoint in failed_endpoints or []:
        if isinstance(endpoint, dict):
            items.append("endpoint %s failed: %s" % (endpoint.get("name") or endpoint.get("url") or "?",
                                                    endpoint.get("reason") or "no reason given"))
        else:
            items.append("endpoint %s failed" % endpoint)
    return items


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"watch_regressions": watch_regressions}
