#!/usr/bin/python
"""Ansible module: smoke-test HTTP endpoints (expected status and body), retried with exponential back-off."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smoke_check
short_description: Check HTTP endpoints for an expected status and body, retrying with back-off
description:
  - Requests each endpoint (C(GET) or C(HEAD) only, so the check never changes the application) and checks the
    status code and, optionally, that the body contains a string or matches a regular expression.
  - A failing endpoint is retried up to I(attempts) times in all, waiting I(delay) seconds, then I(delay) times
    I(backoff), and so on, each wait capped at I(max_delay). Endpoints are checked one after the other.
  - Returns one result per endpoint. With I(fail_on_error=false) the module reports failures without failing, so
    the caller can record them first.
options:
  endpoints:
    description: Endpoints to check.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description: Full URL (C(http) or C(https)).
        type: str
        required: true
      name:
        description: A short name for messages (default the URL).
        type: str
      status:
        description: Acceptable status codes.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: A string the body must contain.
        type: str
      body_regex:
        description: A Python regular expression the body must match (C(re.search)).
        type: str
      method:
        description: HTTP method.
        type: str
        choices: [GET, HEAD]
        default: GET
      timeout:
        description: Seconds to wait for each request (default I(timeout)).
        type: float
  attempts:
    description: Tries per endpoint, the first included (C(1) = no retry).
    type: int
    default: 5
  delay:
    description: Seconds to wait before the first retry.
    type: float
    default: 1
  backoff:
    description: Factor applied to the wait after each retry.
    type: float
    default: 2
  max_delay:
    description: Longest wait between two tries, in seconds.
    type: float
    default: 10
  headers:
    description: Extra request headers, hidden from logs since they may carry a token.
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for each request, for endpoints that do not set their own.
    type: float
    default: 5
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  fail_on_error:
    description:
      - Fail when an endpoint still fails after its last try.
      - With C(false), report the failure in C(results) and C(failed_endpoints) without failing.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Only C(GET) and C(HEAD) requests are made; they run in check mode too.
  diff_mode:
    support: none
author: dbrelease
"""

EXAMPLES = r"""
- name: Smoke-test the application
  smoke_check:
    endpoints:
      - url: http://app.internal:3000/health
        status: [200]
        body_contains: '"status":"ok"'
      - url: http://app.internal:3000/version
        body_regex: 'v\d+\.\d+'
    attempts: 5
    delay: 1
    backoff: 2
  delegate_to: localhost
"""

RETURN = r"""
results:
  description: One entry per endpoint, in order.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: health, url: "http://127.0.0.1:3000/health", ok: true, status: 200, attempts: 2,
       elapsed_seconds: 1.02, reason: "status 200, body contains '\"status\":\"ok\"'"}
passed:
  description: Number of endpoints that passed.
  returned: always
  type: int
failed_endpoints:
  description: Names of the endpoints that failed after their last try.
  returned: always
  type: list
  elements: str
record:
  description: What the release record keeps (phases.verify.smoke) - C(passed), C(failed_endpoints), C(results).
  returned: always
  type: dict
"""

import re
import ssl
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

BODY_LIMIT = 1024 * 1024


def request(url, method, timeout, headers, validate_certs):
    """(status, body_text) or (None, error text). Never raises for HTTP or network errors."""
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    context = None
    if url.lower().startswith("https") and not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:  # noqa: S310 (http(s) only)
            return resp.status, resp.read(BODY_LIMIT).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        body = exc.read(BODY_LIMIT).decode("utf-8", "replace") if exc.fp else ""
        return exc.code, body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, "%s" % reason


def judge(endpoint, status, body):
    """(ok, reason) for one response. Pure."""
    if status is None:
        return False, "no response: %s" % body
    if status not in endpoint["status"]:
        return False, "status %s, expected %s" % (status, " or ".join(str(s) for s in endpoint["status"]))
    if endpoint.get("body_contains") and endpoint["body_contains"] not in body:
        return False, "status %s but the body does not contain %r" % (status, endpoint["body_contains"])
    if endpoint.get("body_regex") and not re.search(endpoint["body_regex"], body):
        return False, "status %s but the body does not match /%s/" % (status, endpoint["body_regex"])
    checks = ["status %s" % status]
    if endpoint.get("body_contains"):
        checks.append("body contains %r" % endpoint["body_contains"])
    if endpoint.get("body_regex"):
        checks.append("body matches /%s/" % endpoint["body_regex"])
    return True, ", ".join(checks)


def waits(attempts, delay, backoff, max_delay):
    """The waits between tries: attempts-1 of them, growing by `backoff`, capped at `max_delay`. Pure."""
    out, wait = [], delay
    for _ in range(max(0, attempts - 1)):
        out.append(min(wait, max_delay))
        wait *= backoff
    return out


def check(endpoint, attempts, delay, backoff, max_delay, headers, validate_certs, timeout=5, sleep=time.sleep):
    started = time.monotonic()
    pauses = waits(attempts, delay, backoff, max_delay)
    tries = 0
    while True:
        tries += 1
        status, body = request(endpoint["url"], endpoint["method"], endpoint["timeout"] or timeout, headers,
                               validate_certs)
        ok, reason = judge(endpoint, status, body)
        if ok or tries >= attempts:
            break
        sleep(pauses[tries - 1])
    return {"name": endpoint.get("name") or endpoint["url"], "url": endpoint["url"], "ok": ok, "status": status,
            "attempts": tries, "elapsed_seconds": round(time.monotonic() - started, 3), "reason": reason}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type="list", elements="dict", required=True, options=dict(
                url=dict(type="str", required=True),
                name=dict(type="str"),
                status=dict(type="list", elements="int", default=[200]),
                body_contains=dict(type="str"),
                body_regex=dict(type="str"),
                method=dict(type="str", choices=["GET", "HEAD"], default="GET"),
                timeout=dict(type="float"),
            )),
            attempts=dict(type="int", default=5),
            delay=dict(type="float", default=1),
            backoff=dict(type="float", default=2),
            max_delay=dict(type="float", default=10),
            headers=dict(type="dict", default={}, no_log=True),
            timeout=dict(type="float", default=5),
            validate_certs=dict(type="bool", default=True),
            fail_on_error=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["attempts"] < 1:
        module.fail_json(msg="smoke_check: attempts must be at least 1, got %d" % p["attempts"])
    for endpoint in p["endpoints"]:
        if not re.match(r"^https?://", endpoint["url"], re.I):
            module.fail_json(msg="smoke_check: endpoint URL %r must start with http:// or https://" % endpoint["url"])
        if endpoint.get("body_regex"):
            try:
                re.compile(endpoint["body_regex"])
            except re.error as exc:
                module.fail_json(msg="smoke_check: body_regex %r of %s is not a valid regular expression: %s"
                                 % (endpoint["body_regex"], endpoint["url"], exc))
    results = [check(e, p["attempts"], p["delay"], p["backoff"], p["max_delay"], p["headers"], p["validate_certs"],
                     p["timeout"]) for e in p["endpoints"]]
    failed = [r["name"] for r in results if not r["ok"]]
    outcome = dict(changed=False, results=results, passed=len(results) - len(failed), failed_endpoints=failed)
    outcome["record"] = {"smoke": {"passed": outcome["passed"], "failed_endpoints": failed, "results": results}}
    if failed and p["fail_on_error"]:
        module.fail_json(msg="smoke test failed: " + "; ".join(
            "%s: %s after %d tries" % (r["name"], r["reason"], r["attempts"]) for r in results if not r["ok"]),
            **outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
