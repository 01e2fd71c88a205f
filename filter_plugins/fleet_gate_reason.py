"""Filter plugin: fleet_gate_reason, why a database of a fleet stage is unhealthy (empty when it is healthy)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_gate_reason
short_description: Why one database of a fleet stage did not pass, judged by its release record ("" when it did)
description:
  - The fleet's gate (fleet.yml) after the canary and after each batch. A database is healthy when no phase of its
    record is left C(failed) or C(running) and its verify phase passed during this run (C(ok); a dry run may record
    it C(skipped)).
positional: started, check_mode, path
options:
  _input:
    description: The database's release record (empty when there is none).
    type: dict
    required: true
  started:
    description: When this fleet run started (its plan's C(started)); verify must have finished after it.
    type: str
    required: true
  check_mode:
    description: The fleet run is a dry run.
    type: bool
    default: false
  path:
    description: Where the record is, for the message when there is none.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Judge a database by its release record
  ansible.builtin.debug:
    msg: "{{ (lookup('ansible.builtin.file', path) | from_json) | fleet_gate_reason(__fleet_plan.started) }}"
"""

RETURN = r"""
_value:
  description: The reason the database is unhealthy, or an empty string.
  type: str
"""

from ansible.errors import AnsibleFilterError


def fleet_gate_reason(record, started, check_mode=False, path=""):
    if record is None:
        record = {}
    if not isinstance(record, dict):
        raise AnsibleFilterError("fleet_gate_reason expects a release record (a dict), got %s"
                                 % type(record).__name__)
    phases = record.get("phases") or {}
    stuck = [name for name, entry in phases.items() if (entry or {}).get("status") in ("failed", "running")]
    if stuck:
        first = phases[stuck[0]]
        return "phase %s %s: %s" % (", ".join(stuck), first.get("status"), first.get("error") or "no error recorded")
    if not record:
        return "no release record at %s" % path
    verify = phases.get("verify")
    if verify is None:
        return "verify did not run"
    if verify.get("status") not in (("ok", "skipped") if check_mode else ("ok",)):
        return "verify is %s" % verify.get("status")
    if str(verify.get("finished") or "") < str(started or ""):
        return "verify passed before this run started"
    return ""


class FilterModule:
    def filters(self):
        return {"fleet_gate_reason": fleet_gate_reason}
