"""The verification's figures in the Prometheus text exposition format (node_exporter's textfile collector).

Stdlib only: this runs on the database host. `render()` is pure; `write_textfile()` replaces the file with
`files.write_atomic` (a temporary file in the same directory, named `.<name>.<random>.tmp` so the collector, which
reads only `*.prom`, never sees it, flushed, then renamed), so the collector never reads half a file.
"""

from __future__ import annotations

import math
import re

from ansible.module_utils.dbrelease.files import write_atomic

VERDICT_VALUES = {"ok": 0, "warn": 1, "fail": 2}
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class Exposition:
    """Metric families in the order they are added; each family is written once with its HELP and TYPE."""

    def __init__(self, common_labels=None):
        self.common = dict(common_labels or {})
        self.families = {}

    def add(self, name, help_text, value, labels=None, kind="gauge"):
        if value is None:
            return
        if not _NAME.match(name):
            raise ValueError("invalid metric name %r" % name)
        family = self.families.setdefault(name, {"help": help_text, "type": kind, "samples": []})
        merged = dict(self.common, **(labels or {}))
        for key in merged:
            if not _LABEL.match(key) or key.startswith("__"):
                raise ValueError("invalid label name %r" % key)
        family["samples"].append((merged, value))

    def text(self) -> str:
        lines = []
        for name, family in self.families.items():
            lines.append("# HELP %s %s" % (name, escape_help(family["help"])))
            lines.append("# TYPE %s %s" % (name, family["type"]))
            for labels, value in family["samples"]:
                rendered = ",".join('%s="%s"' % (k, escape_label(v)) for k, v in sorted(labels.items()))
                lines.append("%s%s %s" % (name, "{%s}" % rendered if rendered else "", format_value(value)))
        return "\n".join(lines) + "\n"


def _num(section, key):
    value = (section or {}).get(key)
    return None if value is None else float(value)


def render(stats, baseline=None, verdict=None, log_counts=None, log_severities=None, version="", labels=None,
           now=None, watch_until=None):
    """Pure: the exposition text of one verification.

    `stats` and `baseline` are `outbox_stats` results, `verdict` the phase's verdict (ok, warn, fail), `log_counts`
    {pattern: lines} with `log_severities` {pattern: error|warning}, `labels` the labels every sample carries
    (database, environment), `now` and `watch_until` Unix times."""
    out = Exposition(labels)
    outbox = (stats or {}).get("outbox") or {}
    tokens = (stats or {}).get("refresh_tokens") or {}
    base_outbox = (baseline or {}).get("outbox") or {}
    base_tokens = (baseline or {}).get("refresh_tokens") or {}
    out.add("dbrelease_release_info", "The release being verified (value always 1).", 1, {"version": version})
    out.add("dbrelease_outbox_table_present", "Whether the outbox table exists (1) or not (0).",
            bool(outbox.get("present")))
    counts = outbox.get("counts") or {}
    for status in ("pending", "failed", "dead", "delivered"):
        if outbox.get("present"):
            out.add("dbrelease_outbox_events", "Outbox events per status (delivered may be the server's estimate).",
                    counts.get(status, 0), {"status": status})
    if outbox.get("present"):
        out.add("dbrelease_outbox_delivered_estimated",
                "Whether dbrelease_outbox_events{status=\"delivered\"} is the server's estimate (1).",
                bool(outbox.get("delivered_estimated")))
        out.add("dbrelease_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending outbox event in seconds (0 when none is pending).",
                outbox.get("oldest_pending_age_seconds") or 0)
        window = float(outbox.get("window_minutes") or 0) * 60
        out.add("dbrelease_outbox_window_seconds", "Length of the recent window the *_in_window figures cover.",
                window)
        out.add("dbrelease_outbox_delivered_in_window", "Outbox events delivered in the recent window.",
                _num(outbox, "delivered_recent"))
        out.add("dbrelease_outbox_failed_in_window", "Outbox events created in the recent window that are failed.",
                _num(outbox, "failed_recent"))
        out.add("dbrelease_outbox_dead_in_window", "Outbox events created in the recent window that are dead.",
                _num(outbox, "dead_recent"))
        if window:
            out.add("dbrelease_outbox_delivery_rate_per_second",
                    "Outbox events delivered per second over the recent window.",
                    (outbox.get("delivered_recent") or 0) / window)
        out.add("dbrelease_outbox_dead_letters", "Outbox dead letters (status dead).", _num(outbox, "dead_letters"))
    if base_outbox.get("present"):
        for status in ("pending", "failed", "dead"):
            out.add("dbrelease_outbox_baseline_events",
                    "Outbox events per status before the release's schema change (the baseline).",
                    (base_outbox.get("counts") or {}).get(status, 0), {"status": status})
    out.add("dbrelease_refresh_tokens_table_present", "Whether the refresh-token table exists (1) or not (0).",
            bool(tokens.get("present")))
    if tokens.get("present"):
        out.add("dbrelease_refresh_tokens_revoked", "Revoked refresh tokens.", _num(tokens, "revoked"))
        out.add("dbrelease_refresh_tokens_revoked_in_window", "Refresh tokens revoked in the recent window.",
                _num(tokens, "revoked_recent"))
        out.add("dbrelease_refresh_tokens", "Refresh tokens (may be the server's estimate).", _num(tokens, "total"))
    if base_tokens.get("present"):
        out.add("dbrelease_refresh_tokens_revoked_baseline", "Revoked refresh tokens before the schema change.",
                _num(base_tokens, "revoked"))
    if verdict in VERDICT_VALUES:
        out.add("dbrelease_verify_verdict", "The verification's verdict: 0 ok, 1 warn, 2 fail.",
                VERDICT_VALUES[verdict])
    severities = log_severities or {}
    for pattern, lines in sorted((log_counts or {}).items()):
        out.add("dbrelease_log_matched_lines",
                "Log lines per pattern counted by the verification (since the release started, or since the "
                "previous hourly check).", lines, {"pattern": pattern, "severity": severities.get(pattern, "error")})
    out.add("dbrelease_verify_last_run_timestamp_seconds", "When the verification read these figures (Unix time).",
            now)
    out.add("dbrelease_watch_end_timestamp_seconds", "When the post-release watch ends (Unix time).", watch_until)
    return out.text()


def write_textfile(path, text, mode=0o644):
    """Replace `path` with `text` atomically unless it already holds it; returns whether it was written."""
    try:
        with open(path, "rb") as handle:
            if handle.read() == text.encode():
                return False
    except FileNotFoundError:
        pass
    write_atomic(path, text, mode=mode)
    return True
