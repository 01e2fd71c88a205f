"""The fleet summary callback's pure functions: what happened to each database, and to the fleet."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fleet_summary", ROOT / "callback_plugins/fleet_summary.py")
fleet_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_summary)

START = "2026-01-01T10:00:00+00:00"
BEFORE = "2026-01-01T09:00:00+00:00"
DURING = "2026-01-01T10:05:00+00:00"


def phase(status, started=DURING, **extra):
    return dict(status=status, started=started, finished=started, **extra)


@pytest.mark.parametrize("record,outcome,detail", [
    ({}, "not_started", ""),
    ({"phases": {"verify": phase("ok", BEFORE)}}, "not_started", ""),
    ({"phases": {"preflight": phase("ok"), "verify": phase("ok")}}, "released", ""),
    ({"phases": {"schema": phase("failed", error="bad DDL"), "verify": phase("ok", BEFORE)}},
     "failed", "schema: bad DDL"),
    ({"phases": {"backup": phase("running")}}, "incomplete", "backup still marked running (the run was interrupted)"),
    ({"phases": {"schema": phase("ok")}}, "incomplete", "verify did not run"),
    ({"phases": {"verify": phase("skipped")}}, "incomplete", "verify skipped"),
])
def test_host_outcome_judges_only_what_ran_in_this_run(record, outcome, detail):
    assert fleet_summary.host_outcome(record, START) == (outcome, detail)


PLAN = {"version": "v1", "started": START, "check_mode": False, "canary": ["a"], "batches": [["b", "c"]],
        "records": {"a": "/r/a", "b": "/r/b", "c": "/r/c"}, "max_fail_percentage": 50.0, "batch_size": 2}
OK = {"phases": {"preflight": phase("ok"), "verify": phase("ok")}}
FAILED = {"phases": {"preflight": phase("ok"), "schema": phase("failed", error="boom")}}


def test_summary_of_a_fleet_where_everything_passed_is_completed():
    summary = fleet_summary.build_summary(PLAN, {"a": OK, "b": OK, "c": OK}, {}, [], DURING)
    assert summary["outcome"] == "completed"
    assert [(d["host"], d["stage"]) for d in summary["databases"]] == [("a", "canary"), ("b", "batch 1"),
                                                                        ("c", "batch 1")]
    assert summary["counts"] == {"released": 3}


def test_summary_of_a_failed_canary_is_stopped_and_names_it():
    summary = fleet_summary.build_summary(PLAN, {"a": FAILED}, {}, [], DURING)
    assert summary["outcome"] == "stopped"
    assert summary["reason"].startswith("a (canary) failed: schema: boom")
    assert summary["counts"] == {"failed": 1, "not_started": 2}


def test_summary_after_a_gate_stop_gives_the_gate_message():
    summary = fleet_summary.build_summary(PLAN, {"a": OK, "b": FAILED}, {}, ["Fleet rollout stopped after b"],
                                          DURING)
    assert summary["outcome"] == "stopped"
    assert summary["reason"] == "Fleet rollout stopped after b"


def test_summary_with_tolerated_failures_is_completed_with_failures():
    summary = fleet_summary.build_summary(PLAN, {"a": OK, "b": FAILED, "c": OK}, {}, [], DURING)
    assert summary["outcome"] == "completed_with_failures"
    assert "1 of 3" in summary["reason"]


def test_unreachable_database_is_reported_as_such():
    summary = fleet_summary.build_summary(PLAN, {"a": OK, "b": {}, "c": OK}, {"b": {"unreachable": 1}}, [], DURING)
    assert {d["host"]: d["outcome"] for d in summary["databases"]}["b"] == "unreachable"


def test_markdown_lists_every_database_with_its_phases_in_release_order():
    record = {"phases": {"verify": phase("ok"), "preflight": phase("ok"), "backup": phase("ok")}}
    text = fleet_summary.render_markdown(fleet_summary.build_summary(PLAN, {"a": record}, {}, [], DURING))
    assert "| a | canary | incomplete" not in text
    assert "| a | canary | released | preflight ok, backup ok, verify ok |" in text
    assert "| c | batch 1 | not_started | - |" in text
