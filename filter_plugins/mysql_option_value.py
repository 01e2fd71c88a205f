"""Filter plugin: mysql_option_value, one value read from the text of a MySQL/MariaDB client option file."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mysql_option_value
short_description: One value from the text of a MySQL/MariaDB option file (e.g. the password AWX wrote)
description:
  - Reads the option files that C(module_utils/dbrelease/db.py) and the AWX credential type write, and that the
    C(mariadb)/C(mysql) clients read with C(--defaults-extra-file).
  - Values may be bare or quoted. Inside double quotes C(\\) is a backslash and C(\") a double quote; inside single
    quotes the same with C(\'). Lines starting with C(#) or C(;) are comments. C(-) and C(_) in keys are the same.
  - When the key appears twice in the group, the last one wins, as with the clients.
  - Raises an error naming the key and the group (never a value) when the key is absent.
positional: key, group
options:
  _input:
    description: The option file's text.
    type: str
    required: true
  key:
    description: The option to read.
    type: str
    required: true
  group:
    description: The group to read it from.
    type: str
    default: client
  default:
    description: Returned when the key is absent, instead of an error.
    type: raw
"""

EXAMPLES = r"""
- name: Read the admin password from the option file AWX wrote
  ansible.builtin.set_fact:
    release_db_admin_password: "{{ lookup('ansible.builtin.file', path) | mysql_option_value('password') }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The option's value, unquoted and unescaped.
  type: str
"""

from ansible.errors import AnsibleFilterError

_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", "0": "\0"}


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] in "\"'" and raw[-1] == raw[0]:
        body, out, i = raw[1:-1], [], 0
        while i < len(body):
            char = body[i]
            if char == "\\" and i + 1 < len(body):
                out.append(_ESCAPES.get(body[i + 1], "\\" + body[i + 1]))
                i += 2
                continue
            out.append(char)
            i += 1
        return "".join(out)
    # A bare value ends at an unquoted comment, as the clients read it.
    for marker in (" #", "\t#"):
        if marker in raw:
            raw = raw.split(marker, 1)[0]
    return raw.strip()


def option_values(text: str, group: str = "client") -> dict:
    """Every `key=value` of `group` (keys normalised to `_`), the last occurrence winning."""
    values, current = {}, None
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            continue
        if current != group.lower():
            continue
        key, sep, value = line.partition("=")
        key = key.strip().replace("-", "_").lower()
        values[key] = _unquote(value) if sep else ""
    return values


_REQUIRED = object()


def mysql_option_value(text, key, group="client", default=_REQUIRED):
    if not isinstance(text, str):
        raise AnsibleFilterError("mysql_option_value expects the option file's text, got %s" % type(text).__name__)
    values = option_values(text, group)
    name = str(key).replace("-", "_").lower()
    if name not in values:
        if default is not _REQUIRED:
            return default
        raise AnsibleFilterError("no %s in its [%s] group" % (key, group))
    return values[name]


class FilterModule:
    def filters(self):
        return {"mysql_option_value": mysql_option_value}
