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


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "direct_preload"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        preload()
