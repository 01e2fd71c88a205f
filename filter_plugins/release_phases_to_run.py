"""Filter plugin: release_phases_to_run, the names of the phases a run executes, from its tags."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_phases_to_run
short_description: The phases (of release_phases) that a run with these tags executes
description:
  - Ansible's tag rules, applied to each phase's play tags (C(release_phases) in C(vars/release.yml)) - without
    C(--tags), every phase; with C(--tags), the phases sharing a tag and those tagged C(always); C(--skip-tags)
    removes those sharing a tag (C(always) included, when skipped by name).
  - Used by preflight to check, before anything changes, the privileges of the phases that will run.
positional: run_tags, skip_tags
options:
  _input:
    description: The list of phases, each with C(name) and C(tags).
    type: list
    elements: dict
    required: true
  run_tags:
    description: C(ansible_run_tags) (C([all]) without C(--tags)).
    type: list
    elements: str
  skip_tags:
    description: C(ansible_skip_tags).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the privileges of the phases this run executes
  db_privileges:
    database: shop
    phases: "{{ release_phases | release_phases_to_run(ansible_run_tags, ansible_skip_tags) }}"
"""

RETURN = r"""
_value:
  description: Phase names, in the release's order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def release_phases_to_run(phases, run_tags=None, skip_tags=None):
    if not isinstance(phases, (list, tuple)):
        raise AnsibleFilterError("release_phases_to_run expects the list of phases, got %s" % type(phases).__name__)
    run = set(run_tags or ["all"])
    skip = set(skip_tags or [])
    names = []
    for phase in phases:
        tags = set(phase.get("tags") or [])
        if "all" in run or "tagged" in run:
            selected = "never" not in tags or bool(tags & run)
        else:
            selected = bool(tags & run) or "always" in tags
        if tags & skip:
            selected = False
        if selected:
            names.append(phase["name"])
    return names


class FilterModule:
    def filters(self):
        return {"release_phases_to_run": release_phases_to_run}
