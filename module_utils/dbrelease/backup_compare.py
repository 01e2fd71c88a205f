"""Compare a restored copy of a database with its source: objects, definitions and row counts.

`snapshot()` and `row_counts()` read a schema (read-only); everything else is pure and unit-tested. Definitions
are compared after normalisation: the schema's own name is removed from qualified references (the copy lives
under another name), `AUTO_INCREMENT=N` is dropped (a live source moves on), and an event's ENABLE/DISABLE state
is ignored (the restore test restores events disabled so that they never fire from the throwaway copy).
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.db import quote_ident

KINDS = ("tables", "views", "routines", "triggers", "events")
_AUTO_INC_RE = re.compile(r"\s+AUTO_INCREMENT=\d+")
_EVENT_STATE_RE = re.compile(r"\b(ENABLE|DISABLE ON (?:SLAVE|REPLICA)|DISABLE)\b"
                             r"(?=( COMMENT '(?:[^'\\]|\\.|'')*')? DO )")


def normalise(kind: str, text: str, schema: str) -> str:
    """A definition with the schema's own name, AUTO_INCREMENT and (for events) the enabled state removed."""
    if text is None:
        return ""
    out = text.replace(quote_ident(schema) + ".", "")
    out = out.replace("'%s'." % schema, "")
    if kind == "tables":
        out = _AUTO_INC_RE.sub("", out)
    if kind == "events":
        out = _EVENT_STATE_RE.sub("<state>", out, count=1)
    return out.strip()


def compare_objects(source: dict, restored: dict) -> list[str]:
    """Differences between two snapshots ({kind: {name: normalised definition}}), as messages."""
    problems = []
    for kind in KINDS:
        src, dst = source.get(kind, {}), restored.get(kind, {})
        singular = kind[:-1]
        for name in sorted(set(src) - set(dst)):
            problems.append("%s %s is missing from the restored copy" % (singular, name))
        for name in sorted(set(dst) - set(src)):
            problems.append("%s %s is in the restored copy but not in the source" % (singular, name))
        for name in sorted(set(src) & set(dst)):
            if src[name] != dst[name]:
                problems.append("%s %s has a different definition: %s" % (
                    singular, name, first_difference(src[name], dst[name])))
    return problems


def first_difference(left: str, right: str, context: int = 30) -> str:
    index = min(len(left), len(right))
    for position, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            index = position
            break
    start = max(0, index - context)
    return "source %r vs restored %r" % (left[start:index + context], right[start:index + context])


def compare_counts(source: dict, restored: dict, exact: bool) -> tuple[list[str], dict]:
    """(problems, live differences). Exact: any difference is a problem; otherwise differences are reported."""
    problems, live = [], {}
    for table in sorted(set(source) | set(restored)):
        src, dst = source.get(table), restored.get(table)
        if src is None or dst is None or src == dst:
            continue
        if exact:
            problems.append("table %s has %d rows in the restored copy but %d in the source" % (table, dst, src))
        else:
            live[table] = {"source": src, "restored": dst, "difference": src - dst}
    return problems, live


def restore_name(database: str, token: str) -> str:
    """`<db>__dbrelease_restore_<token>`, cut to the 64-character limit on identifiers."""
    suffix = "__dbrelease_restore_" + token
    return database[:64 - len(suffix)] + suffix


# -- reading a schema (read-only) -------------------------------------------------------------------------------
def _names(cur, sql, schema):
    cur.execute(sql, (schema,))
    return [row[0] for row in cur.fetchall()]


def snapshot(conn, schema: str) -> dict:
    """{kind: {name: normalised definition}} for every table, view, routine, trigger and event of `schema`."""
    q = quote_ident(schema)
    snap = {kind: {} for kind in KINDS}
    with conn.cursor() as cur:
        for name in _names(cur, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                                "AND TABLE_TYPE = 'BASE TABLE'", schema):
            cur.execute("SHOW CREATE TABLE %s.%s" % (q, quote_ident(name)))
            snap["tables"][name] = normalise("tables", cur.fetchone()[1], schema)
        cur.execute("SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, DEFINER, SECURITY_TYPE, "
                    "ALGORITHM FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (schema,))
        for name, definition, *rest in cur.fetchall():
            snap["views"][name] = normalise("views", " | ".join([definition or ""] + [str(x) for x in rest]),
                                            schema)
        cur.execute("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                    (schema,))
        for kind, name in cur.fetchall():
            cur.execute("SHOW CREATE %s %s.%s" % (kind, q, quote_ident(name)))
            row = cur.fetchone()
            snap["routines"]["%s %s" % (kind.lower(), name)] = normalise("routines", "%s | %s" % (row[1], row[2]),
                                                                         schema)
        for name in _names(cur, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                           schema):
            cur.execute("SHOW CREATE TRIGGER %s.%s" % (q, quote_ident(name)))
            row = cur.fetchone()
            snap["triggers"][name] = normalise("triggers", "%s | %s" % (row[1], row[2]), schema)
        for name in _names(cur, "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", schema):
            cur.execute("SHOW CREATE EVENT %s.%s" % (q, quote_ident(name)))
            row = cur.fetchone()
            snap["events"][name] = normalise("events", "%s | %s" % (row[1], row[3]), schema)
    return snap


def row_counts(conn, schema: str, tables) -> dict:
    """Exact COUNT(*) of each table."""
    counts = {}
    with conn.cursor() as cur:
        for name in sorted(tables):
            cur.execute("SELECT COUNT(*) FROM %s.%s" % (quote_ident(schema), quote_ident(name)))
            counts[name] = int(cur.fetchone()[0])
    return counts


def object_counts(snap: dict) -> dict:
    return {kind: len(snap.get(kind, {})) for kind in KINDS}
