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
  - Classifies every statement before anything runs, in check and real mode alike, as the server reads it
    (executable comments, C(SET STATEMENT ... FOR)). Schema changes (CREATE / ALTER / DROP / RENAME of tables,
    views, indexes, routines, triggers, events, sequences) and the session settings of DDL files and dumps
    (C(SET NAMES), C(SET foreign_key_checks), C(USE) of I(db)) run; every other statement is refused with file,
    statement number, line and why - data statements, dynamic SQL, C(CALL), accounts and privileges, server
    state, C(HANDLER), C(XA), transactions and locks, queries, compound statements - unless its category is in
    I(allow_statements). Statements acting on another database are always refused.
  - Before anything is applied, copies the structure of I(db) (tables with their foreign keys, routines, views in
    the order of their references, triggers, events; no rows) into a temporary schema C(<db>__dbrelease_plan_<random>)
    on the same server and runs the statements there, one by one, as a temporary account that holds privileges on
    that schema only (and owns every object of the copy), so nothing the statements do - dynamic SQL, names
    resolved at run time, events and triggers that fire, stored functions - can change anything outside the
    copy (the server refuses it, and the plan fails saying so). Allowed account and server statements are not
    run on the copy. Schema qualifiers naming I(db) are rewritten identifier-aware (a table or column named like
    the database keeps its name). The copy and the account are always removed, also on failure.
  - The plan is the diff of normalised snapshots (DEFINER and SQL SECURITY included), with renames
    (C(RENAME COLUMN), C(CHANGE old new), C(RENAME TABLE), case-only changes) planned as renames that keep the
    data, and a table dropped and created again as C(recreate).
  - Checks the current data against every change rows can break, before anything is applied, and refuses with
    the count of offending rows - a column made NOT NULL over NULLs, a new CHECK that rows violate, a new
    FOREIGN KEY with orphans, a new UNIQUE over duplicates, a type, length or character set narrowed below values
    present. A check that depends on an earlier statement (a column it adds, then constrains) is evaluated
    against the data as that statement leaves it; where that cannot be known (after an allowed data statement,
    a CREATE ... SELECT) the plan says the check runs on the way, and the real run runs it right before its
    statement and stops there if it fails.
  - Refuses (before anything is applied) destructive changes - dropping a table or column, narrowing a column,
    dropping and re-adding a column or a table of the same name in one release (its values are lost whatever the
    new definition), CREATE OR REPLACE of an existing table, DROP / TRUNCATE PARTITION - unless
    I(allow_destructive) allows them (all, or the named objects). Allowed data statements are listed among the
    destructive changes and their affected rows are counted. Refuses ALTERs that would rebuild or lock a table
    larger than I(large_table_bytes) in production unless I(allow_blocking_alter). Whether an ALTER can run
    C(INSTANT) or C(INPLACE) is found by trying it on the temporary copy; statements that cannot be tried are
    judged by rules per server flavor and version. Non-idempotent statements are reported.
  - The real run leaves out the statements whose effect on the temporary copy was nil, and a
    C(DROP ... IF EXISTS) + C(CREATE) of a view, routine, trigger or event that leaves it as it was (C(skipped),
    with why), so a rerun does not drop and re-create unchanged triggers and routines.
  - C(changed) is true when the normalised snapshot of I(db) differs after the run, or an allowed data statement
    changed rows, so a second run reports no change.
  - With I(require_approved_plan), refuses to apply when the plan's hash (normalised plan plus the DDL files'
    sha256) differs from I(approved_plan), unless I(plan_override), and says which objects and files differ.
  - A failing statement stops the run; the message names file, statement number and line, and the statements
    that took effect before it (DDL is not transactional); C(applied) and C(failed_statement) are returned.
  - Refuses a target that is a replica. Each statement runs on the primary after a replica lag gate and a lock
    guard (sessions holding or waiting for locks it needs are waited for, or the run fails naming them), with a
    short C(lock_wait_timeout), the ALGORITHM/LOCK the plan chose, a watchdog that kills it when other sessions
    queue behind its metadata lock wait, and retries with jitter within I(lock_budget_seconds). An ALTER that
    needs a copy of a table of I(online_min_bytes) or more runs through pt-online-schema-change (or gh-ost).
  - With the C(schema_apply) action plugin (the normal case) a real run goes as a detached job on the database host
    (the mechanism of C(db_backup)) - the controller prints the statement in progress every
    I(online_progress_seconds) (file, number, line, tables, online or direct with its ALGORITHM clause,
    pt-online-schema-change's percent and remaining time or why it is paused, the lock guard's and the lag gate's
    waits), and cancels the job when C(ansible-playbook) is interrupted (Ctrl-C, SIGTERM) - no statement starts
    after that, a lock or lag wait ends, an online change is aborted (the tool's triggers and new table dropped, the
    original table checked untouched), and the failure says the statement did not take effect. The job stops the
    same way when no status call came for I(lease_seconds). The result is the one a single call returns. I(mode)
    is the plugin's protocol; check mode is a single call.
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
    description:
      - C(true) applies every destructive change instead of refusing it; C(false) refuses them all.
      - A list allows only the objects it names, so allowing one drop does not switch off the protection against
        every other - C(orders) the table itself (dropping, re-creating, emptying it), C(orders.legacy_flag) one
        column (dropping, narrowing, dropping and re-adding it), C(orders.*) every column of C(orders). Names with
        dots or spaces are written in backticks (C(`odd.name`.col)).
    type: raw
    default: false
  allow_statements:
    description:
      - Statement categories run in the schema phase although they are not schema changes - C(data), C(dynamic),
        C(call), C(account), C(server), C(query), C(transaction), C(maintenance), C(handler), C(xa),
        C(compound), C(other). C(database) (acting on another database) cannot be allowed.
      - Allowed data statements count as destructive changes, their affected rows are recorded (C(applied)) and
        make the run C(changed). Allowed account and server statements are not run on the plan's copy.
    type: list
    elements: str
    default: []
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
  allow_empty_ddl:
    description:
      - A DDL file that holds no statement (empty, or only comments) is refused, naming the file, unless this is
        set; then it is reported as a warning. A UTF-8 byte order mark at the start of a file is ignored.
    type: bool
    default: false
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
    description: The online tool reports its progress every this many seconds (kept in C(execution)); the action
      plugin polls the job and prints the statement in progress as often (at least every second).
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
  mode:
    description:
      - C(run) does the whole run in this call. C(start) forks it as a detached job and returns a I(job_dir);
        C(status) reads the job's status (its C(progress), or its C(result) once done) and renews its lease;
        C(cancel) stops it (no further statement; an online change is aborted cleanly) and returns its final status.
    type: str
    choices: [run, start, status, cancel]
    default: run
