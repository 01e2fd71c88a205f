"""Filter plugin: release_record_dir, where a host's release record lives."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_record_dir
short_description: The release directory of a host, C(<release_artifacts_dir>/<release_version>)
description:
  - The same directory that C(release_phase) and C(release_record) write, for plays that need it of many hosts at
    once (the fleet's gates, preflight's check that no two databases share a record).
  - C(release_artifacts_dir) defaults to C(<playbook dir>/artifacts/<host>).
  - Fails, with the reasons, for a C(release_version) that the C(release_version_problems) filter refuses, so no
    directory is ever named after one.
positional: version, playbook_dir, host
options:
  _input:
    description: The host's C(release_artifacts_dir), or an empty value for the default.
    type: raw
    required: true
  version:
    description: C(release_version).
    type: str
    required: true
  playbook_dir:
    description: C(playbook_dir), for the default.
    type: str
    required: true
  host:
    description: The inventory host, for the default.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Note where each database's release record is
  ansible.builtin.set_fact:
    __fleet_record_dir: >-
      {{ release_artifacts_dir | default('') | release_record_dir(release_version, playbook_dir, inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: The release directory.
  type: str
"""

import os

import ansible.module_utils
from ansible.errors import AnsibleFilterError

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.record import BadVersion, record_dir  # noqa: E402


def release_record_dir(artifacts_dir, version, playbook_dir, host):
    try:
        return record_dir(artifacts_dir or None, version, playbook_dir, host)
    except BadVersion as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"release_record_dir": release_record_dir}
