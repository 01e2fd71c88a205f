"""Skipped tasks without a worker process: their `when` is evaluated in Ansible's main process (callback
controller_cache).

ansible-core forks a worker process for every task and host, and evaluates the task's `when` in that worker. A task
whose `when` is false costs a fork, a worker's start-up and a result sent back through the queue, for nothing: in a
release about a third of the task-host pairs are skipped on a plain `when` (checks that pass, branches for a
failure, the vault, the binary-log archive...), and on a controller that releases many databases at once the forks
are most of its CPU (docs/benchmarks.md, "Fleet").

`install()` wraps `StrategyBase._queue_task`, so every strategy (linear, free, host_pinned) gets it. Before a task is
handed to a worker, the wrapper evaluates its `when` the way the worker's TaskExecutor does (the same variables,
with the play context's magic variables added, the same TemplateEngine call). When the result is False, the
wrapper sends the very result the worker would have sent (`skipped`, `skip_reason`, `false_condition`,
`_ansible_no_log`) through the same results queue, so the callbacks, `register`, the recap and the handlers see
nothing different. In every other case the task goes to a worker as before, untouched:

- the conditional is true, or raises anything, or makes Ansible warn: the worker evaluates it again and reports it;
- the task loops (`loop`, `with_*`: `when` is evaluated per item), is delegated (`delegate_to`: the variables
  change), is throttled, is an include or an import (the strategy handles those results), or has no `when`;
- the conditional calls a lookup (`lookup`, `query`, `q`): it may be slow or act on something, and runs in the
  worker, in parallel with the other hosts, as it always did.

It relies on ansible-core internals; `install()` checks that they exist and otherwise installs nothing. Set
`DBRELEASE_CONTROLLER_SKIP=0` to switch it off (or `DBRELEASE_CONTROLLER_CACHE=0`, which switches off the callback).
"""

from __future__ import annotations

import os
import re

_LOOKUP = re.compile(r"\b(lookup|query|q)\s*\(")
STATS = {"skipped_here": 0, "sent_to_workers": 0}
_INSTALLED: dict = {}


def enabled() -> bool:
    return os.environ.get("DBRELEASE_CONTROLLER_SKIP", "1") != "0"


def skip_result(host, task, task_vars, play_context, loader):
    """The result a worker would send for `task` when its `when` is false, or None when the task must go to a
    worker (its conditional is true, raises, warns, or the task is not a plain one)."""
    from ansible import constants as C
    from ansible._internal import _display_utils
    from ansible._internal._templating._engine import TemplateEngine

    when = task.when
    if not when or task.loop is not None or task.loop_with or task.delegate_to is not None or task.throttle:
        return None
    if any(isinstance(item, str) and _LOOKUP.search(item) for item in when):
        return None  # a lookup may be slow or have effects: it runs in the worker, in parallel with the others
    if task.action in C._ACTION_ALL_INCLUDE_IMPORT_TASKS or task.action in C._ACTION_ALL_PROPER_INCLUDE_IMPORT_ROLES:
        return None
    tempvars = task_vars.copy()
    templar = TemplateEngine(loader=loader, variables=task_vars)
    # As TaskExecutor._execute_internal: the play context's variables join the conditional's, and an error there is
    # raised only by a task that runs (the worker then raises it).
    try:
        context = play_context.set_task_and_variable_override(task=task, variables=task_vars, templar=templar)
        context.post_validate(templar=templar)
        if not context.remote_addr:
            context.remote_addr = host.address
        context.update_vars(tempvars)
    except Exception:  # noqa: BLE001 - as the worker does, evaluate the conditional without them
        tempvars = task_vars.copy()
    with _display_utils.DeferredWarningContext(variables=task_vars) as warnings:
        try:
            context_result: dict = {}
            if task._resolve_conditional(when, tempvars, result_context=context_result):
                return None
        except Exception:  # noqa: BLE001 - the worker raises it again and reports it as Ansible does
            return None
        result = dict(changed=False, skipped=True, skip_reason="Conditional result was False") | context_result
        task.update_result_no_log(templar, result)
    if warnings.get_warnings() or warnings.get_deprecation_warnings():
        return None  # the worker's result carries them, as Ansible reports them
    return result


def install() -> bool:
    """Wrap StrategyBase._queue_task once per process; False when ansible-core is not as expected."""
    if "skip" in _INSTALLED:
        return _INSTALLED["skip"]
    _INSTALLED["skip"] = False
    if not enabled():
        return False
    try:
        from ansible import constants as C
        from ansible._internal import _display_utils  # noqa: F401 - checked here, used in skip_result
        from ansible.executor.task_result import _RawTaskResult
        from ansible.playbook.task import Task
        from ansible.plugins.strategy import StrategyBase
    except ImportError:
        return False
    needed = (getattr(StrategyBase, "_queue_task", None), getattr(Task, "_resolve_conditional", None),
              getattr(Task, "update_result_no_log", None), getattr(C, "_ACTION_ALL_INCLUDE_IMPORT_TASKS", None),
              getattr(C, "_ACTION_ALL_PROPER_INCLUDE_IMPORT_ROLES", None))
    if None in needed or getattr(StrategyBase, "_dbrelease_skip", False):
        return False
    original = StrategyBase._queue_task

    def _queue_task(self, host, task, task_vars, play_context):
        try:
            result = skip_result(host, task, task_vars, play_context, self._loader)
        except Exception:  # noqa: BLE001 - never fail a run: the worker does what it always did
            result = None
        if result is None:
            STATS["sent_to_workers"] += 1
            return original(self, host, task, task_vars, play_context)
        STATS["skipped_here"] += 1
        # What _queue_task and the worker do for a task, minus the fork: the result comes back through the queue.
        self._queued_task_cache[(host.name, task._uuid)] = {
            "host": host, "task": task, "task_vars": task_vars, "play_context": play_context}
        self._tqm.send_callback("v2_runner_on_start", host, task)
        self._final_q.send_task_result(_RawTaskResult(
            host=host, task=task, return_data=result, task_fields=task.dump_attrs()))
        self._pending_results += 1
        return None

    _queue_task.__doc__ = original.__doc__
    StrategyBase._queue_task = _queue_task
    StrategyBase._dbrelease_skip = True
    _INSTALLED["skip"] = True
    return True
