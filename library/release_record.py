#!/usr/bin/python
"""Ansible module: write one phase's state into the durable release record (release.json)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_record
short_description: Read the release record, or write files kept with the release
description:
  - Reads C(<artifacts_dir>/<version>/release.json), the durable state that phases and later runs read, or
    writes the files kept with the release beside it. Phases record themselves with C(release_phase), not with
    this module; I(state=present) writes one phase entry directly (the C(release_unreachable) callback uses it).
  - Runs on the controller. Writes are serialised with a file lock and made atomic with a rename, so forks writing
    records of different hosts or phases never corrupt a record.
  - In check mode the record goes to C(release.check.json) so a dry run never overwrites a real run's record.
  - With I(state=read) it only returns the record (and never changes anything).
  - With I(state=artifacts) it writes the I(files) kept with the release (schema snapshots, the approved plan,
    the report) into the directory I(path) on the controller, each atomically (temporary file, fsync, rename)
    with mode C(0640), creating the directory (C(0750)) when missing. A file whose content is already the same
    is left alone; I(force=false) keeps an existing file whatever its content. C(changed) says whether a file
    was written, as C(ansible.builtin.copy) would.
  - On the controller, the action plugin of the same name runs this code in Ansible's worker process instead of
    starting a module process for every write.
options:
  path:
    description:
      - Release directory, C(<release_artifacts_dir>/<release_version>).
      - Optional on the controller, where the action plugin fills in this host's release directory.
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
  files:
    description: With I(state=artifacts), the files to write into I(path).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name inside I(path) (no directory part).
        type: str
        required: true
      content:
        description: The file's content.
        type: str
        required: true
      force:
        description: Replace an existing file whose content differs; C(false) keeps it.
        type: bool
        default: true
  state:
    description: C(present) writes the record, C(read) only reads it, C(artifacts) writes I(files).
    type: str
    choices: [present, read, artifacts]
    default: present
attributes:
  check_mode:
    support: full
    details: writes to C(release.check.json) instead of C(release.json); I(state=artifacts) reports what it
      would write and writes nothing (tasks that keep artifacts of a dry run set C(check_mode=false)).
author: dbrelease
"""

EXAMPLES = r"""
- name: Read the release record
  release_record:
    state: read
  register: __maintenance_record

- name: Keep the report with the release
  release_record:
    state: artifacts
    path: "{{ __record_read.dir }}"
    files:
      - name: report.md
        content: "{{ lookup('ansible.builtin.template', 'report.md.j2') }}"
"""

RETURN = r"""
record:
  description: The whole record (release.json) after the write, or as read.
  returned: with I(state=present) or I(state=read)
  type: dict
view:
  description: What a phase reads of earlier phases; under check mode the phases of release.check.json on top of
    release.json.
  returned: with I(state=read)
  type: dict
check_record:
  description: release.check.json as read.
  returned: with I(state=read) in check mode
  type: dict
record_path:
  description: File written or read.
  returned: with I(state=present) or I(state=read)
  type: str
path:
  description: The release directory.
  returned: always
  type: str
written:
  description: Names of the files written (or, in check mode, that would be).
  returned: with I(state=artifacts)
  type: list
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import record as rec

merge_phase = rec.merge_phase
write_artifacts = rec.write_artifacts


ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    phase=dict(type="str"),
    status=dict(type="str", choices=["running", "ok", "failed", "skipped"]),
    changed=dict(type="bool", default=False),
    outputs=dict(type="dict", default={}),
    error=dict(type="str"),
    top=dict(type="dict", default={}),
    files=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        content=dict(type="str", required=True),
        force=dict(type="bool", default=True),
    )),
    state=dict(type="str", choices=["present", "read", "artifacts"], default="present"),
)
REQUIRED_IF = [("state", "present", ("status", "phase"), True)]


def update(p, check_mode):
    """Read or write the record as `p` (validated parameters) asks; returns the module's result.

    Also called in-process by the action plugin of the same name (action_plugins/release_record.py), which runs
    it on the controller without starting a module process."""
    if p["state"] == "read":
        path = os.path.join(p["path"], rec.RECORD)
        result = {"changed": False, "record": rec.load(path), "record_path": path, "path": p["path"],
                  "view": rec.view(p["path"], check_mode)}
        if check_mode:
            result["check_record"] = rec.load(os.path.join(p["path"], rec.CHECK_RECORD))
        return result

    if p["state"] == "artifacts":
        written = write_artifacts(p["path"], p["files"] or [], check_mode)
        return {"changed": bool(written), "written": written, "path": p["path"]}

    if p["status"] and not p["phase"]:
        raise ValueError("release_record: 'phase' is required with 'status'")
    entries = [rec.entry(p["phase"], p["status"], p["changed"], p["outputs"], p["error"])] if p["phase"] else []
    record, record_path = rec.write(p["path"], check_mode, entries, p["top"])
    # The record is an artifact of the run on the controller, not a change to the managed system.
    return {"changed": False, "record": record, "record_path": record_path, "path": p["path"]}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    try:
        result = update(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
