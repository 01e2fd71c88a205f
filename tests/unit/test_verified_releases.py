"""Table tests for the verified_releases filter: which releases' backups retention may delete."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from verified_releases import FilterModule, verified_releases


def rec(version, environment="production", verify="ok", watch=None, rollback=None, where="top"):
    phases = {"verify": {"status": verify}}
    if watch:
        phases["watch"] = {"status": watch}
    if rollback:
        phases["rollback"] = {"status": rollback}
    record = {"version": version, "phases": phases}
    if where == "top":
        record["environment"] = environment
    elif where == "preflight":
        phases["preflight"] = {"status": "ok", "environment": environment}
    return record


@pytest.mark.parametrize("record, counted", [
    (rec("v1"), True),
    (rec("v1", watch="ok"), True),
    (rec("v1", watch="skipped"), True),
    (rec("v1", where="preflight"), True),
    (rec("v1", environment="staging"), False),
    (rec("v1", verify="failed"), False),
    (rec("v1", verify="running"), False),
    (rec("v1", watch="failed"), False),
    (rec("v1", watch="running"), False),
    (rec("v1", rollback="ok"), False),
    (rec("v1", where=None), False),
    ({"environment": "production", "phases": {"verify": {"status": "ok"}}}, False),
], ids=["verified", "watched", "watch skipped", "environment from preflight", "staging", "verify failed",
        "verify interrupted", "watch failed", "watch interrupted", "rolled back", "old record without environment",
        "no version"])
def test_only_releases_verified_in_production_count(record, counted):
    assert verified_releases([record]) == (["v1"] if counted else [])


def test_versions_are_unique_and_sorted_and_empty_records_skipped():
    assert verified_releases([rec("v2"), {}, rec("v1"), rec("v2")]) == ["v1", "v2"]
    assert verified_releases([rec("v1", environment="staging")], "staging") == ["v1"]
    assert verified_releases(None) == []


def test_records_given_as_json_text_are_read_and_damaged_ones_skipped():
    import json

    assert verified_releases([json.dumps(rec("v3")), "{not json", "[1]", json.dumps(rec("v4", verify="failed"))]) \
        == ["v3"]


@pytest.mark.parametrize("records, message", [("x", "expected a list"), ([1], "each record must be a dict")])
def test_bad_input_is_refused(records, message):
    with pytest.raises(AnsibleFilterError, match=message):
        verified_releases(records)


def test_filter_module_maps_only_the_filter_name():
    assert FilterModule().filters() == {"verified_releases": verified_releases}
