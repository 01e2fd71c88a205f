"""The Prometheus textfile: what it holds (read back with prometheus_client's own parser), label escaping, and an
atomic replacement that a reader never sees half-written."""

from __future__ import annotations

import os
import stat
import threading

import pytest
from ansible.module_utils.dbrelease import metrics
from helpers import run_module
from prometheus_client.parser import text_string_to_metric_families

STATS = {
    "outbox": {"present": True, "counts": {"pending": 12, "delivered": 5000, "failed": 2, "dead": 1},
               "delivered_estimated": False, "oldest_pending_age_seconds": 42.5, "delivered_recent": 900,
               "failed_recent": 1, "dead_recent": 0, "dead_letters": 1, "window_minutes": 15},
    "refresh_tokens": {"present": True, "revoked": 7, "revoked_recent": 2, "total": 300, "window_minutes": 15},
}
BASELINE = {"outbox": {"present": True, "counts": {"pending": 3, "failed": 1, "dead": 0}},
            "refresh_tokens": {"present": True, "revoked": 5}}
ODD = 'shop "eu"\\1\nx'


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("database",))))] = (
                sample.value)
    return out


def test_the_figures_read_back_with_prometheus_parser():
    text = metrics.render(STATS, BASELINE, "warn", {"deadlock": 2, "app_error": 0},
                          {"deadlock": "error", "app_error": "error"}, "v1.2.0", {"database": "shop"},
                          now=1764584100.5, watch_until=1764843300)
    got = samples(text)
    assert got[("dbrelease_outbox_events", (("status", "pending"),))] == 12
    assert got[("dbrelease_outbox_events", (("status", "delivered"),))] == 5000
    assert got[("dbrelease_outbox_oldest_pending_age_seconds", ())] == 42.5
    assert got[("dbrelease_outbox_delivery_rate_per_second", ())] == pytest.approx(1.0)
    assert got[("dbrelease_outbox_baseline_events", (("status", "pending"),))] == 3
    assert got[("dbrelease_refresh_tokens_revoked", ())] == 7
    assert got[("dbrelease_refresh_tokens_revoked_baseline", ())] == 5
    assert got[("dbrelease_verify_verdict", ())] == 1
    assert got[("dbrelease_log_matched_lines", (("pattern", "deadlock"), ("severity", "error")))] == 2
    assert got[("dbrelease_release_info", (("version", "v1.2.0"),))] == 1
    assert got[("dbrelease_verify_last_run_timestamp_seconds", ())] == 1764584100.5
    assert got[("dbrelease_watch_end_timestamp_seconds", ())] == 1764843300
    # Each family once, with HELP and TYPE before its samples.
    assert text.count("# TYPE dbrelease_outbox_events gauge") == 1


def test_an_absent_table_writes_its_presence_and_no_figures():
    text = metrics.render({"outbox": {"present": False}, "refresh_tokens": {"present": False}})
    got = samples(text)
    assert got[("dbrelease_outbox_table_present", ())] == 0
    assert got[("dbrelease_refresh_tokens_table_present", ())] == 0
    assert not any(name == "dbrelease_outbox_events" for name, _ in got)


def test_odd_label_values_are_escaped_and_parse_back():
    text = metrics.render(STATS, labels={"database": ODD, "environment": "production"})
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels["database"] == ODD
    with pytest.raises(ValueError, match="invalid label name"):
        metrics.render(STATS, labels={"data-base": "x"})


def test_the_file_is_replaced_atomically_and_a_reader_never_sees_half_of_it(tmp_path):
    path = str(tmp_path / "dbrelease.prom")
    texts = [metrics.render(STATS, labels={"database": "db%d" % i}, now=i) + "# pad %s\n" % ("x" * 20000 * (i % 3))
             for i in range(6)]
    stop = threading.Event()
    seen, errors = set(), []

    def read():
        while not stop.is_set():
            try:
                with open(path) as handle:
                    content = handle.read()
            except FileNotFoundError:
                continue
            if content not in texts:
                errors.append(len(content))
            seen.add(content)

    metrics.write_textfile(path, texts[0])
    reader = threading.Thread(target=read)
    reader.start()
    for i in range(300):
        metrics.write_textfile(path, texts[i % len(texts)])
    stop.set()
    reader.join()
    assert not errors, "a reader saw a partial file (%d times)" % len(errors)
    assert len(seen) > 1
    leftovers = [n for n in os.listdir(tmp_path) if n != "dbrelease.prom"]
    assert leftovers == [] and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert metrics.write_textfile(path, texts[299 % len(texts)]) is False  # same content: left alone


def test_the_module_writes_refuses_bad_paths_and_honours_check_mode(tmp_path):
    path = tmp_path / "dbrelease.prom"
    args = {"path": str(path), "stats": STATS, "baseline": BASELINE, "verdict": "ok", "version": "v1",
            "labels": {"database": "shop"}, "watch_until": "2026-12-04T10:00:00+00:00"}
    planned = run_module("metrics_textfile", args, check=True, diff=True)
    assert planned["changed"] is True and not path.exists()
    assert "dbrelease_outbox_events" in planned["diff"]["after"]
    written = run_module("metrics_textfile", args)
    assert written["changed"] is True and written["metrics"] > 15
    assert samples(path.read_text())[("dbrelease_watch_end_timestamp_seconds", ())] == 1796378400
    bad = run_module("metrics_textfile", dict(args, path=str(tmp_path / "dbrelease.txt")))
    assert bad["failed"] and "must end in .prom" in bad["msg"] and "release_metrics_textfile" in bad["msg"]
    nodir = run_module("metrics_textfile", dict(args, path=str(tmp_path / "nope" / "x.prom")))
    assert nodir["failed"] and "does not exist" in nodir["msg"]


def test_the_documented_alert_rules_use_only_metrics_the_file_holds():
    import re

    import yaml
    from conftest import ROOT

    doc = (ROOT / "docs/watch.md").read_text()
    block = doc.split("```yaml\ngroups:", 1)[1].split("```", 1)[0]
    rules = yaml.safe_load("groups:" + block)["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"OutboxBacklogGrowing", "OutboxNotDelivering"}
    written = {f.name for f in text_string_to_metric_families(metrics.render(
        STATS, BASELINE, "ok", {"deadlock": 1}, {}, "v1", {"database": "shop"}, now=1, watch_until=2))}
    used = {name for r in rules for name in re.findall(r"\bdbrelease_[a-z_]+", r["expr"])}
    assert used and used <= written, used - written
    table = set(re.findall(r"`(dbrelease_[a-z_]+)`", doc.split("### Prometheus textfile", 1)[1]))
    assert table <= written, table - written


def test_every_metric_written_is_documented_in_the_module():
    import metrics_textfile

    written = {f.name for f in text_string_to_metric_families(metrics.render(
        STATS, BASELINE, "ok", {"deadlock": 1}, {}, "v1", {"database": "shop"}, now=1, watch_until=2))}
    undocumented = {name for name in written if name not in metrics_textfile.DOCUMENTATION}
    assert not undocumented, undocumented
