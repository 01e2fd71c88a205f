"""The rollback's restore: into a new schema first, verified, then swapped in; the database is never half-restored.

Stdlib plus PyMySQL only (it runs on target hosts). Used by `library/db_restore.py`.

The swap, for a database `D` restored from a dump into the staging schema `S`, keeping the database as it was in
`K` (`<D>__before_rollback_<UTC stamp>`):

1. `K` is created; `D`'s enabled events are disabled (so none fires half-way); the triggers of `D` and of `S` are
   dropped (the server refuses to move a table with triggers to another schema).
2. One `RENAME TABLE D.t TO K.t, ..., S.t TO D.t, ...`: atomic, all tables of both schemas or none. Foreign keys
   move with their tables; privileges granted on `D` or on its tables by name stay with the names, so they apply to
   the restored tables; AUTO_INCREMENT counters come with the tables.
3. Views, routines, triggers and events cannot be renamed across schemas: `D`'s are dropped and `S`'s are created
   in `D` from their `SHOW CREATE` text (read with `S` as the default database, so same-schema references are
   unqualified), each with its own `sql_mode`, `collation_connection` and (events) `time_zone`; events get back the
   state they had in the dump (the staging copy holds them DISABLED so that none fires from it).
4. `D` is compared with `S` (every object's definition, schema names normalised). Any failure in 2-4 undoes the
   swap: the restored tables go back to `S`, the kept ones back to `D`, `D`'s own views, routines, triggers and
   events are created again and its events get their state back.
5. `D`'s previous views, routines and triggers are created in `K` (events DISABLED: the kept copy must never act),
   then `S` is dropped. `K` stays until the DBA drops it (or at once with `keep_previous=false`).

A swap is impossible when the account cannot create schemas beside `D`, or when tables of other schemas have foreign
keys to `D`'s tables (they would follow the tables into `K`). The in-place method then drops `D` and loads the dump,
but only after checking every privilege the dump needs, and it refuses with the list of what is missing.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time

from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_compare as compare
from ansible.module_utils.dbrelease import grants as grants_parser
from ansible.module_utils.dbrelease.backup_io import stream_into_client
from ansible.module_utils.dbrelease.backup_restore import RestoreFilter
from ansible.module_utils.dbrelease.binlog import redact_values
from ansible.module_utils.dbrelease.clock import utc_now_iso
from ansible.module_utils.dbrelease.db import client_option_pipe, quote_ident, scrub
from ansible.module_utils.dbrelease.files import write_atomic

CHUNK = 1 << 20
STAGING_INFIX = "__dbrelease_rollback_"
KEPT_INFIX = "__before_rollback_"
TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED", "SEQUENCE")
EVENT_CLAUSE = {"ENABLED": "ENABLE", "DISABLED": "DISABLE", "SLAVESIDE_DISABLED": "DISABLE ON SLAVE"}
_EVENT_STATE_RE = re.compile(r"\s(ENABLE|DISABLE ON SLAVE|DISABLE ON REPLICA|DISABLE)"
                             r"(?=( COMMENT '(?:[^'\\]|\\.|'')*')? DO\s)")


class RestoreError(Exception):
    """A refusal or failure whose message is safe to show; `details` go into the module's result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.details = details


def _limit(database: str, suffix: str) -> str:
    return database[:64 - len(suffix)] + suffix


def staging_name(database: str, token: str | None = None) -> str:
    """`<db>__dbrelease_rollback_<token>`: the new schema the dump is restored into first."""
    return _limit(database, STAGING_INFIX + (token or secrets.token_hex(4)))


def kept_name(database: str, stamp: str) -> str:
    """`<db>__before_rollback_<stamp>`: where the database as it was before the rollback is kept."""
    return _limit(database, KEPT_INFIX + stamp)


def earlier_schemas(conn, database: str) -> dict:
    """Schemas that earlier rollbacks of `database` left: `kept` (the databases as they were before them, kept on
    purpose) and `staging` (copies of a rollback that did not finish)."""
    staging_prefix = staging_name(database, "x" * 8)[:-8]
    kept_prefix = kept_name(database, "x" * 16)[:-16]
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
        names = [row[0] for row in cur.fetchall()]
    return {"kept": [n for n in names if n.startswith(kept_prefix) and n != database],
            "staging": [n for n in names if n.startswith(staging_prefix) and n != database]}


