"""What kind of statement each DDL statement is, read as the server reads it. Stdlib only (runs on target hosts).

The schema phase runs schema changes only: CREATE / ALTER / DROP / RENAME of tables, views, indexes, procedures,
functions, triggers, events and sequences, plus the session settings a DDL file or a dump sets up (`SET NAMES`,
`SET foreign_key_checks`, `USE` of the target database). Every other statement has a category of its own and is
refused unless the category is explicitly allowed:

| category | statements |
| --- | --- |
| data | INSERT, UPDATE, DELETE, REPLACE, LOAD DATA / XML, TRUNCATE |
| dynamic | PREPARE, EXECUTE, EXECUTE IMMEDIATE, DEALLOCATE PREPARE |
| call | CALL |
| account | CREATE / ALTER / DROP / RENAME USER, CREATE / DROP ROLE, GRANT, REVOKE, SET PASSWORD, SET ROLE |
| server | SET GLOBAL / PERSIST, session settings that reach replication (sql_log_bin, gtid_*), KILL, |
|        | SHUTDOWN, FLUSH, RESET, PURGE, INSTALL / UNINSTALL PLUGIN, replication control, servers, |
|        | tablespaces, UDFs (CREATE FUNCTION ... SONAME), SELECT ... INTO OUTFILE |
| query | SELECT, DO, SHOW, EXPLAIN, DESCRIBE, a SET that evaluates an expression (a stored function may change data) |
| transaction | BEGIN, COMMIT, ROLLBACK, SAVEPOINT, START TRANSACTION, LOCK / UNLOCK TABLES |
| maintenance | ANALYZE / OPTIMIZE / REPAIR / CHECK / CHECKSUM TABLE |
| handler | HANDLER |
| xa | XA |
| compound | BEGIN NOT ATOMIC, IF, CASE, WHILE, LOOP, REPEAT outside a stored program |
| database | CREATE / ALTER / DROP DATABASE, USE of another database (never allowed: it acts outside the schema) |
| other | anything not recognised |

Executable comments are read as the server reads them: `/*!NNNNN ... */` runs on MySQL from version NNNNN and on
MariaDB always, `/*M!NNNNNN ... */` on MariaDB from version NNNNNN only. A statement that is only a comment for this
server is `noop` (never sent to it).
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.sqlident import lex, unquote

SCHEMA = "schema"
SESSION = "session"
NOOP = "noop"
# Every category a statement can have besides schema, session and noop; all but `database` can be allowed.
CATEGORIES = ("data", "dynamic", "call", "account", "server", "query", "transaction", "maintenance", "handler",
              "xa", "compound", "database", "other")
ALLOWABLE = tuple(c for c in CATEGORIES if c != "database")
# Allowed categories that are not tried on the plan's temporary copy: they act on the server, not on a schema.
NOT_ON_COPY = ("account", "server")

_OBJECT_KINDS = {"TABLE": "table", "VIEW": "view", "INDEX": "index", "PROCEDURE": "procedure",
                 "FUNCTION": "function", "TRIGGER": "trigger", "EVENT": "event", "SEQUENCE": "sequence"}
_CREATE_OPTIONS = {"OR", "REPLACE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL", "ONLINE", "OFFLINE", "AGGREGATE",
                   "IGNORE", "NONATOMIC"}

# Session variables a DDL file or a dump may set in the schema phase. Anything else (sql_log_bin, gtid_next,
# pseudo_thread_id, ...) changes what replicas receive or how the server logs, and is a `server` statement.
SESSION_VARIABLES = {
    "names", "character_set_client", "character_set_results", "character_set_connection", "collation_connection",
    "foreign_key_checks", "unique_checks", "sql_mode", "time_zone", "sql_notes", "sql_warnings",
    "sql_quote_show_create", "sql_safe_updates", "innodb_strict_mode", "check_constraint_checks",
    "max_statement_time", "lock_wait_timeout", "innodb_lock_wait_timeout", "alter_algorithm",
    "explicit_defaults_for_timestamp", "default_storage_engine", "storage_engine", "default_tmp_storage_engine",
    "auto_increment_increment", "auto_increment_offset", "big_tables", "sql_big_selects", "group_concat_max_len",
    "character_set_database", "collation_database", "old_alter_table", "default_week_format",
    "div_precision_increment", "sql_auto_is_null", "sql_select_limit", "net_read_timeout", "net_write_timeout",
    "wait_timeout", "interactive_timeout", "transaction_isolation", "tx_isolation", "tmp_table_size",
    "max_heap_table_size", "innodb_ft_enable_stopword", "innodb_ft_user_stopword_table", "show_create_table_verbosity",
    "sql_require_primary_key", "default_collation_for_utf8mb4", "autocommit",
}
_REASONS = {
    "data": "a data statement: data changes belong in the migrate phase, which keeps a history",
    "dynamic": "dynamic SQL: what it runs cannot be known before it runs",
    "call": "a procedure call: what the procedure does cannot be planned",
    "account": "an account or privilege statement: accounts belong in the grants phase",
    "server": "a server-level statement: it acts on the whole server, not on the schema",
    "query": "a query: it does not change the schema (and a stored function it calls may change data)",
    "transaction": "a transaction or lock statement",
    "maintenance": "a table maintenance statement",
    "handler": "a HANDLER statement (reads rows)",
    "xa": "an XA transaction statement",
    "compound": "a compound statement outside a stored program: it can run anything",
    "database": "it acts on a whole database",
    "other": "not a statement the schema phase knows",
}


def version_number(version) -> int:
    """(10, 11, 6) -> 101106 (the number executable comments are compared with)."""
    v = tuple(version or (0, 0, 0)) + (0, 0, 0)
    return v[0] * 10000 + v[1] * 100 + v[2]


def _executed(opener: str, flavor: str, version) -> bool:
    digits = opener.lstrip("/*M!")
    needed = int(digits) if digits else 0
    if opener.startswith("/*M!"):
        return flavor == "mariadb" and version_number(version) >= needed
    if flavor == "mariadb":
        return True
    return version_number(version) >= needed


def effective_tokens(sql: str, flavor: str = "mariadb", version=(10, 11, 0)):
    """The significant tokens the server reads, as (kind, text, offset): comments dropped, executable comments
    unwrapped when this server runs them and dropped when it does not."""
    out = []
    offset = 0
    skipping = False
    for kind, text in lex(sql):
        start = offset
        offset += len(text)
        if kind == "xopen":
            skipping = not _executed(text, flavor, version)
            continue
        if kind == "xclose":
            skipping = False
            continue
        if skipping or kind in ("ws", "comment"):
            continue
        out.append((kind, text, start))
    return out


def effective_sql(sql: str, flavor: str = "mariadb", version=(10, 11, 0)) -> str:
    """The statement as the server reads it, as one text (comments removed, executable ones unwrapped)."""
    out = []
    offset = 0
    skipping = False
    for kind, text in lex(sql):
        offset += len(text)
        if kind == "xopen":
            skipping = not _executed(text, flavor, version)
            out.append(" ")
            continue
        if kind == "xclose":
            skipping = False
            out.append(" ")
            continue
        if skipping:
            continue
        out.append(" " if kind == "comment" else text)
    return " ".join("".join(out).split())


def _words(tokens):
    return [t[1].upper() if t[0] == "word" else None for t in tokens]


def classify(sql: str, flavor: str = "mariadb", version=(10, 11, 0), db: str = None) -> dict:
    """`{"category", "verb", "kind", "reason", "definer"}` for one statement.

    `kind` is the object kind of schema statements (table, view, index, procedure, function, trigger, event,
    sequence); `definer` the DEFINER it names (`user@host`, `CURRENT_USER`) or None; `effective` the statement as
    the server reads it (for SET STATEMENT ... FOR, the inner statement), which the lint and the plan analyse.
    `db` is the target database: `USE db` and `CREATE DATABASE IF NOT EXISTS db` are session statements, any
    other database statement is not.
    """
    info = _classify(sql, flavor, version, db)
    info["effective"] = effective_sql(info.pop("text"), flavor, version)
    return info


def _classify(sql, flavor, version, db):
    tokens = effective_tokens(sql, flavor, version)
    words = _words(tokens)
    info = {"category": "other", "verb": (words[0] or "").lower() if words else "", "kind": None,
            "reason": _REASONS["other"], "definer": None, "text": sql}
    if not tokens:
        info.update(category=NOOP, reason="only a comment for this server")
        return info
    first = words[0]
    second = words[1] if len(words) > 1 else None

    def cat(category, reason=None, **extra):
        info.update(category=category, reason=reason or _REASONS.get(category, ""), **extra)
        return info

    if first in ("CREATE", "ALTER", "DROP"):
        i = 1
        while i < len(words):
            w = words[i]
            if w in _OBJECT_KINDS or w in ("DATABASE", "SCHEMA", "USER", "ROLE", "SERVER", "TABLESPACE", "LOGFILE",
                                           "PACKAGE", "PREPARE", "INSTANCE", "RESOURCE", "SPATIAL_REF"):
                break
            if w == "DEFINER":
                info["definer"], i = _read_definer(tokens, words, i + 1)
                continue
            if w == "ALGORITHM" and i + 2 < len(words) and tokens[i + 1][1] == "=":
                i += 3
                continue
            if w == "SQL" and i + 2 < len(words) and words[i + 1] == "SECURITY":
                i += 3
                continue
            if w in _CREATE_OPTIONS or (first in ("ALTER", "DROP") and w in ("ONLINE", "IGNORE", "TEMPORARY")):
                i += 1
                continue
            if w == "UNIQUE" or w == "FULLTEXT" or w == "SPATIAL":
                i += 1
                continue
            i = len(words)
        word = words[i] if i < len(words) else None
        if word in _OBJECT_KINDS:
            kind = _OBJECT_KINDS[word]
            if kind == "function" and "SONAME" in words:
                return cat("server", "a loadable function (SONAME): it loads a library into the server")
            if first == "ALTER" and kind == "table" and _discards_tablespace(words):
                return cat("server", "it discards or imports a tablespace file")
            if first == "CREATE" and kind == "table" and _has_outfile(words):
                return cat("server")
            return cat(SCHEMA, "a schema change", kind=kind)
        if word in ("DATABASE", "SCHEMA"):
            name = _name_after(tokens, words, i + 1)
            if db is not None and name == db and first == "CREATE" and words[i + 1:i + 4] == ["IF", "NOT", "EXISTS"]:
                return cat(SESSION, "creates the target database if it is missing (it exists)", kind="database")
            return cat("database", kind="database")
        if word in ("USER", "ROLE"):
            return cat("account")
        if word in ("SERVER", "TABLESPACE", "LOGFILE", "INSTANCE", "RESOURCE", "SPATIAL_REF"):
            return cat("server")
        if word == "PREPARE":
            return cat("dynamic")
        return cat("other")
    if first == "RENAME":
        if second == "TABLE" or second == "TABLES":
            return cat(SCHEMA, "a schema change", kind="table")
        if second == "USER":
            return cat("account")
        return cat("other")
    if first in ("INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE"):
        return cat("data")
    if first == "LOAD":
        if second in ("DATA", "XML"):
            return cat("data")
        return cat("server")  # LOAD INDEX INTO CACHE
    if first in ("SELECT", "WITH", "VALUES", "TABLE", "DO", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "HELP"):
        if first in ("SELECT", "WITH") and _has_outfile(words):
            return cat("server", "it writes a file on the server (INTO OUTFILE / DUMPFILE)")
        return cat("query")
    if first == "ANALYZE":
        return cat("maintenance") if second in ("TABLE", "LOCAL", "NO_WRITE_TO_BINLOG") else cat("query")
    if first in ("OPTIMIZE", "REPAIR", "CHECK", "CHECKSUM"):
        return cat("maintenance")
    if first in ("PREPARE", "EXECUTE", "DEALLOCATE"):
        return cat("dynamic")
    if first == "CALL":
        return cat("call")
    if first in ("GRANT", "REVOKE"):
        return cat("account")
    if first == "SET":
        return _classify_set(tokens, words, info, flavor, version, db, cat)
    if first in ("KILL", "SHUTDOWN", "FLUSH", "RESET", "PURGE", "INSTALL", "UNINSTALL", "CHANGE", "BINLOG", "CACHE",
                 "RESTART", "CLONE", "IMPORT", "STOP"):
        return cat("server")
    if first == "START":
        return cat("transaction") if second == "TRANSACTION" else cat("server")
    if first == "BEGIN":
        return cat("compound") if second == "NOT" else cat("transaction")
    if first in ("COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "LOCK", "UNLOCK"):
        return cat("transaction")
    if first == "HANDLER":
        return cat("handler")
    if first == "XA":
        return cat("xa")
    if first in ("IF", "CASE", "WHILE", "LOOP", "REPEAT", "DECLARE", "FOR") or (
            len(tokens) > 1 and tokens[1][1] == ":" and tokens[0][0] in ("word", "ident")):
        return cat("compound")
    if first == "USE":
        name = _name_after(tokens, words, 1)
        if db is not None and name == db:
            return cat(SESSION, "selects the target database", kind="database")
        return cat("database", "names schema %s (USE)" % name, kind="database")
    return cat("other")


def _has_outfile(words) -> bool:
    for i, w in enumerate(words[:-1]):
        if w == "INTO" and words[i + 1] in ("OUTFILE", "DUMPFILE"):
            return True
    return False


def _discards_tablespace(words) -> bool:
    for i, w in enumerate(words[:-1]):
        if w in ("DISCARD", "IMPORT") and words[i + 1] == "TABLESPACE":
            return True
    return False


def _name_after(tokens, words, i):
    if i < len(tokens) and words[i:i + 3] == ["IF", "NOT", "EXISTS"]:
        i += 3
    elif i < len(tokens) and words[i:i + 2] == ["IF", "EXISTS"]:
        i += 2
    if i < len(tokens) and tokens[i][0] in ("word", "ident"):
        return unquote(tokens[i][0], tokens[i][1])
    return None


def _account_part(token):
    kind, text = token[0], token[1]
    if kind == "string":
        return text[1:-1].replace(text[0] * 2, text[0])
    return unquote(kind, text)


def _read_definer(tokens, words, i):
    """DEFINER = user: (`user@host` or `CURRENT_USER`, index after it)."""
    if i < len(tokens) and tokens[i][1] == "=":
        i += 1
    if i >= len(tokens):
        return None, i
    if words[i] == "CURRENT_USER":
        i += 1
        if i + 1 < len(tokens) and tokens[i][1] == "(" and tokens[i + 1][1] == ")":
            i += 2
        return "CURRENT_USER", i
    user = _account_part(tokens[i])
    i += 1
    if i < len(tokens) and tokens[i][0] == "var":  # root@localhost lexes as a word and a variable
        return "%s@%s" % (user, tokens[i][1][1:]), i + 1
    if i + 1 < len(tokens) and tokens[i][1] == "@":
        return "%s@%s" % (user, _account_part(tokens[i + 1])), i + 2
    return user, i  # a role


def _assignments(tokens):
    """The comma-separated assignments of a SET statement (token lists, parentheses respected)."""
    parts, current, depth = [], [], 0
    for tok in tokens[1:]:
        if tok[1] == "(":
            depth += 1
        elif tok[1] == ")":
            depth -= 1
        if tok[1] == "," and depth == 0:
            parts.append(current)
            current = []
            continue
        current.append(tok)
    if current:
        parts.append(current)
    return parts


def _classify_set(tokens, words, info, flavor, version, db, cat):
    second = words[1] if len(words) > 1 else None
    if second in ("PASSWORD", "ROLE", "DEFAULT") and (second != "DEFAULT" or (len(words) > 2 and words[2] == "ROLE")):
        return cat("account")
    if second == "TRANSACTION":
        return cat("transaction")
    if second == "STATEMENT":
        # SET STATEMENT var = value [, ...] FOR statement: the settings must be session settings, and the inner
        # statement decides the category.
        for j, w in enumerate(words):
            if w == "FOR" and j + 1 < len(tokens):
                settings = [("word", "SET", 0)] + list(tokens[2:j])
                verdict = _classify_set(settings, _words(settings), dict(info), flavor, version, db,
                                        _verdict(dict(info)))
                if verdict["category"] != SESSION:
                    return cat(verdict["category"], verdict["reason"])
                found = _classify(info["text"][tokens[j + 1][2]:], flavor, version, db)
                info.update(found, set_statement=True)
                return info
        return cat("other")
    for assignment in _assignments(tokens):
        aw = _words(assignment)
        if not assignment:
            continue
        head = aw[0]
        if head in ("GLOBAL", "PERSIST", "PERSIST_ONLY") or (assignment[0][0] == "var" and
                                                             assignment[0][1].lower().startswith(
                                                                 ("@@global.", "@@persist"))):
            return cat("server")
        if head in ("NAMES", "CHARSET") or (head == "CHARACTER" and len(aw) > 1 and aw[1] == "SET"):
            continue
        rest = assignment
        if head in ("SESSION", "LOCAL"):
            rest = assignment[1:]
        if not rest:
            return cat("other")
        target_kind, target = rest[0][0], rest[0][1]
        if target_kind == "var" and target.startswith("@@"):
            name = target[2:].lower()
            for scope in ("session.", "local."):
                if name.startswith(scope):
                    name = name[len(scope):]
        elif target_kind == "var":
            name = None  # a user variable
        elif target_kind in ("word", "ident"):
            name = unquote(target_kind, target).lower()
        else:
            return cat("other")
        value = rest[1:]
        if value and value[0][1] in ("=", ":"):
            value = value[1:] if value[0][1] == "=" else value[2:]
        if name is not None and name not in SESSION_VARIABLES:
            return cat("server", "it sets %s, which is not a setting the schema phase allows" % name)
        if any(t[1] == "(" for t in value) or any(_words([t])[0] in ("SELECT",) for t in value):
            return cat("query", "it evaluates an expression (a stored function it calls may change data)")
    return cat(SESSION, "a session setting")


def _verdict(info):
    def cat(category, reason=None, **extra):
        info.update(category=category, reason=reason or _REASONS.get(category, ""), **extra)
        return info
    return cat


# ---------------------------------------------------------------------------------------------------------------
# DEFINER clauses
# ---------------------------------------------------------------------------------------------------------------

_DEFINER_KINDS = ("VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT")


def _quote_account(user: str, host: str) -> str:
    return "`%s`@`%s`" % (user.replace("`", "``"), host.replace("`", "``"))


def set_definer(sql: str, user: str, host: str, insert: bool = True) -> str:
    """`sql` (a CREATE or ALTER of a view, trigger, routine or event) with DEFINER = `user`@`host`.

    An existing DEFINER clause is replaced; without one, it is inserted before SQL SECURITY or the object word
    when `insert` (ALTER VIEW without a DEFINER keeps the view's definer, so it is not given one)."""
    tokens = effective_tokens(sql)
    words = _words(tokens)
    account = _quote_account(user, host)
    for i, w in enumerate(words):
        if w in _DEFINER_KINDS:
            break
        if w == "DEFINER":
            _definer, end = _read_definer(tokens, words, i + 1)
            start = tokens[i][2]
            stop = tokens[end - 1][2] + len(tokens[end - 1][1])
            return sql[:start] + "DEFINER=" + account + sql[stop:]
    if not insert:
        return sql
    for i, w in enumerate(words):
        if w == "SQL" and i + 1 < len(words) and words[i + 1] == "SECURITY" or w in _DEFINER_KINDS:
            at = tokens[i][2]
            return sql[:at] + "DEFINER=" + account + " " + sql[at:]
    return sql


_ACCOUNT_RE = re.compile(r"^(.*)@([^@]*)$")


def split_account(definer: str):
    """`user@host` -> (user, host); a definer without a host part (a role) -> (name, '')."""
    match = _ACCOUNT_RE.match(definer or "")
    return (match.group(1), match.group(2)) if match else (definer, "")
