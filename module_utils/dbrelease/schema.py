"""Schema snapshots, normalisation, diff and structure copies. Stdlib plus PyMySQL only (runs on target hosts).

A snapshot is read with one information_schema query per object kind (never one per table), and normalised so
that the same schema reads the same on MySQL 8 and MariaDB and under any schema name:

- integer display widths are dropped (`int(11)` on MariaDB, `int` on MySQL >= 8.0.19), except `tinyint(1)` and
  ZEROFILL columns, where both servers keep them;
- column defaults become `'literal'` or an expression (MariaDB >= 10.2.7 quotes literals in COLUMN_DEFAULT and says
  `NULL`; MySQL gives the bare value and flags expressions with `DEFAULT_GENERATED` in EXTRA);
- `current_timestamp()` / `CURRENT_TIMESTAMP` / `now()` are spelled one way; CHECK clauses lose the extra
  parentheses MySQL adds; references to the schema itself (`` `db`.`t` `` in view definitions) are unqualified
  (identifier-aware: a table or column named like the schema keeps its name);
- views, routines, triggers and events keep their DEFINER (and views and routines their SQL SECURITY): a change
  of either is a change.

Table sizes are kept beside the snapshot (`sizes`), outside what is compared.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible.module_utils.dbrelease.db import quote_ident
from ansible.module_utils.dbrelease.sqlident import rewrite_schema

KINDS = ("tables", "views", "routines", "triggers", "events")
KIND_LABEL = {"tables": "table", "views": "view", "routines": "routine", "triggers": "trigger", "events": "event"}

# --------------------------------------------------------------------------------------------------------------
# Normalisation (pure functions)
# --------------------------------------------------------------------------------------------------------------

_INT_WIDTH_RE = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)", re.IGNORECASE)
_CURRENT_TS_RE = re.compile(
    r"(?<![`\w$.])(?:current_timestamp|now|localtimestamp|localtime)(?:\s*\(\s*(\d*)\s*\)|(?![\w$]))", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def normalise_type(column_type: str) -> str:
    """`int(11) unsigned` -> `int unsigned`; `tinyint(1)` and zerofill widths are kept (both servers show them)."""
    text = " ".join((column_type or "").lower().split())
    if "zerofill" in text:
        return text

    def repl(match):
        if match.group(0) == "tinyint(1)":
            return match.group(0)
        return "int" if match.group(1) == "integer" else match.group(1)

    return _INT_WIDTH_RE.sub(repl, text)


def normalise_current_timestamp(text: str) -> str:
    """`CURRENT_TIMESTAMP`, `current_timestamp()`, `now()` -> `current_timestamp`; `(3)` precision kept."""

    def repl(match):
        precision = match.group(1)
        return "current_timestamp(%s)" % precision if precision and precision != "0" else "current_timestamp"

    return _CURRENT_TS_RE.sub(repl, text or "")


def quote_literal(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _unquote_mariadb_literal(text: str) -> str:
    inner = text[1:-1]
    return inner.replace("''", "'").replace("\\\\", "\\")


def normalise_default(default, extra: str, flavor: str):
    """A column default as `None` (no default or NULL), `'literal'`, or an expression (`current_timestamp(3)`)."""
    extra_l = (extra or "").lower()
    if flavor == "mariadb":
        # MariaDB >= 10.2.7: NULL = no default, 'NULL' = DEFAULT NULL, quoted = literal, bare = expression/number.
        if default is None or default == "NULL":
            return None
        if len(default) >= 2 and default[0] == "'" and default[-1] == "'":
            return quote_literal(_unquote_mariadb_literal(default))
        if _NUMBER_RE.match(default):
            return quote_literal(default)
        if re.match(r"^b'[01]*'$", default):
            return default
        return normalise_expression(default)
    # MySQL: the bare value; expressions are flagged DEFAULT_GENERATED (8.0.13+), CURRENT_TIMESTAMP is bare.
    if default is None:
        return None
    if "default_generated" in extra_l or _CURRENT_TS_RE.fullmatch(default.strip()):
        expr = default.strip()
        if expr.startswith("(") and expr.endswith(")") and not _CURRENT_TS_RE.fullmatch(expr):
            expr = expr[1:-1]
        return normalise_expression(expr)
    return quote_literal(default)


def normalise_expression(text: str) -> str:
    """Whitespace, `current_timestamp` spelling and redundant outer parentheses of an expression."""
    text = " ".join((text or "").split())
    text = normalise_current_timestamp(text)
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def normalise_extra(extra: str) -> str:
    """EXTRA without MySQL's `DEFAULT_GENERATED`, lower-cased, one spelling of current_timestamp."""
    words = (extra or "").replace("DEFAULT_GENERATED", "").strip()
    return normalise_current_timestamp(" ".join(words.lower().split()))


