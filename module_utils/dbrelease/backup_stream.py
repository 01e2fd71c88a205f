"""The streaming engine of the backup phase: dump | compress -> sha256 + hidden partial file -> verify -> rename.

One pass: the dump's stdout is moved into the compressor by a thread (with splice(2) where available: the SQL
never enters this process; it counts the bytes); the main thread reads the compressor's stdout in chunks, hashes
them, writes them to `.NAME.partial` in the backup directory and feeds them to a decompressor running alongside,
whose output a third thread reads back (counting it and keeping its head, for the binlog position, and its tail,
for the completion trailer: both read from what the file decompresses to). Every stage's exit status is checked;
the file is fsynced, verified (decompression, byte count, trailer, checksum) and only then renamed to its final
name, after its `.sha256` and manifest. Any failure removes the partial: nothing unverified is ever left under a
backup's name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import owner
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.backup_checks import checks_message, failed_checks, stream_checks
from ansible.module_utils.dbrelease.backup_files import remove_stale_partials, sha256_of, unused_name
from ansible.module_utils.dbrelease.backup_io import CHUNK, Pump, big_pipes, kill_process
from ansible.module_utils.dbrelease.db import client_binary, client_option_pipe, scrub
from ansible.module_utils.dbrelease.files import write_atomic


def find_tools() -> dict:
    return {
        "dump": client_binary("mariadb-dump", "mysqldump"),
        "client": client_binary("mariadb", "mysql"),
        "igzip": shutil.which("igzip"),
        "pigz": shutil.which("pigz"),
        "gzip": shutil.which("gzip"),
        "zstd": shutil.which("zstd"),
        "stdbuf": shutil.which("stdbuf"),
    }


def tool_versions(paths) -> dict:
    versions = {}
    for path in paths:
        if not path:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            text = (out.stdout or out.stderr).strip().splitlines()
            versions[os.path.basename(path)] = text[0].strip() if text else "unknown"
        except (OSError, subprocess.SubprocessError):
            versions[os.path.basename(path)] = "unknown"
    return versions


class Stopped(Exception):
    """Raised inside the pipeline when the run is cancelled (SIGTERM, lease expired)."""


class Progress:
    """Counters shared by the pump thread and the writer, plus a throttled callback for the status file."""

    def __init__(self, database, callback=None, every=1.0, should_stop=None):
        self.database = database
        self.callback = callback
        self.every = every
        self.should_stop = should_stop
        self.started = time.monotonic()
        self.stage = "starting"
        self.raw = 0
        self.written = 0
        self._last = 0.0

    def snapshot(self) -> dict:
        return {"database": self.database, "stage": self.stage, "bytes_uncompressed": self.raw,
                "bytes_compressed": self.written, "elapsed_s": round(time.monotonic() - self.started, 1)}

    def tick(self, force=False):
        if self.should_stop is not None:
            reason = self.should_stop()
            if reason:
                raise Stopped(reason)
        now = time.monotonic()
        if self.callback and (force or now - self._last >= self.every):
            self._last = now
            self.callback(self.snapshot())

    def set_stage(self, stage):
        self.stage = stage
        self.tick(force=True)


def _stderr_text(handle, params, limit=2000) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace").strip()
    return scrub(text[-limit:], params)


def _remove(*paths):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            pass


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _renice(increment):
    """A preexec_fn lowering the child's priority by `increment` (every thread it starts inherits it)."""
    def lower():
        try:
            os.nice(increment)
        except OSError:
            pass
    return lower


def _write_all(out, data):
    """Write all of `data` to an unbuffered file (a raw write may be short)."""
    while data:
        written = out.write(data)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = data[written:]


