"""Filter plugin: release_version_problems, why a release version cannot name a git tag, a directory and backups."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_version_problems
short_description: Why a release version is unusable (empty list when it is fine)
description:
  - The release version names the git tag (C(refs/tags/<version>)), the release's directory under
    C(release_artifacts_dir) and the backups' label, so it must be all three at once.
  - Git's rules (C(git check-ref-format)) - no C(..), no C(@{), no C(.lock) or C(.) at the end, no control
    characters, spaces, C(~), C(^), C(:), C(?), C(*), C([), backslashes, no C(/) at either end and no C(//) - are
    checked together with the stricter rules of a file name and a backup label - ASCII letters, digits, C(.), C(_)
    and C(-) only, starting with a letter or a digit (so never C(..) or C(.hidden), never an option C(-x)), at
    most 64 characters (backup labels are cut there, so two longer versions could share one).
  - Each problem is a sentence naming what was found; the version itself is quoted with C(repr()), so a newline or
    a control character in it shows as an escape, never as a line break in the message.
positional: _input
options:
  _input:
    description: The release version.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Check the release version once, before anything is written
  ansible.builtin.assert:
    that:
      - release_version | release_version_problems | length == 0
    fail_msg: "release_version: {{ release_version | release_version_problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: The problems found, one sentence each; empty when the version is usable.
  type: list
  elements: str
"""

import os

import ansible.module_utils

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.version import problems  # noqa: E402


def release_version_problems(value):
    return problems(value)


class FilterModule:
    def filters(self):
        return {"release_version_problems": release_version_problems}