def strip_schema(text: str, db: str) -> str:
    """Remove the schema qualifiers naming `db` (`` `db`.`t` `` -> `` `t` ``) so copies compare equal; a table or
    column named like the schema keeps its name (see sqlident)."""
    if not text:
        return text or ""
    return rewrite_schema(text, db, None)


def normalise_body(text: str, db: str) -> str:
    return "\n".join(line.rstrip() for line in strip_schema(text or "", db).strip().splitlines())


_SC_AUTO_INC_RE = re.compile(r" AUTO_INCREMENT=\d+")
_SC_QUOTED_NUMBER_DEFAULT_RE = re.compile(r"DEFAULT '(-?\d+(?:\.\d+)?)'")
_SC_CHECK_RE = re.compile(r"CHECK \((\(.*\))\)")
_SC_DEFINER_RE = re.compile(r" DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`")


def normalise_show_create(text: str, db: str = None, keep_definer=False) -> str:
    """A SHOW CREATE TABLE/VIEW/... text made comparable across MySQL 8 and MariaDB and across runs.

    Drops `AUTO_INCREMENT=N`, integer display widths, MySQL's quotes around numeric defaults (`DEFAULT '0'` vs
    MariaDB's `DEFAULT 0`) and doubled CHECK parentheses; spells current_timestamp one way; unqualifies the schema.
    """
    text = _SC_AUTO_INC_RE.sub("", text or "")
    text = _INT_WIDTH_RE.sub(lambda m: m.group(0) if m.group(0).lower() == "tinyint(1)" else m.group(1).lower(), text)
    text = _SC_QUOTED_NUMBER_DEFAULT_RE.sub(r"DEFAULT \1", text)
    text = normalise_current_timestamp(text)
    text = _SC_CHECK_RE.sub(lambda m: "CHECK " + m.group(1), text)
    if not keep_definer:
        text = _SC_DEFINER_RE.sub("", text)
    if db:
        text = strip_schema(text, db)
    return text.strip()


# --------------------------------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------------------------------

