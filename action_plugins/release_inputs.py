"""Checks the inputs of every role a run uses against the role's argument specs, once, in the preflight play.

Ansible validates a role's inputs against `meta/argument_specs.yml` with one task at every import or include of the
role (a worker process each). The plays of release.yml import their roles with
`rolespec_validate` off instead, and this action, the first task of the preflight play, validates the same specs
with the same validator, before anything else runs: each named entry point's options, with the values the role
would see (the play's variables, the inventory and extra vars, over the role's `defaults/main.yml`). A phase
playbook run alone (not from release.yml) validates its role the usual way. See library/release_inputs.py.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "roles")
ARGUMENT_SPEC = dict(
    phases=dict(type="list", elements="dict", default=[]),
    roles=dict(type="list", elements="str", default=[]),
    roles_dir=dict(type="path", default=ROLES_DIR),
)


def entry_points(phases, names) -> list:
    """Pure: the (role, entry point) pairs of the phases (their `role` and `tasks_from`), then of the `role` or
    `role/entry` strings, in order, each once; the entry point defaults to main."""
    out = []
    for phase in phases:
        pair = (phase["role"], phase.get("tasks_from") or "main")
        if pair not in out:
            out.append(pair)
    for name in names:
        role, _, entry = str(name).partition("/")
        if (role, entry or "main") not in out:
            out.append((role, entry or "main"))
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        self._files: dict = {}
        errors, checked = [], []
        for role, entry in entry_points(args["phases"], args["roles"]):
            role_dir = os.path.join(args["roles_dir"], role)
            specs = (self._yaml(role_dir, "meta", "argument_specs.yml").get("argument_specs") or {})
            if entry not in specs:
                continue  # an entry point without a spec: nothing to validate, as Ansible does
            options = specs[entry].get("options") or {}
            messages = self._validate(role_dir, options, task_vars)
            checked.append("%s/%s" % (role, entry))
            errors += ["role '%s' (entry point %s, roles/%s/meta/argument_specs.yml): %s" % (role, entry, role, msg)
                       for msg in messages]
        result.update(changed=False, checked=checked)
        if errors:
            result.update(failed=True, argument_errors=errors,
                          msg="Validation of arguments failed:\n%s" % "\n".join(errors))
        else:
            result["msg"] = "The arg spec validation passed (%s)" % ", ".join(checked)
        return result

    def _yaml(self, role_dir, *parts) -> dict:
        """A role's YAML file as Ansible loads it for the role (its strings trusted as templates), or {}: from the
        loader's cache (the playbook's roles were loaded before the run), read-only, so without the deep copy that
        the loader makes of every hit otherwise."""
        path = os.path.join(role_dir, *parts)
        if path not in self._files:
            self._files[path] = ((self._loader.load_from_file(path, trusted_as_template=True, unsafe=True) or {})
                                 if os.path.isfile(path) else {})
        return self._files[path]

    def _validate(self, role_dir, options, task_vars) -> list:
        """The error messages of Ansible's role validator for the options of one entry point."""
        defaults = self._yaml(role_dir, "defaults", "main.yml")
        internals = self._yaml(role_dir, "vars", "main.yml")
        # What the role's tasks would see: its internals (vars/main.yml, __<role>_* only) over the play's variables
        # over its defaults; only the options are templated, each reference resolved from the same layers.
        available = dict(defaults)
        available.update(task_vars)
        available.update(internals)
        values = {name: available[name] for name in options if name in available}
        templar = self._templar.copy_with_new_env(available_variables=available)
        try:
            values = templar.template(values)
        except Exception as exc:  # an input whose template fails would fail the role's own validation task too
            raise AnsibleActionFail("Validation of arguments failed: the inputs of %s: %s"
                                    % (os.path.basename(role_dir), exc)) from exc
        outcome = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True)
        return list(outcome.error_messages)