# -- what the dump declares ----------------------------------------------------------------------------------------
_IDENT = rb"(`(?:[^`]|``)+`|[^\s(`]+)"
_DEFINER = rb"DEFINER=(`(?:[^`]|``)*`@`(?:[^`]|``)*`|\S+?)"
_DECLARATIONS = re.compile(
    rb"^(?:-- Table structure for table " + _IDENT + rb"$"
    rb"|-- Final view structure for view " + _IDENT + rb"$"
    rb"|/\*!50013 " + _DEFINER + rb" SQL SECURITY \w+ \*/$"
    rb"|/\*!50003 CREATE\*/ /\*!50017 " + _DEFINER + rb"\*/ /\*!50003 TRIGGER (?:IF NOT EXISTS )?" + _IDENT + rb" "
    rb"|/\*!50106 CREATE\*/ /\*!50117 " + _DEFINER + rb"\*/ /\*!50106 EVENT " + _IDENT + rb" (?P<event>[^\n]*)"
    rb"|CREATE (?:" + _DEFINER + rb" )?(?P<rkind>PROCEDURE|FUNCTION) " + _IDENT + rb"\s*\()",
    re.MULTILINE)
_DUMP_EVENT_STATE_RE = re.compile(rb" (ENABLE|DISABLE ON SLAVE|DISABLE ON REPLICA|DISABLE)"
                                  rb"(?: COMMENT '(?:[^'\\]|\\.|'')*')? DO ")