def _rows(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchall()


def _only(column, names):
    """(`AND (column = ... OR ...)`, args) for a snapshot limited to some objects; ("", ()) for all of them.

    Equalities joined by OR, not IN: MariaDB 10.11's information_schema returns no row for
    `TABLE_NAME IN ('t', 'missing')` when one of the names does not exist."""
    if names is None:
        return "", ()
    return " AND (%s)" % " OR ".join(["%s = %%s" % column] * len(names)), tuple(sorted(names))


def snapshot(conn, db: str, flavor: str, only=None):
    """`{"objects": {tables, views, routines, triggers, events}, "sizes": {table: bytes}, "rows": {table: n}}`.

    One information_schema query per object kind (tables, columns, indexes, foreign keys, checks, views,
    routines, parameters, triggers, events): the cost does not grow with one round trip per table.
    `only` limits the snapshot to some objects: `{kind: names}` (routines by `TYPE name`); kinds left out are
    not read at all.
    """
    want = {kind: (None if only is None or (kind in only and only[kind] is None) else set(only.get(kind, ())))
            for kind in KINDS}
    tables = {}
    sizes = {}
    rows_estimate = {}
    with conn.cursor() as cur:
        t_sql, t_args = _only("TABLE_NAME", want["tables"])
        for name, engine, collation, comment, options, data_len, index_len, nrows in (_rows(cur, (
                "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, TABLE_COMMENT, CREATE_OPTIONS, DATA_LENGTH, "
                "INDEX_LENGTH, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')" + t_sql),
                (db,) + t_args) if want["tables"] != set() else ()):
            tables[name] = {
                "options": {"engine": engine, "collation": collation, "comment": comment or "",
                            "create_options": " ".join(sorted((options or "").lower().split()))},
                "columns": {}, "column_order": [], "indexes": {}, "foreign_keys": {}, "checks": {},
            }
            sizes[name] = int(data_len or 0) + int(index_len or 0)
            rows_estimate[name] = int(nrows or 0)

        for (table, column, default, nullable, ctype, charset, collation, extra, comment,
             generation) in (_rows(cur, (
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, CHARACTER_SET_NAME, "
                "COLLATION_NAME, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s" + t_sql + " ORDER BY TABLE_NAME, ORDINAL_POSITION"), (db,) + t_args)
                if tables else ()):
            if table not in tables:
                continue  # a view's columns
            entry = {"type": normalise_type(ctype), "nullable": nullable == "YES",
                     "default": normalise_default(default, extra, flavor), "extra": normalise_extra(extra),
                     "charset": charset, "collation": collation, "comment": comment or ""}
            if generation:
                entry["generated"] = normalise_expression(strip_schema(generation, db))
            tables[table]["columns"][column] = entry
            tables[table]["column_order"].append(column)

        for table, index, non_unique, column, sub_part, itype, collation, comment in (_rows(cur, (
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE, COLLATION, "
                "INDEX_COMMENT FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s" + t_sql +
                " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"), (db,) + t_args) if tables else ()):
            if table not in tables:
                continue
            idx = tables[table]["indexes"].setdefault(index, {
                "unique": int(non_unique) == 0, "type": itype, "comment": comment or "", "columns": []})
            idx["columns"].append([column, int(sub_part) if sub_part else None, "desc" if collation == "D" else "asc"])

        fks = {}
        for table, name, ref_table, update_rule, delete_rule in (_rows(cur, (
                "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s" + t_sql),
                (db,) + t_args) if tables else ()):
            fks[(table, name)] = {"columns": [], "ref_schema": None, "ref_table": ref_table, "ref_columns": [],
                                  "on_update": update_rule, "on_delete": delete_rule}
        for table, name, column, ref_schema, ref_column in (_rows(cur, (
                "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_COLUMN_NAME "
                "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND REFERENCED_TABLE_NAME IS NOT NULL" + t_sql + " ORDER BY TABLE_NAME, CONSTRAINT_NAME, "
                "ORDINAL_POSITION"), (db,) + t_args) if fks else ()):
            fk = fks.get((table, name))
            if fk is None:
                continue
            fk["columns"].append(column)
            fk["ref_columns"].append(ref_column)
            fk["ref_schema"] = None if ref_schema == db else ref_schema
        for (table, name), fk in fks.items():
            if table in tables:
                tables[table]["foreign_keys"][name] = fk

        for table, name, clause in (_check_rows(cur, db, flavor) if tables else ()):
            if table in tables:
                tables[table]["checks"][name] = normalise_expression(strip_schema(clause, db).replace("`", ""))

        views = {}
        v_sql, v_args = _only("TABLE_NAME", want["views"])
        for name, definition, check_option, security, definer in (_rows(cur, (
                "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, DEFINER "
                "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s" + v_sql), (db,) + v_args)
                if want["views"] != set() else ()):
            views[name] = {"definition": normalise_body(definition, db), "check_option": check_option,
                           "security": security, "definer": definer}

        routines = {}
        wanted_routines = want["routines"]
        if wanted_routines != set():
            r_names = None if wanted_routines is None else {n.split(" ", 1)[1] for n in wanted_routines}
            r_sql, r_args = _only("SPECIFIC_NAME", r_names)
            params = {}
            for specific, rtype, mode, pname, dtd in _rows(cur, (
                    "SELECT SPECIFIC_NAME, ROUTINE_TYPE, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER "
                    "FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s" + r_sql +
                    " ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION"), (db,) + r_args):
                if pname is None:
                    continue  # a function's return value (ORDINAL_POSITION 0)
                params.setdefault((rtype, specific), []).append([mode, pname, normalise_type(dtd)])
            r_sql, r_args = _only("ROUTINE_NAME", r_names)
            for name, rtype, body, dtd, deterministic, access, security, comment, definer in _rows(cur, (
                    "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, DTD_IDENTIFIER, IS_DETERMINISTIC, "
                    "SQL_DATA_ACCESS, SECURITY_TYPE, ROUTINE_COMMENT, DEFINER FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = %s" + r_sql), (db,) + r_args):
                key = "%s %s" % (rtype, name)
                if wanted_routines is not None and key not in wanted_routines:
                    continue
                routines[key] = {
                    "type": rtype, "body": normalise_body(body, db), "params": params.get((rtype, name), []),
                    "returns": normalise_type(dtd) if dtd else None, "deterministic": deterministic,
                    "data_access": access, "security": security, "comment": comment or "", "definer": definer}

        triggers = {}
        g_sql, g_args = _only("TRIGGER_NAME", want["triggers"])
        for name, event, table, timing, statement, order, definer in (_rows(cur, (
                "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_STATEMENT, "
                "ACTION_ORDER, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s" + g_sql),
                (db,) + g_args) if want["triggers"] != set() else ()):
            triggers[name] = {"table": table, "timing": timing, "event": event,
                              "statement": normalise_body(statement, db), "order": int(order or 0),
                              "definer": definer}

        events = {}
        e_sql, e_args = _only("EVENT_NAME", want["events"])
        for (name, definition, etype, execute_at, ivalue, ifield, completion, status, comment, ends,
             definer) in (_rows(cur, (
                "SELECT EVENT_NAME, EVENT_DEFINITION, EVENT_TYPE, EXECUTE_AT, INTERVAL_VALUE, INTERVAL_FIELD, "
                "ON_COMPLETION, STATUS, EVENT_COMMENT, ENDS, DEFINER FROM information_schema.EVENTS "
                "WHERE EVENT_SCHEMA = %s" + e_sql), (db,) + e_args) if want["events"] != set() else ()):
            # STARTS is left out on purpose: it defaults to the creation time, so it differs between copies.
            events[name] = {"definition": normalise_body(definition, db), "type": etype,
                            "execute_at": str(execute_at) if execute_at else None,
                            "interval": "%s %s" % (ivalue, ifield) if ivalue else None,
                            "on_completion": completion, "status": status, "comment": comment or "",
                            "ends": str(ends) if ends else None, "definer": definer}

    return {"objects": {"tables": tables, "views": views, "routines": routines, "triggers": triggers,
                        "events": events},
            "sizes": sizes, "rows": rows_estimate}


def _check_rows(cur, db, flavor):
    """(table, name, clause) of CHECK constraints. MariaDB has TABLE_NAME in CHECK_CONSTRAINTS; MySQL (8.0.16+)
    needs TABLE_CONSTRAINTS for the table. Older servers have no such table: no checks."""
    import pymysql

    if flavor == "mariadb":
        sql = ("SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
               "WHERE CONSTRAINT_SCHEMA = %s")
    else:
        sql = ("SELECT tc.TABLE_NAME, cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE "
               "FROM information_schema.CHECK_CONSTRAINTS cc JOIN information_schema.TABLE_CONSTRAINTS tc "
               "ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME "
               "AND tc.CONSTRAINT_TYPE = 'CHECK' WHERE cc.CONSTRAINT_SCHEMA = %s")
    try:
        return _rows(cur, sql, (db,))
    except pymysql.err.MySQLError:
        return ()


def snapshot_sha256(objects) -> str:
    return hashlib.sha256(canonical_json(objects).encode("utf-8")).hexdigest()


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------------------------------------------
# SHOW CREATE text (the human-readable export kept with the release, and diff-mode definitions)
# --------------------------------------------------------------------------------------------------------------

_SHOW = {
    "tables": ("SHOW CREATE TABLE %s", 1),
    "views": ("SHOW CREATE VIEW %s", 1),
    "triggers": ("SHOW CREATE TRIGGER %s", 2),
    "events": ("SHOW CREATE EVENT %s", 3),
}


class DefinitionHidden(Exception):
    """The server hides an object's definition from the connected account."""


def show_create(conn, db, kind, name):
    """The server's own CREATE statement for one object (schema-qualified query, nothing executed in it)."""
    with conn.cursor() as cur:
        if kind == "routines":
            rtype, rname = name.split(" ", 1)
            cur.execute("SHOW CREATE %s %s.%s" % (rtype, quote_ident(db), quote_ident(rname)))
            text = cur.fetchone()[2]
        else:
            sql, col = _SHOW[kind]
            cur.execute(sql % ("%s.%s" % (quote_ident(db), quote_ident(name))))
            text = cur.fetchone()[col]
    if text is None:
        raise DefinitionHidden(
            "the server hides the definition of %s %s.%s from this account, so it can be neither copied for the "
            "plan nor kept in the snapshot: connect as its definer, or grant SELECT ON mysql.proc (MariaDB) / "
            "SHOW_ROUTINE (MySQL 8.0.20+)" % (KIND_LABEL[kind], db, name))
    return text


def show_create_all(conn, db, objects):
    """`{kind: {name: text}}` for every object of a snapshot."""
    return {kind: {name: show_create(conn, db, kind, name) for name in sorted(objects[kind])} for kind in KINDS}


def export_sql(creates, db) -> str:
    """One SQL text with every object's SHOW CREATE output, in a stable order (the `pre.sql` / `post.sql`)."""
    out = ["-- SHOW CREATE output of schema %s, made by dbrelease (schema phase)." % quote_ident(db)]
    for kind in KINDS:
        for name in sorted(creates.get(kind, {})):
            text = creates[kind][name]
            if kind in ("routines", "triggers", "events"):
                out.append("DELIMITER ;;\n%s ;;\nDELIMITER ;" % _SC_AUTO_INC_RE.sub("", text))
            else:
                out.append("%s;" % _SC_AUTO_INC_RE.sub("", text))
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------------------
# What a temporary copy for the plan needs (plancopy.py creates it)
# --------------------------------------------------------------------------------------------------------------

_NAME_TOKEN_RE = re.compile(r"`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)")


def identifiers(text: str) -> set:
    """Every identifier-like token of a statement or definition (quoted or bare; qualifiers split off)."""
    found = set()
    for quoted, bare in _NAME_TOKEN_RE.findall(text or ""):
        found.add(quoted.replace("``", "`") if quoted else bare)
    return found


def plan_scope(statements, objects, modified_tables=()):
    """The tables and views a copy needs so the statements behave on it as on the real schema.

    - every table or view the statements name, and the tables they reference by foreign key;
    - tables with foreign keys to a table the statements alter, drop, rename or index (so a change to a
      referenced column or key fails on the copy as it would for real);
    - views over those tables (and views over those views), and whatever those views read;
    - the triggers of the copied tables; every routine and event (creating them validates nothing).
    Everything else cannot be touched by the statements (short of dynamic SQL in a called routine: use
    `scope=None` for a full copy).
    """
    tables, views = objects["tables"], objects["views"]
    named = set()
    for st in statements:
        named |= identifiers(st["sql"])
    core = {t for t in tables if t in named}
    for table, spec in tables.items():
        for fk in spec["foreign_keys"].values():
            if fk["ref_schema"] is None and fk["ref_table"] in modified_tables:
                core.add(table)
    view_refs = {v: identifiers(spec["definition"]) for v, spec in views.items()}
    chosen_views = {v for v in views if v in named or view_refs[v] & core}
    grown = True
    while grown:  # views over chosen views
        more = {v for v in views if v not in chosen_views and view_refs[v] & chosen_views}
        chosen_views |= more
        grown = bool(more)
    pending = list(chosen_views)
    needed_tables = set(core)
    while pending:
        view = pending.pop()
        for ref in view_refs[view]:
            if ref in views and ref not in chosen_views:
                chosen_views.add(ref)
                pending.append(ref)
            elif ref in tables:
                needed_tables.add(ref)
    for table in list(core):
        for fk in tables[table]["foreign_keys"].values():
            if fk["ref_schema"] is None and fk["ref_table"] in tables:
                needed_tables.add(fk["ref_table"])
    return {"tables": needed_tables, "views": chosen_views}


# --------------------------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------------------------

def _renamed_words(text, names):
    """`text` with every bare or quoted identifier in `names` ({old: new}) renamed (for comparing CHECK clauses
    across a column rename)."""
    if not names or not text:
        return text
    from ansible.module_utils.dbrelease.sqlident import lex, unquote

    out = []
    for kind, tok in lex(text):
        if kind in ("word", "ident") and unquote(kind, tok) in names:
            out.append(names[unquote(kind, tok)] if kind == "word" else quote_ident(names[unquote(kind, tok)]))
        else:
            out.append(tok)
    return "".join(out)


def _mapped_part(before, part, renamed):
    """The indexes, foreign keys or checks of a table as they read after its columns were renamed."""
    if not renamed:
        return before[part]
    out = {}
    for name, spec in before[part].items():
        if part == "indexes":
            spec = dict(spec, columns=[[renamed.get(c[0], c[0])] + list(c[1:]) for c in spec["columns"]])
        elif part == "foreign_keys":
            spec = dict(spec, columns=[renamed.get(c, c) for c in spec["columns"]])
        else:
            spec = _renamed_words(spec, renamed)
        out[name] = spec
    return out


def _table_details(before, after, moved=None):
    """Details of a table's change. `moved` maps each column of `after` to the column of `before` it is (renamed
    or not), or None for a new column; without it, columns are matched by name."""
    details = []
    columns = []
    bcols, acols = before["columns"], after["columns"]
    if moved is None:
        moved = {name: (name if name in bcols else None) for name in after["column_order"]}
    renamed = {old: new for new, old in moved.items() if old is not None and old != new}
    used = {old for old in moved.values() if old is not None}
    moved = {name: (old if old in bcols else None) for name, old in moved.items()}
    for name in after["column_order"]:
        old = moved.get(name)
        if old is None:
            details.append("add column %s %s" % (name, acols[name]["type"]))
            columns.append({"column": name, "action": "add", "after": acols[name]})
            continue
        if old != name:
            details.append("rename column %s -> %s" % (old, name))
            columns.append({"column": name, "action": "rename", "renamed_from": old, "before": bcols[old],
                            "after": acols[name]})
        if bcols[old] != acols[name]:
            changed = sorted(k for k in set(bcols[old]) | set(acols[name]) if bcols[old].get(k) != acols[name].get(k))
            details.append("modify column %s (%s): %s -> %s" % (
                name, ", ".join(changed),
                ", ".join("%s" % (bcols[old].get(k),) for k in changed),
                ", ".join("%s" % (acols[name].get(k),) for k in changed)))
            columns.append({"column": name, "action": "modify", "before": bcols[old], "after": acols[name]})
    for name in before["column_order"]:
        if name not in used:
            details.append("drop column %s" % name)
            columns.append({"column": name, "action": "drop", "before": bcols[name]})
    kept_b = [renamed.get(c, c) for c in before["column_order"] if c in used]
    kept_a = [c for c in after["column_order"] if moved.get(c) is not None]
    if kept_b != kept_a:
        details.append("reorder columns")
    indexes = []
    for part in ("indexes", "foreign_keys", "checks"):
        label = {"indexes": "index", "foreign_keys": "foreign key", "checks": "check"}[part]
        bpart = _mapped_part(before, part, renamed)
        for name in sorted(set(bpart) | set(after[part])):
            b, a = bpart.get(name), after[part].get(name)
            if b == a:
                continue
            action = "add" if b is None else "drop" if a is None else "change"
            details.append("%s %s %s" % (action, label, name))
            if part == "indexes":
                indexes.append({"index": name, "action": action, "before": before[part].get(name), "after": a})
    if before["options"] != after["options"]:
        details.append("table options: %s" % ", ".join(
            "%s %s -> %s" % (k, before["options"].get(k), after["options"].get(k))
            for k in sorted(after["options"]) if before["options"].get(k) != after["options"].get(k)))
    return details, columns, indexes


def _moves_columns(moved, after) -> bool:
    """Whether a lineage column map renames a column or makes one new under an old name (dropped and re-added)."""
    return bool(moved) and any(moved.get(c, c) != c for c in after["column_order"])


def diff(before, after, lineage=None):
    """The changes from snapshot objects `before` to `after`: a list of dicts, in a stable order.

    Each change: `{"object": "table outbox", "kind", "name", "action": create|alter|drop|rename|recreate,
    "details": [...]}`, tables also `columns` and `indexes` (structured, for the destructive-change and
    unique-index checks). `lineage` says what each table of `after` is: `{"tables": {after name: before name or
    None (new)}, "columns": {after name: {after column: before column or None}}}`; tables it does not name are
    matched by name. A renamed table is `rename` (with `renamed_from`), not a drop and a create; a table that
    exists before and after but was dropped and created again in between is `recreate`.
    """
    lineage = lineage or {}
    origins = dict(lineage.get("tables") or {})
    changes = []
    for kind in KINDS:
        b_all, a_all = before.get(kind, {}), after.get(kind, {})
        if kind == "tables":
            origin_of = {name: origins.get(name, name if name in b_all else None) for name in a_all}
            origin_of = {n: (o if o in b_all else None) for n, o in origin_of.items()}
        else:
            origin_of = {name: (name if name in b_all else None) for name in a_all}
        used = {o for o in origin_of.values() if o is not None}
        names = sorted(set(a_all) | (set(b_all) - used))
        for name in names:
            a = a_all.get(name)
            origin = origin_of.get(name) if a is not None else None
            b = b_all.get(origin) if a is not None else b_all.get(name)
            change = {"object": "%s %s" % (KIND_LABEL[kind], name), "kind": kind, "name": name}
            if a is None:
                change.update(action="drop", details=[])
            elif b is None:
                change.update(action="recreate" if name in b_all else "create",
                              details=["drops and re-creates the table"] if name in b_all else [])
                if kind == "tables":
                    change["indexes"] = [{"index": i, "action": "add", "before": None, "after": v}
                                         for i, v in sorted(a["indexes"].items())]
                    if name in b_all:
                        change["replaced"] = b_all[name]
            elif origin != name or b != a or (kind == "tables" and _moves_columns(
                    (lineage.get("columns") or {}).get(name), a)):
                change["action"] = "rename" if origin != name else "alter"
                if kind == "tables":
                    moved = (lineage.get("columns") or {}).get(name)
                    change["details"], change["columns"], change["indexes"] = _table_details(b, a, moved)
                    if origin != name:
                        change["renamed_from"] = origin
                        change["details"].insert(0, "rename table %s -> %s" % (origin, name))
                    if not change["details"]:
                        continue
                else:
                    change["details"] = ["%s changed" % k for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)]
            else:
                continue
            changes.append(change)
    return changes


