"""Compare a restored copy of a database with its source: objects, definitions, row counts and row contents.

`snapshot()`, `row_counts()`, `table_checksums()` and `missing_definers()` read schemas (read-only); everything
else is pure and unit-tested. Definitions are compared after normalisation: the schema's own name is removed from
qualified references (identifier-aware: a table or column named like the schema keeps its name), `AUTO_INCREMENT=N`
is dropped (a live source moves on), and an event's ENABLE/DISABLE state is ignored (the restore test restores
events disabled so that they never fire from the throwaway copy).

Row contents are compared by checksums per table, computed the same way on the source and the copy: the rows in
primary-key order, cut into chunks of `chunk_rows` (as pt-table-checksum does), each chunk's count and the
BIT_XOR of a 64-bit hash (MD5) of every row's non-virtual columns (virtual columns are computed, and CHECKSUM
TABLE is unstable on tables that have them). Under a time budget: when the whole of a table would not fit in its
share of what is left of the budget, only every n-th chunk is compared, and the record says so (`sampled`).
"""

from __future__ import annotations

import math
import re
import time

from ansible.module_utils.dbrelease.db import quote_ident
from ansible.module_utils.dbrelease.sqlident import rewrite_schema

KINDS = ("tables", "views", "routines", "triggers", "events")
_AUTO_INC_RE = re.compile(r"\s+AUTO_INCREMENT=\d+")
_EVENT_STATE_RE = re.compile(r"\b(ENABLE|DISABLE ON (?:SLAVE|REPLICA)|DISABLE)\b"
                             r"(?=( COMMENT '(?:[^'\\]|\\.|'')*')? DO )")


def normalise(kind: str, text: str, schema: str) -> str:
    """A definition with the schema's own name, AUTO_INCREMENT and (for events) the enabled state removed."""
    if text is None:
        return ""
    out = rewrite_schema(text, schema, None)
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


# -- row contents ------------------------------------------------------------------------------------------------
_SPATIAL = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
            "geometrycollection"}
_INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}


def table_layouts(conn, schema: str) -> dict:
    """{table: {"columns": [(name, data type)] (non-virtual, in order), "key": [columns] of the primary key (or
    of a unique key over NOT NULL columns), "rows_estimate": n}}."""
    layouts = {}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_TYPE = 'BASE TABLE'", (schema,))
        for name, rows in cur.fetchall():
            layouts[name] = {"columns": [], "key": None, "rows_estimate": int(rows or 0), "nullable": set()}
        cur.execute("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA, IS_NULLABLE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION", (schema,))
        for table, column, dtype, extra, nullable in cur.fetchall():
            if table not in layouts:
                continue
            if "VIRTUAL" in (extra or "").upper():
                continue  # computed on read: not part of what a backup holds
            layouts[table]["columns"].append((column, (dtype or "").lower()))
            if nullable == "YES":
                layouts[table]["nullable"].add(column)
        cur.execute("SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
                    "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, "
                    "SEQ_IN_INDEX", (schema,))
        keys = {}
        for table, index, non_unique, column in cur.fetchall():
            if table in layouts and int(non_unique) == 0:
                keys.setdefault(table, {}).setdefault(index, []).append(column)
        for table, indexes in keys.items():
            layout = layouts[table]
            stored = {c for c, _t in layout["columns"]}
            for _index, columns in sorted(indexes.items(), key=lambda kv: (kv[0] != "PRIMARY", kv[0])):
                if all(c in stored and c not in layout["nullable"] for c in columns):
                    layout["key"] = columns
                    break
    return layouts


def row_hash_sql(columns) -> str:
    """An expression giving each row a 64-bit hash of its columns (NULL told from an empty string)."""
    parts = []
    for name, dtype in columns:
        ident = quote_ident(name)
        parts.append("ST_AsBinary(%s)" % ident if dtype in _SPATIAL else ident)
    nulls = "CONCAT(%s)" % ", ".join("ISNULL(%s)" % quote_ident(n) for n, _t in columns) if columns else "''"
    return "CAST(CONV(LEFT(MD5(CONCAT_WS('#', %s, %s)), 16), 16, 10) AS UNSIGNED)" % (", ".join(parts) or "''",
                                                                                       nulls)


