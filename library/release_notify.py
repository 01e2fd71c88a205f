#!/usr/bin/python
"""Ansible module: tell people about a release (webhook JSON, e-mail over SMTP), from its record's summary."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_notify
short_description: Send a release's summary to webhooks (Slack/Teams-compatible JSON) and by e-mail
description:
  - "Builds the summary of one release event from the release record (C(release.json), or C(release.check.json)
    for a dry run) and sends it to every configured driver. What is sent is the report's summary (versions, phases
    and their states, the failed phase and its error, the health verdict and its reasons, log counts, where the
    report is), never a password, never row data. Values quoted by the server in an error message
    (C(Duplicate entry '...'), C(Incorrect ... value: '...'), C(Query: '...')) are replaced by C(...), and every
    string of I(redact) is masked wherever it appears."
  - "Drivers: each URL of I(webhooks) gets an HTTP POST of a JSON object C({title, text, dbrelease}); C(text) is
    what Slack and Microsoft Teams incoming webhooks show, C(dbrelease) carries the summary as fields for other
    receivers. I(email) sends a plain-text mail over SMTP, optionally with STARTTLS or TLS and a login."
  - A driver that fails (refused, timed out, HTTP or SMTP error) never fails the task; every delivery is returned in
    C(deliveries) with its outcome and a warning is shown. Only an invalid configuration fails the task (see
    I(validate_only)), so that preflight can refuse a broken configuration before the release starts.
  - Runs on the controller, where the record is (C(delegate_to=localhost)); the callback C(release_notify) calls
    the same code for a host that can no longer run tasks.
options:
  path:
    description: Release directory, C(<release_artifacts_dir>/<release_version>), holding the record.
    type: path
  event:
    description:
      - C(start) (the release took its lock and begins), C(finish) (the run ended; the outcome, C(success),
        C(failure) or, for a dry run with I(approval_pending), C(approval), is read from the record),
        C(refused) (another run holds the release lock; nothing of this release was changed, and the other run is
        not said to have failed), C(rollback_start), C(rollback) (outcome from the record's C(rollback) phase),
        C(watch) (a scheduled verification found a regression, a recovery, or the end of the watch period).
    type: str
    choices: [start, finish, refused, rollback_start, rollback, watch]
    default: finish
  events:
    description: Outcomes to send (C(start), C(success), C(failure), C(approval), C(refused), C(rollback_start),
      C(rollback), C(regression), C(recovered), C(watch_ended)); others are skipped. Empty sends all.
    type: list
    elements: str
    default: []
  run_started:
    description: When this run started (ISO 8601); only phases started since count for the outcome of C(finish).
      Empty counts every phase of the record.
    type: str
    default: ""
  check_record:
    description: Read C(release.check.json) (the record of a dry run) instead of C(release.json).
    type: bool
    default: false
  approval_pending:
    description: With I(event=finish) and a successful dry run, the outcome is C(approval) (the plan is ready and
      waits for a person to approve it).
    type: bool
    default: false
  context:
    description: Facts to add to the summary (C(environment), C(report), C(awx_job_id), C(tags), C(lock_holder)
      with I(event=refused), C(watch) with I(event=watch), C(note)); must hold no secret.
    type: dict
    default: {}
  webhooks:
    description: URLs to POST the JSON summary to. Treated as secrets (a Slack or Teams URL is its own credential);
      only the scheme, host and a fingerprint are ever shown or recorded.
    type: list
    elements: str
    default: []
  email:
    description: E-mail settings; empty sends no mail.
    type: dict
    default: {}
    suboptions:
      to:
        description: Recipients.
        type: list
        elements: str
      from:
        description: Sender address.
        type: str
      smtp_host:
        description: SMTP server.
        type: str
      smtp_port:
        description: SMTP port (default 25, 587 with C(tls=starttls), 465 with C(tls=ssl)).
        type: int
      tls:
        description: C(none), C(starttls) (upgrade after EHLO, required when the server offers it or not) or
          C(ssl) (TLS from the first byte). A login needs C(starttls) or C(ssl).
        type: str
        choices: [none, starttls, ssl]
        default: none
      username:
        description: SMTP login (from the vault).
        type: str
      password:
        description: SMTP password (from the vault).
        type: str
      validate_certs:
        description: Verify the server's certificate and name with TLS.
        type: bool
        default: true
      ca_file:
        description: CA bundle to verify the server with, instead of the system's.
        type: path
  timeout:
    description: Seconds per connection attempt (connect, send, answer) of each delivery.
    type: float
    default: 10
  attempts:
    description: Tries per delivery when it was refused or answered with a server error (5xx). A timeout is not
      retried (a slow receiver must not hold the release for long).
    type: int
    default: 2
  redact:
    description: Strings that must never be sent (the admin and SMTP passwords, for example); masked wherever they
      appear in the summary.
    type: list
    elements: str
    default: []
  validate_only:
    description: Check the configuration (URLs, addresses, TLS with a login) and send nothing; fails on an invalid
      one.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Builds the summary and the list of deliveries, sends nothing. A dry run that must notify (the approval
      of a production plan) runs the task with C(check_mode=false).
  diff_mode:
    support: none
notes:
  - C(changed) is always false; a notification changes nothing on a managed system (like the release record).
author: dbrelease
"""

