"""Controller half of db_backup: start the dump detached on the database host, print progress, return the result.

The job mechanism (start, long-polled status with a lease, cancel on Ctrl-C/SIGTERM) is the collection's
`plugin_utils/job.py` and `module_utils/dbrelease/job.py`, shared with schema_apply. Only small JSON documents
travel: the dump never passes through the controller, so the controller's memory stays flat whatever the dump size.
A cancelled or abandoned job removes its hidden partial file: a dump only ever appears under its final name complete
and verified.
"""

from __future__ import annotations

import os

import ansible.module_utils
from ansible_collections.dbrelease.core.plugins.plugin_utils.job import JobAction

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.backup import progress_line  # noqa: E402

# A status call that returns while the job runs has waited POLL_S: its progress is printed, so once every POLL_S.
POLL_S = 5.0


class ActionModule(JobAction):
    what = "backup"
    POLL_S = POLL_S

    def progress_text(self, args, progress):
        return "backup of %s" % progress_line(progress) if progress else None

    def failed_text(self, args, status):
        return "backup of %s failed: %s" % (args.get("database"), status.get("msg"))
