"""Filter plugin: verified_releases, the release versions whose records show them verified in an environment."""

from __future__ import annotations

DOCUMENTATION = r"""
name: verified_releases
short_description: Versions of the release records that were verified in the given environment (for retention)
description:
  - Takes release records (the content of C(release.json) files) and returns the versions verified in
    I(environment), sorted. Backup retention deletes only the backups of these releases.
  - "A record counts when its environment (the record's C(environment), else its preflight phase's) is
    I(environment), its C(verify) phase is C(ok), its C(watch) phase (when recorded) is C(ok) or C(skipped), and it
    was not rolled back (C(rollback) C(ok)). A record without an environment does not count: an old record cannot
    prove where it was verified."
  - Pure function; raises an error naming the bad input.
positional: environment
options:
  _input:
    description: The records, as dicts or as the JSON text of the files. Empty entries, and text that is not a JSON
      object (a damaged record cannot prove anything), are skipped.
    type: list
    elements: raw
    required: true
  environment:
    description: The environment the release must have been verified in.
    type: str
    default: production
"""

EXAMPLES = r"""
- name: The releases whose backups retention may delete
  ansible.builtin.set_fact:
    __backup_verified_releases: "{{ records | verified_releases('production') }}"
"""

RETURN = r"""
_value:
  description: The versions, sorted.
  type: list
  elements: str
"""

import json

from ansible.errors import AnsibleFilterError


def _status(record, phase):
    entry = (record.get("phases") or {}).get(phase)
    return entry.get("status") if isinstance(entry, dict) else None


def verified_releases(records, environment="production"):
    """Pure: the versions among `records` verified in `environment` (see DOCUMENTATION)."""
    if records is None:
        return []
    if not isinstance(records, (list, tuple)):
        raise AnsibleFilterError("verified_releases: expected a list of release records, got %s"
                                 % type(records).__name__)
    found = set()
    for record in records:
        if isinstance(record, str):
            try:
                record = json.loads(record)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
        if not record:
            continue
        if not isinstance(record, dict):
            raise AnsibleFilterError("verified_releases: each record must be a dict, got %r" % (record,))
        preflight = (record.get("phases") or {}).get("preflight") or {}
        where = record.get("environment") or (preflight.get("environment") if isinstance(preflight, dict) else None)
        if where != environment or not record.get("version"):
            continue
        if _status(record, "verify") != "ok" or _status(record, "watch") not in (None, "ok", "skipped"):
            continue
        if _status(record, "rollback") == "ok":
            continue
        found.add(str(record["version"]))
    return sorted(found)


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"verified_releases": verified_releases}
