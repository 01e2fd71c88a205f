#!/usr/bin/python
"""Ansible module: apply DDL files with a real plan, lint, snapshots and a promotion gate."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: schema_apply
short_description: Apply DDL files statement by statement, with a real dry-run plan and a truthful C(changed)
description:
  - Splits the DDL files into statements (quotes, comments and the client's C(DELIMITER) handled, line numbers
    kept) and applies them in order to I(db).
  - Before anything is applied, copies the structure of I(db) (tables with their foreign keys, views, routines,
    triggers, events; no rows) into a temporary schema C(<db>__dbrelease_plan_<random>) on the same server, applies
    the statements there and diffs normalised snapshots; that is the plan, with each object to create, alter or
    drop and the statements that do it. The temporary schema is always dropped, also on failure.
  - Lints before applying, and refuses (before anything is applied) destructive changes (dropping a table or
    column, narrowing a column type, TRUNCATE, CREATE OR REPLACE of an existing table) unless
    I(allow_destructive); new UNIQUE indexes over rows that already have duplicates (with the count); ALTERs
    that would rebuild or lock a table larger than I(large_table_bytes) in production unless
    I(allow_blocking_alter). Whether an ALTER can run C(INSTANT) or C(INPLACE) is found by trying it with
    C(ALGORITHM=INSTANT), then C(ALGORITHM=INPLACE, LOCK=NONE), on the temporary copy; statements that cannot be
    tried are judged by rules per server flavor and version. Non-idempotent statements are reported.
  - C(changed) is true only when the normalised snapshot of I(db) (tables, columns, indexes, constraints,
    views, routines, triggers, events) differs after the run, so a second run reports no change.
  - With I(require_approved_plan), refuses to apply when the plan's hash (normalised plan plus the DDL files'
    sha256) differs from I(approved_plan), unless I(plan_override), and says which objects and files differ.
  - A failing statement stops the run; the message names file, statement number and line, and the statements
    that took effect before it (DDL is not transactional); C(applied) and C(failed_statement) are returned.
  - Refuses a target that is a replica. Each statement runs on the primary after a replica lag gate and a lock
    guard (sessions holding or waiting for locks it needs are waited for, or the run fails naming them), with a
    short C(lock_wait_timeout), the ALGORITHM/LOCK the plan chose, a watchdog that kills it when other sessions
    queue behind its metadata lock wait, and retries with jitter within I(lock_budget_seconds). An ALTER that
    needs a copy of a table of I(online_min_bytes) or more runs through pt-online-schema-change (or gh-ost).
  - When the connection to the server is lost during a statement (the server crashed or was restarted), the
    message says so; the module reconnects once to read the schema after it, and when the server cannot be
    reached it lists the statements completed before the failed one (they took effect) and says that whether the
    failed one did is unknown.
options:
  db:
    description: Target database (schema).
    type: str
    required: true
  ddl_files:
    description: DDL files on the database host, applied in this order. One of I(ddl_files) or I(ddl_sources).
    type: list
    elements: path
    default: []
  ddl_contents:
    description:
      - DDL texts read on the controller, applied in this order after I(ddl_files) (the role passes
        C(query('ansible.builtin.file', *files, rstrip=false))).
    type: list
    elements: str
    default: []
  ddl_names:
    description: File names of I(ddl_contents), same order and length; used in messages and checksums.
    type: list
    elements: str
    default: []
  environment:
    description: Environment name; C(production) turns on the large-table refusal.
    type: str
    default: staging
  allow_destructive:
    description: Apply destructive changes instead of refusing them.
    type: bool
    default: false
  allow_blocking_alter:
    description: In production, apply ALTERs that rebuild or lock tables larger than I(large_table_bytes).
    type: bool
    default: false
  large_table_bytes:
    description: Size (data plus indexes, from information_schema) above which a blocking ALTER is refused in
      production.
    type: int
    default: 1073741824
  require_approved_plan:
    description: Refuse unless the plan's hash equals I(approved_plan)'s C(plan_sha256).
    type: bool
    default: false
  approved_plan:
    description: The approved plan (the plan file written by the staging run), as a dict.
    type: dict
  plan_override:
    description: Apply even though the plan differs from the approved one (the difference is still reported).
    type: bool
    default: false
  temp_schema_prefix:
    description: Middle part of the temporary schema's name.
    type: str
    default: __dbrelease_plan_
  plan_copy:
    description:
      - C(referenced) copies what the statements can touch - the tables and views they name, the tables those
        reference by foreign key, tables with foreign keys to the tables they alter or drop, views over those
        tables, their triggers, and every routine and event. C(full) copies the whole schema (slower on large
        schemas; use it when DDL calls routines that run dynamic SQL).
    type: str
    choices: [referenced, full]
    default: referenced
  plan_server:
    description:
      - Where to build the temporary plan schema instead of the target - a replica or a separate server of the same
        flavor (C(host), C(port), C(socket); C(user)/C(password) default to the target's account). Binary logging
        is turned off for that session, so the schema never reaches a binary log.
    type: dict
  lock_wait_timeout:
    description: C(lock_wait_timeout) (seconds) of the session that runs the DDL, and of the online tool's own DDL.
      A statement waiting longer for its metadata lock fails with a lock wait timeout and is retried.
    type: int
    default: 5
  lock_budget_seconds:
    description: Time one statement may spend waiting for the sessions that block it and retrying after lock wait
      timeouts and watchdog kills; when spent, the run fails naming the blockers and the statements that took effect.
    type: int
    default: 120
  lock_blockers:
    description: C(wait) for the sessions that hold or wait for locks a statement needs (within
      I(lock_budget_seconds), with back-off), or C(refuse) at once.
    type: str
    choices: [wait, refuse]
    default: wait
  watchdog_queue_seconds:
    description: While a statement waits for its metadata lock, the watchdog kills it (KILL QUERY, then it is
      retried) when another session has waited behind it this long. Application sessions are never killed.
    type: float
    default: 1.0
  kill_idle_blockers:
    description: Accounts (C(user) or C(user@host)) whose idle sessions holding a lock a statement needs are killed
      instead of waited for (their open transaction rolls back). Sessions running a statement are never killed.
    type: list
    elements: str
    default: []
  online_min_bytes:
    description: An ALTER that needs a copy of a table of this size or more (data plus indexes) runs through an
      online schema change tool (I(online_tool)). C(0) switches the online path off.
    type: int
    default: 268435456
  online_tool:
    description: C(auto) picks gh-ost where it is installed and the server is MySQL with row-based binary logs
      reached over TCP, else pt-online-schema-change; C(none) never goes online.
    type: str
    choices: [auto, pt-online-schema-change, gh-ost, none]
    default: auto
  online_max_load:
    description: The online tool pauses while a status variable exceeds this (its C(--max-load)).
    type: str
    default: Threads_running=25
  online_critical_load:
    description: The online tool aborts (cleanly) when a status variable exceeds this (its C(--critical-load)).
    type: str
    default: Threads_running=50
  online_chunk_time:
    description: Seconds each chunk copied by the online tool should take.
    type: float
    default: 0.5
  online_progress_seconds:
    description: The online tool reports its progress every this many seconds (kept in C(execution)).
    type: int
    default: 5
  replicas:
    description:
      - Replicas of the target (C(name), C(host), C(port), C(socket); the target's account unless C(user) and
        C(password) are given). Before each statement their lag must be at most
        I(replica_max_lag); the online tool pauses while it is not.
    type: list
    elements: dict
    default: []
  replica_max_lag:
    description: Largest replica lag (seconds behind) allowed before a statement, and during an online change.
    type: float
    default: 10.0
  replica_lag_wait_seconds:
    description: How long to wait for the replicas' lag to come under I(replica_max_lag) before a statement (and
      how long an online change may stay paused) before failing.
    type: int
    default: 300
  allow_replica_target:
    description: Apply even though the target looks like a replica (read_only, or replicating from a source);
      for an active primary of a circular pair. Refused otherwise.
    type: bool
    default: false
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: computes the real plan on a temporary copy; nothing in I(db) changes.
  diff_mode:
    support: full
    details: before and after C(SHOW CREATE) definitions of every object the plan touches.
author: dbrelease
notes:
  - The account needs CREATE and DROP on C(<db>__dbrelease_plan_%) besides the DDL privileges on I(db); PROCESS to
    see other accounts' sessions (the lock guard says when it lacks it); REPLICATION CLIENT / REPLICA MONITOR (or
    SLAVE MONITOR) to read replication status; CONNECTION ADMIN or SUPER for I(kill_idle_blockers).
  - Exact lock information needs C(performance_schema) with the C(wait/lock/metadata/sql/mdl) instrument (MySQL 8
    default) or MariaDB's C(metadata_lock_info) plugin; without either, transactions older than
    I(lock_wait_timeout) in sessions using I(db) count as blockers.
requirements: [PyMySQL]
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Apply the release DDL
  schema_apply:
    db: arisgourmet
    ddl_files:
      - /srv/app/infra/ddls/create_distributed_tables.sql
    environment: production
    require_approved_plan: true
    approved_plan: "{{ lookup('ansible.builtin.file', 'plans/v1.2.0/arisgourmet.json') | from_json }}"
  register: __schema_result
  no_log: true
"""

