"""Filter plugin: outbox_health, a verdict on outbox and refresh-token health, compared with a baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
name: outbox_health
short_description: Verdict (ok, warn, fail) on outbox and refresh-token health, with reasons in plain words
description:
  - Takes the numbers the C(outbox_stats) module reports (counts per notion, age of the oldest pending event,
    deliveries and failures in the last minutes, dead letters, revoked refresh tokens), thresholds, an optional
    baseline (the same numbers captured before the schema phase) and the tables the release must leave in place.
  - Returns C(verdict) (C(ok), C(warn) or C(fail)) and C(reasons), one plain-English sentence per finding.
  - "Fails on: a growing backlog (pending events above the baseline by more than C(backlog_growth_fail)); a stalled
    relay (oldest pending event older than C(oldest_pending_fail_seconds)); a jump in failures or dead letters
    (above the baseline by more than C(failures_increase_fail) / C(dead_letters_increase_fail)); a migration that
    revoked many refresh tokens (revoked tokens above the baseline by more than C(revoked_tokens_increase_fail))."
  - Each C(*_fail) threshold has a C(*_warn) companion; a value above the warn limit but not the fail limit warns.
    A value must be strictly greater than a limit to trip it.
  - "A number the table cannot provide (listed in the stats' C(unavailable), with the reason) makes the checks that
    need it C(n/a): they are listed in C(not_available) with that reason and the verdict uses the other checks."
  - Status values that map to no notion give C(unmapped_status_verdict) (default C(warn)), since their events are in no
    check. Settings that name a column or table that does not exist warn.
  - Without a baseline only absolute checks are possible, and the verdict is at least C(warn) saying so. The
    stalled-relay check is absolute anyway; for the others the filter falls back to the numbers of the recent
    window (failures, dead letters and revocations in the last C(window_minutes)).
  - "A table missing at verification: C(missing_table_verdict) (default C(fail)) when it existed at the baseline
    (the release dropped it) or is in I(expect) (the release creates it, or the user requires it); otherwise the
    checks of that table are not applicable, said so in C(not_applicable), and the verdict rests on the rest. A
    table missing from the baseline but present now counts as empty at the baseline."
  - Pure function; raises an error naming the bad input (unknown threshold, negative or non-numeric value).
positional: thresholds, baseline, expect
options:
  _input:
    description: The stats, as returned by the C(outbox_stats) module (keys C(outbox) and C(refresh_tokens)).
    type: dict
    required: true
  thresholds:
    description:
      - Limits, merged over the defaults below. An unknown key is an error (it is most likely a typo).
      - C(oldest_pending_fail_seconds) (600) / C(oldest_pending_warn_seconds) (120);
        C(backlog_growth_fail) (1000) / C(backlog_growth_warn) (100);
        C(failures_increase_fail) (50) / C(failures_increase_warn) (5);
        C(dead_letters_increase_fail) (10) / C(dead_letters_increase_warn) (0);
        C(revoked_tokens_increase_fail) (100) / C(revoked_tokens_increase_warn) (10);
        C(idle_relay_verdict) (C(warn)) when events are pending and none was delivered in the window (C(ok) to
        ignore); C(missing_table_verdict) (C(fail)); C(unmapped_status_verdict) (C(warn)).
    type: dict
    default: {}
  baseline:
    description: The stats captured before the schema phase, same shape as the input. Empty or null when none.
    type: dict
    default: {}
  expect:
    description: Names of the tables that must exist at verification (those the release's DDL creates, or that
      the user requires). A listed table that is missing gives C(missing_table_verdict).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Evaluate outbox health against the baseline
  ansible.builtin.set_fact:
    __verify_health: "{{ __verify_stats | outbox_health(verify_thresholds, __verify_baseline, ['outbox']) }}"
# __verify_health:
#   verdict: fail
#   reasons:
#     - "The outbox backlog grew from 3 to 2503 pending events (+2500), above the limit of +1000
#        (backlog_growth_fail)."
#   not_available:
#     - "Not available here: the idle-relay check (deliveries in the window): the table has no delivered_at column
#        (looked for delivered_at, sent_at, ...; set verify_outbox_columns.delivered_at)."
"""

