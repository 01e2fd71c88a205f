#!/usr/bin/python
"""Ansible module: restore a database from a verified dump into a new schema, verify it, then swap it in."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_restore
short_description: Restore one database from a verified dump without ever leaving it half-restored
description:
  - Verifies the dump before anything changes - its sha256 against the recorded one (and against the
    C(NAME.sha256) file beside it, when present), that it decompresses completely and ends with the
    C(-- Dump completed) trailer - and reads what it declares (tables, views, routines, triggers, events, and
    their C(DEFINER) accounts).
  - Checks every privilege the restore needs (on the database, the staging and kept schemas, C(SET USER)/C(SUPER)
    for objects whose definer is another account, C(SUPER) or C(log_bin_trust_function_creators) for routines
    and triggers under binary logging, the replay's privileges) and refuses, changing nothing, with the full list
    of what is missing.
  - I(method=swap) - the default whenever possible - loads the dump into a new schema
    C(<database>__dbrelease_rollback_<random>) (events DISABLED there), verifies it (every object the dump
    declares is there, row counts and checksums against I(expect) when given, a checksum of every table), replays
    the binary logs into it when I(replay) is given, and only then swaps it in with one atomic
    C(RENAME TABLE) of all tables of both schemas; views, routines, triggers and events are created again in the
    database from the restored copy's definitions, events with the state they had in the dump. The database is
    then compared with the restored copy. A failure at any point before that leaves the database as it was (a
    failed swap is undone); the database as it was before the rollback is kept as
    C(<database>__before_rollback_<UTC stamp>) (its events DISABLED) until the DBA drops it, and a journal of
    the swap (definitions only, no rows) is written to I(journal_dir).
  - A swap is impossible when the account cannot create schemas beside the database, or when tables of other
    schemas have foreign keys to its tables (they would follow the tables into the kept schema). I(method=auto)
    then restores in place - a safety dump, C(DROP DATABASE), C(CREATE DATABASE) with the same character set and
    collation, the load - only after the privilege check; I(method=swap) refuses instead.
  - I(replay) - point-in-time recovery - replays the binary logs from the backup's position to a stop position
    (the one recorded just before the release's first DDL) with C(mariadb-binlog)/C(mysqlbinlog), only the events
    of the database, rewritten to the staging schema; replayed transactions get new GTIDs of this server. It is
    refused, before anything changes, when the range holds statement-format events on the database (they cannot
    be redirected safely, so C(binlog_format=ROW) is required) or when a binary log of the range is neither on the
    server nor in I(replay.binlog_dir).
  - Every client tool gets the credentials from a 0600 option file passed as its first argument; no password is
    ever on a command line. No row data is ever returned or logged.
options:
  database:
    description: Database to restore.
    type: str
    required: true
  path:
    description: Dump file on the host running the module (C(.sql.gz) or C(.sql.zst)).
    type: path
    required: true
  sha256:
    description: The checksum the release recorded for I(path).
    type: str
    required: true
  method:
    description: C(auto) swaps when possible and otherwise restores in place; C(swap) refuses when a swap is
      impossible; C(in_place) drops the database and loads the dump (after the privilege check).
    type: str
    choices: [auto, swap, in_place]
    default: auto
  keep_previous:
    description: Keep the database as it was before the rollback as C(<database>__before_rollback_<stamp>) after a
      swap (else it is dropped once the swap is verified).
    type: bool
    default: true
  expect:
    description:
      - What was recorded for this backup, checked on the restored copy before it is swapped in -
        C(objects) (count per kind), C(rows) (exact row count per table, or the restore test's
        per table C(source) and C(restored)) and C(checksums) (per table, the restore test's C(digest)). The
        backup phase's C(restore_test) record can be given as it is.
    type: dict
    default: {}
  checksums:
    description: Compute a checksum of every restored table (a full read of each) and return them.
    type: bool
    default: true
  replay:
    description:
      - Point-in-time recovery. C(start) (the backup's position, C(file)/C(pos)) and C(stop) (C(file)/C(pos)),
        and optionally C(binlog_dir), a directory on this host holding archived binary logs with their
        C(.sha256) (used for files the server no longer has).
    type: dict
  safety_dump_dir:
    description: Directory to dump the current database into before anything changes. Empty - no safety dump.
    type: path
    default: ""
  journal_dir:
    description: Directory for the swap's journal (and the binary logs fetched for a replay). Empty - the
      directory of I(path).
    type: path
    default: ""
  label:
    description: Label in the names of the safety dump and the journal (the release version).
    type: str
    default: rollback
  character_set:
    description: Default character set of the restored database. Empty - the one the database has now.
    type: str
    default: ""
  collation:
    description: Default collation of the restored database. Empty - as for I(character_set).
    type: str
    default: ""
  lock_wait_timeout:
    description: Seconds the swap's RENAME TABLE waits for metadata locks held by other sessions before giving up
      (nothing is renamed then).
    type: int
    default: 60
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: verifies the dump, checks the privileges, the method and the binary logs, and returns the plan;
      changes nothing.
  diff_mode:
    support: partial
    details: the plan, as the after text.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Restore the release's backup
  db_restore:
    database: shop
    path: /var/backups/dbrelease/shop_v1.2.0_20261128T061814Z.sql.gz
    sha256: "{{ backup.sha256 }}"
    expect: {rows: {orders: 1200, users: 310}}
    safety_dump_dir: /var/backups/dbrelease
  no_log: true
"""

