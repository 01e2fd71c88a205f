"""Plumbing shared by the backup modules: chunked copies between processes, bigger pipes, killing children.

Stdlib only (it runs on target hosts).
"""

from __future__ import annotations

import fcntl
import subprocess
import threading

CHUNK = 1 << 20
HEAD_BYTES = 64 * 1024
TAIL_BYTES = 4096


class _Pump(threading.Thread):
    """Copy src -> dst in chunks; count bytes, keep the first HEAD_BYTES and the last TAIL_BYTES."""

    def __init__(self, src, dst, on_chunk=None):
        super().__init__(daemon=True)
        self.src, self.dst, self.on_chunk = src, dst, on_chunk
        self.count = 0
        self.head = bytearray()
        self.tail = b""
        self.error = None
        self.broken = False

    def run(self):
        try:
            while True:
                chunk = self.src.read1(CHUNK) if hasattr(self.src, "read1") else self.src.read(CHUNK)
                if not chunk:
                    break
                if self.on_chunk:
                    self.on_chunk(chunk)
                self.count += len(chunk)
                if len(self.head) < HEAD_BYTES:
                    self.head += chunk[:HEAD_BYTES - len(self.head)]
                self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                if self.dst is not None and not self.broken:
                    try:
                        self.dst.write(chunk)
                    except (BrokenPipeError, ValueError):
                        self.broken = True  # the reader died; keep draining so the writer is not blocked
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
        finally:
            if self.dst is not None:
                try:
                    self.dst.close()
                except OSError:
                    pass


def _big_pipes(*files):
    """Grow pipes to 1 MiB (Linux): fewer wake-ups per GB moved between the dump, the compressor and us."""
    for handle in files:
        try:
            fcntl.fcntl(handle.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)
        except (OSError, AttributeError, ValueError):
            pass


def _kill(*procs):
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
