"""Action plugin of schema_reverse: runs it directly in the worker when the task runs on the controller.

Anywhere else the module runs the usual way. See plugins/plugin_utils/direct.py of the dbrelease.core collection.
"""

from __future__ import annotations

from ansible_collections.dbrelease.core.plugins.plugin_utils.direct import DirectModuleAction as ActionModule

__all__ = ["ActionModule"]
