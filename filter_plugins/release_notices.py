"""Filter plugin: release_notices, what the first lines of report.md must tell whoever reads only them."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_notices
short_description: The notices at the top of report.md - a restore test that did not run (and why), what was not
  fully checked or was left out
description:
  - Reads the release record and returns Markdown lines for the top of the report, so that what a release did not
    prove is never only deep in the record.
  - The restore test - not run, with the reason the record gives (off, a dry run, the backup phase not run or
    failed); reused from the first run of the release; rows of large tables compared on sampled chunks only (the
    checksum budget); objects restored with a DEFINER account that does not exist.
  - The schema phase - statements left out of the real run (no effect on the schema), data checks that ran only
    on the way, changes the data was not checked against, destructive changes and data statements that were
    allowed.
options:
  _input:
    description: The release record (C(release.json), or C(release.check.json) under check mode).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The notices of a record
  ansible.builtin.debug:
    msg: "{{ lookup('release_record') | release_notices }}"
"""

RETURN = r"""
_value:
  description: Markdown lines (each a list item), empty when there is nothing to say.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def _refs(refs, limit=5):
    names = ["%s #%s (line %s)" % (r.get("file"), r.get("index"), r.get("line")) for r in refs[:limit]]
    return ", ".join(names) + (" and %d more" % (len(refs) - limit) if len(refs) > limit else "")


def restore_notices(backup) -> list:
    if not backup:
        return ["- **Restore test: not run** - the backup phase has not run in this release, so no backup was "
                "restored and compared."]
    test = backup.get("restore_test")
    if backup.get("status") == "failed" and not (test or {}).get("ran"):
        return ["- **Restore test: not run** - the backup phase failed before it (see the phases below)."]
    if not test:
        if backup.get("status") in ("running", None):
            return ["- **Restore test: not run** - the backup phase did not finish."]
        return ["- **Restore test: not run** - the record does not say why (no restore test recorded)."]
    lines = []
    if not test.get("ran"):
        lines.append("- **Restore test: not run** - %s." % (test.get("reason") or "no reason recorded"))
    elif test.get("reused_from_first_run"):
        lines.append("- Restore test: not run again - the backup is the one this release took first, and its "
                     "restore test passed then (same file and sha256).")
    if test.get("ran") and test.get("sampled"):
        lines.append("- Restore test: the rows of %s were compared on sampled chunks only (checksum budget %s s); "
                     "the other tables were compared in full." % (", ".join(test["sampled"]),
                                                                  test.get("checksum_budget_s", "?")))
    missing = test.get("missing_definers") or []
    if test.get("ran") and missing:
        lines.append("- Restore test: restored %d object(s) whose DEFINER account does not exist on the server "
                     "(they fail when used, on the source too): %s." % (
                         len(missing), ", ".join("%s (%s)" % (m.get("object"), m.get("definer")) for m in missing)))
    return lines


def schema_notices(schema) -> list:
    if not schema:
        return []
    lines = []
    skipped = schema.get("skipped") or []
    if skipped:
        lines.append("- Schema: %d statement(s) left out of the run because they change nothing the schema does "
                     "not already have: %s (`phases.schema.skipped` says why)." % (len(skipped), _refs(skipped)))
    checks = schema.get("data_checks") or []
    way = [c for c in checks if c.get("when") == "on_the_way"]
    if way:
        lines.append("- Schema: %d data check(s) could only run on the way, right before their statement: %s." % (
            len(way), _refs([c.get("statement") or {} for c in way])))
    unchecked = [c for c in checks if c.get("when") == "unchecked"]
    if unchecked:
        lines.append("- Schema: %d change(s) could not be checked against the data: %s." % (
            len(unchecked), ", ".join("%s (%s)" % (c.get("object"), c.get("check")) for c in unchecked)))
    destructive = [d for d in (schema.get("lint") or {}).get("destructive") or [] if d.get("allowed")]
    if destructive:
        lines.append("- Schema: destructive change(s) allowed and applied: %s." % "; ".join(
            "%s %s" % (d.get("object"), d.get("reason")) for d in destructive))
    rows = [a for a in schema.get("data_statements") or []]
    if rows:
        lines.append("- Schema: data statement(s) allowed in the schema phase changed %d row(s): %s." % (
            sum(max(int(a.get("rows") or 0), 0) for a in rows), _refs(rows)))
    return lines


def release_notices(record):
    if not isinstance(record, dict):
        raise AnsibleFilterError("release_notices expects the release record (a dict), got %s"
                                 % type(record).__name__)
    phases = record.get("phases") or {}
    return restore_notices(phases.get("backup")) + schema_notices(phases.get("schema"))


class FilterModule:
    def filters(self):
        return {"release_notices": release_notices}
