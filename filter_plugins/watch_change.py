"""Filter plugin: watch_change, whether a watch run's verdict is a regression or a recovery."""

from __future__ import annotations

DOCUMENTATION = r"""
name: watch_change
short_description: Compare a watch run's verdict with the previous run's - regression, recovered or unchanged
description:
  - C(regression) when the verdict is worse than the previous run's (C(ok) < C(warn) < C(fail)); with no previous
    run, any verdict other than C(ok) is a regression (the release's own verification passed, or the watch
    would not run).
  - C(recovered) when it is C(ok) again after a C(warn) or C(fail); C(unchanged) otherwise, so a lasting problem is
    told once, not every hour.
  - Pure function; raises an error naming a verdict that is not ok, warn or fail.
positional: previous
options:
  _input:
    description: This run's verdict.
    type: str
    required: true
  previous:
    description: The previous watch run's verdict; empty when this is the first.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Tell whether this run is a regression
  ansible.builtin.set_fact:
    __watch_change: "{{ __watch_verdict | watch_change(__watch_previous_verdict) }}"
# regression
"""

RETURN = r"""
_value:
  description: C(regression), C(recovered) or C(unchanged).
  type: str
"""

from ansible.errors import AnsibleFilterError

_RANK = {"ok": 0, "warn": 1, "fail": 2}


def watch_change(verdict, previous=""):
    """Pure: see DOCUMENTATION."""
    previous = previous or "ok"
    for name, value in (("verdict", verdict), ("previous", previous)):
        if value not in _RANK:
            raise AnsibleFilterError("watch_change: %s must be ok, warn or fail, got %r" % (name, value))
    if _RANK[verdict] > _RANK[previous]:
        return "regression"
    if verdict == "ok" and previous != "ok":
        return "recovered"
    return "unchanged"


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"watch_change": watch_change}