def plan_sha256(changes, file_checksums) -> str:
    """Hash of the normalised plan (objects, actions, details) and the DDL files' checksums."""
    core = [{"object": c["object"], "action": c["action"], "details": c.get("details", [])} for c in changes]
    payload = canonical_json({"changes": core, "files": file_checksums})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def compare_plans(approved, current):
    """What differs between an approved plan file and the current plan: a list of human-readable lines."""
    lines = []
    a_changes = {c["object"]: c for c in approved.get("changes", [])}
    c_changes = {c["object"]: c for c in current.get("changes", [])}
    for obj in sorted(set(a_changes) | set(c_changes)):
        a, c = a_changes.get(obj), c_changes.get(obj)
        if a is None:
            lines.append("%s: %s now planned, not in the approved plan" % (obj, c["action"]))
        elif c is None:
            lines.append("%s: %s in the approved plan, not planned now" % (obj, a["action"]))
        elif (a["action"], a.get("details", [])) != (c["action"], c.get("details", [])):
            lines.append("%s: approved %s %s, now %s %s" % (obj, a["action"], a.get("details", []),
                                                             c["action"], c.get("details", [])))
    a_files, c_files = approved.get("files", {}), current.get("files", {})
    for name in sorted(set(a_files) | set(c_files)):
        if a_files.get(name) != c_files.get(name):
            lines.append("DDL file %s: approved sha256 %s, now %s" % (name, a_files.get(name, "(absent)"),
                                                                     c_files.get(name, "(absent)")))
    return lines
