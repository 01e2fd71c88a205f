"""How the release's DDL statements are executed on a live primary. Stdlib plus PyMySQL only (runs on target hosts).

For each statement, in order:

1. replica lag gate: every replica named in the inventory must be at most `replica_max_lag` seconds behind
   (waiting up to `replica_lag_wait_seconds`);
2. lock guard (lock_guard.py): no session may hold or wait for a lock the statement needs; they are waited for
   with back-off within the statement's budget (`lock_budget_seconds`), or refused at once
   (`lock_blockers: refuse`); idle sessions of accounts named in `kill_idle_blockers` are killed instead;
3. the statement runs in a session with `lock_wait_timeout` = a few seconds, with the ALGORITHM/LOCK the plan
   chose appended (so the server errors rather than silently copying the table), and a watchdog that kills it
   when it waits for a metadata lock while other sessions queue behind it; a lock wait timeout or a watchdog
   kill is retried after a jittered back-off (back to step 2) while the budget lasts;
4. an ALTER the plan routed online (a copy of a table of `online_min_bytes` or more) runs through
   pt-online-schema-change or gh-ost instead (online_alter.py), with the same lock timeouts and the lag gate
   as its throttle.

Every statement leaves a record (`report()`): the route, the ALGORITHM clause used, the lock checks (count,
time), the blockers seen and waited for, sessions killed, watchdog kills, retries, the replica lag seen.
"""

from __future__ import annotations

import random
import re
import time

from ansible.module_utils.dbrelease import ddl_lint, lock_guard, online_alter, topology
from ansible.module_utils.dbrelease.db import DbError, connect, endpoint, quote_ident, server_info

# Client errors meaning the connection to the server is gone (server gone away, lost during the query, lost
# while reading), and server errors ending the connection (shutdown in progress, connection killed). PyMySQL
# raises InterfaceError (0, '') on a connection it already closed.
CONNECTION_LOST = (2006, 2013, 2055, 1053, 1927)

DEFAULTS = {
    "lock_wait_timeout": 5,
    "lock_budget_seconds": 120,
    "lock_blockers": "wait",
    "watchdog_queue_seconds": 1.0,
    "kill_idle_blockers": [],
    "online_min_bytes": 256 * 1024 * 1024,
    "online_tool": "auto",
    "online_max_load": "Threads_running=25",
    "online_critical_load": "Threads_running=50",
    "online_chunk_time": 0.5,
    "online_progress_seconds": 5,
    "replicas": [],
    "replica_max_lag": 10.0,
    "replica_lag_wait_seconds": 300,
}


def argument_spec():
    """The module options of DDL execution (merged into schema_apply's argument_spec)."""
    return dict(
        lock_wait_timeout=dict(type="int", default=DEFAULTS["lock_wait_timeout"]),
        lock_budget_seconds=dict(type="int", default=DEFAULTS["lock_budget_seconds"]),
        lock_blockers=dict(type="str", default=DEFAULTS["lock_blockers"], choices=["wait", "refuse"]),
        watchdog_queue_seconds=dict(type="float", default=DEFAULTS["watchdog_queue_seconds"]),
        kill_idle_blockers=dict(type="list", elements="str", default=[]),
        online_min_bytes=dict(type="int", default=DEFAULTS["online_min_bytes"]),
        online_tool=dict(type="str", default=DEFAULTS["online_tool"],
                         choices=["auto", online_alter.PT_OSC, online_alter.GH_OST, "none"]),
        online_max_load=dict(type="str", default=DEFAULTS["online_max_load"]),
        online_critical_load=dict(type="str", default=DEFAULTS["online_critical_load"]),
        online_chunk_time=dict(type="float", default=DEFAULTS["online_chunk_time"]),
        online_progress_seconds=dict(type="int", default=DEFAULTS["online_progress_seconds"]),
        replicas=dict(type="list", elements="dict", default=[]),
        replica_max_lag=dict(type="float", default=DEFAULTS["replica_max_lag"]),
        replica_lag_wait_seconds=dict(type="int", default=DEFAULTS["replica_lag_wait_seconds"]),
        allow_replica_target=dict(type="bool", default=False),
        plan_server=dict(type="dict"),
    )


