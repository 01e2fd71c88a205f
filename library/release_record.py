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
  - With I(state=artifacts) it writes the I(files) kept with the release (schema snapshots, the approved plan,
    the report) into the directory I(path) on the controller, each atomically (temporary file, fsync, rename)
    with mode C(0640), creating the directory (C(0750)) when missing. A file whose content is already the same
    is left alone; I(force=false) keeps an existing file whatever its content. C(changed) says whether a file
    was written, as C(ansible.builtin.copy) would.
  - Refuses a I(path) with a C(..) component or a control character, so that a bad release version never makes a
    run write outside the artifacts directory.
  - Modes do not depend on the umask - directories it creates are C(0750), the record and artifacts C(0640), its
    lock file C(.release.lock) C(0600) - and an existing release directory loses any access for others.
  - On the controller, the action plugin of the same name runs this code in Ansible's worker process instead of
    starting a module process for every write.
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
  returned: with I(state=present) or I(state=read)
  type: str
written:
  description: Names of the files written (or, in check mode, that would be).
  returned: with I(state=artifacts)
  type: list
"""

import datetime
import fcntl
import json
import os
import stat
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


def make_private_dirs(path, mode=0o750):
    """Create `path` and its missing parents with `mode`, whatever the umask (makedirs would give the parents
    0777 less the umask: world-writable under umask 000), and take the world's access away from `path` itself."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            pass
        os.chmod(directory, mode)
    info = os.stat(path)
    if info.st_mode & 0o007 and info.st_uid == os.getuid():
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o007)


def write_bytes_atomic(path, data: bytes, mode=0o640):
    """Write `data` to `path` through a temporary file in the same directory, flushed, then renamed."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".release.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path, data):
    write_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def write_artifacts(directory, files, check_mode):
    """Write each of `files` ({name, content, force}) into `directory`; returns the names written."""
    for item in files:
        name = item["name"]
        if not name or name in (".", "..") or "/" in name:
            raise ValueError("release_record: artifact name %r must be a plain file name" % name)
    if not check_mode:
        make_private_dirs(directory)
    written = []
    for item in files:
        dest = os.path.join(directory, item["name"])
        data = item["content"].encode("utf-8")
        try:
            with open(dest, "rb") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if current == data or (current is not None and not item.get("force", True)):
            continue
        if not check_mode:
            write_bytes_atomic(dest, data)
        written.append(item["name"])
    return written


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


def check_path(path):
    """Refuse a release directory that climbs out of where it was put (`..`) or holds control characters: a bad
    release_version must never make a run write anywhere else, not even its failure record."""
    if any(part == ".." for part in path.split(os.sep)):
        raise ValueError("release_record: %r has a '..' component: refusing to write outside the artifacts "
                         "directory (check release_version, and give release_artifacts_dir without '..')" % path)
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise ValueError("release_record: %r holds a control character (a newline?): refusing to write there "
                         "(check release_version and release_artifacts_dir)" % path)


def update(p, check_mode):
    """Read or write the record as `p` (validated parameters) asks; returns the module's result.

    Also called in-process by the action plugin of the same name (action_plugins/release_record.py), which runs
    it on the controller without starting a module process."""
    check_path(p["path"])
    name = "release.check.json" if check_mode else "release.json"
    record_path = os.path.join(p["path"], name)

    if p["state"] == "read":
        path = os.path.join(p["path"], "release.json")
        return {"changed": False, "record": load(path), "record_path": path}

    if p["state"] == "artifacts":
        written = write_artifacts(p["path"], p["files"] or [], check_mode)
        return {"changed": bool(written), "written": written, "path": p["path"]}

    if p["status"] and not p["phase"]:
        raise ValueError("release_record: 'phase' is required with 'status'")

    make_private_dirs(p["path"])
    lock_path = os.path.join(p["path"], ".release.lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if os.fstat(fd).st_uid == os.getuid():
        os.fchmod(fd, 0o600)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(record_path)
        record.update(p["top"] or {})
        record.setdefault("created", now_iso())
        if p["phase"]:
            merge_phase(record, p["phase"], p["status"], p["changed"], p["outputs"], p["error"], now_iso())
        record["updated"] = now_iso()
        write_atomic(record_path, record)
    # The record is an artifact of the run on the controller, not a change to the managed system.
    return {"changed": False, "record": record, "record_path": record_path}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    try:
        result = update(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