RETURN = r"""
database:
  description: Database restored.
  returned: always
  type: str
path:
  description: Dump restored.
  returned: always
  type: str
sha256:
  description: Checksum verified.
  returned: success
  type: str
bytes:
  description: Size of the dump file.
  returned: success
  type: int
method:
  description: C(swap) or C(in_place), and C(method_reason) why a swap was impossible.
  returned: success
  type: str
staging:
  description: The schema the dump was restored into first (dropped after the swap).
  returned: success
  type: str
kept:
  description: The schema holding the database as it was before the rollback (empty when not kept).
  returned: success
  type: str
journal:
  description: The swap's journal file.
  returned: success
  type: str
verified:
  description: C(objects) (counts per kind), C(tables_checksummed), C(rows) (per table), C(checksums) (per table),
    C(expected) (what I(expect) held), C(problems) (empty on success).
  returned: success
  type: dict
missing_privileges:
  description: Privileges the restore needs and the account lacks (the module refused).
  returned: on refusal
  type: list
pitr:
  description: The replay - C(from), C(to), C(files), C(transactions), C(row_events), C(seconds).
  returned: when I(replay) was given
  type: dict
character_set:
  description: Default character set of the restored database.
  returned: success
  type: str
collation:
  description: Default collation of the restored database.
  returned: success
  type: str
safety_dump:
  description: C(path), C(sha256) and C(bytes) of the dump taken before anything changed ({} if none).
  returned: success
  type: dict
earlier_rollbacks:
  description: Schemas earlier rollbacks of this database left - C(kept) (databases as they were before them) and
    C(staging) (copies of rollbacks that did not finish).
  returned: success
  type: dict
plan:
  description: What the module would do (check mode) or did.
  returned: success
  type: str
caveats:
  description: Things done with a caveat (an object of the previous database that could not be kept, the staging
    schema of a rollback that did not finish).
  returned: success
  type: list
seconds:
  description: Wall time of the restore; C(durations_s) per step.
  returned: success
  type: float
record:
  description: What the release record keeps (phases.rollback) - C(database), C(restored_from), C(sha256), C(bytes),
    C(method), C(method_reason), C(kept), C(journal), C(verified) (counts and problems, no checksums), C(pitr),
    C(character_set), C(collation), C(safety_dump), C(caveats), C(earlier_rollbacks), C(seconds), C(plan).
  returned: success
  type: dict
"""

import os
import re
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_compare, backup_stream, binlog, leftovers
from ansible.module_utils.dbrelease import rollback_restore as rr
from ansible.module_utils.dbrelease.backup_files import sha256_of
from ansible.module_utils.dbrelease.clock import utc_now_iso, utc_stamp
from ansible.module_utils.dbrelease.db import (  # noqa: I001 (module_utils import, resolved by Ansible)
    DbError,
    client_binary,
    client_option_file,
    connect,
    connection_argument_spec,
    endpoint,
    quote_ident,
    require_pymysql,
    scrub,
    server_info,
)
from ansible.module_utils.dbrelease.files import make_private_dirs, write_atomic