def unquote(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    if text.startswith("`") and text.endswith("`"):
        return text[1:-1].replace("``", "`")
    return text


def definer_account(text) -> str:
    """`` `app`@`%` `` -> `app@%` (the form CURRENT_USER() has)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    match = re.match(r"^`((?:[^`]|``)*)`@`((?:[^`]|``)*)`$", text)
    if match:
        return "%s@%s" % (match.group(1).replace("``", "`"), match.group(2).replace("``", "`"))
    return text.replace("'", "")


class DumpScanner:
    """Reads a dump's text once (fed in chunks) and keeps what it declares: the objects of each kind, their
    definers, and the state of each event. Looks only at the start of lines; row data is never kept."""

    MAX_CARRY = 8192

    def __init__(self):
        self.objects = {kind: [] for kind in compare.KINDS}
        self.definers = {}
        self.event_states = {}
        self.carry = b""
        self._view = None

    def feed(self, chunk: bytes) -> None:
        data = self.carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            self._scan(data[:cut])
            rest = data[cut:]
        else:
            rest = data
        # A long line (rows of an extended INSERT) is cut short: only its start can declare anything.
        self.carry = rest if len(rest) <= self.MAX_CARRY else rest[:self.MAX_CARRY]

    def finish(self) -> None:
        if self.carry:
            self._scan(self.carry + b"\n")
            self.carry = b""

    def _definer(self, raw, label):
        self.definers.setdefault(definer_account(raw), []).append(label)

    def _scan(self, text: bytes) -> None:
        for match in _DECLARATIONS.finditer(text):
            groups = match.groups()
            table, view, view_definer, trig_definer, trigger, ev_definer, event, ev_rest, r_definer, rkind, \
                routine = groups
            if table:
                self.objects["tables"].append(unquote(table))
            elif view:
                self._view = unquote(view)
                self.objects["views"].append(self._view)
            elif view_definer:
                self._definer(view_definer, "view %s" % (self._view or "?"))
            elif trigger:
                name = unquote(trigger)
                self.objects["triggers"].append(name)
                self._definer(trig_definer, "trigger %s" % name)
            elif event:
                name = unquote(event)
                self.objects["events"].append(name)
                self._definer(ev_definer, "event %s" % name)
                state = _DUMP_EVENT_STATE_RE.search(ev_rest or b"")
                self.event_states[name] = state.group(1).decode() if state else "ENABLE"
            elif routine:
                label = "%s %s" % (rkind.decode().lower(), unquote(routine))
                self.objects["routines"].append(label)
                if r_definer:
                    self._definer(r_definer, "routine %s" % label)
        # views declared with "Temporary table structure" placeholders are declared again as final views: count once
        self.objects["views"] = list(dict.fromkeys(self.objects["views"]))

    def declared(self) -> dict:
        return {kind: sorted(set(names)) for kind, names in self.objects.items()}


# -- reading and verifying the dump --------------------------------------------------------------------------------
def decompress_command(path: str, tools: dict) -> list:
    """The backup codec's decompressor for `path` (by its extension), reading the file."""
    compression = codec.compression_of(path)
    if compression is None:
        raise RestoreError("%s is neither .sql.gz nor .sql.zst: cannot tell how to decompress it" % path)
    try:
        return codec.decompress_command(compression, tools) + [path]
    except codec.BackupError as exc:
        raise RestoreError("no decompressor for %s: %s" % (path, exc)) from None


def read_dump(path: str, tools: dict) -> dict:
    """Decompress the whole dump once: proves the stream is intact, checks the completion trailer, and scans what it
    declares (objects, definers, event states). Raises RestoreError for a dump that must not be restored."""
    scanner = DumpScanner()
    proc = subprocess.Popen(decompress_command(path, tools), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = b""
    size = 0
    for chunk in iter(lambda: proc.stdout.read1(CHUNK), b""):
        size += len(chunk)
        scanner.feed(chunk)
        tail = (tail + chunk)[-4096:]
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stdout.close()
    proc.stderr.close()
    if proc.wait() != 0:
        raise RestoreError("%s does not decompress (%s); refusing to restore it" % (path, err))
    if not codec.trailer_line(tail):
        raise RestoreError("%s does not end with '-- Dump completed': the dump is incomplete; refusing to restore it"
                           % path)
    scanner.finish()
    return {"declared": scanner.declared(), "definers": {k: sorted(v) for k, v in scanner.definers.items()},
            "event_states": scanner.event_states, "bytes_uncompressed": size}


# -- privileges ----------------------------------------------------------------------------------------------------
def _db_pattern(pattern: str) -> re.Pattern:
    """A database-level grant's name as a regex: `%` any string, `_` any character, `\\_` and `\\%` literal."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^%s$" % "".join(out), re.DOTALL)


def holds(grants: dict, privilege: str, schema: str | None = None) -> bool:
    """Whether the parsed SHOW GRANTS (`{object: set(privileges)}`) give `privilege` on `schema`.* (global when
    `schema` is None). Table-level grants do not count: the restore creates tables."""
    for obj, privs in grants.items():
        db, _, table = obj.rpartition(".")
        if table != "*":
            continue
        if db != "*" and (schema is None or not _db_pattern(db).match(schema)):
            continue
        if privilege in privs or ("ALL" in privs and privilege != "GRANT"):
            return True
    return False


def account(conn) -> dict:
    """The connected account (`user@host` as CURRENT_USER() says) and its grants (parsed SHOW GRANTS)."""
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        current = cur.fetchone()[0]
        cur.execute("SHOW GRANTS")
        lines = [row[0] for row in cur.fetchall()]
    return {"user": current, "grants": grants_parser.parse_show_grants(lines)}


def definer_privileges(flavor: str, version) -> tuple:
    """Any one of these lets an account create objects whose DEFINER is another account."""
    if flavor == "mariadb":
        return ("SET USER", "SUPER") if tuple(version) >= (10, 5, 2) else ("SUPER",)
    return ("SET_ANY_DEFINER", "SET_USER_ID", "SUPER") if tuple(version) >= (8, 2, 0) else ("SET_USER_ID", "SUPER")


def replay_privileges(flavor: str, version) -> tuple:
    """Any one of these lets the client run the BINLOG statements of a replay."""
    if flavor == "mariadb":
        return ("BINLOG REPLAY", "SUPER") if tuple(version) >= (10, 5, 2) else ("SUPER",)
    return ("BINLOG_ADMIN", "REPLICATION_APPLIER", "SUPER")


def load_needs(declared: dict) -> list:
    """(privilege, why) pairs the load of a dump with these objects needs on the schema it is loaded into."""
    needs = [("CREATE", "CREATE TABLE"), ("DROP", "DROP TABLE IF EXISTS before each table"),
             ("INSERT", "the rows"), ("ALTER", "ALTER TABLE ... DISABLE KEYS"),
             ("LOCK TABLES", "LOCK TABLES ... WRITE")]
    if declared.get("views"):
        needs += [("CREATE VIEW", "%d view(s)" % len(declared["views"])),
                  ("SELECT", "the views' columns"), ("SHOW VIEW", "reading the views back")]
    if declared.get("routines"):
        needs += [("CREATE ROUTINE", "%d routine(s)" % len(declared["routines"])),
                  ("ALTER ROUTINE", "DROP PROCEDURE/FUNCTION IF EXISTS")]
    if declared.get("triggers"):
        needs.append(("TRIGGER", "%d trigger(s)" % len(declared["triggers"])))
    if declared.get("events"):
        needs.append(("EVENT", "%d event(s)" % len(declared["events"])))
    return needs


def missing_privileges(acct: dict, server: dict, dump: dict, schemas: dict, binlog: dict, replay=False,
                       other_definers=()) -> list:
    """Every privilege the restore needs and the account lacks, as messages naming what needs it.

    `schemas`: {schema: [(privilege, why)]}; `dump`: read_dump()'s result; `binlog`: {"enabled", "trust"}."""
    grants = acct["grants"]
    flavor, version = server["flavor"], tuple(server["version_tuple"])
    missing = []
    for schema, needs in schemas.items():
        for privilege, why in needs:
            if not holds(grants, privilege, schema):
                missing.append("%s on %s.* (%s)" % (privilege, quote_ident(schema), why))
    user = acct["user"]
    others = {name: labels for name, labels in dump.get("definers", {}).items() if name != user}
    for name in other_definers:
        if name != user:
            others.setdefault(name, []).append("an object of the database as it is now")
    anyone = definer_privileges(flavor, version)
    if others and not any(holds(grants, p) for p in anyone):
        listed = "; ".join("%s for %s" % (name, ", ".join(labels[:8]) + (" and %d more" % (len(labels) - 8)
                                                                       if len(labels) > 8 else ""))
                           for name, labels in sorted(others.items()))
        missing.append("%s on *.* (objects whose DEFINER is another account: %s)" % (" or ".join(anyone), listed))
    declared = dump.get("declared", {})
    if binlog.get("enabled") and not binlog.get("trust") and (declared.get("routines") or declared.get("triggers")) \
            and not holds(grants, "SUPER"):
        missing.append("SUPER on *.*, or the server setting log_bin_trust_function_creators=1 (with binary logging "
                       "on, creating the dump's routines and triggers needs one of them)")
    if replay:
        needed = replay_privileges(flavor, version)
        if not any(holds(grants, p) for p in needed):
            missing.append("%s on *.* (the BINLOG statements of the point-in-time replay)" % " or ".join(needed))
        if not holds(grants, "REPLICATION SLAVE"):
            missing.append("REPLICATION SLAVE on *.* (reading the binary logs from the server)")
    return missing


# -- reading a schema's objects ------------------------------------------------------------------------------------
def _session(cur) -> dict:
    cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.collation_connection, @@SESSION.time_zone")
    mode, collation, zone = cur.fetchone()
    return {"sql_mode": mode, "collation": collation, "time_zone": zone}


def capture(conn, schema: str) -> dict:
    """What the swap needs of `schema`: its table names and the SHOW CREATE text of its other objects (read with
    `schema` as the default database), with the session settings each was created under."""
    out = {"tables": [], "views": {}, "routines": {}, "triggers": {}, "events": {}}
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "ORDER BY TABLE_NAME", (schema,))
        rows = cur.fetchall()
        out["tables"] = [name for name, kind in rows if kind in TABLE_TYPES]
        views = [name for name, kind in rows if kind == "VIEW"]
        cur.execute("USE %s" % quote_ident(schema))
        for name in views:
            cur.execute("SHOW CREATE VIEW %s" % quote_ident(name))
            row = cur.fetchone()
            out["views"][name] = {"sql": row[1], "collation": row[3]}
        cur.execute("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
                    "ORDER BY ROUTINE_TYPE, ROUTINE_NAME", (schema,))
        hidden = []
        for rtype, name in cur.fetchall():
            cur.execute("SHOW CREATE %s %s" % (rtype, quote_ident(name)))
            row = cur.fetchone()
            if row[2] is None:
                hidden.append("%s %s.%s" % (rtype.lower(), schema, name))
                continue
            out["routines"]["%s %s" % (rtype, name)] = {"type": rtype, "name": name, "sql": row[2],
                                                         "sql_mode": row[1], "collation": row[4]}
        if hidden:
            raise RestoreError("the server hides the definitions of %s from this account, so they cannot be created "
                               "again: grant SELECT ON mysql.proc (MariaDB) or SHOW_ROUTINE (MySQL >= 8.0.20)"
                               % ", ".join(hidden), hidden=hidden)
        cur.execute("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
                    "ACTION_ORDER", (schema,))
        for name, table, order in cur.fetchall():
            cur.execute("SHOW CREATE TRIGGER %s" % quote_ident(name))
            row = cur.fetchone()
            out["triggers"][name] = {"sql": row[2], "sql_mode": row[1], "collation": row[4], "table": table,
                                     "order": int(order or 0)}
        cur.execute("SELECT EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s "
                    "ORDER BY EVENT_NAME", (schema,))
        for name, state in cur.fetchall():
            cur.execute("SHOW CREATE EVENT %s" % quote_ident(name))
            row = cur.fetchone()
            out["events"][name] = {"sql": row[3], "sql_mode": row[1], "time_zone": row[2], "collation": row[5],
                                   "status": state}
    return out


def object_definers(conn, schema: str) -> set:
    """The DEFINER accounts of `schema`'s views, routines, triggers and events (`user@host`)."""
    found = set()
    with conn.cursor() as cur:
        for sql in ("SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
                    "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                    "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                    "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"):
            cur.execute(sql, (schema,))
            found.update(row[0] for row in cur.fetchall() if row[0])
    return found


def set_event_state(text: str, clause: str) -> str:
    """A CREATE EVENT text with its ENABLE/DISABLE clause replaced by `clause`."""
    new, count = _EVENT_STATE_RE.subn(" " + clause, text, count=1)
    if not count:
        raise RestoreError("cannot find the ENABLE/DISABLE clause of event definition %r" % text[:120])
    return new


def _create(cur, spec: dict, saved: dict, text: str | None = None) -> None:
    """Run one SHOW CREATE text under the session settings its object was created with, then restore ours."""
    if spec.get("sql_mode") is not None:
        cur.execute("SET SESSION sql_mode = %s", (spec["sql_mode"],))
    if spec.get("collation"):
        cur.execute("SET SESSION collation_connection = %s", (spec["collation"],))
    if spec.get("time_zone"):
        cur.execute("SET SESSION time_zone = %s", (spec["time_zone"],))
    try:
        cur.execute(text or spec["sql"])
    finally:
        cur.execute("SET SESSION sql_mode = %s, collation_connection = %s, time_zone = %s",
                    (saved["sql_mode"], saved["collation"], saved["time_zone"]))


def create_objects(conn, schema: str, objects: dict, event_states: dict | None = None, kinds=None) -> list:
    """Create `objects` (capture()'s shape) in `schema`: routines, views (in dependency order), triggers (in their
    order), events (with `event_states[name]`'s clause when given, else their captured state). Returns the objects
    created (`kind name`); raises the first server error, naming the object."""
    import pymysql

    created = []
    kinds = kinds or ("routines", "views", "triggers", "events")
    with conn.cursor() as cur:
        saved = _session(cur)
        cur.execute("USE %s" % quote_ident(schema))
        if "routines" in kinds:
            for key in sorted(objects["routines"]):
                _run(cur, objects["routines"][key], saved, "routine %s" % key)
                created.append("routine %s" % key)
        if "views" in kinds:
            pending = dict(objects["views"])
            while pending:
                errors = {}
                for name in sorted(pending):
                    try:
                        _create(cur, pending[name], saved)
                    except pymysql.err.MySQLError as exc:
                        errors[name] = exc
                        continue
                    created.append("view %s" % name)
                progress = len(pending) > len(errors)
                for name in set(pending) - set(errors):
                    del pending[name]
                if errors and not progress:
                    name = sorted(errors)[0]
                    raise RestoreError("cannot create view %s in %s: %s" % (name, schema, server_error(errors[name])))
        if "triggers" in kinds:
            for name, spec in sorted(objects["triggers"].items(), key=lambda kv: (kv[1]["table"], kv[1]["order"])):
                _run(cur, spec, saved, "trigger %s" % name)
                created.append("trigger %s" % name)
        if "events" in kinds:
            for name in sorted(objects["events"]):
                spec = objects["events"][name]
                clause = (event_states or {}).get(name) or EVENT_CLAUSE.get(spec.get("status"), "DISABLE")
                _run(cur, spec, saved, "event %s" % name, set_event_state(spec["sql"], clause))
                created.append("event %s" % name)
    return created


def _run(cur, spec, saved, label, text=None):
    import pymysql

    try:
        _create(cur, spec, saved, text)
    except pymysql.err.MySQLError as exc:
        raise RestoreError("cannot create %s: %s" % (label, server_error(exc))) from None


def server_error(exc) -> str:
    """`(code) message` of a server error (messages name objects, never bound values)."""
    args = getattr(exc, "args", ())
    return "(%s) %s" % (args[0], args[1]) if len(args) > 1 else str(exc)


def drop_objects(conn, schema: str, objects: dict, kinds=("views", "routines", "triggers", "events")) -> None:
    """Drop the named non-table objects of `schema` that exist (IF EXISTS)."""
    q = quote_ident(schema)
    with conn.cursor() as cur:
        if "triggers" in kinds:
            for name in objects["triggers"]:
                cur.execute("DROP TRIGGER IF EXISTS %s.%s" % (q, quote_ident(name)))
        if "events" in kinds:
            for name in objects["events"]:
                cur.execute("DROP EVENT IF EXISTS %s.%s" % (q, quote_ident(name)))
        if "views" in kinds:
            for name in objects["views"]:
                cur.execute("DROP VIEW IF EXISTS %s.%s" % (q, quote_ident(name)))
        if "routines" in kinds:
            for spec in objects["routines"].values():
                cur.execute("DROP %s IF EXISTS %s.%s" % (spec["type"], q, quote_ident(spec["name"])))


# -- checksums -----------------------------------------------------------------------------------------------------
def table_checksums(conn, schema: str, tables) -> dict:
    """{table: {"rows": n, "checksum": hex}} for each table (a full read of each), as the backup phase's restore test
    computes them (backup_compare.table_digests), so that a restored copy is checked against the recorded digests."""
    return compare.table_digests(conn, schema, tables)


def expectations(recorded: dict) -> dict:
    """What a restored copy is checked against, from what the backup phase recorded: `objects` (count per kind),
    `rows` ({table: n}, from a restore test's `{table: {"source", "restored"}}` too), `checksums` ({table: hex},
    from a restore test's `{table: {"digest"}}` too: tables it only sampled have none)."""
    recorded = recorded or {}
    rows = {}
    for table, value in (recorded.get("rows") or {}).items():
        if isinstance(value, dict):
            value = value.get("restored", value.get("source"))
        if value is not None:
            rows[table] = int(value)
    checksums = {}
    for table, value in (recorded.get("checksums") or {}).items():
        if isinstance(value, dict):
            value = value.get("digest")
        if isinstance(value, str) and value:
            checksums[table] = value
    objects = {k: int(v) for k, v in (recorded.get("objects") or {}).items() if isinstance(v, int)}
    return {"objects": objects, "rows": rows, "checksums": checksums}


def verification_problems(declared: dict, snap: dict, checksums: dict, expect: dict) -> list:
    """What makes a restored copy unfit to be swapped in: objects the dump declares that are missing (or extra
    ones), and row counts or checksums that differ from what was recorded for this backup."""
    problems = []
    for kind in compare.KINDS:
        want = set(declared.get(kind, []))
        have = set(snap.get(kind, {}))
        label = kind[:-1]
        for name in sorted(want - have):
            problems.append("%s %s is in the dump but missing from the restored copy" % (label, name))
        for name in sorted(have - want):
            problems.append("%s %s is in the restored copy but not declared in the dump" % (label, name))
    for kind, count in sorted((expect.get("objects") or {}).items()):
        if kind in snap and len(snap[kind]) != int(count):
            problems.append("%d %s restored, the backup's restore test counted %d" % (len(snap[kind]), kind, count))
    for table, count in sorted((expect.get("rows") or {}).items()):
        got = checksums.get(table, {}).get("rows")
        if got is not None and count is not None and int(count) != got:
            problems.append("table %s has %d rows restored, the backup's restore test counted %d"
                            % (table, got, int(count)))
    for table, digest in sorted((expect.get("checksums") or {}).items()):
        got = checksums.get(table, {}).get("checksum")
        if got is not None and digest and got != digest:
            problems.append("table %s has checksum %s restored, %s was recorded for this backup" % (table, got,
                                                                                                   digest))
    return problems


# -- loading -------------------------------------------------------------------------------------------------------
def load(params, tools: dict, path: str, target: str, disable_events: bool, source: str | None = None) -> dict:
    """Stream the dump into the existing schema `target` (decompressor | [filter] | client).

    With `disable_events`, the filter creates every event DISABLED and, when `source` is given, makes the view
    definitions that name schema `source` name `target` (backup_restore.RestoreFilter): a copy's views never read
    the live database."""
    filt = RestoreFilter(source=source, target=target) if disable_events else None
    with client_option_pipe(params, client=tools["client"]) as options:
        out = stream_into_client(decompress_command(path, tools),
                                 [tools["client"], options.arg, "--batch", "--max-allowed-packet=1G",
                                  "--default-character-set=utf8mb4", "--", target],
                                 filt=filt, pass_fds=options.pass_fds)
    errors = []
    if out.producer_rc != 0:
        errors.append("the decompressor exited %d: %s" % (out.producer_rc, out.producer_err[-500:]))
    if out.client_rc != 0:
        errors.append("the client exited %d: %s" % (out.client_rc, redact_values(scrub(out.client_err[-800:],
                                                                                        params))))
    if errors:
        raise RestoreError("loading %s into %s failed: %s" % (path, target, "; ".join(errors)))
    return {"bytes_uncompressed": out.moved, "events_disabled": filt.disabled if filt else 0,
            "views_retargeted": filt.views_retargeted if filt else 0}


# -- the journal ---------------------------------------------------------------------------------------------------
class Journal:
    """What the swap did and the definitions it needs to undo it, written (0640, atomically) after each step, so a
    DBA can finish or undo by hand a swap whose process died. DDL text only: no row data, no password."""

    def __init__(self, path: str | None, **head):
        self.path = path
        self.data = dict(head, steps=[])

    def step(self, name: str, **details) -> None:
        self.data["steps"].append(dict(details, step=name, at=utc_now_iso()))
        self.write()

    def write(self) -> None:
        if self.path:
            write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True, default=str) + "\n")


