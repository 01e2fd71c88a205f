"""Notifications of a release: what is said (the summary, from the release record) and the drivers that say it
(a JSON webhook that Slack and Teams accept, e-mail over SMTP). Stdlib only.

Used by the `release_notify` module and its action plugin (in Ansible's worker process on the controller) and by
the `release_notify` callback, so that every notification, whoever sends it, is built and sent by this code.
A delivery that fails never raises: it is returned with its error (a notifier never fails the release).
"""

from __future__ import annotations

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

from ansible.module_utils.dbrelease.clock import parse_iso, utc_now_iso

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


# What an ended rollback did, by its mode (phases.rollback.mode; a record without one is a restore).
_ROLLED_BACK = {
    "restore": "the database is back at the release's backup",
    "pitr": "the database is back at the release's backup, with the binary logs replayed up to the release's "
            "first DDL",
    "schema": "the release's schema changes are reversed; the rows written since the release are kept",
}


class ConfigError(ValueError):
    """The notification configuration is invalid; the message names the setting."""


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


def _duration(started, finished):
    a, b = parse_iso(started), parse_iso(finished)
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
    # The phase that stopped this run, as the phase mechanism remembers it (dbrelease_run.failed): the record's
    # entry may have been rewritten since by the clean-up (maintenance switched off again records its phase ok).
    stopped = context.get("failed") or {}
    if stopped.get("phase") and event in ("finish", "rollback"):
        return "failure", "%s failed: %s" % (stopped["phase"], stopped.get("error") or "no error recorded")
    if event == "rollback":
        entry = ((record or {}).get("phases") or {}).get("rollback") or {}
        if entry.get("status") == "ok":
            return "rollback", _ROLLED_BACK.get(entry.get("mode") or "restore", _ROLLED_BACK["restore"])
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
    "refused": "not started: the release lock was not taken",
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
    stopped = context.get("failed") or {}
    failed_phase = stopped.get("phase") if event in ("finish", "rollback") else None
    failed_phase = failed_phase or next((name for name, entry in fresh if entry.get("status") == "failed"), None)
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
        lines.append("The lock phase said: %s. This run changed nothing." % clean(context["lock_holder"], secrets))
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
        "error": clean(stopped.get("error") or (phases.get(failed_phase) or {}).get("error"), secrets)
        if failed_phase else "",
        "phases": {name: entry.get("status") for name, entry in shown},
        "verdict": (verify.get("verdict") or "") if dict(fresh).get("verify") else "",
        "reasons": reasons if event == "finish" else [],
        "log_counts": dict(logs.get("counts") or {}),
        "maintenance": maintenance.get("state") or "",
        "report": context.get("report") or "",
        "awx_job_id": str(context.get("awx_job_id") or ""),
        "sent_at": utc_now_iso(),
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
def notify(p, record, send=True):
    """Validate, summarise `record`, send as the parameters `p` say (nothing when `send` is false); returns the
    module's result. Raises ConfigError on an invalid configuration."""
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
                             secrets, send=send)
        result["deliveries"] = deliveries
        result["sent"] = sum(1 for d in deliveries if d["ok"])
        result["undelivered"] = sum(1 for d in deliveries if d["ok"] is False)
        if not send:
            result["skipped"] = "check mode: nothing sent"
    result["record"] = {"event": result["event"], "outcome": summary["outcome"], "at": utc_now_iso(),
                        "sent": result["sent"], "undelivered": result["undelivered"], "skipped": result["skipped"],
                        "deliveries": result["deliveries"]}
    return result