RestoreError = rr.RestoreError
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_checksum_file(text: str, name: str) -> str | None:
    """The sha256 for `name` in `sha256sum` output (`HEX  NAME` or `HEX *NAME`, the codec's format); None when
    absent."""
    for line in text.splitlines():
        try:
            digest, listed = codec.parse_sha256_line(line)
        except ValueError:
            continue
        if os.path.basename(listed) == name:
            return digest
    return None


def verify_checksum(path: str, expected: str) -> dict:
    """The file is the one the release took: its sha256 is the recorded one and the NAME.sha256 beside it agrees."""
    if not os.path.isfile(path):
        raise RestoreError("backup %s does not exist on this host" % path)
    expected = (expected or "").strip().lower()
    if not _HEX64.match(expected):
        raise RestoreError("the recorded sha256 of %s is not a sha256 (%r)" % (path, expected))
    actual = sha256_of(path)
    if actual != expected:
        raise RestoreError("checksum mismatch for %s: the release recorded %s, the file has %s; refusing to restore "
                           "a backup that is not the one taken" % (path, expected, actual))
    sidecar = path + ".sha256"
    if os.path.exists(sidecar):
        with open(sidecar) as handle:
            listed = parse_checksum_file(handle.read(), os.path.basename(path))
        if listed is None:
            raise RestoreError("%s does not list %s" % (sidecar, os.path.basename(path)))
        if listed != actual:
            raise RestoreError("checksum mismatch for %s: %s says %s, the file has %s; refusing to restore"
                               % (path, sidecar, listed, actual))
    return {"sha256": actual, "bytes": os.path.getsize(path)}


def quote_charset(name: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]+$", name or ""):
        raise RestoreError("invalid character set or collation name %r" % (name,))
    return name


# -- reading the server --------------------------------------------------------------------------------------------
def database_charset(conn, database):
    with conn.cursor() as cur:
        cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME = %s", (database,))
        row = cur.fetchone()
        if row:
            return row[0], row[1], True
        cur.execute("SELECT @@character_set_server, @@collation_server")
        row = cur.fetchone()
        return row[0], row[1], False


def binlog_flags(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators")
        log_bin, trust = cur.fetchone()
    return {"enabled": str(log_bin).upper() in ("1", "ON"), "trust": str(trust).upper() in ("1", "ON")}


def object_names(conn, schema: str) -> dict:
    """{kind: [names]} of a schema, named as the dump scanner names them (`procedure p`, `function f`)."""
    out = {kind: [] for kind in backup_compare.KINDS}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,))
        for name, kind in cur.fetchall():
            out["views" if kind == "VIEW" else "tables"].append(name)
        cur.execute("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                    (schema,))
        out["routines"] = ["%s %s" % (kind.lower(), name) for kind, name in cur.fetchall()]
        cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (schema,))
        out["triggers"] = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (schema,))
        out["events"] = [row[0] for row in cur.fetchall()]
    return {kind: sorted(names) for kind, names in out.items()}


def schema_exists(conn, name) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return bool(cur.fetchone()[0])


# -- the decision --------------------------------------------------------------------------------------------------
def swap_obstacles(conn, acct, database, staging, kept, exists) -> list:
    """Why a swap cannot be done here (empty: it can)."""
    reasons = []
    if not exists:
        reasons.append("database %s does not exist: there is nothing to swap out" % database)
        return reasons
    for name in (staging, kept):
        if not rr.holds(acct["grants"], "CREATE", name):
            reasons.append("the account %s cannot create the schema %s (CREATE on it, e.g. GRANT ALL ON `%s%%`.*)"
                           % (acct["user"], name, database.replace("_", "\\_") + "\\_\\_"))
            break
    inbound = rr.inbound_foreign_keys(conn, database)
    if inbound:
        reasons.append("tables of other schemas have foreign keys to %s's tables, which would follow the tables "
                       "into the kept schema: %s" % (database, ", ".join(inbound)))
    return reasons