# -- the swap ------------------------------------------------------------------------------------------------------
def inbound_foreign_keys(conn, database: str) -> list:
    """Foreign keys of other schemas' tables that reference `database`'s tables (`schema.table.constraint`)."""
    with conn.cursor() as cur:
        cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME "
                    "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = %s "
                    "AND CONSTRAINT_SCHEMA <> %s ORDER BY 1, 2, 3", (database, database))
        return ["%s.%s.%s -> %s.%s" % (schema, table, name, database, ref) for schema, table, name, ref
                in cur.fetchall()]


def _rename_sql(pairs) -> str:
    return "RENAME TABLE " + ", ".join("%s.%s TO %s.%s" % (quote_ident(a), quote_ident(t), quote_ident(b),
                                                         quote_ident(t)) for a, b, t in pairs)


def swap(conn, database: str, staging: str, kept: str, charset: str, collation: str, event_states: dict,
         journal: Journal, lock_wait_timeout: int = 60) -> dict:
    """Swap the verified `staging` in as `database`, keeping the previous tables and objects in `kept`.

    Returns {"kept": ..., "warnings": [...], "replaced": {...}}. On a failure before the end, everything is put back
    as it was and RestoreError says what failed (and, if putting back failed too, what is where)."""
    before = capture(conn, database)
    restored = capture(conn, staging)
    journal.data.update(database=database, staging=staging, kept=kept, previous=before, restored=restored)
    journal.step("captured")
    q_db, q_kept = quote_ident(database), quote_ident(kept)
    warnings = []
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (q_kept, charset, collation))
        journal.step("created kept schema")
        disabled, dropped = [], []
        renamed = False
        try:
            for name, spec in sorted(before["events"].items()):
                if spec["status"] == "ENABLED":
                    cur.execute("ALTER EVENT %s.%s DISABLE" % (q_db, quote_ident(name)))
                    disabled.append(name)
            journal.step("disabled events", events=disabled)
            for name in sorted(before["triggers"]):
                cur.execute("DROP TRIGGER %s.%s" % (q_db, quote_ident(name)))
                dropped.append(name)
            drop_objects(conn, staging, restored, kinds=("triggers",))
            journal.step("dropped triggers", triggers=dropped)
            cur.execute("SET SESSION lock_wait_timeout = %d" % int(lock_wait_timeout))
            pairs = [(database, kept, t) for t in before["tables"]] + [(staging, database, t) for t in
                                                                       restored["tables"]]
            if pairs:
                cur.execute(_rename_sql(pairs))
            renamed = True
            journal.step("renamed tables", moved_to_kept=before["tables"], moved_in=restored["tables"])
            drop_objects(conn, database, before, kinds=("views", "routines", "events"))
            created = create_objects(conn, database, restored, event_states)
            journal.step("created objects", created=created)
        except Exception as exc:
            undo = _undo(conn, database, staging, kept, before, restored, renamed, lock_wait_timeout)
            journal.step("undone", error=str(exc), undo_problems=undo)
            reason = exc if isinstance(exc, RestoreError) else RestoreError(server_error(exc))
            if undo:
                raise RestoreError("the swap of %s failed (%s) and putting the database back failed too: %s. The "
                                   "journal %s lists what is where." % (database, reason, "; ".join(undo),
                                                                        journal.path or "(not written)")) from None
            raise RestoreError("the swap of %s failed and was undone, so the database is as it was before the "
                               "rollback: %s" % (database, reason)) from None
    return {"before": before, "restored": restored, "warnings": warnings}


