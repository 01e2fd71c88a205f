"""Filter plugin: log_health, a verdict on the new lines of the logs read during the watch."""

from __future__ import annotations

DOCUMENTATION = r"""
name: log_health
short_description: Verdict (ok, warn, fail) on the errors and warnings counted in the logs, with reasons
description:
  - Takes the result of the C(log_scan) module and the patterns it counted with (the same list, each pattern with
    its C(warn_above) and C(fail_above) limits) and returns C(verdict), C(reasons) and C(checks), in the shape of
    C(outbox_health).
  - A count must be strictly above a limit to trip it; a limit of null (or absent) never trips.
  - A log that does not exist or cannot be read gives I(missing_log_verdict); a server that logs to stderr (no
    file to read) and settings that keep lines out of the log are said in C(notes), not judged.
  - Pure function; raises an error naming the bad input.
positional: patterns, counts_key, missing_log_verdict
options:
  _input:
    description: The C(log_scan) result (C(files), C(counts), C(new_counts), C(server)).
    type: dict
    required: true
  patterns:
    description: The patterns, each C(name), C(severity), C(warn_above), C(fail_above).
    type: list
    elements: dict
    required: true
  counts_key:
    description: C(counts) judges the lines since the marks were taken (the release's start); C(new_counts) only
      those of this read (the hourly watch, since its previous run).
    type: str
    default: counts
  missing_log_verdict:
    description: Verdict for a log that does not exist or cannot be read (C(ok), C(warn), C(fail)).
    type: str
    default: warn
"""

EXAMPLES = r"""
- name: Judge the logs
  ansible.builtin.set_fact:
    __verify_log_health: "{{ __verify_log_scan | log_health(verify_log_patterns) }}"
# verdict: fail
# reasons: ["3 deadlock lines (server error log 2, app.log 1) since the release started, above the fail limit of 0
#            (verify_log_patterns: deadlock.fail_above)."]
"""

RETURN = r"""
_value:
  description: The verdict and its reasons.
  type: dict
  contains:
    verdict: {description: C(ok), C(warn) or C(fail)., type: str}
    reasons: {description: One sentence per pattern or log that warned or failed, or one saying all is well.,
              type: list, elements: str}
    checks: {description: Every pattern with C(name), C(level), C(value), C(warn), C(fail), C(per_file)., type: list}
    notes: {description: What could not be read or is kept out of the logs., type: list, elements: str}
    totals: {description: Lines per severity (C(error), C(warning))., type: dict}
"""

from ansible.errors import AnsibleFilterError

_LEVELS = {"ok": 0, "warn": 1, "fail": 2}
_SPAN = {"counts": "since the release started", "new_counts": "since the previous check"}


def _limit(pattern, key):
    value = pattern.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise AnsibleFilterError("log_health: %s.%s must be a number or null, got %r" % (pattern["name"], key, value))
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("log_health: %s.%s must be a number or null, got %r"
                                 % (pattern["name"], key, value)) from None
    if value < 0:
        raise AnsibleFilterError("log_health: %s.%s must not be negative, got %r" % (pattern["name"], key, value))
    return value


def log_health(scan, patterns, counts_key="counts", missing_log_verdict="warn"):
    """Pure: the verdict on the counts of `scan` against the limits of `patterns` (see DOCUMENTATION)."""
    if not isinstance(scan, dict):
        raise AnsibleFilterError("log_health: the input must be the log_scan result (a dict), got %s"
                                 % type(scan).__name__)
    if counts_key not in _SPAN:
        raise AnsibleFilterError("log_health: counts_key must be counts or new_counts, got %r" % counts_key)
    if missing_log_verdict not in _LEVELS:
        raise AnsibleFilterError("log_health: missing_log_verdict must be ok, warn or fail, got %r"
                                 % missing_log_verdict)
    if not isinstance(patterns, list) or not all(isinstance(p, dict) and p.get("name") for p in patterns):
        raise AnsibleFilterError("log_health: patterns must be a list of dicts with a name")
    files = scan.get("files") or []
    span = _SPAN[counts_key]
    checks, reasons_by_level, notes = [], {"fail": [], "warn": []}, []
    totals = {"error": 0, "warning": 0}
    for pattern in patterns:
        name = pattern["name"]
        warn, fail = _limit(pattern, "warn_above"), _limit(pattern, "fail_above")
        per_file = {f.get("name") or f.get("path"): int((f.get(counts_key) or {}).get(name, 0))
                    for f in files if (f.get(counts_key) or {}).get(name)}
        value = sum(per_file.values())
        totals["warning" if pattern.get("severity") == "warning" else "error"] += value
        level = "ok"
        if fail is not None and value > fail:
            level = "fail"
        elif warn is not None and value > warn:
            level = "warn"
        checks.append({"name": name, "level": level, "value": value, "warn": warn, "fail": fail,
                       "per_file": per_file})
        if level != "ok":
            where = ", ".join("%s %d" % (f, n) for f, n in sorted(per_file.items()))
            limit = fail if level == "fail" else warn
            reasons_by_level[level].append(
                "%d %s line%s (%s) %s, above the %s limit of %d (verify_log_patterns: %s.%s_above)." % (
                    value, name, "" if value == 1 else "s", where, span, level, limit, name, level))
    for entry in files:
        status = entry.get("status") or "ok"
        label = "%s %s" % (entry.get("kind") or "log", entry.get("path") or entry.get("name") or "?")
        if status in ("missing", "unreadable"):
            level = missing_log_verdict
            checks.append({"name": "log_readable", "level": level, "value": entry.get("path"), "warn": None,
                           "fail": None, "per_file": {}})
            sentence = "The %s was not read: %s." % (label, entry.get("note") or status)
            if level == "ok":
                notes.append(sentence)
            else:
                reasons_by_level[level].append(sentence)
        elif entry.get("note"):
            notes.append("%s: %s." % (label, entry["note"]))
    for hidden in (scan.get("server") or {}).get("hidden") or []:
        notes.append("Server settings: %s." % hidden)
    verdict = max((c["level"] for c in checks), key=_LEVELS.get, default="ok")
    reasons = reasons_by_level["fail"] + reasons_by_level["warn"]
    if not reasons:
        read = [f for f in files if (f.get("status") or "ok") in ("ok", "no_mark")]
        reasons = ["The logs are within the limits %s: %d error and %d warning line%s in %d log%s." % (
            span, totals["error"], totals["warning"], "" if totals["warning"] == 1 else "s", len(read),
            "" if len(read) == 1 else "s")]
    return {"verdict": verdict, "reasons": reasons, "checks": checks, "notes": notes, "totals": totals}


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"log_health": log_health}
