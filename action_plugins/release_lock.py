"""Controller half of release_lock: say who holds the lock (this controller, user and run), then run the module.

The holder must describe the controller, not the database host the module runs on, so it is filled in here, in
Ansible's worker process: the controller's host name, the user, the pid of ansible-playbook (this worker's
parent), the AWX job id and the inventory host. Keys the task gives itself win. No lookup and no shell is run.
"""

from __future__ import annotations

import getpass
import os
import socket

from ansible.plugins.action import ActionBase


def controller_holder(task_vars: dict) -> dict:
    """Who this run is, as the lock's holder: read on the controller."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "controller": socket.gethostname(),
        "user": user,
        "pid": str(os.getppid()),
        "awx_job_id": str(task_vars.get("awx_job_id") or os.environ.get("JOB_ID") or ""),
        "target": task_vars.get("inventory_hostname", ""),
    }


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get("state", "present") == "present":
            args["holder"] = dict(controller_holder(task_vars or {}), **(args.get("holder") or {}))
        result.update(self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars))
        return result
