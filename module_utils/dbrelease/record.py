"""The release record (release.json): where it lives, how a phase's entry is merged, and how it is written.

Pure functions plus one locked, atomic write. Used on the controller by the `release_phase` and `release_record`
action plugins (in Ansible's worker process), by the `release_record` module when it runs as a module, and by the
callbacks. Stdlib only, like every module_utils file.
"""

from __future__ import annotations

import fcntl
import json
import os

from ansible.module_utils.dbrelease.clock import utc_now_iso
from ansible.module_utils.dbrelease.files import make_private_dirs, open_private, write_atomic
from ansible.module_utils.dbrelease.version import problems as version_problems

RECORD = "release.json"
CHECK_RECORD = "release.check.json"


class BadVersion(ValueError):
    """release_version cannot name a release directory: nothing may be written (or read) for it."""


def record_dir(artifacts_dir, version, playbook_dir, host) -> str:
    """`<release_artifacts_dir>/<release_version>`; release_artifacts_dir defaults to `<playbook dir>/artifacts/<host>`.

    The one definition of where a host's record lives (the phases, the fleet gates and the report all use it).
    Raises BadVersion for a version the release's rules refuse (`version.problems`: it could climb out of the
    artifacts directory, or hold a newline), so no caller ever gets a path outside it."""
    if version:
        found = version_problems(version)
        if found:
            raise BadVersion("release_version %s; nothing is written for it" % "; ".join(found))
    base = artifacts_dir or os.path.join(playbook_dir or ".", "artifacts", host)
    return os.path.join(str(base), str(version or "unversioned"))


def check_release_dir(directory: str) -> None:
    """Refuse a release directory that climbs out of where it was put (`..`) or holds a control character: a bad
    release_version must never make a run write anywhere else, not even its failure record. Raises ValueError."""
    text = str(directory)
    if any(part == ".." for part in text.split(os.sep)):
        raise ValueError("%r has a '..' component: refusing to write outside the artifacts directory (check "
                         "release_version, and give release_artifacts_dir without '..')" % text)
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise ValueError("%r holds a control character (a newline?): refusing to write there (check "
                         "release_version and release_artifacts_dir)" % text)


def record_path(directory: str, check_mode: bool) -> str:
    """The record a run writes: release.check.json under --check, so a dry run never touches a real run's record."""
    return os.path.join(directory, CHECK_RECORD if check_mode else RECORD)


def load(path: str) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return data if isinstance(data, dict) else {}


def view(directory: str, check_mode: bool) -> dict:
    """What a phase reads of earlier phases: release.json, and under --check the phases this dry run (or an earlier
    one) recorded in release.check.json on top of it."""
    real = load(os.path.join(directory, RECORD))
    if not check_mode:
        return real
    dry = load(os.path.join(directory, CHECK_RECORD))
    merged = dict(real)
    merged["phases"] = dict(real.get("phases") or {}, **(dry.get("phases") or {}))
    return merged


def merge_phase(record, phase, status, changed, outputs, error, when):
    """Pure: return `record` with phase `phase` updated. `started` is kept from the running entry.

    `running` starts a new attempt: the outputs and the error of an earlier attempt are dropped (its status is
    kept as `previous_status`)."""
    phases = record.setdefault("phases", {})
    entry = dict(phases.get(phase) or {})
    if status == "running":
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


def entry(phase, status, changed=False, outputs=None, error=None, when=None) -> dict:
    """One write of a phase's state, kept as data (the phase mechanism holds such writes until it owns the record)."""
    return {"phase": phase, "status": status, "changed": bool(changed), "outputs": outputs or {}, "error": error,
            "when": when or utc_now_iso()}


def write(directory: str, check_mode: bool, entries, top=None) -> tuple[dict, str]:
    """Apply `entries` (see `entry`) and the top-level keys `top` to the record, under a file lock, atomically.

    Returns (record, path). Forks writing records of different hosts or phases never corrupt one another."""
    check_release_dir(directory)
    make_private_dirs(directory)
    path = record_path(directory, check_mode)
    with open_private(os.path.join(directory, ".release.lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load(path)
        record.update(top or {})
        record.setdefault("created", utc_now_iso())
        for item in entries:
            merge_phase(record, item["phase"], item["status"], item["changed"], item["outputs"], item["error"],
                        item["when"])
        record["updated"] = utc_now_iso()
        write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    return record, path


def live_lock(record: dict) -> dict | None:
    """The lock entry of a run that took the release lock and has not released it (per the record), else None.

    A run that could not take the lock reads this before writing its failure: while another run holds the lock,
    the record is that run's."""
    lock = ((record or {}).get("phases") or {}).get("lock") or {}
    if lock.get("status") == "ok" and lock.get("token") and not lock.get("released") and not lock.get("check_mode"):
        return lock
    return None


def merge_outputs(parts) -> dict:
    """Pure: the `record` parts of a phase's module results, merged in order (dicts recursively, the rest replaced)."""
    merged: dict = {}
    for part in parts:
        _deep_merge(merged, part or {})
    return merged


def _deep_merge(into: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def record_parts(result) -> list:
    """Pure: the `record` parts of one registered result: its own, or each loop item's (skipped items have none)."""
    if not isinstance(result, dict):
        return []
    if isinstance(result.get("results"), list) and "record" not in result:
        return [item["record"] for item in result["results"] if isinstance(item, dict) and isinstance(
            item.get("record"), dict)]
    return [result["record"]] if isinstance(result.get("record"), dict) else []


def result_changed(result) -> bool:
    if not isinstance(result, dict):
        return False
    if isinstance(result.get("results"), list):
        return any(result_changed(item) for item in result["results"])
    return bool(result.get("changed"))


def write_artifacts(directory, files, check_mode):
    """Write each of `files` ({name, content, force}) into `directory` (created 0750), each atomically (0640).

    A file whose content is already the same is left alone; `force: false` keeps an existing file whatever its
    content. Returns the names written (in check mode: that would be written, writing nothing)."""
    for item in files:
        name = item["name"]
        if not name or name in (".", "..") or "/" in name:
            raise ValueError("release_record: artifact name %r must be a plain file name" % name)
    check_release_dir(directory)
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
            write_atomic(dest, data)
        written.append(item["name"])
    return written


def missing_phases(record, required) -> list:
    """Pure: the phases of `required` that the record does not show `ok` or `skipped`: [(name, status)], where
    status is the recorded one or `not recorded`."""
    phases = (record or {}).get("phases") or {}
    missing = []
    for name in required or []:
        status = (phases.get(name) or {}).get("status") or "not recorded"
        if status not in ("ok", "skipped"):
            missing.append((name, status))
    return missing


def phase_tag(phases, name) -> str:
    """Pure: the tag that reruns phase `name` (its play's first tag other than `always`), from the list of phases
    (vars/release.yml, release_phases); the name itself when the list does not know it."""
    for item in phases or []:
        if item.get("name") == name:
            tags = [tag for tag in item.get("tags") or [] if tag != "always"]
            return tags[0] if tags else name
    return name
