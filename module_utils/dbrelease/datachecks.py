"""The dry-run sees the data: checks of a release's changes against the rows the real tables hold. Stdlib only.

The plan's copy has the structure but no rows. For every statement, the plan records how it changed each table
of the copy (its snapshot before and after the statement); this module follows what each table and column then
holds in terms of the real database's data (the lineage), and turns every change that rows can break into a
count of the rows that break it:

- a column made NOT NULL over NULLs;
- a new or changed CHECK that rows violate;
- a new FOREIGN KEY with orphan rows;
- a new or changed UNIQUE (or PRIMARY) key over duplicate values, also when a column of an existing unique key
  changes its type or collation;
- a type, length or precision narrowed below values present; a character set that cannot hold the text present.

A column is an SQL expression over the real table's columns: itself, or (added by an earlier statement of the
release) its default, its generation expression, or NULL. So a check that depends on an earlier statement (a
column it adds, then constrains) is evaluated against the data as that statement leaves it, before anything is
applied. Where that cannot be known (the rows come from a query, a data statement or a procedure call ran first,
a default is generated per row) the check runs on the way: in the real run, right before its statement, on the
data as the earlier statements left it. Checks on tables the release creates (no rows yet) need no query.

Losing values is also found here: a column dropped and re-added, and a table dropped and re-created, in one
release are destructive whatever the new definition.
"""

from __future__ import annotations

from ansible.module_utils.dbrelease import ddl_lint
from ansible.module_utils.dbrelease.db import quote_ident
from ansible.module_utils.dbrelease.sqlident import lex, object_references, qualified_names, unquote

ALIAS = "\x01"  # stands for the table alias in column expressions until a query binds it


def column_ref(name: str) -> str:
    return "%s.%s" % (ALIAS, quote_ident(name))


def bind(expr: str, alias: str) -> str:
    return expr.replace(ALIAS, quote_ident(alias))


# ---------------------------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------------------------

def substitute(text: str, columns: dict) -> str | None:
    """`text` (a CHECK clause or generation expression as the server shows it) with each column reference
    replaced by `(expression)` from `columns` ({lower-case name: expression or None}); None when a referenced
    column's value is unknown."""
    tokens = lex(text)
    out = []
    sig = [i for i, (k, _t) in enumerate(tokens) if k not in ("ws", "comment")]
    nxt = {sig[j]: sig[j + 1] for j in range(len(sig) - 1)}
    prv = {sig[j + 1]: sig[j] for j in range(len(sig) - 1)}
    for i, (kind, tok) in enumerate(tokens):
        if kind in ("word", "ident"):
            name = unquote(kind, tok).lower()
            after = tokens[nxt[i]][1] if i in nxt else None
            before = tokens[prv[i]][1] if i in prv else None
            if name in columns and after != "(" and before != "." and after != ".":
                expr = columns[name]
                if expr is None:
                    return None
                out.append("(%s)" % expr)
                continue
        out.append(tok)
    return "".join(out)


_ZERO_DATES = {"date": "'0000-00-00'", "datetime": "'0000-00-00 00:00:00'", "timestamp": "'0000-00-00 00:00:00'",
               "time": "'00:00:00'", "year": "0"}
_NUMERIC = set(ddl_lint.INT_BYTES) | {"decimal", "numeric", "float", "double", "real", "bit", "bool", "boolean"}
_TEXTUAL = {"char", "varchar", "binary", "varbinary", "tinytext", "text", "mediumtext", "longtext", "tinyblob",
            "blob", "mediumblob", "longblob", "json", "set"}


def new_column_value(spec: dict, columns: dict) -> str | None:
    """The value a column added to a table gives its existing rows, as an expression over `columns` (the
    table's other columns); None when it is generated per row and unknown here (AUTO_INCREMENT, a sequence)."""
    extra = (spec.get("extra") or "").lower()
    if "auto_increment" in extra:
        return None
    if spec.get("generated"):
        return substitute(spec["generated"], columns)
    default = spec.get("default")
    if default is not None:
        return default
    if spec.get("nullable", True):
        return "NULL"
    parsed = ddl_lint.parse_type(spec.get("type") or "")
    base = parsed["base"]
    if base in _NUMERIC:
        return "0"
    if base in _TEXTUAL:
        return "''"
    if base == "enum":
        return ddl_lint_quote(parsed["args"][0]) if parsed["args"] else "''"
    return _ZERO_DATES.get(base)


def ddl_lint_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------------------------
# Narrowed types and character sets
# ---------------------------------------------------------------------------------------------------------------

def _length(parsed, default=None):
    try:
        return int(parsed["args"][0])
    except (IndexError, ValueError):
        return default


