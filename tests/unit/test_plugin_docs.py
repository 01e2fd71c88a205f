"""Every module's, filter's, lookup's and callback's DOCUMENTATION, EXAMPLES and RETURN parse as YAML
(what ansible-doc needs)."""

from __future__ import annotations

import ast

import pytest
import yaml
from conftest import ROOT

FILES = sorted(p for d in ("library", "filter_plugins", "lookup_plugins", "callback_plugins")
               for p in (ROOT / d).glob("*.py"))


def doc_strings(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            yield node.targets[0].id, ast.literal_eval(node.value)


@pytest.mark.parametrize("path", FILES, ids=lambda p: "%s/%s" % (p.parent.name, p.name))
def test_the_documentation_blocks_are_yaml(path):
    found = dict(doc_strings(path))
    assert "DOCUMENTATION" in found, path
    for text in found.values():
        yaml.safe_load(text)  # raises on a ': ' in a plain scalar and the like
