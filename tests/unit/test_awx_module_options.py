"""The AWX objects as code call the awx.awx modules with options those modules have.

No AWX server runs in the tests, so a misspelt option (or a value outside an option's choices) of a task in awx/*.yml
would only show when a person runs it against a real controller. This reads each module's argument_spec from the
installed awx.awx collection (the version the pinned `ansible` package bundles) and checks every awx.awx task
against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ansible_collections.awx.awx as awx_collection
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "awx"
COLLECTION = Path(awx_collection.__path__[0])


class _Loader(yaml.SafeLoader):
    """Reads the playbooks' `!unsafe` strings (the AWX messages) as plain strings."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _spec_of(call):
    """{option: choices or None} with the aliases of a `dict(name=dict(...), ...)` call."""
    options = {}
    for keyword in call.keywords:
        choices, aliases = None, []
        if isinstance(keyword.value, ast.Call):
            for inner in keyword.value.keywords:
                if inner.arg == "choices" and isinstance(inner.value, (ast.List, ast.Tuple)):
                    choices = [ast.literal_eval(e) for e in inner.value.elts]
                if inner.arg == "aliases" and isinstance(inner.value, (ast.List, ast.Tuple)):
                    aliases = [ast.literal_eval(e) for e in inner.value.elts]
        for name in [keyword.arg, *aliases]:
            options[name] = choices
    return options


def module_options(name):
    """The options of awx.awx.<name>: its argument_spec and the connection options every one of them takes."""
    options = {}
    for path, target in ((COLLECTION / "plugins/module_utils/controller_api.py", "AUTH_ARGSPEC"),
                         (COLLECTION / "plugins/modules" / (name + ".py"), "argument_spec")):
        tree = ast.parse(path.read_text())
        calls = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == target for t in node.targets)
                 and isinstance(node.value, ast.Call)]
        assert calls, "%s: no %s found" % (path, target)
        options.update(_spec_of(calls[0]))
    return options


def awx_tasks():
    """(file, task name, module, args) of every awx.awx task in awx/*.yml, blocks included."""
    found = []

    def walk(tasks, path):
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key), path)
            for key, args in task.items():
                if key.startswith("awx.awx."):
                    found.append((path.name, task.get("name", "?"), key[len("awx.awx."):], args))

    for path in sorted(AWX.glob("*.yml")):
        data = yaml.load(path.read_text(), Loader=_Loader)
        if isinstance(data, list):
            for play in data:
                if isinstance(play, dict):
                    for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                        walk(play.get(key), path)
    return found


TASKS = awx_tasks()


def test_the_awx_playbooks_have_awx_tasks_to_check():
    modules = {module for _file, _name, module, _args in TASKS}
    assert {"schedule", "notification_template", "job_template", "workflow_job_template_node"} <= modules


@pytest.mark.parametrize("file,name,module,args", TASKS, ids=["%s: %s" % (t[0], t[1]) for t in TASKS])
def test_every_awx_task_uses_options_its_module_has(file, name, module, args):
    options = module_options(module)
    unknown = sorted(set(args) - set(options))
    assert not unknown, "%s, task %r: awx.awx.%s has no option %s" % (file, name, module, ", ".join(unknown))
    for option, value in args.items():
        choices = options[option]
        if choices and isinstance(value, str) and "{{" not in value:
            assert value in choices, "%s, task %r: %s=%r, not one of %s" % (file, name, option, value, choices)


def test_the_check_catches_a_misspelt_option():
    options = module_options("schedule")
    assert "rrule" in options and "unified_job_template" in options
    assert "rule" not in options and "until" not in options
    assert options["state"] == ["present", "absent", "exists"]
