"""Table tests for the outbox discovery and planning of module_utils/dbrelease/outbox.py (pure functions)."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease.outbox import (
    COLUMN_CANDIDATES,
    OutboxSettingsError,
    Table,
    notion_of,
    parse_enum,
    plan_outbox,
    plan_tokens,
    resolve_columns,
    status_map,
)


def cols(**types):
    return {name: {"data_type": t, "column_type": t} for name, t in types.items()}


EXAMPLE = cols(id="bigint", status="enum", created_at="datetime", delivered_at="datetime", payload="longtext")
EXAMPLE_INDEXES = {"PRIMARY": ["id"], "idx_outbox_status_created": ["status", "created_at"],
                   "idx_outbox_delivered": ["delivered_at"]}


@pytest.mark.parametrize("value, notion", [
    ("pending", "pending"), ("NEW", "pending"), (" queued ", "pending"), ("processing", "pending"),
    ("sent", "delivered"), ("Delivered", "delivered"), ("processed", "delivered"), ("published", "delivered"),
    ("failed", "failed"), ("error", "failed"),
    ("dead", "dead"), ("dlq", "dead"), ("parked", "dead"),
    ("archived", None), (3, None),
])
def test_default_status_map_covers_the_common_names(value, notion):
    assert notion_of(value, status_map()) == notion


def test_a_notion_the_user_names_replaces_its_default_list_only():
    mapping = status_map({"delivered": ["ok"], "ignored": ["archived"], "pending": [0, 1]})
    assert mapping["delivered"] == ["ok"]
    assert notion_of("sent", mapping) is None
    assert notion_of("archived", mapping) == "ignored"
    assert notion_of(1, mapping) == "pending" and notion_of("0", mapping) == "pending"
    assert "dlq" in mapping["dead"]


@pytest.mark.parametrize("overrides, message", [
    ({"delivred": ["sent"]}, "unknown key(s) delivred"),
    ({"pending": ["sent"]}, "puts status 'sent' under both pending and delivered"),
    ({"pending": {"a": 1}}, "verify_outbox_status_map.pending must be a list"),
    (["sent"], "must be a dict"),
])
def test_unusable_status_maps_are_refused_naming_the_setting(overrides, message):
    with pytest.raises(OutboxSettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        status_map(overrides)


@pytest.mark.parametrize("column_type, values", [
    ("enum('pending','delivered','failed','dead')", ["pending", "delivered", "failed", "dead"]),
    ("ENUM('it''s','x')", ["it's", "x"]),
    ("varchar(20)", None),
    ("tinyint(4)", None),
])
def test_parse_enum(column_type, values):
    assert parse_enum(column_type) == values


@pytest.mark.parametrize("columns, overrides, roles, problem", [
    (EXAMPLE, {}, {"status": "status", "created_at": "created_at", "delivered_at": "delivered_at"}, None),
    (cols(state="varchar", inserted_at="timestamp", sent_at="datetime"), {},
     {"status": "state", "created_at": "inserted_at", "delivered_at": "sent_at"}, None),
    (cols(Status="varchar", Created_At="datetime"), {}, {"status": "Status", "created_at": "Created_At",
                                                         "delivered_at": None}, None),
    (cols(status="varchar", created_at="bigint"), {}, {"status": "status", "created_at": None, "delivered_at": None},
     None),
    (EXAMPLE, {"status": ""}, {"status": None, "created_at": "created_at", "delivered_at": "delivered_at"}, None),
    (EXAMPLE, {"delivered_at": "sent_on"}, {"status": "status", "created_at": "created_at", "delivered_at": None},
     "verify_outbox_columns.delivered_at names column sent_on, which the table does not have"),
    (cols(status="varchar", ts="bigint"), {"created_at": "ts"}, {"status": "status", "created_at": None,
                                                                   "delivered_at": None},
     "verify_outbox_columns.created_at: column ts is BIGINT, not DATETIME or TIMESTAMP"),
], ids=["example", "other names", "any case", "integer created_at is not a time", "no status by setting",
        "override naming a missing column", "override naming a non-time column"])
def test_resolve_columns(columns, overrides, roles, problem):
    found, why, problems = resolve_columns(columns, COLUMN_CANDIDATES, overrides)
    assert found == roles
    assert all(role in why for role, col in found.items() if col is None)
    if problem:
        assert problems and problems[0].startswith(problem), problems
    else:
        assert problems == []


def test_resolve_columns_refuses_unknown_roles():
    with pytest.raises(OutboxSettingsError, match="unknown key"):
        resolve_columns(EXAMPLE, COLUMN_CANDIDATES, {"sent": "sent_at"})


def plan(columns, indexes, estimate, overrides=None, values=None, mapping=None, limit=1000):
    table = Table("outbox", columns, indexes, estimate)
    roles, why, _ = resolve_columns(columns, COLUMN_CANDIDATES, overrides or {})
    return plan_outbox(table, roles, why, values, mapping or status_map(), limit)


def metrics(p):
    return sorted({q[0] for q in p["queries"]})


def test_a_small_example_outbox_is_read_with_the_runbook_group_by_and_index_ranges():
    p = plan(EXAMPLE, EXAMPLE_INDEXES, 10, values=["pending", "delivered", "failed", "dead"])
    assert p["shape"] == "status"
    assert metrics(p) == ["by_status", "dead_recent", "delivered_recent", "failed_recent",
                          "oldest_pending_age_seconds"]
    assert p["unavailable"] == {}


def test_a_large_example_outbox_counts_only_the_watched_statuses_by_index():
    p = plan(EXAMPLE, EXAMPLE_INDEXES, 5_000_000, values=["pending", "delivered", "failed", "dead", "archived"])
    assert ("count:pending", "count_status", ("pending",)) in p["queries"]
    assert not any(q[0] == "by_status" for q in p["queries"])
    assert not any(q[2] == ("delivered",) for q in p["queries"])
    assert p["unmapped"] == ["archived"]
    assert p["unavailable"] == {}


def test_a_large_outbox_without_indexes_reads_nothing_and_says_why():
    p = plan(EXAMPLE, {"PRIMARY": ["id"]}, 5_000_000, values=["pending", "delivered"])
    assert p["queries"] == []
    assert set(p["unavailable"]) == {"pending", "delivered", "failed", "dead", "oldest_pending_age_seconds",
                                     "failed_recent", "dead_recent", "delivered_recent"}
    assert "holds about 5000000 rows (more than verify_exact_count_limit=1000) and no index starts with (status)" \
        in p["unavailable"]["pending"]


def test_an_outbox_without_delivery_timestamp_cannot_tell_recent_deliveries():
    p = plan(cols(id="bigint", status="varchar", created_at="datetime"), {}, 10, values=["new", "sent"])
    assert "delivered_recent" in p["unavailable"]
    assert "no delivered_at column" in p["unavailable"]["delivered_recent"]
    assert "by_status" in metrics(p)


def test_an_outbox_with_a_processed_timestamp_and_no_status_counts_nulls_as_pending():
    p = plan(cols(id="bigint", created_at="datetime", processed_at="datetime"), {"ix": ["processed_at"]}, 10)
    assert p["shape"] == "delivered_column"
    assert metrics(p) == ["count:pending", "delivered_recent", "oldest_pending_age_seconds"]
    assert set(p["unavailable"]) == {"delivered", "failed", "failed_recent", "dead", "dead_recent"}


def test_a_debezium_outbox_counts_its_rows_up_to_a_bound():
    p = plan(cols(id="char", aggregatetype="varchar", aggregateid="varchar", type="varchar", payload="json"), {}, 3)
    assert p["shape"] == "delete_on_relay"
    assert p["queries"] == [("count:pending", "count_rows_bounded", ("bound",))]
    assert "rows are deleted once relayed" in p["unavailable"]["delivered_recent"]
    assert "no created_at column" in p["unavailable"]["oldest_pending_age_seconds"]


@pytest.mark.parametrize("columns, indexes, estimate, queries, unavailable", [
    (cols(revoked="tinyint", revoked_at="datetime"), {"ix": ["revoked", "revoked_at"]}, 10**7,
     ["revoked", "revoked_recent"], []),
    (cols(revoked_at="datetime"), {"ix": ["revoked_at"]}, 10**7, ["revoked_by_time", "revoked_recent_by_time"], []),
    (cols(is_revoked="tinyint"), {}, 10, ["revoked"], ["revoked_recent"]),
    (cols(token="char"), {}, 10, [], ["revoked", "revoked_recent"]),
    (cols(revoked="tinyint", revoked_at="datetime"), {}, 10**7, [], ["revoked", "revoked_recent"]),
])
def test_plan_tokens(columns, indexes, estimate, queries, unavailable):
    from ansible.module_utils.dbrelease.outbox import TOKEN_COLUMN_CANDIDATES

    table = Table("refresh_tokens", columns, indexes, estimate)
    roles, why, _ = resolve_columns(columns, TOKEN_COLUMN_CANDIDATES, {}, setting="verify_tokens_columns")
    p = plan_tokens(table, roles, why, 1000)
    assert [q[1] for q in p["queries"]] == queries
    assert sorted(p["unavailable"]) == unavailable
