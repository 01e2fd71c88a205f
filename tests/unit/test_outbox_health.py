"""Table tests for the outbox_health filter: the verdict and its reasons for each kind of trouble."""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError
from outbox_health import DEFAULT_THRESHOLDS, FilterModule, outbox_health


def stats(pending=3, failed=1, dead=0, oldest=4.5, delivered_recent=40, failed_recent=0, dead_recent=0,
          revoked=5, revoked_recent=0, total=200, outbox=True, tokens=True, window=15):
    """A stats dict shaped like the outbox_stats module's result."""
    return {
        "changed": False,
        "outbox": {"present": outbox, "counts": {"pending": pending, "delivered": 1000, "failed": failed,
                                                 "dead": dead} if outbox else {},
                   "oldest_pending_age_seconds": oldest if outbox and pending else None,
                   "delivered_recent": delivered_recent, "failed_recent": failed_recent, "dead_recent": dead_recent,
                   "window_minutes": window},
        "refresh_tokens": {"present": tokens, "revoked": revoked, "revoked_recent": revoked_recent, "total": total,
                           "window_minutes": window},
    }


BASE = stats()


def names(result, level):
    return sorted(c["name"] for c in result["checks"] if c["level"] == level)


CASES = [
    ("unchanged against the baseline is healthy",
     stats(), {}, "ok", [], "healthy"),
    ("a growing backlog fails",
     stats(pending=3 + 1001), {}, "fail", ["backlog_growth"], "backlog grew from 3 to 1004"),
    ("a backlog growth at the limit does not fail",
     stats(pending=3 + 1000), {}, "warn", [], "backlog grew"),
    ("a stalled relay fails",
     stats(oldest=601), {}, "fail", ["stalled_relay"], "oldest pending outbox event is 601 seconds old"),
    ("a slow relay warns",
     stats(oldest=121), {}, "warn", [], "relay looks slow"),
    ("a jump in failures fails",
     stats(failed=1 + 51), {}, "fail", ["failures_increase"], "failed outbox events rose from 1 to 52"),
    ("a jump in dead letters fails",
     stats(dead=11), {}, "fail", ["dead_letters_increase"], "dead letters (status 'dead') rose from 0 to 11"),
    ("a single new dead letter warns",
     stats(dead=1), {}, "warn", [], "rose from 0 to 1"),
    ("a migration that revoked many refresh tokens fails",
     stats(revoked=5 + 101), {}, "fail", ["revoked_tokens_increase"], "Revoked refresh tokens rose from 5 to 106"),
    ("overridden thresholds apply",
     stats(revoked=5 + 3), {"revoked_tokens_increase_fail": 2}, "fail", ["revoked_tokens_increase"],
     "limit of +2"),
    ("pending events with no delivery in the window warn",
     stats(delivered_recent=0), {}, "warn", [], "No outbox event was delivered in the last 15 minutes"),
    ("the idle-relay check can be switched off",
     stats(delivered_recent=0), {"idle_relay_verdict": "ok"}, "ok", [], "healthy"),
    ("an outbox dropped since the baseline fails",
     stats(outbox=False), {}, "fail", ["outbox_table"], "outbox table outbox existed at the baseline and is gone"),
    ("a refresh_tokens table dropped since the baseline can be made a warning",
     stats(tokens=False), {"missing_table_verdict": "warn"}, "warn", [],
     "refresh-token table refresh_tokens existed at the baseline"),
]


@pytest.mark.parametrize("case, now, thresholds, verdict, failing, phrase", CASES, ids=[c[0] for c in CASES])
def test_verdict_against_the_baseline(case, now, thresholds, verdict, failing, phrase):
    result = outbox_health(now, thresholds, BASE)
    assert result["verdict"] == verdict, result["reasons"]
    assert names(result, "fail") == failing
    assert any(phrase in reason for reason in result["reasons"]), result["reasons"]
    assert result["baseline_used"] is True


def test_reasons_list_failures_before_warnings():
    result = outbox_health(stats(pending=5000, delivered_recent=0, dead=1), {}, BASE)
    levels = [c["level"] for c in result["checks"] if c["level"] != "ok"]
    assert sorted(levels) == ["fail", "warn", "warn"]
    assert result["reasons"][0].startswith("The outbox backlog grew")


def test_several_problems_give_one_reason_each():
    result = outbox_health(stats(pending=5000, oldest=900, failed=100, dead=50, revoked=500), {}, BASE)
    assert result["verdict"] == "fail"
    assert names(result, "fail") == ["backlog_growth", "dead_letters_increase", "failures_increase",
                                     "revoked_tokens_increase", "stalled_relay"]
    assert len(result["reasons"]) == 5


