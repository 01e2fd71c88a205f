"""Schema snapshots, normalisation, diff and structure copies. Stdlib plus PyMySQL only (runs on target hosts).

A snapshot is read with one information_schema query per object kind (never one per table), and normalised so
that the same schema reads the same on MySQL 8 and MariaDB and under any schema name:

- integer display widths are dropped (`int(11)` on MariaDB, `int` on MySQL >= 8.0.19), except `tinyint(1)` and
  ZEROFILL columns, where both servers keep them;
- column defaults become `'literal'` or an expression (MariaDB >= 10.2.7 quotes literals in COLUMN_DEFAULT and says
  `NULL`; MySQL gives the bare value and flags expressions with `DEFAULT_GENERATED` in EXTRA);
- `current_timestamp()` / `CURRENT_TIMESTAMP` / `now()` are spelled one way; CHECK clauses lose the extra
  parentheses MySQL adds; references to the schema itself (`` `db`.`t` `` in view definitions) are unqualified.

Table sizes are kept beside the snapshot (`sizes`), outside what is compared.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible.module_utils.dbrelease.db import quote_ident

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
    """Remove qualifications by the schema itself (`` `db`.`t` `` -> `` `t` ``) so copies compare equal."""
    if not text:
        return text or ""
    quoted = quote_ident(db)
    return text.replace(quoted + ".", "")


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


def snapshot(conn, db: str, flavor: str):
    """`{"objects": {tables, views, routines, triggers, events}, "sizes": {table: bytes}, "rows": {table: n}}`.

    One information_schema query per object kind (tables, columns, indexes, foreign keys, checks, views,
    routines, parameters, triggers, events): the cost does not grow with one round trip per table.
    """
    tables = {}
    sizes = {}
    rows_estimate = {}
    with conn.cursor() as cur:
        for name, engine, collation, comment, options, data_len, index_len, nrows in _rows(cur, (
                "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, TABLE_COMMENT, CREATE_OPTIONS, DATA_LENGTH, "
                "INDEX_LENGTH, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"), (db,)):
            tables[name] = {
                "options": {"engine": engine, "collation": collation, "comment": comment or "",
                            "create_options": " ".join(sorted((options or "").lower().split()))},
                "columns": {}, "column_order": [], "indexes": {}, "foreign_keys": {}, "checks": {},
            }
            sizes[name] = int(data_len or 0) + int(index_len or 0)
            rows_estimate[name] = int(nrows or 0)

        for (table, column, default, nullable, ctype, charset, collation, extra, comment,
             generation) in _rows(cur, (
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, CHARACTER_SET_NAME, "
                "COLLATION_NAME, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION"), (db,)):
            if table not in tables:
                continue  # a view's columns
            entry = {"type": normalise_type(ctype), "nullable": nullable == "YES",
                     "default": normalise_default(default, extra, flavor), "extra": normalise_extra(extra),
                     "charset": charset, "collation": collation, "comment": comment or ""}
            if generation:
                entry["generated"] = normalise_expression(strip_schema(generation, db))
            tables[table]["columns"][column] = entry
            tables[table]["column_order"].append(column)

        for table, index, non_unique, column, sub_part, itype, collation, comment in _rows(cur, (
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE, COLLATION, "
                "INDEX_COMMENT FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"), (db,)):
            if table not in tables:
                continue
            idx = tables[table]["indexes"].setdefault(index, {
                "unique": int(non_unique) == 0, "type": itype, "comment": comment or "", "columns": []})
            idx["columns"].append([column, int(sub_part) if sub_part else None, "desc" if collation == "D" else "asc"])

        fks = {}
        for table, name, ref_table, update_rule, delete_rule in _rows(cur, (
                "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s"), (db,)):
            fks[(table, name)] = {"columns": [], "ref_schema": None, "ref_table": ref_table, "ref_columns": [],
                                  "on_update": update_rule, "on_delete": delete_rule}
        for table, name, column, ref_schema, ref_column in _rows(cur, (
                "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_COLUMN_NAME "
                "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"),
                (db,)):
            fk = fks.get((table, name))
            if fk is None:
                continue
            fk["columns"].append(column)
            fk["ref_columns"].append(ref_column)
            fk["ref_schema"] = None if ref_schema == db else ref_schema
        for (table, name), fk in fks.items():
            if table in tables:
                tables[table]["foreign_keys"][name] = fk

        for table, name, clause in _check_rows(cur, db, flavor):
            if table in tables:
                tables[table]["checks"][name] = normalise_expression(strip_schema(clause, db).replace("`", ""))

        views = {}
        for name, definition, check_option, security in _rows(cur, (
                "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE FROM information_schema.VIEWS "
                "WHERE TABLE_SCHEMA = %s"), (db,)):
            views[name] = {"definition": normalise_body(definition, db), "check_option": check_option,
                           "security": security}

        params = {}
        for specific, rtype, mode, pname, dtd in _rows(cur, (
                "SELECT SPECIFIC_NAME, ROUTINE_TYPE, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER "
                "FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = %s "
                "ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION"), (db,)):
            if pname is None:
                continue  # a function's return value (ORDINAL_POSITION 0)
            params.setdefault((rtype, specific), []).append([mode, pname, normalise_type(dtd)])
        routines = {}
        for name, rtype, body, dtd, deterministic, access, security, comment in _rows(cur, (
                "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, DTD_IDENTIFIER, IS_DETERMINISTIC, "
                "SQL_DATA_ACCESS, SECURITY_TYPE, ROUTINE_COMMENT FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = %s"), (db,)):
            routines["%s %s" % (rtype, name)] = {
                "type": rtype, "body": normalise_body(body, db), "params": params.get((rtype, name), []),
                "returns": normalise_type(dtd) if dtd else None, "deterministic": deterministic,
                "data_access": access, "security": security, "comment": comment or ""}

        triggers = {}
        for name, event, table, timing, statement, order in _rows(cur, (
                "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_STATEMENT, "
                "ACTION_ORDER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"), (db,)):
            triggers[name] = {"table": table, "timing": timing, "event": event,
                              "statement": normalise_body(statement, db), "order": int(order or 0)}

        events = {}
        for name, definition, etype, execute_at, ivalue, ifield, completion, status, comment, ends in _rows(cur, (
                "SELECT EVENT_NAME, EVENT_DEFINITION, EVENT_TYPE, EXECUTE_AT, INTERVAL_VALUE, INTERVAL_FIELD, "
                "ON_COMPLETION, STATUS, EVENT_COMMENT, ENDS FROM information_schema.EVENTS "
                "WHERE EVENT_SCHEMA = %s"), (db,)):
            # STARTS is left out on purpose: it defaults to the creation time, so it differs between copies.
            events[name] = {"definition": normalise_body(definition, db), "type": etype,
                            "execute_at": str(execute_at) if execute_at else None,
                            "interval": "%s %s" % (ivalue, ifield) if ivalue else None,
                            "on_completion": completion, "status": status, "comment": comment or "",
                            "ends": str(ends) if ends else None}

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


class CopyError(Exception):
    """An object could not be created in the temporary schema; the message names it and the server's error."""


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
# Copy the structure into a temporary schema
# --------------------------------------------------------------------------------------------------------------

