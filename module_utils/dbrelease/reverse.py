"""The reverse of a release's schema changes, computed from the snapshots before and after it (pure logic).

Input: the normalised snapshot objects before the release (`pre.json`'s `objects`) and now (or right after the
release, `post.json`), and the `SHOW CREATE` texts from before (`pre.sql`, as `schema.export_sql` writes it). Output:
the reverse as *items* (what each undoes, its DDL clause, and the query that counts what is at stake) and, once the
stakes are counted, the DDL text that `schema_apply` plans, lints, checks and applies like any release.

What is reversed, and how:

- a created table, view, routine, trigger, event, index, foreign key or check is dropped; the rows in a created table
  and the values in an added column are named as lost (data the release's objects hold);
- a changed view, routine, trigger or event gets its previous definition back (`SHOW CREATE` text from before);
- a modified column gets its previous definition back (its line of the previous `SHOW CREATE TABLE`) when every
  value fits it: the count of values that would not fit is taken first, and a modification over such values, or
  whose fit cannot be checked, is left as it is and named (it would fail, or truncate);
- a dropped column, index, foreign key or check is added again, at its place; a dropped column's values are gone
  (named: its rows get the column's default), and so are the values a narrowed column cut;
- renames are renamed back (a table, or a column, with the same definition under another name);
- table options (engine, collation, comment, row format) get their previous values.
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.db import quote_ident
from ansible.module_utils.dbrelease.schema import quote_literal

KINDS = ("tables", "views", "routines", "triggers", "events")
LABEL = {"tables": "table", "views": "view", "routines": "routine", "triggers": "trigger", "events": "event"}


class ReverseError(ValueError):
    """The inputs cannot give a reverse (a missing definition); the message names the object."""


# -- reading the previous SHOW CREATE texts ---------------------------------------------------------------------
_HEAD_RE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM=\w+\s+)?(?:DEFINER=(?:`(?:[^`]|``)*`@`(?:[^`]|``)*`|\S+)\s+)?"
    r"(?:SQL\s+SECURITY\s+\w+\s+)?(?:AGGREGATE\s+)?(?P<kind>TABLE|VIEW|PROCEDURE|FUNCTION|TRIGGER|EVENT)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>(?:`(?:[^`]|``)+`\.)?`(?:[^`]|``)+`|[^\s(`]+)", re.IGNORECASE)


def _unquote_last(name: str) -> str:
    parts = re.findall(r"`((?:[^`]|``)+)`|([^.`]+)", name)
    quoted, bare = parts[-1]
    return quoted.replace("``", "`") if quoted else bare


def parse_export(text: str) -> dict:
    """`{kind: {name: text}}` from `schema.export_sql`'s output: blocks `TEXT;` or `DELIMITER ;;\\nTEXT ;;\\n
    DELIMITER ;`, separated by a blank line, after a `--` header line. Routines are keyed `PROCEDURE p` /
    `FUNCTION f` as in the snapshot."""
    out = {kind: {} for kind in KINDS}
    pos = 0
    n = len(text)
    while pos < n:
        if text.startswith("\n", pos):
            pos += 1
            continue
        if text.startswith("--", pos):
            end = text.find("\n", pos)
            pos = n if end < 0 else end + 1
            continue
        if text.startswith("DELIMITER ;;\n", pos):
            start = pos + len("DELIMITER ;;\n")
            end = text.find(" ;;\nDELIMITER ;", start)
            if end < 0:
                raise ReverseError("unterminated DELIMITER block in the previous definitions at offset %d" % pos)
            body = text[start:end]
            pos = end + len(" ;;\nDELIMITER ;")
        else:
            end = text.find(";\n\n", pos)
            end = end if end >= 0 else (n - 2 if text.endswith(";\n") else n)
            body = text[pos:end]
            pos = end + 1
        match = _HEAD_RE.match(body.strip())
        if not match:
            raise ReverseError("cannot tell what this previous definition creates: %r" % body.strip()[:80])
        kind = match.group("kind").upper()
        name = _unquote_last(match.group("name"))
        if kind in ("PROCEDURE", "FUNCTION"):
            out["routines"]["%s %s" % (kind, name)] = body.strip()
        else:
            out[{"TABLE": "tables", "VIEW": "views", "TRIGGER": "triggers", "EVENT": "events"}[kind]][name] = \
                body.strip()
    return out


_COLUMN_LINE_RE = re.compile(r"^\s+`((?:[^`]|``)+)`\s+(.*?),?$")


def table_parts(create: str) -> dict:
    """The parts of a SHOW CREATE TABLE text: `columns` {name: definition}, `keys` {name: line} (PRIMARY for the
    primary key), `constraints` {name: line}, `options` {key: value} (AUTO_INCREMENT left out)."""
    lines = create.split("\n")
    parts = {"columns": {}, "keys": {}, "constraints": {}, "options": {}}
    for line in lines[1:-1]:
        body = line.strip().rstrip(",")
        col = _COLUMN_LINE_RE.match(line)
        if col and not body.upper().startswith(("KEY ", "UNIQUE ", "PRIMARY ", "FULLTEXT ", "SPATIAL ",
                                                "CONSTRAINT ", "INDEX ", "VECTOR ")):
            parts["columns"][col.group(1).replace("``", "`")] = col.group(2).rstrip(",")
            continue
        upper = body.upper()
        if upper.startswith("PRIMARY KEY"):
            parts["keys"]["PRIMARY"] = body
        elif upper.startswith("CONSTRAINT"):
            name = re.match(r"CONSTRAINT\s+`((?:[^`]|``)+)`", body, re.IGNORECASE)
            parts["constraints"][name.group(1).replace("``", "`") if name else body] = body
        else:
            name = re.search(r"(?:KEY|INDEX)\s+`((?:[^`]|``)+)`", body, re.IGNORECASE)
            if name:
                parts["keys"][name.group(1).replace("``", "`")] = body
    tail = lines[-1] if lines else ""
    for key, value in re.findall(r"((?:DEFAULT\s+)?[A-Z_]+(?:\s+[A-Z_]+)?)=('(?:[^'\\]|\\.|'')*'|\S+)", tail):
        key = " ".join(key.split()).upper()
        if key == "AUTO_INCREMENT":
            continue
        parts["options"][key.replace("DEFAULT ", "")] = value
    return parts


# -- fitting values into a previous column definition ------------------------------------------------------------
INT_RANGES = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}
TEXT_BYTES = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295,
              "tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_TYPE_RE = re.compile(r"^(?P<base>[a-z]+)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$")


def parse_type(column_type: str) -> dict:
    match = _TYPE_RE.match((column_type or "").strip().lower())
    if not match:
        return {"base": column_type}
    args = match.group("args")
    return {"base": match.group("base"), "args": args, "unsigned": "unsigned" in match.group("rest")}


def int_range(spec) -> tuple | None:
    bits = INT_RANGES.get(spec["base"])
    if bits is None:
        return None
    if spec.get("unsigned"):
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def fit_predicate(column: str, old: dict, new: dict):
    """SQL predicate (and its bound values) true for the rows whose value would not fit the column's `old`
    definition, given its `new` one; None when every value fits (a widening, or a change of metadata only);
    "unknown" when this cannot be checked here."""
    col = quote_ident(column)
    conditions, args = [], []
    if not old["nullable"] and new["nullable"]:
        conditions.append("%s IS NULL" % col)
    if old["type"] != new["type"]:
        o, n = parse_type(old["type"]), parse_type(new["type"])
        pred = _type_fit(col, o, n)
        if pred == "unknown":
            return "unknown"
        if pred:
            conditions.append(pred[0])
            args += pred[1]
    if old.get("charset") and new.get("charset") and old["charset"] != new["charset"]:
        conditions.append("%s IS NOT NULL AND CONVERT(CONVERT(%s USING %s) USING %s) <> %s" % (
            col, col, _charset(old["charset"]), _charset(new["charset"]), col))
    if old.get("generated") != new.get("generated"):
        return None if old.get("generated") is not None and new.get("generated") is not None else (
            "unknown" if old.get("generated") or new.get("generated") else None)
    if not conditions:
        return None
    return "(%s)" % " OR ".join("(%s)" % c for c in conditions), args


def _charset(name: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]+$", name or ""):
        raise ReverseError("invalid character set name %r" % (name,))
    return name


def _type_fit(col, o, n):
    ob, nb = o["base"], n["base"]
    strings = ("char", "varchar", "binary", "varbinary")
    if ob in strings and nb in strings + tuple(TEXT_BYTES):
        limit = int(o["args"] or 1)
        if nb in strings and (ob in ("char", "varchar")) == (nb in ("char", "varchar")) and \
                int(n["args"] or 1) <= limit:
            return None
        func = "CHAR_LENGTH" if ob in ("char", "varchar") else "LENGTH"
        return "%s(%s) > %d" % (func, col, limit), []
    if ob in TEXT_BYTES and (nb in TEXT_BYTES or nb in strings):
        if nb in TEXT_BYTES and TEXT_BYTES[nb] <= TEXT_BYTES[ob]:
            return None
        return "LENGTH(%s) > %d" % (col, TEXT_BYTES[ob]), []
    if ob in INT_RANGES and nb in INT_RANGES:
        lo, hi = int_range(o)
        nlo, nhi = int_range(n)
        if lo <= nlo and hi >= nhi:
            return None
        return "%s < %d OR %s > %d" % (col, lo, col, hi), []
    if ob in INT_RANGES and nb == "decimal":
        lo, hi = int_range(o)
        return "%s < %d OR %s > %d OR %s <> ROUND(%s, 0)" % (col, lo, col, hi, col, col), []
    if ob == "decimal" and nb in ("decimal",) + tuple(INT_RANGES):
        precision, _, scale = (o["args"] or "10,0").partition(",")
        precision, scale = int(precision), int(scale or 0)
        bound = "1" + "0" * (precision - scale)
        return "ABS(%s) >= %s OR %s <> ROUND(%s, %d)" % (col, bound, col, col, scale), []
    if ob == "enum" and nb in ("enum", "varchar", "char"):
        values = re.findall(r"'((?:[^'\\]|\\.|'')*)'", o["args"] or "")
        values = [v.replace("''", "'") for v in values]
        return "%s NOT IN (%s)" % (col, ", ".join(["%s"] * len(values))) if values else "1 = 1", values
    if ob in ("datetime", "timestamp", "time") and nb == ob:
        if int(o["args"] or 0) >= int(n["args"] or 0):
            return None
        return "MICROSECOND(%s) %% %d <> 0" % (col, 10 ** (6 - int(o["args"] or 0))), []
    if ob == "date" and nb in ("datetime", "timestamp"):
        return "TIME(%s) <> '00:00:00'" % col, []
    if ob == "timestamp" and nb == "datetime":
        return "%s < '1970-01-01 00:00:01' OR %s > '2038-01-19 03:14:07'" % (col, col), []
    if ob == "double" and nb == "float":
        return None
    return "unknown"


def capacity_shrank(old: dict, new: dict) -> bool:
    """Whether the release's change from `old` to `new` could have cut values (a narrowing)."""
    o, n = parse_type(old["type"]), parse_type(new["type"])
    try:
        if o["base"] in ("char", "varchar", "binary", "varbinary") and n["base"] in ("char", "varchar", "binary",
                                                                                      "varbinary"):
            return int(n["args"] or 1) < int(o["args"] or 1)
        if o["base"] in INT_RANGES and n["base"] in INT_RANGES:
            (lo, hi), (nlo, nhi) = int_range(o), int_range(n)
            return nlo > lo or nhi < hi
        if o["base"] == "decimal" and n["base"] == "decimal":
            op, _, osc = (o["args"] or "10,0").partition(",")
            np_, _, nsc = (n["args"] or "10,0").partition(",")
            return int(np_) - int(nsc or 0) < int(op) - int(osc or 0) or int(nsc or 0) < int(osc or 0)
        if o["base"] in TEXT_BYTES and n["base"] in TEXT_BYTES:
            return TEXT_BYTES[n["base"]] < TEXT_BYTES[o["base"]]
    except ValueError:
        return False
    return False


# -- the items of the reverse ------------------------------------------------------------------------------------
def _item(obj, action, **fields):
    item = {"object": obj, "action": action, "id": "%s: %s" % (obj, action), "lossless": True, "stake": None,
            "loss": None}
    item.update(fields)
    return item


def _count(table, where="1 = 1", args=(), what="rows"):
    return {"sql": "SELECT COUNT(*) FROM %s WHERE %s" % (quote_ident(table), where), "args": list(args),
            "what": what}


def _same_shape(a: dict, b: dict) -> bool:
    return a["columns"] == b["columns"] and a["column_order"] == b["column_order"] and a["indexes"] == b["indexes"]


def table_renames(pre_tables: dict, now_tables: dict) -> dict:
    """{now name: previous name} for tables the release renamed (same shape, exactly one candidate each way)."""
    gone = [t for t in pre_tables if t not in now_tables]
    new = [t for t in now_tables if t not in pre_tables]
    out = {}
    for name in new:
        matches = [old for old in gone if _same_shape(pre_tables[old], now_tables[name])]
        if len(matches) == 1 and sum(_same_shape(pre_tables[matches[0]], now_tables[n]) for n in new) == 1:
            out[name] = matches[0]
    return out


def column_renames(pre: dict, now: dict) -> dict:
    """{now column: previous column} for columns renamed with the same definition at the same place."""
    out = {}
    for name in now["column_order"]:
        if name in pre["columns"]:
            continue
        index = now["column_order"].index(name)
        if index < len(pre["column_order"]):
            old = pre["column_order"][index]
            if old not in now["columns"] and pre["columns"][old] == now["columns"][name]:
                out[name] = old
    return out


def plan(pre: dict, now: dict, pre_creates: dict) -> list:
    """The reverse of `pre` -> `now`, as items in execution order (see the module docstring)."""
    items = []
    pre_t, now_t = pre.get("tables", {}), now.get("tables", {})
    renamed = table_renames(pre_t, now_t)
    # 1. triggers, events, views, routines that the release created or changed: out first (they may use what the
    #    table changes remove).
    for kind, verb in (("triggers", "TRIGGER"), ("events", "EVENT"), ("views", "VIEW")):
        for name in sorted(set(now.get(kind, {}))):
            if name not in pre.get(kind, {}) or pre[kind][name] != now[kind][name]:
                action = "drop" if name not in pre.get(kind, {}) else "drop before recreating the previous one"
                items.append(_item("%s %s" % (LABEL[kind], name), action, phase=1,
                                   sql="DROP %s IF EXISTS %s" % (verb, quote_ident(name))))
    for key in sorted(set(now.get("routines", {}))):
        if key not in pre.get("routines", {}) or pre["routines"][key] != now["routines"][key]:
            rtype, name = key.split(" ", 1)
            items.append(_item("routine %s" % key, "drop" if key not in pre.get("routines", {}) else
                               "drop before recreating the previous one", phase=1,
                               sql="DROP %s IF EXISTS %s" % (rtype, quote_ident(name))))
    # 2. tables
    for name in sorted(now_t):
        if name in renamed:
            items.append(_item("table %s" % name, "rename back to %s" % renamed[name], phase=2,
                               sql="RENAME TABLE %s TO %s" % (quote_ident(name), quote_ident(renamed[name]))))
            continue
        if name not in pre_t:
            items.append(_item("table %s" % name, "drop", phase=4, sql="DROP TABLE IF EXISTS %s" % quote_ident(name),
                               stake=_count(name, what="row(s) in %s, a table the release created" % name),
                               refs=[fk["ref_table"] for fk in now_t[name]["foreign_keys"].values()
                                     if fk["ref_schema"] is None]))
    for name in sorted(pre_t):
        target = {v: k for k, v in renamed.items()}.get(name, name)
        if target in now_t:
            items += _table_items(name, pre_t[name], now_t[target], pre_creates.get("tables", {}).get(name))
        elif name not in renamed.values():
            create = pre_creates.get("tables", {}).get(name)
            if not create:
                raise ReverseError("table %s was dropped by the release and its previous definition is not in the "
                                   "previous SHOW CREATE texts (pre.sql)" % name)
            items.append(_item("table %s" % name, "create again (its rows are not brought back)", phase=5,
                               sql=create, lossless=False,
                               loss="table %s was dropped by the release: a schema rollback creates it empty; its "
                                    "rows are only in the backup (restore or pitr mode)" % name))
    # 3. routines, views, triggers, events of before: back.
    for kind in ("routines", "views", "triggers", "events"):
        names = sorted(pre.get(kind, {}))
        if kind == "triggers":
            names.sort(key=lambda n: (pre[kind][n].get("table"), pre[kind][n].get("order", 0)))
        for name in names:
            if name in now.get(kind, {}) and now[kind][name] == pre[kind][name]:
                continue
            text = pre_creates.get(kind, {}).get(name)
            if not text:
                raise ReverseError("%s %s has no previous definition in pre.sql" % (LABEL[kind], name))
            if kind == "views":
                text = re.sub(r"^CREATE\s+", "CREATE OR REPLACE ", text, count=1)
            items.append(_item("%s %s" % (LABEL[kind], name), "create the previous definition", phase=7,
                               sql=text, delimiter=kind != "views"))
    return _order_drops(items)


def _order_drops(items):
    """Items by phase; the created tables are dropped children first (a table with a foreign key to another
    created table goes before it). A cycle of foreign keys between created tables keeps the order found: their
    foreign keys are dropped first (phase 3 of the tables they are on), so the drops succeed in any order."""
    drops = [i for i in items if i.get("refs") is not None]
    ordered, pending = [], list(drops)
    while pending:
        free = [i for i in pending if not any(d is not i and i["object"][len("table "):] in d["refs"]
                                              for d in pending)]
        if not free:
            ordered += pending
            break
        ordered.append(free[0])
        pending.remove(free[0])
    others = [i for i in items if i.get("refs") is None]
    return (sorted([i for i in others if i["phase"] < 4], key=lambda i: i["phase"]) + ordered +
            sorted([i for i in others if i["phase"] >= 4], key=lambda i: i["phase"]))


def _table_items(name, pre, now, create):
    """Items that bring table `name` from `now` back to `pre`."""
    items = []
    obj = "table %s" % name
    parts = table_parts(create) if create else {"columns": {}, "keys": {}, "constraints": {}, "options": {}}
    # foreign keys and checks the release added or changed: dropped first, in their own ALTER
    for fk in sorted(set(now["foreign_keys"])):
        if fk not in pre["foreign_keys"] or pre["foreign_keys"][fk] != now["foreign_keys"][fk]:
            items.append(_item(obj, "drop foreign key %s" % fk, phase=3, table=name,
                               clause="DROP FOREIGN KEY %s" % quote_ident(fk)))
    renames = column_renames(pre, now)
    for index in sorted(set(now["indexes"])):
        if index not in pre["indexes"] or pre["indexes"][index] != now["indexes"][index]:
            items.append(_item(obj, "drop index %s" % index, phase=6, table=name,
                               clause="DROP PRIMARY KEY" if index == "PRIMARY" else "DROP INDEX %s"
                               % quote_ident(index)))
    for check in sorted(set(now["checks"])):
        if check not in pre["checks"] or pre["checks"][check] != now["checks"][check]:
            items.append(_item(obj, "drop check %s" % check, phase=6, table=name,
                               clause="DROP CONSTRAINT %s" % quote_ident(check)))
    for column in now["column_order"]:
        if column in renames:
            old = renames[column]
            items.append(_item(obj, "rename column %s back to %s" % (column, old), phase=6, table=name,
                               clause="CHANGE COLUMN %s %s %s" % (quote_ident(column), quote_ident(old),
                                                                   _definition(parts, old, name))))
        elif column not in pre["columns"]:
            spec = now["columns"][column]
            stake = None
            if not spec.get("generated"):
                where = "%s IS NOT NULL" % quote_ident(column)
                args = []
                default = spec.get("default")
                if default and default.startswith("'") and default.endswith("'"):
                    where += " AND NOT (%s <=> %%s)" % quote_ident(column)
                    args.append(default[1:-1].replace("''", "'").replace("\\\\", "\\"))
                stake = _count(name, where, args, "row(s) with a value in %s.%s, a column the release added"
                               % (name, column))
            items.append(_item(obj, "drop column %s" % column, phase=6, table=name,
                               clause="DROP COLUMN %s" % quote_ident(column), stake=stake))
    for column in pre["column_order"]:
        if column in renames.values():
            continue
        position = _position(pre["column_order"], column)
        if column not in now["columns"]:
            items.append(_item(obj, "add column %s again (its values are not brought back)" % column, phase=6,
                               table=name, clause="ADD COLUMN %s %s %s" % (quote_ident(column),
                                                                          _definition(parts, column, name), position),
                               lossless=False, stake=_count(name, what="row(s) of %s that get %s's default instead "
                                                                 "of their old value" % (name, column)),
                               loss="column %s.%s was dropped by the release: its values are only in the backup"
                                    % (name, column)))
        elif now["columns"][column] != pre["columns"][column]:
            fit = fit_predicate(column, pre["columns"][column], now["columns"][column])
            item = _item(obj, "modify column %s back" % column, phase=6, table=name, modify=column,
                         clause="MODIFY COLUMN %s %s" % (quote_ident(column), _definition(parts, column, name)))
            if fit == "unknown":
                item.update(blocked="cannot check here whether the values of %s.%s fit its previous type %s (now "
                                    "%s): left as it is" % (name, column, pre["columns"][column]["type"],
                                                            now["columns"][column]["type"]))
            elif fit:
                item["fit"] = _count(name, fit[0], fit[1], "value(s) of %s.%s that do not fit its previous definition "
                                     "%s" % (name, column, pre["columns"][column]["type"]))
            if capacity_shrank(pre["columns"][column], now["columns"][column]):
                item.update(lossless=False, loss="the release narrowed %s.%s from %s to %s: values it cut are not "
                                                 "brought back" % (name, column, pre["columns"][column]["type"],
                                                                   now["columns"][column]["type"]))
            items.append(item)
    # the order of the columns: a column to move that is also modified back gets its place in that MODIFY
    for move in _reorder(name, pre, now, renames, parts):
        same = [i for i in items if i.get("modify") == move["column"]]
        if same:
            same[0]["clause"] += " " + _position(pre["column_order"], move["column"])
        else:
            items.append(move)
    for index in sorted(set(pre["indexes"])):
        if index not in now["indexes"] or pre["indexes"][index] != now["indexes"][index]:
            line = parts["keys"].get(index)
            if not line:
                raise ReverseError("index %s of table %s has no previous definition in pre.sql" % (index, name))
            items.append(_item(obj, "add index %s again" % index, phase=6, table=name, clause="ADD " + line))
    for check in sorted(set(pre["checks"])):
        if check not in now["checks"] or pre["checks"][check] != now["checks"][check]:
            line = parts["constraints"].get(check)
            if line:
                items.append(_item(obj, "add check %s again" % check, phase=6, table=name, clause="ADD " + line))
    if pre["options"] != now["options"]:
        items.append(_options_item(obj, name, pre["options"], now["options"], parts["options"]))
    for fk in sorted(set(pre["foreign_keys"])):
        if fk not in now["foreign_keys"] or pre["foreign_keys"][fk] != now["foreign_keys"][fk]:
            line = parts["constraints"].get(fk)
            if not line:
                raise ReverseError("foreign key %s of table %s has no previous definition in pre.sql" % (fk, name))
            items.append(_item(obj, "add foreign key %s again" % fk, phase=8, table=name, clause="ADD " + line))
    return items


def _options_item(obj, name, pre, now, previous):
    """Table options back: engine, default character set and collation, comment, row format."""
    clauses = []
    if pre["engine"] != now["engine"]:
        clauses.append("ENGINE=%s" % pre["engine"])
    if pre["collation"] != now["collation"]:
        charset = previous.get("CHARSET") or (pre["collation"] or "").split("_")[0]
        clauses.append("DEFAULT CHARSET=%s COLLATE=%s" % (charset, pre["collation"]))
    if pre["comment"] != now["comment"]:
        clauses.append("COMMENT=%s" % quote_literal(pre["comment"]))
    blocked = None
    if pre["create_options"] != now["create_options"]:
        if "ROW_FORMAT" in previous or "row_format" in now["create_options"]:
            clauses.append("ROW_FORMAT=%s" % previous.get("ROW_FORMAT", "DEFAULT"))
        if [o for o in (pre["create_options"] + " " + now["create_options"]).split() if not o.startswith(
                "row_format")]:
            blocked = "table %s: its create options %r (now %r) are left as they are" % (
                name, pre["create_options"], now["create_options"])
    item = _item(obj, "table options back: %s" % (" ".join(clauses) or "none"), phase=6, table=name,
                 clause=" ".join(clauses))
    if blocked and not clauses:
        item["blocked"] = blocked
    elif blocked:
        item["note"] = blocked
    return item


def _definition(parts, column, table):
    text = parts["columns"].get(column)
    if text is None:
        raise ReverseError("column %s.%s has no previous definition in pre.sql" % (table, column))
    return text


def _position(order, column):
    index = order.index(column)
    return "FIRST" if index == 0 else "AFTER %s" % quote_ident(order[index - 1])


def _reorder(name, pre, now, renames, parts):
    """MODIFY ... AFTER for the fewest columns that put the previous columns back in their previous order: the
    columns outside the longest run already in order move, each right after its previous neighbour."""
    simulated = [renames.get(c, c) for c in now["column_order"] if c in pre["columns"] or c in renames]
    for column in pre["column_order"]:
        if column not in simulated:  # added again by its ADD COLUMN ... AFTER
            index = pre["column_order"].index(column)
            after = pre["column_order"][index - 1] if index else None
            simulated.insert(simulated.index(after) + 1 if after in simulated else 0, column)
    rank = {c: i for i, c in enumerate(pre["column_order"])}
    keep = set(_longest_increasing(simulated, rank))
    return [_item("table %s" % name, "move column %s back to its place" % column, phase=6, table=name,
                  clause="MODIFY COLUMN %s %s %s" % (quote_ident(column), _definition(parts, column, name),
                                                     _position(pre["column_order"], column)), column=column)
            for column in pre["column_order"] if column not in keep]


def _longest_increasing(sequence, rank):
    """The longest subsequence of `sequence` whose ranks increase (O(n^2): tables have few columns)."""
    best = []
    for i, item in enumerate(sequence):
        best.append([item])
        for j in range(i):
            if rank[sequence[j]] < rank[item] and len(best[j]) + 1 > len(best[i]):
                best[i] = best[j] + [item]
    return max(best, key=len) if best else []


# -- the DDL ---------------------------------------------------------------------------------------------------
def ddl(items, excluded=()) -> str:
    """The DDL text of the items not in `excluded` (ids), in order: per table, one ALTER for its foreign keys and
    one for the rest; routines, triggers and events in DELIMITER blocks (the project's splitter reads them)."""
    excluded = set(excluded)
    chosen = [i for i in items if i["id"] not in excluded and not i.get("blocked")]
    out = ["-- The reverse of the release's schema changes, made by dbrelease (rollback, schema mode)."]
    pending = {}
    order = []

    def flush():
        for key in order:
            table, _ = key
            out.append("ALTER TABLE %s %s;" % (quote_ident(table), ", ".join(pending[key])))
        pending.clear()
        order.clear()

    last_phase = None
    for item in chosen:
        if last_phase is not None and item["phase"] != last_phase:
            flush()
        last_phase = item["phase"]
        if item.get("clause"):
            key = (item["table"], item["phase"])
            if key not in pending:
                pending[key] = []
                order.append(key)
            pending[key].append(item["clause"])
            continue
        flush()
        if item.get("delimiter"):
            out.append("DELIMITER ;;\n%s ;;\nDELIMITER ;" % item["sql"])
        else:
            out.append("%s;" % item["sql"])
    flush()
    return "\n\n".join(out) + "\n"


def summary(items, stakes: dict, excluded=()) -> dict:
    """What the reverse keeps and loses, once the stakes are counted (`stakes`: {item id: count})."""
    losses, blocked, steps = [], [], []
    for item in items:
        count = stakes.get(item["id"])
        if item.get("blocked"):
            blocked.append(item["blocked"])
            continue
        if item["id"] in excluded:
            blocked.append("%s: %s left as it is: %d %s" % (item["object"], item["action"], stakes.get(
                "fit:" + item["id"], 0), item["fit"]["what"]))
            continue
        steps.append("%s: %s" % (item["object"], item["action"]))
        if item.get("loss"):
            losses.append(item["loss"] + (" (%d %s)" % (count, item["stake"]["what"]) if item.get("stake") and
                                          count is not None else ""))
        elif item.get("stake") and count:
            losses.append("%d %s" % (count, item["stake"]["what"]))
    return {"steps": steps, "losses": losses, "not_reversed": blocked, "lossless": not losses and not blocked}
