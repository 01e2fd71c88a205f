"""Controller half of schema_apply: a real run goes as a detached job on the database host, with progress.

The job mechanism is the one db_backup uses (the collection's `plugin_utils/job.py`, `module_utils/dbrelease/job.py`):
the statements run on the host in a worker that survives the module call; the controller polls its status every
`online_progress_seconds` (5 s by default) and prints the statement in progress (which, how, and pt-osc's percent,
remaining time or pause), and Ctrl-C/SIGTERM cancels it: no statement starts after that and an online change in
progress is aborted, its triggers and new table dropped and the original table left as it was. The result is the
module's own. Check mode is one plain module call (run directly in the worker when the task runs on the controller,
plugin_utils/direct.py).
"""

from __future__ import annotations

import os

import ansible.module_utils
from ansible_collections.dbrelease.core.plugins.plugin_utils.job import JobAction

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.ddl_exec import DEFAULTS, progress_line  # noqa: E402


class ActionModule(JobAction):
    what = "schema change"
    carry = ("db",)  # required by the module's argument spec, in every mode

    def poll_seconds(self, args):
        try:
            return max(1.0, float(args.get("online_progress_seconds") or DEFAULTS["online_progress_seconds"]))
        except (TypeError, ValueError):  # a template the module itself will reject
            return float(DEFAULTS["online_progress_seconds"])

    def progress_text(self, args, progress):
        return progress_line(progress)

    def failed_text(self, args, status):
        return "schema_apply on %s failed: %s" % (args.get("db"), status.get("msg"))