def test_without_baseline_only_absolute_thresholds_apply_and_it_says_which_phase_to_run():
    result = outbox_health(stats(pending=5000, failed=400, dead=90, revoked=900), {}, None)
    # Totals alone say nothing about a jump; only the recent window and the age are judged.
    assert result["verdict"] == "warn"
    assert result["baseline_used"] is False
    assert any("No baseline" in r and "schema phase" in r for r in result["reasons"])


@pytest.mark.parametrize(
    "now, failing, phrase",
    [
        (stats(oldest=700), ["stalled_relay"], "700 seconds old"),
        (stats(failed_recent=51), ["failures_increase"], "51 failed outbox events were created in the last 15"),
        (stats(dead_recent=11), ["dead_letters_increase"], "11 dead letters"),
        (stats(revoked_recent=101), ["revoked_tokens_increase"], "101 refresh tokens were revoked in the last 15"),
    ],
)
def test_without_baseline_the_recent_window_still_fails(now, failing, phrase):
    result = outbox_health(now, {}, {})
    assert result["verdict"] == "fail"
    assert names(result, "fail") == failing
    assert any(phrase in r for r in result["reasons"]), result["reasons"]


def test_tables_absent_at_the_baseline_count_as_empty():
    before = stats(outbox=False, tokens=False)
    result = outbox_health(stats(pending=2, failed=0, dead=0, revoked=0), {}, before)
    assert result["verdict"] == "ok", result["reasons"]
    result = outbox_health(stats(pending=1500, failed=0, dead=0, revoked=0), {}, before)
    assert result["verdict"] == "fail"
    assert any("did not exist at the baseline" in r for r in result["reasons"])


def test_the_filter_does_not_modify_its_inputs():
    now, before, limits = stats(pending=9999), copy.deepcopy(BASE), {"backlog_growth_fail": 5}
    snapshot = copy.deepcopy((now, before, limits))
    outbox_health(now, limits, before)
    assert (now, before, limits) == snapshot


def test_numbers_given_as_strings_are_accepted():
    now = stats()
    now["outbox"]["counts"]["pending"] = "2000"
    assert outbox_health(now, {"backlog_growth_fail": "10"}, BASE)["verdict"] == "fail"


@pytest.mark.parametrize(
    "now, thresholds, baseline, message",
    [
        (stats(), {"backlog_growht_fail": 1}, BASE, "unknown threshold(s) backlog_growht_fail"),
        (stats(), {"backlog_growth_fail": -1}, BASE, "thresholds.backlog_growth_fail must not be negative"),
        (stats(), {"backlog_growth_fail": "many"}, BASE, "thresholds.backlog_growth_fail must be a number"),
        (stats(), {"idle_relay_verdict": "panic"}, BASE, "thresholds.idle_relay_verdict must be ok, warn or fail"),
        (stats(), ["x"], BASE, "thresholds must be a dict"),
        ("text", {}, BASE, "stats must be a dict"),
        ({"outbox": {}}, {}, BASE, "stats has no 'refresh_tokens' section"),
        (stats(), {}, {"refresh_tokens": {}}, "baseline has no 'outbox' section"),
        (dict(stats(), outbox={"counts": {"pending": -3}}), {}, BASE, "stats.outbox.counts.pending must not be"),
        (stats(), {}, dict(BASE, refresh_tokens={"revoked": "x"}), "baseline.refresh_tokens.revoked must be a number"),
    ],
)
def test_bad_input_raises_an_error_naming_it(now, thresholds, baseline, message):
    with pytest.raises(AnsibleFilterError) as err:
        outbox_health(now, thresholds, baseline)
    assert message in str(err.value)


def test_role_defaults_match_the_filter_defaults(root_dir):
    import yaml

    defaults = yaml.safe_load((root_dir / "roles/verify/defaults/main.yml").read_text())
    assert defaults["verify_thresholds"] == DEFAULT_THRESHOLDS


def test_filter_module_maps_only_the_filter_name():
    assert FilterModule().filters() == {"outbox_health": outbox_health}


# -- outboxes unlike the example's: numbers not available here, tables not applicable -----------------------------
def debezium(pending=0, oldest=None, unavailable=None, **extra):
    """A delete-on-relay outbox (no status, rows deleted once relayed): only the rows left and their age."""
    gone = "outbox has no status column and no delivery timestamp: rows are deleted once relayed"
    section = {"present": True, "table": "outbox", "shape": "delete_on_relay", "counts": {"pending": pending},
               "oldest_pending_age_seconds": oldest, "window_minutes": 15,
               "unavailable": unavailable if unavailable is not None else {
                   k: gone for k in ("delivered", "delivered_recent", "failed", "failed_recent", "dead",
                                     "dead_recent")}}
    section.update(extra)
    return {"database": "shop", "outbox": section,
            "refresh_tokens": {"present": False, "table": "refresh_tokens", "window_minutes": 15}}


