"""Filter plugin: destructive_changes, the report's list of allowed destructive changes with their manual rollback."""

from __future__ import annotations

DOCUMENTATION = r"""
name: destructive_changes
short_description: What each allowed destructive or irreversible change destroys, how to bring it back, and the cost
description:
  - Takes the destructive findings the schema phase recorded (dropped tables and columns, narrowed columns, rows
    destroyed by TRUNCATE, CREATE OR REPLACE TABLE or allowed data statements, dropped views and routines) and
    returns, for each, what it destroys (rows, column values, objects), the manual steps that bring it back from
    the release's backup, and their impact - what the runbook asks to write down before production.
  - The steps restore the backup into a scratch database next to the live one and copy back only what the change
    destroyed, so the rest of the database keeps the writes made since the backup. C(rollback.yml), which restores
    the whole backup, is the other way; the impact says what each way loses.
  - "A finding is a dict: C(object) (C(table t), C(t), C(t.c) or C(view v)...), C(reason) (the schema phase's
    sentence), optional C(kind) (C(drop_table), C(drop_column), C(narrow_column), C(truncate), C(replace_table),
    C(data), C(drop_object)), C(column), C(rows) (rows destroyed or in the table), C(values) (non-NULL values of
    the column), C(affected_rows), C(before) (the old definition), C(statements). Without C(kind), it is read
    from C(reason)."
  - Pure function; raises an error naming the bad input.
positional: database, backup
options:
  _input:
    description: The findings (a list of dicts), or a dict with a C(destructive) list (the schema phase's lint).
    type: raw
    required: true
  database:
    description: The release's database.
    type: str
    required: true
  backup:
    description: Path of the release's backup on the database host (empty when there is none).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The destructive changes for the report
  ansible.builtin.set_fact:
    __record_destructive: "{{ phases.schema.lint | destructive_changes(r.database, phases.backup.path) }}"
# - object: orders.legacy_flag
#   change: drops column legacy_flag of table orders
#   destroys: the values of column legacy_flag in 1200 rows of orders
#   rollback: [...]
#   impact: ...
"""

RETURN = r"""
_value:
  description: One entry per finding, in the order given.
  type: list
  elements: dict
  contains:
    object: {description: The object changed., type: str}
    kind: {description: The kind of change (see the input)., type: str}
    change: {description: The change in words., type: str}
    destroys: {description: What it destroys., type: str}
    rollback: {description: Manual steps, in order., type: list, elements: str}
    impact: {description: What the manual rollback costs and what it cannot bring back., type: str}
    statements: {description: The statements that make the change (file, line, sql)., type: list}
"""

import re

from ansible.errors import AnsibleFilterError

KINDS = ("drop_table", "drop_column", "narrow_column", "truncate", "replace_table", "data", "drop_object")
_REASON_KINDS = (
    (re.compile(r"^drops the table", re.I), "drop_table"),
    (re.compile(r"^drops column\s+`?([^`\s:]+)`?", re.I), "drop_column"),
    (re.compile(r"^narrows column\s+`?([^`\s:]+)`?", re.I), "narrow_column"),
    (re.compile(r"drops and re-adds column\s+`?([^`\s:]+)`?", re.I), "drop_column"),
    (re.compile(r"^TRUNCATE", re.I), "truncate"),
    (re.compile(r"^CREATE OR REPLACE TABLE", re.I), "replace_table"),
    (re.compile(r"\b(DELETE|UPDATE|INSERT|REPLACE|LOAD DATA)\b|data statement|affected", re.I), "data"),
    (re.compile(r"^drops the (view|procedure|function|trigger|event|sequence|index)", re.I), "drop_object"),
)


def _split_object(obj):
    """("table", "orders", "legacy_flag" or None) from `table orders`, `orders`, `orders.legacy_flag`."""
    text = str(obj or "").strip()
    kind = "table"
    match = re.match(r"^(table|view|procedure|function|trigger|event|sequence|index|column)\s+(.+)$", text, re.I)
    if match:
        kind, text = match.group(1).lower(), match.group(2)
    text = text.replace("`", "")
    if kind == "column" or ("." in text and kind == "table"):
        table, _, column = text.partition(".")
        return "table", table, column or None
    return kind, text, None


def _kind(finding):
    kind = finding.get("kind")
    if kind:
        if kind not in KINDS:
            raise AnsibleFilterError("destructive_changes: finding %r has kind %r; known: %s"
                                     % (finding.get("object"), kind, ", ".join(KINDS)))
        return kind, finding.get("column")
    reason = str(finding.get("reason") or "")
    for pattern, name in _REASON_KINDS:
        match = pattern.search(reason)
        if match:
            column = match.group(1) if name in ("drop_column", "narrow_column") and match.groups() else None
            return name, finding.get("column") or column
    return "other", finding.get("column")


def _count(value, unit):
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("destructive_changes: %s must be a number, got %r" % (unit, value)) from None
    return "%d %s%s" % (n, unit, "" if n == 1 else "s")


def _scratch(database):
    return (database + "__rollback")[:64]


def _load_steps(database, backup, table):
    scratch = _scratch(database)
    source = "`%s`" % backup if backup else "the release's backup (phases.backup.path in release.json)"
    return [
        "Check the backup first: sha256sum -c %s.sha256." % (backup or "<backup>"),
        "Restore it into a scratch database beside the live one, not over it: CREATE DATABASE `%s`; then "
        "gunzip -c %s | mariadb %s (zstd -dc for .sql.zst)." % (scratch, source, scratch),
        "Compare `%s`.`%s` with what you expect to bring back before touching `%s`." % (scratch, table, database),
    ]