RETURN = r"""
ok:
  description: True when the run completed (plan computed, and in a real run every statement applied).
  returned: always
  type: bool
changed:
  description: Whether the normalised schema differs after the run (in check mode, whether the plan has changes).
  returned: always
  type: bool
plan:
  description: Objects to create, alter or drop, with the details and the statements that do it.
  returned: when the plan was computed
  type: list
  sample: [{"object": "table outbox", "action": "create", "details": [], "statements": [{"file": "a.sql",
           "index": 1, "line": 4, "sql": "CREATE TABLE IF NOT EXISTS outbox ..."}]}]
plan_sha256:
  description: Hash of the normalised plan and the DDL files' checksums (the promotion gate compares it).
  returned: when the plan was computed
  type: str
files:
  description: sha256 of each DDL file, by file name.
  returned: always
  type: dict
lint:
  description: C(idempotence) (warnings), C(destructive), C(duplicates), C(alters) (algorithm, lock, table size,
    blocking) and C(refused) (the reasons the run was refused).
  returned: always
  type: dict
applied:
  description: Statements executed on I(db), in order (file, index, line, sql).
  returned: always
  type: list
failed_statement:
  description: The statement that failed (file, index, line, sql), with the server's error; C(connection_lost)
    is true when the connection to the server was lost while it ran.
  returned: on failure
  type: dict
pre_snapshot:
  description: Normalised snapshot of I(db) before the run - C(database), C(sha256), C(objects) (no sizes, so
    the file written from it only changes when the structure does).
  returned: when connected
  type: dict
pre_sql:
  description: SHOW CREATE output of every object of I(db) before the run.
  returned: when connected
  type: str
table_sizes:
  description: Size in bytes (data plus indexes) and row estimate of each table before the run.
  returned: when connected
  type: dict
post_snapshot:
  description: Normalised snapshot after the run (same shape as I(pre_snapshot)).
  returned: when statements were applied
  type: dict
post_sql:
  description: SHOW CREATE output after the run.
  returned: when statements were applied
  type: str
plan_copied:
  description: How many objects of each kind the temporary copy held (see I(plan_copy)).
  returned: when the plan was computed
  type: dict
temp_schema:
  description: Name of the temporary schema used for the plan (already dropped).
  returned: when the plan was computed
  type: str
binlog_before_ddl:
  description: The binary log position (C(file), C(pos), C(gtid)) just before the first statement was applied, where
    a point-in-time recovery stops - read before the statements are handed to the executor, then moved forward to
    the start of the first DDL on the database that the binary log shows after it (C(recorded) keeps the first
    read; C(note) says why it was not moved); C({}) when the binary log is off or nothing was to change, C(error)
    when the account may not read it.
  returned: when statements were applied
  type: dict
server:
  description: Server version and flavor.
  returned: when connected
  type: dict
topology:
  description: The target's replication topology - C(role) (primary or replica), C(read_only), C(replication)
    (its sources), C(replicas_listed), C(binlog_dump_threads), C(gtid), C(binlog).
  returned: when connected
  type: dict
plan_server:
  description: Where the temporary plan schema was built (C(endpoint), C(same_as_target), C(role), C(notes)).
  returned: when the plan was computed
  type: dict
execution:
  description:
    - How the statements ran - the lock information used, C(lock_wait_timeout), and per statement the tables it
      locks, its route (direct or the online tool), the ALGORITHM clause, attempts, lock checks and their time,
      blockers seen (id, user, host, age, statement with literals replaced), sessions killed, watchdog kills,
      retries with their back-off, the replica lag seen, and the online tool's report (progress, pauses, output).
    - C(summary) adds them up.
  returned: when statements were applied (also on failure)
  type: dict
record:
  description: What the release record keeps (phases.schema) - C(plan_sha256), C(plan), C(changes), C(applied),
    C(failed_statement), C(files), C(lint), C(plan_gate), C(pre_sha256), C(post_sha256), C(table_sizes),
    C(temp_schema), C(plan_seconds), C(topology), C(plan_server), C(execution), C(binlog_before_ddl). Also on a
    refusal or a failed statement.
  returned: always
  type: dict
"""

