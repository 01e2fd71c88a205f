"""smoke_check against the real example server (examples/app/backend/server.js): status, body, retries, back-off."""

from __future__ import annotations

import threading
import time

import pytest
from smoke_check import check, judge, waits
from test_verify_role import app_server  # noqa: F401 (fixture)


def endpoint(url, **kw):
    e = {"url": url, "name": None, "status": [200], "body_contains": None, "body_regex": None, "method": "GET",
         "timeout": 2}
    e.update(kw)
    return e


@pytest.mark.parametrize("attempts, delay, backoff, cap, expected", [
    (1, 1, 2, 10, []),
    (4, 1, 2, 10, [1, 2, 4]),
    (5, 1, 3, 5, [1, 3, 5, 5]),
    (3, 0.5, 1, 10, [0.5, 0.5]),
])
def test_waits_grow_by_the_backoff_factor_up_to_the_cap(attempts, delay, backoff, cap, expected):
    assert waits(attempts, delay, backoff, cap) == expected


def test_example_server_health_version_and_unknown_paths(app_server):  # noqa: F811
    url, _ = app_server
    ok = check(endpoint(url + "/health", body_contains='"status":"ok"'), 1, 0, 1, 0, {}, True)
    assert ok["ok"] and ok["status"] == 200 and ok["attempts"] == 1
    version = check(endpoint(url + "/version", body_regex=r'"version":"[^"]+"'), 1, 0, 1, 0, {}, True)
    assert version["ok"], version
    head = check(endpoint(url + "/health", method="HEAD"), 1, 0, 1, 0, {}, True)
    assert head["ok"], head
    missing = check(endpoint(url + "/nope"), 1, 0, 1, 0, {}, True)
    assert missing["ok"] is False and missing["status"] == 404
    assert missing["reason"] == "status 404, expected 200"


def test_a_wrong_body_fails_even_with_the_right_status(app_server):  # noqa: F811
    url, _ = app_server
    result = check(endpoint(url + "/health", body_contains="maintenance"), 1, 0, 1, 0, {}, True)
    assert result["ok"] is False
    assert "does not contain 'maintenance'" in result["reason"]
    result = check(endpoint(url + "/version", body_regex=r"^v\d"), 1, 0, 1, 0, {}, True)
    assert "does not match" in result["reason"]


def test_an_endpoint_that_recovers_passes_on_a_later_try(app_server):  # noqa: F811
    url, fail_file = app_server
    fail_file.write_text("down")
    timer = threading.Timer(0.7, fail_file.unlink)
    timer.start()
    try:
        started = time.monotonic()
        result = check(endpoint(url + "/health"), 6, 0.25, 2, 10, {}, True)
    finally:
        timer.join()
    assert result["ok"] is True, result
    assert result["attempts"] >= 2
    assert time.monotonic() - started >= 0.7


def test_nothing_listening_is_reported_without_raising():
    result = check(endpoint("http://127.0.0.1:9/health", timeout=1), 2, 0.1, 2, 1, {}, True)
    assert result["ok"] is False and result["status"] is None and result["attempts"] == 2
    assert result["reason"].startswith("no response:")


@pytest.mark.parametrize("status, body, ok", [
    (200, '{"status":"ok"}', True),
    (503, '{"status":"ok"}', False),
    (None, "connection refused", False),
])
def test_judge(status, body, ok):
    assert judge(endpoint("http://x/", body_contains='"ok"'), status, body)[0] is ok
