"""Backup files on disk: finding a database's published backups, checksums, free names, stale partials.

Stdlib only (it runs on target hosts).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import owner
from ansible.module_utils.dbrelease.backup_io import CHUNK
from ansible.module_utils.dbrelease.clock import utc_stamp


def read_checksum_file(path) -> str | None:
    try:
        with open(path) as handle:
            return codec.parse_sha256_line(handle.read())[0]
    except (OSError, ValueError):
        return None


def remove_stale_partials(backup_dir, database, min_age_s=60, check_mode=False) -> list[dict]:
    """Remove the `.DB_*.partial` files of `database` whose writer died (killed before it could remove them).

    A writer holds a lock on its partial while it writes (`owner.hold`); a partial is removed only when that lock
    is free and the file has not been written to for `min_age_s` (the moment between its creation and its lock,
    and between the writer's last write and its rename, are never mistaken for a death). Returns
    `[{"path", "idle_s"}]`; with `check_mode`, what would be removed.
    """
    removed = []
    now = time.time()
    try:
        names = os.listdir(backup_dir)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(".%s_" % database) and name.endswith(".partial")):
            continue
        path = os.path.join(backup_dir, name)
        try:
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or now - info.st_mtime < min_age_s:
                continue
            if owner.owner_gone(path):
                if not check_mode:
                    os.unlink(path)
                removed.append({"path": path, "idle_s": int(now - info.st_mtime)})
        except OSError:
            pass
    return removed


def unused_name(backup_dir, database, label, compression):
    """(stamp, name) of a backup that does not exist yet: never overwrite a backup taken the same second."""
    while True:
        stamp = utc_stamp()
        name = codec.backup_file_name(database, label, compression, stamp)
        if not any(os.path.lexists(os.path.join(backup_dir, n))
                   for n in (name, codec.checksum_name(name), codec.manifest_name(name))):
            return stamp, name
        time.sleep(1.0 - (time.time() % 1.0) + 0.01)


def find_backups(backup_dir, database, label=None) -> list[dict]:
    """Final backups of `database` in `backup_dir`, newest first: path, name, stamp, manifest (or None).

    A file counts only with its `.sha256` beside it and, when a manifest exists, the manifest's database equal
    to `database` (so `app` never picks up `app_v2`'s backups).
    """
    found = []
    try:
        names = os.listdir(backup_dir)
    except OSError:
        return found
    for name in names:
        if not codec.candidate_matches(name, database, label):
            continue
        path = os.path.join(backup_dir, name)
        if not os.path.isfile(path) or not os.path.isfile(os.path.join(backup_dir, codec.checksum_name(name))):
            continue
        manifest = None
        try:
            with open(os.path.join(backup_dir, codec.manifest_name(name))) as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and manifest.get("database") != database:
            continue
        found.append({"path": path, "name": name, "stamp": codec.stamp_of(name), "manifest": manifest,
                      "mtime": os.stat(path).st_mtime})
    found.sort(key=lambda item: (item["stamp"], item["mtime"]), reverse=True)
    return found


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()