extends_documentation_fragment:
  - dbrelease.core.connection
  - dbrelease.core.job
attributes:
  check_mode:
    support: full
    details: computes the real plan on a temporary copy; nothing in I(db) changes.
  diff_mode:
    support: full
    details: before and after C(SHOW CREATE) definitions of every object the plan touches.
author: dbrelease
notes:
  - The account needs CREATE and DROP on C(<db>__dbrelease_plan_%) with the GRANT OPTION, CREATE USER (the plan
    runs as a temporary account C(dbrelease_plan_<random>) it creates and drops), and SET USER or SUPER (to give
    the copy's triggers and functions that account as owner while binary logging is on), and READ_ONLY ADMIN
    (CONNECTION_ADMIN on MySQL) with the GRANT OPTION when I(plan_server) is read-only (a replica), besides the
    DDL privileges on I(db); PROCESS to see other accounts' sessions (the lock guard says when it lacks it);
    REPLICATION CLIENT / REPLICA MONITOR (or SLAVE MONITOR) to read replication status; CONNECTION ADMIN or SUPER
    for I(kill_idle_blockers).
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
  description: Objects to create, alter, rename, re-create or drop, with the details and the statements that do
    it (C(renamed_from) for a renamed table).
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
  description: C(idempotence) (warnings), C(destructive) (each with C(key), the object schema_allow_destructive
    names, and C(allowed)), C(duplicates), C(alters) (algorithm, lock, table size, blocking), C(refused) (the
    reasons the run was refused) and C(report) (lines for people).
  returned: always
  type: dict
applied:
  description: Statements executed on I(db), in order (file, index, line, sql, rows - the affected rows).
  returned: always
  type: list
not_on_copy:
  description: Allowed account and server statements, which the plan does not run on its copy (file, index,
    line, sql, reason); the real run runs them.
  returned: when the plan was computed
  type: list
skipped:
  description: Statements the real run leaves out (file, index, line, sql, reason) - their effect on the copy
    was nil, or they drop and re-create an object as it is, or they are only a comment for this server.
  returned: when the plan was computed
  type: list
data_checks:
  description: Every check of the current data against the new definitions - C(check) (not_null, check_constraint,
    foreign_key, unique, narrowing), C(object), C(columns), C(statement), C(when) (C(now) before anything is
    applied, C(on_the_way) right before its statement, C(unchecked)), C(depends_on) (earlier statements whose
    effect it was evaluated with), C(rows) (offending rows; None until evaluated).
  returned: when the plan was computed
  type: list
data_statements:
  description: Allowed data statements that ran, with their affected rows.
  returned: in a real run
  type: list
classified:
  description: Number of statements of each category.
  returned: when connected
  type: dict
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
job_dir:
  description: With I(mode=start), the job to poll.
  returned: mode=start
  type: str
state:
  description: With I(mode=status)/I(cancel), C(running), C(done) (then C(result) is the run's result, as
    I(mode=run) returns it) or C(failed) (the worker died); C(progress) is the snapshot the controller prints.
  returned: mode=status or mode=cancel
  type: str
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
from ansible.module_utils.dbrelease import (
    binlog,
    classify,
    datachecks,
    ddl_exec,
    ddl_lint,
    job,
    plancopy,
    schema,
    sqlident,
)
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
from ansible.module_utils.dbrelease.plancopy import PlanCopy
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
        allow_destructive=dict(type="raw", default=False),
        allow_statements=dict(type="list", elements="str", default=[]),
        allow_blocking_alter=dict(type="bool", default=False),
        large_table_bytes=dict(type="int", default=1073741824),
        require_approved_plan=dict(type="bool", default=False),
        approved_plan=dict(type="dict"),
        plan_override=dict(type="bool", default=False),
        temp_schema_prefix=dict(type="str", default="__dbrelease_plan_"),
        plan_copy=dict(type="str", default="referenced", choices=["referenced", "full"]),
        allow_empty_ddl=dict(type="bool", default=False),
    )
    spec.update(ddl_exec.argument_spec())
    spec.update(job.argument_spec())
    return spec


# The detached runs of this module (module_utils/dbrelease/job.py; the controller half is action_plugins/
# schema_apply.py). A stopped run says itself what took effect (its failure message and record).
JOBS = job.Jobs("schema")


# ---------------------------------------------------------------------------------------------------------------
# Reading the DDL
# ---------------------------------------------------------------------------------------------------------------

def read_ddl(paths, sources=(), allow_empty=False, warnings=None):
    """(statements, {file name: sha256}). Raises SchemaFailure naming the file on any read/split problem, and for a
    file holding no statement (empty, or only comments) unless `allow_empty`, which appends a warning instead."""
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
            found = split_sql(raw.decode("utf-8"), file=label)
        except (SplitError, UnicodeDecodeError) as exc:
            raise SchemaFailure("cannot split DDL file %s: %s" % (path, exc), {"files": checksums}) from None
        if not found:
            what = "is empty" if not raw.strip(b" \t\r\n\xef\xbb\xbf") else "holds only comments"
            if not allow_empty:
                raise SchemaFailure("DDL file %s %s: no statement to apply. Fix the file or remove it from "
                                    "release_ddl_files; set schema_allow_empty_ddl: true to only warn" % (
                                        path, what), {"files": checksums}) from None
            if warnings is not None:
                warnings.append("DDL file %s %s: nothing to apply from it (schema_allow_empty_ddl)" % (path, what))
        statements.extend(found)
    return statements, checksums