import hashlib
import os
import re
import secrets
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import binlog, ddl_exec, ddl_lint, schema
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    quote_ident,
    require_pymysql,
    scrub,
    server_info,
)
from ansible.module_utils.dbrelease.sqlsplit import SplitError, split_sql, summary
from ansible.module_utils.dbrelease.units import human_bytes

# Server errors that mean "this ALGORITHM/LOCK is not supported for this ALTER".
ALGORITHM_NOT_SUPPORTED = (1845, 1846)


class SchemaFailure(Exception):
    """A refusal or failure; `result` carries what was found and done so far."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        db=dict(type="str", required=True),
        ddl_files=dict(type="list", elements="path", default=[]),
        ddl_contents=dict(type="list", elements="str", default=[]),
        ddl_names=dict(type="list", elements="str", default=[]),
        environment=dict(type="str", default="staging"),
        allow_destructive=dict(type="bool", default=False),
        allow_blocking_alter=dict(type="bool", default=False),
        large_table_bytes=dict(type="int", default=1073741824),
        require_approved_plan=dict(type="bool", default=False),
        approved_plan=dict(type="dict"),
        plan_override=dict(type="bool", default=False),
        temp_schema_prefix=dict(type="str", default="__dbrelease_plan_"),
        plan_copy=dict(type="str", default="referenced", choices=["referenced", "full"]),
    )
    spec.update(ddl_exec.argument_spec())
    return spec


# ---------------------------------------------------------------------------------------------------------------
# Reading the DDL
# ---------------------------------------------------------------------------------------------------------------

def read_ddl(paths, sources=()):
    """(statements, {file name: sha256}). Raises SchemaFailure naming the file on any read/split problem."""
    statements, checksums = [], {}
    items = [(p, None) for p in paths or ()] + [(s["name"], s["content"]) for s in sources or ()]
    if not items:
        raise SchemaFailure("no DDL files given (schema_ddl_files is empty)", {})
    names = [os.path.basename(p) for p, _ in items]
    for path, content in items:
        label = os.path.basename(path) if names.count(os.path.basename(path)) == 1 else path
        if content is not None:
            raw = content.encode("utf-8")
        else:
            try:
                with open(path, "rb") as handle:
                    raw = handle.read()
            except OSError as exc:
                raise SchemaFailure("cannot read DDL file %s: %s" % (path, exc.strerror), {}) from None
        checksums[label] = hashlib.sha256(raw).hexdigest()
        try:
            statements.extend(split_sql(raw.decode("utf-8"), file=label))
        except (SplitError, UnicodeDecodeError) as exc:
            raise SchemaFailure("cannot split DDL file %s: %s" % (path, exc), {"files": checksums}) from None
    return statements, checksums


_STRING_RE = re.compile(r"""('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")""", re.DOTALL)
_QUALIFIER_RE = re.compile(r"(?<![\w`.$])(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*\.\s*(?=[`A-Za-z_$])")


def _outside_strings(sql, func):
    """Apply `func` to the parts of `sql` outside string literals."""
    parts = _STRING_RE.split(sql)
    return "".join(part if i % 2 else func(part) for i, part in enumerate(parts))


def retarget(sql: str, src: str, dst: str) -> str:
    """A statement written for schema `src` made to act on `dst` (qualified names outside string literals)."""

    def repl(text):
        text = text.replace(quote_ident(src) + ".", quote_ident(dst) + ".")
        if re.match(r"^[A-Za-z0-9_$]+$", src):
            text = re.sub(r"(?<![\w`.$])%s\.(?=[`\w])" % re.escape(src), quote_ident(dst) + ".", text)
        return text

    return _outside_strings(sql, repl)


def other_schemas_named(sql: str, schemas) -> set:
    """Names of existing schemas (other than the target) that a statement qualifies names with."""
    found = set()

    def scan(text):
        for match in _QUALIFIER_RE.finditer(text):
            name = match.group(1)
            name = name[1:-1].replace("``", "`") if name.startswith("`") else name
            if name in schemas:
                found.add(name)
        return text

    _outside_strings(sql, scan)
    return found


def objects_of_statement(st):
    """Plan object names a statement acts on (`table outbox`, `view v`, `routine PROCEDURE p`, ...)."""
    info = ddl_lint.statement_target(st["sql"])
    kind, name, table = info["kind"], info["name"], info["table"]
    found = []
    if kind in ("table", "index") and table:
        found.append("table %s" % table)
    if kind == "view" and name:
        found.append("view %s" % name)
    if kind in ("procedure", "function") and name:
        found.append("routine %s %s" % (kind.upper(), name))
    if kind == "trigger" and name:
        found.append("trigger %s" % name)
    if kind == "event" and name:
        found.append("event %s" % name)
    if info["verb"] == "alter" and kind == "table":
        for clause in info["clauses"]:
            words = [t[1].upper() for t in clause if t[0] == "word"]
            if words[:2] == ["RENAME", "TO"] or (words[:1] == ["RENAME"] and len(clause) > 1 and
                                                  words[1:2] not in (["COLUMN"], ["INDEX"], ["KEY"])):
                found.append("table %s" % clause[-1][1])
    if info["verb"] == "rename" and kind == "table":
        toks = info["tokens"]
        for i, tok in enumerate(toks):
            if tok[0] == "word" and tok[1].upper() == "TO" and i + 1 < len(toks):
                found.append("table %s" % toks[i + 1][1].split(".")[-1])
    return found


# ---------------------------------------------------------------------------------------------------------------
# The plan on a temporary copy
# ---------------------------------------------------------------------------------------------------------------

def temp_schema_name(db, prefix):
    suffix = prefix + secrets.token_hex(4)
    return db[:64 - len(suffix)] + suffix


def drop_schema(conn, name):
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(name))