RETURN = r"""
_value:
  description: The verdict and its reasons.
  type: dict
  contains:
    verdict:
      description: C(ok), C(warn) or C(fail), the worst level of any check.
      type: str
    reasons:
      description: One plain-English sentence per check that warned or failed, or one sentence saying all is well.
      type: list
      elements: str
    not_available:
      description: One sentence per check that could not run on this table, with the reason.
      type: list
      elements: str
    not_applicable:
      description: One sentence per table whose checks do not apply (absent, and not created by the release).
      type: list
      elements: str
    checks:
      description: Every check with C(name), C(level) (C(ok), C(warn), C(fail) or C(n/a)), C(value), C(warn) and
        C(fail) limits, and C(reason) (its sentence; empty when it passed).
      type: list
      elements: dict
    baseline_used:
      description: Whether a baseline was given and compared against.
      type: bool
"""

from ansible.errors import AnsibleFilterError

DEFAULT_THRESHOLDS = {
    "oldest_pending_fail_seconds": 600,
    "oldest_pending_warn_seconds": 120,
    "backlog_growth_fail": 1000,
    "backlog_growth_warn": 100,
    "failures_increase_fail": 50,
    "failures_increase_warn": 5,
    "dead_letters_increase_fail": 10,
    "dead_letters_increase_warn": 0,
    "revoked_tokens_increase_fail": 100,
    "revoked_tokens_increase_warn": 10,
    "idle_relay_verdict": "warn",
    "missing_table_verdict": "fail",
    "unmapped_status_verdict": "warn",
}
_VERDICT_KEYS = ("idle_relay_verdict", "missing_table_verdict", "unmapped_status_verdict")
_LEVELS = {"ok": 0, "warn": 1, "fail": 2}
NA = "n/a"

_OUTBOX_NUMBERS = ("pending", "failed", "dead")
_OUTBOX_RECENT = ("delivered_recent", "failed_recent", "dead_recent")
_TOKEN_NUMBERS = ("revoked", "revoked_recent", "total")


def _number(value, where, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value) if "." in str(value) else int(str(value))
        except (TypeError, ValueError):
            raise AnsibleFilterError("outbox_health: %s must be a number, got %r" % (where, value)) from None
    if value < 0:
        raise AnsibleFilterError("outbox_health: %s must not be negative, got %r" % (where, value))
    return value


def _thresholds(thresholds):
    if thresholds is None:
        thresholds = {}
    if not isinstance(thresholds, dict):
        raise AnsibleFilterError("outbox_health: thresholds must be a dict, got %s" % type(thresholds).__name__)
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise AnsibleFilterError("outbox_health: unknown threshold(s) %s; known: %s"
                                 % (", ".join(unknown), ", ".join(sorted(DEFAULT_THRESHOLDS))))
    merged = dict(DEFAULT_THRESHOLDS, **thresholds)
    for key, value in merged.items():
        if key in _VERDICT_KEYS:
            if value not in _LEVELS:
                raise AnsibleFilterError("outbox_health: thresholds.%s must be ok, warn or fail, got %r"
                                         % (key, value))
        else:
            merged[key] = _number(value, "thresholds.%s" % key)
    return merged


