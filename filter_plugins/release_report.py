"""Filter plugin: release_report, what report.md says about a release record (the template only lays it out)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_report
short_description: The facts of report.md from a release record - the phases in order, the verdict, what to run next
description:
  - Orders the recorded phases as C(release_phases) lists them (others after, sorted), says whether the release is
    C(OK), C(FAILED at <phase>), C(ROLLED BACK) or C(INCOMPLETE), how long each phase took, a one-line summary of
    each phase's outputs, and the commands to run next (rerun the failed phase alone or with every phase after it,
    switch maintenance off, roll back).
  - Used by C(roles/record/templates/report.md.j2), which lays it out; the C(record) role's report task passes the
    record read from C(release.json) (C(release.check.json) under check mode).
positional: phases, inventory, version
options:
  _input:
    description: The release record.
    type: dict
    required: true
  phases:
    description: The phases of a release in order (C(release_phases) of C(vars/release.yml)).
    type: list
    elements: dict
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
- name: Render the report
  ansible.builtin.debug:
    msg: "{{ (record | release_report(release_phases, 'inventories/staging')).title }}"
"""

RETURN = r"""
_value:
  description: C(version), C(title), C(rows) (name, status, changed, started, finished, took, outputs), C(failed)
    (name, error), C(running), C(rolled_back), C(next) (lines of Markdown).
  type: dict
"""

import os

import ansible.module_utils
from ansible.errors import AnsibleFilterError

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.clock import parse_iso  # noqa: E402

# Keys every phase entry has; the rest of an entry are its outputs.
ENTRY_KEYS = ("status", "changed", "started", "finished", "error", "previous_status")


def duration(entry) -> str:
    """`42s`, `3m05s`, or "" when the phase has not finished."""
    start, end = parse_iso(entry.get("started")), parse_iso(entry.get("finished"))
    if not start or not end:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    return "%dm%02ds" % (seconds // 60, seconds % 60) if seconds >= 60 else "%ds" % seconds


def scalar(value, width=90) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


def outputs_line(entry, width=240) -> str:
    """The phase's scalar outputs, `key: value; ...` (mappings and lists are in the record)."""
    items = []
    for key in sorted(entry):
        value = entry[key]
        if key in ENTRY_KEYS or isinstance(value, (dict, list)) or str(value) == "":
            continue
        items.append("%s: %s" % (key, scalar(value)))
    text = "; ".join(items)
    return text if len(text) <= width else text[:width - 1] + "…"


def ordered(phases, known) -> list:
    """Phase names as the release runs them, then the others (rollback, ...) sorted."""
    order = [p["name"] for p in known]
    return [name for name in order if name in phases] + sorted(name for name in phases if name not in order)


def _tag_of(known, name):
    for item in known:
        if item["name"] == name:
            tags = [t for t in item.get("tags") or [] if t != "always"]
            return tags[0] if tags else None
    return None


def next_steps(record, known, inventory, version) -> list:
    """What to run next, as Markdown lines."""
    phases = record.get("phases") or {}
    names = ordered(phases, known)
    failed = [n for n in names if phases[n].get("status") == "failed"]
    running = [n for n in names if phases[n].get("status") == "running"]
    rolled_back = (phases.get("rollback") or {}).get("status") == "ok"
    base = "ansible-playbook release.yml -i %s -e release_version=%s" % (inventory, version)
    # The tags of the phases a release reruns, in order (preflight and the lock run with any tag).
    tags = []
    for item in known:
        tag = _tag_of(known, item["name"])
        if tag and "always" not in (item.get("tags") or []) and tag not in tags:
            tags.append(tag)
    lines = []
    if failed:
        tag = _tag_of(known, failed[0])
        if tag in tags:
            rest = tags[tags.index(tag):]
            # Maintenance was on for this release and is off again: a rerun switches it on first.
            m = phases.get("maintenance") or {}
            pre = tag != "maintenance" and m.get("status") == "ok" and "driver" in m and m.get("state", "off") == "off"
            if pre:
                rest = [t for t in rest if t != "maintenance"]
            prefix = "maintenance," if pre else ""
            lines += ["- Fix the cause above, then rerun the failed phase alone (it reads what it needs from the "
                      "record):", "  `%s --tags %s%s`" % (base, prefix, tag), "- or rerun it and every phase after it:",
                      "  `%s --tags %s%s`" % (base, prefix, ",".join(rest))]
        else:
            lines.append("- Fix the cause above, then run the release again: `%s`" % base)
    elif running:
        first = next((_tag_of(known, n) for n in running if _tag_of(known, n) in tags), None) or "all"
        lines.append("- The run stopped during %s; rerun from there: `%s --tags %s`" % (", ".join(running), base,
                                                                                       first))
    elif rolled_back:
        lines.append("- The database is back at the backup of this release. Release again once fixed: `%s`" % base)
    else:
        tag = phases.get("tag") or {}
        if tag.get("status") == "skipped":
            lines.append("- No git tag was made (%s); set release_git_repo and run `%s --tags tag`"
                         % (tag.get("reason") or "skipped", base))
        lines.append("- Nothing else to do. Check again later: `%s --tags verify`" % base)
    state = (phases.get("maintenance") or {}).get("state", "off")
    if state in ("on", "switching on", "unknown"):
        lines += ["- Maintenance mode is %s: switch it off when ready:" % state.upper(),
                  "  `ansible-playbook playbooks/maintenance_off.yml -i %s -e release_version=%s`" % (inventory,
                                                                                                       version)]
    if (phases.get("backup") or {}).get("status") == "ok" and not rolled_back:
        lines += ["- To undo the release, restore its verified backup (drops and recreates `%s`):"
                  % record.get("database", ""),
                  "  `ansible-playbook rollback.yml -i %s -e release_version=%s -e release_rollback_confirm=true`"
                  % (inventory, version)]
    return lines


def release_report(record, phases, inventory, version=""):
    if not isinstance(record, dict):
        raise AnsibleFilterError("release_report expects the release record (a dict), got %s" % type(record).__name__)
    if not isinstance(phases, list):
        raise AnsibleFilterError("release_report expects the list of phases (release_phases), got %s"
                                 % type(phases).__name__)
    entries = record.get("phases") or {}
    names = ordered(entries, phases)
    failed = [n for n in names if entries[n].get("status") == "failed"]
    running = [n for n in names if entries[n].get("status") == "running"]
    rolled_back = (entries.get("rollback") or {}).get("status") == "ok"
    version = record.get("version") or version
    if failed:
        title = "FAILED at %s" % failed[0]
    elif rolled_back:
        title = "ROLLED BACK"
    elif running:
        title = "INCOMPLETE (%s did not finish)" % ", ".join(running)
    else:
        title = "OK"
    rows = [{"name": n, "status": entries[n].get("status") or "?", "changed": scalar(bool(entries[n].get("changed"))),
             "started": entries[n].get("started") or "", "finished": entries[n].get("finished") or "",
             "took": duration(entries[n]), "outputs": outputs_line(entries[n])} for n in names]
    return {"version": version, "title": title, "rows": rows, "running": running, "rolled_back": rolled_back,
            "failed": [{"name": n, "error": entries[n].get("error") or "no error recorded"} for n in failed],
            "next": next_steps(record, phases, inventory, version)}


class FilterModule:
    def filters(self):
        return {"release_report": release_report}
