"""Filter plugin: watch_window, whether the post-release watch of a release is still on, and until when."""

from __future__ import annotations

DOCUMENTATION = r"""
name: watch_window
short_description: The post-release watch period of a release, from its record, and whether it is over
description:
  - The watch starts when the release's verification passed (C(phases.verify.finished) with C(status) C(ok)) and
    lasts I(hours). Returns C(state) C(active) (verify it again), C(ended) (the period is over, nothing to verify,
    the schedule stops) or C(not_verified) (the release never passed verification, so there is nothing to watch).
  - "The scheduled watch runs call it first and stop there unless C(state) is C(active): that is what ends the
    watch, whatever the scheduler does (AWX also stops the schedule itself: see C(watch_rrule))."
  - Pure function; raises an error naming the bad input.
positional: now, hours
options:
  _input:
    description: The release record (C(release.json)).
    type: dict
    required: true
  now:
    description: The current time, ISO 8601 with a time zone (for example C(now(utc=true).isoformat())) or Unix
      time.
    type: raw
    required: true
  hours:
    description: Length of the watch period in hours (more than 0).
    type: float
    default: 72
"""

EXAMPLES = r"""
- name: Work out whether the watch is still on
  ansible.builtin.set_fact:
    __watch_window: "{{ __record_current | watch_window(now(utc=true).isoformat(), watch_hours) }}"
# {state: active, started: "2026-12-01T10:00:00+00:00", until: "2026-12-04T10:00:00+00:00",
#  remaining_seconds: 215940.0, elapsed_seconds: 60.0, reason: "..."}
"""

RETURN = r"""
_value:
  description: The watch period.
  type: dict
  contains:
    state: {description: C(active), C(ended) or C(not_verified)., type: str}
    started: {description: When the release's verification passed (ISO 8601), or empty., type: str}
    until: {description: When the watch ends (ISO 8601), or empty., type: str}
    remaining_seconds: {description: Seconds left (0 when over)., type: float}
    elapsed_seconds: {description: Seconds since the watch started., type: float}
    reason: {description: One sentence saying which state and why., type: str}
"""

import datetime

from ansible.errors import AnsibleFilterError


def parse_time(value, what):
    """An aware datetime from ISO 8601 (naive = UTC) or Unix time; AnsibleFilterError naming `what`."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = datetime.datetime.fromtimestamp(float(value), datetime.UTC)
    else:
        try:
            parsed = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise AnsibleFilterError("watch_window: %s must be an ISO 8601 time or a Unix time, got %r"
                                     % (what, value)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def watch_window(record, now, hours=72):
    """Pure: the watch period of `record` at `now` (see DOCUMENTATION)."""
    if not isinstance(record, dict):
        raise AnsibleFilterError("watch_window: the input must be the release record (a dict), got %s"
                                 % type(record).__name__)
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        raise AnsibleFilterError("watch_window: hours must be a number, got %r" % (hours,)) from None
    if hours <= 0:
        raise AnsibleFilterError("watch_window: hours must be more than 0, got %r (release_watch_hours)" % hours)
    current = parse_time(now, "now")
    verify = ((record.get("phases") or {}).get("verify")) or {}
    version = record.get("version") or "?"
    if verify.get("status") != "ok" or not verify.get("finished"):
        return {"state": "not_verified", "started": "", "until": "", "remaining_seconds": 0.0,
                "elapsed_seconds": 0.0,
                "reason": "Release %s has not passed its verification (verify is %s): there is nothing to watch; "
                          "run the release (or --tags verify) first." % (version, verify.get("status") or "not run")}
    started = parse_time(verify["finished"], "phases.verify.finished")
    until = started + datetime.timedelta(hours=hours)
    elapsed = (current - started).total_seconds()
    remaining = max(0.0, (until - current).total_seconds())
    state = "active" if remaining > 0 else "ended"
    if state == "active":
        reason = "The watch of release %s runs until %s (%.1f h left of %g h)." % (
            version, until.isoformat(), remaining / 3600, hours)
    else:
        reason = "The watch of release %s ended at %s (%g h after its verification passed): nothing more to " \
                 "verify." % (version, until.isoformat(), hours)
    return {"state": state, "started": started.isoformat(), "until": until.isoformat(),
            "remaining_seconds": round(remaining, 1), "elapsed_seconds": round(max(0.0, elapsed), 1),
            "reason": reason}


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"watch_window": watch_window}
