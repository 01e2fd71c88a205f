"""Lookup plugin: release_records, the text of every release record under a directory (no task, no module)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_records
short_description: The text of the release records (release.json) in a directory and its subdirectories
description:
  - For each directory given, the contents of C(<dir>/release.json) and of C(<dir>/*/release.json), in path
    order, read on the controller. One level down is where C(<release_artifacts_dir>/<version>/release.json) is.
  - A directory that does not exist gives nothing. A record that cannot be read is an error naming it.
  - Used by the backup role's retention to tell which releases were verified, without the module process that
    C(ansible.builtin.find) costs. C(ansible.builtin.fileglob) cannot replace it, since it takes no wildcard in a
    directory part.
"""

EXAMPLES = r"""
- name: Show how many release records this host has
  ansible.builtin.debug:
    msg: "{{ query('release_records', '/srv/dbrelease/artifacts/db1') | length }}"
"""

RETURN = r"""
_raw:
  description: The text of each record.
  type: list
  elements: str
"""

import glob
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def record_paths(directory: str) -> list[str]:
    """`<directory>/release.json` and `<directory>/*/release.json` that exist, sorted."""
    if not directory or not os.path.isdir(directory):
        return []
    escaped = glob.escape(directory)
    found = glob.glob(os.path.join(escaped, "release.json")) + glob.glob(os.path.join(escaped, "*", "release.json"))
    return sorted(p for p in found if os.path.isfile(p))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        texts = []
        for term in terms:
            for path in record_paths(str(term)):
                try:
                    with open(path, encoding="utf-8") as handle:
                        texts.append(handle.read())
                except (OSError, UnicodeDecodeError) as exc:
                    raise AnsibleLookupError("release_records: cannot read %s: %s" % (path, exc)) from None
        return texts