def _after(key, values):
    """`(k1, k2) > (v1, v2)` written out for the optimizer: k1 > v1 OR (k1 = v1 AND k2 > v2). Returns (sql, args)."""
    ors, args = [], []
    for i in range(len(key)):
        terms = ["%s = %%s" % quote_ident(k) for k in key[:i]] + ["%s > %%s" % quote_ident(key[i])]
        ors.append("(%s)" % " AND ".join(terms))
        args.extend(list(values[:i]) + [values[i]])
    return "(%s)" % " OR ".join(ors), args


def _not_after(key, values):
    sql, args = _after(key, values)
    return "NOT %s" % sql, args


def chunk_where(key, lower, upper):
    """WHERE clause (and args) of the chunk (lower, upper] in key order; None bounds are open."""
    clauses, args = [], []
    if lower is not None:
        sql, a = _after(key, lower)
        clauses.append(sql)
        args += a
    if upper is not None:
        sql, a = _not_after(key, upper)
        clauses.append(sql)
        args += a
    return (" AND ".join(clauses) or "1=1"), args


DIGEST_FORMAT = "%016x"


def table_digests(conn, schema: str, tables=None) -> dict:
    """{table: {"rows": n, "checksum": 16 hex}}: the BIT_XOR of `row_hash_sql` over every row of each table of
    `schema` (or of `tables`), a full read of each; equal to the `digest` table_checksums gives a copy read in full."""
    layouts = table_layouts(conn, schema)
    out = {}
    with conn.cursor() as cur:
        for table in sorted(layouts if tables is None else (t for t in tables if t in layouts)):
            if not layouts[table]["columns"]:
                continue
            count, digest = _chunk_sum(cur, schema, table, layouts[table]["columns"], "1=1", [])
            out[table] = {"rows": count, "checksum": DIGEST_FORMAT % digest}
    return out


def _chunk_sum(cur, schema, table, columns, where, args):
    cur.execute("SELECT COUNT(*), COALESCE(BIT_XOR(%s), 0) FROM %s.%s WHERE %s" % (
        row_hash_sql(columns), quote_ident(schema), quote_ident(table), where), args)
    count, digest = cur.fetchone()
    return int(count), int(digest)


def _boundaries(cur, schema, table, key, chunk_rows, lower):
    """The key of the last row of the next chunk after `lower` (None: the chunk runs to the end)."""
    where, args = chunk_where(key, lower, None)
    cur.execute("SELECT %s FROM %s.%s WHERE %s ORDER BY %s LIMIT 1 OFFSET %d" % (
        ", ".join(quote_ident(k) for k in key), quote_ident(schema), quote_ident(table), where,
        ", ".join(quote_ident(k) for k in key), chunk_rows - 1), args)
    row = cur.fetchone()
    return tuple(row) if row else None


