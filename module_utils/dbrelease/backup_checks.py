"""Integrity checks of a backup: checksum, decompression and the completion trailer, each reported on its own.

Stdlib only (it runs on target hosts).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease.backup_io import CHUNK, Pump


def verify_file(path, compression, tools, expected_sha256=None, progress=None) -> dict:
    """Integrity checks of a compressed dump, in one read of the file: checksum, decompression, trailer.

    Returns {"checks": {name: {"ok": bool, "msg": str}}, "sha256", "bytes", "bytes_uncompressed", "trailer"}.
    Never raises for a bad file: each failed check says what it found.
    """
    digest = hashlib.sha256()
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(codec.decompress_command(compression, tools), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err)
    size = [0]

    def feed():
        try:
            with open(path, "rb") as src:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    size[0] += len(chunk)
                    if not broken[0]:
                        try:
                            proc.stdin.write(chunk)
                        except (BrokenPipeError, ValueError):
                            broken[0] = True
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    broken = [False]
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    reader = Pump(proc.stdout, None, on_chunk=(lambda n: _count(progress, n)) if progress else None)
    reader.run()  # in this thread
    feeder.join()
    rc = proc.wait()
    proc.stdout.close()
    err.seek(0)
    err_text = err.read().decode("utf-8", "replace").strip()[-500:]
    err.close()
    sha = digest.hexdigest()
    checks = {}
    if expected_sha256 is None:
        checks["checksum"] = {"ok": False, "msg": "no expected checksum (missing .sha256 file)"}
    elif sha == expected_sha256.lower():
        checks["checksum"] = {"ok": True, "msg": "sha256 %s matches" % sha}
    else:
        checks["checksum"] = {"ok": False, "msg": "sha256 mismatch: file has %s, expected %s" % (sha, expected_sha256)}
    if rc == 0:
        checks["decompress"] = {"ok": True, "msg": "%s decompresses cleanly (%d bytes)" % (compression, reader.count)}
    else:
        checks["decompress"] = {"ok": False, "msg": "%s decompression failed (exit %d): %s" % (
            compression, rc, err_text or "corrupt or truncated data")}
    trailer = codec.trailer_line(reader.tail)
    if trailer:
        checks["trailer"] = {"ok": True, "msg": trailer}
    else:
        last = reader.tail.rstrip().split(b"\n")[-1][:80].decode("utf-8", "replace")
        checks["trailer"] = {"ok": False, "msg": "the dump does not end with '-- Dump completed' (last line: %r): "
                                                 "the dump was cut short" % last}
    return {"checks": checks, "sha256": sha, "bytes": size[0], "bytes_uncompressed": reader.count,
            "trailer": trailer}


def stream_checks(compression, checked, raw, stream_sha, disk_sha) -> dict:
    """The verification report of a dump checked while it was written: the decompressor that ran alongside read
    back every byte dumped and the trailer, and the file re-read from disk has the stream's sha256 (so the file
    holds exactly the bytes that decompressed)."""
    checks = {}
    if disk_sha == stream_sha:
        checks["checksum"] = {"ok": True, "msg": "sha256 %s matches" % disk_sha}
    else:
        checks["checksum"] = {"ok": False, "msg": "sha256 mismatch: file on disk has %s, the stream had %s"
                                                  % (disk_sha, stream_sha)}
    if checked["rc"] == 0 and checked["bytes"] == raw:
        checks["decompress"] = {"ok": True, "msg": "%s decompresses cleanly (%d bytes)" % (compression, raw)}
    elif checked["rc"] == 0:
        checks["decompress"] = {"ok": False, "msg": "%s decompressed to %d bytes but %d were dumped"
                                                    % (compression, checked["bytes"], raw)}
    else:
        checks["decompress"] = {"ok": False, "msg": "%s decompression failed (exit %d): %s" % (
            compression, checked["rc"], checked["stderr"] or "corrupt data")}
    trailer = codec.trailer_line(checked["tail"])
    checks["trailer"] = ({"ok": True, "msg": trailer} if trailer else
                         {"ok": False, "msg": "the decompressed dump does not end with '-- Dump completed'"})
    return {"checks": checks}


def _count(progress, n):
    progress.raw += n
    progress.tick()


def failed_checks(report: dict) -> list[str]:
    return [name for name, check in report["checks"].items() if not check["ok"]]


def checks_message(path, report) -> str:
    bad = failed_checks(report)
    return "backup %s failed verification: %s" % (
        path, "; ".join("%s check failed: %s" % (name, report["checks"][name]["msg"]) for name in bad))