def _entry(finding, database, backup):
    if not isinstance(finding, dict):
        raise AnsibleFilterError("destructive_changes: each finding must be a dict, got %r" % (finding,))
    kind, column = _kind(finding)
    obj_kind, name, obj_column = _split_object(finding.get("object"))
    column = column or obj_column
    table = name
    scratch = _scratch(database)
    rows = _count(finding.get("rows"), "row")
    values = _count(finding.get("values"), "value")
    affected = _count(finding.get("affected_rows"), "row")
    before = finding.get("before")
    reason = str(finding.get("reason") or kind)
    keep_writes = ("Writes made to `%s` since the backup are kept; only what the change destroyed comes back."
                   % table)
    whole = ("The alternative, rollback.yml, restores the whole database and loses every write made since the "
             "backup.")
    out = {"object": str(finding.get("object") or name), "kind": kind, "statements": finding.get("statements") or []}

    if kind in ("drop_table", "truncate", "replace_table"):
        out["change"] = {"drop_table": "drops table %s" % table, "truncate": "empties table %s (TRUNCATE)" % table,
                         "replace_table": "replaces table %s (CREATE OR REPLACE TABLE)" % table}[kind]
        out["destroys"] = "every row of %s%s" % (table, " (%s)" % rows if rows else " (row count not recorded)")
        copy_back = ("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`; INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`"
                     % (database, table, scratch, table, database, table, scratch, table)) if kind == "drop_table" \
            else ("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s` (after checking the columns still match)"
                  % (database, table, scratch, table))
        out["rollback"] = _load_steps(database, backup, table) + [
            "Put the rows back: %s." % copy_back,
            "Re-create what depended on it if the release removed it too (foreign keys, views, triggers: their "
            "definitions are in the schema snapshot taken before the release).",
            "DROP DATABASE `%s`." % scratch]
        out["impact"] = ("Rows of %s written after the backup (none while maintenance mode was on) are not in it. "
                         "Loading the rows takes a write lock on the table for as long as the copy runs. %s"
                         % (table, whole))
    elif kind in ("drop_column", "narrow_column"):
        col = column or "<column>"
        out["change"] = ("drops column %s of table %s" % (col, table) if kind == "drop_column"
                         else "narrows column %s of table %s: %s" % (col, table, reason.split(":", 1)[-1].strip()))
        what = values or rows
        out["destroys"] = ("the values of column %s%s" % (col, " (%s)" % what if what else
                                                          " in every row of %s (count not recorded)" % table)
                           if kind == "drop_column" else
                           "the part of the values of %s that no longer fits%s" % (
                               col, " (%s affected)" % (values or rows) if (values or rows) else ""))
        define = ("ALTER TABLE `%s`.`%s` %s COLUMN `%s` %s" % (
            database, table, "ADD" if kind == "drop_column" else "MODIFY", col,
            before or "<its definition before the release, from the schema snapshot>"))
        out["rollback"] = _load_steps(database, backup, table) + [
            "Give the column its old definition back: %s." % define,
            "Copy the old values back by primary key: UPDATE `%s`.`%s` AS t JOIN `%s`.`%s` AS s USING (<primary "
            "key columns>) SET t.`%s` = s.`%s`." % (database, table, scratch, table, col, col),
            "DROP DATABASE `%s`." % scratch]
        out["impact"] = ("The ALTER rebuilds or locks %s as any ALTER of that table does (see the schema phase's "
                         "online-DDL findings); rows inserted after the backup get the column's default. %s %s"
                         % (table, keep_writes, whole))
    elif kind == "data":
        out["change"] = "changes rows of %s with a data statement" % table
        out["destroys"] = "the previous content of %s" % (affected or "the rows it touched (count not recorded)")
        out["rollback"] = _load_steps(database, backup, table) + [
            "Find the rows the statement changed by comparing `%s`.`%s` with `%s`.`%s` on the primary key, and copy "
            "back the old rows (INSERT ... SELECT for deleted rows, UPDATE ... JOIN for changed ones)."
            % (scratch, table, database, table),
            "DROP DATABASE `%s`." % scratch]
        out["impact"] = "%s %s" % (keep_writes, whole)
    elif kind == "drop_object":
        out["change"] = "drops %s %s" % (obj_kind, name)
        out["destroys"] = "the definition of %s %s (no rows)" % (obj_kind, name)
        out["rollback"] = ["Re-create %s %s from its definition in the schema snapshot taken before the release "
                           "(the schema phase's artifacts), or from the backup (gunzip -c %s | grep)."
                           % (obj_kind, name, backup or "<backup>")]
        out["impact"] = "No data is lost; whatever used %s %s fails until it is back." % (obj_kind, name)
    else:
        out["change"] = reason
        out["destroys"] = "what the statement removes (the schema phase could not say more: %s)" % reason
        out["rollback"] = _load_steps(database, backup, table) + [
            "Copy back from the scratch database what the change removed.", "DROP DATABASE `%s`." % scratch]
        out["impact"] = whole
    return out


def destructive_changes(findings, database, backup=""):
    """Pure: the report entries for the allowed destructive findings (see DOCUMENTATION)."""
    if isinstance(findings, dict):
        findings = findings.get("destructive") or []
    if findings is None:
        findings = []
    if not isinstance(findings, (list, tuple)):
        raise AnsibleFilterError("destructive_changes: expected a list of findings, got %s" % type(findings).__name__)
    if not database:
        raise AnsibleFilterError("destructive_changes: database must be named")
    return [_entry(f, str(database), str(backup or "")) for f in findings]


class FilterModule:
    """Maps the filter name to its function."""

    def filters(self):
        return {"destructive_changes": destructive_changes}
