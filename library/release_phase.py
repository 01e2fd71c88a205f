#!/usr/bin/python
"""Documentation of the release_phase action (action_plugins/release_phase.py); it runs only as an action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_phase
short_description: Record a phase of the release in the release record (the phase mechanism)
description:
  - The one mechanism that records a phase. Each phase role starts with C(status=running), ends with
    C(status=ok), and its C(rescue) records C(status=failed); a phase that has nothing to do records
    C(status=skipped) with a I(reason) and ends its role. See C(docs/architecture.md), section Phases.
  - The outputs of a phase are the C(record) parts of the results named in I(results) (each module returns the
    part of its result that the record keeps, documented in its RETURN), then I(outputs), then I(reason).
    C(changed) is whether one of those results changed something. The C(msg) of each result is printed.
  - Writes C(<release_artifacts_dir>/<release_version>/release.json) on the controller (C(release.check.json) under
    check mode), file-locked and atomic, in Ansible's worker process (no module process).
  - Only the run that holds the release lock writes the record. A phase started with I(before_lock=true) is kept
    in memory until a phase ends with I(locked=true) (the lock phase). A run that stops before it holds the lock
    writes nothing when the record shows another run holding the lock, or when the failure says C(record_busy);
    the finish play then leaves maintenance mode, the lock and the report alone.
  - A failed phase puts the host into the group C(dbrelease_failed), so later phase plays skip it; the finish play
    cleans up what this run owns and then stops the host with the first phase error of the run.
  - At the start of a phase, refreshes the release lock this run holds once a third of its TTL
    (C(lock_ttl_minutes)) has passed since the last refresh, and refuses to start a phase whose I(requires) are
    not recorded C(ok) or C(skipped), naming the phase to run first.
options:
  phase:
    description: The phase, as named in C(vars/release.yml) (C(release_phases)); its key in C(release.json).
    type: str
    required: true
  status:
    description: C(running) starts the phase; C(ok) and C(skipped) end it; C(failed) (in the rescue) records why it
      stopped.
    type: str
    choices: [running, ok, failed, skipped]
    default: running
  results:
    description: Names of the registered results of the phase whose C(record) parts are its outputs (given with
      C(status=running), or at the end for a phase without a running step; a loop contributes each item's part).
    type: list
    elements: str
    default: []
  outputs:
    description: More outputs, merged after the results' C(record) parts.
    type: dict
    default: {}
  reason:
    description: Why the phase is skipped (required with C(status=skipped)); recorded as C(reason).
    type: str
  requires:
    description: With C(status=running), phases that must be recorded C(ok) or C(skipped) first (read from the
      record, under check mode with the dry run's phases on top).
    type: list
    elements: str
    default: []
  files:
    description: With C(ok) or C(failed), files kept with the release (snapshots, outputs), each written atomically
      (0640, directory 0750) unless its content is already there; also in check mode (name them apart), never by a
      run whose record is another run's.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory on the controller.
        type: path
        required: true
      name:
        description: The file name (no directory part).
        type: str
        required: true
      content:
        description: The content.
        type: str
        required: true
      force:
        description: Replace a file whose content differs; C(false) keeps the first one.
        type: bool
        default: true
  before_lock:
    description: This phase runs before the release lock is taken (preflight); keep the record in memory until a
      phase ends with I(locked=true).
    type: bool
    default: false
  locked:
    description: With C(status=ok) or C(skipped), the release lock is now this run's (or the lock is disabled);
      write what was kept in memory, and write as the owner of the record from here.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: writes to C(release.check.json); reads C(release.json) with C(release.check.json) on top.
  diff_mode:
    support: none
author: dbrelease
"""

EXAMPLES = r"""
- name: Run the backup phase
  block:
    - name: Start the backup phase
      release_phase:
        phase: backup
        results: [__backup_result, __backup_verified]
      register: __backup_phase

    - name: Dump the database
      db_backup:
        database: "{{ backup_db_name }}"
        backup_dir: "{{ backup_dir }}"
      register: __backup_result
      no_log: true

    - name: Finish the backup phase
      release_phase:
        phase: backup
        status: ok
  rescue:
    - name: Record why the backup phase failed
      release_phase:
        phase: backup
        status: failed

- name: Skip the tag phase when no repository is set
  when: tag_git_repo | length == 0
  block:
    - name: Record the tag phase as skipped
      release_phase:
        phase: tag
        status: skipped
        reason: release_git_repo is not set, so no git tag was made
    - name: End the tag phase
      ansible.builtin.meta: end_role
"""

RETURN = r"""
phase:
  description: The phase.
  returned: always
  type: str
record:
  description: What earlier phases recorded (release.json; under check mode release.check.json's phases on top).
  returned: with status=running
  type: dict
previous:
  description: This phase's entry before this attempt (empty when it never ran).
  returned: with status=running
  type: dict
dir:
  description: The release directory on the controller, C(<release_artifacts_dir>/<release_version>).
  returned: always
  type: str
stamp:
  description: The start of the phase as a compact UTC time (C(20261130T061814Z)), for file names.
  returned: with status=running
  type: str
record_path:
  description: The record written (absent when the write was held or dropped).
  returned: when written
  type: str
error:
  description: The recorded error.
  returned: with status=failed
  type: str
"""

if __name__ == "__main__":
    raise SystemExit("release_phase runs only as an action plugin (action_plugins/release_phase.py)")
