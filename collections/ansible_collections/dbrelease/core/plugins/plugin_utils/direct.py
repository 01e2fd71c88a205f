"""Direct execution of the project's modules: in Ansible's worker process when the task runs on the controller.

A module task normally costs a module process: Ansible builds the AnsiballZ payload, starts a Python, which imports
`ansible.module_utils.basic` and the rest from the zip, compiling them again each time (with ansible-core 2.19
about 0.4 CPU-seconds before the module does anything, see docs/benchmarks.md). When the task runs on the controller
itself, through the local connection and with the controller's own Python (the demo, the tests, and every task
delegated to localhost), the worker process that runs the task can run the module's `main()` instead: the same code,
the same arguments (with Ansible's internal ones), the same result, through the module's own serialisation profile.
This is ansible.netcommon's "direct execution" of network modules, for the project's modules.

Everything else runs the module the usual way: another host or connection, another interpreter, `become`, `async`,
an `environment:` keyword, or DBRELEASE_DIRECT=0 in the controller's environment (to compare or to rule it out).
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

display = Display()

_LOADED: dict[str, object] = {}
# The serialisation profile of modules without metadata (all of the project's), as module_common builds them.
PROFILE = "legacy"
# The module_utils directories of ansible.cfg (module_utils = ./module_utils), importable in the worker as a module
# process would find them in its payload.
for _path in C.DEFAULT_MODULE_UTILS_PATH or []:
    if os.path.isdir(_path) and _path not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(_path)


def _same_python(interpreter) -> bool:
    """The host's interpreter is this very Python: the same executable in the same directory. A venv's python and
    the Python it links to are not the same (their site-packages differ); a symlinked venv directory is."""
    if not interpreter:
        return False
    here, there = sys.executable, str(interpreter)
    return (os.path.realpath(there) == os.path.realpath(here)
            and os.path.realpath(os.path.dirname(there)) == os.path.realpath(os.path.dirname(here)))


def _load(path: str):
    """The module file as a Python module (once per worker process); its `main()` is not run by importing it."""
    if path not in _LOADED:
        spec = importlib.util.spec_from_file_location("dbrelease_direct_%s" % os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[path] = module
    return _LOADED[path]


class DirectModuleAction(ActionBase):
    """The action plugin of a module of library/ that may run directly (see the module docstring)."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self.run_module(task_vars=task_vars))
        return result

    def run_module(self, module_args=None, task_vars=None):
        """`_execute_module` for this task's module: directly when it runs on the controller, else as usual."""
        task_vars = task_vars or {}
        module_args = dict(self._task.args if module_args is None else module_args)
        if not self._direct(task_vars):
            return self._execute_module(module_name=self._task.action, module_args=module_args, task_vars=task_vars)
        return self._run_direct(module_args, task_vars)

    def _direct(self, task_vars) -> bool:
        if os.environ.get("DBRELEASE_DIRECT", "1") == "0":
            return False
        if getattr(self._connection, "transport", None) not in ("local", "ansible.builtin.local"):
            return False
        if self._play_context.become or self._task.async_val or any(self._task.environment or []):
            return False
        delegated = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to) or {}
        interpreter = delegated.get("ansible_python_interpreter") if self._task.delegate_to else None
        interpreter = interpreter or task_vars.get("ansible_python_interpreter")
        return _same_python(self._templar.template(interpreter))

    def _run_direct(self, module_args, task_vars):
        from ansible.module_utils import basic
        from ansible.module_utils.common import warnings as module_warnings
        from ansible.module_utils.common.json import Direction, get_module_encoder

        name = self._task.action
        path = self._shared_loader_obj.module_loader.find_plugin(name)
        module = _load(path)
        args = copy.deepcopy(module_args)
        tmpdir = tempfile.mkdtemp(prefix="dbrelease-direct-")
        self._update_module_args(name, args, task_vars)
        args["_ansible_tmpdir"] = tmpdir
        recorded: dict = {}
        base = module.AnsibleModule

        class DirectModule(base):
            def _record_module_result(self, o):
                recorded["result"] = o

        # The arguments as a module process receives them: through the profile's encoder (plain JSON values).
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args},
                                         cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)).encode()
        basic._ANSIBLE_PROFILE = PROFILE
        # Warnings and deprecations are process-wide in module_utils: an earlier call's must not leak into this one.
        module_warnings._global_warnings.clear()
        module_warnings._global_deprecations.clear()
        module.AnsibleModule = DirectModule
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
        try:
            module.main()
        except SystemExit:
            pass
        finally:
            captured = sys.stdout.getvalue(), sys.stderr.getvalue()
            sys.stdout, sys.stderr = stdout, stderr
            module.AnsibleModule = base
            basic._ANSIBLE_ARGS = None
            shutil.rmtree(tmpdir, ignore_errors=True)
        if "result" not in recorded:
            return {"failed": True, "msg": "module %s ended without a result" % name, "stdout": captured[0],
                    "stderr": captured[1]}
        # Through the module's serialisation profile, as a result from a module process would come.
        encoded = get_module_encoder(PROFILE, Direction.MODULE_TO_CONTROLLER)
        data = self._parse_returned_data({"stdout": json.dumps(recorded["result"], cls=encoded)}, PROFILE)
        remove_internal_keys(data)
        for key in ("stdout", "stderr"):
            if key in data and key + "_lines" not in data:
                data[key + "_lines"] = (data.get(key) or "").splitlines()
        display.vvv("ran module %s in the worker process (direct execution)" % name)
        return data