def _section(stats, name, where):
    """The `outbox` or `refresh_tokens` section, normalised: {present, table, numbers..., unavailable: {}}.

    A number listed in `unavailable` is left out; any other absent number counts as 0 (older records).
    """
    if not isinstance(stats, dict):
        raise AnsibleFilterError("outbox_health: %s must be a dict (the outbox_stats result), got %s"
                                 % (where, type(stats).__name__))
    section = stats.get(name)
    if section is None:
        raise AnsibleFilterError("outbox_health: %s has no '%s' section; pass the outbox_stats result" % (where, name))
    if not isinstance(section, dict):
        raise AnsibleFilterError("outbox_health: %s.%s must be a dict, got %s" % (where, name, type(section).__name__))
    unavailable = section.get("unavailable") or {}
    if not isinstance(unavailable, dict):
        raise AnsibleFilterError("outbox_health: %s.%s.unavailable must be a dict of number -> reason" % (where, name))
    present = bool(section.get("present", True))
    out = {"present": present, "unavailable": {str(k): str(v) for k, v in unavailable.items()},
           "table": str(section.get("table") or ("outbox" if name == "outbox" else "refresh_tokens")),
           "problems": [str(p) for p in section.get("problems") or []]}
    out["window_minutes"] = _number(section.get("window_minutes", 0) or 0, "%s.%s.window_minutes" % (where, name))
    if name == "outbox":
        counts = section.get("counts") or {}
        if not isinstance(counts, dict):
            raise AnsibleFilterError("outbox_health: %s.outbox.counts must be a dict" % where)
        for status in _OUTBOX_NUMBERS:
            if status not in out["unavailable"]:
                out[status] = _number(counts.get(status, 0) or 0, "%s.outbox.counts.%s" % (where, status))
        for key in _OUTBOX_RECENT:
            if key not in out["unavailable"]:
                out[key] = _number(section.get(key, 0) or 0, "%s.outbox.%s" % (where, key))
        if "oldest_pending_age_seconds" not in out["unavailable"]:
            out["oldest_pending_age_seconds"] = _number(section.get("oldest_pending_age_seconds"),
                                                        "%s.outbox.oldest_pending_age_seconds" % where,
                                                        allow_none=True)
        unmapped = section.get("unmapped") or {}
        if not isinstance(unmapped, dict):
            raise AnsibleFilterError("outbox_health: %s.outbox.unmapped must be a dict of status -> rows" % where)
        out["unmapped"] = {str(k): _number(v, "%s.outbox.unmapped.%s" % (where, k), allow_none=True)
                           for k, v in unmapped.items()}
        out["pending_estimated"] = bool(section.get("pending_estimated"))
        out["shape"] = section.get("shape") or "status"
        dlq = section.get("dead_letter_table") or {}
        dead_values = ((section.get("status_map") or {}).get("dead") if isinstance(section.get("status_map"), dict)
                       else None)
        if dead_values is None:
            dead_values = ["dead"] if out["shape"] == "status" else []
        where_dead = []
        if dead_values:
            where_dead.append("status %s" % "/".join("'%s'" % v for v in dead_values))
        if isinstance(dlq, dict) and dlq.get("table"):
            where_dead.append("table %s" % dlq["table"])
        out["dead_label"] = "dead letters (%s)" % " and ".join(where_dead) if where_dead else "dead letters"
    else:
        for key in _TOKEN_NUMBERS:
            if key not in out["unavailable"]:
                out[key] = _number(section.get(key, 0) or 0, "%s.refresh_tokens.%s" % (where, key))
    return out


def _level(value, warn, fail):
    if value is None:
        return "ok"
    if value > fail:
        return "fail"
    if value > warn:
        return "warn"
    return "ok"


def _plural(n, word):
    return "%s %s%s" % (_fmt(n), word, "" if n == 1 else "s")


def _fmt(n):
    if isinstance(n, float) and not n.is_integer():
        return "%.1f" % n
    return str(int(n))


def _upper_first(text):
    return text[0].upper() + text[1:] if text else text


class _Checks:
    """The list of checks being built, with the sentences of each kind."""

    def __init__(self):
        self.items = []
        self.not_available = []
        self.not_applicable = []

    def add(self, name, level, sentence, value=None, warn=None, fail=None):
        self.items.append({"name": name, "level": level, "value": value, "warn": warn, "fail": fail,
                           "reason": sentence})

    def unavailable(self, name, what, reason):
        sentence = "Not available here: %s (%s): %s." % (what, name, reason.rstrip("."))
        self.add(name, NA, sentence)
        self.not_available.append(sentence)

    def inapplicable(self, name, sentence):
        self.add(name, NA, sentence)
        self.not_applicable.append(sentence)


def _table_state(now, base, has_baseline, expect, kind, database, limits, checks, name):
    """Whether the table's checks run: True; or False after adding the missing / not-applicable check."""
    if now["present"]:
        return True
    table = now["table"]
    if has_baseline and base["present"]:
        checks.add(name, limits["missing_table_verdict"],
                   "The %s table %s existed at the baseline and is gone now: the release dropped it?" % (kind, table))
    elif table in expect:
        checks.add(name, limits["missing_table_verdict"],
                   "The %s table %s does not exist, but this release was to create it (or verify requires it), so "
                   "%s health could not be checked." % (kind, table, kind))
    else:
        checks.inapplicable(name, "Not applicable: %s has no %s table %s and this release does not create one, "
                                  "so the %s checks did not run." % (database, kind, table, kind))
    return False


def _delta_check(checks, name, what, label, now, base, base_present, key, recent_key, window_text, limits, prefix,
                 question="", rose=None, recent_label=None):
    """A "rose above the baseline" check, falling back to the recent window without a baseline.

    `rose`: the sentence's start with a baseline, formatted with before, now and delta (default "The number of
    <label> rose from B to N (+D)")."""
    warn, fail = limits[prefix + "_warn"], limits[prefix + "_fail"]
    if base is not None:
        missing = now["unavailable"].get(key) or (base["unavailable"].get(key) if base_present else None)
        if missing:
            checks.unavailable(name, what, missing)
            return
        before = base[key] if base_present else 0
        delta = now[key] - before
        start = (rose or "The number of %s rose from {before} to {now} (+{delta})" % label).format(
            before=_fmt(before), now=_fmt(now[key]), delta=_fmt(delta))
        sentence = "%s, above the %%s limit of +%%s (%s_%%s)%s." % (start, prefix, question)
    else:
        if recent_key in now["unavailable"]:
            checks.unavailable(name, what + " in the window", now["unavailable"][recent_key])
            return
        delta = now[recent_key]
        sentence = _upper_first("%s %s %s, above the %%s limit of %%s (%s_%%s)%s." % (
            _fmt(delta), recent_label or label + " were created", window_text, prefix, question))
    level = _level(delta, warn, fail)
    checks.add(name, level, sentence % (level, _fmt(limits[prefix + "_" + level]), level) if level != "ok" else "",
               delta, warn, fail)