def narrowing_predicate(expr: str, before: dict, after: dict) -> str | None:
    """An SQL predicate true for the rows whose value the change from column spec `before` to `after` cannot
    keep (cut, rounded, out of range, unrepresentable); None when the change cannot lose values or cannot be
    checked by a query. Only called for changes ddl_lint.narrowing_reason calls narrowing."""
    preds = []
    bcs, acs = before.get("charset"), after.get("charset")
    if bcs and acs and bcs != acs and not ddl_lint.charset_holds(acs, bcs):
        # From UTF-8, a text of ASCII characters only (as many bytes as characters) fits any character set: the
        # conversion runs only for the others.
        ascii_only = "LENGTH(%s) <> CHAR_LENGTH(%s) AND " % (expr, expr) if bcs.startswith("utf8") else ""
        preds.append("%sCAST(CONVERT(CONVERT(%s USING %s) USING %s) AS BINARY) <> CAST(%s AS BINARY)" % (
            ascii_only, expr, acs, bcs, expr))
    b, a = ddl_lint.parse_type(before.get("type")), ddl_lint.parse_type(after.get("type"))
    bb, ab = b["base"], a["base"]
    strings = ddl_lint.STRINGS | set(ddl_lint.TEXT_BYTES)
    if b != a:
        if bb in ddl_lint.INT_BYTES and ab in ddl_lint.INT_BYTES:
            lo, hi = ddl_lint.int_range(a)
            preds.append("%s < %d OR %s > %d" % (expr, lo, expr, hi))
        elif ab in ("decimal", "numeric") and (bb in ddl_lint.INT_BYTES or bb in ("decimal", "numeric", "float",
                                                                                   "double", "real")):
            ap, as_ = _length(a, 10), (int(a["args"][1]) if len(a["args"]) > 1 else 0)
            preds.append("ABS(%s) >= POW(10, %d) OR %s <> ROUND(%s, %d)" % (expr, ap - as_, expr, expr, as_))
            if a["unsigned"]:
                preds.append("%s < 0" % expr)
        elif bb in ("float", "double", "real") and ab == "float":
            preds.append("%s <> CAST(%s AS FLOAT)" % (expr, expr))
        elif ab in strings and (bb in strings or bb in ("enum", "set") or bb in ddl_lint.INT_BYTES):
            if ab in ("char", "varchar"):
                n = _length(a)
                if n is not None:  # bytes >= characters: the byte length (stored, no scan) rules most rows out
                    preds.append("LENGTH(%s) > %d AND CHAR_LENGTH(%s) > %d" % (expr, n, expr, n))
            else:
                n = _length(a) if ab in ("binary", "varbinary") else ddl_lint.TEXT_BYTES.get(ab)
                measured = "CONVERT(%s USING %s)" % (expr, acs) if acs and bcs and acs != bcs else expr
                if n is not None:
                    preds.append("LENGTH(%s) > %d" % (measured, n))
            b_binary = "binary" in bb or "blob" in bb
            a_binary = "binary" in ab or "blob" in ab
            if b_binary and not a_binary and acs:
                preds.append("CAST(CONVERT(%s USING %s) AS BINARY) <> CAST(%s AS BINARY)" % (expr, acs, expr))
        elif bb in ("enum", "set") and ab == bb:
            lost = [v for v in b["args"] if v not in a["args"]]
            if bb == "enum":
                if lost:
                    preds.append("%s IN (%s)" % (expr, ", ".join(ddl_lint_quote(v) for v in lost)))
            else:
                preds.extend("FIND_IN_SET(%s, %s) > 0" % (ddl_lint_quote(v), expr) for v in lost)
        elif bb in ddl_lint.TEMPORAL_RANK and ab in ddl_lint.TEMPORAL_RANK:
            af = _length(a, 0)
            if ab in ("datetime", "timestamp", "time") and af < 6:
                preds.append("MICROSECOND(%s) MOD %d <> 0" % (expr, 10 ** (6 - af)))
            if bb == "datetime" and ab == "timestamp":
                preds.append("%s < '1970-01-01 00:00:01' OR %s > '2038-01-19 03:14:07'" % (expr, expr))
            if bb in ("datetime", "timestamp") and ab == "date":
                preds.append("TIME(%s) <> '00:00:00'" % expr)
            if ab == "year" or {bb, ab} == {"date", "time"} or (bb in ("datetime", "timestamp") and ab == "time"):
                preds.append("%s IS NOT NULL" % expr)
        elif bb in strings and ab in ddl_lint.INT_BYTES:
            lo, hi = ddl_lint.int_range(a)
            preds.append("NOT (%s REGEXP '^[+-]?[0-9]+$') OR CAST(%s AS DECIMAL(65,0)) < %d OR "
                         "CAST(%s AS DECIMAL(65,0)) > %d" % (expr, expr, lo, expr, hi))
        elif bb in strings and ab in ("decimal", "numeric"):
            ap, as_ = _length(a, 10), (int(a["args"][1]) if len(a["args"]) > 1 else 0)
            num = "CAST(%s AS DECIMAL(65,30))" % expr
            preds.append("NOT (%s REGEXP '^[+-]?[0-9]+([.][0-9]+)?$') OR ABS(%s) >= POW(10, %d) OR %s <> ROUND(%s, %d)"
                         % (expr, num, ap - as_, num, num, as_))
        elif bb in strings and ab in ("date", "datetime", "timestamp"):
            preds.append("CAST(%s AS DATETIME(6)) IS NULL" % expr)
        elif bb in ddl_lint.INT_BYTES and ab in ("float", "double", "real"):
            preds.append("%s <> CAST(%s AS %s)" % (expr, expr, "FLOAT" if ab == "float" else "DOUBLE"))
        else:
            return None if not preds else _or(expr, preds)
    return _or(expr, preds) if preds else None