def privilege_needs(method, database, staging, kept, declared, exists) -> dict:
    load = rr.load_needs(declared)
    objects = [("CREATE VIEW", "views"), ("CREATE ROUTINE", "routines"), ("ALTER ROUTINE", "dropping routines"),
               ("TRIGGER", "triggers"), ("EVENT", "events"), ("SHOW VIEW", "reading the views")]
    if method == "swap":
        return {
            staging: load + [("DROP", "DROP DATABASE of the staging schema"), ("ALTER", "RENAME TABLE out of it")],
            kept: [("CREATE", "CREATE DATABASE and RENAME TABLE into it"), ("INSERT", "RENAME TABLE into it"),
                   ("DROP", "dropping it if the swap is undone")] + objects,
            database: [("ALTER", "RENAME TABLE"), ("DROP", "RENAME TABLE and dropping the previous views"),
                       ("CREATE", "RENAME TABLE into it"), ("INSERT", "RENAME TABLE into it")] + objects,
        }
    needs = load + [("CREATE", "CREATE DATABASE")]
    if exists:
        needs.append(("DROP", "DROP DATABASE"))
    return {database: needs}


def replay_plan(conn, p, server, database, workdir) -> dict:
    """Check a point-in-time replay can be done, before anything changes: positions, files, formats."""
    spec = p["replay"]
    start, stop = binlog.normalise_position(spec.get("start")), binlog.normalise_position(spec.get("stop"))
    if not start:
        raise RestoreError("point-in-time recovery needs the backup's binary log position, and none was recorded "
                           "for %s (the server wrote no binary log when it was taken?)" % p["path"])
    if not stop:
        raise RestoreError("point-in-time recovery needs the position recorded just before the release's first "
                           "DDL, and none was recorded (did the schema phase run?)")
    if binlog.position_key(stop) < binlog.position_key(start):
        raise RestoreError("the stop position %s is before the backup's position %s" % (
            binlog.describe(stop), binlog.describe(start)))
    archive = spec.get("binlog_dir") or ""
    try:
        logs = binlog.binary_logs(conn)
    except Exception as exc:  # noqa: BLE001
        raise RestoreError("cannot list the server's binary logs (SHOW BINARY LOGS: %s)"
                           % rr.server_error(exc)) from None
    on_server = dict(logs)
    wanted = [name for name, _ in logs if binlog.sequence(start["file"]) <= binlog.sequence(name)
              <= binlog.sequence(stop["file"])]
    if not wanted or wanted[0] != start["file"] or wanted[-1] != stop["file"]:
        # Some are gone from the server: every file of the range must then be in the archive.
        wanted = []
        for seq in range(binlog.sequence(start["file"]), binlog.sequence(stop["file"]) + 1):
            name = re.sub(r"\d+$", lambda m, s=seq: str(s).zfill(len(m.group(0))), start["file"])
            wanted.append(name)
    sources, missing = {}, []
    for name in wanted:
        archived = os.path.join(archive, name) if archive else ""
        if archived and os.path.isfile(archived):
            try:
                binlog.verify_archived(archived)
            except binlog.BinlogError as exc:
                raise RestoreError("%s; nothing was changed" % exc) from None
            sources[name] = "archive"
        elif name in on_server:
            sources[name] = "server"
        else:
            missing.append(name)
    if missing:
        raise RestoreError("point-in-time recovery from %s to %s needs binary log(s) %s, which are neither on the "
                           "server nor in %s" % (binlog.describe(start), binlog.describe(stop), ", ".join(missing),
                                                 archive or "an archive (backup_binlog_archive was off)"))
    if stop["pos"] > on_server.get(stop["file"], stop["pos"]):
        raise RestoreError("binary log %s holds %d bytes, less than the stop position %d" % (
            stop["file"], on_server[stop["file"]], stop["pos"]))
    tally = None
    if all(source == "server" for source in sources.values()):
        try:
            tally = binlog.writes_since(conn, database, start, stop, max_seconds=600)
        except binlog.BinlogError as exc:
            raise RestoreError(str(exc)) from None
        if tally["statement_events"]:
            raise RestoreError(
                "point-in-time recovery refused: the binary logs from %s to %s hold %d statement-format event(s) "
                "on %s (at %s), which cannot be redirected to the staging schema safely (a statement naming %s "
                "would act on the live database). It needs binlog_format=ROW on the server; restore mode (without "
                "the replay) or schema mode are still possible" % (
                    binlog.describe(start), binlog.describe(stop), tally["statement_events"], database,
                    ", ".join(tally["statement_positions"]), database))
    elif (spec.get("format") or "").upper() != "ROW":
        raise RestoreError("point-in-time recovery refused: binary log(s) of the range are only in the archive, so "
                           "they cannot be checked for statement-format events, and the backup phase did not record "
                           "binlog_format=ROW (it recorded %r)" % (spec.get("format") or "nothing"))
    return {"start": start, "stop": stop, "files": wanted, "sources": sources, "sizes": on_server,
            "archive": archive, "tally": tally, "workdir": workdir}


