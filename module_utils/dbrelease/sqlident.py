"""Identifier-aware reading of MySQL/MariaDB SQL text: tokens, qualified names and schema qualifiers. Stdlib only.

A schema's name is never replaced by text substitution: a table or a column may be named like its database
(`shop`.`shop`.`shop` is schema, table and column), so only the parts of qualified names that are real schema
qualifiers are rewritten. A part is a schema qualifier when it is

- the first of three parts (`db`.`t`.`col`);
- the first of two parts where an object is named: after FROM, JOIN, INTO, UPDATE, TABLE(S), REFERENCES, VIEW,
  PROCEDURE, FUNCTION, TRIGGER, EVENT, SEQUENCE, CALL, TRUNCATE, TO and the like, in the comma lists that follow
  them (FROM a, b; DROP TABLE a, b; RENAME TABLE a TO b, c TO d), and in NEXTVAL(db.seq);
- the first of two parts followed by `(`: a stored function call (`db.f(1)`) or a table with a column list.

Everywhere else a two-part name is `table.column` (or `alias.column`) and is left alone. Text inside string
literals and ordinary comments is never touched; executable comments (`/*!50001 ... */`, `/*M!100100 ... */`) are
read as the server reads them.
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.db import quote_ident

# Token kinds: ws, comment, xopen (executable comment opener), xclose, string, ident (backtick), word, number,
# var (@x, @@x), punct.
_WORD_CHARS = r"A-Za-z0-9_$\u0080-\uffff"
_WORD_RE = re.compile(r"[%s]+" % _WORD_CHARS)
_NUMBER_RE = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![%s])" % _WORD_CHARS)
_VAR_RE = re.compile(r"@@?[%s.]+" % _WORD_CHARS)
_XOPEN_RE = re.compile(r"/\*(?:!|M!)\d*")


class LexError(ValueError):
    """Unterminated quote or comment."""


def lex(sql: str):
    """Every token of `sql` as (kind, text); concatenating the texts gives `sql` back."""
    out = []
    i, n = 0, len(sql)
    in_exec = False
    after_dot = False  # the previous significant token was a `.` after a name part: the next one is a name
    while i < n:
        ch = sql[i]
        if ch.isspace():
            j = i + 1
            while j < n and sql[j].isspace():
                j += 1
            out.append(("ws", sql[i:j]))
            i = j
            continue
        if ch == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] in " \t\r\n")):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            out.append(("comment", sql[i:j]))
            i = j
            continue
        if sql.startswith("/*", i):
            match = _XOPEN_RE.match(sql, i)
            if match and not in_exec:
                out.append(("xopen", match.group(0)))
                in_exec = True
                i = match.end()
                continue
            j = sql.find("*/", i + 2)
            if j == -1:
                raise LexError("unterminated /* comment")
            out.append(("comment", sql[i:j + 2]))
            i = j + 2
            continue
        if in_exec and sql.startswith("*/", i):
            out.append(("xclose", "*/"))
            in_exec = False
            i += 2
            continue
        if ch in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise LexError("unterminated %s quote" % ch)
                c = sql[j]
                if c == "\\" and ch != "`":
                    j += 2
                    continue
                if c == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(("ident" if ch == "`" else "string", sql[i:j + 1]))
            i = j + 1
            after_dot = False
            continue
        if ch == "@":
            match = _VAR_RE.match(sql, i)
            if match and len(match.group(0)) > (2 if sql.startswith("@@", i) else 1):
                out.append(("var", match.group(0)))
                i = match.end()
                after_dot = False
                continue
        if not after_dot:
            match = _NUMBER_RE.match(sql, i)
            if match and (ch.isdigit() or (ch == "." and not _name_part_before(out))):
                out.append(("number", match.group(0)))
                i = match.end()
                continue
        match = _WORD_RE.match(sql, i)
        if match:
            out.append(("word", match.group(0)))
            i = match.end()
            after_dot = False
            continue
        out.append(("punct", ch))
        after_dot = ch == "." and _name_part_before(out[:-1])
        i += 1
    return out


def _name_part_before(tokens) -> bool:
    for kind, _text in reversed(tokens):
        if kind in ("ws", "comment", "xopen", "xclose"):
            continue
        return kind in ("word", "ident")
    return False


def unquote(kind: str, text: str) -> str:
    """The name a word or backtick token stands for."""
    if kind == "ident":
        return text[1:-1].replace("``", "`")
    return text


def quote_name(name: str) -> str:
    return quote_ident(name)


# ---------------------------------------------------------------------------------------------------------------
# Qualified names and their positions
# ---------------------------------------------------------------------------------------------------------------

# Keywords after which the next name names an object (a table, view, routine, trigger, event or sequence).
_OBJECT_SLOT = {"FROM", "JOIN", "STRAIGHT_JOIN", "INTO", "UPDATE", "TABLE", "TABLES", "REFERENCES", "VIEW",
                "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "SEQUENCE", "CALL", "TRUNCATE", "DESCRIBE", "EXPLAIN",
                "TO", "FOLLOWS", "PRECEDES", "DELETE", "HANDLER"}
# Reserved words (never a bare name) that keep an object slot open: DELETE FROM t, INSERT INTO t.
_RESERVED_SLOT = {"FROM", "INTO", "TABLE", "JOIN", "STRAIGHT_JOIN"}
# Words that may stand between such a keyword and the name.
_SLOT_FILLERS = {"IF", "NOT", "EXISTS", "IGNORE", "LOW_PRIORITY", "QUICK", "DELAYED", "HIGH_PRIORITY", "LOCAL",
                 "TEMPORARY", "ONLY", "LATERAL", "CONCURRENT", "NOWAIT"}
# After one object name of a list, these continue the list (the next name names an object again).
_JOIN_WORDS = {"JOIN", "STRAIGHT_JOIN", "INNER", "CROSS", "LEFT", "RIGHT", "OUTER", "NATURAL", "FULL"}
_TABLE_SUFFIX_WORDS = {"READ", "WRITE", "LOCAL", "LOW_PRIORITY"}
_HINT_WORDS = {"USE", "IGNORE", "FORCE"}
# Words that end a clause: a word from this set is not an alias.
_CLAUSE_WORDS = {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "EXCEPT", "INTERSECT", "WINDOW", "FOR",
                 "LOCK", "INTO", "ON", "USING", "SET", "SELECT", "VALUES", "VALUE", "PARTITION", "RETURNING",
                 "PROCEDURE", "AS", "ADD", "DROP", "MODIFY", "CHANGE", "ALTER", "RENAME", "ENGINE", "DEFAULT",
                 "CHARACTER", "CHARSET", "COLLATE", "COMMENT", "ALGORITHM", "WITH", "BEFORE", "AFTER",
                 "DO", "BEGIN", "RETURNS", "TO", "READ", "WRITE", "IDENTIFIED", "DUPLICATE", "KEY",
                 "INDEX", "FORCE", "USE", "IGNORE", "TABLE", "LIKE", "CASCADE", "RESTRICT", "WAIT", "NOWAIT",
                 "OUTER", "INNER", "LEFT", "RIGHT", "CROSS", "NATURAL", "JOIN", "STRAIGHT_JOIN", "FULL", "END"}
_SEQUENCE_FUNCS = {"NEXTVAL", "LASTVAL", "SETVAL"}
_SUBQUERY_WORDS = {"SELECT", "WITH", "VALUES", "TABLE"}


def _significant(tokens):
    return [i for i, (kind, _t) in enumerate(tokens) if kind not in ("ws", "comment", "xopen", "xclose")]


def qualified_names(tokens):
    """Every name of the token list, as dicts: `parts` [(name, token index)], `schema_at` (index into parts of the
    schema qualifier, or None), `object` (True where the name names an object rather than a column)."""
    sig = _significant(tokens)
    words = [tokens[i][1].upper() if tokens[i][0] == "word" else None for i in sig]
    kinds = [tokens[i][0] for i in sig]
    texts = [tokens[i][1] for i in sig]
    first = words[0] if words else None
    result = []
    # One state per parenthesis depth: None, "slot" (the next name names an object), "after" (just read one,
    # a list of them may go on), "alias" (read its alias).
    states = [None]
    pending_sub = []   # per depth: the state to return to after the parenthesis closes
    k = 0
    total = len(sig)
    is_index_stmt = first in ("CREATE", "DROP", "ALTER") and "INDEX" in words[:4]
    saw_select = False

    def is_name_part(j):
        return j < total and kinds[j] in ("word", "ident")

    while k < total:
        kind, text, word = kinds[k], texts[k], words[k]
        state = states[-1]
        if text == "(" and kind == "punct":
            prev = words[k - 1] if k else None
            nxt = words[k + 1] if k + 1 < total else None
            if prev in _SEQUENCE_FUNCS:
                push = "slot"
            elif state == "slot" and nxt not in _SUBQUERY_WORDS:
                push = "slot"          # FROM (a JOIN b ON ...)
            else:
                push = None
            if state in ("slot", "after", "alias") and push is None and nxt in _SUBQUERY_WORDS:
                pending_sub.append("after")  # a derived table: its alias follows
            else:
                pending_sub.append(None if state in ("slot", "after", "alias") and push is None else state)
            states.append(push)
            k += 1
            continue
        if text == ")" and kind == "punct":
            if len(states) > 1:
                states.pop()
                back = pending_sub.pop()
                states[-1] = back if back in ("after", None) else states[-1]
                if back is None and states[-1] in ("slot",):
                    states[-1] = None
            k += 1
            continue
        if text == ";" and kind == "punct":
            states = [None]
            pending_sub = []
            k += 1
            continue
        if word == "SELECT":
            saw_select = True
        if is_name_part(k):
            # Read a qualified name: part (. part)*, with `*` allowed as the last part.
            parts = [(unquote(kind, text), sig[k])]
            j = k + 1
            star = False
            while j + 1 < total and texts[j] == "." and kinds[j] == "punct":
                if is_name_part(j + 1):
                    parts.append((unquote(kinds[j + 1], texts[j + 1]), sig[j + 1]))
                    j += 2
                elif texts[j + 1] == "*":
                    star = True
                    j += 2
                    break
                else:
                    break
            nxt = texts[j] if j < total else None
            nxt_word = words[j] if j < total else None
            prev_word = words[k - 1] if k else None
            schema_at = None
            is_object = False
            if len(parts) >= 3 or (star and len(parts) == 2):
                schema_at = 0
            elif len(parts) == 2 and not star:
                followed_by_paren = nxt == "("
                slot = state == "slot"
                if prev_word == "ON":
                    slot = nxt_word in ("FOR", "TO") or followed_by_paren or is_index_stmt
                if prev_word == "LIKE":
                    slot = first == "CREATE" and not saw_select and "TABLE" in words[:6]
                if prev_word == "AS" and k >= 2 and words[k - 2] == "RENAME":
                    slot = True
                if prev_word == "USING" and first == "DELETE":
                    slot = True
                if prev_word == "FOR" and k >= 2 and words[k - 2] == "VALUE":
                    slot = True
                if slot or followed_by_paren:
                    schema_at = 0
                    is_object = True
            elif len(parts) == 1:
                is_object = state == "slot"
            result.append({"parts": parts, "schema_at": schema_at, "object": is_object, "star": star})
            if state == "slot" and len(parts) == 1 and word in _RESERVED_SLOT:
                states[-1] = "slot"  # DELETE FROM, INSERT INTO, CREATE TEMPORARY TABLE: still to come
            elif state == "slot" and not (len(parts) == 1 and word in _SLOT_FILLERS):
                states[-1] = "after"
            elif state in ("after",) and len(parts) == 1 and word not in _CLAUSE_WORDS and \
                    word not in _JOIN_WORDS and word not in _TABLE_SUFFIX_WORDS and word not in _HINT_WORDS:
                states[-1] = "alias"
            elif state in ("after", "alias"):
                _after_table_word(states, word, words, k)
            elif word in _OBJECT_SLOT or (word == "ON" and is_index_stmt) or \
                    (word == "LIKE" and first == "CREATE" and not saw_select):
                states[-1] = "slot"
            elif word == "USING" and first == "DELETE":
                states[-1] = "slot"
            elif word in _CLAUSE_WORDS and state is not None:
                states[-1] = None
            k = j
            continue
        # Punctuation and other tokens.
        if text == "," and state in ("after", "alias"):
            states[-1] = "slot"
        elif state in ("after", "alias") and kind in ("string", "number", "var", "punct"):
            if not (text == "." and kind == "punct"):
                states[-1] = None
        k += 1
    return result


def _after_table_word(states, word, words, k):
    """After an object name in a list: a join word, TO, READ/WRITE or an index hint keeps the list going."""
    if word in ("JOIN", "STRAIGHT_JOIN") or word == "TO":
        states[-1] = "slot"
    elif word in _JOIN_WORDS or word in _TABLE_SUFFIX_WORDS or word in _HINT_WORDS or word in ("INDEX", "KEY"):
        states[-1] = "after"
    elif word == "AS":
        states[-1] = "after"
    else:
        states[-1] = None if word in _CLAUSE_WORDS else states[-1]


def _same(a: str, b: str, fold: bool) -> bool:
    return a.lower() == b.lower() if fold else a == b


def schema_qualifiers(sql: str) -> set:
    """The schema names that qualify names in `sql` (outside string literals and comments)."""
    tokens = lex(sql)
    return {name["parts"][name["schema_at"]][0] for name in qualified_names(tokens) if name["schema_at"] is not None}


def object_references(sql: str) -> set:
    """(schema or None, name) of every object named where an object is named (tables, views, routines...)."""
    found = set()
    for name in qualified_names(lex(sql)):
        parts = [p[0] for p in name["parts"]]
        if name["schema_at"] is not None and len(parts) == 2:
            found.add((parts[0], parts[1]))
        elif name["object"] and len(parts) == 1:
            found.add((None, parts[0]))
    return found


def rewrite_schema(sql: str, src: str, dst, fold: bool = False) -> str:
    """`sql` with every schema qualifier naming `src` made to name `dst` (or removed when `dst` is None)."""
    if not sql or not src:
        return sql or ""
    tokens = lex(sql)
    replace = {}
    for name in qualified_names(tokens):
        if name["schema_at"] is None:
            continue
        text, index = name["parts"][name["schema_at"]]
        if _same(text, src, fold):
            replace[index] = dst
    if not replace:
        return sql
    out = []
    skip_dot = False
    for i, (kind, text) in enumerate(tokens):
        if skip_dot:
            if kind in ("ws", "comment"):
                continue
            if kind == "punct" and text == ".":
                skip_dot = False
                # drop whitespace between the dot and the next part as well
                continue
        if i in replace:
            if replace[i] is None:
                skip_dot = True
                continue
            out.append(quote_ident(replace[i]))
            continue
        if out and skip_dot is False and kind == "ws" and _dropped_before(out, tokens, i, replace):
            continue
        out.append(text)
    return "".join(out)


def _dropped_before(out, tokens, i, replace) -> bool:
    """Whitespace right after a removed qualifier's dot is dropped too (`db . t` -> `t`)."""
    j = i - 1
    while j >= 0 and tokens[j][0] in ("ws", "comment"):
        j -= 1
    if j < 0 or tokens[j] != ("punct", "."):
        return False
    k = j - 1
    while k >= 0 and tokens[k][0] in ("ws", "comment"):
        k -= 1
    return k in replace and replace[k] is None


def split_qualified(text: str):
    """`a.b`, `` `a.b`.c ``, `` `orders`.`legacy_flag` `` -> the list of name parts (dots inside backticks kept)."""
    parts = []
    for kind, tok in lex(text.strip()):
        if kind in ("word", "ident"):
            parts.append(unquote(kind, tok))
        elif kind == "number":
            parts.extend(p for p in tok.split(".") if p)
        elif kind == "punct" and tok == ".":
            continue
        elif kind != "ws":
            raise ValueError("%r is not a name (at %r)" % (text, tok))
    return parts
