"""Restore test: load a backup into a throwaway database on the same server, compare it with the source, drop it.

The dump holds one database without `--databases`, so it has no CREATE DATABASE or USE: the client is simply
pointed at `<db>__dbrelease_restore_<random>`. Two things are rewritten in the stream, after the dump's data:
events are restored DISABLED so that no event ever fires from the copy, and view definitions that name the source
schema (the dump client writes them so when a view's DEFINER account does not exist) are made to name the copy
(identifier-aware, so a table named like the database keeps its name). The session does not write the binary log
(`sql_log_bin=0`) unless configured, so replicas never see the copy. The throwaway database is dropped in every
case, also on failure.

Objects whose DEFINER account does not exist are restored as a stock client restores them (with the admin's
SET USER / SUPER), and the report names them (`missing_definers`): they fail when used, on the source as well.
"""

from __future__ import annotations

import re
import secrets
import time

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_compare as cmp
from ansible.module_utils.dbrelease import leftovers
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.backup_io import stream_into_client
from ansible.module_utils.dbrelease.db import (
    DbError,
    client_option_pipe,
    connect,
    endpoint,
    quote_ident,
    scrub,
    server_info,
)
from ansible.module_utils.dbrelease.sqlident import rewrite_schema

EVENTS_MARKER = b"\n-- Dumping events for database '"
_EVENT_HEADER_RE = re.compile(rb"^(/\*!50106 CREATE\*/.*? EVENT .*?) ENABLE((?: COMMENT '(?:[^'\\]|\\.|'')*')? DO )")
_VIEW_LINE = b"/*!50001 VIEW "


class RestoreFilter:
    """Stream filter over a dump: from the events section on (events, routines, final view definitions), create
    every event DISABLED and make view definitions that name schema `source` name `target` instead. The data
    before it passes untouched (it is searched for the section's marker, never split into lines).

    Feed chunks with `feed()`, then `flush()`; both return the bytes to write. `disabled` counts rewritten events,
    `views_retargeted` the view definitions that named the source schema.
    """

    def __init__(self, source=None, target=None):
        self.source, self.target = source, target
        self.in_events = False
        self.carry = b""
        self.disabled = 0
        self.views_retargeted = 0

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk
        if not self.in_events:
            index = data.find(EVENTS_MARKER)
            if index < 0:
                keep = len(EVENTS_MARKER) - 1
                self.carry = data[-keep:] if len(data) > keep else data
                return data[:-keep] if len(data) > keep else b""
            self.in_events = True
            head, data = data[:index], data[index:]
        else:
            head = b""
        cut = data.rfind(b"\n") + 1
        complete, self.carry = data[:cut], data[cut:]
        return head + b"".join(self._line(line) for line in complete.splitlines(keepends=True))

    def flush(self) -> bytes:
        rest, self.carry = self.carry, b""
        return self._line(rest) if self.in_events else rest

    def _line(self, line: bytes) -> bytes:
        if self.source and line.startswith(_VIEW_LINE):
            text = line.decode("utf-8", "surrogateescape")
            new_text = rewrite_schema(text, self.source, self.target)
            if new_text != text:
                self.views_retargeted += 1
                return new_text.encode("utf-8", "surrogateescape")
            return line
        new, count = _EVENT_HEADER_RE.subn(rb"\1 DISABLE\2", line, count=1)
        self.disabled += count
        return new


def restore_command(client, option_file, database, skip_binlog=True) -> list[str]:
    cmd = [client, "--defaults-extra-file=%s" % option_file, "--max-allowed-packet=1G",
           "--default-character-set=utf8mb4"]
    if skip_binlog:
        cmd.append("--init-command=SET SESSION sql_log_bin=0")
    return cmd + [database]


def restore(params, tools, path, target, skip_binlog=True, source=None) -> dict:
    """Stream `path` (decompressed, events disabled, views naming `source` retargeted) into the existing database
    `target`. Raises BackupError."""
    compression = codec.compression_of(path)
    if compression is None:
        raise BackupError("%s is neither .sql.gz nor .sql.zst" % path, check="restore")
    filt = RestoreFilter(source, target)
    with client_option_pipe(params, client=tools["client"]) as options, open(path, "rb") as src:
        out = stream_into_client(codec.decompress_command(compression, tools),
                                 restore_command(tools["client"], options.path, target, skip_binlog), filt=filt,
                                 producer_stdin=src, pass_fds=options.pass_fds)
    if out.producer_rc != 0:
        raise BackupError("decompressing %s for the restore failed (exit %d): %s" % (
            path, out.producer_rc, out.producer_err[-500:]), check="restore")
    if out.client_rc != 0:
        raise BackupError("restoring %s into %s failed (exit %d): %s" % (
            path, target, out.client_rc, scrub(out.client_err[-800:], params)), check="restore")
    return {"bytes_uncompressed": out.moved, "events_disabled": filt.disabled,
            "views_retargeted": filt.views_retargeted}


