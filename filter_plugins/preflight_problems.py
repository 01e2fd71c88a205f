"""Filter plugin: preflight_problems, what is wrong with a release's inputs before anything starts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preflight_problems
short_description: The problems of a release's inputs, one message each (empty when there are none)
description:
  - Checks the inputs the preflight phase validates before it connects anywhere; each message names the input and
    what to change. The files are looked for on the controller, where filters run.
  - C(release_version) must be usable as a git tag, a directory name and a backup label (the rules of the
    C(release_version_problems) filter, git check-ref-format's and a file name's); C(release_db_name) must be set;
    C(release_ddl_files) must be a list of existing files; when C(release_migration_command) is set,
    C(release_migration_chdir) must be an existing directory.
options:
  _input:
    description: The inputs, a dict with C(version), C(db_name), C(ddl_files), C(migration_command),
      C(migration_chdir) and C(host) (for the messages).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the inputs
  ansible.builtin.assert:
    that: __preflight_problems | length == 0
    fail_msg: "{{ __preflight_problems | join(' ') }}"
  vars:
    __preflight_problems: "{{ {'version': preflight_version, 'db_name': preflight_db_name} | preflight_problems }}"
"""

RETURN = r"""
_value:
  description: One message per problem.
  type: list
  elements: str
"""

import os

import ansible.module_utils
from ansible.errors import AnsibleFilterError

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.version import problems as version_problems  # noqa: E402


def preflight_problems(inputs):
    if not isinstance(inputs, dict):
        raise AnsibleFilterError("preflight_problems expects a dict of inputs, got %s" % type(inputs).__name__)
    problems = []
    found = version_problems(inputs.get("version") or "")
    if found:
        problems.append("release_version must be set to a version usable as a git tag, a directory name and a backup "
                        "label, for example -e release_version=v1.2.0-canonical-schema: %s." % "; ".join(found))
    if not inputs.get("db_name"):
        problems.append("release_db_name must be set in the inventory (group_vars/databases) for %s."
                        % inputs.get("host", "this host"))
    ddl_files = inputs.get("ddl_files")
    if ddl_files is None:
        ddl_files = []
    if isinstance(ddl_files, (str, bytes)) or not isinstance(ddl_files, (list, tuple)):
        problems.append("release_ddl_files must be a list of DDL file paths, applied in order (got %s)." % ddl_files)
    else:
        missing = [str(path) for path in ddl_files if not os.path.isfile(str(path))]
        if missing:
            problems.append("DDL file(s) not found on the controller: %s. Fix release_ddl_files." % ", ".join(missing))
    if inputs.get("migration_command"):
        chdir = inputs.get("migration_chdir") or ""
        if not chdir or not os.path.isdir(str(chdir)):
            problems.append("release_migration_command is set but its directory release_migration_chdir ('%s') does "
                            "not exist on the controller." % chdir)
    return problems


class FilterModule:
    def filters(self):
        return {"preflight_problems": preflight_problems}
