"""Ansible callback: caches compiled templates and parsed vars_files in Ansible's main process, before workers fork."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: controller_cache
type: notification
short_description: Compile each template once per run and parse each vars_files file once, on the controller
description:
  - ansible-core compiles a Jinja template each time it renders it, in each worker process, and re-reads a play's
    C(vars_files) for every host and every task. In a release those repeats cost more controller CPU than the
    tasks' own work, and they grow with the number of databases.
  - This callback installs two caches in Ansible's main process (C(plugin_utils/controller_cache.py) of the
    dbrelease.core collection) - compiled templates by text, base directory and options; parsed C(vars_files)
    data by path, size and modification time - and, when a task starts (before its workers fork), compiles that
    task's templates, its role's and its play's variables, so every worker inherits them compiled.
  - Changes no result (templates are rendered afresh each time; compile errors are never cached). When
    ansible-core's internals are not as expected it installs nothing. C(DBRELEASE_CONTROLLER_CACHE=0) switches it
    off. With C(-vv) it prints what it did at the end of the run.
  - With the caches it installs a shortcut for skipped tasks (C(plugin_utils/controller_skip.py)) - a task whose
    plain C(when) is false for a host is skipped in the main process, with the very result a worker would send,
    instead of forking a worker only to skip it. Loops, C(delegate_to), lookups in the condition and conditions that
    fail still go to a worker. C(DBRELEASE_CONTROLLER_SKIP=0) switches the shortcut off.
  - Loaded from C(callback_plugins/) (named in ansible.cfg), no C(callbacks_enabled) needed.
author: dbrelease
"""

from ansible.plugins.callback import CallbackBase

try:
    from ansible_collections.dbrelease.core.plugins.plugin_utils import controller_cache, controller_skip
except ImportError:  # the project's collection is not on the collections path: nothing to install
    controller_cache = controller_skip = None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "controller_cache"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._installed = controller_cache.install() if controller_cache is not None else {}
        if self._installed:
            self._installed["skip"] = controller_skip.install()
        self._play_values = ()

    def v2_playbook_on_play_start(self, play):
        """The data of the play's vars_files (plain paths only), compiled with the play's first task."""
        self._play_values = ()
        loader = getattr(play, "_loader", None)
        if not self._installed.get("compile") or loader is None:
            return
        values = []
        try:
            for entry in play.get_vars_files():
                for path in entry if isinstance(entry, list) else [entry]:
                    if isinstance(path, str) and "{" not in path:
                        values.append(loader.load_from_file(path, cache="vaulted", unsafe=True,
                                                            trusted_as_template=True))
        except Exception as exc:  # noqa: BLE001 - the variable manager reports a missing or broken file itself
            self._display.vvv("controller_cache: vars_files not prewarmed: %s" % exc)
        self._play_values = tuple(values)

    def v2_playbook_on_task_start(self, task, is_conditional=None):
        if not self._installed.get("compile"):
            return
        try:
            controller_cache.prewarm(task, getattr(task, "_loader", None), self._play_values)
        except Exception as exc:  # noqa: BLE001 - a cache must never fail a run
            self._display.vvv("controller_cache: prewarm skipped: %s" % exc)
        self._play_values = ()

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def v2_playbook_on_stats(self, stats):
        if self._installed.get("compile"):
            s = controller_cache.STATS
            self._display.vv("controller_cache: %d templates compiled before the workers forked, %d compiled again "
                             "from the cache in this process; vars_files parsed once, reused %d times"
                             % (s["prewarmed"], s["hits"], s["vars_files_hits"]))
        if self._installed.get("skip"):
            s = controller_skip.STATS
            self._display.vv("controller_skip: %d skipped tasks evaluated here without a worker, %d sent to workers"
                             % (s["skipped_here"], s["sent_to_workers"]))