def objects_of_statement(st):
    """Plan object names a statement acts on (`table outbox`, `view v`, `routine PROCEDURE p`, ...)."""
    info = ddl_lint.statement_target(st.get("effective") or st["sql"])
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
        info = ddl_lint.statement_target(st.get("effective") or st["sql"])
        if info["table"] and (info["verb"] in ("alter", "drop", "rename", "truncate") or info["kind"] == "index" or
                              (info["verb"] == "create" and info["or_replace"])):
            found.add(info["table"])
    return found


# Data checks run on up to this many connections at once (one scan per table, foreign key and unique checks).
DATA_CHECK_WORKERS = 2

# Schemas a statement may name besides its own: nothing can be written in them.
READ_ONLY_SCHEMAS = ("information_schema", "performance_schema")


def classify_statements(statements, db, flavor, version):
    """Give every statement its classification (`class`) and the text the server reads (`effective`)."""
    for st in statements:
        st["class"] = classify.classify(st["sql"], flavor, version, db)
        st["effective"] = st["class"]["effective"]
    return statements


_DEFINITIONS = ("view", "procedure", "function", "trigger", "event")


def _header_qualifiers(st):
    """The schemas qualifying the object a CREATE / ALTER of a view, routine, trigger or event defines (and a
    trigger's table): the names of its header, not those its body reads or writes when it runs."""
    names = sqlident.qualified_names(sqlident.lex(st["effective"]))
    words = [n["parts"][0][0].upper() if len(n["parts"]) == 1 else None for n in names]
    found = set()

    def schema_of_next(i):
        for name in names[i + 1:]:
            if len(name["parts"]) == 1 and name["parts"][0][0].upper() in ("IF", "NOT", "EXISTS"):
                continue
            if len(name["parts"]) >= 2:
                found.add(name["parts"][0][0])
            return

    for i, word in enumerate(words):
        if word in ("VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"):
            schema_of_next(i)
            break
    if st["class"].get("kind") == "trigger" and "ON" in words:
        schema_of_next(words.index("ON"))
    return found


def statement_refusals(statements, db, allowed):
    """Why statements may not run in the schema phase: a list of messages naming file, statement and line.

    A statement may name another schema only inside the body of a view, routine, trigger or event it defines
    (a view over another schema's table, a trigger writing an audit schema): defining them changes nothing
    there. Those schemas are kept in `reads` (the plan's account may read them)."""
    refusals = []
    for st in statements:
        info = st["class"]
        category = info["category"]
        st["reads"] = set()
        if category in (classify.SCHEMA, classify.SESSION, classify.NOOP):
            others = {q for q in sqlident.schema_qualifiers(st["effective"]) if q != db and
                      q.lower() not in READ_ONLY_SCHEMAS}
            verb = (info.get("verb") or "").lower()
            if others and info.get("kind") in _DEFINITIONS and verb in ("create", "alter"):
                st["reads"] = others - _header_qualifiers(st)
                others = others & _header_qualifiers(st)
            if others:
                st["refused"] = "names schema %s" % ", ".join(sorted(others))
                refusals.append("%s names schema %s; the DDL files may only change objects of %s (a dry run on a "
                                "copy could not keep the other schema untouched)" % (
                                    summary(st), ", ".join(sorted(others)), db))
            continue
        if category in allowed and category != "database":
            continue
        st["refused"] = info["reason"]
        if category == "database":
            refusals.append("%s %s; the DDL files may only change objects of %s" % (summary(st), info["reason"], db))
        else:
            refusals.append("%s is %s (set schema_allow_statements: [%s] to run it in the schema phase anyway)" % (
                summary(st), info["reason"], category))
    return refusals


def touched_objects(st, db):
    """What a statement can change, for the snapshots of the copy around it: `{kind: names or None (all)}`, None
    for anything (a procedure call, dynamic SQL), {} for nothing structural."""
    info, target = st["class"], st["target"]
    category, kind = info["category"], info.get("kind")
    if category in (classify.SESSION, classify.NOOP, "data", "query", "transaction", "maintenance", "handler", "xa"):
        return {}
    if category != classify.SCHEMA:
        return None
    names = {n for schema_name, n in sqlident.object_references(st["effective"]) if schema_name in (None, db)}
    for key in ("name", "table"):
        if target.get(key):
            names.add(target[key])
    if kind in ("table", "index", "sequence"):
        return {"tables": names, "views": names, "triggers": None}
    if kind == "view":
        return {"views": names}
    if kind in ("procedure", "function"):
        return {"routines": {"%s %s" % (kind.upper(), target["name"])}} if target.get("name") else None
    if kind == "trigger":
        return {"triggers": {target["name"]}} if target.get("name") else None
    if kind == "event":
        return {"events": {target["name"]}} if target.get("name") else None
    return None


def _with_raw_checks(conn, tmp, tables):
    """Table specs with `raw_checks` ({name: CHECK clause as the server shows it}) for the data checks."""
    wanted = [t for t, spec in tables.items() if spec["checks"]]
    raw = {}
    if wanted:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                        "WHERE CONSTRAINT_SCHEMA = %%s AND (%s)" % " OR ".join(["TABLE_NAME = %s"] * len(wanted)),
                        (tmp, *wanted))
            for table, name, clause in cur.fetchall():
                raw.setdefault(table, {})[name] = clause
    return {t: dict(spec, raw_checks=raw.get(t, {})) for t, spec in tables.items()}


