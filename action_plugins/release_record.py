"""Controller half of release_record: read the record or write artifacts in the worker process, without a module.

The record lives on the controller, so starting a Python module process for each read or artifact write is pure
overhead. This plugin validates the arguments against the module's own spec and calls the module's `update()`
directly, whatever the task's host and connection: the record and the artifacts are always on the controller.
Without `path` it works on this host's release directory (the one `release_phase` writes).
"""

from __future__ import annotations

import importlib.util
import os

import ansible.module_utils
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import module_loader

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease import record  # noqa: E402

_MODULE = None


def record_module():
    """The release_record module file (library/), imported once per process: one implementation for both paths."""
    global _MODULE
    if _MODULE is None:
        path = module_loader.find_plugin("release_record")
        if not path:
            raise AnsibleActionFail("release_record: the module file was not found on the library path")
        spec = importlib.util.spec_from_file_location("dbrelease_release_record_module", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULE = module
    return _MODULE


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not self._task.args.get("path"):
            var = self._templar.template
            self._task.args["path"] = record.record_dir(
                var(task_vars.get("release_artifacts_dir")), var(task_vars.get("release_version")),
                var(task_vars.get("playbook_dir")), var(task_vars.get("inventory_hostname")))
        module = record_module()
        _validation, args = self.validate_argument_spec(argument_spec=module.ARGUMENT_SPEC,
                                                        required_if=module.REQUIRED_IF)
        try:
            result.update(module.update(args, bool(self._task.check_mode)))
        except (ValueError, OSError) as exc:
            result.update(failed=True, msg=str(exc))
        return result