def _or(expr, preds):
    """The predicates joined; each is NULL (not counted) for a NULL value, except those that test IS NOT NULL."""
    return " OR ".join("(%s)" % p for p in preds) if len(preds) > 1 else preds[0]


# ---------------------------------------------------------------------------------------------------------------
# What a statement says about renames and values (read from its text; the copy says what it changed)
# ---------------------------------------------------------------------------------------------------------------

def statement_hints(effective_sql: str, info: dict, target: dict) -> dict:
    """Renames, columns dropped and re-added in one ALTER, and tables whose rows a statement changes."""
    hints = {"table_renames": [], "column_renames": [], "readded": set(), "ctas": False, "replace": False,
             "data_tables": set(), "truncate": set(), "unknown": False}
    category, verb = info["category"], target.get("verb")
    if category in ("call", "dynamic", "compound", "other"):
        hints["unknown"] = True
        return hints
    if category == "data":
        refs = {name for schema, name in object_references(effective_sql) if schema is None}
        if verb == "truncate" and target.get("table"):
            hints["truncate"].add(target["table"])
        else:
            hints["data_tables"] |= refs | ({target["table"]} if target.get("table") else set())
        return hints
    if category != "schema":
        return hints
    kind = info.get("kind")
    if verb == "rename" and kind == "table":
        names = [n["parts"][-1][0] for n in qualified_names(lex(effective_sql)) if n["object"] or
                 n["schema_at"] is not None]
        hints["table_renames"] = list(zip(names[0::2], names[1::2], strict=False))
    if verb == "create" and kind == "table":
        words = [t[1].upper() for t in target.get("tokens", []) if t[0] == "word"]
        hints["ctas"] = "SELECT" in words
        hints["replace"] = bool(target.get("or_replace"))
    if verb == "alter" and kind == "table":
        dropped, added = set(), set()
        for clause in target.get("clauses", []):
            ck = ddl_lint.clause_kind(clause)
            words = [t[1].upper() if t[0] == "word" else None for t in clause]
            names = [t[1] for t in clause if t[0] in ("word", "ident") and
                     not (t[0] == "word" and t[1].upper() in ("COLUMN", "IF", "NOT", "EXISTS"))]
            if ck == "rename_table" and len(clause) > 1:
                last = clause[-1]
                new = last[1].split(".")[-1] if last[0] == "word" else last[1]
                hints["table_renames"].append((target["table"], new))
            elif ck == "rename_column" and "TO" in words:
                at = words.index("TO")
                hints["column_renames"].append((clause[at - 1][1], clause[at + 1][1]))
            elif ck == "modify_column" and words[0] == "CHANGE" and len(names) >= 3:
                hints["column_renames"].append((names[1], names[2]))
            elif ck == "drop_column" and len(names) >= 2:
                dropped.add(names[1].lower())
            elif ck == "add_column" and len(names) >= 2 and clause[1:2] != [("punct", "(")]:
                added.add(names[1].lower())
        hints["readded"] = dropped & added
    return hints


# ---------------------------------------------------------------------------------------------------------------
# Lineage
# ---------------------------------------------------------------------------------------------------------------

def net_renames(renames) -> dict:
    """{old: new} of a sequence of renames applied in order (a -> t, b -> a, t -> b is a swap)."""
    net = {}
    for old, new in renames:
        source = next((k for k, v in net.items() if v == old), old)
        net[source] = new
    return {k: v for k, v in net.items() if k != v}


def _fold(names):
    return {n.lower(): n for n in names}


