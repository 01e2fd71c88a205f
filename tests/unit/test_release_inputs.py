"""Role inputs are validated once per release, in the preflight play (action release_inputs), and the plays of
release.yml import their roles with rolespec_validate off: a test fails when an import would skip a validation that
preflight does not do, or when a play would validate again."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from helpers import RELEASE_PHASES

spec = importlib.util.spec_from_file_location("release_inputs_action", ROOT / "action_plugins/release_inputs.py")
release_inputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(release_inputs)

OFF_INSIDE_RELEASE = "{{ not (release_inputs_checked | default(false) | bool) }}"


@pytest.mark.parametrize("phases, names, expected", [
    ([], [], []),
    ([{"role": "backup"}], [], [("backup", "main")]),
    ([{"role": "verify", "tasks_from": "baseline"}, {"role": "schema"}, {"role": "verify"}], ["verify"],
     [("verify", "baseline"), ("schema", "main"), ("verify", "main")]),
    ([{"role": "lock"}], ["lock/release", "lock", "notify/finish", "lock/release"],
     [("lock", "main"), ("lock", "release"), ("notify", "finish")]),
])
def test_entry_points_of_the_phases_then_the_named_ones_each_once(phases, names, expected):
    assert release_inputs.entry_points(phases, names) == expected


def specs(role) -> dict:
    path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    return (yaml.safe_load(path.read_text()).get("argument_specs") or {}) if path.is_file() else {}


def preflight_play() -> dict:
    return yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())[0]


def validated_by_preflight() -> set:
    """What the preflight play's release_inputs task validates in a full release: every phase's role at its entry
    point, and the entry points it names."""
    task = next(t for t in preflight_play()["pre_tasks"] if "release_inputs" in t)
    return set(release_inputs.entry_points(RELEASE_PHASES, task["release_inputs"]["roles"]))


def imports(path: Path):
    """(task, role, entry point) of every import_role/include_role of a playbook or task file, in plays and blocks."""
    data = yaml.safe_load(path.read_text()) or []

    def walk(items):
        for item in items or []:
            for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                if key in item:
                    yield item, item[key]["name"], item[key].get("tasks_from", "main")
            for key in ("tasks", "pre_tasks", "post_tasks", "block", "rescue", "always"):
                yield from walk(item.get(key))
    return list(walk(data))


RELEASE_FILES = sorted({ROOT / "playbooks" / ("%s.yml" % p["playbook"]) for p in RELEASE_PHASES}
                       | {ROOT / "playbooks/finish.yml", ROOT / "playbooks/tasks/finish.yml"})


def test_the_phase_plays_list_no_roles_which_ansible_would_always_validate():
    for path in RELEASE_FILES:
        for play in yaml.safe_load(path.read_text()):
            assert not play.get("roles"), "%s: %s uses roles:, validated by Ansible in every run" % (
                path.name, play.get("name"))


@pytest.mark.parametrize("path", RELEASE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_role_release_yml_imports_is_validated_once_by_preflight_and_not_again(path):
    preflight = validated_by_preflight()
    for task, role, entry in imports(path):
        key = next(k for k in task if k.endswith(("import_role", "include_role")))
        flag = task[key].get("rolespec_validate", True)
        if entry not in specs(role):
            continue  # no spec for this entry point: Ansible validates nothing there
        assert (role, entry) in preflight, "%s: %s/%s has a spec that preflight's release_inputs does not check" % (
            path.name, role, entry)
        if path.name == "preflight.yml":
            assert flag is False, "%s: %s/%s is validated by release_inputs in the same play" % (path.name, role, entry)
        else:
            assert flag == OFF_INSIDE_RELEASE, "%s: %s/%s would be validated again inside release.yml" % (
                path.name, role, entry)


def test_the_preflight_play_validates_first_and_every_entry_point_it_names_has_a_spec():
    play = preflight_play()
    assert "release_inputs" in play["pre_tasks"][0]
    for role, entry in validated_by_preflight():
        assert entry in specs(role) or not specs(role), (role, entry)
    names = play["pre_tasks"][0]["release_inputs"]["roles"]
    assert all(re.fullmatch(r"\w+(/\w+)?", n) and specs(n.split("/")[0]) for n in names), names
