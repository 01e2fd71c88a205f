"""Plumbing shared by the backup modules: chunked copies between processes, bigger pipes, killing children.

Stdlib only (it runs on target hosts).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import subprocess
import tempfile
import threading

CHUNK = 1 << 20
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 4096


class Pump(threading.Thread):
    """Copy src -> dst (or drain src when dst is None); count bytes.

    With `keep=True` (default) it also keeps the first HEAD_BYTES and the last TAIL_BYTES and calls
    `on_chunk(n)` after each read. Reads go into one reused buffer: a fresh 1 MiB object per read costs a page
    fault per 4 KiB, about 0.3 CPU-seconds per GB moved.

    `nice`: added to this thread's niceness (see db_backup's helper_nice).

    With `keep=False` and a destination, the bytes are moved pipe to pipe with splice(2) where the platform has it
    (Linux, Python >= 3.10): they never enter this process (about a sixth of the CPU of a copy through Python).
    """

    def __init__(self, src, dst, on_chunk=None, keep=True, nice=0):
        super().__init__(daemon=True)
        self.src, self.dst, self.on_chunk, self.keep, self.nice = src, dst, on_chunk, keep, nice
        self.count = 0
        self.head = bytearray()
        self.tail = b""
        self.error = None
        self.broken = False
        self.spliced = False

    def run(self):
        if self.nice:
            _lower_thread_priority(self.nice)
        try:
            if self.dst is not None and not self.keep and hasattr(os, "splice"):
                self._splice()
            self._copy()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
        finally:
            if self.dst is not None:
                try:
                    self.dst.close()
                except OSError:
                    pass

    def _splice(self):
        """Move everything with splice(2); returns early (the copy loop finishes) if the kernel refuses."""
        src, dst = self.src.fileno(), self.dst.fileno()
        while not self.broken:
            try:
                moved = os.splice(src, dst, CHUNK)
            except BrokenPipeError:
                self.broken = True  # the reader died; the copy loop drains the rest so the writer is not blocked
                return
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ENOSYS) and not self.count:
                    return  # not two pipes after all: copy through this process
                raise
            if not moved:
                return
            self.spliced = True
            self.count += moved

    def _copy(self):
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        read = getattr(self.src, "readinto1", None) or self.src.readinto
        while True:
            n = read(buf)
            if not n:
                break
            chunk = view[:n]
            if self.keep:
                if len(self.head) < HEAD_BYTES:
                    self.head += chunk[:HEAD_BYTES - len(self.head)]
                self.tail = bytes(chunk[-TAIL_BYTES:]) if n >= TAIL_BYTES else (self.tail + chunk)[-TAIL_BYTES:]
            self.count += n
            if self.on_chunk:
                self.on_chunk(n)
            if self.dst is not None and not self.broken:
                try:
                    self.dst.write(chunk)
                except (BrokenPipeError, ValueError):
                    self.broken = True  # the reader died; keep draining so the writer is not blocked


def _lower_thread_priority(increment):
    """Lower the calling thread's priority (Linux: a thread's nice value is its own; elsewhere a no-op)."""
    native_id = getattr(threading, "get_native_id", None)
    if native_id is None or not hasattr(os, "setpriority"):
        return
    try:
        tid = native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError:
        pass


def big_pipes(*files):
    """Grow pipes to 1 MiB (Linux): fewer wake-ups per GB moved between the dump, the compressor and us."""
    for handle in files:
        try:
            fcntl.fcntl(handle.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)
        except (OSError, AttributeError, ValueError):
            pass


def kill_process(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
    for proc in procs:
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


Streamed = collections.namedtuple("Streamed", "moved producer_rc producer_err client_rc client_err")


def _tail(handle, limit=TAIL_BYTES) -> str:
    handle.seek(0, os.SEEK_END)
    handle.seek(max(0, handle.tell() - limit))
    return handle.read().decode("utf-8", "replace").strip()


def stream_into_client(producer, client, filt=None, producer_stdin=None, pass_fds=()) -> Streamed:
    """Run `producer | [filt] | client` (argv lists) and wait for both: the loads of a dump or of binary logs into a
    server (the restore test, the rollback's copy, the point-in-time replay).

    `filt` has `feed(chunk) -> bytes` and `flush() -> bytes`; `pass_fds` goes to the client (its option pipe).
    A client that stops reading early stops the writing, not the draining of the producer, so both exit and both
    statuses are known. Returns Streamed(bytes read from the producer, its exit status, the end of its stderr, the
    client's exit status, the end of its stderr); the caller words the failure (and scrubs the client's stderr)."""
    producer_err, client_err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    prod = cli = None
    moved = 0
    try:
        prod = subprocess.Popen(producer, stdin=subprocess.DEVNULL if producer_stdin is None else producer_stdin,
                                stdout=subprocess.PIPE, stderr=producer_err)
        cli = subprocess.Popen(client, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=client_err,
                               pass_fds=tuple(pass_fds))
        broken = False
        for chunk in iter(lambda: prod.stdout.read1(CHUNK), b""):
            moved += len(chunk)
            if broken:
                continue
            try:
                cli.stdin.write(filt.feed(chunk) if filt else chunk)
            except BrokenPipeError:
                broken = True
        if not broken:
            try:
                if filt:
                    cli.stdin.write(filt.flush())
                cli.stdin.close()
            except BrokenPipeError:
                pass
        producer_rc, client_rc = prod.wait(), cli.wait()
        return Streamed(moved, producer_rc, _tail(producer_err), client_rc, _tail(client_err))
    finally:
        kill_process(prod, cli)
        if prod is not None and prod.stdout is not None:
            prod.stdout.close()
        if cli is not None and cli.stdin is not None and not cli.stdin.closed:
            try:
                cli.stdin.close()
            except BrokenPipeError:
                pass
        producer_err.close()
        client_err.close()