class Lineage:
    """What every table of the copy holds, in terms of the real database, as the statements run in order.

    A table: `origin` (the real table its rows are, or None), `rows` (`real`, `none` for a table the release
    created or emptied, `unknown` when a query, a data statement or a call produced them), and `columns`
    ({name: {"expr": SQL over the real table (ALIAS-qualified) or None, "by": [statement refs]}}).
    """

    def __init__(self, db: str, tables: dict):
        self.db = db
        self.tables = {name: {"origin": name, "rows": "real",
                              "columns": {c: {"expr": column_ref(c), "by": [], "src": c}
                                          for c in spec["column_order"]}}
                       for name, spec in tables.items()}
        self.real_columns = {name: list(spec["column_order"]) for name, spec in tables.items()}
        self.real_specs = tables
        self.checks = []

    # -- one statement -------------------------------------------------------------------------------------------
    def step(self, ref, info, hints, before, after):
        """Follow one statement: `before` / `after` are the copy's table snapshots (touched tables) around it."""
        if hints.get("unknown"):
            for line in self.tables.values():
                self._unknown(line, ref)
        for name in hints.get("data_tables", ()):
            if name in self.tables:
                self._unknown(self.tables[name], ref)
        for name in hints.get("truncate", ()):
            self._lose_table(name, ref)
        net = net_renames(hints.get("table_renames", ()))
        pairs, created, dropped = self._pairs(net, before, after)
        if net:
            moved = {net[name]: self.tables.pop(name) for name in list(net) if name in self.tables}
            self.tables.update(moved)
        for name in dropped:
            self.tables.pop(name, None)
        transitions = []
        for bname, aname in pairs:
            line = self.tables.get(aname)
            if line is None:
                line = self.tables[aname] = {"origin": None, "rows": "none", "columns": {}}
            if hints.get("replace"):
                line = self.tables[aname] = {"origin": None, "rows": "none", "columns": {}, "replaced": True}
                self._new_columns(line, after[aname], ref)
                continue
            transitions.append((bname, aname, self._columns(line, ref, hints, before[bname], after[aname], aname)))
        for name in created:
            line = self.tables[name] = {"origin": None, "rows": "unknown" if hints.get("ctas") else "none",
                                        "columns": {}, "by": [ref]}
            self._new_columns(line, after[name], ref)
        for bname, aname, moves in transitions:
            self._checks(ref, bname, aname, before[bname], after[aname], moves)

    @staticmethod
    def _pairs(net, before, after):
        """(before name, after name) of the tables a statement kept or renamed; tables it created; dropped."""
        pairs, created, dropped = [], [], []
        for name in sorted(before):
            new = net.get(name, name)
            if new in after:
                pairs.append((name, new))
            else:
                dropped.append(name)
        targets = {new for _b, new in pairs}
        for name in sorted(after):
            if name not in targets:
                created.append(name)
        return pairs, created, dropped

    def _unknown(self, line, ref):
        if line["rows"] == "real":
            line["rows"] = "unknown"
        for col in line["columns"].values():
            col["expr"] = None
            col["by"] = col["by"] + [ref]

    def _lose_table(self, name, ref):
        """The table's rows are gone (dropped, replaced or emptied by `ref`)."""
        line = self.tables.get(name)
        if line:
            line["rows"] = "none"
            line["lost_by"] = ref

    def _new_columns(self, line, spec, ref):
        for c in spec["column_order"]:
            value = new_column_value(spec["columns"][c], {k.lower(): v["expr"] for k, v in line["columns"].items()})
            line["columns"][c] = {"expr": value, "by": [ref], "new": True, "src": None}

    def _columns(self, line, ref, hints, bspec, aspec, table):
        """Match the columns before and after the statement; returns {after name: before name or None}."""
        bcols = _fold(bspec["column_order"])
        renames = {}
        for old, new in hints.get("column_renames", ()):
            real_old = bcols.get(old.lower())
            real_new = _fold(aspec["column_order"]).get(new.lower())
            if real_old and real_new:
                renames[real_new] = real_old
        renamed_away = set(renames.values()) - set(renames)
        readded = {n.lower() for n in hints.get("readded", ())}
        moves, columns = {}, {}
        current = {k: v for k, v in line["columns"].items()}
        for c in aspec["column_order"]:
            if c in renames:
                old = renames[c]
            elif c in bspec["columns"] and c not in renamed_away and c.lower() not in readded:
                old = c
            else:
                old = None
            moves[c] = old
            if old is not None:
                columns[c] = current.get(old) or {"expr": None, "by": [ref], "src": None}
            else:
                known = {k.lower(): v["expr"] for k, v in current.items()}
                known.update({k.lower(): v["expr"] for k, v in columns.items()})
                value = new_column_value(aspec["columns"][c], known)
                columns[c] = {"expr": value, "by": [ref], "new": True, "src": None}
        line["columns"] = columns
        return moves

    def origins(self):
        """For schema.diff: {"tables": {table: real table or None}, "columns": {table: {column: real column or
        None}}} of the tables as the statements leave them."""
        tables, columns = {}, {}
        for name, line in self.tables.items():
            tables[name] = None if line.get("replaced") else line["origin"]
            if tables[name]:
                columns[name] = {c: col.get("src") for c, col in line["columns"].items()}
        return {"tables": tables, "columns": columns}

    # -- what the release loses ----------------------------------------------------------------------------------
    def lost_values(self):
        """Destructive findings the structure diff cannot show: a real column whose values no column of the result
        holds while a new column of its name exists (dropped and re-added, whatever the new definition)."""
        found = []
        for name, line in sorted(self.tables.items()):
            origin = line["origin"]
            if not origin or line.get("replaced"):
                continue
            carried = {col.get("src") for col in line["columns"].values()}
            for real in self.real_columns.get(origin, ()):
                if real in carried:
                    continue
                for cname, col in line["columns"].items():
                    if cname.lower() == real.lower() and col.get("new"):
                        found.append({"object": "table %s" % name, "key": [name, cname],
                                      "statements": [r for r in col["by"] if r],
                                      "reason": "drops and re-adds column %s: its values are lost" % cname})
        return found

    # -- checks --------------------------------------------------------------------------------------------------
    def _checks(self, ref, bname, aname, bspec, aspec, moves):
        line = self.tables[aname]
        if line["rows"] == "none":
            return
        exprs_now = {c.lower(): line["columns"][c]["expr"] for c in aspec["column_order"]}
        exprs_way = {}
        for c, old in moves.items():
            exprs_way[c.lower()] = column_ref(old) if old is not None else new_column_value(
                aspec["columns"][c], {k: v for k, v in exprs_way.items()})
        now_ok = line["rows"] == "real"

        def add(check, columns, pred_now=None, pred_way=None, query=None):
            deps = []
            for c in columns:
                for r in line["columns"].get(c, {}).get("by", []):
                    if r not in deps and r is not ref:
                        deps.append(r)
            rec = {"check": check, "object": "table %s" % aname, "table": aname, "columns": list(columns),
                   "statement": ref, "depends_on": deps, "real_table": line["origin"], "way_table": bname}
            rec.update(query or {})
            if pred_now is not None or pred_way is not None:
                rec["pred_now"], rec["pred_way"] = pred_now, pred_way
            if now_ok and (rec.get("pred_now") or rec.get("sql_now")):
                rec["when"] = "now"
            elif rec.get("pred_way") or rec.get("sql_way"):
                rec["when"] = "on_the_way"
            else:
                rec["when"] = "unchecked"
            self.checks.append(rec)

        for c, old in moves.items():
            if old is None:
                continue
            b, a = bspec["columns"][old], aspec["columns"][c]
            if b["nullable"] and not a["nullable"] and "auto_increment" not in (a.get("extra") or ""):
                add("not_null", [c], _is_null(exprs_now.get(c.lower())), _is_null(exprs_way.get(c.lower())))
            if ddl_lint.narrowing_reason(b["type"], a["type"], b.get("charset"), a.get("charset")):
                now = exprs_now.get(c.lower())
                pred_now = narrowing_predicate(now, b, a) if now else None
                pred_way = narrowing_predicate(exprs_way[c.lower()], b, a)
                if pred_way is not None:
                    add("narrowing", [c], pred_now, pred_way)
        for name, clause in aspec.get("raw_checks", {}).items():
            cols = [c for c in aspec["column_order"] if _mentions(clause, c)]
            if bspec.get("raw_checks", {}).get(name) == clause and all(moves.get(c) == c for c in cols):
                continue
            now = substitute(clause, exprs_now)
            way = substitute(clause, exprs_way)
            add("check_constraint", cols, "NOT (%s)" % now if now else None, "NOT (%s)" % way if way else None)
            self.checks[-1]["constraint"] = name
        for iname, idx in aspec["indexes"].items():
            if not idx["unique"]:
                continue
            cols = [c[0] for c in idx["columns"]]
            old_idx = bspec["indexes"].get(iname)
            moved = [moves.get(c) for c in cols]
            changed_cols = any(m is None or bspec["columns"][m]["type"] != aspec["columns"][c]["type"] or
                               bspec["columns"][m].get("collation") != aspec["columns"][c].get("collation")
                               for m, c in zip(moved, cols, strict=True))
            same = old_idx is not None and old_idx["unique"] and [
                [moves.get(c[0]), c[1]] for c in idx["columns"]] == [[c[0], c[1]] for c in old_idx["columns"]]
            if same and not changed_cols:
                continue
            if any("auto_increment" in (aspec["columns"][c].get("extra") or "") and moves.get(c) is None
                   for c in cols):
                continue  # new AUTO_INCREMENT values are unique by construction
            add("unique", cols, query={
                "sql_now": _duplicates_sql(line["origin"], self.db, idx, exprs_now, aspec) if now_ok else None,
                "sql_way": _duplicates_sql(bname, self.db, idx, exprs_way, aspec), "index": iname})
        for fname, fk in aspec["foreign_keys"].items():
            old_fk = bspec["foreign_keys"].get(fname)
            if old_fk is not None and [moves.get(c) for c in fk["columns"]] == old_fk["columns"] and \
                    {k: v for k, v in old_fk.items() if k != "columns"} == {k: v for k, v in fk.items()
                                                                          if k != "columns"}:
                continue
            parent = self._parent(fk)
            probe, walk = _orphan_looks(self.db, line["origin"], fk, exprs_now, parent,
                                        self.real_specs.get(line["origin"])) if now_ok else (None, None)
            add("foreign_key", list(fk["columns"]), query={
                "sql_now": _orphans_sql(self.db, line["origin"], fk, exprs_now, parent, "now") if now_ok else None,
                "probe_now": probe, "walk_now": walk,
                "sql_way": _orphans_sql(self.db, bname, fk, exprs_way, parent, "way"), "constraint": fname,
                "parent": fk["ref_table"]})

    def _parent(self, fk):
        if fk["ref_schema"]:
            return {"schema": fk["ref_schema"], "table": fk["ref_table"], "rows": "real",
                    "exprs": {c.lower(): column_ref(c) for c in fk["ref_columns"]},
                    "way_exprs": {c.lower(): column_ref(c) for c in fk["ref_columns"]}, "way_table": fk["ref_table"]}
        line = self.tables.get(fk["ref_table"])
        if line is None:
            return None
        return {"schema": None, "table": line["origin"], "rows": line["rows"],
                "exprs": {c.lower(): v["expr"] for c, v in line["columns"].items()},
                "way_exprs": {c.lower(): column_ref(c) for c in line["columns"]}, "way_table": fk["ref_table"]}


