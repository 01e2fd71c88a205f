"""The filters that replaced long Jinja: hosts of a phase play, record location, preflight's input checks, the
report's facts, the AWX summary, and the fleet gate."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError
from conftest import ROOT
from helpers import RELEASE_PHASES

sys.path.insert(0, str(ROOT / "filter_plugins"))
from fleet_gate_reason import fleet_gate_reason  # noqa: E402
from preflight_problems import preflight_problems  # noqa: E402
from release_phase_hosts import release_phase_hosts  # noqa: E402
from release_record_dir import release_record_dir  # noqa: E402
from release_report import duration, next_steps, outputs_line, release_report  # noqa: E402
from release_summary import release_summary  # noqa: E402

T0, T1 = "2026-01-01T10:00:00+00:00", "2026-01-01T10:03:05+00:00"


@pytest.mark.parametrize("hosts, which, expected", [
    ("databases", "ok", ["databases", "!dbrelease_failed"]),
    (["db1", "db2"], "ok", ["db1", "db2", "!dbrelease_failed"]),
    ([], "ok", []),
    ("", "failed", []),
    ("databases", "failed", ["databases", "&dbrelease_failed"]),
    (["db1"], "all", ["db1"]),
])
def test_phase_plays_leave_failed_hosts_out_and_an_empty_batch_matches_nothing(hosts, which, expected):
    assert release_phase_hosts(hosts, which) == expected


def test_phase_hosts_refuse_what_is_not_a_pattern():
    with pytest.raises(AnsibleFilterError, match="host pattern"):
        release_phase_hosts({"db1": 1})
    with pytest.raises(AnsibleFilterError, match="which"):
        release_phase_hosts("db1", "some")


@pytest.mark.parametrize("artifacts, expected", [
    ("/srv/art/db1", "/srv/art/db1/v1"),
    ("", "/play/artifacts/db1/v1"),
    (None, "/play/artifacts/db1/v1"),
])
def test_the_record_dir_is_the_artifacts_dir_and_the_version(artifacts, expected):
    assert release_record_dir(artifacts, "v1", "/play", "db1") == expected
    assert release_record_dir(artifacts, "", "/play", "db1").endswith("/unversioned")


def inputs(tmp_path, **changes):
    ddl = tmp_path / "a.sql"
    ddl.write_text("CREATE TABLE IF NOT EXISTS t (id INT);\n")
    base = {"version": "v1.2.0", "db_name": "shop", "ddl_files": [str(ddl)], "migration_command": "",
            "migration_chdir": "", "host": "db1"}
    base.update(changes)
    return base


@pytest.mark.parametrize("changes, problem", [
    ({}, None),
    ({"version": ""}, "release_version must be set"),
    ({"version": "v1/x"}, "release_version must be set"),
    ({"version": "v1\n"}, "release_version must be set"),
    ({"version": "v9..1"}, "contains '..', which git refuses in a tag name"),
    ({"version": "../../etc"}, "starts with '.'"),
    ({"db_name": ""}, "release_db_name must be set in the inventory (group_vars/databases) for db1."),
    ({"ddl_files": "a.sql"}, "release_ddl_files must be a list"),
    ({"ddl_files": ["/nowhere.sql"]}, "DDL file(s) not found on the controller: /nowhere.sql."),
    ({"migration_command": "npm run m", "migration_chdir": "/nowhere"}, "release_migration_chdir ('/nowhere')"),
])
def test_preflight_problems_name_the_input_and_what_to_change(tmp_path, changes, problem):
    problems = preflight_problems(inputs(tmp_path, **changes))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def test_durations_and_outputs_read_like_the_report():
    assert duration({"started": T0, "finished": T1}) == "3m05s"
    assert duration({"started": T0, "finished": "2026-01-01T10:00:42+00:00"}) == "42s"
    assert duration({"started": T0}) == ""
    line = outputs_line({"status": "ok", "changed": True, "started": T0, "path": "/b|x", "ok": False, "n": None,
                         "plan": [1], "nested": {"a": 1}, "empty": ""})
    assert line == "n: –; ok: no; path: /b\\|x"


def phase(status, **extra):
    return dict(status=status, changed=False, started=T0, finished=T1, **extra)


def test_a_failed_release_names_the_phase_and_the_commands_that_rerun_it():
    record = {"version": "v1", "database": "shop", "phases": {
        "preflight": phase("ok"), "lock": phase("ok"), "maintenance": phase("ok", driver="file", state="off"),
        "backup": phase("ok", path="/b.sql.gz"), "verify_baseline": phase("failed", error="no table"),
        "rollback_like": phase("ok")}}
    report = release_report(record, RELEASE_PHASES, "inv/staging")
    assert report["title"] == "FAILED at verify_baseline"
    assert [r["name"] for r in report["rows"]] == ["preflight", "lock", "maintenance", "backup", "verify_baseline",
                                                   "rollback_like"]
    assert report["failed"] == [{"name": "verify_baseline", "error": "no table"}]
    text = "\n".join(report["next"])
    base = "ansible-playbook release.yml -i inv/staging -e release_version=v1"
    assert "`%s --tags maintenance,schema`" % base in text
    assert "`%s --tags maintenance,schema,migrate,verify,tag`" % base in text
    assert "rollback.yml -i inv/staging -e release_version=v1 -e release_rollback_confirm=true" in text


@pytest.mark.parametrize("phases, title", [
    ({"preflight": phase("ok"), "verify": phase("ok")}, "OK"),
    ({"preflight": phase("ok"), "schema": phase("running")}, "INCOMPLETE (schema did not finish)"),
    ({"schema": phase("failed"), "rollback": phase("ok")}, "FAILED at schema"),
    ({"schema": phase("ok"), "rollback": phase("ok")}, "ROLLED BACK"),
    ({}, "OK"),
])
def test_the_report_title_says_how_the_release_ended(phases, title):
    assert release_report({"phases": phases}, RELEASE_PHASES, "i")["title"] == title


def test_a_preflight_failure_says_to_run_the_release_again_and_maintenance_left_on_is_named():
    steps = next_steps({"phases": {"preflight": phase("failed"), "maintenance": phase("ok", state="on")}},
                       RELEASE_PHASES, "i", "v1")
    assert steps[0] == "- Fix the cause above, then run the release again: " \
                       "`ansible-playbook release.yml -i i -e release_version=v1`"
    assert "- Maintenance mode is ON: switch it off when ready:" in steps


def test_the_report_refuses_what_is_not_a_record():
    with pytest.raises(AnsibleFilterError, match="release record"):
        release_report([], RELEASE_PHASES, "i")


def test_the_awx_summary_carries_the_result_the_backup_and_the_failed_phases():
    record = {"database": "shop", "phases": {"backup": phase("ok", path="/b", sha256="ab"),
                                             "schema": phase("failed"), "maintenance": phase("ok", state="on")}}
    summary = release_summary(record, "v1", "/art/v1")
    assert summary["result"] == "failed" and summary["failed_phases"] == ["schema"]
    assert summary["backup"] == {"path": "/b", "sha256": "ab"} and summary["maintenance"] == "on"
    assert summary["record"] == "/art/v1/release.json" and summary["phases"]["backup"] == "ok"
    assert release_summary({"phases": {"rollback": phase("ok")}}, "v1", "/a")["result"] == "rolled back"


STARTED = "2026-01-01T09:00:00+00:00"


@pytest.mark.parametrize("record, check, reason", [
    ({"phases": {"verify": phase("ok")}}, False, ""),
    ({}, False, "no release record at /r.json"),
    ({"phases": {"schema": phase("failed", error="bad DDL"), "verify": phase("ok")}}, False,
     "phase schema failed: bad DDL"),
    ({"phases": {"backup": phase("running")}}, False, "phase backup running: no error recorded"),
    ({"phases": {"schema": phase("ok")}}, False, "verify did not run"),
    ({"phases": {"verify": phase("skipped")}}, False, "verify is skipped"),
    ({"phases": {"verify": phase("skipped")}}, True, ""),
    ({"phases": {"verify": dict(phase("ok"), finished="2026-01-01T08:00:00+00:00")}}, False,
     "verify passed before this run started"),
])
def test_the_fleet_gate_judges_a_database_by_its_record(record, check, reason):
    assert fleet_gate_reason(record, STARTED, check, "/r.json") == reason
