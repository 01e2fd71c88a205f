"""The schema job's progress: what the controller prints for a snapshot (ddl_exec.progress_line), and what
pt-online-schema-change last said, read from its lines (online_alter.tool_state)."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease.ddl_exec import progress_line
from ansible.module_utils.dbrelease.online_alter import tool_state

REF = {"file": "release.sql", "index": 2, "line": 7}


def applying(**extra):
    snap = {"stage": "applying", "statement": REF, "number": 2, "of": 3, "tables": ["entries"],
            "route": "pt-online-schema-change", "algorithm": None, "state": "online", "attempt": 1,
            "elapsed_seconds": 3.0}
    snap.update(extra)
    return snap


@pytest.mark.parametrize("snapshot,line", [
    ({}, None),
    ({"stage": "done"}, None),
    ({"stage": "starting"}, "schema: planning on a temporary copy of the schema"),
    ({"stage": "planning"}, "schema: planning on a temporary copy of the schema"),
    (applying(online={"percent": 45, "remaining": "00:03", "paused": None, "elapsed_seconds": 12.04}),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, online via pt-online-schema-change: 45% copied, "
     "00:03 remain (12.0 s)"),
    (applying(online={"percent": 45, "remaining": "00:03", "paused": "Threads_running=13", "elapsed_seconds": 20}),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, online via pt-online-schema-change: 45% copied, "
     "00:03 remain, paused: Threads_running=13 (20.0 s)"),
    (applying(online={"percent": None, "paused": "replica lag", "elapsed_seconds": 1}),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, online via pt-online-schema-change: paused: replica "
     "lag (1.0 s)"),
    (applying(online={"step": "Creating triggers...", "elapsed_seconds": 0.4}),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, online via pt-online-schema-change: Creating "
     "triggers (0.4 s)"),
    (applying(online={}), "schema: statement 2/3 release.sql #2 (line 7) on entries, online via "
                          "pt-online-schema-change: starting"),
    (applying(route="direct", algorithm="ALGORITHM=INPLACE, LOCK=NONE", state="running", elapsed_seconds=7.25),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, direct ALGORITHM=INPLACE, LOCK=NONE: running (7.2 s)"),
    (applying(route="direct", state="running", attempt=3, of=None, tables=[]),
     "schema: statement 2 release.sql #2 (line 7), direct, as written: running (attempt 3) (3.0 s)"),
    (applying(route="direct", state="waiting for locks", blockers=["id 12 app@localhost idle 30 s"],
              blockers_count=1, waited_seconds=4),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, direct, as written: waiting for 1 session(s) "
     "holding or waiting for locks it needs: id 12 app@localhost idle 30 s, 4.0 s waited (3.0 s)"),
    (applying(route="direct", state="running", elapsed_seconds=0.0, age_seconds=41.5),
     "schema: statement 2/3 release.sql #2 (line 7) on entries, direct, as written: running (41.5 s)"),
    ({"stage": "planning", "elapsed_seconds": 0.0, "age_seconds": 6.2},
     "schema: planning on a temporary copy of the schema (6.2 s)"),
    (applying(route="direct", state="waiting for replica lag", tables=["a", "b"]),
     "schema: statement 2/3 release.sql #2 (line 7) on a, b, direct, as written: waiting for replica lag (3.0 s)"),
])
def test_progress_line_names_the_statement_how_it_runs_and_where_it_is(snapshot, line):
    assert progress_line(snapshot) == line


def lines(*texts):
    return [(float(i), "err" if not t.startswith("20") else "out", t) for i, t in enumerate(texts)]


@pytest.mark.parametrize("texts,paused_by,expected", [
    ((), None, {"percent": None, "remaining": None, "paused": None, "step": None}),
    (("2026-12-01T17:47:07 Creating triggers...",), None, {"step": "Creating triggers...", "percent": None}),
    (("2026-12-01T17:47:07 Copying approximately 400074 rows...", "Copying `x`.`entries`:  17% 00:04 remain"),
     None, {"percent": 17, "remaining": "00:04", "paused": None, "step": "Copying approximately 400074 rows..."}),
    (("Copying `x`.`entries`:  52% 00:03 remain", "Pausing because Threads_connected=32."), None,
     {"percent": 52, "remaining": "00:03", "paused": "Threads_connected=32"}),
    (("Pausing because Threads_running=13, Threads_connected=40.", "Copying `x`.`entries`:  59% 00:06 remain"),
     None, {"percent": 59, "paused": None}),
    (("Copying `odd.db`.`t``x`:   9% 01:02:03 remain",), "replica lag",
     {"percent": 9, "remaining": "01:02:03", "paused": "replica lag"}),
    (("2026-12-01T17:47:19 Copied rows OK.", "# A software update is available:", "Operation, tries, wait:"), None,
     {"step": "Copied rows OK."}),
])
def test_tool_state_reads_pt_osc_percent_remaining_time_and_pauses(texts, paused_by, expected):
    state = tool_state(lines(*texts), 12.34, paused_by)
    assert state["elapsed_seconds"] == 12.3
    for key, value in expected.items():
        assert state[key] == value, key