def fetch_binlogs(p, server, plan) -> list:
    """Local paths of the range's binary logs: the archive's (checksums verified) and the server's (fetched)."""
    paths, fetch = [], []
    for name in plan["files"]:
        if plan["sources"][name] == "server":
            fetch.append(name)  # the archived ones were verified by replay_plan
    fetched = {}
    if fetch:
        closed = {n: plan["sizes"][n] for n in fetch if n != plan["files"][-1]}
        try:
            for item in binlog.fetch(p, server["flavor"], fetch, plan["workdir"], expected_sizes=closed):
                fetched[item["file"]] = item["path"]
        except binlog.BinlogError as exc:
            raise RestoreError(str(exc)) from None
    for name in plan["files"]:
        paths.append(fetched.get(name) or os.path.join(plan["archive"], name))
    return paths


# -- safety dump ---------------------------------------------------------------------------------------------------
def safety_dump(params, tools, database, directory, label):
    try:
        compress = codec.compress_command("gzip", tools)
    except codec.BackupError as exc:
        raise RestoreError("the safety dump needs a gzip compressor: %s" % exc) from None
    if not tools["dump"]:
        raise RestoreError("mariadb-dump (or mysqldump) is needed for the safety dump")
    make_private_dirs(directory)
    final = os.path.join(directory, codec.backup_file_name(
        database, "before-rollback_%s" % (codec.safe_label(label) or "rollback"), "gzip", utc_stamp()))
    fd, partial = tempfile.mkstemp(prefix=".%s." % os.path.basename(final), suffix=".partial", dir=directory)
    os.close(fd)
    try:
        with client_option_file(params) as option_file, open(partial, "wb") as out:
            first = subprocess.Popen([tools["dump"], "--defaults-extra-file=%s" % option_file, "--single-transaction",
                                      "--routines", "--events", "--triggers", "--hex-blob", "--", database],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            second = subprocess.Popen(compress, stdin=first.stdout, stdout=out, stderr=subprocess.PIPE)
            first.stdout.close()
            err2 = second.stderr.read()
            rc2 = second.wait()
            err1 = first.stderr.read()
            rc1 = first.wait()
        if rc1 or rc2:
            raise RestoreError("the safety dump of %s failed, nothing was changed: %s" % (database, scrub(
                (err1 or err2).decode("utf-8", "replace").strip()[-500:], params)))
        os.chmod(partial, 0o640)
        digest = sha256_of(partial)
        os.replace(partial, final)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    write_atomic(codec.checksum_name(final), codec.sha256_line(digest, os.path.basename(final)))
    return {"path": final, "sha256": digest, "bytes": os.path.getsize(final)}


# -- the work ------------------------------------------------------------------------------------------------------
def verify_copy(conn, schema, dump, expect, want_checksums, tables=None) -> dict:
    names = object_names(conn, schema)
    sums = rr.table_checksums(conn, schema, tables or names["tables"]) if want_checksums else {}
    if not want_checksums and expect.get("rows"):
        sums = {t: {"rows": n} for t, n in backup_compare.row_counts(conn, schema, names["tables"]).items()}
    problems = rr.verification_problems(dump["declared"], names, sums, expect)
    return {"objects": {kind: len(v) for kind, v in names.items()}, "tables_checksummed": len(sums),
            "rows": {t: s["rows"] for t, s in sums.items()},
            "checksums": {t: s["checksum"] for t, s in sums.items() if "checksum" in s},
            "expected": sorted(k for k, v in expect.items() if v), "problems": problems}


def restore(module, p):
    timer = rr.Timer()
    database = p["database"]
    tools = backup_stream.find_tools()
    if not tools["client"]:
        raise RestoreError("the mariadb (or mysql) client is not installed on this host")
    checked = verify_checksum(p["path"], p["sha256"])
    dump = rr.read_dump(p["path"], tools)
    timer.mark("verify_dump")
    try:
        conn = connect(p)
    except DbError as exc:
        raise RestoreError(str(exc)) from None
    when = utc_stamp()
    journal_dir = p["journal_dir"] or os.path.dirname(os.path.abspath(p["path"]))
    try:
        server = server_info(conn)
        charset, collation, exists = database_charset(conn, database)
        charset = quote_charset(p["character_set"] or charset)
        collation = quote_charset(p["collation"] or collation)
        staging = rr.staging_name(database)
        kept = rr.kept_name(database, when)
        acct = rr.account(conn)
        flags = binlog_flags(conn)
        obstacles = [] if p["method"] == "in_place" else swap_obstacles(conn, acct, database, staging, kept, exists)
        if p["method"] == "swap" and obstacles:
            raise RestoreError("a swap is impossible, so nothing was changed (method=swap): %s. Fix that, or set "
                               "rollback_method: in_place to drop and reload the database" % "; ".join(obstacles),
                               swap_obstacles=obstacles)
        method = "swap" if not obstacles and p["method"] != "in_place" else "in_place"
        needs = privilege_needs(method, database, staging, kept, dump["declared"], exists)
        definers = rr.object_definers(conn, database) if exists and method == "swap" else set()
        missing = rr.missing_privileges(acct, server, dump, needs, flags, replay=bool(p["replay"]),
                                        other_definers=definers)
        if exists and method == "swap":
            try:
                rr.capture(conn, database)  # the definitions the swap keeps aside must be readable
            except RestoreError as exc:
                missing.append("SELECT on mysql.proc, or SHOW_ROUTINE on MySQL (%s)" % exc)
        if missing:
            raise RestoreError("refused before changing anything: the account %s lacks what the restore of %s "
                               "needs (%s method): %s" % (acct["user"], p["path"], method.replace("_", "-"),
                                                          "; ".join(missing)),
                               missing_privileges=missing, method=method)
        plan_replay = replay_plan(conn, p, server, database, os.path.join(journal_dir, ".%s_pitr_%s" % (
            database, when))) if p["replay"] else None
        timer.mark("checks")
        result = dict(changed=True, database=database, path=p["path"], sha256=checked["sha256"],
                      bytes=checked["bytes"], character_set=charset, collation=collation, method=method,
                      method_reason="; ".join(obstacles), staging=staging if method == "swap" else "",
                      kept=kept if method == "swap" else "", safety_dump={}, caveats=[],
                      declared={k: len(v) for k, v in dump["declared"].items()}, existed=exists,
                      journal=os.path.join(journal_dir, "%s_rollback_%s_%s.journal.json" % (
                          database, (codec.safe_label(p["label"]) or "rollback"), when)) if method == "swap" else "")
        result["earlier_rollbacks"] = rr.earlier_schemas(conn, database)
        if result["earlier_rollbacks"]["staging"]:
            result["caveats"].append("a rollback that did not finish left %s (its journal, beside the backup, says how "
                                     "far it went); this one does not touch it" % ", ".join(
                                         result["earlier_rollbacks"]["staging"]))
        result["plan"] = plan_text(p, result, plan_replay)
        if plan_replay:
            result["pitr"] = {"from": plan_replay["start"], "to": plan_replay["stop"], "files": plan_replay["files"],
                              "sources": plan_replay["sources"]}
            if plan_replay["tally"]:
                result["pitr"].update({k: plan_replay["tally"][k] for k in ("transactions", "row_events")})
        if module._diff:
            result["diff"] = dict(before="database %s: current state\n" % database, after=result["plan"] + "\n")
        if module.check_mode:
            result["seconds"] = timer.total()
            return result
        if exists and p["safety_dump_dir"]:
            result["safety_dump"] = safety_dump(p, tools, database, p["safety_dump_dir"], p["label"])
            timer.mark("safety_dump")
        if method == "swap":
            swap_in(conn, p, tools, dump, result, plan_replay, server, timer)
        else:
            in_place(conn, p, tools, dump, result, plan_replay, server, timer)
    finally:
        conn.close()
    result["durations_s"] = timer.marks
    result["seconds"] = timer.total()
    return result


def plan_text(p, result, plan_replay) -> str:
    parts = []
    if result["method"] == "swap":
        parts.append("load %s into the new schema %s, verify it (%d tables, %d views, %d routines, %d triggers, %d "
                     "events declared by the dump; checksums%s)" % (
                         p["path"], result["staging"], result["declared"]["tables"], result["declared"]["views"],
                         result["declared"]["routines"], result["declared"]["triggers"],
                         result["declared"]["events"],
                         ", row counts" if (p["expect"] or {}).get("rows") else ""))
        if plan_replay:
            parts.append("replay the binary logs of %s from %s to %s into it" % (
                p["database"], binlog.describe(plan_replay["start"]), binlog.describe(plan_replay["stop"])))
        parts.append("swap it in as %s with one RENAME TABLE%s" % (
            p["database"], ", keeping the database as it is now as %s" % result["kept"] if p["keep_previous"] else
            " (the database as it is now is dropped once the swap is verified)"))
    else:
        parts.append("%sdrop database %s, create it again (%s / %s), load %s (%d bytes)%s" % (
            "in place (%s): " % result["method_reason"] if result["method_reason"] else "in place: ",
            p["database"], result["character_set"], result["collation"], p["path"], result["bytes"],
            "" if result["existed"] else " (it does not exist now)"))
        if plan_replay:
            parts.append("replay the binary logs from %s to %s into it" % (
                binlog.describe(plan_replay["start"]), binlog.describe(plan_replay["stop"])))
    return "; ".join(parts)


def drop_quietly(conn, schema) -> str | None:
    try:
        conn.ping()
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(schema))
    except Exception as exc:  # noqa: BLE001 - reported
        return "could not drop %s: %s" % (schema, rr.server_error(exc))
    return None


