"""Filter plugin: outbox_health, a verdict on outbox and refresh-token health, compared with a baseline."""

from __future__ import annotations

DOCUMENTATION = r"""
name: outbox_health
short_description: Verdict (ok, warn, fail) on outbox and refresh-token health, with reasons in plain words
description:
  - Takes the numbers the C(outbox_stats) module reports (counts per status, age of the oldest pending event,
    deliveries and failures in the last minutes, dead letters, revoked refresh tokens), thresholds, and an optional
    baseline (the same numbers captured before the schema phase).
  - Returns C(verdict) (C(ok), C(warn) or C(fail)) and C(reasons), one plain-English sentence per finding.
  - "Fails on: a growing backlog (pending events above the baseline by more than C(backlog_growth_fail)); a stalled
    relay (oldest pending event older than C(oldest_pending_fail_seconds)); a jump in failures or dead letters
    (above the baseline by more than C(failures_increase_fail) / C(dead_letters_increase_fail)); a migration that
    revoked many refresh tokens (revoked tokens above the baseline by more than C(revoked_tokens_increase_fail))."
  - Each C(*_fail) threshold has a C(*_warn) companion; a value above the warn limit but not the fail limit warns.
    A value must be strictly greater than a limit to trip it.
  - Without a baseline only absolute checks are possible, and the verdict is at least C(warn) saying so. The
    stalled-relay check is absolute anyway; for the others the filter falls back to the numbers of the recent
    window (failures, dead letters and revocations in the last C(window_minutes)).
  - A table missing from the baseline (the DDL had not created it yet) counts as empty. A table missing at
    verification gives C(missing_table_verdict) (default C(fail)).
  - Pure function; raises an error naming the bad input (unknown threshold, negative or non-numeric value).
positional: thresholds, baseline
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
        ignore); C(missing_table_verdict) (C(fail)).
    type: dict
    default: {}
  baseline:
    description: The stats captured before the schema phase, same shape as the input. Empty or null when none.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Evaluate outbox health against the baseline
  ansible.builtin.set_fact:
    __verify_health: "{{ __verify_stats | outbox_health(verify_thresholds, __verify_baseline) }}"
# __verify_health:
#   verdict: fail
#   reasons:
#     - "The outbox backlog grew from 3 to 2503 pending events (+2500), above the limit of +1000
#        (backlog_growth_fail)."
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
    checks:
      description: Every check with C(name), C(level), C(value), C(warn) and C(fail) limits.
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
}
_VERDICT_KEYS = ("idle_relay_verdict", "missing_table_verdict")
_LEVELS = {"ok": 0, "warn": 1, "fail": 2}


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
    """The `outbox` or `refresh_tokens` section, normalised: {present, numbers...}. Absent/empty counts as 0."""
    if not isinstance(stats, dict):
        raise AnsibleFilterError("outbox_health: %s must be a dict (the outbox_stats result), got %s"
                                 % (where, type(stats).__name__))
    section = stats.get(name)
    if section is None:
        raise AnsibleFilterError("outbox_health: %s has no '%s' section; pass the outbox_stats result" % (where, name))
    if not isinstance(section, dict):
        raise AnsibleFilterError("outbox_health: %s.%s must be a dict, got %s" % (where, name, type(section).__name__))
    present = bool(section.get("present", True))
    out = {"present": present}
    if name == "outbox":
        counts = section.get("counts") or {}
        if not isinstance(counts, dict):
            raise AnsibleFilterError("outbox_health: %s.outbox.counts must be a dict" % where)
        for status in ("pending", "failed", "dead"):
            out[status] = _number(counts.get(status, 0) or 0, "%s.outbox.counts.%s" % (where, status))
        for key in ("delivered_recent", "failed_recent", "dead_recent"):
            out[key] = _number(section.get(key, 0) or 0, "%s.outbox.%s" % (where, key))
        out["oldest_pending_age_seconds"] = _number(section.get("oldest_pending_age_seconds"),
                                                    "%s.outbox.oldest_pending_age_seconds" % where, allow_none=True)
        out["window_minutes"] = _number(section.get("window_minutes", 0) or 0, "%s.outbox.window_minutes" % where)
    else:
        for key in ("revoked", "revoked_recent", "total"):
            out[key] = _number(section.get(key, 0) or 0, "%s.refresh_tokens.%s" % (where, key))
        out["window_minutes"] = _number(section.get("window_minutes", 0) or 0,
                                        "%s.refresh_tokens.window_minutes" % where)
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


def outbox_health(stats, thresholds=None, baseline=None):
    """Pure: the verdict on `stats` against `thresholds` and an optional `baseline` (see DOCUMENTATION)."""
    limits = _thresholds(thresholds)
    now_outbox = _section(stats, "outbox", "stats")
    now_tokens = _section(stats, "refresh_tokens", "stats")
    has_baseline = bool(baseline)
    if has_baseline:
        base_outbox = _section(baseline, "outbox", "baseline")
        base_tokens = _section(baseline, "refresh_tokens", "baseline")
    checks = []

    def add(name, level, sentence, value=None, warn=None, fail=None):
        checks.append({"name": name, "level": level, "value": value, "warn": warn, "fail": fail,
                       "reason": sentence})

    if not has_baseline:
        add("baseline", "warn",
            "No baseline was captured before the schema phase, so only absolute thresholds were checked; "
            "run the schema phase first (the whole release, or --tags schema) to capture one.")

    window = now_outbox.get("window_minutes") or now_tokens.get("window_minutes") or 0
    window_text = "in the last %s" % _plural(window, "minute")

    # -- outbox ------------------------------------------------------------------------------------------------
    if not now_outbox["present"]:
        add("outbox_table", limits["missing_table_verdict"],
            "The outbox table does not exist, so outbox health could not be checked.")
    else:
        age = now_outbox["oldest_pending_age_seconds"]
        level = _level(age, limits["oldest_pending_warn_seconds"], limits["oldest_pending_fail_seconds"])
        if level != "ok":
            add("stalled_relay", level,
                "The oldest pending outbox event is %s old, above the %s limit of %s (oldest_pending_%s_seconds): "
                "the relay looks %s." % (_plural(age, "second"), level,
                                         _plural(limits["oldest_pending_%s_seconds" % level], "second"), level,
                                         "stalled" if level == "fail" else "slow"),
                age, limits["oldest_pending_warn_seconds"], limits["oldest_pending_fail_seconds"])
        else:
            add("stalled_relay", "ok", "", age, limits["oldest_pending_warn_seconds"],
                limits["oldest_pending_fail_seconds"])

        pending = now_outbox["pending"]
        if pending > 0 and now_outbox["delivered_recent"] == 0 and window:
            add("idle_relay", limits["idle_relay_verdict"],
                "No outbox event was delivered %s while %s waiting."
                % (window_text, "1 event is" if pending == 1 else "%s events are" % _fmt(pending)),
                now_outbox["delivered_recent"])

        if has_baseline:
            before = base_outbox["pending"] if base_outbox["present"] else 0
            growth = now_outbox["pending"] - before
            level = _level(growth, limits["backlog_growth_warn"], limits["backlog_growth_fail"])
            sentence = ""
            if level != "ok":
                sentence = ("The outbox backlog grew from %s to %s pending events (+%s), above the %s limit of +%s "
                            "(backlog_growth_%s)%s." % (
                                _fmt(before), _fmt(now_outbox["pending"]), _fmt(growth), level,
                                _fmt(limits["backlog_growth_" + level]), level,
                                "" if base_outbox["present"] else "; the table did not exist at the baseline"))
            add("backlog_growth", level, sentence, growth, limits["backlog_growth_warn"], limits["backlog_growth_fail"])

        for key, label, base_key, recent_key in (
            ("failures_increase", "failed outbox events", "failed", "failed_recent"),
            ("dead_letters_increase", "dead letters (status 'dead')", "dead", "dead_recent"),
        ):
            warn, fail = limits[key + "_warn"], limits[key + "_fail"]
            if has_baseline:
                before = base_outbox[base_key] if base_outbox["present"] else 0
                delta = now_outbox[base_key] - before
                sentence = "The number of %s rose from %s to %s (+%s), above the %%s limit of +%%s (%s_%%s)." % (
                    label, _fmt(before), _fmt(now_outbox[base_key]), _fmt(delta), key)
            else:
                delta = now_outbox[recent_key]
                sentence = "%s %s were created %s, above the %%s limit of %%s (%s_%%s)." % (
                    _fmt(delta), label, window_text, key)
                sentence = sentence[0].upper() + sentence[1:]
            level = _level(delta, warn, fail)
            add(key, level, sentence % (level, _fmt(limits[key + "_" + level]), level) if level != "ok" else "",
                delta, warn, fail)

    # -- refresh tokens ----------------------------------------------------------------------------------------
    if not now_tokens["present"]:
        add("refresh_tokens_table", limits["missing_table_verdict"],
            "The refresh_tokens table does not exist, so revoked tokens could not be checked.")
    else:
        warn, fail = limits["revoked_tokens_increase_warn"], limits["revoked_tokens_increase_fail"]
        if has_baseline:
            before = base_tokens["revoked"] if base_tokens["present"] else 0
            delta = now_tokens["revoked"] - before
            sentence = ("Revoked refresh tokens rose from %s to %s (+%s of %s tokens), above the %%s limit of +%%s "
                        "(revoked_tokens_increase_%%s): did a migration revoke them?"
                        % (_fmt(before), _fmt(now_tokens["revoked"]), _fmt(delta), _fmt(now_tokens["total"])))
        else:
            delta = now_tokens["revoked_recent"]
            sentence = ("%s refresh tokens were revoked %s, above the %%s limit of %%s "
                        "(revoked_tokens_increase_%%s): did a migration revoke them?" % (_fmt(delta), window_text))
        level = _level(delta, warn, fail)
        add("revoked_tokens_increase", level,
            sentence % (level, _fmt(limits["revoked_tokens_increase_" + level]), level) if level != "ok" else "",
            delta, warn, fail)

    verdict = max((c["level"] for c in checks), key=_LEVELS.get, default="ok")
    # Worst first, so the first reason is the one to read.
    reasons = [c["reason"] for level in ("fail", "warn") for c in checks if c["level"] == level and c["reason"]]
    if not reasons:
        reasons = ["The outbox and refresh tokens are healthy: %s pending (oldest %s), %s delivered %s, "
                   "%s failed, %s dead, %s revoked tokens%s." % (
                       _fmt(now_outbox.get("pending", 0)),
                       _plural(now_outbox.get("oldest_pending_age_seconds") or 0, "second"),
                       _fmt(now_outbox.get("delivered_recent", 0)), window_text,
                       _fmt(now_outbox.get("failed", 0)), _fmt(now_outbox.get("dead", 0)),
                       _fmt(now_tokens.get("revoked", 0)), ", all within the limits compared with the baseline"
                       if has_baseline else "")]
    return {
        "verdict": verdict,
        "reasons": reasons,
        "checks": [{k: v for k, v in c.items() if k != "reason"} for c in checks],
        "baseline_used": has_baseline,
    }


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"outbox_health": outbox_health}
