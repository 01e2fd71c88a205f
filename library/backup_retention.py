#!/usr/bin/python
"""Ansible module: keep the last N verified backups of one database in a directory, delete older ones."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_retention
short_description: Keep the newest N verified backups of a database in a directory, delete the older ones
description:
  - Works on one directory, on whatever host it runs on (the database host for the local backups, a vault host
    with C(delegate_to) for its copies).
  - A backup is C(<database>_[<label>_]<UTCstamp>.sql.gz|.sql.zst) under its final name (the backup phase and
    the vault copy only ever give a file that name after verifying it), with a C(.sha256) sidecar and, where
    present, a C(.manifest.json) whose C(database) and C(sha256) agree. Such a backup counts as verified.
    With I(verify_checksums) the newest ones are also re-hashed, newest first, until I(keep) of them prove
    their checksum - a corrupt file is never counted as one of the backups kept.
  - The newest verified backup is never deleted, whatever I(keep) says, nor any file named in I(protect).
    Files this module does not recognise as a verified backup of I(database) (hidden partials, staging
    directories, backups of other databases, files without a sidecar) are left alone and reported.
  - A deleted backup goes with its sidecars.
options:
  path:
    description: Directory holding the backups.
    type: path
    required: true
  database:
    description: Database whose backups are pruned.
    type: str
    required: true
  keep:
    description: How many verified backups to keep (at least 1).
    type: int
    required: true
  protect:
    description: File names never deleted (the backup this run just made).
    type: list
    elements: str
    default: []
  verify_checksums:
    description: Re-hash the backups that are kept (newest first) so that a corrupt one is not counted.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: computes and returns the plan, deletes nothing.
  diff_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
- name: Keep the last 7 verified backups of the database on this host
  backup_retention:
    path: /var/backups/dbrelease
    database: app
    keep: 7
    protect: [app_v1.2.0_20261128T061814Z.sql.gz]
"""

RETURN = r"""
kept:
  description: Verified backups kept, newest first.
  returned: always
  type: list
  elements: str
deleted:
  description: Backups deleted (or that would be, in check mode), with their sidecars.
  returned: always
  type: list
  elements: str
unverified:
  description: Files that look like backups of the database but are not verified (no sidecar, sidecar and
    manifest disagree, manifest of another database); never deleted.
  returned: always
  type: list
  elements: str
corrupt:
  description: Backups whose content does not match their sidecar (with I(verify_checksums)); never deleted,
    never counted as kept.
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.backup import candidate_matches, checksum_name, manifest_name, stamp_of

CHUNK = 4 * 1024 * 1024


def sidecar_digest(path: str) -> str | None:
    try:
        with open(path) as fh:
            words = fh.read().split()
    except OSError:
        return None
    if words and len(words[0]) == 64 and all(c in "0123456789abcdefABCDEF" for c in words[0]):
        return words[0].lower()
    return None


def classify(directory: str, names: list[str], database: str) -> tuple[list[dict], list[str]]:
    """(verified backups newest first as {name, sha256}, unverified names) among the directory's entries."""
    verified, unverified = [], []
    present = set(names)
    for name in names:
        if not candidate_matches(name, database):
            continue
        digest = sidecar_digest(os.path.join(directory, checksum_name(name)))
        ok = digest is not None
        if ok and manifest_name(name) in present:
            try:
                with open(os.path.join(directory, manifest_name(name))) as fh:
                    manifest = json.load(fh)
            except (OSError, ValueError):
                manifest = None
            if not isinstance(manifest, dict):
                ok = False
            elif manifest.get("database") not in (None, database):
                continue  # another database whose name starts with "<database>_"
            elif manifest.get("sha256") and str(manifest["sha256"]).lower() != digest:
                ok = False
        if ok:
            verified.append({"name": name, "sha256": digest})
        else:
            unverified.append(name)
    verified.sort(key=lambda b: (stamp_of(b["name"]) or "", b["name"]), reverse=True)
    return verified, sorted(unverified)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose(directory: str, verified: list[dict], keep: int, protect, verify, hasher=file_sha256):
    """(kept, deleted, corrupt): keep the newest `keep` backups that prove themselves, delete older verified."""
    kept, deleted, corrupt = [], [], []
    for backup in verified:
        if len(kept) < keep:
            if verify and hasher(os.path.join(directory, backup["name"])) != backup["sha256"]:
                corrupt.append(backup["name"])
                continue
            kept.append(backup["name"])
        elif backup["name"] in protect:
            kept.append(backup["name"])
        else:
            deleted.append(backup["name"])
    if verified and verified[0]["name"] not in kept and verified[0]["name"] not in corrupt:
        raise AssertionError("refusing to delete the newest verified backup %s" % verified[0]["name"])
    return kept, deleted, corrupt


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            database=dict(type="str", required=True),
            keep=dict(type="int", required=True),
            protect=dict(type="list", elements="str", default=[]),
            verify_checksums=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["keep"] < 1:
        module.fail_json(msg="backup_retention_count must be at least 1 (got %d): the newest verified backup is "
                             "never deleted" % p["keep"])
    directory = p["path"]
    if not os.path.isdir(directory):
        module.exit_json(changed=False, kept=[], deleted=[], unverified=[], corrupt=[],
                         msg="%s does not exist: nothing to prune" % directory)
    names = sorted(os.listdir(directory))
    verified, unverified = classify(directory, names, p["database"])
    kept, deleted, corrupt = choose(directory, verified, p["keep"], set(p["protect"]), p["verify_checksums"])
    for name in corrupt:
        module.warn("backup %s in %s does not match its .sha256 sidecar: not counted as kept, left for a "
                    "person to look at" % (name, directory))
    if deleted and not module.check_mode:
        for name in deleted:
            for victim in (manifest_name(name), checksum_name(name), name):
                try:
                    os.unlink(os.path.join(directory, victim))
                except FileNotFoundError:
                    pass
    result = dict(changed=bool(deleted), kept=kept, deleted=deleted, unverified=unverified, corrupt=corrupt)
    if module._diff:
        before = [b["name"] for b in verified]
        result["diff"] = {"before": "\n".join(before) + "\n" if before else "",
                          "after": "\n".join(n for n in before if n not in deleted) + "\n" if kept else "",
                          "before_header": directory, "after_header": directory}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