EXAMPLES = r"""
- name: Tell people the release ended
  release_notify:
    path: "{{ record_dir }}"
    event: finish
    run_started: "{{ __release_run_started }}"
    webhooks: "{{ release_notify_webhooks }}"
    email: "{{ release_notify_email }}"
    context:
      environment: "{{ release_environment }}"
      report: "{{ record_dir }}/report.md"
    redact: ["{{ release_db_admin_password }}"]
  delegate_to: localhost
  no_log: true
  register: __notify_result
"""

RETURN = r"""
event:
  description: The event asked for.
  returned: always
  type: str
outcome:
  description: What is told (C(start), C(success), C(failure), C(approval), C(refused), C(rollback_start),
    C(rollback), C(regression), C(recovered), C(watch_ended)), or C(dry_run) for a dry run that sends nothing.
  returned: always
  type: str
summary:
  description: What was sent, C(title), C(text) and C(fields) (the structured summary).
  returned: always
  type: dict
deliveries:
  description: One per driver target, C(driver), C(target) (a webhook as C(scheme://host/…#fingerprint), a mail
    as its recipients and server), C(ok) (true, false, or null when not sent), C(status), C(error),
    C(attempts), C(seconds).
  returned: always
  type: list
  elements: dict
  sample:
    - {driver: webhook, target: "https://hooks.slack.com/…#3f2a9c1d", ok: false, status: "",
       error: "timed out after 10 s", attempts: 1, seconds: 10.0}
sent:
  description: Deliveries that succeeded.
  returned: always
  type: int
undelivered:
  description: Deliveries that failed (a count; the task itself never fails on them).
  returned: always
  type: int
skipped:
  description: Why nothing was sent (no driver configured, outcome not in I(events), dry run), else empty.
  returned: always
  type: str
record:
  description: The entry to keep in the release record's C(notifications) list (no secret, no payload).
  returned: always
  type: dict
"""

import datetime
import email.message
import email.utils
import hashlib
import json
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

OUTCOMES = ("start", "success", "failure", "approval", "refused", "rollback_start", "rollback", "regression",
            "recovered", "watch_ended")
MASK = "********"
ERROR_CHARS = 400
REASONS_SENT = 5
# Values a MySQL/MariaDB server quotes back in its messages: row data, never to be sent.
_VALUE_PATTERNS = (
    re.compile(r"(Duplicate entry ')(.*?)(' for key)", re.S),
    re.compile(r"(value: ')(.*?)(')", re.S),
    re.compile(r"(value ')(.*?)(' for)", re.S),
    re.compile(r"(Query: ')(.*)(')", re.S),
    re.compile(r"(near ')(.*?)(' at line)", re.S),
)


class ConfigError(ValueError):
    """The notification configuration is invalid; the message names the setting."""


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- What is said ----------------------------------------------------------------------------------------------
def redact_values(text):
    """Pure: `text` with the values the server quoted (row data) replaced by `...`."""
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "..." + m.group(3), text)
    return text