def replay_into(p, server, plan, target, result, timer):
    paths = fetch_binlogs(p, server, plan)
    timer.mark("fetch_binlogs")
    try:
        done = binlog.replay(p, server["flavor"], paths, p["database"], target, plan["start"], plan["stop"])
    except binlog.BinlogError as exc:
        raise RestoreError(str(exc)) from None
    finally:
        if os.path.isdir(plan["workdir"]):
            for name in os.listdir(plan["workdir"]):
                os.unlink(os.path.join(plan["workdir"], name))
            os.rmdir(plan["workdir"])
    result["pitr"].update(seconds=done["seconds"], bytes_decoded=done["bytes_decoded"])
    timer.mark("replay")


def claim_staging(conn, staging):
    """Mark the staging copy as this connection's (leftovers.claim_schema): while the connection lives, no sweep of
    killed runs' leftovers drops it; once it is gone (a killed rollback), the next run's sweep does."""
    try:
        leftovers.claim_schema(conn, staging)
    except DbError as exc:
        raise RestoreError(str(exc)) from None


def swap_in(conn, p, tools, dump, result, plan_replay, server, timer):
    database, staging = p["database"], result["staging"]
    claim_staging(conn, staging)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (
            quote_ident(staging), result["character_set"], result["collation"]))
    swapped = False
    try:
        loaded = rr.load(p, tools, p["path"], staging, disable_events=True, source=database)
        timer.mark("load")
        conn.ping()
        claim_staging(conn, staging)  # again, in case ping had to reconnect (the claim went with the connection)
        result["verified"] = verify_copy(conn, staging, dump, p["expect"] or {}, p["checksums"])
        timer.mark("verify_copy")
        if result["verified"]["problems"]:
            raise RestoreError("the restored copy %s of %s failed verification, so nothing was changed in %s: %s" % (
                staging, p["path"], database, "; ".join(result["verified"]["problems"])),
                verified=result["verified"])
        result["events_disabled_in_copy"] = loaded["events_disabled"]
        if plan_replay:
            replay_into(p, server, plan_replay, staging, result, timer)
            conn.ping()
            claim_staging(conn, staging)
        reference = backup_compare.snapshot(conn, staging)
        journal = rr.Journal(result["journal"], dump=p["path"], sha256=result["sha256"], started=utc_now_iso())
        done = rr.swap(conn, database, staging, result["kept"],
                       result["character_set"], result["collation"], dump["event_states"], journal,
                       p["lock_wait_timeout"])
        swapped = True
        kept = result["kept"]
        timer.mark("swap")
        problems = backup_compare.compare_objects(reference, backup_compare.snapshot(conn, database))
        if problems:
            undo = rr.undo_swap(conn, database, staging, kept, done["before"], done["restored"], journal,
                                p["lock_wait_timeout"])
            raise RestoreError("after the swap, %s differs from the verified copy (%s); %s" % (
                database, "; ".join(problems),
                "the swap was undone: the database is as it was before the rollback" if not undo else
                "undoing the swap failed too: %s (see the journal %s)" % ("; ".join(undo), journal.path)))
        result["caveats"] += rr.finish_swap(conn, database, staging, kept, done["before"], p["keep_previous"],
                                             journal)
        result["kept"] = kept if p["keep_previous"] else ""
        result["replaced"] = {kind: len(done["before"][kind]) for kind in ("tables", "views", "routines",
                                                                            "triggers", "events")}
        timer.mark("finish")
    finally:
        if not swapped:
            problem = drop_quietly(conn, staging)
            if problem:
                result["caveats"].append(problem)
        leftovers.release_schema_claim(conn, staging)


