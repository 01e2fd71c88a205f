"""Filter plugin: release_phase_hosts, the hosts a phase play runs on (its pattern, without failed hosts)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_phase_hosts
short_description: The host patterns of a phase play, with or without the hosts where a phase failed
description:
  - Every phase play targets C(release_hosts) (C(databases) by default; fleet.yml passes each batch's hosts) except
    the group C(dbrelease_failed), which C(release_phase) fills when a phase fails (I(which=ok)). The finish play of
    a release targets them all, failed hosts included, to clean up and then stop them (I(which=all)); the finish
    play of a phase playbook run alone only the failed ones (I(which=failed)).
  - Returns a list of patterns, or an empty list when C(_input) names no host (an empty batch must match nothing,
    never every host but the failed ones).
positional: which
options:
  _input:
    description: A host pattern (string, possibly C(a:b)) or a list of host names or patterns.
    type: raw
    required: true
  which:
    description: C(ok) leaves out the failed hosts, C(failed) keeps only them, C(all) keeps every host.
    type: str
    choices: [ok, failed, all]
    default: ok
"""

EXAMPLES = r"""
- name: "Backup: consistent dump, compressed, checksummed, copied off the host"
  hosts: "{{ release_hosts | default('databases') | release_phase_hosts }}"
  roles:
    - role: backup
"""

RETURN = r"""
_value:
  description: The patterns (with C(!dbrelease_failed) or C(&dbrelease_failed) last); empty when there is no host.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

FAILED_GROUP = "dbrelease_failed"


def release_phase_hosts(hosts, which="ok"):
    if which not in ("ok", "failed", "all"):
        raise AnsibleFilterError("release_phase_hosts: which must be ok, failed or all, got %r" % (which,))
    if isinstance(hosts, str):
        patterns = [hosts] if hosts.strip() else []
    elif isinstance(hosts, (list, tuple)):
        patterns = [str(h) for h in hosts if str(h).strip()]
    else:
        raise AnsibleFilterError("release_phase_hosts expects a host pattern or a list of hosts, got %s"
                                 % type(hosts).__name__)
    if not patterns or which == "all":
        return patterns
    return patterns + [("!" if which == "ok" else "&") + FAILED_GROUP]


class FilterModule:
    def filters(self):
        return {"release_phase_hosts": release_phase_hosts}