def mask(text, secrets):
    """Pure: `text` with every secret of `secrets` (non-empty strings) masked."""
    for secret in sorted((s for s in secrets or () if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def clean(text, secrets=(), limit=ERROR_CHARS):
    """Pure: one line, row values redacted, secrets masked, at most `limit` characters."""
    text = mask(redact_values(" ".join(str(text or "").split())), secrets)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _parse_time(value):
    try:
        return datetime.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def _duration(started, finished):
    a, b = _parse_time(started), _parse_time(finished)
    if not a or not b:
        return ""
    seconds = int((b - a).total_seconds())
    return "%dm%02ds" % (seconds // 60, seconds % 60) if seconds >= 60 else "%ds" % seconds


def fresh_phases(record, since):
    """Pure: [(name, entry)] of the record's phases started at or after `since`, in the order they started."""
    phases = (record or {}).get("phases") or {}
    items = [(name, entry) for name, entry in phases.items()
             if isinstance(entry, dict) and str(entry.get("started") or "") >= (since or "")]
    return sorted(items, key=lambda item: str(item[1].get("started") or ""))


def outcome_of(event, record, since, check_record=False, approval_pending=False, context=None):
    """Pure: (outcome, detail) of `event` for this run, judged from the record."""
    context = context or {}
    if event in ("start", "refused", "rollback_start"):
        return event, ""
    if event == "watch":
        watch = context.get("watch") or {}
        outcome = watch.get("outcome") or "regression"
        if outcome not in ("regression", "recovered", "watch_ended"):
            raise ConfigError("release_notify: context.watch.outcome must be regression, recovered or watch_ended, "
                              "got %r" % outcome)
        return outcome, watch.get("detail") or ""
    phases = fresh_phases(record, since)
    if event == "rollback":
        entry = ((record or {}).get("phases") or {}).get("rollback") or {}
        if entry.get("status") == "ok":
            return "rollback", "the database is back at the release's backup"
        return "failure", "rollback %s: %s" % (entry.get("status") or "did not run",
                                               entry.get("error") or "no error recorded")
    failed = [(name, entry) for name, entry in phases if entry.get("status") == "failed"]
    if failed:
        name, entry = failed[0]
        return "failure", "%s failed: %s" % (name, entry.get("error") or "no error recorded")
    running = [name for name, entry in phases if entry.get("status") == "running"]
    if running:
        return "failure", "%s did not finish (the run was interrupted)" % running[0]
    if not phases:
        return "failure", "no phase ran in this run"
    if check_record:
        return ("approval" if approval_pending else "dry_run"), ""
    return "success", ""


_HEADLINES = {
    "start": "started",
    "success": "OK",
    "failure": "FAILED",
    "approval": "plan ready, waiting for approval",
    "dry_run": "dry run OK",
    "refused": "not started: another run holds the release lock",
    "rollback_start": "rollback started",
    "rollback": "ROLLED BACK",
    "regression": "REGRESSION during the watch",
    "recovered": "recovered during the watch",
    "watch_ended": "watch period ended",
}


def build_summary(event, record, since="", check_record=False, approval_pending=False, context=None,
                  secrets=()):
    """Pure: the summary of `event` ({outcome, title, text, fields}) from the record and `context`."""
    context = dict(context or {})
    record = record or {}
    outcome, detail = outcome_of(event, record, since, check_record, approval_pending, context)
    version = record.get("version") or context.get("version") or "?"
    host = record.get("host") or context.get("host") or "?"
    database = record.get("database") or context.get("database") or "?"
    phases = record.get("phases") or {}
    fresh = fresh_phases(record, since)
    headline = _HEADLINES[outcome]
    failed_phase = next((name for name, entry in fresh if entry.get("status") == "failed"), None)
    if outcome == "failure" and failed_phase:
        headline = "FAILED at %s" % failed_phase
    title = "dbrelease %s on %s (%s): %s" % (version, host, database, headline)
    lines = []
    if detail:
        lines.append(clean(detail, secrets))
    if context.get("environment"):
        lines.append("Environment: %s." % clean(context["environment"], secrets, 60))
    lock = phases.get("lock") or {}
    if event == "start":
        holder = lock.get("holder") or {}
        who = "%s@%s" % (holder.get("user") or "?", holder.get("controller") or "?") if holder else ""
        if who:
            lines.append("Started by %s%s." % (who, ", AWX job %s" % holder["awx_job_id"]
                                                if holder.get("awx_job_id") else ""))
    tags = [str(t) for t in (context.get("tags") or []) if str(t) not in ("all", "always")]
    if tags and event in ("start", "refused"):
        lines.append("Only the phases tagged %s." % ",".join(tags))
    if event == "refused" and context.get("lock_holder"):
        lines.append("Held by: %s. This run changed nothing." % clean(context["lock_holder"], secrets))
    shown = fresh if event in ("finish", "rollback") else []
    if shown:
        lines.append("Phases: %s." % ", ".join(
            "%s %s%s" % (name, entry.get("status") or "?",
                         (" (%s)" % _duration(entry.get("started"), entry.get("finished")))
                         if entry.get("finished") else "")
            for name, entry in shown))
    verify = phases.get("verify") or {}
    health = verify.get("health") or {}
    reasons = [clean(r, secrets, 240) for r in (health.get("reasons") or [])[:REASONS_SENT]]
    if event == "finish" and verify.get("verdict") and dict(fresh).get("verify"):
        lines.append("Health verdict: %s." % str(verify["verdict"]).upper())
        lines.extend("- %s" % r for r in reasons)
    logs = (verify.get("logs") or {}) if dict(fresh).get("verify") else {}
    if event == "finish" and logs.get("counts"):
        lines.append("Log lines since the release started: %s." % ", ".join(
            "%s %s" % (name, count) for name, count in sorted(logs["counts"].items()) if count) or "none")
    watch = context.get("watch") or {}
    if event == "watch":
        if watch.get("verdict"):
            lines.append("Verdict %s (previous run: %s)." % (str(watch["verdict"]).upper(),
                                                            watch.get("previous_verdict") or "none"))
        lines.extend("- %s" % clean(r, secrets, 240) for r in (watch.get("reasons") or [])[:REASONS_SENT])
        if watch.get("until"):
            lines.append("Watch until %s." % watch["until"])
    maintenance = phases.get("maintenance") or {}
    if maintenance.get("state") in ("on", "switching on", "unknown") and event in ("finish", "rollback"):
        lines.append("Maintenance mode is %s: switch it off when ready." % str(maintenance["state"]).upper())
    if context.get("report"):
        lines.append("Report: %s" % clean(context["report"], secrets, 300))
    if context.get("note"):
        lines.append(clean(context["note"], secrets, 300))
    fields = {
        "event": event,
        "outcome": outcome,
        "version": version,
        "host": host,
        "database": database,
        "environment": context.get("environment") or "",
        "check_mode": bool(check_record),
        "failed_phase": failed_phase or "",
        "error": clean((phases.get(failed_phase) or {}).get("error"), secrets) if failed_phase else "",
        "phases": {name: entry.get("status") for name, entry in shown},
        "verdict": (verify.get("verdict") or "") if dict(fresh).get("verify") else "",
        "reasons": reasons if event == "finish" else [],
        "log_counts": dict(logs.get("counts") or {}),
        "maintenance": maintenance.get("state") or "",
        "report": context.get("report") or "",
        "awx_job_id": str(context.get("awx_job_id") or ""),
        "sent_at": now_iso(),
    }
    if event == "watch":
        fields["watch"] = {k: watch.get(k) for k in ("verdict", "previous_verdict", "until", "run", "detail")
                           if watch.get(k) is not None}
    text = "\n".join([mask(title, secrets)] + lines)
    return {"outcome": outcome, "title": mask(title, secrets), "text": text, "fields": fields}


# -- Configuration -----------------------------------------------------------------------------------------------
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def redact_url(url):
    """Pure: `scheme://host[:port]/…#fingerprint` for a webhook URL: no path, query or credentials shown."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = "%s:%d" % (host, parts.port)
    return "%s://%s/…#%s" % (parts.scheme or "?", host, hashlib.sha256(url.encode()).hexdigest()[:8])


def email_settings(email_cfg):
    """Pure: the e-mail settings normalised ({} when none), or ConfigError naming the bad key."""
    cfg = {k: v for k, v in (email_cfg or {}).items() if v not in (None, "", [])}
    # tls and validate_certs have defaults: settings without any of the others are no e-mail at all.
    if not set(cfg) - {"tls", "validate_certs"}:
        return {}
    missing = [k for k in ("to", "from", "smtp_host") if not cfg.get(k)]
    if missing:
        raise ConfigError("release_notify_email: %s missing (needs to, from, smtp_host; smtp_port, tls, "
                          "username, password optional)" % ", ".join(missing))
    to = cfg["to"]
    if isinstance(to, str):
        to = [a.strip() for a in to.split(",") if a.strip()]
    for address in list(to) + [cfg["from"]]:
        if not _ADDRESS.match(str(address)):
            raise ConfigError("release_notify_email: %r is not an e-mail address" % address)
    tls = cfg.get("tls") or "none"
    if tls not in ("none", "starttls", "ssl"):
        raise ConfigError("release_notify_email.tls must be none, starttls or ssl, got %r" % tls)
    if (cfg.get("username") or cfg.get("password")) and tls == "none":
        raise ConfigError("release_notify_email: a login (username/password) is only sent over an encrypted "
                          "connection; set tls to starttls or ssl")
    if cfg.get("password") and not cfg.get("username"):
        raise ConfigError("release_notify_email: password given without username")
    port = cfg.get("smtp_port") or {"none": 25, "starttls": 587, "ssl": 465}[tls]
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ConfigError("release_notify_email.smtp_port must be a number, got %r" % port) from None
    return {"to": [str(a) for a in to], "from": str(cfg["from"]), "smtp_host": str(cfg["smtp_host"]),
            "smtp_port": port, "tls": tls, "username": cfg.get("username") or "",
            "password": cfg.get("password") or "", "validate_certs": cfg.get("validate_certs", True) is not False,
            "ca_file": cfg.get("ca_file") or ""}


def webhook_settings(webhooks):
    """Pure: the webhook URLs, or ConfigError naming the bad one (by its redacted form)."""
    urls = []
    for url in webhooks or []:
        url = str(url or "").strip()
        if not url:
            continue
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("release_notify_webhooks: %s is not an http(s) URL" % redact_url(url))
        urls.append(url)
    return urls


# -- Drivers -----------------------------------------------------------------------------------------------------
def _failure_text(exc, timeout):
    if isinstance(exc, (socket.timeout, TimeoutError)) or "timed out" in str(exc):
        return "timed out after %g s" % timeout, False
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d %s" % (exc.code, exc.reason), exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        return _failure_text(exc.reason, timeout) if isinstance(exc.reason, Exception) else (str(exc.reason), True)
    if isinstance(exc, smtplib.SMTPResponseException):
        message = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return "SMTP %d %s" % (exc.smtp_code, " ".join(str(message).split())), exc.smtp_code >= 400 and \
            exc.smtp_code < 500
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % exc, False
    return "%s: %s" % (type(exc).__name__, exc), isinstance(exc, (ConnectionError, OSError))


def post_webhook(url, payload, timeout):
    """POST the JSON `payload`; returns the status text, raises on failure."""
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": "dbrelease-notify"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read(4096)
        return "HTTP %d" % response.status


def _tls_context(cfg):
    context = ssl.create_default_context(cafile=cfg["ca_file"] or None)
    if not cfg["validate_certs"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send_mail(cfg, subject, text, timeout):
    """Send one plain-text mail as `cfg` says; returns the status text, raises on failure."""
    message = email.message.EmailMessage()
    message["Subject"] = subject
    message["From"] = cfg["from"]
    message["To"] = ", ".join(cfg["to"])
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain="dbrelease")
    message.set_content(text)
    if cfg["tls"] == "ssl":
        smtp = smtplib.SMTP_SSL(cfg["smtp_host"], cfg["smtp_port"], timeout=timeout, context=_tls_context(cfg))
    else:
        smtp = smtplib.SMTP(cfg["smtp_host"], cfg["smtp_port"], timeout=timeout)
    try:
        smtp.ehlo()
        if cfg["tls"] == "starttls":
            smtp.starttls(context=_tls_context(cfg))
            smtp.ehlo()
        if cfg["username"]:
            smtp.login(cfg["username"], cfg["password"])
        refused = smtp.send_message(message)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)
    return "accepted for %d recipient(s)" % len(cfg["to"])


def _deliver(driver, target, send, timeout, attempts, secrets):
    started = time.monotonic()
    entry = {"driver": driver, "target": target, "ok": False, "status": "", "error": "", "attempts": 0}
    for attempt in range(1, max(1, attempts) + 1):
        entry["attempts"] = attempt
        try:
            entry["status"] = send()
            entry["ok"] = True
            entry["error"] = ""
            break
        except Exception as exc:  # every failure is recorded, none is raised: a notifier never fails the release
            text, retry = _failure_text(exc, timeout)
            entry["error"] = mask(" ".join(text.split()), secrets)[:300]
            if not retry or attempt >= attempts:
                break
            time.sleep(1)
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


def deliver(summary, webhooks, email_cfg, timeout=10.0, attempts=2, secrets=(), send=True):
    """Send `summary` to every driver; returns the deliveries (ok None when `send` is false)."""
    secrets = list(secrets or ()) + list(webhooks or ()) + [(email_cfg or {}).get("password", "")]
    deliveries = []
    payload = {"title": summary["title"], "text": summary["text"], "dbrelease": summary["fields"]}
    for url in webhooks:
        target = redact_url(url)
        if not send:
            deliveries.append({"driver": "webhook", "target": target, "ok": None, "status": "not sent",
                               "error": "", "attempts": 0, "seconds": 0.0})
            continue
        deliveries.append(_deliver("webhook", target, lambda url=url: post_webhook(url, payload, timeout),
                                   timeout, attempts, secrets))
    if email_cfg:
        target = "%s via %s:%d" % (", ".join(email_cfg["to"]), email_cfg["smtp_host"], email_cfg["smtp_port"])
        if not send:
            deliveries.append({"driver": "email", "target": target, "ok": None, "status": "not sent",
                               "error": "", "attempts": 0, "seconds": 0.0})
        else:
            deliveries.append(_deliver("email", target,
                                       lambda: send_mail(email_cfg, summary["title"], summary["text"], timeout),
                                       timeout, attempts, secrets))
    return deliveries


# -- The whole step ----------------------------------------------------------------------------------------------
def load_record(path, check_record=False):
    if not path:
        return {}
    name = "release.check.json" if check_record else "release.json"
    try:
        with open("%s/%s" % (path.rstrip("/"), name)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def notify(p, check_mode=False):
    """Validate, summarise, send as the parameters `p` say; returns the module result. Raises ConfigError."""
    webhooks = webhook_settings(p.get("webhooks"))
    email_cfg = email_settings(p.get("email"))
    unknown = sorted(set(p.get("events") or ()) - set(OUTCOMES))
    if unknown:
        raise ConfigError("release_notify_events: unknown %s; known: %s" % (", ".join(unknown), ", ".join(OUTCOMES)))
    secrets = [s for s in (p.get("redact") or ()) if s]
    result = {"changed": False, "event": p.get("event") or "finish", "deliveries": [], "sent": 0, "undelivered": 0,
              "skipped": ""}
    if p.get("validate_only"):
        result.update(outcome="", summary={}, record={}, skipped="validate_only: configuration is valid")
        return result
    record = load_record(p.get("path"), p.get("check_record"))
    summary = build_summary(result["event"], record, p.get("run_started") or "", p.get("check_record"),
                            p.get("approval_pending"), p.get("context"), secrets)
    result["outcome"] = summary["outcome"]
    result["summary"] = summary
    if not webhooks and not email_cfg:
        result["skipped"] = "no notification configured (release_notify_webhooks, release_notify_email)"
    elif summary["outcome"] == "dry_run":
        result["skipped"] = "a dry run notifies only when its plan waits for approval"
    elif p.get("events") and summary["outcome"] not in p["events"]:
        result["skipped"] = "%s is not in release_notify_events" % summary["outcome"]
    else:
        deliveries = deliver(summary, webhooks, email_cfg, p.get("timeout") or 10.0, p.get("attempts") or 1,
                             secrets, send=not check_mode)
        result["deliveries"] = deliveries
        result["sent"] = sum(1 for d in deliveries if d["ok"])
        result["undelivered"] = sum(1 for d in deliveries if d["ok"] is False)
        if check_mode:
            result["skipped"] = "check mode: nothing sent"
    result["record"] = {"event": result["event"], "outcome": summary["outcome"], "at": now_iso(),
                        "sent": result["sent"], "undelivered": result["undelivered"], "skipped": result["skipped"],
                        "deliveries": result["deliveries"]}
    return result


ARGUMENT_SPEC = dict(
    path=dict(type="path"),
    event=dict(type="str", default="finish", choices=["start", "finish", "refused", "rollback_start", "rollback",
                                                      "watch"]),
    events=dict(type="list", elements="str", default=[]),
    run_started=dict(type="str", default=""),
    check_record=dict(type="bool", default=False),
    approval_pending=dict(type="bool", default=False),
    context=dict(type="dict", default={}),
    webhooks=dict(type="list", elements="str", default=[], no_log=True),
    email=dict(type="dict", default={}, options={
        "to": dict(type="list", elements="str"),
        "from": dict(type="str"),
        "smtp_host": dict(type="str"),
        "smtp_port": dict(type="int"),
        "tls": dict(type="str", choices=["none", "starttls", "ssl"], default="none"),
        "username": dict(type="str"),
        "password": dict(type="str", no_log=True),
        "validate_certs": dict(type="bool", default=True),
        "ca_file": dict(type="path"),
    }),
    timeout=dict(type="float", default=10.0),
    attempts=dict(type="int", default=2),
    redact=dict(type="list", elements="str", default=[], no_log=True),
    validate_only=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = notify(module.params, module.check_mode)
    except ConfigError as exc:
        module.fail_json(msg=str(exc))
    for entry in result["deliveries"]:
        if entry["ok"] is False:
            module.warn("the %s notification to %s was not delivered: %s (the release goes on; recorded)" % (
                result["outcome"], entry["target"], entry["error"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
