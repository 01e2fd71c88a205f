"""Every module of library/ has its action plugin, so that it runs in the worker when its task runs on the
controller (plugins/plugin_utils/direct.py of the dbrelease.core collection): a module without one costs a module
process, about 0.4 controller CPU-seconds per task, and nothing says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "library").glob("*.py") if not p.name.startswith("_"))


def test_there_are_modules():
    assert len(MODULES) > 20


@pytest.mark.parametrize("module", MODULES)
def test_each_module_has_an_action_plugin_that_runs_it_directly_or_does_its_work_itself(module):
    plugin = ROOT / "action_plugins" / ("%s.py" % module)
    assert plugin.is_file(), "library/%s.py has no action_plugins/%s.py (see plugin_utils/direct.py)" % (module, module)
    text = plugin.read_text()
    # JobAction (plugin_utils/job.py: a module run as a detached job) builds on DirectModuleAction.
    direct = "DirectModuleAction" in text or re.search(r"class ActionModule\(JobAction\)", text)
    # An action plugin that does the module's work in the worker itself (the record, the phase marks, the
    # notifications) never starts its own module process.
    itself = re.search(r"class ActionModule\(ActionBase\)", text) and not re.search(
        r"_execute_module\([^)]*%s\b" % re.escape(module), text) and "self._task.action" not in text
    assert direct or itself, "action_plugins/%s.py neither builds on DirectModuleAction nor does the work itself" % (
        module)
