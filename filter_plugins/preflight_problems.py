"""Filter plugin: preflight_problems, what is wrong with a release's inputs before anything starts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preflight_problems
short_description: The problems of a release's inputs, one message each (empty when there are none)
description:
  - Checks the inputs the preflight phase validates before it connects anywhere; each message names the input and
    what to change. The files are looked for on the controller, where filters run.
  - C(release_version) must be usable as a git tag and a directory name; C(release_db_name) must be set;
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
import re

from ansible.errors import AnsibleFilterError

VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def preflight_problems(inputs):
    if not isinstance(inputs, dict):
        raise AnsibleFilterError("preflight_problems expects a dict of inputs, got %s" % type(inputs).__name__)
    problems = []
    version = inputs.get("version") or ""
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        problems.append("release_version must be set to a version usable as a git tag and a directory name, for "
                        "example -e release_version=v1.2.0-canonical-schema (got '%s')." % version)
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