# ALTER TABLE clauses whose work the snapshot cannot see (a rebuild, partition maintenance, the counter): a
# statement with one of them is never skipped for having no effect on the copy.
_UNSEEN_WORK = {"FORCE", "ENGINE", "AUTO_INCREMENT", "ANALYZE", "CHECK", "OPTIMIZE", "REBUILD", "REPAIR",
                "TRUNCATE", "COALESCE", "REORGANIZE", "EXCHANGE", "DISCARD", "IMPORT", "ROW_FORMAT",
                "KEY_BLOCK_SIZE", "STATS_PERSISTENT", "STATS_AUTO_RECALC", "STATS_SAMPLE_PAGES", "ENCRYPTED",
                "ENCRYPTION_KEY_ID", "PAGE_COMPRESSED", "PAGE_COMPRESSION_LEVEL", "ENABLE", "DISABLE"}


def skippable(st) -> bool:
    """Whether a statement whose effect on the copy was nil can be left out of the real run."""
    if st["class"]["category"] != classify.SCHEMA:
        return False
    target = st["target"]
    if target.get("verb") == "alter" and target.get("kind") == "table":
        for clause in target.get("clauses", []):
            words = [t[1].upper() for t in clause if t[0] == "word"]
            if words and words[0] in _UNSEEN_WORK:
                return False
    return True


def _object_state(objects, key):
    kind, name = key
    return objects.get(kind, {}).get(name)


def plan_skips(statements, effects):
    """The statements the real run leaves out, with why: those whose effect on the copy was nil, and a
    `DROP ... IF EXISTS x` + `CREATE x` of a view, routine, trigger or event that leaves x as it was (nothing in
    between touching x or running anything but schema statements)."""
    skips = {}
    for i, (st, eff) in enumerate(zip(statements, effects, strict=True)):
        if eff.get("ran") and not eff["changed"] and skippable(st):
            skips[i] = "no effect on the temporary copy: the schema already has what it makes"
    for i, (st, eff) in enumerate(zip(statements, effects, strict=True)):
        target = st["target"]
        key = PlanCopy.object_key(st["class"].get("kind"), target.get("name"))
        if i in skips or key is None or target.get("verb") != "drop" or not eff.get("ran"):
            continue
        for j in range(i + 1, len(statements)):
            other, oeff = statements[j], effects[j]
            okey = PlanCopy.object_key(other["class"].get("kind"), other["target"].get("name"))
            if okey == key:
                if other["target"].get("verb") == "create" and oeff.get("ran") and \
                        _object_state(eff["before"], key) is not None and \
                        _object_state(eff["before"], key) == _object_state(oeff["after"], key):
                    why = "%s %s is dropped and created again as it is: both statements are left out" % (
                        schema.KIND_LABEL[key[0]], key[1])
                    skips[i] = skips[j] = why
                break
            if other["class"]["category"] not in (classify.SCHEMA, classify.SESSION, classify.NOOP):
                break
    return skips


def _failed_on_copy(st, db, exc):
    code, text = _server_error(exc)
    if code in plancopy.PRIVILEGE_ERRORS or code in (1045, 1044):
        return SchemaFailure(
            "%s reaches outside the temporary schema: the plan runs the DDL as a temporary account that can only "
            "act on the copy, and the server refused it: (%s) %s; nothing was applied to %s" % (
                summary(st), code, text, db),
            {"failed_statement": dict(ddl_lint.ref(st), error="(%s) %s" % (code, text), outside_schema=True)})
    return SchemaFailure(
        "%s failed on a copy of the schema, so nothing was applied to %s: (%s) %s" % (summary(st), db, code, text),
        {"failed_statement": dict(ddl_lint.ref(st), error="(%s) %s" % (code, text))})


def compute_plan(conn, copy, statements, flavor, version, target_objects, creates_before, full_copy=False,
                 checks_known=None):
    """Copy the schema into `copy`, run the statements there one by one as the temporary account, and diff.

    Returns a dict: `changes` (the plan), `alters` (ALGORITHM trials), `after_texts`, `copied` (objects per
    kind), `effects` (per statement: ran, changed, the touched objects before and after), `lineage`
    (datachecks.Lineage: the data checks and what the release loses). `checks_known(lineage)` is called as soon
    as every statement ran on the copy (the data checks are then known; they can run while the plan finishes).
    The caller closes `copy` (finally).
    """
    import pymysql

    db, tmp = copy.db, copy.tmp
    for st in statements:
        st["target"] = ddl_lint.statement_target(st["effective"])
    runnable = [st for st in statements if st["class"]["category"] not in (classify.NOOP,) + classify.NOT_ON_COPY]
    scope = None if full_copy else schema.plan_scope(runnable, target_objects, modified_tables(runnable))
    try:
        copy.create(target_objects, creates_before, scope,
                    reads=set().union(*[st.get("reads", set()) for st in statements]))
    except plancopy.CopyError as exc:
        raise SchemaFailure("%s; nothing was applied to %s" % (exc, db), {}) from None
    temp_before = copy.real_definers(schema.snapshot(conn, tmp, flavor)["objects"])
    copied = {kind: len(temp_before[kind]) for kind in schema.KINDS}
    lineage = datachecks.Lineage(db, target_objects["tables"])
    alters, effects = [], []
    for st in statements:
        info, target = st["class"], st["target"]
        if info["category"] == classify.NOOP:
            effects.append({"ran": False, "changed": False, "why": "only a comment for this server"})
            continue
        if info["category"] in classify.NOT_ON_COPY:
            effects.append({"ran": False, "changed": False,
                            "why": "not tried on the copy: it acts on the server, not on the schema"})
            continue
        sql = copy.retarget(st["sql"])
        if info["category"] == classify.SESSION and info.get("kind") == "database":
            sql = "SELECT 1" if target.get("verb") == "create" else "USE %s" % quote_ident(tmp)
        only = touched_objects(st, db)
        before = copy.real_definers(schema.snapshot(conn, tmp, flavor, only)["objects"]) if only != {} else {}
        existing = target.get("table") in target_objects["tables"]
        explicit = re.search(r"\bALGORITHM\s*=", st["effective"], re.IGNORECASE)
        trial = existing and not explicit and info["category"] == classify.SCHEMA and (
            (target["verb"] == "alter" and target["kind"] == "table" and target["clauses"]) or
            (target["verb"] in ("create", "drop") and target["kind"] == "index"))
        try:
            if trial:
                algorithm, lock = copy.execute(sql, info, target,
                                               trial=lambda cur, text, t=target: try_alter(cur, text, t))
                alters.append({"statement": ddl_lint.ref(st), "table": target["table"], "algorithm": algorithm,
                               "lock": lock, "source": "tried on the temporary copy"})
            else:
                copy.execute(sql, info, target)
                if existing and explicit and target["verb"] == "alter":
                    algorithm = ddl_lint.statement_algorithm_by_rules(st["effective"], flavor, version)
                    alters.append({"statement": ddl_lint.ref(st), "table": target["table"],
                                   "algorithm": algorithm, "lock": "none" if algorithm != "copy" else "shared",
                                   "source": "rules for %s %s (explicit ALGORITHM in the statement)" % (
                                       flavor, ".".join(str(v) for v in version))})
        except pymysql.err.MySQLError as exc:
            raise _failed_on_copy(st, db, exc) from None
        after = copy.real_definers(schema.snapshot(conn, tmp, flavor, only)["objects"]) if only != {} else {}
        hints = datachecks.statement_hints(st["effective"], info, target)
        if before or hints["unknown"] or hints["data_tables"] or hints["truncate"]:
            lineage.step(ddl_lint.ref(st), info, hints, _with_raw_checks(conn, tmp, before.get("tables", {})),
                         _with_raw_checks(conn, tmp, after.get("tables", {})))
        # A column dropped and re-added, or a table replaced, loses values the structure does not show: never nil.
        changed = before != after or only is None or bool(hints["readded"]) or hints["replace"]
        effects.append({"ran": True, "changed": changed, "before": before, "after": after})
    if checks_known is not None:
        checks_known(lineage)
    temp_after = copy.real_definers(schema.snapshot(conn, tmp, flavor)["objects"])
    changes = schema.diff(temp_before, temp_after, lineage.origins())
    after_texts = {}
    for change in changes:
        if change["action"] != "drop":
            text = schema.show_create(conn, tmp, change["kind"], change["name"])
            after_texts[change["object"]] = sqlident.rewrite_schema(text, tmp, db)
    return {"changes": changes, "alters": alters, "after_texts": after_texts, "copied": copied, "effects": effects,
            "lineage": lineage}


