"""Split SQL script text into statements, as the `mysql`/`mariadb` client does. Stdlib only.

Handles single, double and backtick quotes (with backslash and doubled-quote escapes), `-- ` / `#` / `/* */`
comments (dropped, except executable `/*! ... */` and `/*M! ... */` comments, which the server reads), and the
client's `DELIMITER` command, so stored procedures and triggers written for the client split the same way.
Every statement carries its file, its number in the file (1-based) and the line where it starts.
"""

from __future__ import annotations

import re


class SplitError(ValueError):
    """The script cannot be split (an unterminated quote or comment); the message names file and line."""


_DELIMITER_RE = re.compile(r"^\s*delimiter\s+(\S+)\s*$", re.IGNORECASE)


def _statement(file, index, line, text):
    return {"file": file, "index": index, "line": line, "sql": text.strip()}


def split_sql(text: str, file: str = "<string>"):
    """A list of `{"file", "index", "line", "sql"}` dicts, one per statement, in order.

    `sql` has no trailing delimiter and no (non-executable) comments; empty statements are skipped. A UTF-8 byte
    order mark at the start (editors on Windows write one) is not part of the first statement.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    statements = []
    delimiter = ";"
    buf = []            # characters of the current statement
    start_line = None   # line of the first significant character of the current statement
    line = 1
    i = 0
    n = len(text)
    at_line_start = True

    def flush():
        nonlocal buf, start_line
        sql = "".join(buf).strip()
        if sql:
            statements.append(_statement(file, len(statements) + 1, start_line, sql))
        buf = []
        start_line = None

    while i < n:
        # The client's DELIMITER command: a line of its own, outside any statement.
        if at_line_start and not "".join(buf).strip():
            end = text.find("\n", i)
            end = n if end == -1 else end
            match = _DELIMITER_RE.match(text[i:end])
            if match:
                delimiter = match.group(1)
                buf = []
                start_line = None
                i = end
                continue
        ch = text[i]
        at_line_start = False
        if ch == "\n":
            line += 1
            at_line_start = True
            buf.append(ch)
            i += 1
            continue
        # Comments.
        if ch == "#" or (text.startswith("--", i) and (i + 2 >= n or text[i + 2] in " \t\r\n")):
            end = text.find("\n", i)
            i = n if end == -1 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                raise SplitError("%s line %d: unterminated /* comment" % (file, line))
            chunk = text[i:end + 2]
            if chunk.startswith("/*!") or chunk.startswith("/*M!"):
                if start_line is None:
                    start_line = line
                buf.append(chunk)
            else:
                buf.append(" ")
            line += chunk.count("\n")
            i = end + 2
            continue
        # Quoted strings and identifiers.
        if ch in ("'", '"', "`"):
            if start_line is None:
                start_line = line
            j = i + 1
            opened = line
            while True:
                if j >= n:
                    raise SplitError("%s line %d: unterminated %s quote" % (file, opened, ch))
                c = text[j]
                if c == "\\" and ch != "`":
                    if j + 1 < n and text[j + 1] == "\n":
                        line += 1
                    j += 2
                    continue
                if c == "\n":
                    line += 1
                if c == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            buf.append(text[i:j + 1])
            i = j + 1
            continue
        # The delimiter.
        if text.startswith(delimiter, i):
            flush()
            i += len(delimiter)
            continue
        if start_line is None and not ch.isspace():
            start_line = line
        buf.append(ch)
        i += 1
    flush()
    return statements


def summary(statement, width=80) -> str:
    """`file #n (line L): first words of the statement...` for messages."""
    text = " ".join(statement["sql"].split())
    if len(text) > width:
        text = text[:width - 3] + "..."
    return "%s statement #%d (line %d): %s" % (statement["file"], statement["index"], statement["line"], text)
