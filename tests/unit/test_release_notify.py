"""Table tests for release_notify's pure parts: the outcome told, the summary, redaction, the configuration."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.dbrelease import notify as rn

RUN = "2026-12-01T10:00:00+00:00"
BEFORE = "2026-11-30T09:00:00+00:00"


def phase(status, started="2026-12-01T10:00:05+00:00", finished="2026-12-01T10:01:10+00:00", **outputs):
    entry = {"status": status, "started": started, "changed": False}
    if status != "running":
        entry["finished"] = finished
    entry.update(outputs)
    return entry


def record(**phases):
    return {"version": "v1.2.0-canonical-schema", "host": "db1", "database": "arisgourmet", "phases": phases}


OK_RELEASE = record(
    preflight=phase("ok", "2026-12-01T10:00:01+00:00"),
    lock=phase("ok", "2026-12-01T10:00:02+00:00", holder={"user": "ana", "controller": "ops1", "awx_job_id": ""}),
    backup=phase("ok", "2026-12-01T10:00:03+00:00", sha256="ab" * 32, path="/srv/backups/x.sql.gz"),
    schema=phase("ok", "2026-12-01T10:00:10+00:00"),
    verify=phase("ok", "2026-12-01T10:00:20+00:00", verdict="warn",
                 health={"verdict": "warn", "reasons": ["The outbox backlog grew from 3 to 300 pending events."]},
                 logs={"counts": {"deadlock": 1, "app_error": 0}}),
)


@pytest.mark.parametrize("event,rec,since,check,approval,expected,detail_part", [
    ("start", OK_RELEASE, RUN, False, False, "start", ""),
    ("refused", {}, RUN, False, False, "refused", ""),
    ("finish", OK_RELEASE, RUN, False, False, "success", ""),
    ("finish", record(preflight=phase("ok"), schema=phase("failed", error="schema_apply: Duplicate entry "
                                                                          "'bob@example.com' for key 'uq'")),
     RUN, False, False, "failure", "schema failed"),
    ("finish", record(backup=phase("running")), RUN, False, False, "failure", "backup did not finish"),
    # A phase that failed in an earlier run does not make this run a failure.
    ("finish", record(schema=phase("failed", BEFORE, BEFORE), verify=phase("ok")), RUN, False, False, "success", ""),
    ("finish", record(schema=phase("ok", BEFORE, BEFORE)), RUN, False, False, "failure", "no phase ran"),
    ("finish", OK_RELEASE, RUN, True, True, "approval", ""),
    ("finish", OK_RELEASE, RUN, True, False, "dry_run", ""),
    ("finish", record(schema=phase("failed", error="x")), RUN, True, True, "failure", "schema failed"),
    ("rollback", record(rollback=phase("ok")), RUN, False, False, "rollback", "back at the release's backup"),
    ("rollback", record(rollback=phase("ok", mode="schema")), RUN, False, False, "rollback", "rows written since"),
    ("rollback", record(rollback=phase("ok", mode="pitr")), RUN, False, False, "rollback", "binary logs replayed"),
    ("rollback", record(rollback=phase("failed", error="checksum differs")), RUN, False, False, "failure",
     "checksum differs"),
])
def test_the_outcome_is_judged_from_this_runs_phases(event, rec, since, check, approval, expected, detail_part):
    outcome, detail = rn.outcome_of(event, rec, since, check, approval)
    assert outcome == expected
    assert detail_part in detail


def test_the_phase_that_stopped_the_run_wins_over_a_record_the_clean_up_rewrote():
    # Maintenance failed, then the finish play switched it off again and recorded the phase ok.
    rec = record(preflight=phase("ok"), maintenance=phase("ok", state="off"))
    stopped = {"failed": {"phase": "maintenance", "error": "Write the flag: Not a directory"}}
    assert rn.outcome_of("finish", rec, RUN, context=stopped) == (
        "failure", "maintenance failed: Write the flag: Not a directory")
    summary = rn.build_summary("finish", rec, RUN, context=stopped)
    assert summary["title"].endswith("FAILED at maintenance")
    assert summary["fields"]["error"] == "Write the flag: Not a directory"
    assert rn.outcome_of("start", rec, RUN, context=stopped)[0] == "start"


def test_the_first_failed_phase_is_the_earliest_started():
    rec = record(verify=phase("failed", "2026-12-01T10:05:00+00:00", error="late"),
                 backup=phase("failed", "2026-12-01T10:01:00+00:00", error="early"))
    assert rn.outcome_of("finish", rec, RUN)[1] == "backup failed: early"


@pytest.mark.parametrize("text,expected", [
    ("Duplicate entry 'bob@example.com-7' for key 'uq_email'", "Duplicate entry '...' for key 'uq_email'"),
    ("Incorrect integer value: 'abc' for column `n` at row 1",
     "Incorrect integer value: '...' for column `n` at row 1"),
    ("Truncated incorrect DOUBLE value: '12,5'", "Truncated incorrect DOUBLE value: '...'"),
    ("Data too long for column 'note' at row 3", "Data too long for column 'note' at row 3"),
    ("Error 'x' on query. Default database: 'db'. Query: 'INSERT INTO t VALUES ('secret row')'",
     "Error 'x' on query. Default database: 'db'. Query: '...'"),
    ("You have an error in your SQL syntax; check the manual near 'VALUES ('4111 1111')' at line 1",
     "You have an error in your SQL syntax; check the manual near '...' at line 1"),
])
def test_values_the_server_quotes_are_redacted(text, expected):
    assert rn.redact_values(text) == expected


def test_clean_masks_secrets_joins_lines_and_truncates():
    out = rn.clean("login as db_admin with\nPw-123 failed " + "x" * 500, ["Pw-123"], limit=60)
    assert "Pw-123" not in out and rn.MASK in out and "\n" not in out
    assert len(out) == 60 and out.endswith("…")


def test_a_successful_release_summary_tells_phases_verdict_reasons_and_logs():
    summary = rn.build_summary("finish", OK_RELEASE, RUN, context={"environment": "production",
                                                                 "report": "/srv/a/report.md"})
    assert summary["outcome"] == "success"
    assert summary["title"] == "dbrelease v1.2.0-canonical-schema on db1 (arisgourmet): OK"
    text = summary["text"]
    assert "Environment: production." in text
    assert "backup ok (1m07s)" in text and "Health verdict: WARN." in text
    assert "- The outbox backlog grew from 3 to 300 pending events." in text
    assert "deadlock 1" in text and "app_error" not in text  # zero counts are not listed
    assert "Report: /srv/a/report.md" in text
    fields = summary["fields"]
    assert fields["phases"]["schema"] == "ok" and fields["verdict"] == "warn"
    json.dumps(fields)  # serialisable as the webhook's body


def test_a_failure_summary_names_the_phase_and_its_error_without_row_values_or_secrets():
    rec = record(preflight=phase("ok"), schema=phase(
        "failed", error="Apply: Duplicate entry 'carol@example.com' for key 'uq' (as db_admin, password Pw-9!)"))
    summary = rn.build_summary("finish", rec, RUN, secrets=["Pw-9!"])
    assert summary["title"].endswith(": FAILED at schema")
    blob = json.dumps(summary)
    assert "carol@example.com" not in blob and "Pw-9!" not in blob
    assert "Duplicate entry '...' for key 'uq'" in summary["fields"]["error"]


def test_a_summary_carries_no_row_data_from_the_record_outputs():
    rec = record(verify=phase("ok", verdict="ok", stats={"outbox": {"counts": {"pending": 3}}},
                              smoke={"results": [{"name": "health", "reason": "body contains 'secret-token'"}]}))
    blob = json.dumps(rn.build_summary("finish", rec, RUN))
    assert "secret-token" not in blob and "stats" not in blob


def test_start_names_who_started_it_and_refused_says_this_run_changed_nothing():
    start = rn.build_summary("start", OK_RELEASE, RUN, context={"tags": ["all"]})
    assert start["title"].endswith(": started") and "Started by ana@ops1." in start["text"]
    assert "tagged" not in start["text"]
    rerun = rn.build_summary("start", OK_RELEASE, RUN, context={"tags": ["verify"]})
    assert "Only the phases tagged verify." in rerun["text"]
    refused = rn.build_summary("refused", {}, RUN, context={
        "version": "v2", "host": "db1", "database": "shop", "lock_holder": "bob@ops2 pid 42 (release v1)"})
    assert refused["title"] == "dbrelease v2 on db1 (shop): not started: the release lock was not taken"
    assert "The lock phase said: bob@ops2 pid 42 (release v1). This run changed nothing." in refused["text"]
    assert "FAILED" not in refused["text"] and refused["outcome"] == "refused"


def test_a_watch_regression_tells_the_verdicts_and_until_when():
    summary = rn.build_summary("watch", OK_RELEASE, context={"watch": {
        "outcome": "regression", "verdict": "fail", "previous_verdict": "ok", "until": "2026-12-04T10:00:00+00:00",
        "reasons": ["The oldest pending outbox event is 900 seconds old."]}})
    assert summary["outcome"] == "regression"
    assert "Verdict FAIL (previous run: ok)." in summary["text"]
    assert "Watch until 2026-12-04T10:00:00+00:00." in summary["text"]
    with pytest.raises(rn.ConfigError):
        rn.build_summary("watch", OK_RELEASE, context={"watch": {"outcome": "bad"}})


def test_maintenance_left_on_is_said():
    rec = record(maintenance=phase("ok", state="on"), schema=phase("failed", error="boom"))
    assert "Maintenance mode is ON" in rn.build_summary("finish", rec, RUN)["text"]


@pytest.mark.parametrize("url,expected", [
    ("https://hooks.slack.com/services/T0/B0/SECRETTOKEN", "https://hooks.slack.com/…#"),
    ("http://user:pw@127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/…#"),
])
def test_webhook_urls_are_shown_without_path_query_or_credentials(url, expected):
    shown = rn.redact_url(url)
    assert shown.startswith(expected) and len(shown) == len(expected) + 8
    assert "SECRET" not in shown and "pw" not in shown and "token" not in shown


@pytest.mark.parametrize("cfg,message", [
    ({"to": ["a@x.test"], "smtp_host": "mx"}, "from missing"),
    ({"to": "a@x.test", "from": "not-an-address", "smtp_host": "mx"}, "'not-an-address' is not an e-mail address"),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "username": "u", "password": "p"},
     "set tls to starttls or ssl"),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "tls": "starttls", "password": "p"},
     "password given without username"),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "tls": "tls"}, "must be none, starttls or ssl"),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "smtp_port": "twenty"}, "must be a number"),
])
def test_invalid_email_settings_name_the_setting(cfg, message):
    with pytest.raises(rn.ConfigError, match="release_notify_email") as info:
        rn.email_settings(cfg)
    assert message in str(info.value)


@pytest.mark.parametrize("cfg,port", [
    ({"to": "a@x.test, b@x.test", "from": "r@x.test", "smtp_host": "mx"}, 25),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "tls": "starttls", "username": "u"}, 587),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "tls": "ssl"}, 465),
    ({"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "mx", "smtp_port": 2525}, 2525),
])
def test_email_settings_default_the_port_by_tls(cfg, port):
    assert rn.email_settings(cfg)["smtp_port"] == port


def test_empty_email_settings_are_no_email_even_with_the_defaults_filled_in():
    assert rn.email_settings({}) == {}
    assert rn.email_settings({"tls": "none", "validate_certs": True, "to": None}) == {}


def test_webhooks_must_be_http_urls_and_the_error_hides_the_url():
    assert rn.webhook_settings(["https://h.test/x", "", None]) == ["https://h.test/x"]
    with pytest.raises(rn.ConfigError, match="is not an http") as info:
        rn.webhook_settings(["ftp://files.test/SECRET"])
    assert "SECRET" not in str(info.value)


def test_unknown_events_are_refused_and_nothing_configured_sends_nothing():
    with pytest.raises(rn.ConfigError, match="unknown succes"):
        rn.notify({"events": ["succes"], "event": "finish"}, {})
    result = rn.notify({"event": "start", "webhooks": [], "email": {}}, OK_RELEASE)
    assert result["skipped"].startswith("no notification configured") and result["deliveries"] == []


def test_check_mode_lists_the_deliveries_without_sending():
    result = rn.notify({"event": "start", "webhooks": ["http://127.0.0.1:9/x"],
                        "email": {"to": ["a@x.test"], "from": "r@x.test", "smtp_host": "127.0.0.1",
                                  "smtp_port": 9}}, OK_RELEASE, send=False)
    assert [d["ok"] for d in result["deliveries"]] == [None, None]
    assert result["sent"] == result["undelivered"] == 0 and result["skipped"] == "check mode: nothing sent"