def _mentions(clause, column):
    for kind, tok in lex(clause):
        if kind in ("word", "ident") and unquote(kind, tok).lower() == column.lower():
            return True
    return False


def _is_null(expr):
    return None if expr is None else "%s IS NULL" % expr


def _table(db, name):
    return "%s.%s" % (quote_ident(db), quote_ident(name))


def _duplicates_sql(table, db, idx, exprs, aspec):
    parts = []
    for col, sub, _order in idx["columns"]:
        e = exprs.get(col.lower())
        if e is None:
            return None
        e = "LEFT(%s, %d)" % (e, sub) if sub else e
        collation = aspec["columns"][col].get("collation")
        if collation:
            e = "%s COLLATE %s" % (e, collation) if _textual(aspec["columns"][col]) else e
        parts.append(e)
    not_null = " AND ".join("(%s) IS NOT NULL" % p for p in parts)
    group = ", ".join(parts)
    return bind("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM %s AS %s WHERE %s GROUP BY %s "
                "HAVING COUNT(*) > 1) d" % (_table(db, table), ALIAS, not_null, group), "c")


def _textual(spec):
    return ddl_lint.parse_type(spec.get("type"))["base"] in ("char", "varchar", "tinytext", "text", "mediumtext",
                                                              "longtext", "enum", "set")


