"""The controller half of a module that runs as a detached job on its host (module_utils/dbrelease/job.py).

The module's `mode` is the protocol: `start` forks the work and returns a job directory, `status` waits on the host
for the job's status (a long poll, up to `poll_seconds`) and renews its lease, `cancel` stops it. Only small JSON
documents travel. `JobAction.run` starts the job, prints a progress line after each status call that returns while
the job runs (so once every `poll_seconds`), and returns the job's result: exactly what the module returns when it
runs in one call (`mode: run`).

An interrupted controller (Ctrl-C, SIGTERM) cancels the job before this process goes: the work stops and cleans up
on its host (db_backup removes its partial file; schema_apply stops its online schema change tool, which drops its
triggers and new table), the final status is printed, and the running phase is recorded as failed with the job's
result when this run writes the release record. If even the cancel cannot reach the host, the job stops by itself
when its lease expires.

Used by the action plugins of db_backup and schema_apply; check mode and every mode but `run` stay one plain module
call.
"""

from __future__ import annotations

import signal

from ansible.utils.display import Display
from ansible_collections.dbrelease.core.plugins.plugin_utils.direct import DirectModuleAction

display = Display()

# The phase mechanism's run state (action_plugins/release_phase.py: STATE_FACT).
STATE_FACT = "dbrelease_run"


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM while the controller polls a job."""


_INTERRUPTED: list[int] = []


def _interrupt(signum, frame):
    """SIGINT/SIGTERM while polling: raise once (Ansible's main process sends SIGINT then SIGTERM at once)."""
    if _INTERRUPTED:
        return
    _INTERRUPTED.append(signum)
    raise Interrupted("signal %d" % signum)


class JobAction(DirectModuleAction):
    """Run the task's module as a job (see the module docstring). Subclasses name the job (`what`) and say what a
    progress snapshot reads like (`progress_text`)."""

    _requires_connection = True
    what = "job"
    # Task arguments the status and cancel calls pass on too (those the module requires in every mode).
    carry: tuple = ()
    # Each status call waits on the host for the job to end, up to this long: the end is seen within 0.1 s, and one
    # module call per poll is what a long job costs the controller and the host.
    POLL_S = 5.0

    def poll_seconds(self, args) -> float:
        return self.POLL_S

    def progress_text(self, args, progress) -> str | None:
        """The line printed (after `[host] `) for a progress snapshot (with `age_seconds`: how long ago the work
        reported it), or None to print nothing."""
        raise NotImplementedError

    def failed_text(self, args, status) -> str:
        """The message of a job whose worker failed outside the module's own error handling."""
        return "%s failed: %s" % (self.what, status.get("msg"))

    def run(self, tmp=None, task_vars=None):
        result = super(DirectModuleAction, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        host = task_vars.get("inventory_hostname", "?")
        if args.get("mode", "run") != "run" or self._task.check_mode:
            result.update(self.run_module(module_args=args, task_vars=task_vars))
            return result
        # The start forks the detached job, like the status and cancel calls directly in this worker where the module
        # may run there (plugin_utils/direct.py), else in a module process; the job closes every descriptor it
        # inherits (module_utils/dbrelease/job.py), so it never holds this worker's pipes.
        started = self.run_module(module_args=dict(args, mode="start"), task_vars=task_vars)
        if started.get("failed") or started.get("finished", True):
            result.update(started)
            result.pop("finished", None)
            return result
        if started.get("waited_note"):  # the start waited for an earlier run's job on the same target
            display.warning("[%s] %s" % (host, started["waited_note"]))
        carried = {k: args[k] for k in self.carry + ("lease_seconds",) if args.get(k) is not None}
        job = dict(carried, mode="status", job_dir=started["job_dir"], wait_seconds=self.poll_seconds(args))
        # Ansible's worker process dies at once on SIGINT/SIGTERM (os._exit); while we poll, turn them into an
        # exception instead so the job is cancelled (and cleans up) before this process goes.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                status = self.run_module(module_args=job, task_vars=task_vars)
                if status.get("failed"):  # the status call itself failed (host unreachable, job dir gone)
                    result.update(status)
                    return result
                state = status.get("state")
                if state == "done":
                    result.update(status["result"])
                    return result
                if state == "failed":
                    result.update(failed=True, changed=False, check=status.get("check"),
                                  msg=self.failed_text(args, status))
                    return result
                progress = dict(status.get("progress") or {})
                if progress and status.get("now") and status.get("reported"):
                    # How long ago the work reported it (both times from the host's clock).
                    progress["age_seconds"] = round(max(0.0, status["now"] - status["reported"]), 1)
                line = self.progress_text(args, progress)
                if line:
                    display.display("[%s] %s" % (host, line))
        except BaseException:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)  # let the cancel call finish
            display.warning("[%s] %s interrupted on the controller: cancelling the job on the host" % (host, self.what))
            final = self.run_module(module_args=dict(carried, mode="cancel", job_dir=job["job_dir"]),
                                    task_vars=task_vars)
            self._after_cancel(host, final, task_vars)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _after_cancel(self, host, final, task_vars):
        """Say how the cancelled job ended and record the running phase as failed with its result."""
        outcome = final.get("result") if final.get("state") == "done" else None
        if final.get("state") == "done":
            text = (outcome or {}).get("msg") or "ended"
        elif final.get("state") == "failed":
            text = final.get("msg") or "failed"
        else:
            text = "still %s on the host after the cancel (it stops when its lease expires)" % (
                final.get("state") or final.get("msg") or "unknown")
        display.warning("[%s] %s cancelled: %s" % (host, self.what, " ".join(str(text).split())))
        try:
            self._record_interrupted(outcome or {}, "interrupted on the controller (the job was cancelled): %s" % (
                " ".join(str(text).split())), task_vars)
        except Exception as exc:  # noqa: BLE001 - the interrupt goes on whatever happens here
            display.warning("[%s] the release record could not be updated after the cancel: %s" % (host, exc))

    def _record_interrupted(self, outcome, error, task_vars):
        """The phase mechanism's `failed` write (action_plugins/release_phase.py) for the phase that was running,
        with the job's record part, under the same rule of who writes: nothing when this run does not write the
        record (before the lock, or the record is another run's), nothing under --check."""
        # After direct.py put the project's module_utils on ansible.module_utils's path.
        from ansible.module_utils.dbrelease import record
        from ansible.module_utils.dbrelease.clock import utc_now_iso

        state = (task_vars.get("ansible_facts") or {}).get(STATE_FACT) or {}
        phase = (state.get("phase") or {}).get("name")
        if not phase or state.get("before_lock") or state.get("writes") is False or self._task.check_mode:
            return

        def var(name):
            return self._templar.template(task_vars.get(name))

        try:
            directory = record.record_dir(var("release_artifacts_dir"), var("release_version"), var("playbook_dir"),
                                          var("inventory_hostname"))
        except record.BadVersion:
            return
        outputs = record.merge_outputs(record.record_parts(outcome))
        top = {"version": var("release_version") or "", "host": var("inventory_hostname"),
               "database": var("release_db_name") or ""}
        record.write(directory, False, [record.entry(phase, "failed", record.result_changed(outcome), outputs, error,
                                                     utc_now_iso())], top)
