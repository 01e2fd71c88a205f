"""The one list of phases (vars/release.yml) and everything that follows it: a test fails when a copy disagrees."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT
from helpers import PHASES, RELEASE_PHASES


def load(path):
    return yaml.safe_load((ROOT / path).read_text())


def plays_of(playbook):
    """The plays of a playbook file (imports left out)."""
    return [p for p in load(playbook) if "ansible.builtin.import_playbook" not in p]


def test_every_phase_has_a_name_a_playbook_tags_and_a_role_and_names_are_unique():
    assert len(set(PHASES)) == len(PHASES)
    for phase in RELEASE_PHASES:
        assert set(phase) - {"tasks_from"} == {"name", "playbook", "tags", "role"}, phase
        assert (ROOT / "playbooks" / (phase["playbook"] + ".yml")).is_file(), phase
        assert (ROOT / "roles" / phase["role"] / "tasks" / "main.yml").is_file(), phase
        assert phase["tags"] and all(isinstance(t, str) for t in phase["tags"]), phase


def test_release_yml_imports_the_phase_playbooks_in_order_then_finish_and_says_the_release_goes_on():
    imports = load("release.yml")
    expected = []
    for phase in RELEASE_PHASES:
        if not expected or expected[-1] != phase["playbook"]:
            expected.append(phase["playbook"])
    names = [re.match(r"playbooks/(\w+)\.yml$", i["ansible.builtin.import_playbook"]).group(1) for i in imports]
    assert names == expected + ["finish"]
    for item in imports[:-1]:
        assert item["vars"] == {"release_goes_on": True, "release_inputs_checked": True}, item


@pytest.mark.parametrize("phase", RELEASE_PHASES, ids=lambda p: p["name"])
def test_the_phase_play_carries_the_phase_tags_the_connection_and_skips_failed_hosts(phase):
    play = plays_of("playbooks/%s.yml" % phase["playbook"])[0]
    assert play["tags"] == phase["tags"]
    assert play["hosts"] == "{{ release_hosts | default('databases') | release_phase_hosts(groups=groups) }}"
    assert play["vars_files"] == ["../vars/release.yml"]
    assert play["module_defaults"] == {"group/dbrelease.core.db": "{{ release_db_login }}"}
    roles = [(r["role"], "main") for r in play.get("roles", [])] + [
        (t["ansible.builtin.import_role"]["name"], t["ansible.builtin.import_role"].get("tasks_from", "main"))
        for t in play.get("tasks", []) if "ansible.builtin.import_role" in t]
    assert (phase["role"], phase.get("tasks_from", "main")) in roles


@pytest.mark.parametrize("playbook", sorted({p["playbook"] for p in RELEASE_PHASES} | {"maintenance_off"}))
def test_each_phase_playbook_run_alone_ends_with_the_finish_play(playbook):
    last = load("playbooks/%s.yml" % playbook)[-1]
    assert last == {"name": last["name"], "ansible.builtin.import_playbook": "finish.yml",
                    "vars": {"finish_alone": True}}


@pytest.mark.parametrize("phase", RELEASE_PHASES, ids=lambda p: p["name"])
def test_the_phase_is_recorded_by_its_role_through_the_phase_mechanism(phase):
    tasks_dir = ROOT / "roles" / phase["role"] / "tasks"
    text = "\n".join(p.read_text() for p in tasks_dir.glob("*.yml"))
    assert re.search(r"release_phase:\n\s+phase: %s\n" % phase["name"], text), phase
    # No role records through another role any more, and no role imports another role's tasks.
    assert "import_role" not in text and "include_role" not in text


def test_the_finish_play_runs_with_any_tag_and_no_phase_play_is_tagged_always_except_preflight():
    finish = plays_of("playbooks/finish.yml")[0]
    assert finish["tags"] == ["always"]
    always = [p["name"] for p in RELEASE_PHASES if "always" in p["tags"]]
    assert always == ["preflight", "lock"]


def test_the_awx_job_templates_have_one_template_per_phase_tag():
    templates = load("awx/job_templates.yml")["dbrelease_awx_job_templates"]
    phase_tags = [t["job_tags"] for t in templates if t["name"].startswith("dbrelease phase ")]
    expected = []
    for phase in RELEASE_PHASES:
        tag = [t for t in phase["tags"] if t != "always"][0]
        if tag not in expected:
            expected.append(tag)
    assert phase_tags == expected
    assert [t["name"] for t in templates if t["name"].startswith("dbrelease phase ")] == [
        "dbrelease phase %s" % tag for tag in expected]


def test_the_fleet_summary_orders_phases_as_the_list_does():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fleet_summary", ROOT / "callback_plugins/fleet_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PHASE_ORDER == PHASES


def test_the_molecule_verifiers_read_the_list():
    verify = load("molecule/ssh/verify.yml")[0]
    assert verify["vars_files"] == ["../../vars/release.yml"]
    assert "release_phases" in (ROOT / "molecule/ssh/verify.yml").read_text()
    assert "vars/release.yml" in (ROOT / "molecule/default/tests/test_release.py").read_text()


def test_the_readme_and_the_architecture_name_the_phases_in_order():
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("preflight ─"))
    shown = [part.strip().replace("maintenance on", "maintenance") for part in line.split("─")]
    tags = []
    for phase in RELEASE_PHASES:
        tag = [t for t in phase["tags"] if t != "always"][0]
        if tag not in tags:
            tags.append(tag)
    # The README's line is the runbook's view: the release's tags, with the lock and the finish's steps.
    assert [s for s in shown if s in tags] == tags
    arch = (ROOT / "docs/architecture.md").read_text()
    table = re.search(r"<!-- phases -->\n(.*?)<!-- /phases -->", arch, re.S).group(1)
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")]
    assert rows == list(PHASES)


def test_every_database_module_is_in_the_action_group_and_documents_the_connection_once():
    runtime = load("collections/ansible_collections/dbrelease/core/meta/runtime.yml")
    group = sorted(name.split(".")[-1] for name in runtime["action_groups"]["db"])
    users = sorted(p.stem for p in (ROOT / "library").glob("*.py") if "connection_argument_spec()" in p.read_text())
    assert group == users
    for name in users:
        text = (ROOT / "library" / (name + ".py")).read_text()
        assert "- dbrelease.core.connection" in text, name
        doc = text.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0]
        assert "login_password:" not in doc and "login_user:" not in doc, name


def test_no_role_default_or_task_carries_the_connection():
    for path in list((ROOT / "roles").glob("*/defaults/main.yml")) + list((ROOT / "roles").glob("*/tasks/*.yml")):
        text = path.read_text()
        assert not re.search(r"^\s*(\w+_)?login_(user|password|host|port|unix_socket):", text, re.M), path
        assert "release_db_admin_password" not in text or path.name == "credentials.yml", path