def _orphan_looks(db, table, fk, exprs, parent, real_spec):
    """(probe, walk): the cheaper first looks for a foreign key over plain columns of the real table that an index
    leads with, each None where it does not apply. When a look finds values without a parent, the row count comes
    from the anti-join (`_orphans_sql`).

    `probe`: the distinct child values (read from the index, one entry per value) without a parent, one statement.
    `walk`, for one integer column only: {"first", "next", "orphans"}, the statements of a walk over the index's
    distinct values (`_walk_values`), which reads one index entry per value where the probe's GROUP BY may read
    every entry (the optimizer picks a loose index scan only on fresh statistics). `next` is completed with the
    last value, and `orphans` (the text before and after a derived table) with the values walked, to count those
    without a parent; they are integers, written as literals."""
    if real_spec is None or parent is None or parent.get("rows") != "real" or parent.get("table") is None:
        return None, None
    real = []
    for c in fk["columns"]:
        expr = exprs.get(c.lower()) or ""
        if not expr.startswith(ALIAS + ".`"):
            return None, None
        real.append(unquote("ident", expr[len(ALIAS) + 1:]))
    leading = [[c[0] for c in idx["columns"][:len(real)]] for idx in real_spec["indexes"].values()]
    if real not in leading:
        return None, None
    pcols = [parent["exprs"].get(c.lower()) for c in fk["ref_columns"]]
    if any(e is None for e in pcols):
        return None, None
    keys = ", ".join("%s AS `k%d`" % (quote_ident(c), i) for i, c in enumerate(real))
    group = ", ".join(quote_ident(c) for c in real)
    not_null = " AND ".join("%s IS NOT NULL" % quote_ident(c) for c in real)
    match = " AND ".join("%s = `d`.`k%d`" % (bind(p, "p"), i) for i, p in enumerate(pcols))
    # The anti-join around the derived table of child values: its text before and after it.
    anti_join = ["SELECT COUNT(*) FROM (", ") `d` LEFT JOIN %s AS `p` ON %s WHERE %s IS NULL" % (
        _table(parent["schema"] or db, parent["table"]), match, bind(pcols[0], "p"))]
    probe = anti_join[0] + "SELECT %s FROM %s WHERE %s GROUP BY %s" % (
        keys, _table(db, table), not_null, group) + anti_join[1]
    spec = (real_spec.get("columns") or {}).get(real[0]) or {}
    if len(real) != 1 or ddl_lint.parse_type(spec.get("type") or "")["base"] not in ddl_lint.INT_BYTES:
        return probe, None
    column = quote_ident(real[0])
    return probe, {"first": "SELECT MIN(%s) FROM %s" % (column, _table(db, table)),
                   "next": "SELECT MIN(%s) FROM %s WHERE %s > " % (column, _table(db, table), column),
                   "orphans": anti_join}


# The walk over a foreign key's distinct values stops after this many (then the GROUP BY look runs instead): each
# value is one index dive, so a column of few values (a status, a type, a tenant) costs a few milliseconds however
# many rows hold them, and one of many costs at most this many dives more than before.
WALK_LIMIT = 32