def finish_swap(conn, database: str, staging: str, kept: str, before: dict, keep_previous: bool,
                journal: Journal) -> list:
    """After the swap is verified: the previous objects into `kept` (events DISABLED), `staging` dropped, `kept`
    dropped too unless `keep_previous`. Returns warnings (an object that could not be kept is named, not fatal:
    its definition is in the journal and in the safety dump)."""
    warnings = []
    if keep_previous:
        kept_objects = dict(before, events={n: dict(s, status="DISABLED") for n, s in before["events"].items()})
        for kind in ("routines", "views", "triggers", "events"):
            try:
                create_objects(conn, kept, kept_objects, kinds=(kind,))
            except RestoreError as exc:
                warnings.append("the previous %s could not all be kept in %s: %s (their definitions are in the "
                                "journal %s)" % (kind, kept, exc, journal.path))
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(staging))
        if not keep_previous:
            cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(kept))
    journal.step("finished", kept=kept if keep_previous else None, warnings=warnings)
    return warnings


def undo_swap(conn, database, staging, kept, before, restored, journal, lock_wait_timeout=60) -> list:
    """Put back a completed swap (its verification failed): returns what could not be put back."""
    problems = _undo(conn, database, staging, kept, before, restored, True, lock_wait_timeout)
    journal.step("undone after verification", undo_problems=problems)
    return problems


