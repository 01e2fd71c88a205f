"""DDL lint: what a release's statements would do that is not idempotent, destructive, or blocking. Stdlib only.

Pure functions over statements (from sqlsplit), plan changes (from schema.diff) and server facts, so they are
unit-tested as tables. The module adds what needs the server: duplicate counts and ALGORITHM trials.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------------------------------
# Tokens and statement targets
# --------------------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""\s+
    |(?P<ident>`(?:[^`]|``)*`)
    |(?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<word>[A-Za-z0-9_$@.]+)
    |(?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)


def tokens(sql: str):
    """(kind, value) pairs: kind is `word` (upper-cased keyword or bare name), `ident` (unquoted backtick name),
    `string` or `punct`. `word` values keep their original text in `raw`-less form: names come back as written."""
    out = []
    for match in _TOKEN_RE.finditer(sql):
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "ident":
            value = value[1:-1].replace("``", "`")
        out.append((kind, value))
    return out


def _upper(tok):
    return tok[1].upper() if tok[0] == "word" else None


def _name(toks, i):
    """A possibly schema-qualified name starting at toks[i]: (name, next index). Qualifier dropped."""
    if i >= len(toks):
        return None, i
    kind, value = toks[i]
    i += 1
    if kind == "word" and "." in value.strip("."):
        value = value.split(".")[-1]
    if kind == "word" and value.endswith(".") and i < len(toks) and toks[i][0] in ("ident", "word"):
        return toks[i][1].split(".")[-1], i + 1  # app.`t`
    name = value
    while i + 1 < len(toks) and toks[i][1] == "." and toks[i][0] in ("punct", "word") and \
            toks[i + 1][0] in ("ident", "word"):
        name = toks[i + 1][1]
        i += 2
    if i < len(toks) and toks[i][0] == "word" and toks[i][1].startswith(".") and len(toks[i][1]) > 1:
        name = toks[i][1][1:]  # `app`.t
        i += 1
    return name, i


def _skip_words(toks, i, *words):
    """Skip the sequence of keywords if present; returns (matched, index)."""
    j = i
    for word in words:
        if j < len(toks) and _upper(toks[j]) == word:
            j += 1
        else:
            return False, i
    return True, j


_OBJECT_WORDS = {"TABLE": "table", "VIEW": "view", "INDEX": "index", "PROCEDURE": "procedure",
                 "FUNCTION": "function", "TRIGGER": "trigger", "EVENT": "event", "DATABASE": "database",
                 "SCHEMA": "database"}


def statement_target(sql: str) -> dict:
    """What a statement acts on: `{"verb", "kind", "name", "table", "if_not_exists", "if_exists", "or_replace",
    "clauses"}` (clauses: the top-level comma-separated parts of an ALTER TABLE, as token lists)."""
    toks = tokens(sql)
    info = {"verb": (_upper(toks[0]) or "").lower() if toks else "", "kind": None, "name": None, "table": None,
            "if_not_exists": False, "if_exists": False, "or_replace": False, "clauses": [], "unique": False,
            "tokens": toks}
    if not toks:
        return info
    verb = info["verb"]
    i = 1
    if verb == "create":
        ok, i = _skip_words(toks, i, "OR", "REPLACE")
        info["or_replace"] = ok
        # Options between CREATE and the object word: ALGORITHM=..., DEFINER=..., SQL SECURITY ..., UNIQUE, ...
        while i < len(toks) and _upper(toks[i]) not in _OBJECT_WORDS:
            if _upper(toks[i]) == "UNIQUE":
                info["unique"] = True
            if _upper(toks[i]) == "AGGREGATE":
                pass
            i += 1
        if i >= len(toks):
            return info
        info["kind"] = _OBJECT_WORDS[_upper(toks[i])]
        i += 1
        ok, i = _skip_words(toks, i, "IF", "NOT", "EXISTS")
        info["if_not_exists"] = ok
        info["name"], i = _name(toks, i)
        if info["kind"] == "index":
            while i < len(toks) and _upper(toks[i]) != "ON":
                i += 1
            info["table"], i = _name(toks, i + 1)
        elif info["kind"] == "trigger":
            while i < len(toks) and _upper(toks[i]) != "ON":
                i += 1
            info["table"], i = _name(toks, i + 1)
        elif info["kind"] == "table":
            info["table"] = info["name"]
    elif verb in ("alter", "drop", "truncate", "rename"):
        while i < len(toks) and _upper(toks[i]) not in _OBJECT_WORDS:
            i += 1  # ONLINE, IGNORE, TEMPORARY, DEFINER=... of ALTER VIEW
        if i >= len(toks):
            if verb == "truncate" and len(toks) > 1:
                info["kind"] = "table"
                info["name"], _ = _name(toks, 1)
                info["table"] = info["name"]
            return info
        info["kind"] = _OBJECT_WORDS[_upper(toks[i])]
        i += 1
        ok, i = _skip_words(toks, i, "IF", "EXISTS")
        info["if_exists"] = ok
        info["name"], i = _name(toks, i)
        if info["kind"] == "table":
            info["table"] = info["name"]
        if info["kind"] == "index" and verb == "drop":
            while i < len(toks) and _upper(toks[i]) != "ON":
                i += 1
            info["table"], i = _name(toks, i + 1)
        if verb == "alter" and info["kind"] == "table":
            info["clauses"] = _split_clauses(toks[i:])
    elif verb == "insert":
        info["kind"] = "data"
    return info


def _split_clauses(toks):
    clauses, current, depth = [], [], 0
    for tok in toks:
        if tok == ("punct", "("):
            depth += 1
        elif tok == ("punct", ")"):
            depth -= 1
        if tok == ("punct", ",") and depth == 0:
            if current:
                clauses.append(current)
            current = []
            continue
        current.append(tok)
    if current:
        clauses.append(current)
    return clauses


def _clause_words(clause):
    return [(_upper(t) or "") for t in clause]


def clause_kind(clause) -> str:
    """Classify one ALTER TABLE clause: add_column, drop_column, rename_column, modify_column, alter_default,
    add_index, add_fulltext, drop_index, add_foreign_key, drop_foreign_key, add_check, drop_check,
    rename_table, table_option, convert_charset, algorithm_option, force, other."""
    words = _clause_words(clause)
    if not words:
        return "other"
    first = words[0]
    second = words[1] if len(words) > 1 else ""
    if first in ("ALGORITHM", "LOCK"):
        return "algorithm_option"
    if first == "ADD":
        rest = [w for w in words[1:] if w not in ("IF", "NOT", "EXISTS")]
        nxt = rest[0] if rest else ""
        if nxt == "CONSTRAINT":
            # ADD CONSTRAINT [name] FOREIGN KEY|UNIQUE|CHECK|PRIMARY
            for w in rest[1:]:
                if w == "FOREIGN":
                    return "add_foreign_key"
                if w in ("UNIQUE", "PRIMARY"):
                    return "add_index"
                if w == "CHECK":
                    return "add_check"
            return "other"
        if nxt == "FOREIGN":
            return "add_foreign_key"
        if nxt in ("FULLTEXT", "SPATIAL"):
            return "add_fulltext"
        if nxt in ("INDEX", "KEY", "UNIQUE", "PRIMARY"):
            return "add_index"
        if nxt == "CHECK":
            return "add_check"
        if nxt in ("PARTITION",):
            return "other"
        return "add_column"
    if first == "DROP":
        nxt = second
        if nxt in ("INDEX", "KEY", "PRIMARY"):
            return "drop_index"
        if nxt == "FOREIGN":
            return "drop_foreign_key"
        if nxt in ("CHECK", "CONSTRAINT"):
            return "drop_check"
        if nxt == "PARTITION":
            return "other"
        return "drop_column"
    if first == "RENAME":
        if second in ("COLUMN",):
            return "rename_column"
        if second in ("INDEX", "KEY"):
            return "rename_index"
        return "rename_table"
    if first == "ALTER":
        if "DEFAULT" in words and ("SET" in words or "DROP" in words):
            return "alter_default"
        if second == "INDEX":
            return "index_visibility"
        return "other"
    if first in ("MODIFY", "CHANGE"):
        return "modify_column"
    if first == "CONVERT":
        return "convert_charset"
    if first == "FORCE":
        return "force"
    if first in ("ENGINE", "ROW_FORMAT", "KEY_BLOCK_SIZE"):
        return "rebuild_option"
    if first in ("COMMENT", "AUTO_INCREMENT", "DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "STATS_PERSISTENT"):
        return "table_option"
    return "other"


def _has_if(clause, *words):
    wanted = list(words)
    uppers = _clause_words(clause)
    for i in range(len(uppers) - len(wanted) + 1):
        if uppers[i:i + len(wanted)] == wanted:
            return True
    return False


# --------------------------------------------------------------------------------------------------------------
# Idempotence
# --------------------------------------------------------------------------------------------------------------

_BODY_KINDS = ("procedure", "function", "trigger", "event")


def _replace_advice(kind: str, mariadb: bool) -> str:
    """How to make a CREATE of a routine, trigger or event rerunnable without keeping an older body."""
    if mariadb:
        return "use CREATE OR REPLACE %s (IF NOT EXISTS would keep an existing, older body)" % kind.upper()
    return "precede it with DROP %s IF EXISTS (IF NOT EXISTS would keep an existing, older body)" % kind.upper()


def _dropped_before(info, previous) -> bool:
    """A `DROP <kind> IF EXISTS <name>` of the same object earlier in the same file."""
    for st in previous or ():
        before = statement_target(st["sql"])
        if before["verb"] == "drop" and before["kind"] == info["kind"] and before["if_exists"] and \
                (before["name"] or "").lower() == (info["name"] or "").lower():
            return True
    return False


def idempotence_findings(statement: dict, flavor: str, version, previous=None) -> list:
    """Messages for a statement that fails or changes something again when run twice. `previous`: the statements
    before it in the same file (a CREATE after a matching DROP ... IF EXISTS is rerunnable)."""
    info = statement_target(statement.get("effective") or statement["sql"])
    version = tuple(version or (0, 0, 0))
    mariadb = flavor == "mariadb"
    found = []
    verb, kind = info["verb"], info["kind"]

    def add(text):
        found.append(text)

    if verb == "create":
        if kind == "table" and not info["if_not_exists"]:
            if info["or_replace"]:
                pass  # reported as destructive: it drops the table's rows
            elif not _dropped_before(info, previous):
                add("CREATE TABLE %s without IF NOT EXISTS fails when the table exists" % info["name"])
        elif kind == "index" and not info["if_not_exists"]:
            if mariadb:
                add("CREATE INDEX %s without IF NOT EXISTS fails when the index exists" % info["name"])
            else:
                add("CREATE INDEX %s fails when the index exists; MySQL has no CREATE INDEX IF NOT EXISTS: guard it "
                    "with a check on information_schema.STATISTICS or use a migration" % info["name"])
        elif kind == "view" and not (info["or_replace"] or info["if_not_exists"]) and \
                not _dropped_before(info, previous):
            add("CREATE VIEW %s without OR REPLACE fails when the view exists" % info["name"])
        elif kind in _BODY_KINDS and info["if_not_exists"]:
            add("CREATE %s IF NOT EXISTS %s keeps an existing %s whatever its body: a changed body in this file "
                "would not be applied; %s" % (kind.upper(), info["name"], kind, _replace_advice(kind, mariadb)))
        elif kind in _BODY_KINDS and not info["or_replace"] and not _dropped_before(info, previous):
            add("CREATE %s %s fails when it exists: %s" % (kind.upper(), info["name"], _replace_advice(kind, mariadb)))
        elif kind == "database" and not info["if_not_exists"]:
            add("CREATE DATABASE %s without IF NOT EXISTS fails when it exists" % info["name"])
    elif verb == "drop" and kind and not info["if_exists"]:
        add("DROP %s %s without IF EXISTS fails when it is already gone" % (kind.upper(), info["name"]))
    elif verb == "rename":
        add("RENAME TABLE %s fails on a second run (the old name is gone)" % info["name"])
    elif verb == "alter" and kind == "table":
        for clause in info["clauses"]:
            ck = clause_kind(clause)
            guarded = _has_if(clause, "IF", "NOT", "EXISTS") or _has_if(clause, "IF", "EXISTS")
            if guarded:
                continue
            what = " ".join(t[1] for t in clause[:4])
            if ck in ("add_column", "add_index", "add_fulltext", "add_foreign_key", "add_check", "drop_column",
                      "drop_index", "drop_foreign_key", "drop_check", "rename_column", "rename_table"):
                if mariadb:
                    fix = "IF EXISTS" if ck.startswith("drop") else "IF NOT EXISTS"
                    if ck in ("rename_column", "rename_table"):
                        add("ALTER TABLE %s: '%s' fails on a second run" % (info["name"], what))
                    else:
                        add("ALTER TABLE %s: '%s' without %s fails on a second run" % (info["name"], what, fix))
                else:
                    add("ALTER TABLE %s: '%s' fails on a second run (MySQL has no IF [NOT] EXISTS here: guard it "
                        "or move it to a versioned migration)" % (info["name"], what))
    elif verb == "insert":
        upper = statement["sql"].upper()
        if "IGNORE" not in upper.split("INTO")[0] and "ON DUPLICATE KEY" not in upper:
            add("INSERT without IGNORE or ON DUPLICATE KEY UPDATE adds rows (or fails) on every run")
    return found


# --------------------------------------------------------------------------------------------------------------
# Destructive changes
# --------------------------------------------------------------------------------------------------------------

INT_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
TEXT_BYTES = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295,
               "tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
STRINGS = {"char", "varchar", "binary", "varbinary"}
TEMPORAL_RANK = {"year": 0, "date": 1, "time": 1, "datetime": 2, "timestamp": 2}
_TYPE_RE = re.compile(r"^\s*([a-z]+)\s*(?:\((.*?)\))?\s*(.*)$", re.DOTALL)


def parse_type(column_type: str) -> dict:
    match = _TYPE_RE.match((column_type or "").lower())
    if not match:
        return {"base": column_type or "", "args": [], "unsigned": False}
    base, args, rest = match.groups()
    if base in ("enum", "set"):
        values = re.findall(r"'((?:[^']|'')*)'", args or "")
        parsed = [v.replace("''", "'") for v in values]
    else:
        parsed = [a.strip() for a in (args or "").split(",") if a.strip()]
    return {"base": base, "args": parsed, "unsigned": "unsigned" in rest}


def int_range(t):
    bits = 8 * INT_BYTES[t["base"]]
    return (0, 2 ** bits - 1) if t["unsigned"] else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


_FULL_UNICODE = ("utf8mb4", "utf16", "utf16le", "utf32")
_BMP = ("utf8mb3", "utf8", "ucs2")


def charset_holds(after: str, before: str) -> bool:
    """Whether character set `after` can hold every character `before` can (utf8mb4 holds all, utf8mb3 and ucs2
    every character but those outside the BMP, every character set holds ascii)."""
    after, before = (after or "").lower(), (before or "").lower()
    if after == before or {after, before} <= {"utf8", "utf8mb3"} or before == "ascii":
        return True
    if after in _FULL_UNICODE:
        return before != "binary"
    if after in _BMP:
        return before not in _FULL_UNICODE and before != "binary"
    return False


def narrowing_reason(before_type: str, after_type: str, before_charset=None, after_charset=None):
    """Why changing a column from `before_type` to `after_type` can lose data, or None if it cannot."""
    b, a = parse_type(before_type), parse_type(after_type)
    if b == a and (before_charset or None) == (after_charset or None):
        return None
    if before_charset and after_charset and not charset_holds(after_charset, before_charset):
        return "character set %s -> %s cannot hold every character" % (before_charset, after_charset)
    if b == a:
        return None
    bb, ab = b["base"], a["base"]
    if bb in INT_BYTES and ab in INT_BYTES:
        (bmin, bmax), (amin, amax) = int_range(b), int_range(a)
        if amin > bmin or amax < bmax:
            return "%s -> %s narrows the integer range" % (before_type, after_type)
        return None
    if bb in INT_BYTES and ab in ("decimal", "numeric") and a["args"]:
        digits = int(a["args"][0]) - (int(a["args"][1]) if len(a["args"]) > 1 else 0)
        needed = len(str(int_range(b)[1]))
        return None if digits >= needed else "%s -> %s has too few integer digits" % (before_type, after_type)
    if bb in ("decimal", "numeric") and ab in ("decimal", "numeric"):
        bp, bs = (int(b["args"][0]) if b["args"] else 10), (int(b["args"][1]) if len(b["args"]) > 1 else 0)
        ap, as_ = (int(a["args"][0]) if a["args"] else 10), (int(a["args"][1]) if len(a["args"]) > 1 else 0)
        if ap - as_ < bp - bs or as_ < bs or (b["unsigned"] is False and a["unsigned"]):
            return "%s -> %s loses digits" % (before_type, after_type)
        return None
    if bb in ("float", "double", "real") and ab in ("float", "double", "real"):
        return "%s -> %s loses precision" % (before_type, after_type) if bb != "float" and ab == "float" else None
    if bb in STRINGS | set(TEXT_BYTES) and ab in STRINGS | set(TEXT_BYTES):
        blen = int(b["args"][0]) if bb in STRINGS and b["args"] else TEXT_BYTES.get(bb, 1)
        alen = int(a["args"][0]) if ab in STRINGS and a["args"] else TEXT_BYTES.get(ab, 1)
        if alen < blen:
            return "%s -> %s is shorter (%d < %d)" % (before_type, after_type, alen, blen)
        binary = ("binary" in bb or "blob" in bb), ("binary" in ab or "blob" in ab)
        if binary[0] != binary[1]:
            return "%s -> %s converts between text and binary" % (before_type, after_type)
        return None
    if bb in ("enum", "set") and ab == bb:
        missing = [v for v in b["args"] if v not in a["args"]]
        return "%s loses value(s) %s" % (bb, ", ".join(repr(v) for v in missing)) if missing else None
    if bb in ("enum", "set") and ab in STRINGS | set(TEXT_BYTES):
        longest = max((len(v) for v in b["args"]), default=0)
        alen = int(a["args"][0]) if ab in STRINGS and a["args"] else TEXT_BYTES.get(ab, 1)
        return None if alen >= longest else "%s -> %s is too short for the values" % (before_type, after_type)
    if bb in TEMPORAL_RANK and ab in TEMPORAL_RANK:
        if bb == ab or {bb, ab} == {"datetime", "timestamp"}:
            bf = int(b["args"][0]) if b["args"] else 0
            af = int(a["args"][0]) if a["args"] else 0
            if af < bf:
                return "%s -> %s drops fractional seconds" % (before_type, after_type)
            if bb == "datetime" and ab == "timestamp":
                return "datetime -> timestamp cannot hold dates outside 1970-2038"
            return None
        if TEMPORAL_RANK[ab] < TEMPORAL_RANK[bb] or {bb, ab} == {"date", "time"}:
            return "%s -> %s drops part of the value" % (before_type, after_type)
        return None
    if bb in INT_BYTES and ab in STRINGS and a["args"]:
        needed = len(str(int_range(b)[0])) if not b["unsigned"] else len(str(int_range(b)[1]))
        return None if int(a["args"][0]) >= needed else "%s -> %s is too short for the numbers" % (
            before_type, after_type)
    return "%s -> %s changes the type family (values may not convert)" % (before_type, after_type)


def destructive_findings(changes, statements_by_object=None):
    """Drops, re-creations and narrowing changes in a plan. Each finding names its object by `key`: [table] or
    [table, column] (what schema_allow_destructive lists)."""
    found = []
    for change in changes:
        refs = (statements_by_object or {}).get(change["object"], [])
        if change["kind"] != "tables":
            continue
        table = change["name"]
        if change["action"] == "drop":
            found.append({"object": change["object"], "key": [table], "reason": "drops the table and its rows",
                          "statements": refs})
        elif change["action"] == "recreate":
            found.append({"object": change["object"], "key": [table],
                          "reason": "drops and re-creates the table: its rows are lost", "statements": refs})
        elif change["action"] in ("alter", "rename"):
            for col in change.get("columns", []):
                if col["action"] == "drop":
                    found.append({"object": change["object"], "key": [table, col["column"]],
                                  "reason": "drops column %s" % col["column"], "statements": refs})
                elif col["action"] == "modify":
                    reason = narrowing_reason(col["before"]["type"], col["after"]["type"],
                                              col["before"].get("charset"), col["after"].get("charset"))
                    if reason:
                        found.append({"object": change["object"], "key": [table, col["column"]],
                                      "reason": "narrows column %s: %s" % (col["column"], reason),
                                      "statements": refs})
    return found


def row_destroying_statements(statements, existing_tables):
    """Statements that empty a table or part of it while the structure diff may show no change: CREATE OR REPLACE
    TABLE of an existing table, ALTER TABLE ... DROP / TRUNCATE PARTITION, TRUNCATE (a data statement, found
    here when data statements are allowed)."""
    found = []
    for st in statements:
        info = statement_target(st.get("effective") or st["sql"])
        table = info["name"]
        if info["verb"] == "truncate":
            found.append({"object": "table %s" % table, "key": [table], "reason": "TRUNCATE deletes every row",
                          "statements": [ref(st)]})
        elif info["verb"] == "create" and info["kind"] == "table" and info["or_replace"] and table in existing_tables:
            found.append({"object": "table %s" % table, "key": [table],
                          "reason": "CREATE OR REPLACE TABLE drops the existing table and its rows",
                          "statements": [ref(st)]})
        elif info["verb"] == "alter" and info["kind"] == "table":
            for clause in info["clauses"]:
                words = _clause_words(clause)
                if words[:2] in (["DROP", "PARTITION"], ["TRUNCATE", "PARTITION"]):
                    found.append({"object": "table %s" % table, "key": [table],
                                  "reason": "%s deletes the rows of partition(s) %s" % (
                                      " ".join(words[:2]), ", ".join(t[1] for t in clause[2:] if t[0] != "punct")),
                                  "statements": [ref(st)]})
    return found


def allowed_destructive(finding, allow) -> bool:
    """Whether schema_allow_destructive allows `finding`: true allows everything; a list allows what it names -
    `orders` the table itself (dropping, re-creating, emptying it), `orders.legacy_flag` one column,
    `orders.*` every column of orders. Names with dots are written in backticks (`` `odd.name`.col ``)."""
    if allow is True:
        return True
    if not allow:
        return False
    key = finding.get("key") or []
    for entry in allow:
        parts = entry if isinstance(entry, list) else _split_entry(entry)
        if len(key) == 1 and parts == [key[0]]:
            return True
        if len(key) == 2 and len(parts) == 2 and parts[0] == key[0] and parts[1] in ("*", ) + (key[1],) or \
                (len(key) == 2 and len(parts) == 2 and parts[0] == key[0] and parts[1].lower() == key[1].lower()):
            return True
    return False


def _split_entry(entry):
    from ansible.module_utils.dbrelease.sqlident import split_qualified

    text = str(entry).strip()
    if text.endswith(".*"):
        return split_qualified(text[:-2]) + ["*"]
    return split_qualified(text)


def ref(statement) -> dict:
    """A short reference to a statement for plans and records."""
    text = " ".join(statement["sql"].split())
    return {"file": statement["file"], "index": statement["index"], "line": statement["line"],
            "sql": text if len(text) <= 200 else text[:197] + "..."}


# --------------------------------------------------------------------------------------------------------------
# Online ALTER rules (used where a trial on the temporary copy is not possible)
# --------------------------------------------------------------------------------------------------------------

_ORDER = {"instant": 0, "inplace": 1, "copy": 2}


def expected_algorithm(kind: str, flavor: str, version, clause=None) -> str:
    """The best ALGORITHM the server offers for one ALTER TABLE clause kind: instant, inplace or copy.

    MySQL: ADD COLUMN INSTANT from 8.0.12 (last position only until 8.0.29), DROP COLUMN INSTANT from 8.0.29,
    RENAME COLUMN INSTANT from 8.0.28. MariaDB: ADD COLUMN INSTANT from 10.3 (last position; any from 10.4),
    DROP COLUMN and reorder INSTANT from 10.4. Both: secondary indexes INPLACE without locking, column type
    changes COPY, adding a foreign key COPY (INPLACE only with foreign_key_checks=0).
    """
    version = tuple(version or (0, 0, 0))
    mysql = flavor != "mariadb"
    words = _clause_words(clause or [])
    positioned = "FIRST" in words or "AFTER" in words
    if kind == "add_column":
        if mysql:
            if version >= (8, 0, 29) or (version >= (8, 0, 12) and not positioned):
                return "instant"
            return "inplace"
        if version >= (10, 4, 0) or (version >= (10, 3, 0) and not positioned):
            return "instant"
        return "inplace"
    if kind == "drop_column":
        if (mysql and version >= (8, 0, 29)) or (not mysql and version >= (10, 4, 0)):
            return "instant"
        return "inplace"
    if kind == "rename_column":
        if (mysql and version >= (8, 0, 28)) or (not mysql and version >= (10, 3, 0)):
            return "instant"
        return "inplace"
    if kind in ("alter_default", "table_option", "rename_table", "rename_index", "index_visibility",
                "algorithm_option"):
        return "instant"
    if kind in ("add_index", "drop_index", "drop_foreign_key", "add_fulltext"):
        return "inplace"
    if kind == "drop_check":
        return "instant"
    return "copy"


def combine_algorithms(algorithms) -> str:
    return max(algorithms, key=lambda a: _ORDER[a]) if algorithms else "instant"


def statement_algorithm_by_rules(sql: str, flavor: str, version) -> str:
    info = statement_target(sql)
    if info["verb"] == "alter" and info["kind"] == "table":
        return combine_algorithms([expected_algorithm(clause_kind(c), flavor, version, c) for c in info["clauses"]])
    if info["kind"] == "index":
        return "inplace"
    return "copy"


def blocking(algorithm: str, lock: str = None) -> bool:
    """An ALTER blocks writers when it copies the table, or runs in place but cannot allow concurrent DML."""
    return algorithm == "copy" or (algorithm == "inplace" and lock not in (None, "none"))