def test_numbers_not_available_here_are_said_with_their_reason_and_the_verdict_uses_the_rest():
    result = outbox_health(debezium(pending=4, oldest=3.0), {}, debezium(pending=2, oldest=1.0))
    assert result["verdict"] == "ok", result
    levels = {c["name"]: c["level"] for c in result["checks"]}
    assert levels == {"stalled_relay": "ok", "idle_relay": "n/a", "backlog_growth": "ok", "failures_increase": "n/a",
                      "dead_letters_increase": "n/a", "refresh_tokens_table": "n/a"}
    assert all("rows are deleted once relayed" in s for s in result["not_available"])
    assert [s.split(":")[0] for s in result["not_available"]] == ["Not available here"] * 3
    assert result["not_applicable"] == ["Not applicable: shop has no refresh-token table refresh_tokens and this "
                                        "release does not create one, so the refresh-token checks did not run."]
    assert result["reasons"] == ["The outbox is healthy: 4 pending (oldest 3 seconds), all within the limits "
                                 "compared with the baseline."]


def test_what_is_available_still_fails_on_a_debezium_outbox():
    result = outbox_health(debezium(pending=1500, oldest=900.0), {}, debezium(pending=2, oldest=1.0))
    assert result["verdict"] == "fail"
    assert names(result, "fail") == ["backlog_growth", "stalled_relay"]


def test_a_number_missing_from_the_baseline_only_makes_its_check_unavailable():
    before = stats()
    before["outbox"]["unavailable"] = {"failed": "the server stopped the query after verify_statement_timeout=30 s"}
    del before["outbox"]["counts"]["failed"]
    result = outbox_health(stats(failed=500), {}, before)
    assert [c["level"] for c in result["checks"] if c["name"] == "failures_increase"] == ["n/a"]
    assert "verify_statement_timeout=30 s" in result["not_available"][0]
    assert result["verdict"] == "ok"


@pytest.mark.parametrize("now, baseline, expect, verdict, phrase", [
    (stats(outbox=False, tokens=False), stats(outbox=False, tokens=False), [], "ok",
     "Nothing to judge"),
    (stats(outbox=False, tokens=False), None, [], "ok", "Nothing to judge"),
    (stats(outbox=False), stats(outbox=False), ["outbox"], "fail", "this release was to create it"),
    (stats(outbox=False), BASE, [], "fail", "existed at the baseline and is gone"),
], ids=["no outbox, none created: not applicable", "no baseline either: still not applicable",
        "created by the release but missing: fail", "dropped since the baseline: fail"])
def test_a_missing_outbox_is_not_applicable_unless_the_release_creates_or_dropped_it(now, baseline, expect, verdict,
                                                                                     phrase):
    result = outbox_health(now, {}, baseline, expect)
    assert result["verdict"] == verdict, result
    assert any(phrase in r for r in result["reasons"] + result["not_applicable"]), result


def test_no_outbox_at_all_says_not_applicable_and_judges_the_tokens():
    result = outbox_health(stats(outbox=False, revoked=5), {}, stats(outbox=False, revoked=5))
    assert result["verdict"] == "ok"
    assert result["not_applicable"][0].startswith("Not applicable: the database has no outbox table outbox")
    assert result["reasons"] == ["The refresh tokens are healthy: 5 revoked tokens, all within the limits compared "
                                 "with the baseline."]


def test_status_values_no_notion_covers_warn_and_are_named():
    now = stats()
    now["outbox"]["unmapped"] = {"archived": 12, "cancelled": None}
    result = outbox_health(now, {}, BASE)
    assert result["verdict"] == "warn"
    assert "'archived' (12 rows), 'cancelled'" in result["reasons"][0]
    assert outbox_health(now, {"unmapped_status_verdict": "ok"}, BASE)["verdict"] == "ok"


def test_a_setting_naming_a_missing_column_warns():
    now = stats()
    now["outbox"]["problems"] = ["verify_outbox_columns.delivered_at names column sent_on, which the table does not "
                                 "have"]
    now["outbox"]["unavailable"] = {"delivered_recent": now["outbox"]["problems"][0]}
    result = outbox_health(now, {}, BASE)
    assert result["verdict"] == "warn"
    assert result["reasons"][0].startswith("Outbox setting not usable: verify_outbox_columns.delivered_at")


def test_dead_letters_name_the_statuses_and_the_dead_letter_table():
    now, before = stats(dead=12), stats()
    for s in (now, before):
        s["outbox"]["status_map"] = {"dead": ["dlq", "parked"]}
        s["outbox"]["dead_letter_table"] = {"table": "outbox_dlq", "rows": 0}
    result = outbox_health(now, {}, before)
    assert "dead letters (status 'dlq'/'parked' and table outbox_dlq) rose from 0 to 12" in result["reasons"][0]


def test_expect_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="expect must be a list"):
        outbox_health(stats(), {}, BASE, "outbox")