def attach_statements(changes, statements):
    by_object = {}
    for st in statements:
        for obj in objects_of_statement(st):
            by_object.setdefault(obj, []).append(ddl_lint.ref(st))
    for change in changes:
        refs = by_object.get(change["object"], [])
        if change.get("renamed_from"):
            refs = by_object.get("table %s" % change["renamed_from"], []) + refs
        change["statements"] = [r for i, r in enumerate(refs) if r not in refs[:i]]
    return by_object


def public_plan(changes):
    return [{k: c[k] for k in ("object", "action", "details", "statements", "renamed_from") if k in c}
            for c in changes]


def diff_text(changes, creates_before, after_texts, db):
    before, after = [], []
    for change in changes:
        kind, name = change["kind"], change.get("renamed_from") or change["name"]
        if change["action"] != "create":
            before.append(schema.normalise_show_create(creates_before[kind][name], db, keep_definer=True) + ";\n")
        if change["action"] != "drop":
            after.append(schema.normalise_show_create(after_texts[change["object"]], db, keep_definer=True) + ";\n")
    return {"before": "\n".join(before), "after": "\n".join(after),
            "before_header": "%s (before)" % db, "after_header": "%s (after)" % db}


# ---------------------------------------------------------------------------------------------------------------
# Lint and data checks over the plan
# ---------------------------------------------------------------------------------------------------------------

