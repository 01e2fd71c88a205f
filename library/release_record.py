#!/usr/bin/python
"""Ansible module: write one phase's state into the durable release record (release.json)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_record
short_description: Record a release phase's status and outputs in release.json
description:
  - Merges one phase's C(status), C(changed), timings and outputs into
    C(<artifacts_dir>/<version>/release.json), the durable state that phases and later runs read.
  - Runs on the controller (C(delegate_to: localhost)). Writes are serialised with a file lock and made atomic
    with a rename, so forks writing records of different hosts or phases never corrupt a record.
  - In check mode the record goes to C(release.check.json) so a dry run never overwrites a real run's record.
  - With I(state=read) it only returns the record (and never changes anything).
options:
  path:
    description: Release directory, C(<release_artifacts_dir>/<release_version>).
    type: path
    required: true
  phase:
    description: Phase name (C(backup), C(schema), ...). Not needed with I(state=read) or I(top).
    type: str
  status:
    description: Phase status.
    type: str
    choices: [running, ok, failed, skipped]
  changed:
    description: Whether the phase changed anything.
    type: bool
    default: false
  outputs:
    description: Phase outputs merged into C(phases.<phase>) (for example C(path), C(sha256), C(bytes)).
    type: dict
    default: {}
  error:
    description: Error message when I(status=failed). Must not contain secrets (callers pass module messages,
      which never do).
    type: str
  top:
    description: Top-level keys to merge into the record (C(version), C(database), C(host), ...).
    type: dict
    default: {}
  state:
    description: C(present) writes, C(read) only reads.
    type: str
    choices: [present, read]
    default: present
attributes:
  check_mode:
    support: full
    details: writes to C(release.check.json) instead of C(release.json).
author: dbrelease
"""

EXAMPLES = r"""
- name: Record the backup phase as done
  release_record:
    path: "{{ backup_release_dir }}"
    phase: backup
    status: ok
    changed: true
    outputs:
      path: /var/backups/app.sql.gz
      sha256: "{{ __backup_result.sha256 }}"
  delegate_to: localhost
"""

RETURN = r"""
record:
  description: The whole record after the write.
  returned: always
  type: dict
record_path:
  description: File written or read.
  returned: always
  type: str
"""

import datetime
import fcntl
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def merge_phase(record, phase, status, changed, outputs, error, when):
    """Pure: return `record` with phase `phase` updated. `started` is kept from the running entry."""
    phases = record.setdefault("phases", {})
    entry = dict(phases.get(phase) or {})
    if status == "running":
        # A new attempt: drop the outputs and error of an earlier attempt, keep its history short.
        previous = entry
        entry = {"started": when}
        if previous.get("status"):
            entry["previous_status"] = previous["status"]
    else:
        entry.setdefault("started", when)
        entry["finished"] = when
    entry["status"] = status
    entry["changed"] = bool(changed) or (bool(entry.get("changed")) and status == "running")
    entry.update(outputs or {})
    if error:
        entry["error"] = error
    elif status != "failed":
        entry.pop("error", None)
    phases[phase] = entry
    return record


def write_atomic(path, data):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".release.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            phase=dict(type="str"),
            status=dict(type="str", choices=["running", "ok", "failed", "skipped"]),
            changed=dict(type="bool", default=False),
            outputs=dict(type="dict", default={}),
            error=dict(type="str"),
            top=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "read"], default="present"),
        ),
        required_if=[("state", "present", ("status", "phase"), True)],
        supports_check_mode=True,
    )
    p = module.params
    name = "release.check.json" if module.check_mode else "release.json"
    record_path = os.path.join(p["path"], name)

    if p["state"] == "read":
        module.exit_json(changed=False, record=load(os.path.join(p["path"], "release.json")),
                         record_path=os.path.join(p["path"], "release.json"))

    if p["status"] and not p["phase"]:
        module.fail_json(msg="release_record: 'phase' is required with 'status'")

    os.makedirs(p["path"], mode=0o750, exist_ok=True)
    lock_path = os.path.join(p["path"], ".release.lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(record_path)
        record.update(p["top"] or {})
        record.setdefault("created", now_iso())
        if p["phase"]:
            merge_phase(record, p["phase"], p["status"], p["changed"], p["outputs"], p["error"], now_iso())
        record["updated"] = now_iso()
        write_atomic(record_path, record)
    # The record is an artifact of the run on the controller, not a change to the managed system.
    module.exit_json(changed=False, record=record, record_path=record_path)


if __name__ == "__main__":
    main()
