"""Lookup plugin: release_record, this host's release record as the phases read it (no task, no module)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_record
short_description: The release record of the current host (release.json), as earlier phases wrote it
description:
  - What one phase needs from another it reads from the release record, with this lookup. It reads
    C(<release_artifacts_dir>/<release_version>/release.json) on the controller, the file C(release_phase) writes.
  - By default (I(which=view)) under check mode the phases recorded by dry runs (C(release.check.json)) are laid
    over it, so a dry run sees what it planned; I(which=real) is release.json alone, I(which=check)
    release.check.json alone.
  - A missing record reads as an empty dict.
options:
  which:
    description: C(view), C(real) or C(check).
    type: str
    default: view
"""

EXAMPLES = r"""
- name: Find the backup this release took
  ansible.builtin.set_fact:
    __rollback_recorded: "{{ (lookup('release_record').phases | default({})).backup | default({}) }}"
"""

RETURN = r"""
_raw:
  description: The record (a dict).
  type: list
  elements: dict
"""

import os

import ansible.module_utils
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import record  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        which = self.get_option("which")
        if which not in ("view", "real", "check"):
            raise AnsibleLookupError("release_record: which must be view, real or check, got %r" % (which,))
        variables = variables or {}

        def var(name):
            return self._templar.template(variables.get(name))

        directory = record.record_dir(var("release_artifacts_dir"), var("release_version"), var("playbook_dir"),
                                      var("inventory_hostname"))
        if which == "view":
            return [record.view(directory, bool(var("ansible_check_mode")))]
        return [record.load(record.record_path(directory, which == "check"))]
