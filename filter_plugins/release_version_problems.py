"""Filter plugin: release_version_problems, why a release version cannot name a git tag, a directory and backups."""

from __future__ import annotations

DOCUMENTATION = r"""
name: release_version_problems
short_description: Why a release version is unusable (empty list when it is fine)
description:
  - The release version names the git tag (C(refs/tags/<version>)), the release's directory under
    C(release_artifacts_dir) and the backups' label, so it must be all three at once.
  - Git's rules (C(git check-ref-format)) - no C(..), no C(@{), no C(.lock) or C(.) at the end, no control
    characters, spaces, C(~ ^ : ? * [ \\), no C(/) at either end and no C(//) - are checked together with the
    stricter rules of a file name and a backup label - ASCII letters, digits, C(.), C(_) and C(-) only, starting with a
    letter or a digit (so never C(..) or C(.hidden), never an option C(-x)), at most 64 characters (backup labels
    are cut there, so two longer versions could share one).
  - Each problem is a sentence naming what was found; the version itself is quoted with C(repr()), so a newline or
    a control character in it shows as an escape, never as a line break in the message.
positional: _input
options:
  _input:
    description: The release version.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Check the release version once, before anything is written
  ansible.builtin.assert:
    that:
      - release_version | release_version_problems | length == 0
    fail_msg: "release_version: {{ release_version | release_version_problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: The problems found, one sentence each; empty when the version is usable.
  type: list
  elements: str
"""

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


def release_version_problems(value):
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


class FilterModule:
    def filters(self):
        return {"release_version_problems": release_version_problems}
