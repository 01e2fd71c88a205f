"""Table tests for the watch_regressions filter: what a failing watch poll names."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from outbox_health import outbox_health
from test_outbox_health import BASE, stats
from watch_regressions import FilterModule, watch_regressions


def test_a_failing_check_says_what_it_was_at_verify_and_why_it_fails_now():
    at_verify = outbox_health(stats(), {}, BASE)
    poll = outbox_health(stats(oldest=900, failed=200), {}, BASE)
    items = watch_regressions(poll, at_verify)
    assert items[0].startswith("failures_increase (ok at verify, fail now): The number of failed outbox events "
                               "rose from 1 to 200")
    assert items[1].startswith("stalled_relay (ok at verify, fail now): The oldest pending outbox event is 900 "
                               "seconds old")
    assert len(items) == 2


@pytest.mark.parametrize("fail_on_warn, count", [(False, 0), (True, 1)])
def test_warnings_count_only_with_fail_on_warn(fail_on_warn, count):
    poll = outbox_health(stats(oldest=200), {}, BASE)
    assert len(watch_regressions(poll, {}, [], fail_on_warn)) == count


def test_failed_endpoints_follow_the_checks():
    poll = outbox_health(stats(), {}, BASE)
    items = watch_regressions(poll, None, [{"name": "health", "reason": "status 503, expected [200]"}, "version"])
    assert items == ["endpoint health failed: status 503, expected [200]", "endpoint version failed"]


def test_without_the_verify_verdict_only_the_level_now_is_said():
    poll = outbox_health(stats(dead=30), {}, BASE)
    assert watch_regressions(poll)[0].startswith("dead_letters_increase (fail now): ")


@pytest.mark.parametrize("poll, at_verify, endpoints, message", [
    ("x", {}, [], "the poll's health must be"),
    ({"checks": "x"}, {}, [], "checks must be a list"),
    ({}, {}, "x", "failed_endpoints must be a list"),
])
def test_bad_input(poll, at_verify, endpoints, message):
    with pytest.raises(AnsibleFilterError, match=message):
        watch_regressions(poll, at_verify, endpoints)


def test_filter_module():
    assert FilterModule().filters() == {"watch_regressions": watch_regressions}