def _drop(params, target) -> str | None:
    """Drop the throwaway database on a fresh connection; returns an error message or None."""
    try:
        conn = connect(params)
        try:
            with conn.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(target))
        finally:
            conn.close()
    except (DbError, Exception) as exc:  # noqa: BLE001 - reported, never hidden
        return "could not drop the throwaway database %s: %s" % (target, scrub(str(exc), params))
    return None


def restore_test(params, tools, path, database, exact_counts=True, skip_binlog=True, token=None,
                 checksum_budget_s=600.0, chunk_rows=10000, restore_params=None) -> dict:
    """Restore `path` into a throwaway database and compare it with `database`: objects, definitions, exact row
    counts and chunked row checksums (under `checksum_budget_s`). Never leaves the copy behind.

    `restore_params`: connection parameters of a separate restore server that receives the throwaway copy (so the
    source server only answers the comparison's reads); None restores on the source server.
    Returns {"ok", "problems", "throwaway", "objects", "rows", "checksums", "sampled", "live_differences",
    "missing_definers", "durations_s", ...}.
    """
    target = cmp.restore_name(database, token or secrets.token_hex(4))
    where = restore_params or params
    started = time.monotonic()
    durations = {}
    report = {"throwaway": target, "source": database, "exact_counts": exact_counts}
    try:
        conn = connect(params)
    except DbError as exc:
        raise BackupError(str(exc), check="connect") from None
    copy_conn = conn
    try:
        if restore_params is not None:
            try:
                copy_conn = connect(restore_params)
            except DbError as exc:
                raise BackupError("restore server: %s" % exc, check="connect") from None
            report["restore_server"] = {"endpoint": endpoint(restore_params),
                                        "server": server_info(copy_conn)["version"],
                                        "source_server": server_info(conn)["version"]}
        with conn.cursor() as cur:
            cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = %s", (database,))
            row = cur.fetchone()
            if not row:
                raise BackupError("source database %s does not exist: nothing to compare the restore with"
                                  % database, check="source")
        # Held by the connection of the server holding the copy until it closes: a run killed meanwhile leaves a
        # copy the next one drops.
        try:
            leftovers.claim_schema(copy_conn, target)
        except DbError as exc:
            raise BackupError(str(exc), check="restore") from None
        with copy_conn.cursor() as cur:
            cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (quote_ident(target), row[0], row[1]))
        try:
            t0 = time.monotonic()
            report.update(restore(where, tools, path, target, skip_binlog, source=database))
            durations["restore"] = time.monotonic() - t0
            t0 = time.monotonic()
            conn.ping(reconnect=True)
            copy_conn.ping(reconnect=True)
            leftovers.claim_schema(copy_conn, target)  # again, in case ping had to reconnect (the lock went with it)
            source, copy = cmp.snapshot(conn, database), cmp.snapshot(copy_conn, target)
            problems = cmp.compare_objects(source, copy)
            counts_src = cmp.row_counts(conn, database, source["tables"])
            counts_copy = cmp.row_counts(copy_conn, target, copy["tables"])
            count_problems, live = cmp.compare_counts(counts_src, counts_copy, exact_counts)
            durations["compare"] = time.monotonic() - t0
            t0 = time.monotonic()
            layouts = {t: dict(spec, rows_estimate=counts_src.get(t, spec["rows_estimate"]))  # exact, not stats
                       for t, spec in cmp.table_layouts(conn, database).items() if t in copy["tables"]}
            checksums = cmp.table_checksums(conn, database, target, layouts, budget_s=checksum_budget_s,
                                            chunk_rows=chunk_rows, copy_conn=copy_conn)
            sum_problems, sum_live = cmp.compare_checksums(checksums, exact_counts)
            durations["checksums"] = time.monotonic() - t0
            # The accounts of the source server: a restore server need not hold them (the objects are the same).
            report["missing_definers"] = (cmp.missing_definers(conn, target) if copy_conn is conn
                                          else cmp.missing_definers(conn, database))
        finally:
            drop_error = _drop(where, target)
    finally:
        if copy_conn is not conn:
            copy_conn.close()
        conn.close()
    problems = problems + count_problems + sum_problems
    if drop_error:
        problems.append(drop_error)
    durations["total"] = time.monotonic() - started
    sampled = sorted(t for t, c in checksums.items() if c["sampled"] or c["method"].startswith("not compared"))
    report.update(ok=not problems, problems=problems, objects=cmp.object_counts(source),
                  rows={name: {"source": counts_src.get(name), "restored": counts_copy.get(name)}
                        for name in sorted(counts_src)},
                  checksums=checksums, sampled=sampled, checksum_budget_s=checksum_budget_s, chunk_rows=chunk_rows,
                  live_differences=dict(live, **{t: dict(live.get(t, {}), contents=v) for t, v in sum_live.items()}),
                  dropped=drop_error is None, durations_s={k: round(v, 3) for k, v in durations.items()})
    return report
