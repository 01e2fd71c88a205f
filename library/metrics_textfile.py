#!/usr/bin/python
"""Ansible module: write the verification's outbox and token figures for node_exporter's textfile collector."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: metrics_textfile
short_description: Write the outbox and refresh-token figures as a Prometheus textfile, atomically
description:
  - Renders the numbers of one verification (the C(outbox_stats) result, its baseline, the verdict, the log counts)
    in the Prometheus text exposition format and replaces I(path) with them atomically (a temporary file in the
    same directory, flushed, renamed), so node_exporter's textfile collector never reads half a file.
  - "Metrics (gauges; every sample carries I(labels)): C(dbrelease_outbox_events{status}),
    C(dbrelease_outbox_oldest_pending_age_seconds), C(dbrelease_outbox_delivered_in_window),
    C(dbrelease_outbox_delivery_rate_per_second), C(dbrelease_outbox_failed_in_window),
    C(dbrelease_outbox_dead_in_window), C(dbrelease_outbox_dead_letters), C(dbrelease_outbox_window_seconds),
    C(dbrelease_outbox_delivered_estimated),
    C(dbrelease_outbox_baseline_events{status}), C(dbrelease_refresh_tokens_revoked),
    C(dbrelease_refresh_tokens_revoked_in_window), C(dbrelease_refresh_tokens),
    C(dbrelease_refresh_tokens_revoked_baseline), C(dbrelease_outbox_table_present),
    C(dbrelease_refresh_tokens_table_present), C(dbrelease_verify_verdict) (0 ok, 1 warn, 2 fail),
    C(dbrelease_log_matched_lines{pattern,severity}), C(dbrelease_release_info{version}),
    C(dbrelease_verify_last_run_timestamp_seconds), C(dbrelease_watch_end_timestamp_seconds)."
  - The file is left alone when its content would be the same.
options:
  path:
    description: The file to write; its name must end in C(.prom) (what the collector reads) and its directory
      must exist (node_exporter's C(--collector.textfile.directory)).
    type: path
    required: true
  stats:
    description: The C(outbox_stats) result.
    type: dict
    required: true
  baseline:
    description: The C(outbox_stats) result captured before the schema change; empty when none.
    type: dict
    default: {}
  verdict:
    description: The verification's verdict (C(ok), C(warn), C(fail)); empty writes no verdict.
    type: str
    default: ""
  log_counts:
    description: Log lines per pattern, as C(log_scan) counts them.
    type: dict
    default: {}
  patterns:
    description: The log patterns (for each pattern's C(severity) label).
    type: list
    elements: dict
    default: []
  version:
    description: The release version.
    type: str
    default: ""
  labels:
    description: Labels every sample carries (for example C(database), C(environment)).
    type: dict
    default: {}
  watch_until:
    description: When the post-release watch ends, ISO 8601 or Unix time; empty writes no such metric.
    type: str
    default: ""
  mode:
    description: File mode (node_exporter must be able to read the file).
    type: raw
    default: "0644"
attributes:
  check_mode:
    support: full
    details: Renders the figures and says whether the file would change; writes nothing.
  diff_mode:
    support: full
    details: The old and new content of the file.
notes:
  - Every verification reads new figures, so with this file configured a verify run reports C(changed) (the file
    was rewritten) unless every figure is the same as last time.
author: dbrelease
"""

EXAMPLES = r"""
- name: Write the figures for node_exporter
  metrics_textfile:
    path: /var/lib/node_exporter/textfile/dbrelease_arisgourmet.prom
    stats: "{{ __verify_stats }}"
    baseline: "{{ __verify_baseline }}"
    verdict: "{{ __verify_outputs.verdict }}"
    version: "{{ release_version }}"
    labels: {database: arisgourmet, environment: production}
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
metrics:
  description: Number of samples in the file.
  returned: always
  type: int
"""

import datetime
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.metrics import render, write_textfile


def unix_time(value):
    """Unix time from ISO 8601 or a number; None when empty; ValueError when neither."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        stats=dict(type="dict", required=True),
        baseline=dict(type="dict", default={}),
        verdict=dict(type="str", default=""),
        log_counts=dict(type="dict", default={}),
        patterns=dict(type="list", elements="dict", default=[]),
        version=dict(type="str", default=""),
        labels=dict(type="dict", default={}),
        watch_until=dict(type="str", default=""),
        mode=dict(type="raw", default="0644"),
    ), supports_check_mode=True)
    p = module.params
    path = p["path"]
    if not path.endswith(".prom"):
        module.fail_json(msg="release_metrics_textfile %s: the name must end in .prom, the only files "
                             "node_exporter's textfile collector reads" % path)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        module.fail_json(msg="release_metrics_textfile %s: the directory %s does not exist (it should be "
                             "node_exporter's --collector.textfile.directory)" % (path, os.path.dirname(path)))
    try:
        mode = int(str(p["mode"]), 8)
        watch_until = unix_time(p["watch_until"])
    except ValueError as exc:
        module.fail_json(msg="metrics_textfile: invalid mode or watch_until: %s" % exc)
    severities = {item.get("name"): item.get("severity", "error") for item in p["patterns"] if item.get("name")}
    try:
        text = render(p["stats"], p["baseline"], p["verdict"] or None, p["log_counts"], severities, p["version"],
                      p["labels"], now=round(time.time(), 3), watch_until=watch_until)
    except ValueError as exc:
        module.fail_json(msg="metrics_textfile: %s (check labels)" % exc)
    try:
        with open(path) as handle:
            before = handle.read()
    except FileNotFoundError:
        before = ""
    except OSError as exc:
        module.fail_json(msg="release_metrics_textfile %s cannot be read: %s" % (path, exc.strerror or exc))
    changed = before != text
    if changed and not module.check_mode:
        try:
            write_textfile(path, text, mode)
        except OSError as exc:
            module.fail_json(msg="release_metrics_textfile %s cannot be written: %s" % (path, exc.strerror or exc))
    result = {"changed": changed, "path": path,
              "metrics": sum(1 for line in text.splitlines() if line and not line.startswith("#"))}
    if module._diff:
        result["diff"] = {"before": before, "after": text, "before_header": path, "after_header": path}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