def allow_destructive_value(value):
    """schema_allow_destructive as given: true / false, or a list of objects (`orders`, `orders.legacy_flag`,
    `orders.*`). Returns True, False or a list of strings."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0", ""):
            return False
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise SchemaFailure("schema_allow_destructive must be true, false or a list of objects such as "
                        "orders.legacy_flag; found %r" % (value,), {})


def data_statement_findings(statements, applied_rows=None):
    """Allowed data statements, listed among the destructive changes (their rows are counted when they run)."""
    found = []
    for st in statements:
        if st["class"]["category"] != "data":
            continue
        target = st.get("target") or ddl_lint.statement_target(st["effective"])
        table = target.get("table") or next((n for s_, n in sqlident.object_references(st["effective"])
                                            if s_ is None), None)
        found.append({"object": "table %s" % table if table else "data", "key": [table] if table else [],
                      "reason": "%s changes rows (allowed by schema_allow_statements)" % target["verb"].upper(),
                      "statements": [ddl_lint.ref(st)], "allowed_by": "schema_allow_statements"})
    return found


def check_message(check) -> str:
    text = datachecks.describe(check)
    refs = "%s #%d (line %d)" % (check["statement"]["file"], check["statement"]["index"], check["statement"]["line"])
    if check.get("depends_on"):
        text += " (checked against the data as %s leave(s) it)" % _refs_text(check["depends_on"])
    return "%s; %s would fail or change them: clean the data first" % (text, refs)


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


def _segments(statements, way_checks):
    """The statements to run, cut before each statement that has checks to run on the way."""
    segments, current = [], []
    for st in statements:
        if way_checks.get(st["ref_key"]) and current:
            segments.append(current)
            current = []
        current.append(st)
    if current:
        segments.append(current)
    return segments


def run(params, check_mode=False, diff_mode=False, progress=None, should_stop=None):
    """The module's work; returns the result dict or raises SchemaFailure (with a partial result). Run as a job,
    `progress(snapshot)` hears what it is doing (ddl_exec.progress_line) and `should_stop()` says it was cancelled:
    no statement starts after that, and an online change in progress is aborted (its table left as it was)."""
    started = time.monotonic()
    if progress is not None:
        progress({"stage": "planning", "elapsed_seconds": 0.0})
    db = params["db"]
    names, contents = params.get("ddl_names") or [], params.get("ddl_contents") or []
    if len(names) != len(contents):
        raise SchemaFailure("ddl_names has %d entries and ddl_contents %d: give one name per text" % (
            len(names), len(contents)), {})
    allow_destructive = allow_destructive_value(params.get("allow_destructive"))
    allowed = list(params.get("allow_statements") or [])
    unknown = sorted(set(allowed) - set(classify.ALLOWABLE))
    if unknown:
        raise SchemaFailure("schema_allow_statements may list %s; %s cannot be allowed" % (
            ", ".join(classify.ALLOWABLE), ", ".join(unknown)), {})
    warnings = []
    statements, checksums = read_ddl(params.get("ddl_files"),
                                     [{"name": n, "content": c} for n, c in zip(names, contents, strict=True)],
                                     allow_empty=params.get("allow_empty_ddl"), warnings=warnings)
    result = {"changed": False, "ok": False, "files": checksums, "applied": [], "skipped": [],
              "statements": len(statements), "data_checks": [], "data_statements": [], "warnings": warnings,
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
        # Every statement is classified before anything runs, in check and real mode alike.
        classify_statements(statements, db, flavor, version)
        result["classified"] = {c: n for c, n in sorted(_category_counts(statements).items())}
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
        # Refused before anything runs (the snapshots above only read): nothing of the release reaches the server.
        refusals = statement_refusals(statements, db, allowed)
        if refusals:
            lint["refused"] = refusals
            first = next(st for st in statements if st.get("refused"))
            result["failed_statement"] = dict(ddl_lint.ref(first), error="refused: " + first["refused"])
            raise SchemaFailure("refused before anything ran on %s: %s" % (db, " | ".join(refusals)), result)

        previous = {}
        for st in statements:
            for text in ddl_lint.idempotence_findings(st, flavor, version, previous.get(st["file"], [])):
                lint["idempotence"].append(dict(ddl_lint.ref(st), finding=text))
            previous.setdefault(st["file"], []).append(st)

        # The plan, on a temporary copy (and a temporary account) that are always removed: on the target, or on
        # schema_plan_server.
        tmp = temp_schema_name(db, params.get("temp_schema_prefix") or "__dbrelease_plan_")
        result["temp_schema"] = tmp
        # The data checks read the real tables on connections of their own, from the moment they are known
        # (every statement ran on the copy) while the plan finishes (final snapshot, diff, dropping the copy).
        checking = DataChecks(params, db, _scan_keys(before))
        try:
            plan_conn, result["plan_server"], plan_params = ddl_exec.plan_connection(conn, params, info)
        except ddl_exec.TargetRefused as exc:
            raise SchemaFailure(str(exc), result) from None
        try:
            with PlanCopy(plan_conn, plan_params, db, tmp, flavor, version,
                          source_conn=conn if plan_conn is not conn else None) as copy:
                plan = compute_plan(plan_conn, copy, statements, flavor, version, before["objects"], creates_before,
                                    full_copy=params.get("plan_copy") == "full", checks_known=checking.start)
            if copy.problems:
                result.setdefault("warnings", []).extend("could not " + p for p in copy.problems)
        except SchemaFailure as exc:
            checking.wait(conn)
            exc.result = dict(result, **exc.result)
            raise
        except Exception:
            checking.wait(conn)
            raise
        finally:
            if plan_conn is not conn:
                close_quietly(plan_conn)
        changes, alters, lineage = plan["changes"], plan["alters"], plan["lineage"]
        result["plan_copied"] = plan["copied"]
        by_object = attach_statements(changes, statements)
        result["plan"] = public_plan(changes)
        result["plan_sha256"] = schema.plan_sha256(changes, checksums)
        skips = plan_skips(statements, plan["effects"])
        for i, st in enumerate(statements):
            st["ref_key"] = (st["file"], st["index"])
            if st["class"]["category"] == classify.NOOP:
                skips[i] = plan["effects"][i]["why"]
        result["skipped"] = [dict(ddl_lint.ref(statements[i]), reason=why) for i, why in sorted(skips.items())]
        result["not_on_copy"] = [dict(ddl_lint.ref(st), reason=plan["effects"][i]["why"])
                                 for i, st in enumerate(statements)
                                 if st["class"]["category"] in classify.NOT_ON_COPY]
        result["plan_seconds"] = round(time.monotonic() - started, 3)
        if diff_mode:
            result["diff"] = diff_text(changes, creates_before, plan["after_texts"], db)

        # Data checks against the current data: wait for them (they started before the plan finished).
        checks = lineage.checks
        result["data_checks_seconds"] = checking.wait(conn)
        result["data_checks"] = [_public_check(c) for c in checks]

        # Lint over the plan.
        refused = lint["refused"]
        lint["destructive"] = (ddl_lint.destructive_findings(changes, by_object) +
                               ddl_lint.row_destroying_statements(
                                   [st for st in statements if st["class"]["category"] in ("schema", "data")],
                                   before["objects"]["tables"]) +
                               lineage.lost_values())
        for finding in lint["destructive"]:
            finding["allowed"] = ddl_lint.allowed_destructive(finding, allow_destructive)
        not_allowed = [d for d in lint["destructive"] if not d["allowed"]]
        if not_allowed:
            refused.append("destructive changes (set schema_allow_destructive to the objects, e.g. [%s], or true, "
                           "to apply them): " % ", ".join(sorted({".".join(d["key"]) for d in not_allowed
                                                                  if d.get("key")})) +
                           "; ".join("%s %s by %s" % (d["object"], d["reason"], _refs_text(d["statements"]))
                                     for d in not_allowed))
        data_findings = data_statement_findings(statements)
        lint["destructive"] += [dict(d, allowed=True) for d in data_findings]
        lint["duplicates"] = [{"object": c["object"], "index": c["index"], "columns": c["columns"],
                               "duplicate_values": c["duplicate_values"], "rows_involved": c["rows"],
                               "statements": [c["statement"]]}
                              for c in checks if c["check"] == "unique" and c.get("rows")]
        for check in checks:
            if check["when"] == "now" and check.get("rows"):
                refused.append(check_message(check))
            elif check.get("error"):
                refused.append("%s: the data check on %s could not run: %s" % (
                    _refs_text([check["statement"]]), check["object"], check["error"]))
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
                              a["source"]) for a in alters] +
                          ["checked on the way: %s, before %s runs (it depends on %s)" % (
                              c["object"], _refs_text([c["statement"]]), _refs_text(c["depends_on"]) or
                              "an earlier statement") for c in checks if c["when"] == "on_the_way"] +
                          ["not checked against the data: %s (%s) by %s" % (
                              c["object"], c["check"], _refs_text([c["statement"]]))
                           for c in checks if c["when"] == "unchecked"] +
                          ["skipped: %s #%d (line %d): %s" % (k["file"], k["index"], k["line"], k["reason"])
                           for k in result["skipped"]] +
                          ["%s #%d (line %d) %s" % (k["file"], k["index"], k["line"], k["reason"])
                           for k in result["not_on_copy"]])

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
            result["changed"] = bool(changes) or bool(data_findings)
            result["ok"] = True
            return result

        # The real run: every statement's checks passed; statements with checks on the way run after them.
        to_run = [st for i, st in enumerate(statements) if i not in skips]
        way_checks = {}
        for check in checks:
            if check["when"] == "on_the_way":
                way_checks.setdefault((check["statement"]["file"], check["statement"]["index"]), []).append(check)
        applied, failure = [], None
        runner = ddl_exec.Runner(params, info, alters, result["topology"], progress=progress,
                                 should_stop=should_stop, total=len(to_run))
        # Point-in-time recovery replays the binary logs up to here (rollback, release_rollback_mode=pitr: HR).
        first = next((st for st in to_run if st["class"]["category"] not in (classify.SESSION, classify.NOOP)), None)
        result["binlog_before_ddl"] = binlog.position_for_record(conn, flavor) if first is not None else {}
        for segment in _segments(to_run, way_checks):
            pending = way_checks.get(segment[0]["ref_key"], [])
            if pending:
                datachecks.evaluate(conn, db, pending, "way", connect=lambda: connect(params),
                                    workers=DATA_CHECK_WORKERS)
                result["data_checks"] = [_public_check(c) for c in checks]
                offending = [c for c in pending if c.get("rows") or c.get("error")]
                if offending:
                    result["applied"] = applied
                    result["execution"] = runner.report()
                    result["changed"] = bool(applied)
                    raise SchemaFailure(
                        "stopped before %s: %s. Statements applied before it, which stay in effect (DDL is not "
                        "transactional; the plan said this check could only run on the way): %s" % (
                            summary(segment[0]), "; ".join(check_message(c) if c.get("rows") is not None else
                                                           "%s: %s" % (c["object"], c.get("error"))
                                                           for c in offending),
                            _refs_text(applied)), _after_failure(conn, db, flavor, result, before, statements,
                                                                  creates_before, lineage))
            done, failure = apply_statements(conn, db, segment, runner)
            applied.extend(done)
            if failure:
                break
        result["applied"] = applied
        result["execution"] = runner.report()
        result["data_statements"] = [a for a in applied if (a["file"], a["index"]) in {
            st["ref_key"] for st in statements if st["class"]["category"] == "data"}]
        if applied and result["binlog_before_ddl"].get("file"):
            # The executor may have waited after that read while the application wrote: stop at the first DDL
            # itself, when the release began with one (a data statement's transaction looks like the application's).
            if first["class"]["category"] == classify.SCHEMA:
                result["binlog_before_ddl"] = binlog.position_before_first_ddl(conn, db, result["binlog_before_ddl"])
            else:
                result["binlog_before_ddl"]["note"] = "the release began with a %s statement: position as read " \
                    "before it" % first["class"]["category"]
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
        actual = schema.diff(before["objects"], after["objects"], lineage.origins())
        attach_statements(actual, statements)
        result["changes"] = public_plan(actual)
        rows_changed = sum(max(a.get("rows") or 0, 0) for a in result["data_statements"])
        result["changed"] = bool(actual) or rows_changed > 0
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


def _after_failure(conn, db, flavor, result, before, statements, creates_before, lineage):
    """The result of a run stopped on the way: the schema as it is now and what changed."""
    after = schema.snapshot(conn, db, flavor)
    result["post_sha256"] = schema.snapshot_sha256(after["objects"])
    result["post_snapshot"] = {"database": db, "sha256": result["post_sha256"], "objects": after["objects"]}
    actual = schema.diff(before["objects"], after["objects"], lineage.origins())
    attach_statements(actual, statements)
    result["changes"] = public_plan(actual)
    result["changed"] = bool(actual)
    return result


class DataChecks:
    """The plan's data checks (the `now` ones), run in a thread of their own on connections of their own, so
    they overlap with the end of the plan. `wait()` returns the seconds the run waited for them after the plan
    (what they added to it); it runs them on `conn` when no second connection can be made."""

    def __init__(self, params, db, tables):
        self.params, self.db, self.tables = params, db, tables
        self.thread = None
        self.checks = None
        self.error = None

    def start(self, lineage):
        import threading

        self.checks = [c for c in lineage.checks if c["when"] == "now"]
        try:
            first = connect(self.params)
        except DbError:
            return  # run them in wait(), on the plan's connection
        self.thread = threading.Thread(target=self._run, args=(first,), daemon=True)
        self.thread.start()

    def _run(self, first):
        try:
            datachecks.evaluate(first, self.db, self.checks, "now", connect=lambda: connect(self.params),
                                workers=DATA_CHECK_WORKERS, tables=self.tables)
        except Exception as exc:  # noqa: BLE001 - re-raised by wait() in the module's thread
            self.error = exc
        finally:
            close_quietly(first)

    def wait(self, conn):
        started = time.monotonic()
        if self.thread is not None:
            self.thread.join()
        elif self.checks:
            datachecks.evaluate(conn, self.db, self.checks, "now", tables=self.tables, workers=1)
        if self.error is not None:
            raise self.error
        return round(time.monotonic() - started, 3)


def _scan_keys(snap):
    """{table: {"key": its single-column integer primary key or None, "rows": estimate}} for the data checks."""
    out = {}
    for table, spec in snap["objects"]["tables"].items():
        primary = spec["indexes"].get("PRIMARY")
        key = None
        if primary and len(primary["columns"]) == 1:
            column = primary["columns"][0][0]
            if ddl_lint.parse_type(spec["columns"][column]["type"])["base"] in ddl_lint.INT_BYTES:
                key = column
        out[table] = {"key": key, "rows": snap["rows"].get(table, 0)}
    return out


def _category_counts(statements):
    counts = {}
    for st in statements:
        counts[st["class"]["category"]] = counts.get(st["class"]["category"], 0) + 1
    return counts


def _public_check(check):
    out = {k: check[k] for k in ("check", "object", "columns", "statement", "depends_on", "when", "rows",
                                 "duplicate_values", "index", "constraint", "parent", "error") if k in check}
    out["depends_on"] = list(out.get("depends_on") or [])
    out.setdefault("rows", None)
    return out


RECORD_KEYS = ("plan_sha256", "plan", "changes", "applied", "failed_statement", "files", "lint", "plan_gate",
               "pre_sha256", "post_sha256", "table_sizes", "temp_schema", "plan_seconds", "skipped",
               "not_on_copy", "data_checks", "data_statements", "data_checks_seconds", "classified", "topology",
               "plan_server", "execution", "binlog_before_ddl")
RECORD_DEFAULTS = {"plan_sha256": "", "plan": [], "changes": [], "applied": [], "failed_statement": {}, "files": {},
                   "lint": {}, "plan_gate": {"status": "not required"}, "pre_sha256": "", "post_sha256": "",
                   "table_sizes": {}, "temp_schema": "", "plan_seconds": None, "skipped": [], "not_on_copy": [],
                   "data_checks": [], "data_statements": [], "data_checks_seconds": None, "classified": {},
                   "topology": {}, "plan_server": {}, "execution": {}, "binlog_before_ddl": {}}


def record_part(result):
    """What the release record keeps of the phase (every key, with its default when this run did not get there)."""
    return {key: result.get(key, RECORD_DEFAULTS[key]) for key in RECORD_KEYS}


def result_line(result):
    """One line for the operator: the plan, what the real run leaves out, and the lint findings."""
    plan = ", ".join("%s %s" % (c.get("action"), c.get("object")) for c in result.get("plan") or [])
    plan = plan or "nothing to change"
    checks = result.get("data_checks") or []
    checked = " (data checks: %d against the current rows%s)" % (
        len([c for c in checks if c.get("when") == "now"]),
        ", %d on the way" % len([c for c in checks if c.get("when") == "on_the_way"])
        if any(c.get("when") == "on_the_way" for c in checks) else "") if checks else ""
    findings = (result.get("lint") or {}).get("report") or []
    return "plan: %s%s%s%s" % (plan, checked, ("; lint: " + " | ".join(findings)) if findings else "",
                               ddl_exec.summary_line(result.get("execution")))


def finish(module, run_it):
    """Exit the module with the result of `run_it()` (the module's work), as exit_json or fail_json."""
    try:
        result = run_it()
    except SchemaFailure as exc:
        module.fail_json(msg=scrub(exc.msg, module.params), record=record_part(exc.result), **exc.result)
    except Exception as exc:  # a server error outside a statement (connection lost, privileges)
        module.fail_json(msg=scrub("schema_apply on %s: %s" % (endpoint(module.params), exc), module.params))
    warnings = result.pop("warnings", [])
    for warning in warnings:
        module.warn(warning)
    # The warnings go into the message too: the task is no_log (the connection), and the phase prints the message.
    module.exit_json(msg="; ".join([result_line(result)] + warnings), record=record_part(result), **result)


def job_work(module):
    """The work of a detached run: the module's result, exactly as exit_json/fail_json would print it."""
    import json

    from ansible.module_utils import basic
    from ansible.module_utils.common.json import Direction, get_module_encoder

    def work(report, should_stop):
        captured = {}
        module._record_module_result = lambda o: captured.setdefault("result", o)
        try:
            finish(module, lambda: run(module.params, check_mode=False, diff_mode=module._diff, progress=report,
                                       should_stop=should_stop))
        except SystemExit:
            pass
        encoder = get_module_encoder(getattr(basic, "_ANSIBLE_PROFILE", None) or "legacy",
                                     Direction.MODULE_TO_CONTROLLER)
        return json.loads(json.dumps(captured["result"], cls=encoder))

    return work


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["mode"] in ("status", "cancel"):
        JOBS.serve(module, params)
    require_pymysql(module)
    if params["mode"] == "start" and not module.check_mode:
        # Never two schema runs on one database from this host: a run whose controller was killed leaves its job
        # running until the job's lease expires (it then stops before its next statement and removes its copy).
        about = {"db": params["db"], "endpoint": endpoint(params)}
        waited, others = JOBS.wait_for_others(params["lease_seconds"] + 60, **about)
        if others:
            module.fail_json(msg="a schema run of an earlier release is still running against %s on this host (job "
                                 "pid %s, started %s): it stops by itself within %d s of its controller's last poll "
                                 "(lease_seconds); waited %.0f s. Rerun once it has ended, or stop it with "
                                 "kill -TERM %s." % (params["db"], others[0].get("pid"),
                                                     time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime(others[0].get("started") or 0)),
                                                     params["lease_seconds"], waited, others[0].get("pid")))
        job_dir = JOBS.new_job_dir()
        pid = JOBS.start(job_dir, job_work(module), params["lease_seconds"], about=about)
        note = ("waited %.0f s for the schema run of an earlier release (its controller gone) to stop" % waited
                if waited else None)
        module.exit_json(changed=False, finished=False, job_dir=job_dir, pid=pid, waited_note=note)
    finish(module, lambda: run(params, check_mode=module.check_mode, diff_mode=module._diff))


if __name__ == "__main__":
    main()
