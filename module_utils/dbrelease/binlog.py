"""Binary logs: where the server is, what was written since a position, retention, archiving and replay.

Stdlib plus PyMySQL only (it runs on target hosts). The pure functions (positions, the reading of `SHOW BINLOG EVENTS`
rows, the retention verdict, the command lines, the GTID filter of a replay) are unit-tested on recorded outputs of
MariaDB and MySQL 8; the rest reads the server (read-only) or runs `mariadb-binlog`/`mysqlbinlog`.

Nothing here logs or returns the text of an event: statement events and `Annotate_rows` events hold row values.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease.backup_files import sha256_of
from ansible.module_utils.dbrelease.backup_io import stream_into_client
from ansible.module_utils.dbrelease.db import client_binary, client_option_file, client_option_pipe, quote_ident, scrub
from ansible.module_utils.dbrelease.files import make_private_dirs, write_atomic
from ansible.module_utils.dbrelease.units import human_bytes

SEQUENCE_RE = re.compile(r"\.(\d+)$")
_TABLE_MAP_RE = re.compile(r"^table_id: (\d+) \((.*)\)$")
_ROWS_RE = re.compile(r"^table_id: (\d+)\b")
ROW_EVENT_PREFIXES = ("Write_rows", "Update_rows", "Delete_rows")
ACCOUNT_STATEMENTS = ("GRANT ", "REVOKE ", "CREATE USER ", "ALTER USER ", "DROP USER ", "RENAME USER ", "SET PASSWORD ",
                      "CREATE ROLE ", "DROP ROLE ", "SET DEFAULT ROLE ")
# Lines of mariadb-binlog's output that give a replayed transaction its original GTID and server id. Replayed on the
# server that wrote them, they would log the same GTIDs again, out of order (a replica in gtid_strict_mode stops on
# that); without them the replayed transactions get new GTIDs of this server, as any new write does.
_MARIADB_GTID_LINE_RE = re.compile(rb"^/\*M!100001 SET @@session\.(?:gtid_domain_id|server_id|gtid_seq_no)=\d+\*/"
                                   rb"/\*!\*/;\s*$")


_VALUE_MESSAGES = re.compile(r"((?:Duplicate entry|Incorrect [\w ]+ value:?|Data truncated for column [^ ]+ at row"
                             r"|Out of range value for column)\s*)'(?:[^'\\]|\\.|'')*'")


def redact_values(text: str) -> str:
    """A server error without the row values some messages quote (`Duplicate entry '<value>' for key ...`)."""
    return _VALUE_MESSAGES.sub(lambda m: m.group(1) + "'<value>'", text or "")


class BinlogError(Exception):
    """A binary-log failure whose message is safe to show (files, positions, never a password or row data)."""


# -- positions ---------------------------------------------------------------------------------------------------
def sequence(file_name: str) -> int:
    """`binlog.000042` -> 42 (the order of binary log files)."""
    match = SEQUENCE_RE.search(file_name or "")
    if not match:
        raise BinlogError("%r is not a binary log file name (expected <basename>.<number>)" % (file_name,))
    return int(match.group(1))


def normalise_position(position) -> dict | None:
    """`{"file", "pos", "gtid"}` from a recorded position (ours, or a backup manifest's binlog_file/binlog_pos)."""
    if not position:
        return None
    file_name = position.get("file") or position.get("binlog_file")
    pos = position.get("pos", position.get("binlog_pos"))
    if not file_name or pos in (None, ""):
        return None
    out = {"file": str(file_name), "pos": int(pos)}
    if position.get("gtid"):
        out["gtid"] = str(position["gtid"])
    return out


def position_key(position) -> tuple:
    return sequence(position["file"]), int(position["pos"])


def describe(position) -> str:
    if not position:
        return "unknown"
    text = "%s:%d" % (position["file"], position["pos"])
    return text + (" (GTID %s)" % position["gtid"] if position.get("gtid") else "")


def files_between(logs, start, stop=None) -> list:
    """Names of the files of `logs` (SHOW BINARY LOGS order) holding [start, stop]; BinlogError if one is gone."""
    names = [name for name, _ in logs]
    if start["file"] not in names:
        raise BinlogError("binary log %s (the start position %s) is no longer on the server: it was purged (the "
                          "oldest one left is %s)" % (start["file"], describe(start), names[0] if names else "none"))
    first = names.index(start["file"])
    last = names.index(stop["file"]) if stop and stop["file"] in names else len(names) - 1
    if stop and stop["file"] not in names:
        raise BinlogError("binary log %s (the stop position %s) is not on the server" % (stop["file"],
                                                                                        describe(stop)))
    return names[first:last + 1]


# -- reading the server (read-only) -------------------------------------------------------------------------------
def _variables(cur, names) -> dict:
    found = {}
    for name in names:
        try:
            cur.execute("SELECT @@GLOBAL.%s" % name)
            found[name] = cur.fetchone()[0]
        except Exception:  # noqa: BLE001 - an unknown variable on this server flavour/version
            found[name] = None
    return found


def _show_status(cur):
    """(file, pos, gtid or None) of SHOW MASTER STATUS (SHOW BINARY LOG STATUS on MySQL >= 8.2), or None."""
    import pymysql

    for sql in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
        try:
            cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in (1064,):  # syntax: the other spelling
                continue
            raise
        row = cur.fetchone()
        if not row:
            return None
        columns = [d[0].lower() for d in cur.description]
        values = dict(zip(columns, row, strict=False))
        return values.get("file"), int(values.get("position")), values.get("executed_gtid_set")
    return None


def current_position(conn, flavor: str) -> dict | None:
    """Where the server writes now: `{"file", "pos", "gtid"}`, or None when the binary log is off."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.log_bin")
        if str(cur.fetchone()[0]).upper() not in ("1", "ON"):
            return None
        status = _show_status(cur)
        if not status:
            return None
        file_name, pos, gtid = status
        if flavor == "mariadb":
            cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            gtid = cur.fetchone()[0]
    out = {"file": file_name, "pos": pos}
    if gtid:
        out["gtid"] = " ".join(str(gtid).split())
    return out


def position_for_record(conn, flavor: str) -> dict:
    """The current position as the record keeps it: `{file, pos, gtid}`, `{}` when the binary log is off, or
    `{"error": why}` when the account may not read it (never raises)."""
    try:
        return current_position(conn, flavor) or {}
    except Exception as exc:  # noqa: BLE001 - BINLOG MONITOR / REPLICATION CLIENT missing: recorded, not fatal
        args = getattr(exc, "args", ())
        return {"error": "(%s) %s" % (args[0], args[1]) if len(args) > 1 else str(exc)}


def binary_logs(conn) -> list:
    """[(file, size)] of SHOW BINARY LOGS, oldest first."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(row[0], int(row[1])) for row in cur.fetchall()]


def status(conn, flavor: str) -> dict:
    """What the backup phase records about the binary log: on/off, format, expiry, position, files, where."""
    with conn.cursor() as cur:
        names = ["log_bin", "binlog_format", "binlog_expire_logs_seconds", "expire_logs_days", "log_bin_basename",
                 "server_id", "gtid_mode", "max_binlog_total_size", "binlog_row_image"]
        found = _variables(cur, names)
    enabled = str(found["log_bin"]).upper() in ("1", "ON")
    out = {"enabled": enabled, "format": found["binlog_format"], "row_image": found["binlog_row_image"],
           "server_id": int(found["server_id"] or 0), "basename": found["log_bin_basename"],
           "expire_seconds": expire_seconds(found), "size_limit": int(found["max_binlog_total_size"] or 0)}
    if not enabled:
        return out
    out["position"] = current_position(conn, flavor)
    try:
        out["files"] = [{"file": name, "bytes": size} for name, size in binary_logs(conn)]
    except Exception as exc:  # noqa: BLE001 - reported: the account may lack BINLOG MONITOR / REPLICATION CLIENT
        out["files_error"] = str(exc)
    return out


def expire_seconds(variables: dict) -> int:
    """The effective binary log expiry in seconds; 0 means the server never expires them.

    `binlog_expire_logs_seconds` (MySQL 8, MariaDB >= 10.6.1) wins when set; otherwise `expire_logs_days`
    (MariaDB keeps the two in step; on MySQL 8 the days are deprecated and 0 by default)."""
    seconds = variables.get("binlog_expire_logs_seconds")
    if seconds not in (None, "") and int(float(seconds)) > 0:
        return int(float(seconds))
    days = variables.get("expire_logs_days")
    if days not in (None, "") and float(days) > 0:
        return int(round(float(days) * 86400))
    return 0


def retention_verdict(binlog_status: dict, window_hours: float) -> dict:
    """Whether the binary logs will still be on the server `window_hours` after the backup.

    `{"ok": bool, "pitr": "possible"|"not possible", "msg": str}`: ok when the binary log is on and its expiry is
    0 (never) or at least the window; `pitr` says whether point-in-time recovery from this backup is possible."""
    if not binlog_status.get("enabled"):
        return {"ok": True, "pitr": "not possible",
                "msg": "point-in-time recovery is not possible: the server writes no binary log (log_bin is OFF); "
                       "a rollback can restore the backup or reverse the schema changes, and loses the writes made "
                       "since the backup in restore mode"}
    window = float(window_hours) * 3600
    expiry = int(binlog_status.get("expire_seconds") or 0)
    limit = int(binlog_status.get("size_limit") or 0)
    extra = (" (max_binlog_total_size=%d may purge them earlier)" % limit) if limit else ""
    if expiry == 0:
        return {"ok": True, "pitr": "possible",
                "msg": "binary logs never expire on this server (binlog_expire_logs_seconds and expire_logs_days are "
                       "0)%s" % extra}
    if expiry >= window:
        return {"ok": True, "pitr": "possible",
                "msg": "binary logs are kept %s, at least the rollback window of %s%s" % (
                    human_duration(expiry), human_duration(window), extra)}
    return {"ok": False, "pitr": "possible",
            "msg": "binary logs expire after %s, before the end of the rollback window of %s: a point-in-time "
                   "recovery late in the window would find them purged. Raise binlog_expire_logs_seconds on the "
                   "server to at least %d, copy them to the vault (backup_binlog_archive: true), or shorten "
                   "release_rollback_window_hours" % (human_duration(expiry), human_duration(window), int(window))}


def human_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds >= 86400 and seconds % 3600 == 0 and seconds >= 2 * 86400:
        return "%g days" % round(seconds / 86400, 2)
    if seconds >= 3600:
        return "%g h" % round(seconds / 3600, 2)
    if seconds >= 60:
        return "%g min" % round(seconds / 60, 1)
    return "%d s" % seconds


# -- what was written since a position ----------------------------------------------------------------------------
_USE_PREFIX_RE = re.compile(r"^use `(?:[^`]|``)*`;\s*", re.IGNORECASE)


def is_account_statement(info: str) -> bool:
    """Whether a statement event only manages accounts or privileges, also when logged after the session's default
    database (`use `db`; DROP USER ...`): no write to any database's rows or schema."""
    return _USE_PREFIX_RE.sub("", info.strip(), count=1).upper().startswith(ACCOUNT_STATEMENTS)


def names_database(info: str, database: str) -> bool:
    """Whether a statement event's text acts on `database` (its default database or a qualified name)."""
    if info.startswith("use %s;" % quote_ident(database)):
        return True
    if quote_ident(database) + "." in info:
        return True
    bare = re.escape(database)
    return bool(re.search(r"(?<![\w`$.])%s\s*\.\s*[`\w$]" % bare, info))


class EventTally:
    """Counts, over `SHOW BINLOG EVENTS` rows, what touched one database: transactions, row events, statements.

    Feed rows `(log_name, pos, event_type, server_id, end_log_pos, info)` in order with `feed()`, then `finish()`.
    Never keeps the text of an event."""

    def __init__(self, database: str):
        self.database = database
        self.tables = {}
        self.transactions = 0
        self.row_events = 0
        self.statement_events = 0
        self.statement_positions = []
        self.events = 0
        self.touched = False
        self.last = None
        self.by_table = {}

    def _close(self):
        if self.touched:
            self.transactions += 1
        self.touched = False

    def feed(self, row):
        log_name, pos, event_type, _server, end_pos, info = row[:6]
        info = info or ""
        self.events += 1
        self.last = {"file": log_name, "pos": int(end_pos)}
        if event_type in ("Gtid", "Anonymous_Gtid"):
            self._close()
            return
        if event_type == "Table_map":
            match = _TABLE_MAP_RE.match(info)
            if match:
                qualified = match.group(2)
                self.tables[match.group(1)] = qualified
            return
        if event_type.startswith(ROW_EVENT_PREFIXES):
            match = _ROWS_RE.match(info)
            qualified = self.tables.get(match.group(1)) if match else None
            if qualified and qualified.startswith(self.database + "."):
                table = qualified[len(self.database) + 1:]
                self.row_events += 1
                self.by_table[table] = self.by_table.get(table, 0) + 1
                self.touched = True
            return
        if event_type == "Query":
            text = info.strip()
            if text.upper() in ("BEGIN", "COMMIT", "ROLLBACK") or text.upper().startswith("XA "):
                if text.upper() == "COMMIT":
                    self._close()
                return
            if is_account_statement(text):
                return  # accounts and privileges: no write to the database's rows or schema
            if names_database(text, self.database):
                self.statement_events += 1
                if len(self.statement_positions) < 10:
                    self.statement_positions.append("%s:%s" % (log_name, pos))
                self.touched = True
            return
        if event_type in ("Xid", "XA_prepare"):
            self._close()

    def finish(self) -> dict:
        self._close()
        return {"transactions": self.transactions, "row_events": self.row_events,
                "statement_events": self.statement_events, "statement_positions": self.statement_positions,
                "events_read": self.events, "row_events_by_table": dict(sorted(self.by_table.items()))}


def writes_since(conn, database: str, start: dict, stop: dict | None = None, page: int = 5000,
                 max_seconds: float = 60.0) -> dict:
    """What was written to `database` between `start` and `stop` (or now), read from `SHOW BINLOG EVENTS`.

    Returns the tally plus `bytes` (binary log bytes in the range, all databases), `from`, `to`, `complete` (False
    when the time budget ran out: the counts are then lower bounds) and `files`. BinlogError when a file is gone.
    """
    logs = binary_logs(conn)
    files = files_between(logs, start, stop)
    sizes = dict(logs)
    tally = EventTally(database)
    started = time.monotonic()
    complete = True
    end = stop or {"file": logs[-1][0], "pos": logs[-1][1]}
    with conn.cursor() as cur:
        for name in files:
            pos = start["pos"] if name == start["file"] else 4
            limit_pos = stop["pos"] if stop and name == stop["file"] else None
            done = False
            while not done:
                if time.monotonic() - started > max_seconds:
                    complete = False
                    break
                cur.execute("SHOW BINLOG EVENTS IN %%s FROM %d LIMIT %d" % (pos, page), (name,))
                rows = cur.fetchall()
                if not rows:
                    break
                for row in rows:
                    if limit_pos is not None and int(row[1]) >= limit_pos:
                        done = True
                        break
                    tally.feed(row)
                    pos = int(row[4])
                if len(rows) < page:
                    break
            if not complete:
                break
    result = tally.finish()
    total = 0
    for name in files:
        first = start["pos"] if name == start["file"] else 0
        last = end["pos"] if name == end["file"] else sizes.get(name, 0)
        total += max(0, last - first)
    result.update({"bytes": total, "from": start, "to": end, "complete": complete, "files": files,
                   "seconds": round(time.monotonic() - started, 3)})
    return result


def first_ddl(rows, database: str):
    """Where the first statement group that changes `database`'s schema starts, in `SHOW BINLOG EVENTS` rows.

    A DDL is logged as its own group (a `Gtid` event, then one `Query` event that is not `BEGIN`); transactions
    start with `BEGIN` (MySQL: a `Query` event; MariaDB: a `Gtid` event whose text is `BEGIN GTID ...`). Returns
    `{"file", "pos"}` of the group's first event (where a replay stops so that the DDL is not replayed), or None."""
    group = None
    in_transaction = False
    for row in rows:
        log_name, pos, event_type, _server, _end, info = row[:6]
        text = (info or "").strip()
        if event_type in ("Gtid", "Anonymous_Gtid"):
            group = {"file": log_name, "pos": int(pos)}
            in_transaction = text.upper().startswith("BEGIN")
            continue
        if event_type != "Query" or in_transaction:
            continue
        upper = text.upper()
        if upper == "BEGIN" or upper.startswith("XA "):
            in_transaction = True
            continue
        if is_account_statement(text) or not names_database(text, database):
            continue
        return group or {"file": log_name, "pos": int(pos)}
    return None


def position_before_first_ddl(conn, database: str, recorded: dict, max_events: int = 200000,
                              page: int = 5000) -> dict:
    """The recorded position moved forward to the start of the first DDL on `database` logged after it.

    `recorded` was read just before the first statement was handed to the executor, which may then wait (lock
    guard, replica lag) while the application still writes: those writes belong before the stop of a point-in-time
    recovery. Reads at most `max_events` events; when the DDL is not found within them, or the events cannot be read
    (BINLOG MONITOR / REPLICATION SLAVE missing), the recorded position is kept with a `note` saying why. Never
    raises."""
    if not recorded or not recorded.get("file") or recorded.get("error"):
        return recorded
    out = dict(recorded)
    try:
        names = [name for name, _size in binary_logs(conn)]
        if recorded["file"] not in names:
            out["note"] = "binary log %s is no longer listed: position as recorded" % recorded["file"]
            return out
        seen = 0
        with conn.cursor() as cur:
            for name in names[names.index(recorded["file"]):]:
                pos = recorded["pos"] if name == recorded["file"] else 4
                while seen < max_events:
                    cur.execute("SHOW BINLOG EVENTS IN %%s FROM %d LIMIT %d" % (pos, page), (name,))
                    rows = cur.fetchall()
                    seen += len(rows)
                    found = first_ddl(rows, database)
                    if found:
                        if (found["file"], found["pos"]) != (recorded["file"], recorded["pos"]):
                            out.update(found)
                            out.pop("gtid", None)  # the GTID state read with the recorded position, not this one
                            out["recorded"] = {"file": recorded["file"], "pos": recorded["pos"]}
                        return out
                    if len(rows) < page:
                        break
                    pos = int(rows[-1][4])
        out["note"] = "no DDL on %s found in the %d binary log event(s) after the recorded position: position as " \
                      "recorded" % (database, seen)
    except Exception as exc:  # noqa: BLE001 - a missing privilege or a purged file: the recorded position stands
        args = getattr(exc, "args", ())
        out["note"] = "the binary log events could not be read (%s): position as recorded" % (
            "(%s) %s" % (args[0], args[1]) if len(args) > 1 else exc)
    return out


def writes_summary(tally: dict) -> str:
    """One line for people: `12 transactions (340 row events, 0 statements) on shop, 1.2 MiB of binary log`."""
    text = "%d transaction(s) (%d row event(s), %d statement(s)) on the database, %s of binary log in all" % (
        tally.get("transactions", 0), tally.get("row_events", 0), tally.get("statement_events", 0),
        human_bytes(tally.get("bytes", 0)))
    if not tally.get("complete", True):
        text += " (at least: the count stopped at its time budget)"
    return text


# -- fetching binary log files --------------------------------------------------------------------------------------
def binlog_tool(flavor: str) -> str | None:
    if flavor == "mysql":
        return client_binary("mysqlbinlog", "mariadb-binlog")
    return client_binary("mariadb-binlog", "mysqlbinlog")


def fetch_command(binary: str, option_file: str, directory: str, files) -> list:
    """Copy binary log files byte for byte over the replication protocol (`-R --raw`), credentials in the option
    file (first argument): no read access to the server's data directory is needed, only REPLICATION SLAVE."""
    return [binary, "--defaults-extra-file=%s" % option_file, "--read-from-remote-server", "--raw",
            "--result-file=%s%s" % (directory.rstrip("/"), "/")] + list(files)


def parse_check(binary: str, path: str) -> str | None:
    """Read a binary log file through to its end (as the dump is decompressed to check it); None when it parses."""
    proc = subprocess.run([binary, "--no-defaults", path],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    if proc.returncode != 0:
        return proc.stderr.decode("utf-8", "replace").strip()[-300:] or "exit %d" % proc.returncode
    return None


def fetch(params, flavor: str, files, directory: str, expected_sizes=None) -> list:
    """Fetch `files` into `directory` (created 0750), verify each (size as the server lists it for a closed file,
    parses to its end) and write `NAME.sha256` beside it. Returns [{file, path, sha256, bytes}]."""
    binary = binlog_tool(flavor)
    if not binary:
        raise BinlogError("neither mariadb-binlog nor mysqlbinlog is installed on this host")
    make_private_dirs(directory)
    staging = tempfile.mkdtemp(prefix=".fetch-", dir=directory)
    try:
        with client_option_file(params) as option_file:
            proc = subprocess.run(fetch_command(binary, option_file, staging, files), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=6 * 3600)
        if proc.returncode != 0:
            raise BinlogError("fetching binary logs %s failed (exit %d): %s" % (
                ", ".join(files), proc.returncode, scrub(proc.stderr.decode("utf-8", "replace").strip()[-500:],
                                                         params)))
        out = []
        for name in files:
            part = os.path.join(staging, name)
            if not os.path.isfile(part):
                raise BinlogError("binary log %s was not received" % name)
            size = os.path.getsize(part)
            want = (expected_sizes or {}).get(name)
            if want is not None and size != want:
                raise BinlogError("binary log %s arrived with %d bytes, the server lists %d: the copy is incomplete"
                                  % (name, size, want))
            problem = parse_check(binary, part)
            if problem:
                raise BinlogError("binary log %s does not read through to its end: %s" % (name, problem))
            digest = sha256_of(part)
            os.chmod(part, 0o640)
            final = os.path.join(directory, name)
            os.replace(part, final)
            write_atomic(final + ".sha256", codec.sha256_line(digest, name))
            out.append({"file": name, "path": final, "sha256": digest, "bytes": size})
        return out
    finally:
        for name in os.listdir(staging):
            try:
                os.unlink(os.path.join(staging, name))
            except OSError:
                pass
        os.rmdir(staging)


def verify_archived(path: str) -> dict:
    """An archived binary log with its `.sha256` beside it: {sha256, bytes}; BinlogError on a mismatch."""
    try:
        with open(path + ".sha256") as handle:
            expected = handle.read().split()[0].lower()
    except (OSError, IndexError):
        raise BinlogError("%s has no .sha256 beside it: not an archived binary log" % path) from None
    actual = sha256_of(path)
    if actual != expected:
        raise BinlogError("checksum mismatch for archived binary log %s: %s.sha256 says %s, the file has %s"
                          % (path, path, expected, actual))
    return {"sha256": actual, "bytes": os.path.getsize(path)}


# -- replaying ------------------------------------------------------------------------------------------------------
def replay_command(binary: str, flavor: str, paths, database: str, target: str, start: dict, stop: dict) -> list:
    """The decoder's command: the events of `database` from `start` to `stop` in the local files `paths`, rewritten
    to act on `target`.

    `--database` (the filter works on local files only) takes the original name on MariaDB and the rewritten one on
    MySQL, whose mysqlbinlog rewrites first. MySQL's --skip-gtids: replayed on the server that wrote them, its GTIDs
    are already executed and every transaction would be skipped. `--no-defaults`: reading local files needs no
    account."""
    cmd = [binary, "--no-defaults"]
    if target != database:
        cmd.append("--rewrite-db=%s->%s" % (database, target))
    cmd.append("--database=%s" % (target if flavor == "mysql" else database))
    if flavor == "mysql":
        cmd.append("--skip-gtids")
    else:
        cmd.append("--skip-gtid-strict-mode")
    first, last = os.path.basename(paths[0]), os.path.basename(paths[-1])
    if first != start["file"] or last != stop["file"]:
        raise BinlogError("the files to replay run from %s to %s, not from %s to %s" % (
            first, last, start["file"], stop["file"]))
    cmd += ["--start-position=%d" % start["pos"], "--stop-position=%d" % stop["pos"]]
    return cmd + list(paths)


class GtidLineFilter:
    """Stream filter of a MariaDB replay: drops the lines that set a transaction's original GTID and server id.

    Feed chunks with `feed()`, then `flush()`; both return the bytes to pass on. `dropped` counts lines removed."""

    def __init__(self):
        self.carry = b""
        self.dropped = 0

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk
        cut = data.rfind(b"\n") + 1
        complete, self.carry = data[:cut], data[cut:]
        return b"".join(self._line(line) for line in complete.splitlines(keepends=True))

    def flush(self) -> bytes:
        rest, self.carry = self.carry, b""
        return self._line(rest)

    def _line(self, line: bytes) -> bytes:
        if line.startswith(b"/*M!100001 SET @@session.") and _MARIADB_GTID_LINE_RE.match(line):
            self.dropped += 1
            return b""
        return line


def replay(params, flavor: str, paths, database: str, target: str, start: dict, stop: dict) -> dict:
    """Replay the events of `database` from `start` to `stop` into `target`: decoder | GTID filter | client.

    Both processes' exit statuses are checked; the client's error (never the statements) is reported."""
    binary = binlog_tool(flavor)
    client = client_binary("mariadb", "mysql")
    if not binary or not client:
        raise BinlogError("mariadb-binlog (or mysqlbinlog) and the mariadb (or mysql) client are needed to replay "
                          "binary logs")
    cmd = replay_command(binary, flavor, paths, database, target, start, stop)
    filt = GtidLineFilter() if flavor == "mariadb" else None
    started = time.monotonic()
    with client_option_pipe(params, client=client) as options:
        out = stream_into_client(cmd, [client, options.arg, "--batch", "--max-allowed-packet=1G", "--", target],
                                 filt=filt, pass_fds=options.pass_fds)
    errors = []
    if out.producer_rc != 0:
        errors.append("%s exited %d: %s" % (os.path.basename(binary), out.producer_rc, out.producer_err[-500:]))
    if out.client_rc != 0:
        errors.append("the client exited %d: %s" % (out.client_rc, redact_values(scrub(out.client_err[-500:],
                                                                                        params))))
    if errors:
        raise BinlogError("replaying the binary logs of %s from %s to %s into %s failed: %s" % (
            database, describe(start), describe(stop), target, "; ".join(errors)))
    return {"bytes_decoded": out.moved, "gtid_lines_dropped": filt.dropped if filt else 0,
            "seconds": round(time.monotonic() - started, 3), "from": start, "to": stop,
            "files": [os.path.basename(p) for p in paths]}