def table_checksums(conn, source: str, copy: str, layouts: dict, budget_s: float = 600.0,
                    chunk_rows: int = 10000, clock=time.monotonic, copy_conn=None) -> dict:
    """Chunked checksums of every table of `layouts`, on `source` and `copy` alike, under `budget_s` seconds.
    `copy_conn`: the connection holding `copy` when it is on another server (a restore server); default `conn`.

    Returns {table: {"chunks", "checked", "sampled", "rows_checked", "differences": [chunk bounds], "method"}},
    plus `digest` (the XOR of the copy's chunk sums: `table_digests()` of the whole table) for each table read in
    full, which a later restore of the same backup is checked against (rollback, db_restore).
    Small tables first, so that a budget spent on one large table still leaves every small one compared.
    """
    started = clock()
    results = {}
    order = sorted(layouts, key=lambda t: (layouts[t]["rows_estimate"], t))
    with conn.cursor() as cur, (copy_conn or conn).cursor() as copy_cur:
        for position, table in enumerate(order):
            layout = layouts[table]
            columns, key = layout["columns"], layout["key"]
            left = max(budget_s - (clock() - started), 0.0)
            share = left / (len(order) - position)
            estimate_chunks = max(1, math.ceil(layout["rows_estimate"] / float(chunk_rows)))
            entry = {"chunks": 0, "checked": 0, "sampled": False, "rows_checked": 0, "differences": [],
                     "method": "primary key" if key else "whole table"}
            results[table] = entry
            if not key:
                t0 = clock()
                if layout["rows_estimate"] > chunk_rows * 10 and left <= 0:
                    entry.update(method="not compared: no primary or unique key, and the budget is spent")
                    continue
                src = _chunk_sum(cur, source, table, columns, "1=1", [])
                dst = _chunk_sum(copy_cur, copy, table, columns, "1=1", [])
                entry.update(chunks=1, checked=1, rows_checked=src[0], seconds=round(clock() - t0, 3),
                             digest=DIGEST_FORMAT % dst[1])
                if src != dst:
                    entry["differences"].append({"from": None, "to": None, "source_rows": src[0],
                                                 "restored_rows": dst[0]})
                continue
            step = 1
            lower, index = None, 0
            t_first = None
            copy_sum = 0
            while True:
                upper = _boundaries(cur, source, table, key, chunk_rows, lower)
                if index % step == 0 or upper is None:
                    t0 = clock()
                    where, args = chunk_where(key, lower, upper)
                    src = _chunk_sum(cur, source, table, columns, where, args)
                    dst = _chunk_sum(copy_cur, copy, table, columns, where, args)
                    entry["checked"] += 1
                    entry["rows_checked"] += src[0]
                    copy_sum ^= dst[1]
                    if src != dst:
                        entry["differences"].append({"from": list(lower) if lower else None,
                                                     "to": list(upper) if upper else None,
                                                     "source_rows": src[0], "restored_rows": dst[0]})
                    if t_first is None:
                        t_first = clock() - t0
                        needed = t_first * estimate_chunks
                        if needed > share and share > 0:
                            step = max(2, math.ceil(needed / share))
                        elif share <= 0 and estimate_chunks > 1:
                            step = estimate_chunks  # the budget is spent: the first and last chunks only
                entry["chunks"] += 1
                index += 1
                if upper is None:
                    break
                lower = upper
            entry["sampled"] = entry["checked"] < entry["chunks"]
            if entry["sampled"]:
                entry["every"] = step
            else:
                entry["digest"] = DIGEST_FORMAT % copy_sum
    return results


def compare_checksums(checksums: dict, exact: bool) -> tuple[list[str], dict]:
    """(problems, live differences) from table_checksums: exact -> any difference is a problem."""
    problems, live = [], {}
    for table in sorted(checksums):
        diffs = checksums[table]["differences"]
        if not diffs:
            continue
        where = "; ".join("rows %s..%s (%d in the source, %d restored)" % (
            d["from"] or "start", d["to"] or "end", d["source_rows"], d["restored_rows"]) for d in diffs[:5])
        if exact:
            problems.append("table %s holds different rows in the restored copy: %s" % (table, where))
        else:
            live[table] = {"chunks_differing": len(diffs), "where": where}
    return problems, live


def missing_definers(conn, schema: str) -> list:
    """Views, routines, triggers and events of `schema` whose DEFINER account does not exist on the server:
    [{"object": "view v", "definer": "ghost@%"}]. Roles (no host part) and unreadable account lists are left out."""
    found = []
    with conn.cursor() as cur:
        cur.execute("SELECT 'view', TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s "
                    "UNION ALL SELECT LOWER(ROUTINE_TYPE), ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = %s UNION ALL SELECT 'trigger', TRIGGER_NAME, DEFINER "
                    "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s UNION ALL SELECT 'event', "
                    "EVENT_NAME, DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
                    (schema, schema, schema, schema))
        rows = cur.fetchall()
        try:
            cur.execute("SELECT User, Host FROM mysql.user")
            accounts = {"%s@%s" % (u, h) for u, h in cur.fetchall()}
        except Exception:  # noqa: BLE001 - no SELECT on mysql.user: cannot tell, say nothing
            return []
    for kind, name, definer in rows:
        if definer and "@" in definer and definer not in accounts:
            found.append({"object": "%s %s" % (kind, name), "definer": definer})
    return sorted(found, key=lambda d: d["object"])
