"""Table tests for the log_health filter: the verdict on the counted log lines and on logs that could not be read."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from log_health import FilterModule, log_health

PATTERNS = [
    {"name": "deadlock", "severity": "error", "warn_above": 0, "fail_above": 10},
    {"name": "replication", "severity": "error", "warn_above": None, "fail_above": 0},
    {"name": "aborted_connection", "severity": "warning", "warn_above": 10, "fail_above": 200},
    {"name": "server_warning", "severity": "warning", "warn_above": 50, "fail_above": None},
    {"name": "app_error", "severity": "error", "warn_above": 0, "fail_above": 50},
]


def scan(server=None, app=None, server_status="ok", app_status="ok", key="counts", hidden=()):
    files = [{"name": "server error log", "path": "/d/x.err", "kind": "server", "status": server_status,
              "note": "" if server_status == "ok" else "/d/x.err does not exist", key: server or {}},
             {"name": "app.log", "path": "/a/app.log", "kind": "application", "status": app_status,
              "note": "" if app_status == "ok" else "/a/app.log cannot be read by this user (uid 999): permission "
                                                     "denied", key: app or {}}]
    return {"files": files, "server": {"hidden": list(hidden)}}


CASES = [
    ("nothing new is ok", scan(), "ok", [], "within the limits since the release started: 0 error and 0 warning"),
    ("one deadlock warns", scan({"deadlock": 1}), "warn", ["deadlock"],
     "1 deadlock line (server error log 1) since the release started, above the warn limit of 0 "
     "(verify_log_patterns: deadlock.warn_above)."),
    ("deadlocks in two logs are added up", scan({"deadlock": 6}, {"deadlock": 5}), "fail", ["deadlock"],
     "11 deadlock lines (app.log 5, server error log 6)"),
    ("any replication error fails", scan({"replication": 1}), "fail", ["replication"], "above the fail limit of 0"),
    ("a null warn limit never warns", scan({"server_warning": 10}), "ok", [], "0 error and 10 warning lines"),
    ("a null fail limit never fails", scan({"server_warning": 5000}), "warn", ["server_warning"], "5000"),
    ("at the limit does not trip", scan({"aborted_connection": 10}), "ok", [], "within the limits"),
    ("a missing log warns by default", scan(server_status="missing"), "warn", ["log_readable"],
     "The server /d/x.err was not read: /d/x.err does not exist."),
    ("an unreadable log warns by default", scan(app_status="unreadable"), "warn", ["log_readable"],
     "permission denied"),
]


@pytest.mark.parametrize("name,data,verdict,tripped,reason", CASES, ids=[c[0] for c in CASES])
def test_verdicts(name, data, verdict, tripped, reason):
    result = log_health(data, PATTERNS)
    assert result["verdict"] == verdict
    assert sorted(c["name"] for c in result["checks"] if c["level"] != "ok") == sorted(tripped)
    assert any(reason in r for r in result["reasons"]), result["reasons"]


def test_new_counts_judge_only_this_read_and_say_since_when():
    data = scan({"deadlock": 30}, key="new_counts")
    data["files"][0]["counts"] = {"deadlock": 99}
    result = log_health(data, PATTERNS, "new_counts")
    assert result["verdict"] == "fail" and "30 deadlock lines" in result["reasons"][0]
    assert "since the previous check" in result["reasons"][0]


def test_missing_log_verdict_can_fail_or_be_ignored_and_notes_say_what_is_hidden():
    assert log_health(scan(app_status="missing"), PATTERNS, "counts", "fail")["verdict"] == "fail"
    ignored = log_health(scan(app_status="missing", hidden=["deadlocks are not logged"]), PATTERNS, "counts", "ok")
    assert ignored["verdict"] == "ok"
    assert any("was not read" in n for n in ignored["notes"])
    assert "Server settings: deadlocks are not logged." in ignored["notes"]


def test_severity_totals():
    totals = log_health(scan({"deadlock": 1, "aborted_connection": 4}, {"app_error": 2}), PATTERNS)["totals"]
    assert totals == {"error": 3, "warning": 4}


@pytest.mark.parametrize("args,message", [
    (("nope", PATTERNS), "must be the log_scan result"),
    ((scan(), PATTERNS, "all"), "counts_key must be counts or new_counts"),
    ((scan(), PATTERNS, "counts", "maybe"), "missing_log_verdict"),
    ((scan(), [{"severity": "error"}]), "list of dicts with a name"),
    ((scan({"x": 1}), [{"name": "x", "fail_above": "many"}]), "x.fail_above must be a number"),
    ((scan({"x": 1}), [{"name": "x", "warn_above": -1}]), "must not be negative"),
    ((scan({"x": 1}), [{"name": "x", "warn_above": True}]), "must be a number or null"),
])
def test_bad_input_is_named(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        log_health(*args)


def test_filter_is_registered():
    assert FilterModule().filters()["log_health"] is log_health