_EVENT_STATUS_RE = re.compile(r"\s(ENABLE|DISABLE ON SLAVE|DISABLE ON REPLICA|DISABLE)\s(?=.*\sDO\s)", re.DOTALL)


def rewrite_schema(text: str, src: str, dst: str) -> str:
    return (text or "").replace(quote_ident(src) + ".", quote_ident(dst) + ".")


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


def copy_structure(conn, src, dst, objects, creates=None, scope=None, source_conn=None):
    """Create `dst` and copy the tables, views, routines, triggers and events of `src` into it, with no data.

    Uses the SHOW CREATE outputs (not CREATE TABLE ... LIKE, which drops foreign keys), with
    foreign_key_checks=0 so tables load in any order; views are created in dependency order by retrying;
    events are copied DISABLEd so nothing fires in the copy. With `scope` (from plan_scope) only those tables and
    views, and the triggers of those tables, are copied; routines and events always are.
    """
    creates = creates or show_create_all(conn, src, objects)
    if scope is not None:
        creates = dict(creates)
        creates["tables"] = {n: t for n, t in creates["tables"].items() if n in scope["tables"]}
        creates["views"] = {n: t for n, t in creates["views"].items() if n in scope["views"]}
        creates["triggers"] = {n: t for n, t in creates["triggers"].items()
                               if objects["triggers"][n]["table"] in scope["tables"]}
    with (source_conn or conn).cursor() as cur:  # `source_conn`: src lives on another server (schema_plan_server)
        cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME = %s", (src,))
        charset, collation = cur.fetchone()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (quote_ident(dst), charset, collation))
        cur.execute("USE %s" % quote_ident(dst))
        cur.execute("SET SESSION foreign_key_checks = 0")
        try:
            for name in sorted(creates["tables"]):
                _copy_one(cur, "table", name, rewrite_schema(creates["tables"][name], src, dst), plain=True)
            _create_views(cur, {n: rewrite_schema(t, src, dst) for n, t in creates["views"].items()})
            for kind in ("routines", "triggers"):
                for name in sorted(creates[kind]):
                    _copy_one(cur, KIND_LABEL[kind], name, rewrite_schema(creates[kind][name], src, dst))
            for name in sorted(creates["events"]):
                text = _EVENT_STATUS_RE.sub(" DISABLE ", rewrite_schema(creates["events"][name], src, dst), count=1)
                _copy_one(cur, "event", name, text)
        finally:
            cur.execute("SET SESSION foreign_key_checks = 1")
    return creates