def _walk_values(cur, walk, limit=WALK_LIMIT):
    """The distinct non-NULL values of the walk's column in index order, or None when there are more than `limit`."""
    cur.execute(walk["first"])
    value, values = cur.fetchone()[0], []
    while value is not None:
        if len(values) == limit:
            return None
        values.append(int(value))
        cur.execute(walk["next"] + "%d" % int(value))
        value = cur.fetchone()[0]
    return values


def _orphans_sql(db, table, fk, exprs, parent, mode):
    """Count of the rows of `table` with every foreign key column set and no parent row: an anti-join (the
    optimizer runs it as one, unlike a correlated NOT EXISTS per row). A parent the release creates has no rows
    yet (mode now): every such row is an orphan."""
    child = [exprs.get(c.lower()) for c in fk["columns"]]
    if any(e is None for e in child) or parent is None or table is None:
        return None
    not_null = " AND ".join("(%s) IS NOT NULL" % e for e in child)
    source = "%s AS %s" % (_table(db, table), ALIAS)
    if mode == "now" and parent["rows"] == "none":
        return bind("SELECT COUNT(*) FROM %s WHERE %s" % (source, not_null), "c")
    if mode == "now" and parent["rows"] != "real":
        return None
    ptable = parent["table"] if mode == "now" else parent["way_table"]
    pexprs = parent["exprs"] if mode == "now" else parent["way_exprs"]
    pcols = [pexprs.get(c.lower()) for c in fk["ref_columns"]]
    if ptable is None or any(e is None for e in pcols):
        return None
    match = " AND ".join("%s = %s" % (bind(p, "p"), e) for p, e in zip(pcols, child, strict=True))
    return bind("SELECT COUNT(*) FROM %s LEFT JOIN %s AS %s ON %s WHERE %s AND %s IS NULL" % (
        source, _table(parent["schema"] or db, ptable), quote_ident("p"), match, not_null, bind(pcols[0], "p")), "c")


# ---------------------------------------------------------------------------------------------------------------
# Running the checks
# ---------------------------------------------------------------------------------------------------------------

def row_checks_sql(db, table, preds):
    """One scan of `table` counting, for each predicate, the rows it holds for."""
    cols = ", ".join("COALESCE(SUM(CASE WHEN %s THEN 1 ELSE 0 END), 0)" % bind(p, "c") for p in preds)
    return "SELECT %s FROM %s AS %s" % (cols, _table(db, table), quote_ident("c"))


def screening_sql(db, table, preds):
    """One scan of `table` counting the rows any predicate holds for (cheaper than one sum per predicate: the
    per-check counts are read only when it finds something)."""
    where = " OR ".join("(%s)" % bind(p, "c") for p in preds)
    return "SELECT COUNT(*) FROM %s AS %s WHERE (%s)" % (_table(db, table), quote_ident("c"), where)


def _run_jobs(jobs, conn, connect, workers):
    """Run `jobs` (callables taking a connection) on `workers` connections: `conn` and new ones from `connect`."""
    if workers <= 1 or len(jobs) <= 1 or connect is None:
        for job in jobs:
            job(conn)
        return
    import queue
    import threading

    pending = queue.Queue()
    for job in jobs:
        pending.put(job)
    failures = []

    def worker(own):
        try:
            while True:
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    return
                job(own)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failures.append(exc)

    extra = []
    try:
        for _ in range(min(workers, len(jobs)) - 1):
            extra.append(connect())
    except Exception:  # noqa: BLE001 - no second connection: the checks run on the first one
        pass
    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in extra]
    for thread in threads:
        thread.start()
    worker(conn)
    for thread in threads:
        thread.join()
    for c in extra:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    if failures:
        raise failures[0]


def evaluate(conn, db, checks, mode, connect=None, workers=2, tables=None):
    """Count the offending rows of each check: mode `now` against the current data (with the lineage's
    expressions), `way` as the table is right now, before the check's statement runs.

    The row-level checks of one table share one scan, which counts the rows breaking any of them (the count of
    each is read only when that finds some); a large table with an integer primary key (`tables`: {table:
    {"key": column or None, "rows": estimate}}) is scanned in `workers` key ranges at once. Foreign key and unique
    checks are queries of their own; a foreign key over indexed columns first looks at the distinct values only.
    With `connect` (a function returning a new connection), up to `workers` queries run at once. Sets `rows`
    on every check (None, with `error`, where the query failed)."""
    pred_key, sql_key = "pred_" + mode, "sql_" + mode
    table_key = "real_table" if mode == "now" else "way_table"
    by_table, jobs = {}, []
    for check in checks:
        if check.get(pred_key):
            by_table.setdefault(check[table_key], []).append(check)
        elif check.get(sql_key):
            jobs.append(lambda c, check=check: _one_query(c, check, sql_key, check.get("probe_" + mode),
                                                          check.get("walk_" + mode)))
        else:
            check["rows"] = None
    scans = []
    for table, group in sorted(by_table.items()):
        info = (tables or {}).get(table) or {}
        parts = workers if mode == "now" and info.get("key") and info.get("rows", 0) >= SPLIT_ROWS else 1
        scans.append({"table": table, "group": group, "key": info.get("key"), "parts": parts, "found": []})
    range_jobs = []
    for scan in scans:
        if scan["parts"] > 1:
            bounds = _key_bounds(conn, db, scan["table"], scan["key"])
            if bounds is None:
                scan["parts"] = 1
            else:
                lo, hi = bounds
                step = (hi - lo) // scan["parts"] + 1
                for i in range(scan["parts"]):
                    low, high = lo + i * step, min(lo + (i + 1) * step - 1, hi)
                    range_jobs.append(lambda c, s=scan, a=low, b=high: _screen(c, db, s, a, b, pred_key))
        if scan["parts"] <= 1:
            range_jobs.append(lambda c, s=scan: _screen(c, db, s, None, None, pred_key))
    _run_jobs(range_jobs + jobs, conn, connect, workers)
    for scan in scans:
        _breakdown(conn, db, scan, pred_key)
    return checks


