"""The rules of a release version: a git tag, a directory name and a backup label at once. Pure; stdlib only.

Used by the release_version_problems filter (preflight's validation, rollback.yml) and by `record.record_dir()`,
so that no run writes a record under a version these rules refuse, not even its failure.
"""

from __future__ import annotations

import re

MAX_LENGTH = 64
_ALLOWED_RE = re.compile(r"[A-Za-z0-9._-]")
# git check-ref-format: the characters it refuses anywhere in a ref name (besides control characters and DEL).
_GIT_FORBIDDEN = " ~^:?*[\\"


def _show(char: str) -> str:
    if char == "\n":
        return "a newline"
    if char == " ":
        return "a space"
    if ord(char) < 32 or ord(char) == 127:
        return "the control character %r" % char
    return "%r" % char


def problems(value) -> list:
    """Why `value` cannot be a release version, one sentence each; empty when it can."""
    if value is None or (isinstance(value, str) and not value):
        return ["it is empty: set it, for example -e release_version=v1.2.0-canonical-schema"]
    if not isinstance(value, str):
        return ["it must be text, got %s %r" % (type(value).__name__, value)]
    problems = []
    shown = repr(value)
    if len(value) > MAX_LENGTH:
        problems.append("%s is %d characters long; at most %d (backup labels keep only that many)" % (
            shown, len(value), MAX_LENGTH))
    bad = []
    for char in value:
        if not _ALLOWED_RE.match(char) and char not in bad:
            bad.append(char)
    if bad:
        git = [c for c in bad if c in _GIT_FORBIDDEN or ord(c) < 32 or ord(c) == 127]
        problems.append("%s contains %s; only ASCII letters, digits, '.', '_' and '-' may be used%s" % (
            shown, ", ".join(_show(c) for c in bad),
            " (git refuses %s in a tag name)" % ", ".join(_show(c) for c in git) if git else ""))
    if not re.match(r"[A-Za-z0-9]", value[0]):
        problems.append("%s starts with %s; it must start with a letter or a digit" % (shown, _show(value[0])))
    if ".." in value:
        problems.append("%s contains '..', which git refuses in a tag name" % shown)
    if "@{" in value:
        problems.append("%s contains '@{', which git refuses in a tag name" % shown)
    if "//" in value:
        problems.append("%s contains '//', which git refuses in a tag name" % shown)
    for end in (".lock", ".", "/"):
        if value.endswith(end):
            problems.append("%s ends with '%s', which git refuses at the end of a tag name" % (shown, end))
            break
    if value == "@":
        problems.append("'@' alone is not a valid git tag name")
    return problems
