"""The backup's byte plumbing with real processes and pipes (no database): the zero-copy pump, the reader that keeps
the head and tail, helper priorities, and the stream engine's own trailer and byte-count checks."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import threading

import pytest
from ansible.module_utils.dbrelease import backup_io, backup_stream
from ansible.module_utils.dbrelease.backup import BackupError

PAYLOAD = b"".join(b"INSERT INTO t VALUES (%d,'%s');\n" % (i, b"x" * (i % 97)) for i in range(60000))


def _nice_of(pid, tid=None) -> int:
    path = "/proc/%d/task/%d/stat" % (pid, tid) if tid else "/proc/%d/stat" % pid
    with open(path) as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not hasattr(os, "splice"), reason="splice(2) needs Linux and Python >= 3.10")
def test_pump_without_keep_moves_every_byte_pipe_to_pipe_with_splice():
    src = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sink = subprocess.Popen(["sha256sum"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pump = backup_io.Pump(src.stdout, sink.stdin, keep=False)
    pump.start()
    feeder = threading.Thread(target=lambda: (src.stdin.write(PAYLOAD), src.stdin.close()))
    feeder.start()
    feeder.join()
    pump.join()
    digest = sink.stdout.read().split()[0].decode()
    src.wait()
    sink.wait()
    assert pump.error is None and not pump.broken
    assert pump.spliced and pump.count == len(PAYLOAD)
    assert digest == hashlib.sha256(PAYLOAD).hexdigest()
    assert pump.head == b"" and pump.tail == b""  # nothing of the dump entered this process


def test_reader_keeps_head_and_tail_across_a_short_last_read():
    # The last read is shorter than the tail: the tail must join it to the end of the read before.
    data = PAYLOAD + b"-- Dump completed on 2026-11-30 12:00:00\n"
    proc = subprocess.Popen(["sh", "-c", "head -c %d; sleep 0.2; cat" % (len(data) - 10)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    reader = backup_io.Pump(proc.stdout, None)
    reader.start()
    proc.stdin.write(data)
    proc.stdin.close()
    reader.join()
    proc.wait()
    assert reader.count == len(data)
    assert bytes(reader.head) == data[:backup_io.HEAD_BYTES]
    assert reader.tail == data[-backup_io.TAIL_BYTES:]


def test_pump_whose_reader_died_marks_it_broken_and_drains_the_writer():
    src = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    dead = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    dead.wait()
    pump = backup_io.Pump(src.stdout, dead.stdin, keep=False)
    pump.start()
    src.stdin.write(PAYLOAD * 4)  # more than the pipes hold: blocks forever unless the pump drains
    src.stdin.close()
    pump.join(timeout=30)
    assert not pump.is_alive()
    assert pump.broken and pump.count == len(PAYLOAD) * 4
    assert src.wait(timeout=10) == 0


def test_helper_niceness_applies_to_the_child_and_its_threads_not_to_this_process():
    mine = os.nice(0)
    child = subprocess.Popen(["sleep", "5"], preexec_fn=backup_stream._renice(7))
    try:
        assert _nice_of(child.pid) == min(19, mine + 7)
        assert os.nice(0) == mine
    finally:
        child.kill()
        child.wait()


def test_lowering_a_threads_priority_leaves_the_other_threads_alone():
    mine = os.nice(0)
    seen = {}

    def lowered():
        backup_io._lower_thread_priority(5)
        seen["tid"] = threading.get_native_id()
        seen["nice"] = _nice_of(os.getpid(), seen["tid"])

    worker = threading.Thread(target=lowered)
    worker.start()
    worker.join()
    assert seen["nice"] == min(19, mine + 5)
    assert _nice_of(os.getpid(), threading.get_native_id()) == mine


def test_write_all_finishes_short_writes_and_reports_a_full_disk():
    class Short:
        def __init__(self, room):
            self.room, self.got = room, b""

        def write(self, data):
            n = min(3, len(data), self.room - len(self.got))
            self.got += bytes(data[:n])
            return n

    out = Short(room=100)
    backup_stream._write_all(out, memoryview(b"0123456789" * 5))
    assert out.got == b"0123456789" * 5
    with pytest.raises(OSError) as exc:
        backup_stream._write_all(Short(room=10), b"0123456789ab")
    assert exc.value.errno == 28  # ENOSPC


def _fake_dump(tmp_path, body: bytes, rc=0):
    script = tmp_path / "fake-dump"
    (tmp_path / "fake-dump.out").write_bytes(body)
    script.write_text("#!/bin/sh\ncat %s\nexit %d\n" % (tmp_path / "fake-dump.out", rc))
    script.chmod(0o755)
    return str(script)


def _run(tmp_path, dump, compression="gzip", helper_nice=19):
    tools = backup_stream.find_tools()
    tools["dump"] = dump
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    info = {"server": {"flavor": "mariadb", "version": "10.11.0", "version_tuple": [10, 11, 0]}, "log_bin": False,
            "tables": []}
    params = {"login_user": "nobody", "login_password": "not-used", "login_unix_socket": "/nonexistent",
              "login_host": "localhost", "login_port": 3306, "connect_timeout": 1}
    return backup_stream.run_dump(params, info, tools, backup_stream.Progress("app"), database="app",
                                  backup_dir=str(backups), compression=compression, level=1, label="t",
                                  helper_nice=helper_nice), backups


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_stream_engine_publishes_a_complete_dump_with_head_and_tail_from_its_decompression(tmp_path, compression):
    if compression == "zstd" and not shutil.which("zstd"):
        pytest.skip("zstd not installed")
    body = b"-- MariaDB dump\n" + PAYLOAD + b"-- Dump completed on 2026-11-30 12:00:00\n"
    result, backups = _run(tmp_path, _fake_dump(tmp_path, body), compression)
    assert result["bytes_uncompressed"] == len(body)
    assert result["checks"] == {"checksum": True, "decompress": True, "trailer": True}
    if compression == "gzip":
        assert gzip.decompress(open(result["path"], "rb").read()) == body
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        os.path.basename(result[k]) for k in ("path", "checksum_file", "manifest"))


def test_stream_engine_refuses_a_dump_that_exits_0_without_its_trailer_and_leaves_nothing(tmp_path):
    result = None
    with pytest.raises(BackupError) as exc:
        result, _ = _run(tmp_path, _fake_dump(tmp_path, PAYLOAD))
    assert result is None
    assert exc.value.check == "trailer"
    assert "ended without its '-- Dump completed' trailer although fake-dump exited 0" in str(exc.value)
    assert list((tmp_path / "backups").iterdir()) == []


def test_stream_engine_names_the_dump_client_when_it_fails(tmp_path):
    with pytest.raises(BackupError) as exc:
        _run(tmp_path, _fake_dump(tmp_path, PAYLOAD[:1000], rc=2))
    assert exc.value.check == "dump" and "fake-dump exited with status 2" in str(exc.value)
    assert list((tmp_path / "backups").iterdir()) == []
