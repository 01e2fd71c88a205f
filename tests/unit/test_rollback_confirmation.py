"""The text rollback.yml shows before the confirmation (filter rollback_confirmation)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from rollback_confirmation import age, rollback_confirmation, written

BACKUP = {"path": "/b/shop_v2_20261128T061814Z.sql.gz", "sha256": "ab" * 32, "finished": "2026-11-28T06:18:14+00:00",
          "position": {"binlog_file": "binlog.000003", "binlog_pos": 379}}
SINCE = {"writes": {"transactions": 12, "row_events": 30, "statement_events": 0, "complete": True},
         "rows": {"orders": {"then": 10, "now": 14, "difference": 4}, "users": {"then": 3, "now": 3, "difference": 0}}}
FACTS = {"database": "shop", "host": "db1", "now": "2026-11-30T08:20:00", "backup": BACKUP, "since_backup": SINCE,
         "stop": {"file": "binlog.000003", "pos": 9000}, "keep_previous": True,
         "since_stop": {"writes": {"transactions": 5, "row_events": 9, "statement_events": 0, "complete": True}}}


@pytest.mark.parametrize("then, now, text", [
    ("2026-11-28T06:18:14+00:00", "2026-11-30T08:20:00", "2 d 2 h old"),
    ("2026-11-30T06:18:14+00:00", "2026-11-30T08:20:00+00:00", "2 h 1 min old"),
    ("2026-11-30T08:18:00+00:00", "2026-11-30T08:20:00", "2 min old"),
    ("", "2026-11-30T08:20:00", "of unknown age"),
])
def test_the_backup_age_reads_the_recorded_times(then, now, text):
    assert age(then, now) == text


def test_what_was_written_names_transactions_and_row_changes_or_why_it_cannot():
    assert written(SINCE) == ("12 transaction(s) on the database (30 row event(s), 0 statement(s)); row counts "
                              "since the backup: orders +4")
    assert written({"writes_error": "the server writes no binary log", "rows": {}}) == \
        "the binary log cannot tell (the server writes no binary log)"
    assert written({"writes": dict(SINCE["writes"], complete=False)}).startswith("at least 12 transaction(s)")


def test_restore_says_which_mode_is_which_the_backup_age_and_that_the_writes_are_lost():
    out = rollback_confirmation("restore", FACTS)
    assert out["lines"][0] == "Rollback of database shop on db1, release_rollback_mode=restore. The modes:"
    assert out["lines"][2].startswith("-> restore - restore the verified backup /b/shop_v2_20261128T061814Z.sql.gz")
    assert out["lines"][1].startswith("   schema  - ") and out["lines"][3].startswith("   pitr    - ")
    assert "taken 2026-11-28T06:18:14+00:00 (2 d 2 h old)" in out["text"]
    assert "Written since the backup: 12 transaction(s) on the database" in out["text"]
    assert "A restore loses those writes (the database as it is now is kept aside" in out["text"]
    assert out["lossy"] is True


def test_pitr_says_what_it_keeps_and_what_it_loses_after_the_stop_position():
    out = rollback_confirmation("pitr", FACTS)
    assert "Replayed up to binlog.000003:9000 (the position before the release's first DDL); written after it, and " \
           "lost: 5 transaction(s)" in out["text"]
    assert out["lossy"] is True
    quiet = dict(FACTS, since_stop={"writes": {"transactions": 0, "row_events": 0, "statement_events": 0}})
    assert rollback_confirmation("pitr", quiet)["lossy"] is False


def test_schema_lists_the_reverse_plan_and_what_it_cannot_keep():
    reverse = {"steps": ["table refunds: drop", "table orders: drop column note"], "lossless": False,
               "losses": ["3 row(s) in refunds, a table the release created"], "not_reversed": []}
    out = rollback_confirmation("schema", dict(FACTS, reverse=reverse))
    assert "The reverse plan: 2 step(s):" in out["lines"]
    assert "  - table refunds: drop" in out["lines"] and "  - 3 row(s) in refunds, a table the release created" in \
        out["lines"]
    assert out["lines"][-1] == "The reverse plan is NOT lossless: it needs -e release_rollback_accept_loss=true too."
    clean = rollback_confirmation("schema", dict(FACTS, reverse=dict(reverse, lossless=True, losses=[])))
    assert clean["lossy"] is False and clean["lines"][-1] == "The reverse plan is lossless."


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(AnsibleFilterError, match="unknown release_rollback_mode 'undo'"):
        rollback_confirmation("undo", FACTS)
