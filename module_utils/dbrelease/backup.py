"""The backup codec: names, compressors and their extensions, dump and (de)compression commands, the trailer and
header of a dump, manifests, checksum lines. The one owner of these: the backup phase, the restore test, the
rollback (db_restore) and its safety dump all use it.

Stdlib only (it runs on target hosts). Nothing here touches the database, the disk or a process: the
streaming engine is `backup_stream.py`, the comparison of a restored copy is `backup_compare.py`.
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.units import human_bytes

COMPRESSIONS = ("gzip", "zstd")
EXTENSIONS = {"gzip": ".sql.gz", "zstd": ".sql.zst"}
# A mysqldump/mariadb-dump trailer: "-- Dump completed on 2026-11-28  6:18:14" (date optional with
# --skip-dump-date: "-- Dump completed"). It must be the last non-empty line of the dump.
_TRAILER_RE = re.compile(rb"-- Dump completed(?: on (?P<when>[0-9: -]+?))?\s*$")
_SAFE_LABEL_RE = re.compile(r"[^A-Za-z0-9._-]+")
_BINLOG_RE = re.compile(r"CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='(?P<file>[^']+)',\s*"
                        r"(?:MASTER|SOURCE)_LOG_POS=(?P<pos>\d+)")
_GTID_MARIADB_RE = re.compile(r"SET GLOBAL gtid_slave_pos\s*=\s*'(?P<gtid>[^']*)'")
_GTID_MYSQL_RE = re.compile(r"SET @@GLOBAL.GTID_PURGED\s*=\s*(?:/\*!80000 '\+'\*/\s*)?'(?P<gtid>[^']*)'", re.I)
_TIMESTAMP_RE = re.compile(r"_(\d{8}T\d{6}Z)\.sql\.(?:gz|zst)$")


class BackupError(Exception):
    """A backup failure whose message is safe to show (names files and checks, never a password)."""

    def __init__(self, msg, check=None, **details):
        super().__init__(msg)
        self.check = check
        self.details = details


def safe_label(label: str) -> str:
    """A file-name-safe version of a release label (`v1.2.0/canonical` -> `v1.2.0_canonical`)."""
    cleaned = _SAFE_LABEL_RE.sub("_", label or "").strip("._-")
    return cleaned[:64]


def backup_file_name(database: str, label: str, compression: str, stamp: str) -> str:
    """`<db>_<label>_<stamp>.sql.gz`; the label is optional."""
    if compression not in EXTENSIONS:
        raise ValueError("unknown compression %r, expected one of %s" % (compression, ", ".join(COMPRESSIONS)))
    parts = [database]
    if safe_label(label):
        parts.append(safe_label(label))
    parts.append(stamp)
    return "_".join(parts) + EXTENSIONS[compression]


def partial_name(final_name: str) -> str:
    """The hidden name a dump is written under until verified: nothing globbing `*.sql.gz` picks it up."""
    return ".%s.partial" % final_name


def manifest_name(final_name: str) -> str:
    return final_name + ".manifest.json"


def checksum_name(final_name: str) -> str:
    return final_name + ".sha256"


def compression_of(path: str) -> str | None:
    for compression, ext in EXTENSIONS.items():
        if path.endswith(ext):
            return compression
    return None


def stamp_of(name: str) -> str | None:
    match = _TIMESTAMP_RE.search(name)
    return match.group(1) if match else None


def candidate_matches(name: str, database: str, label: str | None = None) -> bool:
    """Whether a file name in the backup dir is a final backup of `database` (and of `label` when given).

    The manifest is the authority on the database; this only filters names cheaply. Hidden partials never match.
    """
    if name.startswith(".") or compression_of(name) is None or stamp_of(name) is None:
        return False
    prefix = database + "_"
    if label is not None:
        prefix += (safe_label(label) + "_") if safe_label(label) else ""
        return name.startswith(prefix) and name[len(prefix):].startswith(stamp_of(name))
    return name.startswith(prefix)


# -- commands ---------------------------------------------------------------------------------------------------
def position_options(server: dict, log_bin: bool) -> list[str]:
    """Options that write the binlog position (and GTID) as a comment, chosen by server flavour and version."""
    if not log_bin:
        return []
    version = tuple(server.get("version_tuple") or (0, 0, 0))
    if server.get("flavor") == "mariadb":
        return ["--master-data=2", "--gtid"]
    if version >= (8, 0, 26):
        return ["--source-data=2"]
    return ["--master-data=2"]


def dump_command(binary: str, option_file: str, database: str, position: list[str], extra=()) -> list[str]:
    """The dump command: option file FIRST, one database WITHOUT --databases (no CREATE DATABASE/USE in it)."""
    if not database or database.startswith("-"):
        raise ValueError("invalid database name %r" % (database,))
    return [binary, "--defaults-extra-file=%s" % option_file, "--single-transaction", "--routines", "--events",
            "--triggers", "--hex-blob", "--max-allowed-packet=1G", "--default-character-set=utf8mb4",
            *position, *extra, database]


IGZIP_LEVELS = (1, 2, 3)


def compress_command(compression: str, tools: dict, level: int | None = None, threads: int = 0) -> list[str]:
    """Compressor writing to stdout.

    gzip (same .gz format whichever writes it): igzip (ISA-L) for levels 1-3 when installed, which costs about a
    quarter of pigz's CPU for a smaller file at level 1, so on a small host the dump keeps its speed; else pigz
    (all cores), else gzip. Level 0 (the tool's default) and levels above 3 use pigz/gzip.
    zstd: -T<threads> (0: one per core)."""
    if compression == "gzip":
        if tools.get("igzip") and level in IGZIP_LEVELS:
            return [tools["igzip"], "-c", "-%d" % level] + (["-T%d" % threads] if threads else [])
        binary = tools.get("pigz") or tools.get("gzip")
        if not binary:
            raise BackupError("none of igzip, pigz or gzip is installed on this host", check="tools")
        cmd = [binary, "-c"]
        if tools.get("pigz") and threads:
            cmd.append("-p%d" % threads)
        if level:
            cmd.append("-%d" % level)
        return cmd
    if compression == "zstd":
        if not tools.get("zstd"):
            raise BackupError("zstd is not installed on this host (backup_compression: zstd); install zstd or "
                              "set backup_compression: gzip", check="tools")
        cmd = [tools["zstd"], "-c", "-q", "-T%d" % threads]
        if level:
            cmd.append("-%d" % level)
        return cmd
    raise ValueError("unknown compression %r" % compression)


def decompress_command(compression: str, tools: dict) -> list[str]:
    if compression == "gzip":
        # igzip -dc inflates about 3x faster than pigz -dc, which is about twice gzip -dc.
        binary = tools.get("igzip") or tools.get("pigz") or tools.get("gzip")
        if not binary:
            raise BackupError("none of igzip, pigz or gzip is installed on this host: cannot read a .sql.gz "
                              "backup", check="tools")
        return [binary, "-dc"]
    if compression == "zstd":
        if not tools.get("zstd"):
            raise BackupError("zstd is not installed on this host: cannot read a .sql.zst backup", check="tools")
        return [tools["zstd"], "-dc", "-q"]
    raise ValueError("unknown compression %r" % compression)


# -- the dump's text ---------------------------------------------------------------------------------------------
def trailer_line(tail: bytes) -> str | None:
    """The completion trailer if it is the last non-empty line of `tail` (the end of the dump), else None."""
    lines = [line for line in tail.rstrip(b"\r\n").split(b"\n")[-2:] if line.strip()]
    if not lines:
        return None
    last = lines[-1].strip()
    if _TRAILER_RE.match(last):
        return last.decode("utf-8", "replace")
    return None


def parse_position(head: str) -> dict:
    """Binlog file/position and GTID from the header comments written by --master-data=2/--source-data=2."""
    position = {}
    match = _BINLOG_RE.search(head)
    if match:
        position["binlog_file"] = match.group("file")
        position["binlog_pos"] = int(match.group("pos"))
    for regex in (_GTID_MARIADB_RE, _GTID_MYSQL_RE):
        match = regex.search(head)
        if match:
            position["gtid"] = match.group("gtid")
            break
    return position


def sha256_line(digest: str, name: str) -> str:
    """A line `sha256sum -c` accepts (two spaces: text mode marker)."""
    return "%s  %s\n" % (digest, name)


def parse_sha256_line(text: str) -> tuple[str, str]:
    """(digest, file name) from a `sha256sum` line; ValueError if it is not one."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line)
    if not match:
        raise ValueError("not a sha256sum line: %r" % line[:100])
    return match.group(1).lower(), match.group(2)


def build_manifest(*, database, file_name, compression, server, position, tables, sha256, bytes_compressed,
                   bytes_uncompressed, durations, tools, host, label, created, command) -> dict:
    """The manifest written beside a dump. `command` is the dump command without the option file path."""
    return {
        "format": 1,
        "database": database,
        "file": file_name,
        "label": label,
        "created": created,
        "host": host,
        "compression": compression,
        "server": {"version": server.get("version"), "flavor": server.get("flavor")},
        "position": position,
        "tables": tables,
        "sha256": sha256,
        "bytes": {"compressed": bytes_compressed, "uncompressed": bytes_uncompressed},
        "ratio": round(bytes_uncompressed / bytes_compressed, 2) if bytes_compressed else None,
        "durations_s": {k: round(v, 3) for k, v in durations.items()},
        "tools": tools,
        "command": [arg for arg in command if not arg.startswith("--defaults-extra-file=")],
    }


def progress_line(status: dict) -> str:
    """One line for the operator: what, bytes, rate, elapsed."""
    elapsed = float(status.get("elapsed_s") or 0)
    raw = int(status.get("bytes_uncompressed") or 0)
    written = int(status.get("bytes_compressed") or 0)
    rate = raw / elapsed if elapsed > 0 else 0.0
    return "%s %s: %s dumped, %s written, %s/s, %.0fs elapsed" % (
        status.get("database", "?"), status.get("stage", "?"), human_bytes(raw), human_bytes(written),
        human_bytes(rate), elapsed)
