"""Pure helpers of the release lock: how the holder and the lock's age are described in messages."""

from __future__ import annotations

import datetime

import pytest
from ansible.module_utils.dbrelease import lock


@pytest.mark.parametrize(
    "holder, text",
    [
        ({"user": "alice", "controller": "ctl1", "pid": 42, "release": "v1.2.0", "awx_job_id": "77"},
         "alice@ctl1 (pid 42, release v1.2.0, AWX job 77)"),
        ({"user": "bob", "controller": "ctl2", "pid": "", "release": "v1", "awx_job_id": ""}, "bob@ctl2 (release v1)"),
        ({}, "?@?"),
        ('{"user": "carol", "controller": "c"}', "carol@c"),
        ("not json", "not json"),
    ],
)
def test_holder_description_names_user_controller_and_what_is_known(holder, text):
    assert lock.describe_holder(holder) == text


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (119, "119 s"), (600, "10 min"), (7200, "2.0 h"),
                                           (None, "0 s")])
def test_lock_age_reads_naturally(seconds, text):
    assert lock.age_text(seconds) == text


def test_server_times_are_reported_as_utc_iso():
    assert lock.iso(datetime.datetime(2026, 11, 28, 6, 0, 0, 123000)) == "2026-11-28T06:00:00+00:00"
    assert lock.iso(None) is None


def test_held_message_says_who_since_when_and_how_to_proceed():
    row = {"holder": {"user": "alice", "controller": "ctl1", "pid": 42}, "acquired_at": "2026-11-28T06:00:00+00:00",
           "age_seconds": 600, "heartbeat_at": "2026-11-28T06:05:00+00:00", "expires_at": "2026-11-28T07:05:00+00:00"}
    message = lock.held_message("shop", row)
    assert "'shop' is held by alice@ctl1 (pid 42) since 2026-11-28T06:00:00+00:00 (10 min ago" in message
    assert "expires at 2026-11-28T07:05:00+00:00" in message and "lock_force" in message
