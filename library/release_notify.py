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
        C(refused) (this run's lock phase failed, usually because another run holds the release lock; nothing of
        this release was changed, and the other run is not said to have failed), C(rollback_start),
        C(rollback) (outcome from the record's C(rollback) phase), C(watch) (a scheduled verification found a
        regression, a recovery, or the end of the watch period).
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

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.notify import ConfigError, notify

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


def load_record(path, check_record=False):
    """The record to summarise; {} when there is none."""
    if not path:
        return {}
    try:
        with open(os.path.join(path, "release.check.json" if check_record else "release.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        result = notify(p, load_record(p["path"], p["check_record"]), send=not module.check_mode)
    except ConfigError as exc:
        module.fail_json(msg=str(exc))
    for entry in result["deliveries"]:
        if entry["ok"] is False:
            module.warn("the %s notification to %s was not delivered: %s (the release goes on; recorded)" % (
                result["outcome"], entry["target"], entry["error"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
