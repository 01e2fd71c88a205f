"""Filter plugin: release_attention, what a person must know first about a release (the report's first lines)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_attention
short_description: The report's first lines - every check that did not run, every risk the inventory accepted
description:
  - Nothing is skipped in silence. From a release record, lists what a person must read before anything else, one
    sentence each, and what is still pending (for the report's "Next" section, which then never says there is
    nothing else to do).
  - "First lines: a verify verdict capped at warn (no smoke endpoint configured); no off-host copy because
    C(backup_vault_required) is false; each allowed destructive or irreversible change (from the schema phase's
    findings); a failed watch, what regressed, and the rollback command; the tag that another environment will
    create. A restore test that did not run is said by the C(release_notices) filter, above these lines."
  - "Pending: the destructive changes (their manual rollback is written in the report), a failed watch, a tag still
    to be made."
  - Pure function; raises an error naming the bad input.
positional: inventory, version
options:
  _input:
    description: The release record.
    type: dict
    required: true
  inventory:
    description: The inventory as given to ansible-playbook (C(-i) arguments), for the commands.
    type: str
    required: true
  version:
    description: The release version, when the record has none.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The report's first lines
  ansible.builtin.debug:
    msg: "{{ (record | release_attention('inventories/production')).first }}"
"""

RETURN = r"""
_value:
  description: C(first) (sentences for the top of the report), C(pending) (Markdown lines for "Next"),
    C(destructive) (the schema phase's destructive findings, as recorded).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def destructive_findings(schema):
    """The allowed destructive findings of the schema phase's record, wherever the phase keeps them (a refused one
    was not applied: the schema phase failed on it)."""
    if not isinstance(schema, dict):
        return []
    for found in (schema.get("destructive"), (schema.get("lint") or {}).get("destructive")):
        if isinstance(found, list) and found:
            return [f for f in found if isinstance(f, dict) and f.get("allowed", True)]
    return []


def release_attention(record, inventory, version=""):
    if not isinstance(record, dict):
        raise AnsibleFilterError("release_attention expects the release record (a dict), got %s"
                                 % type(record).__name__)
    phases = record.get("phases") or {}
    version = record.get("version") or version
    rollback = ("ansible-playbook rollback.yml -i %s -e release_version=%s -e release_rollback_confirm=true"
                % (inventory, version))
    first, pending = [], []

    verify = phases.get("verify") or {}
    first += [str(w) for w in verify.get("warnings") or []]

    backup = phases.get("backup") or {}
    if backup.get("vault_not_required"):
        first.append("No off-host copy of the backup was made by this release: %s." % str(
            backup["vault_not_required"]).rstrip("."))

    schema = phases.get("schema") or {}
    found = destructive_findings(schema) if schema.get("status") in ("ok", "running", "failed") else []
    if found:
        objects = ", ".join(str(f.get("object") or "?") for f in found)
        first.append("This release %s %d destructive or irreversible change%s, allowed by the inventory: %s. What "
                     "each destroys and how to bring it back by hand: \"Destructive and irreversible changes\" below."
                     % ("made" if schema.get("status") == "ok" else "includes", len(found),
                        "" if len(found) == 1 else "s", objects))
        pending.append("- Pending: %d destructive change%s (%s) cannot be undone by rollback.yml without losing the "
                       "writes made since the backup; keep the release's backup (`%s`) and the manual steps below "
                       "until you are sure they are not needed." % (
                           len(found), "" if len(found) == 1 else "s", objects,
                           backup.get("path") or "phases.backup.path"))

    watch = phases.get("watch") or {}
    if watch.get("status") == "failed":
        regressed = [str(r) for r in watch.get("regressed") or []]
        first.append("The watch failed with the application serving traffic: %s%s Roll back with `%s`." % (
            str(watch.get("error") or "no error recorded").rstrip("."),
            (". What regressed: " + "; ".join(regressed) + ".") if regressed else ".", rollback))
        pending.append("- Pending: the watch failed. Decide now: roll back (`%s`), or fix forward and rerun the watch "
                       "(`ansible-playbook release.yml -i %s -e release_version=%s --tags watch,tag`)."
                       % (rollback, inventory, version))

    tag = phases.get("tag") or {}
    if tag.get("deferred_to"):
        would = tag.get("would_create") or {}
        first.append("No git tag was made here: the %s release will create tag %s on commit %s%s." % (
            tag["deferred_to"], would.get("tag") or version, str(would.get("commit") or "?")[:12],
            " and push it to %s" % would["remote"] if would.get("remote") else ""))
        pending.append("- Pending: the tag %s, made by the %s release after it is verified." % (
            would.get("tag") or version, tag["deferred_to"]))
    return {"first": first, "pending": pending, "destructive": found}


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"release_attention": release_attention}
