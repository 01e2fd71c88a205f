"""Controller half of release_record: write the release record in the worker process, without a module process.

The record lives on the controller and every task that writes it is delegated to localhost, so starting a Python
module process for each of the two dozen writes of a release is pure overhead (about 0.25 s of CPU each: with the
artifacts written the same way, the controller's CPU per database went from 22 to 13 s; see `docs/benchmarks.md`,
fleet). This plugin validates
the arguments against the module's own spec and calls the module's `update()` directly. When the task does not
run on the controller itself (delegated elsewhere, or with become), it runs the module the usual way.
"""

from __future__ import annotations

import importlib.util

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import module_loader

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

    def _on_controller(self) -> bool:
        return getattr(self._connection, "transport", None) == "local" and not self._play_context.become

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self._on_controller():
            result.update(self._execute_module(module_name="release_record", task_vars=task_vars))
            return result
        module = record_module()
        _validation, args = self.validate_argument_spec(argument_spec=module.ARGUMENT_SPEC,
                                                        required_if=module.REQUIRED_IF)
        try:
            result.update(module.update(args, bool(self._task.check_mode)))
        except (ValueError, OSError) as exc:
            result.update(failed=True, msg=str(exc))
        return result
