"""Controller half of db_backup: start the dump detached on the database host, print progress, return the result.

The module's `mode` is the protocol: `start` forks the work and returns a job directory, `status` reads the job's
status file (and renews its lease), `cancel` stops it. Only small JSON documents travel: the dump never passes
through the controller, so the controller's memory stays flat whatever the dump size.

An interrupted controller (Ctrl-C) cancels the job before it stops; if even that cannot reach the host, the job
stops by itself when its lease expires. Either way the job removes its hidden partial file: a dump only ever
appears under its final name complete and verified.
"""

from __future__ import annotations

import os
import signal

import ansible.module_utils
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# The project's module_utils (ansible.cfg: module_utils = ./module_utils), importable here as on a target host.
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.dbrelease.backup import progress_line  # noqa: E402

display = Display()

# Each status call waits on the host for the job to end, up to POLL_S (a long poll): the end is seen within 0.1 s,
# and one module call every POLL_S is what a long dump costs the controller and the host.
# A status call that returns while the job runs has waited POLL_S: its progress is printed, so once every POLL_S.
POLL_S = 5.0


def _interrupt(signum, frame):
    """SIGINT/SIGTERM while polling: raise once (Ansible's main process sends SIGINT then SIGTERM at once)."""
    if _INTERRUPTED:
        return
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt("signal %d" % signum)


_INTERRUPTED: list[int] = []


class ActionModule(ActionBase):
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        module = self._task.action
        host = (task_vars or {}).get("inventory_hostname", "?")
        if args.get("mode", "run") != "run" or self._task.check_mode:
            result.update(self._execute_module(module_name=module, module_args=args, task_vars=task_vars))
            return result
        started = self._execute_module(module_name=module, module_args=dict(args, mode="start"),
                                       task_vars=task_vars)
        if started.get("failed") or started.get("finished", True):
            result.update(started)
            result.pop("finished", None)
            return result
        job = {"mode": "status", "job_dir": started["job_dir"], "wait_seconds": POLL_S}
        # Ansible's worker process dies at once on SIGINT/SIGTERM (os._exit); while we poll, turn them into an
        # exception instead so the job is cancelled (and its partial file removed) before this process goes.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                status = self._execute_module(module_name=module, module_args=job, task_vars=task_vars)
                if status.get("failed"):  # the status call itself failed (host unreachable, job dir gone)
                    result.update(status)
                    return result
                state = status.get("state")
                if state == "done":
                    result.update(status["result"])
                    return result
                if state == "failed":
                    result.update(failed=True, changed=False, check=status.get("check"),
                                  msg="backup of %s failed: %s" % (args.get("database"), status.get("msg")))
                    return result
                if status.get("progress"):
                    display.display("[%s] backup of %s" % (host, progress_line(status["progress"])))
        except BaseException:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)  # let the cancel call finish
            display.warning("[%s] backup interrupted on the controller: cancelling the job on the host" % host)
            self._execute_module(module_name=module, module_args={"mode": "cancel", "job_dir": job["job_dir"]},
                                 task_vars=task_vars)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._remove_tmp_path(self._connection._shell.tmpdir)
