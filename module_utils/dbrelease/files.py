"""Atomic file writes: the one way a file the project publishes is written (records, manifests, reports).

Stdlib only (it runs on target hosts and on the controller).
"""

from __future__ import annotations

import os
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
