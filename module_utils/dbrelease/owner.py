"""Who owns a temporary file or directory, and whether that owner is still alive. Stdlib only (runs on targets).

Every temporary thing a run leaves on disk while it works (the private directory of a client option file, a
`.partial` dump) is held by its owner with an exclusive `flock()` for as long as it exists. The kernel drops that
lock the moment the owner dies, however it dies (SIGKILL included), so "the lock can be taken" means "the owner is
gone", with no guessing from process ids that may have been reused. The owner's host, boot and process id are also
written into the name (`owner_tag()`), for the people reading what a clean-up removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket

_SAFE_RE = re.compile(r"[^A-Za-z0-9.-]+")
# `<host>.b<boot id, 8 hex>.p<pid>`; the host part is what gethostname() says, cut and cleaned for a file name.
TAG_RE = re.compile(r"(?P<host>[A-Za-z0-9.-]{1,40})\.b(?P<boot>[0-9a-f]{8})\.p(?P<pid>\d{1,10})")


def boot_id() -> str:
    """The first 8 hex digits of this boot's id (Linux); `00000000` where the kernel does not tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip().replace("-", "")[:8] or "00000000"
    except OSError:
        return "00000000"


def owner_tag(pid=None) -> str:
    """`<host>.b<boot>.p<pid>` of this process (or of `pid`): goes into the names of the things it leaves."""
    host = _SAFE_RE.sub("-", socket.gethostname() or "host").strip(".-")[:40] or "host"
    return "%s.b%s.p%d" % (host, boot_id(), pid or os.getpid())


def describe_tag(name: str) -> str:
    """`pid N on HOST` from a name holding an owner tag, or `an unknown owner`."""
    match = TAG_RE.search(name or "")
    if not match:
        return "an unknown owner"
    return "pid %s on %s" % (match.group("pid"), match.group("host"))


def hold(path: str) -> int:
    """Open `path` (a file or a directory, never following a symlink) and take an exclusive lock on it.

    Returns the descriptor: the lock lasts until it is closed (or the process dies). Not inherited by children
    (close-on-exec), so a tool left running by a dead owner never keeps its leftovers alive.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def owner_gone(path: str) -> bool:
    """True when nobody holds the lock of `path` (its owner died); False while its owner runs, or when `path` is
    gone or not ours to judge (a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    finally:
        os.close(fd)  # releases the probe's own lock at once
    return True


def release(fd) -> None:
    """Close a descriptor returned by `hold()` (its lock goes with it); never raises."""
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass
