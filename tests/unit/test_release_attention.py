"""Table tests for the release_attention filter (the report's first lines) and the pending lines of "Next"."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from helpers import RELEASE_PHASES
from release_attention import FilterModule, release_attention
from release_report import release_report

INV = "inventories/production"


def ok(**outputs):
    return dict(status="ok", **outputs)


def record(**phases):
    return {"version": "v2", "database": "shop", "phases": phases}


CASES = [
    ("nothing to say", record(verify=ok(warnings=[]), backup=ok(restore_test={"ran": True, "ok": True})), [], []),
    ("no smoke endpoint", record(verify=ok(warnings=["No smoke endpoint is configured (verify_smoke_endpoints): x"])),
     ["No smoke endpoint is configured (verify_smoke_endpoints): x"], []),
    # Said by release_notices, above these lines, once.
    ("restore test did not run",
     record(backup=ok(restore_test={"ran": False, "reason": "backup_restore_test is false"})), [], []),
    ("restore test reused from the first run", record(backup=ok(restore_test={
        "ran": False, "ok": True, "reused_from_first_run": True})), [], []),
    ("no vault, by configuration", record(backup=ok(vault_not_required="backup_vault_required is false: another")),
     ["No off-host copy of the backup was made by this release: backup_vault_required is false: another."], []),
    ("destructive change allowed", record(backup=ok(path="/b/shop.sql.gz"), schema=ok(lint={"destructive": [
        {"object": "table invoices", "reason": "drops column legacy_code"}]})),
     ["This release made 1 destructive or irreversible change, allowed by the inventory: table invoices."],
     ["- Pending: 1 destructive change (table invoices) cannot be undone by rollback.yml"]),
    ("destructive change refused", record(schema={"status": "failed", "lint": {"destructive": [
        {"object": "table invoices", "reason": "drops column legacy_code", "allowed": True},
        {"object": "table customers", "reason": "drops the table", "allowed": False}]}}),
     ["This release includes 1 destructive or irreversible change, allowed by the inventory: table invoices."],
     ["- Pending: 1 destructive change (table invoices) cannot be undone by rollback.yml"]),
    ("failed watch", record(watch={"status": "failed", "error": "Health failed during the watch window",
                                   "regressed": ["stalled_relay (ok at verify, fail now): too old"]}),
     ["The watch failed with the application serving traffic: Health failed during the watch window. What "
      "regressed: stalled_relay (ok at verify, fail now): too old. Roll back with `ansible-playbook rollback.yml -i "
      "inventories/production -e release_version=v2 -e release_rollback_confirm=true`."],
     ["- Pending: the watch failed."]),
    ("tag left to production", record(tag={"status": "skipped", "deferred_to": "production", "would_create": {
        "tag": "v2", "commit": "0123456789abcdef", "remote": "origin"}}),
     ["No git tag was made here: the production release will create tag v2 on commit 0123456789ab and push it to "
      "origin."], ["- Pending: the tag v2, made by the production release after it is verified."]),
]


@pytest.mark.parametrize("case, rec, first, pending", CASES, ids=[c[0] for c in CASES])
def test_first_lines_and_pending(case, rec, first, pending):
    got = release_attention(rec, INV)
    assert [f.split(" What each destroys")[0] if "destructive" in case else f for f in got["first"]] == first
    assert len(got["pending"]) == len(pending)
    for line, start in zip(got["pending"], pending, strict=True):
        assert line.startswith(start), line


def test_next_never_says_nothing_else_to_do_while_something_is_pending():
    rec = record(preflight=ok(), verify=ok(), watch=ok(), tag={"status": "skipped", "deferred_to": "production",
                                                                "reason": "later", "would_create": {"tag": "v2"}})
    attention = release_attention(rec, INV)
    text = "\n".join(release_report(rec, RELEASE_PHASES, INV, "v2", attention["pending"])["next"])
    assert "Nothing else to do" not in text
    assert "Pending: the tag v2" in text and "set release_git_repo" not in text
    plain = record(preflight=ok(), verify=ok())
    assert "Nothing else to do" in "\n".join(release_report(plain, RELEASE_PHASES, INV, "v2")["next"])


def test_a_record_that_is_not_a_dict_is_refused():
    with pytest.raises(AnsibleFilterError, match="expects the release record"):
        release_attention([], INV)


def test_filter_module():
    assert FilterModule().filters() == {"release_attention": release_attention}
