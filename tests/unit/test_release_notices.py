"""release_notices: the first lines of report.md say what the release did not prove (restore test not run and why,
sampled checksums, missing definers) and what the schema phase left out or only checked on the way."""

from __future__ import annotations

import pytest
from release_notices import release_notices


def ref(i):
    return {"file": "r.sql", "index": i, "line": i * 2}


@pytest.mark.parametrize("backup, expected", [
    (None, "**Restore test: not run** - the backup phase has not run in this release"),
    ({"status": "ok", "restore_test": {"ran": False, "reason": "backup_restore_test is false (it is on by default "
                                                                "only when release_environment is staging; here it "
                                                                "is production)"}},
     "**Restore test: not run** - backup_restore_test is false (it is on by default only when release_environment "
     "is staging; here it is production)."),
    ({"status": "ok", "restore_test": {"ran": False, "reason": "check mode: a dry run restores nothing"}},
     "**Restore test: not run** - check mode: a dry run restores nothing."),
    ({"status": "failed"}, "**Restore test: not run** - the backup phase failed before it"),
    ({"status": "running"}, "**Restore test: not run** - the backup phase did not finish."),
    ({"status": "ok", "restore_test": {"ran": True, "ok": True, "reused_from_first_run": True}},
     "Restore test: not run again - the backup is the one this release took first"),
    ({"status": "ok", "restore_test": {"ran": True, "ok": True, "sampled": ["big"], "checksum_budget_s": 600}},
     "Restore test: the rows of big were compared on sampled chunks only (checksum budget 600 s)"),
    ({"status": "ok", "restore_test": {"ran": True, "ok": True, "missing_definers": [
        {"object": "view v", "definer": "ghost@%"}]}},
     "restored 1 object(s) whose DEFINER account does not exist on the server (they fail when used, on the source "
     "too): view v (ghost@%)."),
])
def test_the_restore_test_is_never_silently_off(backup, expected):
    record = {"phases": {"backup": backup} if backup is not None else {}}
    lines = release_notices(record)
    assert len(lines) == 1 and expected in lines[0], lines


def test_a_restore_test_that_ran_in_full_says_nothing():
    assert release_notices({"phases": {"backup": {"status": "ok", "restore_test": {"ran": True, "ok": True}}}}) == []


def test_what_the_schema_phase_left_out_or_checked_on_the_way():
    schema = {"skipped": [ref(1), ref(2)],
              "data_checks": [{"when": "now", "statement": ref(3)}, {"when": "on_the_way", "statement": ref(4)},
                              {"when": "unchecked", "object": "table t", "check": "narrowing", "statement": ref(5)}],
              "lint": {"destructive": [{"object": "table orders", "reason": "drops column legacy_flag",
                                        "allowed": True},
                                       {"object": "table other", "reason": "drops the table", "allowed": False}]},
              "data_statements": [dict(ref(6), rows=12)]}
    lines = release_notices({"phases": {"backup": {"status": "ok", "restore_test": {"ran": True}}, "schema": schema}})
    assert lines == [
        "- Schema: 2 statement(s) left out of the run because they change nothing the schema does not already have: "
        "r.sql #1 (line 2), r.sql #2 (line 4) (`phases.schema.skipped` says why).",
        "- Schema: 1 data check(s) could only run on the way, right before their statement: r.sql #4 (line 8).",
        "- Schema: 1 change(s) could not be checked against the data: table t (narrowing).",
        "- Schema: destructive change(s) allowed and applied: table orders drops column legacy_flag.",
        "- Schema: data statement(s) allowed in the schema phase changed 12 row(s): r.sql #6 (line 12)."]


def test_a_record_that_is_not_a_dict_is_refused():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="release_notices expects the release record"):
        release_notices([])
