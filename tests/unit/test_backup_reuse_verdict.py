"""When a rerun may reuse the release's backup: the ranges checked, and the decision from the evidence."""

from __future__ import annotations

import datetime

import pytest
from ansible.module_utils.dbrelease import backup_reuse

P = [{"file": "binlog.000003", "pos": p} for p in (100, 200, 300, 400)]


@pytest.mark.parametrize("own, ranges, open_end", [
    ([], [(P[0], None)], False),
    ([{"from": P[1], "to": P[2]}], [(P[0], P[1]), (P[2], None)], False),
    ([{"from": P[1]}], [(P[0], P[1])], True),
    ([{"from": P[0], "to": P[3]}], [(P[3], None)], False),
    ([{"from": P[1], "to": P[2]}, {"from": P[3], "to": None}], [(P[0], P[1]), (P[2], P[3])], True),
    ([{"from": {"error": "denied"}}], [(P[0], None)], False),
])
def test_the_release_own_writes_are_left_out_of_what_is_checked(own, ranges, open_end):
    assert backup_reuse.segments(P[0], own) == (ranges, open_end)


UNCHANGED = {"state": "unchanged", "why": "nothing but this release wrote"}
CHANGED = {"state": "changed", "why": "3 transaction(s) since the backup"}
UNKNOWN = {"state": "unknown", "why": "the server writes no binary log now"}


@pytest.mark.parametrize("found, policy, age, action, words", [
    (UNCHANGED, "refuse", 500, "reuse", "still matches"),
    (CHANGED, "new", 1, "new", "a new backup is taken: the database no longer matches the release's backup (3 "),
    (CHANGED, "refuse", 1, "refuse", "this release has already changed the database"),
    (CHANGED, "reuse", 1, "reuse", "backup_reuse_changed: reuse"),
    (UNKNOWN, "refuse", 2, "reuse", "could not be checked"),
    (UNKNOWN, "refuse", 30, "refuse", "whether it changed cannot be checked (the server writes no binary log now) and "
                                      "the backup is 30.0 h old, more than backup_reuse_max_age_hours (24)"),
    (UNKNOWN, "new", None, "new", "of unknown age"),
])
def test_the_decision_follows_the_evidence_the_policy_and_the_age(found, policy, age, action, words):
    decided = backup_reuse.verdict(found, policy, age, 24)
    assert decided["action"] == action
    assert words in decided["msg"] + decided.get("caveat", "")


def test_the_age_is_read_from_the_backup_stamp():
    now = datetime.datetime(2026, 11, 30, 6, 18, 14, tzinfo=datetime.UTC)
    assert backup_reuse.stamp_age_hours("20261128T061814Z", now) == 48.0
    assert backup_reuse.stamp_age_hours("not-a-stamp", now) is None