def options(params) -> dict:
    opts = {k: params.get(k) if params.get(k) is not None else v for k, v in DEFAULTS.items()}
    opts["lock_wait_timeout"] = max(1, int(opts["lock_wait_timeout"]))
    return opts


def server_error(exc):
    args = getattr(exc, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    text = args[1] if len(args) > 1 else str(exc)
    return code, text


def connection_lost(exc) -> bool:
    import pymysql

    code, _ = server_error(exc)
    return code in CONNECTION_LOST or (isinstance(exc, pymysql.err.InterfaceError) and code in (0, None))


# ---------------------------------------------------------------------------------------------------------------
# What a statement touches, and the ALGORITHM clause it runs with
# ---------------------------------------------------------------------------------------------------------------

def touched_tables(sql) -> list:
    """Tables (and views) whose metadata lock the statement needs: the table it creates, alters, drops, indexes,
    truncates or renames (both names), the table a trigger is on, the tables its foreign keys reference, the view
    it replaces."""
    info = ddl_lint.statement_target(sql)
    # Names without their schema qualifier (only the names are read from these tokens).
    toks = ddl_lint.tokens(_QUALIFIER_RE.sub("", sql))
    found = []

    def add(name):
        if name and name not in found:
            found.append(name)

    if info["kind"] in ("table", "index", "trigger", "view"):
        add(info["table"] or (info["name"] if info["kind"] == "view" else None))
    for i, tok in enumerate(toks):
        if tok[0] == "word" and tok[1].upper() == "REFERENCES" and i + 1 < len(toks):
            add(toks[i + 1][1])
    if info["verb"] in ("rename", "drop", "truncate") and info["kind"] == "table":
        # RENAME TABLE a TO b, c TO d / DROP TABLE a, b: every name after TABLE [IF EXISTS], TO and commas.
        expect = False
        for tok in toks:
            word = tok[1].upper() if tok[0] == "word" else None
            if word in ("TABLE", "TABLES", "TO") or tok == ("punct", ","):
                expect = True
            elif word in ("IF", "EXISTS"):
                continue
            elif expect and tok[0] in ("ident", "word"):
                add(tok[1])
                expect = False
            else:
                expect = False
    if info["verb"] == "alter" and info["kind"] == "table":
        for clause in info["clauses"]:
            if ddl_lint.clause_kind(clause) == "rename_table":
                add(clause[-1][1].split(".")[-1])
    return found


_QUALIFIER_RE = re.compile(r"(`(?:[^`]|``)+`|[A-Za-z0-9_$]+)\s*\.\s*(?=[`A-Za-z0-9_$])")

_SUFFIX = {("instant", "none"): "ALGORITHM=INSTANT", ("inplace", "none"): "ALGORITHM=INPLACE, LOCK=NONE",
           ("inplace", "shared"): "ALGORITHM=INPLACE"}


def algorithm_clause(alter, sql) -> str:
    """The ALGORITHM/LOCK clause the plan chose for this statement, as the trial on the temporary copy ran it
    (`, ALGORITHM=INSTANT` ...), or '' when the statement runs as written: it names its own ALGORITHM, or it is
    not an ALTER TABLE / CREATE INDEX the plan tried. A copy is made explicit (`ALGORITHM=COPY`) on ALTER TABLE
    only, where the syntax always allows it."""
    if not alter or re.search(r"\bALGORITHM\s*=", sql, re.IGNORECASE):
        return ""
    if not alter.get("source", "").startswith("tried"):
        return ""
    info = ddl_lint.statement_target(sql)
    is_alter = info["verb"] == "alter" and info["kind"] == "table"
    if not is_alter and not (info["verb"] == "create" and info["kind"] == "index"):
        return ""
    if alter["algorithm"] == "copy":
        words = {t[1].upper() for t in info["tokens"] if t[0] == "word"}
        return ", ALGORITHM=COPY" if is_alter and "PARTITION" not in words else ""
    suffix = _SUFFIX.get((alter["algorithm"], alter["lock"]))
    if not suffix:
        return ""
    return (", " + suffix) if is_alter else (" " + suffix.replace(",", ""))


def route_alter(alter, statements, opts, server, binlog=None, which=None):
    """Decide whether an ALTER the plan found to need a copy runs online: sets `alter["online"]` to the tool name
    (and `online_reason` when a big copy cannot go online). Returns the tool or None. `opts` are the module's
    params (online_min_bytes, online_tool, login_unix_socket)."""
    alter.pop("online", None)
    ref = alter["statement"]
    sql = next((st["sql"] for st in statements if (st["file"], st["index"]) == (ref["file"], ref["index"])),
               ref["sql"])
    if alter.get("algorithm") != "copy" or int(opts.get("online_min_bytes") or 0) <= 0:
        return None
    if int(alter.get("table_bytes") or 0) < int(opts["online_min_bytes"]):
        return None
    why = online_alter.ineligible(sql)
    tool, _path, reason = (None, None, why) if why else online_alter.choose_tool(
        opts.get("online_tool") or "auto", server["flavor"], binlog, tcp=not opts.get("login_unix_socket"),
        **({"which": which} if which else {}))
    if tool is None:
        alter["online_reason"] = "runs as a blocking copy: %s" % reason
        return None
    alter["online"] = tool
    return tool


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------

class TargetRefused(Exception):
    """The endpoint is a replica: DDL runs on the primary only."""


def check_target(conn, server, params):
    """The endpoint's topology (topology.describe); raises TargetRefused when it is a replica, unless
    `allow_replica_target` (an active primary of a circular pair, say) is set."""
    found = topology.describe(conn, server)
    refusal = topology.replica_refusal(found, endpoint(params))
    if refusal and not params.get("allow_replica_target"):
        raise TargetRefused("refused before anything was planned or applied: %s; set schema_allow_replica_target: "
                            "true only if this server really is the one to change" % refusal)
    return found


def plan_connection(conn, params, server):
    """(connection, description, connection parameters) of where the temporary plan schema is built: `conn`
    itself, or a connection to `plan_server` (a replica or a separate server; its own host/port/socket, the
    release's account unless it names one). There, binary logging is turned off for the session
    (SET sql_log_bin = 0), so the temporary schema reaches no binary log: no errant GTID on a replica, nothing
    replicated from a separate server."""
    spec = params.get("plan_server")
    if not spec:
        return conn, {"endpoint": endpoint(params), "same_as_target": True}, params
    plan_params = topology.replica_params(params, spec)
    where = endpoint(plan_params)
    try:
        plan_conn = connect(plan_params)
    except DbError as exc:
        raise TargetRefused("schema_plan_server: %s; nothing was planned or applied" % exc) from None
    try:
        info = server_info(plan_conn)
        found = topology.describe(plan_conn, info)
        if info["flavor"] != server["flavor"]:
            raise TargetRefused("schema_plan_server %s runs %s and the target %s: the plan must be computed by the "
                                "same kind of server; nothing was planned or applied" % (
                                    where, info["version"], server["version"]))
        if found.get("super_read_only"):
            raise TargetRefused("schema_plan_server %s has super_read_only=ON, so the temporary schema cannot be "
                                "created there; nothing was planned or applied" % where)
        description = {"endpoint": where, "same_as_target": False, "role": found["role"], "server": info["version"],
                       "notes": []}
        if tuple(info["version_tuple"][:2]) != tuple(server["version_tuple"][:2]):
            description["notes"].append(
                "the plan server runs %s and the target %s: which ALTERs run INSTANT/INPLACE may differ (the "
                "statements then fail on the target with the plan's ALGORITHM rather than copy)" % (
                    info["version"], server["version"]))
        if found["binlog"]["enabled"]:
            import pymysql

            try:
                with plan_conn.cursor() as cur:
                    cur.execute("SET SESSION sql_log_bin = 0")
                description["sql_log_bin"] = 0
            except pymysql.err.MySQLError as exc:
                if found["role"] == "replica":
                    raise TargetRefused(
                        "schema_plan_server %s is a replica, and this account cannot turn its binary log off for the "
                        "session (SET sql_log_bin = 0: %s), so the temporary schema would become an errant "
                        "transaction there; grant SUPER / BINLOG ADMIN or plan elsewhere" % (
                            where, exc.args[1] if len(exc.args) > 1 else exc)) from None
                description["notes"].append("binary logging stays on for the plan session: %s" % (
                    exc.args[1] if len(exc.args) > 1 else exc))
        return plan_conn, description, plan_params
    except BaseException:
        plan_conn.close()
        raise


class StatementFailed(Exception):
    def __init__(self, error, **extra):
        super().__init__(error)
        self.error = error
        self.extra = extra


class Runner:
    """Executes the statements (see the module docstring); `apply()` is what schema_apply's apply_statements
    calls, `report()` the record of it."""

    def __init__(self, params, server, alters=(), topology_info=None, connect_fn=connect, clock=time.monotonic,
                 sleep=time.sleep, rand=random.random, which=None, progress=None, should_stop=None, total=None):
        self.params = params
        self.server = server
        self.opts = options(params)
        self.alters = {(a["statement"]["file"], a["statement"]["index"]): a for a in alters or ()}
        self.topology = topology_info or {}
        self.connect_fn = connect_fn
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.which = which
        self.records = []
        self.caps = None
        self.notes = []
        # Run as a job (module_utils/dbrelease/job.py): `progress(snapshot)` reports the statement in progress (see
        # progress_line), `should_stop()` returns why the job was cancelled; `total` counts the statements to run.
        self.progress_fn, self.should_stop = progress, should_stop or (lambda: None)
        self.total = total
        self._current = None

    # -- public -------------------------------------------------------------------------------------------------
    def apply(self, conn, db, statements):
        """(applied refs, failure or None), as apply_statements returns them."""
        import pymysql

        applied = []
        guard = replicas = None
        try:
            guard = self.connect_fn(self.params)
            self.caps = lock_guard.capabilities(guard, self.server["flavor"], self.server["version_tuple"])
            self.notes.extend(self.caps["notes"])
            if self.opts["replicas"]:
                replicas = topology.Replicas(self.params, self.opts["replicas"],
                                             self.topology.get("endpoint_server_id"), connect_fn=self.connect_fn,
                                             primary=guard, primary_flavor=self.server["flavor"], clock=self.clock)
            with conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = %d" % self.opts["lock_wait_timeout"])
                cur.execute("USE %s" % quote_ident(db))
            with lock_guard.Watchdog(lambda: self.connect_fn(self.params), self.caps,
                                     own_ids={conn.thread_id(), guard.thread_id()},
                                     threshold=self.opts["watchdog_queue_seconds"]) as watchdog:
                own = {conn.thread_id(), guard.thread_id(), *watchdog.own_ids}
                for st in statements:
                    record = self._record(st)
                    self.records.append(record)
                    try:
                        self._stop_point(record, "before it ran")
                        self._one(conn, guard, watchdog, replicas, own, db, st, record)
                    except StatementFailed as exc:
                        record["error"] = exc.error
                        return applied, dict(ddl_lint.ref(st), error=exc.error, **exc.extra)
                    except pymysql.err.MySQLError as exc:
                        code, text = server_error(exc)
                        failure = dict(ddl_lint.ref(st), error="(%s) %s" % (code, text or "connection closed"))
                        if connection_lost(exc):
                            failure["connection_lost"] = True
                            failure["error"] = "the connection to the server was lost while it ran: " + \
                                failure["error"]
                        record["error"] = failure["error"]
                        return applied, failure
                    applied.append(dict(ddl_lint.ref(st), rows=record.get("rows")))
        except DbError as exc:
            failure_st = statements[len(applied)] if len(applied) < len(statements) else statements[-1]
            return applied, dict(ddl_lint.ref(failure_st), error="the lock guard cannot connect: %s" % exc)
        finally:
            if replicas is not None:
                replicas.close()
            if guard is not None:
                try:
                    guard.close()
                except Exception:  # the server may have gone: nothing left to close
                    pass
        return applied, None

    def report(self) -> dict:
        checks = sum(r["lock_checks"] for r in self.records)
        check_seconds = sum(r["lock_check_seconds"] for r in self.records)
        lags = [lag for r in self.records for lag in (r.get("replica_lag") or {}).values()
                if lag.get("lag_seconds") is not None]
        return {
            "lock_wait_timeout": self.opts["lock_wait_timeout"],
            "lock_budget_seconds": self.opts["lock_budget_seconds"],
            "watchdog_queue_seconds": self.opts["watchdog_queue_seconds"],
            "lock_information": (self.caps or {}).get("mdl") or "none (transactions and the process list)",
            "notes": self.notes,
            "statements": self.records,
            "summary": {
                "statements": len(self.records),
                "lock_checks": checks,
                "lock_check_ms_per_statement": round(1000 * check_seconds / max(1, len(self.records)), 2),
                "waited_seconds": round(sum(r["waited_seconds"] for r in self.records), 2),
                "blockers_seen": sum(len(r["blockers"]) for r in self.records),
                "sessions_killed": sum(len(r["killed"]) for r in self.records),
                "watchdog_kills": sum(len(r["watchdog"]) for r in self.records),
                "retries": sum(len(r["retries"]) for r in self.records),
                "online": [r["statement"]["index"] for r in self.records if r["route"] != "direct"],
                "replica_lag_max_seconds": max((lag["lag_seconds"] for lag in lags), default=None),
            },
        }

    # -- progress and cancellation (run as a job) ----------------------------------------------------------------
    def _report(self, record, state, **extra):
        """Report the statement in progress: `state` is checking locks, waiting for locks, waiting for replica lag,
        running, online."""
        if self.progress_fn is None:
            return
        if self._current is None or self._current["record"] is not record:
            self._current = {"record": record, "started": self.clock()}
        snapshot = {"stage": "applying", "statement": record["statement"], "number": len(self.records),
                    "of": self.total, "tables": record["tables"], "route": record["route"],
                    "algorithm": record["algorithm_clause"], "state": state, "attempt": record["attempts"],
                    "elapsed_seconds": round(self.clock() - self._current["started"], 1)}
        snapshot.update(extra)
        try:
            self.progress_fn(snapshot)
        except OSError:  # the status file could not be written: the statement goes on
            pass

    def _stop_point(self, record, where):
        """Raise StatementFailed when the job was cancelled (or its lease expired)."""
        reason = self.should_stop()
        if reason:
            raise StatementFailed("%s %s; it did not take effect" % (reason, where))

    def _sleeper(self, record, state):
        """The sleep of the lock guard and the lag gate: reports the wait, and stops it when the job is cancelled."""

        def sleep(seconds):
            self._stop_point(record, "while %s" % state)
            self._report(record, state, waited_seconds=round(record["waited_seconds"], 1))
            self.sleep(seconds)
            self._stop_point(record, "while %s" % state)

        return sleep

    # -- one statement ------------------------------------------------------------------------------------------
    def _record(self, st):
        alter = self.alters.get((st["file"], st["index"]))
        return {"statement": ddl_lint.ref(st), "tables": touched_tables(st["sql"]),
                "route": (alter or {}).get("online") or "direct",
                "algorithm_clause": algorithm_clause(alter, st["sql"]).strip(", ") or None,
                "attempts": 0, "lock_checks": 0, "lock_check_seconds": 0.0, "waited_seconds": 0.0,
                "blockers": [], "killed": [], "watchdog": [], "retries": [], "replica_lag": None, "seconds": None}

    def _one(self, conn, guard, watchdog, replicas, own, db, st, record):
        import pymysql

        started = self.clock()
        deadline = started + self.opts["lock_budget_seconds"]
        alter = self.alters.get((st["file"], st["index"]))
        sql = st["sql"] + algorithm_clause(alter, st["sql"])
        attempt = 0
        # Without lock information: the transactions open when an attempt started that could not get its metadata
        # lock (still open, they are the likely holders; the guard waits for them before the next attempt).
        suspects, open_before = set(), set()
        while True:
            self._lag_gate(replicas, record)
            open_before = self._guard(guard, own, db, record, deadline, suspects)
            record["attempts"] += 1
            if record["route"] != "direct":
                self._online(guard, watchdog, replicas, db, st, record)
                record["seconds"] = round(self.clock() - started, 3)
                return
            self._report(record, "running")
            watchdog.start(ddl_id=conn.thread_id())
            t0 = self.clock()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    record["rows"] = cur.rowcount
                    while cur.nextset():
                        pass
            except pymysql.err.MySQLError as exc:
                event = watchdog.stop()
                code, text = server_error(exc)
                retryable = code == lock_guard.ER_LOCK_WAIT_TIMEOUT or (
                    code == lock_guard.ER_QUERY_INTERRUPTED and event is not None)
                if not retryable:
                    raise
                why = (lock_guard.kill_message(event, self.opts["watchdog_queue_seconds"]) if event else
                       "lock wait timeout after %.1f s (schema_lock_wait_timeout %d)" % (
                           self.clock() - t0, self.opts["lock_wait_timeout"]))
                if event:
                    record["watchdog"].append(event)
                retry = {"attempt": record["attempts"], "error": "(%s) %s" % (code, text), "why": why}
                record["retries"].append(retry)
                suspects = open_before
                pause = lock_guard.backoff(attempt, base=0.25, cap=4.0, rand=self.rand)
                if self.clock() + pause >= deadline:
                    raise StatementFailed(self._exhausted(guard, own, db, record, suspects)) from None
                retry["backoff_seconds"] = round(pause, 2)
                self._stop_point(record, "before retrying it")
                self.sleep(pause)
                attempt += 1
                continue
            watchdog.stop()
            record["seconds"] = round(self.clock() - started, 3)
            return

    def _guard(self, guard, own, db, record, deadline, suspects=()):
        """Wait for the blockers (lock_guard.wait_until_clear); returns the transactions open at the passing
        check."""
        self._report(record, "checking locks")
        sleep = self._sleeper(record, "waiting for locks")

        def on_wait(blockers):
            self._stop_point(record, "while waiting for locks")
            self._report(record, "waiting for locks", blockers=[b["description"] for b in blockers][:3],
                         blockers_count=len(blockers))

        try:
            seen = lock_guard.wait_until_clear(
                guard, self.caps, db, record["tables"], own, deadline,
                min_trx_seconds=self.opts["lock_wait_timeout"], refuse=self.opts["lock_blockers"] == "refuse",
                kill_accounts=self.opts["kill_idle_blockers"], suspects=suspects, clock=self.clock,
                sleep=lambda s: self.sleep(s) if self.progress_fn is None else sleep(s),
                on_wait=on_wait if self.progress_fn is not None else None)
        except lock_guard.Blocked as exc:
            record["lock_checks"] += exc.checks
            record["lock_check_seconds"] = round(record["lock_check_seconds"] + exc.check_seconds, 4)
            record["waited_seconds"] = round(record["waited_seconds"] + exc.waited, 3)
            record["killed"].extend(exc.killed)
            record["blockers"] = _merge(record["blockers"], exc.blockers)
            policy = ("schema_lock_blockers is refuse" if self.opts["lock_blockers"] == "refuse" else
                      "waited %.1f s, schema_lock_budget_seconds %d" % (record["waited_seconds"],
                                                                         self.opts["lock_budget_seconds"]))
            if record["attempts"]:
                policy += "; %s" % _attempts_text(record)
            raise StatementFailed(
                "%s (%s): %d session(s) hold or wait for locks it needs on %s: %s%s" % (
                    "stopped" if record["attempts"] else "refused before it ran",
                    policy, len(exc.blockers), ", ".join(record["tables"]) or "the server",
                    " | ".join(b["description"] for b in exc.blockers), self._kill_hint(exc.blockers)),
                blockers=exc.blockers) from None
        record["lock_checks"] += seen["checks"]
        record["lock_check_seconds"] = round(record["lock_check_seconds"] + seen["check_seconds"], 4)
        record["waited_seconds"] = round(record["waited_seconds"] + seen["waited"], 3)
        record["killed"].extend(seen["killed"])
        record["blockers"] = _merge(record["blockers"], seen["blockers_seen"])
        return seen.get("open_transactions") or set()

    def _kill_hint(self, blockers):
        idle = [b for b in blockers if b["kind"] == "transaction" and b["command"].lower() == "sleep"]
        if not idle:
            return ""
        return (". End those transactions (commit, or KILL the session), or name their accounts in "
                "schema_kill_idle_blockers (%s) to let the release kill them" % ", ".join(
                    sorted({b["user"] for b in idle})))

    def _exhausted(self, guard, own, db, record, suspects=()):
        """The message when the budget is spent on lock wait timeouts and watchdog kills."""
        state = lock_guard.read_state(guard, self.caps, db)
        blockers = lock_guard.find_blockers(state, db, record["tables"], own, self.opts["lock_wait_timeout"],
                                            suspects)
        named = " | ".join(lock_guard.describe(b) for b in blockers) or (
            "none visible to the lock checks now (%s)" % ((self.caps or {}).get("mdl") or
                                                          lock_guard.no_mdl_note(self.server["flavor"])))
        record["blockers"] = _merge(record["blockers"], [dict(b, description=lock_guard.describe(b))
                                                         for b in blockers])
        return ("could not get its metadata lock on %s within schema_lock_budget_seconds %d: %s. Sessions holding "
                "locks it needs: %s" % (", ".join(record["tables"]) or "its tables",
                                        self.opts["lock_budget_seconds"], _attempts_text(record), named))

    def _lag_gate(self, replicas, record):
        if not replicas:
            return
        deadline = self.clock() + self.opts["replica_lag_wait_seconds"]
        try:
            seen = replicas.wait(self.opts["replica_max_lag"], deadline, clock=self.clock,
                                 sleep=self.sleep if self.progress_fn is None else
                                 self._sleeper(record, "waiting for replica lag"))
        except topology.LagTooHigh as exc:
            record["replica_lag"] = exc.lags
            raise StatementFailed("refused before it ran: " + exc.message(), replica_lag=exc.lags) from None
        record["replica_lag"] = seen["worst"]
        record["replica_lag_waited_seconds"] = seen["waited"]

    def _online(self, guard, watchdog, replicas, db, st, record):
        parts = online_alter.alter_parts(st["sql"])
        tool = record["route"]
        opts = {"lock_wait_timeout": self.opts["lock_wait_timeout"],
                "lock_budget_seconds": self.opts["lock_budget_seconds"],
                "chunk_time": self.opts["online_chunk_time"], "max_load": self.opts["online_max_load"],
                "critical_load": self.opts["online_critical_load"],
                "progress_seconds": self.opts["online_progress_seconds"],
                "max_lag": self.opts["replica_max_lag"], "lag_wait_seconds": self.opts["replica_lag_wait_seconds"],
                "replicas": self.opts["replicas"]}
        binary = (self.which or online_alter.shutil.which)(tool)
        live = {}
        if self.progress_fn is not None:
            live = {"progress": lambda tool_state: self._report(record, "online", online=tool_state),
                    "should_stop": self.should_stop}
        try:
            if tool == online_alter.GH_OST:
                record["online"] = online_alter.run_gh_ost(self.params, guard, db, parts[0], parts[1], opts, binary,
                                                           replicas=replicas, watchdog=watchdog, clock=self.clock,
                                                           **live)
            else:
                record["online"] = online_alter.run_pt_osc(self.params, guard, db, parts[0], parts[1], opts, binary,
                                                           replicas=replicas, watchdog=watchdog, sql=st["sql"],
                                                           clock=self.clock, **live)
        except online_alter.OnlineFailure as exc:
            record["online"] = exc.report
            raise StatementFailed(exc.message) from None
        record["watchdog"].extend(record["online"].get("watchdog", []))
        if record["online"].get("lag_max") is not None:
            record["replica_lag_max_seconds"] = record["online"]["lag_max"]


def summary_line(execution) -> str:
    """`; applied with ...` for the operator's one line: what the guard, the watchdog and the lag gate did."""
    if not execution or not execution.get("statements"):
        return ""
    total = execution["summary"]
    parts = ["%d statement(s), lock information %s" % (total["statements"], execution["lock_information"])]
    if total["blockers_seen"]:
        parts.append("waited %.1f s for %d blocking session(s)" % (total["waited_seconds"], total["blockers_seen"]))
    if total["sessions_killed"]:
        parts.append("killed %d idle blocking session(s) (schema_kill_idle_blockers)" % total["sessions_killed"])
    if total["watchdog_kills"]:
        parts.append("the watchdog stopped a waiting statement %d time(s)" % total["watchdog_kills"])
    if total["retries"]:
        parts.append("%d retry(ies)" % total["retries"])
    if total["online"]:
        parts.append("online: statement(s) %s" % ", ".join("#%d" % i for i in total["online"]))
    if total["replica_lag_max_seconds"] is not None:
        parts.append("replica lag up to %s s" % total["replica_lag_max_seconds"])
    return "; DDL: " + ", ".join(parts)


def _attempts_text(record):
    kills = len(record["watchdog"])
    timeouts = len(record["retries"]) - kills
    return ("%d attempt(s): %d stopped by the lock wait timeout (schema_lock_wait_timeout), %d killed by the watchdog "
            "because sessions queued behind it (schema_watchdog_queue_seconds)" % (record["attempts"], timeouts, kills))


def _merge(known, new):
    by_id = {b["id"]: b for b in known}
    for b in new:
        by_id[b["id"]] = b
    return sorted(by_id.values(), key=lambda b: b["id"])


def progress_line(snapshot) -> str | None:
    """The controller's line for a progress snapshot of schema_apply's job (what Runner reports), e.g.
    `schema: statement 2/3 release.sql #2 (line 4) on entries, online via pt-online-schema-change: 45% copied,
    00:03 remain (12.0 s)`. None when there is nothing to say. The time in brackets is the statement's (or the
    tool's) elapsed time when reported, plus `age_seconds`, how long ago that was (a direct statement reports once,
    when it starts)."""
    if not snapshot:
        return None
    age = float(snapshot.get("age_seconds") or 0)
    stage = snapshot.get("stage")
    if stage in ("starting", "planning"):
        return "schema: planning on a temporary copy of the schema%s" % (
            " (%s s)" % _seconds(snapshot["elapsed_seconds"] + age) if snapshot.get("elapsed_seconds") is not None
            else "")
    if stage != "applying":
        return None
    ref = snapshot.get("statement") or {}
    number = "statement %s%s " % (snapshot.get("number") or "?", "/%s" % snapshot["of"] if snapshot.get("of") else "")
    where = "%s #%s (line %s)" % (ref.get("file"), ref.get("index"), ref.get("line"))
    tables = snapshot.get("tables") or []
    on = " on %s" % ", ".join(tables) if tables else ""
    route = snapshot.get("route") or "direct"
    how = ("online via %s" % route if route != "direct" else
           "direct %s" % snapshot["algorithm"] if snapshot.get("algorithm") else "direct, as written")
    state = snapshot.get("state")
    if state == "online":
        tool = snapshot.get("online") or {}
        parts = []
        if tool.get("percent") is not None:
            parts.append("%d%% copied, %s remain" % (tool["percent"], tool.get("remaining") or "?"))
        if tool.get("paused"):
            parts.append("paused: %s" % tool["paused"])
        if not parts:
            parts.append((tool.get("step") or "starting").rstrip("."))
        what = ", ".join(parts)
        elapsed = tool.get("elapsed_seconds")
    elif state == "waiting for locks":
        blockers = snapshot.get("blockers") or []
        what = "waiting for %d session(s) holding or waiting for locks it needs%s, %s s waited" % (
            snapshot.get("blockers_count") or len(blockers), (": " + " | ".join(blockers)) if blockers else "",
            _seconds(snapshot.get("waited_seconds") or 0))
        elapsed = snapshot.get("elapsed_seconds")
    else:
        what = state or "running"
        if state == "running" and (snapshot.get("attempt") or 0) > 1:
            what += " (attempt %d)" % snapshot["attempt"]
        elapsed = snapshot.get("elapsed_seconds")
    return "schema: %s%s%s, %s: %s%s" % (number, where, on, how, what,
                                          " (%s s)" % _seconds(elapsed + age) if elapsed is not None else "")


def _seconds(value) -> str:
    return "%.1f" % float(value)
