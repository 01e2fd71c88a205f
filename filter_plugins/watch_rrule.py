"""Filter plugin: watch_rrule, the AWX schedule rule of a post-release watch (every hour until the end)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: watch_rrule
short_description: The AWX schedule rule (RFC 5545) that runs the watch every interval until the period ends
description:
  - Returns C(DTSTART:<start+interval>Z RRULE:FREQ=MINUTELY;INTERVAL=<minutes>;UNTIL=<start+hours>Z), the
    C(rrule) of an AWX schedule; AWX stops the schedule by itself after C(UNTIL). The first run is one interval
    after I(_input); the last is at the end of the period, where the watch run finds the period over, says so and
    does nothing more (see C(watch_window)).
  - Pure function; raises an error naming the bad input.
positional: hours, interval_minutes
options:
  _input:
    description: When the watch starts (ISO 8601 with a time zone, naive = UTC, or Unix time).
    type: raw
    required: true
  hours:
    description: Length of the watch period in hours.
    type: float
    default: 72
  interval_minutes:
    description: Minutes between two watch runs.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Compute the schedule rule
  ansible.builtin.set_fact:
    __rrule: "{{ '2026-12-01T10:00:00+00:00' | watch_rrule(72, 60) }}"
# DTSTART:20261201T110000Z RRULE:FREQ=MINUTELY;INTERVAL=60;UNTIL=20261204T100000Z
"""

RETURN = r"""
_value:
  description: The rule, for C(awx.awx.schedule)'s C(rrule).
  type: str
"""

import datetime

from ansible.errors import AnsibleFilterError

_FORMAT = "%Y%m%dT%H%M%SZ"


def watch_rrule(start, hours=72, interval_minutes=60):
    """Pure: the rrule string (see DOCUMENTATION)."""
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        begin = datetime.datetime.fromtimestamp(float(start), datetime.UTC)
    else:
        try:
            begin = datetime.datetime.fromisoformat(str(start).strip().replace("Z", "+00:00"))
        except ValueError:
            raise AnsibleFilterError("watch_rrule: the start must be an ISO 8601 or Unix time, got %r"
                                     % (start,)) from None
        if begin.tzinfo is None:
            begin = begin.replace(tzinfo=datetime.UTC)
    try:
        hours, interval = float(hours), int(interval_minutes)
    except (TypeError, ValueError):
        raise AnsibleFilterError("watch_rrule: hours and interval_minutes must be numbers, got %r and %r"
                                 % (hours, interval_minutes)) from None
    if interval < 1 or hours * 60 < interval:
        raise AnsibleFilterError("watch_rrule: interval_minutes (%d) must be at least 1 and at most the period "
                                 "(%g h, release_watch_hours)" % (interval, hours))
    begin = begin.astimezone(datetime.UTC).replace(microsecond=0)
    first = begin + datetime.timedelta(minutes=interval)
    until = begin + datetime.timedelta(hours=hours)
    return "DTSTART:%s RRULE:FREQ=MINUTELY;INTERVAL=%d;UNTIL=%s" % (first.strftime(_FORMAT), interval,
                                                                  until.strftime(_FORMAT))


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"watch_rrule": watch_rrule}