def _server_error(exc):
    args = getattr(exc, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    text = args[1] if len(args) > 1 else str(exc)
    return code, text


def try_alter(cur, sql, info):
    """Run an ALTER on the temporary copy with the least blocking algorithm that works.

    Returns (algorithm, lock). Raises the server's error if the statement fails as written.
    """
    import pymysql

    joiner = ", " if info["verb"] == "alter" else " "
    for algorithm, lock, suffix in (("instant", "none", "ALGORITHM=INSTANT"),
                                    ("inplace", "none", "ALGORITHM=INPLACE, LOCK=NONE"
                                     if info["verb"] == "alter" else "ALGORITHM=INPLACE LOCK=NONE"),
                                    ("inplace", "shared", "ALGORITHM=INPLACE")):
        try:
            cur.execute(sql + joiner + suffix)
            return algorithm, lock
        except pymysql.err.MySQLError as exc:
            code, _ = _server_error(exc)
            if code in ALGORITHM_NOT_SUPPORTED:
                continue
            break  # another error: run the statement as written to get its own error (or success)
    cur.execute(sql)
    return "copy", "shared"


def modified_tables(statements):
    """Tables that the statements alter, drop, rename, truncate, index or replace."""
    found = set()
    for st in statements:
        info = ddl_lint.statement_target(st["sql"])
        if info["table"] and (info["verb"] in ("alter", "drop", "rename", "truncate") or info["kind"] == "index" or
                              (info["verb"] == "create" and info["or_replace"])):
            found.add(info["table"])
    return found


def compute_plan(conn, db, tmp, statements, flavor, version, target_objects, creates_before, full_copy=False,
                 source_conn=None):
    """Copy `db` into `tmp`, apply the statements there, and diff. The caller drops `tmp` (finally).
    `source_conn`: the target's server when `conn` is another one (schema_plan_server)."""
    import pymysql

    with (source_conn or conn).cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        others = {r[0] for r in cur.fetchall()} - {db}
    for st in statements:
        info = ddl_lint.statement_target(st["sql"])
        if info["kind"] == "database" and not (info["verb"] == "create" and info["if_not_exists"] and
                                               info["name"] == db):
            raise SchemaFailure("%s acts on a whole database; the DDL files may only change objects of %s" % (
                summary(st), db), {"failed_statement": dict(ddl_lint.ref(st), error="not allowed")})
        use = re.match(r"^\s*USE\s+`?((?:[^`]|``)+?)`?\s*$", st["sql"], re.IGNORECASE)
        named = other_schemas_named(st["sql"], others) | (
            {use.group(1).replace("``", "`")} - {db} if use else set())
        if named:
            raise SchemaFailure("%s names schema %s; the DDL files may only change objects of %s (a dry run on a "
                                "copy could not keep the other schema untouched)" % (
                                    summary(st), ", ".join(sorted(named)), db),
                                {"failed_statement": dict(ddl_lint.ref(st), error="other schema")})
    retargeted = [dict(st, sql=retarget(st["sql"], db, tmp)) for st in statements]
    scope = None if full_copy else schema.plan_scope(retargeted, target_objects, modified_tables(retargeted))
    try:
        schema.copy_structure(conn, db, tmp, target_objects, creates=creates_before, scope=scope,
                              source_conn=source_conn)
    except schema.CopyError as exc:
        raise SchemaFailure("%s; nothing was applied to %s" % (exc, db), {}) from None
    temp_before = schema.snapshot(conn, tmp, flavor)
    copied = {kind: len(temp_before["objects"][kind]) for kind in schema.KINDS}
    alters = []
    with conn.cursor() as cur:
        cur.execute("USE %s" % quote_ident(tmp))
        for st in statements:
            sql = retarget(st["sql"], db, tmp)
            info = ddl_lint.statement_target(sql)
            existing = info["table"] in target_objects["tables"]
            explicit = re.search(r"\bALGORITHM\s*=", sql, re.IGNORECASE)
            trial = existing and not explicit and (
                (info["verb"] == "alter" and info["kind"] == "table" and info["clauses"]) or
                (info["verb"] in ("create", "drop") and info["kind"] == "index"))
            if re.match(r"^\s*USE\b", sql, re.IGNORECASE) or (info["kind"] == "database"):
                continue  # the temporary copy stands in for the target schema
            try:
                if trial:
                    algorithm, lock = try_alter(cur, sql, info)
                    alters.append({"statement": ddl_lint.ref(st), "table": info["table"], "algorithm": algorithm,
                                   "lock": lock, "source": "tried on the temporary copy"})
                else:
                    cur.execute(sql)
                    if existing and explicit and info["verb"] == "alter":
                        algorithm = ddl_lint.statement_algorithm_by_rules(sql, flavor, version)
                        alters.append({"statement": ddl_lint.ref(st), "table": info["table"],
                                       "algorithm": algorithm, "lock": "none" if algorithm != "copy" else "shared",
                                       "source": "rules for %s %s (explicit ALGORITHM in the statement)" % (
                                           flavor, ".".join(str(v) for v in version))})
            except pymysql.err.MySQLError as exc:
                code, text = _server_error(exc)
                raise SchemaFailure(
                    "%s failed on a copy of the schema, so nothing was applied to %s: (%s) %s" % (
                        summary(st), db, code, text),
                    {"failed_statement": dict(ddl_lint.ref(st), error="(%s) %s" % (code, text))}) from None
        cur.execute("USE %s" % quote_ident(db))
    temp_after = schema.snapshot(conn, tmp, flavor)
    changes = schema.diff(temp_before["objects"], temp_after["objects"])
    after_texts = {}
    for change in changes:
        if change["action"] != "drop":
            text = schema.show_create(conn, tmp, change["kind"], change["name"])
            after_texts[change["object"]] = schema.rewrite_schema(text, tmp, db)
    return changes, alters, after_texts, copied


def attach_statements(changes, statements):
    by_object = {}
    for st in statements:
        for obj in objects_of_statement(st):
            by_object.setdefault(obj, []).append(ddl_lint.ref(st))
    for change in changes:
        change["statements"] = by_object.get(change["object"], [])
    return by_object


def public_plan(changes):
    return [{k: c[k] for k in ("object", "action", "details", "statements") if k in c} for c in changes]


def diff_text(changes, creates_before, after_texts, db):
    before, after = [], []
    for change in changes:
        kind, name = change["kind"], change["name"]
        if change["action"] != "create":
            before.append(schema.normalise_show_create(creates_before[kind][name], db, keep_definer=True) + ";\n")
        if change["action"] != "drop":
            after.append(schema.normalise_show_create(after_texts[change["object"]], db, keep_definer=True) + ";\n")
    return {"before": "\n".join(before), "after": "\n".join(after),
            "before_header": "%s (before)" % db, "after_header": "%s (after)" % db}


# ---------------------------------------------------------------------------------------------------------------
# Lint that needs the server
# ---------------------------------------------------------------------------------------------------------------

def duplicate_findings(conn, db, changes, target_objects):
    """New UNIQUE indexes (or indexes made unique) over existing rows that already hold duplicates."""
    found = []
    for change in changes:
        if change["kind"] != "tables" or change["name"] not in target_objects["tables"]:
            continue
        table = change["name"]
        existing_cols = target_objects["tables"][table]["columns"]
        for idx in change.get("indexes", []):
            after = idx.get("after")
            if not after or not after["unique"] or idx["action"] == "drop":
                continue
            if idx["before"] and idx["before"]["unique"] and idx["before"]["columns"] == after["columns"]:
                continue
            cols = after["columns"]
            if not all(c[0] in existing_cols for c in cols):
                continue  # a column added by this release: no existing values to collide
            exprs = ["LEFT(%s, %d)" % (quote_ident(c[0]), c[1]) if c[1] else quote_ident(c[0]) for c in cols]
            not_null = " AND ".join("%s IS NOT NULL" % quote_ident(c[0]) for c in cols)
            sql = ("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM %s.%s WHERE %s "
                   "GROUP BY %s HAVING COUNT(*) > 1) d" % (quote_ident(db), quote_ident(table), not_null,
                                                         ", ".join(exprs)))
            with conn.cursor() as cur:
                cur.execute(sql)
                groups, rows = cur.fetchone()
            if groups:
                found.append({"object": change["object"], "index": idx["index"], "columns": [c[0] for c in cols],
                              "duplicate_values": int(groups), "rows_involved": int(rows),
                              "statements": change.get("statements", [])})
    return found


# ---------------------------------------------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------------------------------------------

def apply_statements(conn, db, statements, runner):
    """Run the statements on `db` through `runner` (ddl_exec.Runner: replica lag gate, lock guard, lock wait
    timeout with retries, watchdog, the plan's ALGORITHM/LOCK, online tool); returns (applied refs, failure or None).

    A failure whose connection was lost says so (`connection_lost: true`): the server may have died mid-statement.
    """
    return runner.apply(conn, db, statements)


def _refs_text(refs):
    return ", ".join("%s #%d (line %d)" % (r["file"], r["index"], r["line"]) for r in refs) or "none"


def _refs_sql_text(refs, width=70):
    """`file #n (line L) SQL...` for each ref: what each statement that took effect did."""
    return "; ".join("%s #%d (line %d) %s" % (r["file"], r["index"], r["line"],
                                              r["sql"] if len(r["sql"]) <= width else r["sql"][:width - 3] + "...")
                     for r in refs) or "none"


def close_quietly(conn):
    """Close a connection that may already be closed (a lost connection): never raises."""
    try:
        conn.close()
    except Exception:  # closing a dead connection has nothing left to report
        pass


def reconnect_after_loss(params):
    """A fresh connection after a lost one, or (None, why) when the server cannot be reached."""
    try:
        return connect(params), None
    except DbError as exc:
        return None, str(exc)


def run(params, check_mode=False, diff_mode=False):
    """The module's work; returns the result dict or raises SchemaFailure (with a partial result)."""
    started = time.monotonic()
    db = params["db"]
    names, contents = params.get("ddl_names") or [], params.get("ddl_contents") or []
    if len(names) != len(contents):
        raise SchemaFailure("ddl_names has %d entries and ddl_contents %d: give one name per text" % (
            len(names), len(contents)), {})
    statements, checksums = read_ddl(params.get("ddl_files"),
                                     [{"name": n, "content": c} for n, c in zip(names, contents, strict=True)])
    result = {"changed": False, "ok": False, "files": checksums, "applied": [], "statements": len(statements),
              "lint": {"idempotence": [], "destructive": [], "duplicates": [], "alters": [], "refused": [],
                       "report": []}}
    lint = result["lint"]
    try:
        conn = connect(params)
    except DbError as exc:
        raise SchemaFailure(str(exc), result) from None
    try:
        info = server_info(conn)
        flavor, version = info["flavor"], tuple(info["version_tuple"])
        result["server"] = info
        try:
            result["topology"] = ddl_exec.check_target(conn, info, params)
        except ddl_exec.TargetRefused as exc:
            raise SchemaFailure(str(exc), result) from None
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
            if not cur.fetchone()[0]:
                raise SchemaFailure("database %s does not exist on %s (create it, or fix schema_db_name)" % (
                    db, endpoint(params)), result)
        before = schema.snapshot(conn, db, flavor)
        try:
            creates_before = schema.show_create_all(conn, db, before["objects"])
        except schema.DefinitionHidden as exc:
            raise SchemaFailure("as %s: %s" % (endpoint(params), exc), result) from None
        result["pre_sha256"] = schema.snapshot_sha256(before["objects"])
        result["pre_snapshot"] = {"database": db, "sha256": result["pre_sha256"], "objects": before["objects"]}
        result["pre_sql"] = schema.export_sql(creates_before, db)
        result["table_sizes"] = {t: {"bytes": before["sizes"][t], "rows_estimate": before["rows"][t]}
                                 for t in sorted(before["sizes"])}

        for st in statements:
            for text in ddl_lint.idempotence_findings(st, flavor, version):
                lint["idempotence"].append(dict(ddl_lint.ref(st), finding=text))

        # The plan, on a temporary copy that is always dropped (on the target, or on schema_plan_server).
        tmp = temp_schema_name(db, params.get("temp_schema_prefix") or "__dbrelease_plan_")
        result["temp_schema"] = tmp
        try:
            plan_conn, result["plan_server"] = ddl_exec.plan_connection(conn, params, info)
        except ddl_exec.TargetRefused as exc:
            raise SchemaFailure(str(exc), result) from None
        try:
            changes, alters, after_texts, result["plan_copied"] = compute_plan(
                plan_conn, db, tmp, statements, flavor, version, before["objects"], creates_before,
                full_copy=params.get("plan_copy") == "full", source_conn=conn if plan_conn is not conn else None)
        except SchemaFailure as exc:
            exc.result = dict(result, **exc.result)
            raise
        finally:
            drop_schema(plan_conn, tmp)
            if plan_conn is not conn:
                close_quietly(plan_conn)
        by_object = attach_statements(changes, statements)
        result["plan"] = public_plan(changes)
        result["plan_sha256"] = schema.plan_sha256(changes, checksums)
        result["plan_seconds"] = round(time.monotonic() - started, 3)
        if diff_mode:
            result["diff"] = diff_text(changes, creates_before, after_texts, db)

        # Lint over the plan.
        refused = lint["refused"]
        lint["destructive"] = (ddl_lint.destructive_findings(changes, by_object) +
                               ddl_lint.row_destroying_statements(statements, before["objects"]["tables"]))
        if lint["destructive"] and not params["allow_destructive"]:
            refused.append("destructive changes (set schema_allow_destructive: true to apply them): " +
                           "; ".join("%s %s by %s" % (d["object"], d["reason"], _refs_text(d["statements"]))
                                     for d in lint["destructive"]))
        lint["duplicates"] = duplicate_findings(conn, db, changes, before["objects"])
        for dup in lint["duplicates"]:
            refused.append("new unique index %s on %s (%s): %d value(s) already duplicated over %d rows; "
                           "clean the data first (%s)" % (dup["index"], dup["object"], ", ".join(dup["columns"]),
                                                         dup["duplicate_values"], dup["rows_involved"],
                                                         _refs_text(dup["statements"])))
        production = (params.get("environment") or "").lower() == "production"
        for alter in alters:
            size = before["sizes"].get(alter["table"], 0)
            alter["table_bytes"] = size
            alter["table_size"] = human_bytes(size)
            alter["rows_estimate"] = before["rows"].get(alter["table"], 0)
            alter["blocking"] = ddl_lint.blocking(alter["algorithm"], alter["lock"])
            ddl_exec.route_alter(alter, statements, params, info, result["topology"]["binlog"])
            if alter["blocking"] and not alter.get("online") and size > params["large_table_bytes"] and \
                    production and not params["allow_blocking_alter"]:
                refused.append("%s would %s table %s (%s, over schema_large_table_bytes %s) in production; set "
                               "schema_allow_blocking_alter: true or use an online schema change tool" % (
                                   summary(alter["statement"]),
                                   "copy" if alter["algorithm"] == "copy" else "lock",
                                   alter["table"], alter["table_size"],
                                   human_bytes(params["large_table_bytes"])))
        lint["alters"] = alters
        lint["report"] = (["not idempotent: %s #%d (line %d): %s" % (f["file"], f["index"], f["line"], f["finding"])
                           for f in lint["idempotence"]] +
                          ["%s: ALGORITHM=%s, LOCK=%s, table %s %s (~%d rows)%s (%s)" % (
                              summary(a["statement"], 60), a["algorithm"].upper(), a["lock"].upper(), a["table"],
                              a["table_size"], a["rows_estimate"], ", blocks writes" if a["blocking"] else "",
                              a["source"]) for a in alters])

        # Promotion gate.
        if params["require_approved_plan"]:
            approved = params.get("approved_plan")
            current = {"changes": result["plan"], "files": checksums}
            if not approved:
                gate = "no approved plan: run this release in staging first (it writes the plan file)"
                result["plan_gate"] = {"status": "missing", "differences": []}
            elif approved.get("plan_sha256") != result["plan_sha256"]:
                differences = schema.compare_plans(approved, current)
                gate = "the plan differs from the approved one (approved %s, now %s): %s" % (
                    str(approved.get("plan_sha256"))[:12], result["plan_sha256"][:12],
                    "; ".join(differences) or "normalised details differ")
                result["plan_gate"] = {"status": "differs", "differences": differences,
                                       "approved_sha256": approved.get("plan_sha256")}
            else:
                gate = None
                result["plan_gate"] = {"status": "approved", "differences": [],
                                       "approved_sha256": approved.get("plan_sha256")}
            if gate and params["plan_override"]:
                result["plan_gate"]["status"] = "overridden"
                result.setdefault("warnings", []).append("promotion gate overridden (schema_plan_override): " + gate)
            elif gate:
                refused.append(gate + " (set schema_plan_override: true to apply anyway)")

        if refused:
            raise SchemaFailure("refused before applying anything to %s: %s" % (db, " | ".join(refused)), result)

        if check_mode:
            result["changed"] = bool(changes)
            result["ok"] = True
            return result

        runner = ddl_exec.Runner(params, info, alters, result["topology"])
        # Point-in-time recovery replays the binary logs up to here (rollback, release_rollback_mode=pitr: HR).
        result["binlog_before_ddl"] = binlog.position_for_record(conn, flavor) if changes else {}
        applied, failure = apply_statements(conn, db, statements, runner)
        result["applied"] = applied
        result["execution"] = runner.report()
        if applied and result["binlog_before_ddl"].get("file"):
            # The executor may have waited after that read while the application wrote: stop at the DDL itself.
            result["binlog_before_ddl"] = binlog.position_before_first_ddl(conn, db, result["binlog_before_ddl"])
        lost = bool(failure and failure.get("connection_lost"))
        if lost:
            # The server may be gone (crashed, killed, restarted): the statements before this one completed, and
            # DDL auto-commits, so they took effect; this one may or may not have.
            result["failed_statement"] = failure
            result["changed"] = bool(applied)
            close_quietly(conn)
            conn, why = reconnect_after_loss(params)
            if conn is None:
                raise SchemaFailure(
                    "%s statement #%d (line %d) failed: %s. The server could not be reached again (%s), so the "
                    "schema could not be read after the failure. Statements completed before it, which took effect "
                    "(DDL is not transactional): %s. Whether statement #%d itself took effect is unknown: check %s "
                    "once the server is back, then rerun." % (
                        failure["file"], failure["index"], failure["line"], failure["error"], why,
                        _refs_sql_text(applied), failure["index"], db), result)
        after = schema.snapshot(conn, db, flavor)
        creates_after = schema.show_create_all(conn, db, after["objects"])
        result["post_sha256"] = schema.snapshot_sha256(after["objects"])
        result["post_snapshot"] = {"database": db, "sha256": result["post_sha256"], "objects": after["objects"]}
        result["post_sql"] = schema.export_sql(creates_after, db)
        actual = schema.diff(before["objects"], after["objects"])
        attach_statements(actual, statements)
        result["changes"] = public_plan(actual)
        result["changed"] = bool(actual)
        if diff_mode:
            result["diff"] = diff_text(actual, creates_before,
                                       {c["object"]: creates_after[c["kind"]][c["name"]] for c in actual
                                        if c["action"] != "drop"}, db)
        if failure:
            result["failed_statement"] = failure
            took_effect = [c["object"] + " (" + c["action"] + ")" for c in actual]
            raise SchemaFailure(
                "%s statement #%d (line %d) failed: %s. Statements executed before it, which stay in effect "
                "(DDL is not transactional): %s. Schema changes already made%s: %s." % (
                    failure["file"], failure["index"], failure["line"], failure["error"],
                    _refs_sql_text(applied) if lost else _refs_text(applied),
                    " (read after reconnecting)" if lost else "", ", ".join(took_effect) or "none"), result)
        result["seconds"] = round(time.monotonic() - started, 3)
        result["ok"] = True
        return result
    finally:
        if conn is not None:
            close_quietly(conn)


RECORD_KEYS = ("plan_sha256", "plan", "changes", "applied", "failed_statement", "files", "lint", "plan_gate",
               "pre_sha256", "post_sha256", "table_sizes", "temp_schema", "plan_seconds", "topology", "plan_server",
               "execution", "binlog_before_ddl")
RECORD_DEFAULTS = {"plan_sha256": "", "plan": [], "changes": [], "applied": [], "failed_statement": {}, "files": {},
                   "lint": {}, "plan_gate": {"status": "not required"}, "pre_sha256": "", "post_sha256": "",
                   "table_sizes": {}, "temp_schema": "", "plan_seconds": None, "topology": {}, "plan_server": {},
                   "execution": {}, "binlog_before_ddl": {}}


def record_part(result):
    """What the release record keeps of the phase (every key, with its default when this run did not get there)."""
    return {key: result.get(key, RECORD_DEFAULTS[key]) for key in RECORD_KEYS}


def result_line(result):
    """One line for the operator: the plan, and the lint findings."""
    plan = ", ".join("%s %s" % (c.get("action"), c.get("object")) for c in result.get("plan") or [])
    plan = plan or "nothing to change"
    findings = (result.get("lint") or {}).get("report") or []
    return "plan: %s%s%s" % (plan, ("; lint: " + " | ".join(findings)) if findings else "",
                             ddl_exec.summary_line(result.get("execution")))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_pymysql(module)
    try:
        result = run(module.params, check_mode=module.check_mode, diff_mode=module._diff)
    except SchemaFailure as exc:
        module.fail_json(msg=scrub(exc.msg, module.params), record=record_part(exc.result), **exc.result)
    except Exception as exc:  # a server error outside a statement (connection lost, privileges)
        module.fail_json(msg=scrub("schema_apply on %s: %s" % (endpoint(module.params), exc), module.params))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(msg=result_line(result), record=record_part(result), **result)


if __name__ == "__main__":
    main()
