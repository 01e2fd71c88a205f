"""Roles do not reach into each other (issue 12): a role's expressions read only its own `<role>_*` inputs and
`__<role>_*` internals, the documented `release_*` names and the release record, never another role's variables."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# Keys whose values are bare Jinja expressions.
CONDITIONS = {"when", "that", "failed_when", "changed_when", "until", "loop"}
EXPRESSION = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")


def expressions(node, key=None):
    """Every Jinja expression in a YAML document: inside {{ }} / {% %}, and the values of the condition keys."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from expressions(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from expressions(v, key)
    elif isinstance(node, str):
        found = [a or b for a, b in EXPRESSION.findall(node)]
        if found:
            yield from found
        elif key in CONDITIONS:
            yield node


def foreign_names(role, text):
    """Pure: the names of other roles' variables an expression reads (string literals and attributes left out)."""
    code = LITERAL.sub("''", text)
    others = "|".join(r for r in ROLES if r != role)
    return sorted({m.group(0) for m in re.finditer(r"(?<![\w.])(?:__)?(?:%s)_\w+" % others, code)})


# The documented exceptions: inputs of a later phase that preflight checks as the inventory gives them, so that a
# release that would be refused later is refused before anything changes (roles/preflight/README.md).
CHECKED_AHEAD = {"preflight": {"backup_vault_hosts", "backup_vault_required", "backup_restore_server"}}


def role_files(role):
    base = ROOT / "roles" / role
    return sorted(list(base.glob("tasks/*.yml")) + list(base.glob("vars/*.yml")) + list(base.glob("defaults/*.yml")))


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_no_other_roles_variables(role):
    found = {}
    for path in role_files(role):
        for document in yaml.safe_load_all(path.read_text()):
            for expression in expressions(document):
                names = [n for n in foreign_names(role, expression) if n not in CHECKED_AHEAD.get(role, ())]
                if names:
                    found.setdefault(str(path.relative_to(ROOT)), []).extend(names)
    assert found == {}, found


@pytest.mark.parametrize("role, text, expected", [
    ("schema", "backup_dir | default('')", ["backup_dir"]),
    ("schema", "__lock_result.token", ["__lock_result"]),
    ("schema", "schema_plan_file is file", []),
    ("schema", "lookup('release_record').phases.backup.path", []),          # the record, not a variable
    ("schema", "'backup_dir is not set' if x else ''", []),                 # a string literal
    ("backup", "hostvars[item].backup_vault_dir | default(backup_vault_dir)", []),
    ("verify", "release_version ~ verify_label", []),
])
def test_foreign_names_are_found_only_where_a_variable_is_read(role, text, expected):
    assert foreign_names(role, text) == expected