def _outbox_checks(checks, now, base, has_baseline, limits, window_text, window):
    unavailable = now["unavailable"]
    for problem in now["problems"]:
        checks.add("outbox_settings", "warn", "Outbox setting not usable: %s." % problem.rstrip("."))
    unmapped = now["unmapped"]
    if unmapped:
        listed = ", ".join("'%s'%s" % (value, "" if rows is None else " (%s)" % _plural(rows, "row"))
                           for value, rows in sorted(unmapped.items()))
        checks.add("unmapped_status", limits["unmapped_status_verdict"],
                   "Outbox status values that no notion covers: %s; their events are in none of the checks: map "
                   "them in verify_outbox_status_map (pending, delivered, failed, dead or ignored)." % listed,
                   sorted(unmapped))

    if "oldest_pending_age_seconds" in unavailable:
        checks.unavailable("stalled_relay", "the age of the oldest pending event", unavailable[
            "oldest_pending_age_seconds"])
    else:
        age = now["oldest_pending_age_seconds"]
        level = _level(age, limits["oldest_pending_warn_seconds"], limits["oldest_pending_fail_seconds"])
        sentence = ""
        if level != "ok":
            sentence = ("The oldest pending outbox event is %s old, above the %s limit of %s "
                        "(oldest_pending_%s_seconds): the relay looks %s." % (
                            _plural(age, "second"), level, _plural(limits["oldest_pending_%s_seconds" % level],
                                                                   "second"),
                            level, "stalled" if level == "fail" else "slow"))
        checks.add("stalled_relay", level, sentence, age, limits["oldest_pending_warn_seconds"],
                   limits["oldest_pending_fail_seconds"])

    missing = unavailable.get("pending") or unavailable.get("delivered_recent")
    if missing:
        checks.unavailable("idle_relay", "whether events wait while none is delivered", missing)
    elif now["pending"] > 0 and now["delivered_recent"] == 0 and window:
        pending = now["pending"]
        checks.add("idle_relay", limits["idle_relay_verdict"],
                   "No outbox event was delivered %s while %s waiting."
                   % (window_text, "1 event is" if pending == 1 else "%s events are" % _fmt(pending)),
                   now["delivered_recent"])

    if has_baseline:
        base_present = base["present"]
        missing = unavailable.get("pending") or (base["unavailable"].get("pending") if base_present else None)
        if missing:
            checks.unavailable("backlog_growth", "the number of pending events", missing)
        else:
            before = base["pending"] if base_present else 0
            growth = now["pending"] - before
            level = _level(growth, limits["backlog_growth_warn"], limits["backlog_growth_fail"])
            sentence = ""
            if level != "ok":
                sentence = ("The outbox backlog grew from %s to %s%s pending events (+%s), above the %s limit of +%s "
                            "(backlog_growth_%s)%s." % (
                                _fmt(before), "at least " if now["pending_estimated"] else "", _fmt(now["pending"]),
                                _fmt(growth), level, _fmt(limits["backlog_growth_" + level]), level,
                                "" if base_present else "; the table did not exist at the baseline"))
            checks.add("backlog_growth", level, sentence, growth, limits["backlog_growth_warn"],
                       limits["backlog_growth_fail"])

    base_section = base if has_baseline else None
    base_present = has_baseline and base["present"]
    _delta_check(checks, "failures_increase", "the number of failed events", "failed outbox events", now,
                 base_section, base_present, "failed", "failed_recent", window_text, limits, "failures_increase")
    _delta_check(checks, "dead_letters_increase", "the number of dead letters", now["dead_label"], now,
                 base_section, base_present, "dead", "dead_recent", window_text, limits, "dead_letters_increase")


