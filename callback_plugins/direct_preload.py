"""Ansible callback: imports, once in Ansible's main process, what the project's modules import in every worker."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: direct_preload
type: notification
short_description: Import PyMySQL and the project's connection helpers once, before the worker processes fork
description:
  - Each task runs in a worker process forked from Ansible's main process. A project module run directly in the
    worker (C(plugins/plugin_utils/direct.py) of the dbrelease.core collection) imports PyMySQL and
    C(module_utils/dbrelease/db.py) again in every such worker. Imported here, once, when Ansible loads its
    callbacks, every worker inherits them.
  - When a task starts, before its workers fork, it imports that task's action plugin and, when the action can run
    the project's module directly (a DirectModuleAction, whatever the task's connection), the module file itself
    (with the module_utils it imports), once per run; each worker running it directly would otherwise import and
    compile them again. On remote hosts the import is a one-off cost of the main process, about 0.1 s per module.
  - Does nothing else. When PyMySQL is not installed on the controller (every module runs on remote hosts), or with
    C(DBRELEASE_DIRECT=0) (no direct execution), it imports nothing.
  - Loaded from C(callback_plugins/) (named in ansible.cfg), no C(callbacks_enabled) needed.
author: dbrelease
"""

import os

import ansible.module_utils
from ansible.plugins.callback import CallbackBase

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)


def preload() -> bool:
    """Import the connection helpers (and PyMySQL through them); whether PyMySQL is now loaded."""
    if os.environ.get("DBRELEASE_DIRECT", "1") == "0":
        return False
    from ansible.module_utils.dbrelease import db  # the modules' shared connection code; imports PyMySQL if present

    return db.HAS_PYMYSQL


def preload_task(action: str) -> bool:
    """Import the action plugin of `action` and, when it runs the project's module directly (a DirectModuleAction),
    the module file, in this process; whether the module file was imported."""
    from ansible.plugins.loader import action_loader, module_loader
    from ansible_collections.dbrelease.core.plugins.plugin_utils import direct

    action_class = action_loader.get(action, class_only=True)  # kept in the loader's cache, which workers inherit
    if action_class is None or not issubclass(action_class, direct.DirectModuleAction):
        return False
    path = module_loader.find_plugin(action)
    if not path:
        return False
    direct._load(path)  # the very cache the worker's DirectModuleAction reads
    return True


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "direct_preload"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._enabled = preload()
        self._seen: set = set()
        self.preloaded = 0

    def v2_playbook_on_task_start(self, task, is_conditional=None):
        action = getattr(task, "action", None)
        if not self._enabled or not action or action in self._seen:
            return
        self._seen.add(action)
        try:
            self.preloaded += preload_task(action)
        except Exception as exc:  # noqa: BLE001 - the worker imports it itself and reports what is wrong
            self._display.vvv("direct_preload: %s not preloaded: %s" % (action, exc))

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def v2_playbook_on_stats(self, stats):
        if self._enabled:
            self._display.vv("direct_preload: %d of the project's modules imported before the workers forked"
                             % self.preloaded)
