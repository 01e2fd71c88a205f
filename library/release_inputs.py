#!/usr/bin/python
"""Documentation of the release_inputs action (action_plugins/release_inputs.py); it runs only as an action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_inputs
short_description: Validate the inputs of the roles a release uses against their argument specs, once
description:
  - Ansible validates a role's inputs against its C(meta/argument_specs.yml) with one task at each import or include
    of the role. The plays of C(release.yml) import their roles with C(rolespec_validate) off, and the preflight play
    runs this action first instead - the same specs, the same validator
    (C(ansible.module_utils.common.arg_spec.ArgumentSpecValidator), as C(ansible.builtin.validate_argument_spec)),
    for every entry point of I(phases) and I(roles), before anything else runs. A bad input of any phase is
    refused before the release starts, not when its phase comes.
  - The values validated are those the role would see, the play's variables (inventory, group_vars, extra vars,
    C(vars/release.yml)) over the role's C(defaults/main.yml), templated.
  - An entry point without a spec is left out, as Ansible does. The argument specs stay the roles' documented
    interface (C(ansible-doc -t role)); a phase playbook run alone (not from C(release.yml)) validates its role the
    usual way.
  - Runs in Ansible's worker process on the controller (no module process); and changes nothing.
options:
  phases:
    description: Phases of C(release_phases) (C(vars/release.yml)) whose roles to validate, each at its entry point
      (C(tasks_from), by default C(main)).
    type: list
    elements: dict
    default: []
  roles:
    description: More entry points to validate, C(<role>) (its C(main) entry point) or C(<role>/<entry point>);
      each entry point is validated once.
    type: list
    elements: str
    default: []
  roles_dir:
    description: Where the roles are.
    type: path
    default: the C(roles) directory beside C(action_plugins)
attributes:
  check_mode:
    support: full
    details: read-only.
  diff_mode:
    support: none
author: dbrelease
"""

EXAMPLES = r"""
- name: Validate the inputs of the roles this run uses
  release_inputs:
    phases: >-
      {{ release_phases | selectattr('name', 'in', release_phases | release_phases_to_run(ansible_run_tags,
         ansible_skip_tags)) | list }}
    roles: [lock/release, notify/finish]
"""

RETURN = r"""
checked:
  description: The entry points validated, C(<role>/<entry point>).
  returned: always
  type: list
  elements: str
argument_errors:
  description: Each error, naming the role, its entry point and the input.
  returned: on failure
  type: list
  elements: str
"""

if __name__ == "__main__":
    raise SystemExit("release_inputs runs only as an action plugin (action_plugins/release_inputs.py)")