def _same(kind: str, now: dict, then: dict) -> bool:
    """Whether an object now has the definition captured before (an event's ENABLE/DISABLE aside)."""
    if kind == "events":
        return set_event_state(now["sql"], "ENABLE") == set_event_state(then["sql"], "ENABLE")
    return now["sql"] == then["sql"]


def _undo(conn, database, staging, kept, before, restored, renamed, lock_wait_timeout=60) -> list:
    """Bring `database` back to `before` from wherever the swap stopped; returns what could not be put back.

    Tables: renamed back when the RENAME was done. Views, routines and events: whatever differs from `before`
    (or was not there) is dropped, what is missing is created again. Triggers: the missing ones are created again.
    Events: each gets back its state. The kept schema is dropped only when empty."""
    problems = []

    def attempt(label, func):
        try:
            func()
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            problems.append("%s: %s" % (label, server_error(exc)))

    try:
        conn.ping()  # reconnects if the connection was lost: the session settings are set again
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %d" % int(lock_wait_timeout))
    except Exception as exc:  # noqa: BLE001
        return ["the server cannot be reached to undo the swap: %s" % server_error(exc)]
    q_db = quote_ident(database)
    if renamed:
        def rename_back():
            with conn.cursor() as cur:
                cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
                            (database,))
                for (name,) in cur.fetchall():  # the restored tables' triggers: they would block the rename
                    cur.execute("DROP TRIGGER %s.%s" % (q_db, quote_ident(name)))
                pairs = [(database, staging, t) for t in restored["tables"]] + [(kept, database, t) for t in
                                                                                before["tables"]]
                if pairs:
                    cur.execute(_rename_sql(pairs))

        attempt("renaming the tables back", rename_back)
    now = {}

    def read_now():
        now.update(capture(conn, database))

    attempt("reading %s" % database, read_now)
    if not now:
        return problems
    stale = {"tables": [], "views": {}, "routines": {}, "triggers": {}, "events": {}}
    missing = {"tables": [], "views": {}, "routines": {}, "triggers": {}, "events": {}}
    for kind in ("views", "routines", "events", "triggers"):
        for name, spec in now[kind].items():
            if name not in before[kind] or not _same(kind, spec, before[kind][name]):
                stale[kind][name] = spec
        for name, spec in before[kind].items():
            if name not in now[kind] or name in stale[kind]:
                missing[kind][name] = spec
    attempt("dropping what the swap created in %s" % database, lambda: drop_objects(conn, database, stale))
    attempt("creating %s's own objects again" % database, lambda: create_objects(conn, database, missing))

    def event_states():
        with conn.cursor() as cur:
            for name, spec in before["events"].items():
                if name not in missing["events"]:
                    cur.execute("ALTER EVENT %s.%s %s" % (q_db, quote_ident(name),
                                                          EVENT_CLAUSE.get(spec["status"], "DISABLE")))

    attempt("giving %s's events their state back" % database, event_states)
    if not problems:
        def drop_aside():
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (kept,))
                if cur.fetchone()[0] == 0:
                    cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(kept))
        attempt("dropping the empty %s" % kept, drop_aside)
    return problems


# -- timing helper -------------------------------------------------------------------------------------------------
class Timer:
    def __init__(self):
        self.started = time.monotonic()
        self.marks = {}
        self._last = self.started

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.marks[name] = round(now - self._last, 3)
        self._last = now

    def total(self) -> float:
        return round(time.monotonic() - self.started, 3)