def _copy_one(cur, label, name, text, plain=False):
    import pymysql

    try:
        if plain:
            cur.execute(text)
        else:
            _execute_as_definer_or_self(cur, text)
    except pymysql.err.MySQLError as exc:
        hint = ""
        if exc.args and exc.args[0] == 1419:
            hint = " (with binary logging on, creating routines and triggers needs SUPER or " \
                   "log_bin_trust_function_creators=1 - the real DDL would need it too)"
        raise CopyError("cannot copy %s %s into the temporary schema: (%s) %s%s" % (
            label, name, exc.args[0] if exc.args else "?", exc.args[1] if len(exc.args) > 1 else exc, hint)) from None


def _execute_as_definer_or_self(cur, text):
    """Create an object with its DEFINER; without the privilege to name another definer (SUPER, SET USER,
    SET_USER_ID: error 1227), create it as the connected user. Definers are not part of the compared snapshot."""
    import pymysql

    try:
        cur.execute(text)
    except pymysql.err.OperationalError as exc:
        if not exc.args or exc.args[0] != 1227:
            raise
        cur.execute(_SC_DEFINER_RE.sub("", text, count=1))


def _create_views(cur, texts):
    import pymysql

    pending = dict(texts)
    while pending:
        progress = False
        errors = {}
        for name in sorted(pending):
            try:
                _execute_as_definer_or_self(cur, pending[name])
            except pymysql.err.MySQLError as exc:
                errors[name] = exc
                continue
            del pending[name]
            progress = True
        if not progress:
            name = sorted(errors)[0]
            raise CopyError("cannot copy view %s into the temporary schema: %s" % (name, errors[name]))


# --------------------------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------------------------

def _table_details(before, after):
    details = []
    columns = []
    bcols, acols = before["columns"], after["columns"]
    for name in after["column_order"]:
        if name not in bcols:
            details.append("add column %s %s" % (name, acols[name]["type"]))
            columns.append({"column": name, "action": "add", "after": acols[name]})
        elif bcols[name] != acols[name]:
            changed = sorted(k for k in set(bcols[name]) | set(acols[name]) if bcols[name].get(k) != acols[name].get(k))
            details.append("modify column %s (%s): %s -> %s" % (
                name, ", ".join(changed),
                ", ".join("%s" % (bcols[name].get(k),) for k in changed),
                ", ".join("%s" % (acols[name].get(k),) for k in changed)))
            columns.append({"column": name, "action": "modify", "before": bcols[name], "after": acols[name]})
    for name in before["column_order"]:
        if name not in acols:
            details.append("drop column %s" % name)
            columns.append({"column": name, "action": "drop", "before": bcols[name]})
    kept_b = [c for c in before["column_order"] if c in acols]
    kept_a = [c for c in after["column_order"] if c in bcols]
    if kept_b != kept_a:
        details.append("reorder columns")
    indexes = []
    for part in ("indexes", "foreign_keys", "checks"):
        label = {"indexes": "index", "foreign_keys": "foreign key", "checks": "check"}[part]
        for name in sorted(set(before[part]) | set(after[part])):
            b, a = before[part].get(name), after[part].get(name)
            if b == a:
                continue
            action = "add" if b is None else "drop" if a is None else "change"
            details.append("%s %s %s" % (action, label, name))
            if part == "indexes":
                indexes.append({"index": name, "action": action, "before": b, "after": a})
    if before["options"] != after["options"]:
        details.append("table options: %s" % ", ".join(
            "%s %s -> %s" % (k, before["options"].get(k), after["options"].get(k))
            for k in sorted(after["options"]) if before["options"].get(k) != after["options"].get(k)))
    return details, columns, indexes


def diff(before, after):
    """The changes from snapshot objects `before` to `after`: a list of dicts, in a stable order.

    Each change: `{"object": "table outbox", "kind", "name", "action": create|alter|drop, "details": [...]}`,
    tables also `columns` and `indexes` (structured, for the destructive-change and unique-index checks).
    """
    changes = []
    for kind in KINDS:
        b_all, a_all = before.get(kind, {}), after.get(kind, {})
        for name in sorted(set(b_all) | set(a_all)):
            b, a = b_all.get(name), a_all.get(name)
            if b == a:
                continue
            change = {"object": "%s %s" % (KIND_LABEL[kind], name), "kind": kind, "name": name}
            if b is None:
                change.update(action="create", details=[])
                if kind == "tables":
                    change["indexes"] = [{"index": i, "action": "add", "before": None, "after": v}
                                         for i, v in sorted(a["indexes"].items())]
            elif a is None:
                change.update(action="drop", details=[])
            else:
                change["action"] = "alter"
                if kind == "tables":
                    change["details"], change["columns"], change["indexes"] = _table_details(b, a)
                else:
                    change["details"] = ["%s changed" % k for k in sorted(set(b) | set(a)) if b.get(k) != a.get(k)]
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
