"""Atomic file writes: the one way a file the project publishes is written (records, manifests, reports), and the
private directories and lock files around them, with modes that do not depend on the umask.

Stdlib only (it runs on target hosts and on the controller).
"""

from __future__ import annotations

import os
import stat
import tempfile


def write_atomic(path: str, data: bytes | str, mode: int = 0o640, fsync: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part.

    A temporary file in the same directory (mode `mode` from the start, whatever the umask), flushed and fsynced,
    then renamed over `path`; removed again if anything fails.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def make_private_dirs(path: str, mode: int = 0o750) -> None:
    """Create `path` and its missing parents with `mode` whatever the umask (`os.makedirs` gives the parents 0777
    less the umask: world-writable under umask 000), and take the world's access away from `path` if it exists
    already and is ours."""
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
            pass  # made meanwhile by another writer
        os.chmod(directory, mode)
    info = os.stat(path)
    if info.st_mode & 0o007 and info.st_uid == os.getuid():
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o007)


def open_private(path: str, mode: int = 0o600, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND):
    """A file object on `path` (a lock file, a status file), created with `mode` whatever the umask, and brought back
    to `mode` when an earlier run left it wider."""
    fd = os.open(path, flags, mode)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, mode)
        return os.fdopen(fd, "a" if flags & os.O_APPEND else "w")
    except BaseException:
        os.close(fd)
        raise


def parse_mode(text: str) -> int:
    """Pure: "0644" -> 0o644; ValueError for anything that is not 3 or 4 octal digits."""
    text = str(text).strip()
    if not text or len(text) > 4 or any(c not in "01234567" for c in text):
        raise ValueError(text)
    return int(text, 8)


def ensure_dir(path: str, mode: int) -> bool:
    """`path` is a directory with exactly `mode` (its missing parents made with `mode` too, whatever the umask), as
    ansible.builtin.file with state=directory and mode leaves it. Returns whether anything changed."""
    existed = os.path.isdir(path)
    if not existed:
        make_private_dirs(path, mode)
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)
        return True
    return not existed
