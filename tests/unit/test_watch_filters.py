"""The 72-hour watch: when it is on and when it is over (watch_window), the AWX schedule rule that ends it
(watch_rrule), and which runs are told (watch_change)."""

from __future__ import annotations

import datetime
import re

import pytest
from ansible.errors import AnsibleFilterError
from watch_change import watch_change
from watch_rrule import watch_rrule
from watch_window import watch_window

VERIFIED = {"version": "v1", "phases": {"verify": {"status": "ok", "finished": "2026-12-01T10:00:00+00:00"}}}


@pytest.mark.parametrize("now,hours,state,remaining", [
    ("2026-12-01T10:00:01+00:00", 72, "active", 72 * 3600 - 1),
    ("2026-12-04T09:59:59+00:00", 72, "active", 1),
    ("2026-12-04T10:00:00+00:00", 72, "ended", 0),
    ("2026-12-05T00:00:00Z", 72, "ended", 0),
    ("2026-12-01T13:00:00+02:00", 1, "ended", 0),  # 11:00 UTC: the 1 h watch is over
    (1796119200 + 1800, 1, "active", 1800),  # Unix time: 10:30 UTC
    ("2026-12-01T10:30:00", 1, "active", 1800),  # naive = UTC
])
def test_the_watch_is_on_until_the_period_after_the_verification_ends(now, hours, state, remaining):
    window = watch_window(VERIFIED, now, hours)
    assert window["state"] == state and window["remaining_seconds"] == remaining
    assert window["started"] == "2026-12-01T10:00:00+00:00"
    if state == "ended":
        assert "ended at" in window["reason"] and "nothing more to verify" in window["reason"]


@pytest.mark.parametrize("record", [
    {"phases": {}},
    {"phases": {"verify": {"status": "failed", "finished": "2026-12-01T10:00:00+00:00"}}},
    {"phases": {"verify": {"status": "running", "started": "2026-12-01T10:00:00+00:00"}}},
])
def test_a_release_that_never_passed_verification_has_nothing_to_watch(record):
    window = watch_window(record, "2026-12-01T11:00:00+00:00")
    assert window["state"] == "not_verified" and "nothing to watch" in window["reason"]


@pytest.mark.parametrize("args,message", [
    (("x", "2026-12-01T00:00:00Z"), "must be the release record"),
    ((VERIFIED, "yesterday"), "now must be an ISO 8601"),
    ((VERIFIED, "2026-12-01T00:00:00Z", 0), "more than 0"),
    ((VERIFIED, "2026-12-01T00:00:00Z", "long"), "hours must be a number"),
])
def test_watch_window_names_bad_input(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        watch_window(*args)


RRULE = re.compile(r"^DTSTART:(\d{8}T\d{6}Z) RRULE:FREQ=MINUTELY;INTERVAL=(\d+);UNTIL=(\d{8}T\d{6}Z)$")


def occurrences(rule):
    """The run times of a rule of this shape, as AWX (dateutil) would expand it."""
    start, interval, until = RRULE.match(rule).groups()
    parse = lambda s: datetime.datetime.strptime(s, "%Y%m%dT%H%M%SZ")  # noqa: E731
    t, end, out = parse(start), parse(until), []
    while t <= end:
        out.append(t)
        t += datetime.timedelta(minutes=int(interval))
    return out


@pytest.mark.parametrize("start,hours,interval,first,last,runs", [
    ("2026-12-01T10:00:00+00:00", 72, 60, "2026-12-01 11:00:00", "2026-12-04 10:00:00", 72),
    ("2026-12-01T10:17:42.5+01:00", 24, 60, "2026-12-01 10:17:42", "2026-12-02 09:17:42", 24),
    (1796119200, 2, 30, "2026-12-01 10:30:00", "2026-12-01 12:00:00", 4),
])
def test_the_schedule_runs_every_interval_and_its_last_run_is_at_the_end(start, hours, interval, first, last, runs):
    rule = watch_rrule(start, hours, interval)
    assert RRULE.match(rule), rule
    times = occurrences(rule)
    assert str(times[0]) == first and str(times[-1]) == last and len(times) == runs


def test_the_last_scheduled_run_finds_the_watch_over():
    """The schedule and the watch's own check agree: the last run is the one that ends the watch."""
    rule = watch_rrule(VERIFIED["phases"]["verify"]["finished"], 72, 60)
    times = occurrences(rule)
    states = [watch_window(VERIFIED, t.isoformat() + "+00:00", 72)["state"] for t in times]
    assert states[:-1] == ["active"] * 71 and states[-1] == "ended"


@pytest.mark.parametrize("args,message", [
    (("soon",), "ISO 8601 or Unix"),
    (("2026-12-01T10:00:00Z", 1, 90), "at most the period"),
    (("2026-12-01T10:00:00Z", 72, 0), "at least 1"),
])
def test_watch_rrule_names_bad_input(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        watch_rrule(*args)


@pytest.mark.parametrize("verdict,previous,expected", [
    ("ok", "", "unchanged"),
    ("warn", "", "regression"),
    ("fail", "ok", "regression"),
    ("fail", "warn", "regression"),
    ("warn", "warn", "unchanged"),
    ("warn", "fail", "unchanged"),
    ("ok", "fail", "recovered"),
    ("ok", "warn", "recovered"),
])
def test_only_a_worse_verdict_or_a_recovery_is_told(verdict, previous, expected):
    assert watch_change(verdict, previous) == expected


def test_watch_change_names_bad_verdicts():
    with pytest.raises(AnsibleFilterError, match="verdict must be ok, warn or fail"):
        watch_change("bad")