def _summary(now_outbox, now_tokens, outbox_checked, tokens_checked, window_text, has_baseline):
    parts = []
    if outbox_checked:
        o = now_outbox
        if "pending" in o:
            age = o.get("oldest_pending_age_seconds")
            parts.append("%s pending%s" % (_fmt(o["pending"]), "" if age is None and "oldest_pending_age_seconds"
                                           in o["unavailable"] else " (oldest %s)" % _plural(age or 0, "second")))
        if "delivered_recent" in o:
            parts.append("%s delivered %s" % (_fmt(o["delivered_recent"]), window_text))
        for key in ("failed", "dead"):
            if key in o:
                parts.append("%s %s" % (_fmt(o[key]), key))
    if tokens_checked and "revoked" in now_tokens:
        parts.append("%s revoked tokens" % _fmt(now_tokens["revoked"]))
    subject = " and ".join(s for s, on in (("outbox", outbox_checked), ("refresh tokens", tokens_checked)) if on)
    if not subject:
        return "Nothing to judge: neither the outbox nor the refresh-token table is here (not applicable)."
    return "The %s %s healthy%s%s." % (
        subject, "is" if subject == "outbox" else "are", (": " + ", ".join(parts)) if parts else "",
        ", all within the limits compared with the baseline" if has_baseline and parts else "")


def outbox_health(stats, thresholds=None, baseline=None, expect=None):
    """Pure: the verdict on `stats` against `thresholds`, an optional `baseline` and the tables the release must
    leave in place (`expect`); see DOCUMENTATION."""
    limits = _thresholds(thresholds)
    if expect is None:
        expect = []
    if isinstance(expect, str) or not isinstance(expect, (list, tuple)):
        raise AnsibleFilterError("outbox_health: expect must be a list of table names, got %r" % (expect,))
    expect = [str(t) for t in expect]
    now_outbox = _section(stats, "outbox", "stats")
    now_tokens = _section(stats, "refresh_tokens", "stats")
    has_baseline = bool(baseline)
    base_outbox = base_tokens = None
    if has_baseline:
        base_outbox = _section(baseline, "outbox", "baseline")
        base_tokens = _section(baseline, "refresh_tokens", "baseline")
    database = stats.get("database") or "the database"
    checks = _Checks()

    window = now_outbox.get("window_minutes") or now_tokens.get("window_minutes") or 0
    window_text = "in the last %s" % _plural(window, "minute")

    outbox_checked = _table_state(now_outbox, base_outbox, has_baseline, expect, "outbox", database, limits, checks,
                                  "outbox_table")
    if outbox_checked:
        _outbox_checks(checks, now_outbox, base_outbox, has_baseline, limits, window_text, window)

    tokens_checked = _table_state(now_tokens, base_tokens, has_baseline, expect, "refresh-token", database, limits,
                                  checks, "refresh_tokens_table")
    if tokens_checked:
        for problem in now_tokens["problems"]:
            checks.add("refresh_tokens_settings", "warn", "Refresh-token setting not usable: %s." % problem)
        total = "" if "total" in now_tokens["unavailable"] else " of %s tokens" % _fmt(now_tokens["total"])
        _delta_check(checks, "revoked_tokens_increase", "the number of revoked refresh tokens",
                     "revoked refresh tokens", now_tokens, base_tokens, has_baseline and base_tokens["present"],
                     "revoked", "revoked_recent", window_text, limits, "revoked_tokens_increase",
                     question=": did a migration revoke them?",
                     rose="Revoked refresh tokens rose from {before} to {now} (+{delta}%s)" % total,
                     recent_label="refresh tokens were revoked")

    if not has_baseline and (outbox_checked or tokens_checked):
        checks.items.insert(0, {
            "name": "baseline", "level": "warn", "value": None, "warn": None, "fail": None,
            "reason": "No baseline was captured before the schema phase, so only absolute thresholds were checked; "
                      "run the schema phase first (the whole release, or --tags schema) to capture one."})

    judged = [c for c in checks.items if c["level"] in _LEVELS]
    verdict = max((c["level"] for c in judged), key=_LEVELS.get, default="ok")
    # Worst first, so the first reason is the one to read.
    reasons = [c["reason"] for level in ("fail", "warn") for c in judged if c["level"] == level and c["reason"]]
    if not reasons:
        reasons = [_summary(now_outbox, now_tokens, outbox_checked, tokens_checked, window_text, has_baseline)]
    return {
        "verdict": verdict,
        "reasons": reasons,
        "not_available": checks.not_available,
        "not_applicable": checks.not_applicable,
        "checks": checks.items,
        "baseline_used": has_baseline,
    }


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"outbox_health": outbox_health}
