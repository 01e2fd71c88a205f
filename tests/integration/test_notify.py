"""release_notify against real receivers started here: an HTTP server (ok, down, slow, failing) and an SMTP server
(aiosmtpd: plain, STARTTLS with a login, TLS). A receiver that fails never fails the task, and no secret reaches a
receiver or the task's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_module
from receivers import HttpReceiver, SmtpReceiver, closed_port_url, make_certificate

ADMIN_PASSWORD = "Adm1n-'pw\"-#;x"
SMTP_PASSWORD = "smtp-S3cret!"
RUN = "2026-12-01T10:00:00+00:00"


@pytest.fixture
def release_dir(tmp_path):
    """A record of a release whose schema phase failed, with row data and (a leak) the password in its error."""
    record = {"version": "v3.1.0", "host": "db1", "database": "shop", "phases": {
        "preflight": {"status": "ok", "started": "2026-12-01T10:00:01+00:00", "finished": "2026-12-01T10:00:02+00:00"},
        "lock": {"status": "ok", "started": "2026-12-01T10:00:02+00:00", "finished": "2026-12-01T10:00:03+00:00",
                 "holder": {"user": "ana", "controller": "ops1"}},
        "schema": {"status": "failed", "started": "2026-12-01T10:00:05+00:00",
                   "finished": "2026-12-01T10:00:09+00:00",
                   "error": "Apply DDL: (1062) Duplicate entry 'dana@example.com' for key 'uq_email' "
                            "(connecting with %s)" % ADMIN_PASSWORD},
    }}
    (tmp_path / "release.json").write_text(json.dumps(record))
    return tmp_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("cert"))


def notify(release_dir, **args):
    base = {"path": str(release_dir), "event": "finish", "run_started": RUN, "timeout": 2,
            "redact": [ADMIN_PASSWORD, SMTP_PASSWORD], "context": {"environment": "staging",
                                                                   "report": str(release_dir / "report.md")}}
    base.update(args)
    return run_module("release_notify", base)


def assert_no_secret(*blobs, extra=()):
    for blob in blobs:
        for secret in (ADMIN_PASSWORD, SMTP_PASSWORD, "s3cr3t-token", "dana@example.com", *extra):
            assert secret not in blob, "%r reached %s" % (secret, blob[:200])


def test_a_webhook_gets_the_summary_as_json_that_slack_and_teams_accept(release_dir):
    hook = HttpReceiver()
    try:
        result = notify(release_dir, webhooks=[hook.url()])
    finally:
        hook.close()
    assert not result.get("failed") and result["sent"] == 1 and result["outcome"] == "failure"
    (request,) = hook.requests
    assert request["path"] == "/hooks/T0/B0/s3cr3t-token"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = json.loads(request["body"])
    # Slack and Teams incoming webhooks show `text` (a string); `title` is Teams' card title.
    assert isinstance(body["text"], str) and body["title"] == "dbrelease v3.1.0 on db1 (shop): FAILED at schema"
    assert "Duplicate entry '...' for key 'uq_email'" in body["text"]
    assert body["dbrelease"]["failed_phase"] == "schema" and body["dbrelease"]["environment"] == "staging"
    assert_no_secret(request["body"].decode(), json.dumps(result))
    delivery = result["deliveries"][0]
    assert delivery["ok"] and delivery["status"] == "HTTP 200" and "s3cr3t" not in delivery["target"]
    assert result["record"]["deliveries"] == result["deliveries"]


def test_an_email_over_starttls_with_a_login_from_the_vault(release_dir, certificate):
    cert, key = certificate
    smtp = SmtpReceiver("starttls", cert, key, login=("notify", SMTP_PASSWORD))
    try:
        result = notify(release_dir, email={"to": ["dba@example.test", "ops@example.test"],
                                            "from": "dbrelease@example.test", "smtp_host": "127.0.0.1",
                                            "smtp_port": smtp.port, "tls": "starttls", "username": "notify",
                                            "password": SMTP_PASSWORD, "ca_file": cert})
    finally:
        smtp.close()
    assert result["sent"] == 1, result
    assert smtp.logins and smtp.logins[0][1] == "notify"
    (message,) = smtp.messages
    assert message["to"] == ["dba@example.test", "ops@example.test"]
    assert "Subject: dbrelease v3.1.0 on db1 (shop): FAILED at schema" in message["data"]
    assert "Phases: preflight ok (1s), lock ok (1s), schema failed (4s)." in message["data"]
    assert_no_secret(message["data"], json.dumps(result))


def test_an_email_over_tls_and_one_without_encryption(release_dir, certificate):
    cert, key = certificate
    tls = SmtpReceiver("ssl", cert, key)
    plain = SmtpReceiver()
    try:
        result = notify(release_dir, event="start", email={
            "to": ["dba@example.test"], "from": "dbrelease@example.test", "smtp_host": "127.0.0.1",
            "smtp_port": tls.port, "tls": "ssl", "ca_file": cert})
        second = notify(release_dir, event="start", email={
            "to": "dba@example.test", "from": "dbrelease@example.test", "smtp_host": "127.0.0.1",
            "smtp_port": plain.port})
    finally:
        tls.close()
        plain.close()
    assert result["sent"] == 1 and second["sent"] == 1
    assert "Subject: dbrelease v3.1.0 on db1 (shop): started" in tls.messages[0]["data"]
    assert "Started by ana@ops1." in plain.messages[0]["data"]


def test_receivers_that_are_down_slow_or_failing_never_fail_the_task_and_are_recorded(release_dir, certificate):
    cert, key = certificate
    slow, failing, good = HttpReceiver(delay=6), HttpReceiver(status=500), HttpReceiver()
    smtp = SmtpReceiver("starttls", cert, key, login=("notify", "another-password"))
    try:
        result = notify(release_dir, timeout=1, attempts=2, webhooks=[
            closed_port_url(), slow.url("/slow"), failing.url("/fail"), good.url("/good")], email={
            "to": ["dba@example.test"], "from": "dbrelease@example.test", "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port, "tls": "starttls", "username": "notify", "password": SMTP_PASSWORD,
            "ca_file": cert})
    finally:
        for receiver in (slow, failing, good, smtp):
            receiver.close()
    assert not result.get("failed"), result
    down, timed_out, error, ok, mail = result["deliveries"]
    assert down["ok"] is False and down["error"] == "connection refused" and down["attempts"] == 2
    assert timed_out["ok"] is False and timed_out["error"] == "timed out after 1 s" and timed_out["attempts"] == 1
    assert error["ok"] is False and error["error"] == "HTTP 500 Internal Server Error" and error["attempts"] == 2
    assert ok["ok"] is True
    assert mail["ok"] is False and mail["error"].startswith("SMTP 535"), mail
    assert result["sent"] == 1 and result["undelivered"] == 4
    assert len(result["warnings"]) == 4 and "was not delivered: connection refused (the release goes on" in \
        json.dumps(result["warnings"][0])
    # The slow receiver answers after 6 s: the delivery gave up at its timeout, before that answer, and was not retried.
    assert timed_out["seconds"] < 6 and len(slow.requests) == 1, timed_out
    assert_no_secret(json.dumps(result))
    assert len(failing.requests) == 2 and len(good.requests) == 1


def test_an_untrusted_certificate_is_a_recorded_failure(release_dir, certificate):
    cert, key = certificate
    smtp = SmtpReceiver("starttls", cert, key)
    try:
        result = notify(release_dir, email={"to": ["dba@example.test"], "from": "dbrelease@example.test",
                                            "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "tls": "starttls"})
    finally:
        smtp.close()
    assert not result.get("failed") and result["deliveries"][0]["ok"] is False
    assert "TLS error" in result["deliveries"][0]["error"] and "CERTIFICATE_VERIFY_FAILED" in \
        result["deliveries"][0]["error"]
    assert smtp.messages == []


def test_an_invalid_configuration_fails_with_the_setting_named(release_dir):
    bad = notify(release_dir, validate_only=True, email={"to": ["dba@example.test"], "from": "x@example.test",
                                                         "smtp_host": "mx", "username": "u",
                                                         "password": SMTP_PASSWORD})
    assert bad["failed"] and "release_notify_email" in bad["msg"] and "starttls or ssl" in bad["msg"]
    assert SMTP_PASSWORD not in json.dumps(bad)
    good = notify(release_dir, validate_only=True, webhooks=["https://hooks.example.test/x"])
    assert not good.get("failed") and good["deliveries"] == [] and good["skipped"].startswith("validate_only")


def test_events_not_selected_and_dry_runs_send_nothing(release_dir):
    hook = HttpReceiver()
    try:
        skipped = notify(release_dir, webhooks=[hook.url()], events=["success"])
        Path(release_dir, "release.check.json").write_text(Path(release_dir, "release.json").read_text().replace(
            '"failed"', '"ok"'))
        dry = notify(release_dir, webhooks=[hook.url()], check_record=True)
        approval = notify(release_dir, webhooks=[hook.url()], check_record=True, approval_pending=True)
    finally:
        hook.close()
    assert skipped["skipped"] == "failure is not in release_notify_events" and skipped["sent"] == 0
    assert dry["skipped"].startswith("a dry run notifies only") and dry["outcome"] == "dry_run"
    assert approval["outcome"] == "approval" and approval["sent"] == 1
    assert hook.json_bodies()[0]["title"].endswith("plan ready, waiting for approval")


def load_callback():
    import importlib.util

    spec = importlib.util.spec_from_file_location("release_notify_callback",
                                                  Path(__file__).parents[2] / "callback_plugins/release_notify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("told,owed", [
    ({"start"}, ["finish"]),
    ({"start", "finish"}, []),
    ({"finish"}, []),
    ({"refused"}, []),  # a run refused at the lock never announced a start: nothing is owed
    ({"rollback_start"}, ["rollback"]),
    (set(), []),
])
def test_the_callback_owes_the_close_of_what_this_run_opened(told, owed):
    assert load_callback().owed_events(told) == owed


def test_the_callback_sends_what_is_owed_and_records_it(release_dir):
    hook = HttpReceiver()
    try:
        result = load_callback().notify_owed(str(release_dir), "finish", RUN, {
            "release_notify_webhooks": [hook.url()], "release_environment": "production",
            "release_db_login": {"login_password": ADMIN_PASSWORD}}, "db1")
    finally:
        hook.close()
    assert result["sent"] == 1 and result["outcome"] == "failure"
    body = hook.json_bodies()[0]
    assert body["title"].endswith("FAILED at schema") and body["dbrelease"]["environment"] == "production"
    assert_no_secret(json.dumps(body))
    record = json.loads((release_dir / "release.json").read_text())
    entry = record["notifications"]["finish"]
    assert entry["outcome"] == "failure" and entry["sent"] == 1 and "s3cr3t" not in json.dumps(entry)
    assert record["phases"]["schema"]["status"] == "failed"  # the rest of the record is untouched
