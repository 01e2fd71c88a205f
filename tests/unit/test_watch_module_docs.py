"""The documentation of the notification, log and metrics modules and filters says what their code takes."""

from __future__ import annotations

import importlib

import pytest
import yaml


class _Captured(Exception):
    pass


def argument_spec(name):
    module = importlib.import_module(name)
    captured = {}

    class Capture:
        def __init__(self, argument_spec, **kwargs):
            captured.update(argument_spec)
            raise _Captured

    original = module.AnsibleModule
    module.AnsibleModule = Capture
    try:
        module.main()
    except _Captured:
        pass
    finally:
        module.AnsibleModule = original
    return captured


def doc(module):
    parsed = yaml.safe_load(module.DOCUMENTATION)
    _descriptions_are_text(parsed)
    return parsed


def _descriptions_are_text(node, where="DOCUMENTATION"):
    """A `description` (or note) that YAML read as a mapping (an unquoted ': ') breaks ansible-doc."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "notes", "short_description"):
                items = value if isinstance(value, list) else [value]
                assert all(isinstance(i, str) for i in items), "%s.%s: %r" % (where, key, items)
            else:
                _descriptions_are_text(value, "%s.%s" % (where, key))
    elif isinstance(node, list):
        for item in node:
            _descriptions_are_text(item, where)


def fragment_options(parsed):
    """The options the module's documentation fragments add (the connection, documented once)."""
    from conftest import ROOT

    options = {}
    for fragment in parsed.get("extends_documentation_fragment") or []:
        assert fragment == "dbrelease.core.connection", fragment
        text = (ROOT / "collections/ansible_collections/dbrelease/core/plugins/doc_fragments/connection.py").read_text()
        options.update(yaml.safe_load(text.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])["options"])
    return options


@pytest.mark.parametrize("name", ["release_notify", "log_scan", "metrics_textfile"])
def test_module_options_are_the_argument_spec(name):
    spec = argument_spec(name)
    parsed = doc(importlib.import_module(name))
    options = dict(fragment_options(parsed), **parsed["options"])
    assert set(options) == set(spec), set(options) ^ set(spec)
    for key, entry in spec.items():
        assert options[key].get("type", "str") == entry.get("type", "str"), key
        if "default" in entry and entry["default"] not in (None,):
            assert options[key].get("default") == entry["default"], key
        assert options[key].get("description"), key
    for section in ("EXAMPLES", "RETURN"):
        assert yaml.safe_load(getattr(importlib.import_module(name), section)), section


@pytest.mark.parametrize("name", ["log_health", "watch_window", "watch_rrule", "watch_change"])
def test_filters_have_documentation_and_map_only_their_name(name):
    module = importlib.import_module(name)
    assert doc(module)["name"] == name
    assert yaml.safe_load(module.RETURN) and module.EXAMPLES.strip()
    assert list(module.FilterModule().filters()) == [name]