def dump_to_partial(params, cmd_dump, cmd_compress, cmd_check, partial_path, progress, stdbuf=None,
                    helper_nice=0, dump_fds=()):
    """Run dump | compressor into `partial_path`; returns (sha256, compressed, uncompressed, check).

    Each compressed chunk is also fed to a decompressor (`cmd_check`) running alongside, so the decompression
    test costs no extra pass: `check` holds its exit status, byte count, head, tail and stderr.
    `stdbuf` (coreutils' stdbuf, when installed) gives the dump client a 1 MiB output buffer instead of the 4 KiB
    stdio uses on a pipe: a quarter of a million fewer writes per GB, 0.7 to 0.9 CPU-seconds less of the client's
    system time per GB on the critical path of the dump.
    `helper_nice` is added to the niceness of the compressor, the checking decompressor and the threads that
    move bytes (not the dump client's): the dump client is the slowest stage and sets the backup's speed, so it
    gets the CPU first.
    `dump_fds` are the descriptors the dump client inherits (its option pipe).
    The partial file is locked (`owner.hold`) while it is written: a clean-up run never removes it from under a
    live writer, and removes it once the writer died (`backup_files.remove_stale_partials`).
    Raises BackupError naming the failed stage; the caller removes the partial.
    """
    digest = hashlib.sha256()
    dump_err = tempfile.TemporaryFile()
    comp_err = tempfile.TemporaryFile()
    check_err = tempfile.TemporaryFile()
    dump = comp = pump = check = reader = None
    check_broken = False
    fd = os.open(partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    held = None
    try:
        os.fchmod(fd, 0o640)
        held = owner.hold(partial_path)
        with os.fdopen(fd, "wb", buffering=0) as out:
            dump = subprocess.Popen(([stdbuf, "-o1M"] if stdbuf else []) + list(cmd_dump), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=dump_err, pass_fds=tuple(dump_fds))
            helper = _renice(helper_nice) if helper_nice else None
            comp = subprocess.Popen(cmd_compress, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=comp_err,
                                    preexec_fn=helper)
            check = subprocess.Popen(cmd_check, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=check_err,
                                     preexec_fn=helper)
            big_pipes(dump.stdout, comp.stdin, comp.stdout, check.stdin, check.stdout)
            pump = Pump(dump.stdout, comp.stdin, keep=False, nice=helper_nice)
            pump.start()
            reader = Pump(check.stdout, None, nice=helper_nice)
            reader.start()
            progress.set_stage("dumping")
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while True:
                n = comp.stdout.readinto1(buf)
                if not n:
                    break
                chunk = view[:n]
                digest.update(chunk)
                try:
                    _write_all(out, chunk)
                except OSError as exc:
                    raise BackupError("cannot write %s: %s (free space in the backup directory, "
                                      "backup_dir)" % (partial_path, exc.strerror or exc), check="write") from None
                if not check_broken:
                    try:
                        check.stdin.write(chunk)
                    except BrokenPipeError:
                        check_broken = True  # the decompressor gave up: reported by the decompress check
                progress.written += n
                progress.raw = pump.count
                progress.tick()
            pump.join()
            try:
                check.stdin.close()
            except BrokenPipeError:
                pass
            reader.join()
            dump_rc, comp_rc, check_rc = dump.wait(), comp.wait(), check.wait()
            progress.raw = pump.count
            if pump.error is not None:
                raise BackupError("reading the dump failed: %s" % pump.error, check="dump")
            if dump_rc != 0:
                why = _stderr_text(dump_err, params) or ("killed by signal %d" % -dump_rc if dump_rc < 0 else "")
                raise BackupError("%s exited with status %d: %s" % (os.path.basename(cmd_dump[0]), dump_rc, why),
                                  check="dump")
            if comp_rc != 0 or pump.broken:
                raise BackupError("%s exited with status %d: %s" % (os.path.basename(cmd_compress[0]), comp_rc,
                                                                      _stderr_text(comp_err, params)),
                                  check="compress")
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise BackupError("cannot flush %s to disk: %s" % (partial_path, exc.strerror or exc),
                                  check="write") from None
        check_err.seek(0)
        checked = {"rc": check_rc, "bytes": reader.count, "head": bytes(reader.head), "tail": reader.tail,
                   "stderr": check_err.read().decode("utf-8", "replace").strip()[-500:]}
        return digest.hexdigest(), progress.written, pump.count, checked
    finally:
        owner.release(held)
        kill_process(dump, comp, check)
        for thread in (pump, reader):
            if thread is not None:
                thread.join(timeout=10)
        for proc in (dump, comp, check):
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
        dump_err.close()
        comp_err.close()
        check_err.close()


def finalize(backup_dir, final_name, partial_path, sha256, manifest) -> dict:
    """Write the .sha256 and the manifest, then rename the verified partial to its final name; fsync the dir."""
    final_path = os.path.join(backup_dir, final_name)
    sha_path = os.path.join(backup_dir, codec.checksum_name(final_name))
    manifest_path = os.path.join(backup_dir, codec.manifest_name(final_name))
    try:
        write_atomic(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_atomic(sha_path, codec.sha256_line(sha256, final_name))
        os.link(partial_path, final_path)  # unlike rename, never replaces an existing file
        os.unlink(partial_path)
        _fsync_dir(backup_dir)
    except OSError as exc:
        _remove(final_path, sha_path, manifest_path)
        raise BackupError("cannot finish %s: %s" % (final_path, exc.strerror or exc), check="write") from None
    return {"path": final_path, "checksum_file": sha_path, "manifest": manifest_path}


def run_dump(params, conn_info, tools, progress, *, database, backup_dir, compression, level=None, threads=0,
             label="", host="", helper_nice=0) -> dict:
    """Take, verify and publish one backup. `conn_info`: server, log_bin, tables (read by the caller).

    Returns the module result (without `changed`); raises BackupError after removing every file it created.
    """
    started = time.monotonic()
    stamp, final_name = unused_name(backup_dir, database, label, compression)
    partial_path = os.path.join(backup_dir, codec.partial_name(final_name))
    cmd_compress = codec.compress_command(compression, tools, level=level, threads=threads)
    position_opts = codec.position_options(conn_info["server"], conn_info["log_bin"])
    removed = remove_stale_partials(backup_dir, database)
    durations = {}
    try:
        with client_option_pipe(params, client=tools["dump"]) as options:
            cmd_dump = codec.dump_command(tools["dump"], options.path, database, position_opts)
            t0 = time.monotonic()
            sha, written, raw, checked = dump_to_partial(
                params, cmd_dump, cmd_compress, codec.decompress_command(compression, tools), partial_path, progress,
                stdbuf=tools.get("stdbuf"), helper_nice=helper_nice, dump_fds=options.pass_fds)
            durations["dump"] = time.monotonic() - t0
        # The head and tail are those of what the file decompressed to; when that is the whole dump (the
        # decompressor succeeded and gave back every byte dumped), a missing trailer is the dump's own fault.
        # Otherwise the checks below name the decompression failure.
        head, tail = checked["head"], checked["tail"]
        if checked["rc"] == 0 and checked["bytes"] == raw and not codec.trailer_line(tail):
            raise BackupError("the dump of %s ended without its '-- Dump completed' trailer although %s exited 0"
                              % (database, os.path.basename(tools["dump"])), check="trailer")
        progress.set_stage("verifying")
        t0 = time.monotonic()
        report = stream_checks(compression, checked, raw, sha, sha256_of(partial_path))
        durations["verify"] = time.monotonic() - t0
        if failed_checks(report):
            raise BackupError(checks_message(partial_path, report), check=",".join(failed_checks(report)))
        progress.set_stage("publishing")
        durations["total"] = time.monotonic() - started
        position = codec.parse_position(head.decode("utf-8", "replace") + "\n" + tail.decode("utf-8", "replace"))
        manifest = codec.build_manifest(
            database=database, file_name=final_name, compression=compression, server=conn_info["server"],
            position=position, tables=conn_info["tables"], sha256=sha, bytes_compressed=written,
            bytes_uncompressed=raw, durations=durations,
            tools=tool_versions([tools["dump"], cmd_compress[0]]), host=host, label=label,
            created=stamp, command=cmd_dump)
        paths = finalize(backup_dir, final_name, partial_path, sha, manifest)
    except BaseException:
        _remove(partial_path)
        raise
    return dict(paths, sha256=sha, bytes=written, bytes_uncompressed=raw, compression=compression,
                compressor=os.path.basename(cmd_compress[0]), position=position,
                checks={name: check["ok"] for name, check in report["checks"].items()},
                check_messages={name: check["msg"] for name, check in report["checks"].items()},
                durations_s=manifest["durations_s"], manifest_data=manifest, reused=False,
                removed_partials=[item["path"] for item in removed])


def source_info(conn, database) -> dict:
    """Server version, whether the binlog is on, and the database's tables with row estimates (read-only)."""
    from ansible.module_utils.dbrelease.db import server_info

    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        if not cur.fetchone():
            raise BackupError("database %s does not exist on this server (backup_db_name)" % database,
                              check="source")
        cur.execute("SELECT @@GLOBAL.log_bin")
        log_bin = str(cur.fetchone()[0]).upper() in ("1", "ON")
        cur.execute("SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH "
                    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME", (database,))
        tables = [{"name": name, "type": "view" if kind == "VIEW" else "table", "engine": engine,
                   "rows_estimate": int(rows) if rows is not None else None,
                   "bytes_estimate": int(size) if size is not None else None}
                  for name, kind, engine, rows, size in cur.fetchall()]
    return {"server": server_info(conn), "log_bin": log_bin, "tables": tables}


