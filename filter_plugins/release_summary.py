"""Filter plugin: release_summary, the outputs of a release that AWX shows (set_stats), from its record."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_summary
short_description: The key outputs of a release, from its record, for C(set_stats) (AWX's job artifacts)
description:
  - C(result) (C(failed) when a phase failed, C(rolled back) after a successful rollback, else C(ok)), the failed
    phases, each phase's status, the backup's path and sha256, the verify verdict, the git tag, the maintenance
    state, and where the record and the report are.
positional: version, record_dir
options:
  _input:
    description: The release record.
    type: dict
    required: true
  version:
    description: The release version.
    type: str
    required: true
  record_dir:
    description: The release directory (for the paths of the record and the report).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Publish the release outputs for AWX
  ansible.builtin.set_stats:
    data:
      dbrelease: "{{ {inventory_hostname: record | release_summary(release_version, record_dir)} }}"
"""

RETURN = r"""
_value:
  description: C(version), C(database), C(result), C(failed_phases), C(phases), C(backup), C(verdict), C(tag),
    C(maintenance), C(record), C(report).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def release_summary(record, version, record_dir):
    if not isinstance(record, dict):
        raise AnsibleFilterError("release_summary expects the release record (a dict), got %s" % type(record).__name__)
    phases = record.get("phases") or {}
    failed = [name for name, entry in phases.items() if (entry or {}).get("status") == "failed"]
    backup = phases.get("backup") or {}
    return {
        "version": version,
        "database": record.get("database", ""),
        "result": "failed" if failed else ("rolled back" if (phases.get("rollback") or {}).get("status") == "ok"
                                           else "ok"),
        "failed_phases": failed,
        "phases": {name: (entry or {}).get("status") for name, entry in phases.items()},
        "backup": {"path": backup.get("path", ""), "sha256": backup.get("sha256", "")},
        "verdict": (phases.get("verify") or {}).get("verdict", ""),
        "tag": (phases.get("tag") or {}).get("tag", ""),
        "maintenance": (phases.get("maintenance") or {}).get("state", "off"),
        "record": "%s/release.json" % record_dir,
        "report": "%s/report.md" % record_dir,
    }


class FilterModule:
    def filters(self):
        return {"release_summary": release_summary}