def in_place(conn, p, tools, dump, result, plan_replay, server, timer):
    database = p["database"]
    with conn.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0")  # other schemas' foreign keys to it (why no swap)
        cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(database))
        cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (
            quote_ident(database), result["character_set"], result["collation"]))
        cur.execute("SET SESSION foreign_key_checks = 1")
    timer.mark("drop_create")
    try:
        rr.load(p, tools, p["path"], database, disable_events=False)
    except RestoreError as exc:
        raise RestoreError("%s. The database is only partly restored (in-place restore: %s); the backup is intact, "
                           "so run the rollback again once the cause is fixed%s" % (
                               exc, result["method_reason"] or "method in_place",
                               "; the database before the rollback is in %s" % result["safety_dump"]["path"]
                               if result["safety_dump"] else "")) from None
    timer.mark("load")
    if plan_replay:
        replay_into(p, server, plan_replay, database, result, timer)
    conn.ping()
    result["verified"] = verify_copy(conn, database, dump, {} if plan_replay else (p["expect"] or {}),
                                     p["checksums"])
    timer.mark("verify")
    if result["verified"]["problems"]:
        raise RestoreError("%s was restored in place but differs from what was recorded for the backup: %s" % (
            database, "; ".join(result["verified"]["problems"])), verified=result["verified"])