# A table of at least this many rows (estimate) is scanned in key ranges on several connections at once.
SPLIT_ROWS = 200000


def _key_bounds(conn, db, table, key):
    import pymysql

    try:
        with conn.cursor() as cur:
            cur.execute("SELECT MIN(%s), MAX(%s) FROM %s" % (quote_ident(key), quote_ident(key), _table(db, table)))
            lo, hi = cur.fetchone()
    except pymysql.err.MySQLError:
        return None
    if lo is None or not isinstance(lo, int) or not isinstance(hi, int):
        return None
    return lo, hi


def _screen(conn, db, scan, low, high, pred_key):
    import pymysql

    sql = screening_sql(db, scan["table"], [g[pred_key] for g in scan["group"]])
    args = ()
    if low is not None:
        sql += " AND %s BETWEEN %%s AND %%s" % ("`c`." + quote_ident(scan["key"]))
        args = (low, high)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            scan["found"].append(int(cur.fetchone()[0] or 0))
    except pymysql.err.MySQLError as exc:
        scan["error"] = "(%s) %s" % (exc.args[0], exc.args[-1])


def _breakdown(conn, db, scan, pred_key):
    """The count of each row-level check of a scan: 0 when the scan found nothing, else one more scan."""
    import pymysql

    group = scan["group"]
    if scan.get("error"):
        for check in group:
            check["rows"], check["error"] = None, scan["error"]
        return
    counts = [0] * len(group)
    if sum(scan["found"]):
        try:
            with conn.cursor() as cur:
                cur.execute(row_checks_sql(db, scan["table"], [g[pred_key] for g in group]))
                counts = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            for check in group:
                check["rows"], check["error"] = None, "(%s) %s" % (exc.args[0], exc.args[-1])
            return
    for check, count in zip(group, counts, strict=True):
        check["rows"] = int(count or 0)


def _one_query(conn, check, sql_key, probe=None, walk=None):
    """Run a check's query, after its cheaper first looks: the walk over the distinct values (`walk`), else the
    `probe`; either one finding nothing settles the count at 0."""
    import pymysql

    try:
        with conn.cursor() as cur:
            values = _walk_values(cur, walk) if walk else None
            if values is not None:
                if values:
                    head, tail = walk["orphans"]
                    cur.execute(head + " UNION ALL ".join("SELECT %d AS `k0`" % v for v in values) + tail)
                if not values or not int(cur.fetchone()[0] or 0):
                    check["rows"] = 0
                    return
            elif probe:
                cur.execute(probe)
                if not int(cur.fetchone()[0] or 0):
                    check["rows"] = 0
                    return
            cur.execute(check[sql_key])
            row = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        check["rows"], check["error"] = None, "(%s) %s" % (exc.args[0], exc.args[-1])
        return
    if check["check"] == "unique":
        check["duplicate_values"], check["rows"] = int(row[0] or 0), int(row[1] or 0)
    else:
        check["rows"] = int(row[0] or 0)


def describe(check) -> str:
    """What a check found, for messages: `table orders: 12 row(s) with NULL in status (made NOT NULL)`."""
    cols = ", ".join(check["columns"])
    if check["check"] == "unique":
        return "%s: %d value(s) already duplicated over %d rows for the new unique key %s (%s)" % (
            check["object"], check.get("duplicate_values", 0), check["rows"] or 0, check.get("index", ""), cols)
    what = {
        "not_null": "row(s) with NULL in %s, which it makes NOT NULL" % cols,
        "narrowing": "row(s) whose %s does not fit the new type or character set" % cols,
        "check_constraint": "row(s) violating the CHECK %s" % check.get("constraint", ""),
        "foreign_key": "orphan row(s) for the new foreign key %s (%s -> %s)" % (
            check.get("constraint", ""), cols, check.get("parent", "")),
    }[check["check"]]
    return "%s: %d %s" % (check["object"], check["rows"] or 0, what)