def main():
    spec = connection_argument_spec()
    spec.update(
        database=dict(type="str", required=True),
        path=dict(type="path", required=True),
        sha256=dict(type="str", required=True),
        method=dict(type="str", choices=["auto", "swap", "in_place"], default="auto"),
        keep_previous=dict(type="bool", default=True),
        expect=dict(type="dict", default={}),
        checksums=dict(type="bool", default=True),
        replay=dict(type="dict"),
        safety_dump_dir=dict(type="path", default=""),
        journal_dir=dict(type="path", default=""),
        label=dict(type="str", default="rollback"),
        character_set=dict(type="str", default=""),
        collation=dict(type="str", default=""),
        lock_wait_timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    if client_binary("mariadb", "mysql") is None:
        module.fail_json(msg="the mariadb (or mysql) client is not installed on this host")
    module.params["expect"] = rr.expectations(module.params["expect"])
    try:
        result = restore(module, module.params)
    except RestoreError as exc:
        module.fail_json(msg=scrub("restore of %s as %s: %s" % (module.params["database"], endpoint(module.params),
                                                                exc), module.params),
                         database=module.params["database"], path=module.params["path"], **exc.details)
    for caveat in result["caveats"]:
        module.warn(caveat)
    module.exit_json(**with_record(result, module.check_mode))


def with_record(result, check_mode):
    """The result, with the part the release record keeps and the message the phase mechanism prints."""
    verified = result.get("verified") or {}
    result["record"] = {key: result.get(key) for key in (
        "database", "sha256", "bytes", "method", "method_reason", "kept", "journal", "pitr", "character_set",
        "collation", "safety_dump", "caveats", "earlier_rollbacks", "seconds", "plan")}
    result["record"].update(restored_from=result["path"], verified={
        key: verified.get(key) for key in ("objects", "tables_checksummed", "rows", "expected", "problems")})
    if check_mode:
        result["msg"] = "Would restore %s: %s" % (result["database"], result["plan"])
    else:
        result["msg"] = "Restored %s from %s (sha256 verified, %s bytes, %s) in %ss%s%s." % (
            result["database"], result["path"], result["bytes"],
            "swapped in after its copy %s was verified" % result["staging"] if result["method"] == "swap" else
            "in place: %s" % (result["method_reason"] or "method in_place"), result["seconds"],
            "; the database as it was before the rollback is kept as %s" % result["kept"] if result["kept"] else "",
            "; a dump of it is %s" % result["safety_dump"]["path"] if result["safety_dump"].get("path") else "")
    return result


if __name__ == "__main__":
    main()
