"""Metadata-lock guard: which sessions hold or wait for locks a DDL statement needs, waiting for them, and a
watchdog that kills the DDL when other sessions queue behind it. Stdlib plus PyMySQL only (runs on target hosts).

A DDL statement needs an exclusive metadata lock (MDL) on each table it changes. While it waits for that lock,
every later statement on the table queues behind it: one idle transaction that read the table turns an instant
ALTER into an outage. The guard looks before each statement and the watchdog looks while it runs.

Where the lock information comes from, best first (`capabilities()` picks per server):

- `performance_schema.metadata_locks` (MySQL 5.7+ with the MDL instrument, on by default in 8.0; MariaDB 10.5+
  with `performance_schema=ON` and the `wait/lock/metadata/sql/mdl` instrument): granted and pending locks of
  every session, joined to `performance_schema.threads` for the process list id;
- `information_schema.METADATA_LOCK_INFO` (MariaDB's `metadata_lock_info` plugin): granted locks;
- neither: a transaction open longer than the DDL's lock wait timeout (`information_schema.INNODB_TRX`) in a
  session using the database (or none) counts as a blocker whose tables are unknown, and so do statements
  running on the table and DDL waiting for it (the process list); the report says that the tables they hold are
  unknown and how to get the lock information. What this misses, the lock wait timeout and the watchdog catch;
  once they have, the transactions that were open when the statement started waiting and are still open
  (`suspects`, the same transaction: session, trx_id and start) count as blockers too, whatever their age.

The process list is `performance_schema.processlist` on MySQL >= 8.0.22 (where `information_schema.PROCESSLIST`
is deprecated) and `information_schema.PROCESSLIST` elsewhere (MariaDB adds TIME_MS, in milliseconds). A running
dump (`mysqldump`/`mariadb-dump` queries carry `/*!40001 SQL_NO_CACHE */`) of the database always counts: DDL
during a consistent-snapshot dump breaks the dump of the tables it has not reached yet. So do global read locks
(FLUSH TABLES WITH READ LOCK) and backup locks (MariaDB BACKUP STAGE, MySQL LOCK INSTANCE FOR BACKUP).

Statements of other sessions are shown with their literals replaced by `?`: they can hold customer data.
"""

from __future__ import annotations

import random
import re
import threading
import time

# ---------------------------------------------------------------------------------------------------------------
# Server capabilities and the queries per source
# ---------------------------------------------------------------------------------------------------------------

MDL_PERFORMANCE_SCHEMA = "performance_schema.metadata_locks"
MDL_PLUGIN = "information_schema.METADATA_LOCK_INFO"

PROCESSLIST_SQL = {
    "information_schema": "SELECT ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO FROM information_schema.PROCESSLIST",
    # MariaDB: TIME_MS has the milliseconds.
    "information_schema_ms": ("SELECT ID, USER, HOST, DB, COMMAND, TIME_MS / 1000, STATE, INFO "
                              "FROM information_schema.PROCESSLIST"),
    "performance_schema": "SELECT ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO FROM performance_schema.processlist",
}

TRX_SQL = ("SELECT trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, trx_started, NOW()), trx_state, trx_query, trx_id, "
           "trx_started FROM information_schema.INNODB_TRX")

MDL_SQL = {
    MDL_PERFORMANCE_SCHEMA: (
        "SELECT t.PROCESSLIST_ID, m.OBJECT_TYPE, m.OBJECT_SCHEMA, m.OBJECT_NAME, m.LOCK_TYPE, m.LOCK_DURATION, "
        "m.LOCK_STATUS FROM performance_schema.metadata_locks m "
        "JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID "
        "WHERE t.PROCESSLIST_ID IS NOT NULL AND ((m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = %s) "
        "OR m.OBJECT_TYPE IN ('GLOBAL', 'COMMIT', 'BACKUP', 'BACKUP LOCK'))"),
    MDL_PLUGIN: (
        "SELECT THREAD_ID, LOCK_TYPE, TABLE_SCHEMA, TABLE_NAME, LOCK_MODE, LOCK_DURATION, 'GRANTED' "
        "FROM information_schema.METADATA_LOCK_INFO "
        "WHERE (TABLE_SCHEMA = %s AND TABLE_NAME <> '') OR LOCK_TYPE IN ('Backup lock', 'Global read lock', "
        "'Commit lock')"),
}

# The last statement of idle sessions (MySQL 8 enables this consumer by default; MariaDB does not).
LAST_STATEMENT_SQL = ("SELECT t.PROCESSLIST_ID, s.SQL_TEXT FROM performance_schema.events_statements_current s "
                      "JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID "
                      "WHERE t.PROCESSLIST_ID IS NOT NULL AND s.SQL_TEXT IS NOT NULL")

# METADATA_LOCK_INFO's LOCK_TYPE -> performance_schema's OBJECT_TYPE.
_PLUGIN_TYPES = {"Table metadata lock": "TABLE", "Backup lock": "BACKUP", "Global read lock": "GLOBAL",
                 "Commit lock": "COMMIT", "Schema metadata lock": "SCHEMA"}

# Sessions that never hold table locks of the application: replication, the event scheduler, daemons.
_SYSTEM_COMMANDS = {"binlog dump", "binlog dump gtid", "daemon", "connect", "register slave", "slave_io",
                    "slave_sql", "slave_worker"}
_SYSTEM_USERS = {"system user", "event_scheduler"}

ER_LOCK_WAIT_TIMEOUT = 1205
ER_QUERY_INTERRUPTED = 1317


def _scalar(cur, sql, args=()):
    import pymysql

    try:
        cur.execute(sql, args)
        row = cur.fetchone()
    except pymysql.err.MySQLError:
        return None
    return row[0] if row else None


def capabilities(conn, flavor: str, version) -> dict:
    """Which lock information this server and account offer: `{"mdl", "processlist", "last_statement",
    "process_privilege", "notes"}`. `mdl` is None when neither source is usable (the guard then works from
    transactions and the process list, and says so)."""
    with conn.cursor() as cur:
        probes = {"performance_schema": _scalar(cur, "SELECT @@performance_schema")}
        if str(probes["performance_schema"] or "0") in ("1", "ON"):
            probes["mdl_instrument"] = _scalar(cur, "SELECT ENABLED FROM performance_schema.setup_instruments "
                                                    "WHERE NAME = 'wait/lock/metadata/sql/mdl'")
            probes["global_instrumentation"] = _scalar(cur, "SELECT ENABLED FROM performance_schema.setup_consumers "
                                                            "WHERE NAME = 'global_instrumentation'")
            probes["statements_current"] = _scalar(cur, "SELECT ENABLED FROM performance_schema.setup_consumers "
                                                        "WHERE NAME = 'events_statements_current'")
        if flavor == "mariadb":
            probes["metadata_lock_info"] = _scalar(cur, "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                                                        "WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'")
        probes["process_privilege"] = _has_process_privilege(cur)
    return choose_sources(flavor, version, probes)


def choose_sources(flavor, version, probes) -> dict:
    """The sources to read for a server, from what `capabilities()` probed (pure, so each flavor and version is
    unit-tested): `probes` has `performance_schema` (@@performance_schema), `mdl_instrument`,
    `global_instrumentation`, `statements_current` (ENABLED of those instruments/consumers),
    `metadata_lock_info` (the plugin's status) and `process_privilege`."""
    version = tuple(version or (0, 0, 0))
    p_s = str(probes.get("performance_schema") or "0") in ("1", "ON")
    caps = {"flavor": flavor, "version": list(version), "mdl": None, "last_statement": False, "notes": [],
            "process_privilege": bool(probes.get("process_privilege"))}
    if p_s and probes.get("mdl_instrument") == "YES" and probes.get("global_instrumentation") == "YES":
        caps["mdl"] = MDL_PERFORMANCE_SCHEMA
    elif flavor == "mariadb" and probes.get("metadata_lock_info") == "ACTIVE":
        caps["mdl"] = MDL_PLUGIN
    caps["last_statement"] = p_s and probes.get("statements_current") == "YES"
    if flavor == "mysql" and version >= (8, 0, 22) and p_s:
        caps["processlist"] = "performance_schema"
    elif flavor == "mariadb":
        caps["processlist"] = "information_schema_ms"
    else:
        caps["processlist"] = "information_schema"
    if caps["mdl"] is None:
        caps["notes"].append(no_mdl_note(flavor))
    if not caps["process_privilege"]:
        caps["notes"].append("the account lacks the PROCESS privilege, so the sessions of other accounts are "
                             "invisible to the lock checks: grant PROCESS to the release account")
    return caps


def no_mdl_note(flavor: str) -> str:
    how = ("INSTALL SONAME 'metadata_lock_info' or performance_schema=ON with performance-schema-instrument="
           "'wait/lock/metadata/sql/mdl=ON'" if flavor == "mariadb" else
           "enable the performance_schema instrument wait/lock/metadata/sql/mdl")
    return ("no metadata lock information on this server, so a blocker's tables are unknown: transactions open "
            "longer than the lock wait timeout count as blockers (%s for exact answers)" % how)


def _has_process_privilege(cur) -> bool:
    import pymysql

    try:
        cur.execute("SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN "
                    "('PROCESS', 'SUPER') AND GRANTEE = CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "
                    "\"'@'\", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")")
        return bool(cur.fetchone()[0])
    except pymysql.err.MySQLError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# Reading the server's state, and the pure functions over it
# ---------------------------------------------------------------------------------------------------------------

def read_state(conn, caps, db):
    """The raw rows the guard judges, as `state_from_rows` wants them (one query per source)."""
    import pymysql

    with conn.cursor() as cur:
        cur.execute(PROCESSLIST_SQL[caps["processlist"]])
        processlist = cur.fetchall()
        try:
            cur.execute(TRX_SQL)
            trx = cur.fetchall()
        except pymysql.err.MySQLError:
            trx = ()
        mdl = ()
        if caps.get("mdl"):
            cur.execute(MDL_SQL[caps["mdl"]], (db,))
            mdl = cur.fetchall()
        last = ()
        if caps.get("last_statement"):
            try:
                cur.execute(LAST_STATEMENT_SQL)
                last = cur.fetchall()
            except pymysql.err.MySQLError:
                last = ()
    return state_from_rows(caps, processlist, trx, mdl, last)


def state_from_rows(caps, processlist_rows, trx_rows, mdl_rows, last_rows=()):
    """Normalise the rows of PROCESSLIST_SQL, TRX_SQL, MDL_SQL and LAST_STATEMENT_SQL (any source) into
    `{"sessions": {id: {...}}, "locks": [...], "source": ...}`."""
    sessions = {}
    for pid, user, host, sdb, command, seconds, state, info in processlist_rows:
        sessions[int(pid)] = {"id": int(pid), "user": user or "", "host": host or "", "db": sdb,
                              "command": command or "", "seconds": float(seconds or 0), "state": state or "",
                              "info": info, "trx_seconds": None, "trx_query": None, "last_statement": None,
                              "trx_key": None}
    for pid, age, trx_state, query, *identity in trx_rows:
        if pid is None or int(pid) not in sessions:
            continue
        sessions[int(pid)].update(trx_seconds=int(age or 0), trx_state=trx_state, trx_query=query,
                                  trx_key=(int(pid),) + tuple(str(v) for v in identity))
    for pid, text in last_rows:
        if pid is not None and int(pid) in sessions:
            sessions[int(pid)]["last_statement"] = text
    locks = []
    source = caps.get("mdl")
    for pid, otype, schema, name, mode, duration, status in mdl_rows:
        if pid is None:
            continue
        if source == MDL_PLUGIN:
            otype = _PLUGIN_TYPES.get(otype, otype)
            mode = (mode or "").replace("MDL_", "", 1)
            duration = (duration or "").replace("MDL_", "", 1) or None
        locks.append({"id": int(pid), "type": (otype or "").upper(), "schema": schema, "name": name,
                      "mode": (mode or "").upper(), "duration": duration, "status": (status or "GRANTED").upper()})
    return {"sessions": sessions, "locks": locks, "source": source}


_DUMP_RE = re.compile(r"/\*!40001 SQL_NO_CACHE \*/|\bWITH CONSISTENT SNAPSHOT\b", re.IGNORECASE)
_DDL_RE = re.compile(r"^\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE|OPTIMIZE|REPAIR|LOCK\s+TABLES?)\b", re.IGNORECASE)
_IDENT_RE = re.compile(r"`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)")
# Modes of global and backup locks that stop DDL: a global read lock, MySQL's backup lock, and MariaDB's
# BACKUP STAGE / FTWRL stages.
_BLOCKING_GLOBAL = {("GLOBAL", "SHARED"), ("COMMIT", "SHARED"), ("BACKUP LOCK", "SHARED"),
                    ("BACKUP", "BACKUP_FTWRL1"), ("BACKUP", "BACKUP_FTWRL2"), ("BACKUP", "BACKUP_BLOCK_DDL"),
                    ("BACKUP", "BACKUP_WAIT_DDL")}
# Pending table locks that are another DDL queued for the table (not a query waiting behind someone).
_DDL_MODES = {"EXCLUSIVE", "SHARED_UPGRADABLE", "SHARED_NO_WRITE", "SHARED_NO_READ_WRITE"}


def names_in(sql) -> set:
    """Identifier-like tokens of a statement (quoted or bare, qualifiers split off)."""
    found = set()
    for quoted, bare in _IDENT_RE.findall(sql or ""):
        found.add(quoted.replace("``", "`") if quoted else bare)
    return found


def _mentions(sql, tables) -> bool:
    return bool(tables) and bool(names_in(sql) & set(tables))


def _is_system(session) -> bool:
    return session["command"].lower() in _SYSTEM_COMMANDS or session["user"].lower() in _SYSTEM_USERS


def _near(session, db):
    return session["db"] in (db, None) or db in names_in((session["info"] or "") + " " +
                                                        (session["trx_query"] or ""))


def open_transactions(state, db) -> set:
    """The transactions open now in sessions using `db` (or none, or naming it): their `trx_key`s."""
    return {s["trx_key"] for s in state["sessions"].values()
            if s["trx_seconds"] is not None and s["trx_key"] is not None and _near(s, db)}


def find_blockers(state, db, tables, own_ids=(), min_trx_seconds=0, suspects=()):
    """Sessions that would make a DDL on `tables` of `db` wait, each a dict with `id`, `user`, `host`, `db`,
    `command`, `kind` (transaction, statement, ddl, backup, global lock), `locks`, `trx_seconds`,
    `idle_seconds`, `running_seconds`, `statement` (literals replaced) and `tables_known`.

    With lock information (`state["source"]`), a session blocks when it holds a lock on one of the tables, waits
    for a DDL-type lock on one, or holds a global or backup lock that stops DDL. Without it: transactions older
    than `min_trx_seconds` of sessions using `db` (or no database, or naming it), and those among `suspects`
    (open_transactions() when the statement started an attempt that could not get its metadata lock) still open,
    statements running on the tables, and DDL waiting for them. A running dump of `db` always blocks.
    """
    own = {int(i) for i in own_ids if i is not None}
    tables = set(tables or ())
    found = {}

    def add(pid, kind, lock=None, tables_known=True):
        session = state["sessions"].get(pid)
        if session is None or pid in own or _is_system(session):
            return
        entry = found.get(pid)
        if entry is None:
            entry = found[pid] = _blocker(session, kind, tables_known)
        elif _KIND_RANK[kind] < _KIND_RANK[entry["kind"]]:
            entry["kind"] = kind
        if lock and lock not in entry["locks"]:
            entry["locks"].append(lock)

    if state["source"]:
        for lock in state["locks"]:
            pid = lock["id"]
            if lock["type"] == "TABLE" and lock["schema"] == db and lock["name"] in tables:
                if lock["status"] == "GRANTED":
                    add(pid, _holder_kind(state["sessions"].get(pid)), "holds %s on %s" % (lock["mode"], lock["name"]))
                elif lock["mode"] in _DDL_MODES:
                    add(pid, "ddl", "waits for %s on %s" % (lock["mode"], lock["name"]))
            elif (lock["type"], lock["mode"]) in _BLOCKING_GLOBAL and lock["status"] == "GRANTED":
                add(pid, "global lock", "holds %s %s lock" % (lock["mode"], lock["type"].lower()))
    else:
        for pid, session in state["sessions"].items():
            info = session["info"] or ""
            if _DDL_RE.match(info) and "metadata lock" in session["state"].lower() and _mentions(info, tables):
                add(pid, "ddl", "waits for a metadata lock", tables_known=False)
            elif session["command"].lower() in ("query", "execute") and info and _mentions(info, tables) and \
                    "metadata lock" not in session["state"].lower():  # a query queued for the lock holds none
                add(pid, "statement", "runs a statement on %s" % ", ".join(sorted(names_in(info) & tables)),
                    tables_known=False)
            if session["trx_seconds"] is None or not _near(session, db):
                continue
            if session["trx_key"] is not None and session["trx_key"] in suspects:
                add(pid, _holder_kind(session), "its transaction was open all the time the statement waited for "
                                                "its metadata lock", tables_known=False)
            elif session["trx_seconds"] >= min_trx_seconds:
                add(pid, _holder_kind(session), None, tables_known=False)
    for pid, session in state["sessions"].items():
        text = (session["info"] or "") + " " + (session["trx_query"] or "")
        if _DUMP_RE.search(text) and (session["db"] == db or db in names_in(text)):
            add(pid, "backup", "a running dump of %s (consistent-snapshot transaction)" % db)
    return sorted(found.values(), key=lambda b: b["id"])


_KIND_RANK = {"backup": 0, "global lock": 1, "ddl": 2, "statement": 3, "transaction": 4}


def _holder_kind(session):
    if session and session["command"].lower() in ("query", "execute") and session["info"]:
        return "statement"
    return "transaction"


def _blocker(session, kind, tables_known):
    idle = session["command"].lower() == "sleep"
    statement = session["info"] or session["trx_query"]
    last = None if statement else session.get("last_statement")
    return {"id": session["id"], "user": session["user"], "host": session["host"], "db": session["db"],
            "command": session["command"], "state": session["state"], "kind": kind, "locks": [],
            "trx_seconds": session["trx_seconds"], "idle_seconds": round(session["seconds"], 1) if idle else None,
            "running_seconds": None if idle else round(session["seconds"], 1),
            "statement": redact(statement) if statement else None,
            "last_statement": redact(last) if last else None, "tables_known": tables_known}


_LITERAL_RE = re.compile(r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`]|``)*`|\b0x[0-9a-fA-F]+\b|"""
                         r"""(?<![\w$.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w$])""")


def redact(sql, width=160) -> str:
    """A statement with its string and number literals replaced by `?`, on one line, at most `width` chars."""

    def repl(match):
        text = match.group(0)
        return text if text.startswith("`") else "?"

    text = " ".join(_LITERAL_RE.sub(repl, sql or "").split())
    return text if len(text) <= width else text[:width - 3] + "..."


def describe(blocker) -> str:
    """One line naming a blocker: id, account, host, age, what it holds, its current statement."""
    parts = ["session %d %s@%s" % (blocker["id"], blocker["user"], blocker["host"])]
    if blocker.get("db"):
        parts[0] += " (db %s)" % blocker["db"]
    kind = blocker["kind"]
    if kind == "backup":
        parts.append("a running backup")
    if blocker["trx_seconds"] is not None:
        parts.append("in a transaction for %d s" % blocker["trx_seconds"])
    if blocker["idle_seconds"] is not None:
        parts.append("idle for %.0f s" % blocker["idle_seconds"])
    elif blocker["running_seconds"] is not None:
        parts.append("running for %.0f s" % blocker["running_seconds"])
    if blocker["locks"]:
        parts.append("; ".join(blocker["locks"]))
    if not blocker["tables_known"]:
        parts.append("tables it holds unknown")
    if blocker["statement"]:
        parts.append("current statement: %s" % blocker["statement"])
    elif blocker.get("last_statement"):
        parts.append("idle; last statement: %s" % blocker["last_statement"])
    else:
        parts.append("current statement: none (idle)")
    return ", ".join(parts)


def matches_account(blocker, accounts) -> bool:
    """True when the blocker's account is named in `accounts` (`user` or `user@host`, host without port)."""
    host = (blocker["host"] or "").rsplit(":", 1)[0] if ":" in (blocker["host"] or "") else blocker["host"] or ""
    for name in accounts or ():
        name = str(name)
        if "@" in name:
            user, _, want_host = name.partition("@")
            if user == blocker["user"] and want_host in (host, "%"):
                return True
        elif name == blocker["user"]:
            return True
    return False


def killable(blocker, accounts) -> bool:
    """Only idle sessions of the named accounts: never one running a statement, a backup or a DDL."""
    return (blocker["kind"] == "transaction" and blocker["command"].lower() == "sleep" and
            matches_account(blocker, accounts))


# ---------------------------------------------------------------------------------------------------------------
# Waiting for the blockers to go
# ---------------------------------------------------------------------------------------------------------------

class Blocked(Exception):
    """The blockers did not go within the budget (or the policy is to refuse at once)."""

    def __init__(self, blockers, waited, killed=(), checks=0, check_seconds=0.0):
        super().__init__("blocked")
        self.blockers = blockers
        self.waited = waited
        self.killed = list(killed)
        self.checks = checks
        self.check_seconds = check_seconds


def backoff(attempt, base=0.1, cap=2.0, rand=random.random):
    """Exponential back-off with jitter: between half and all of min(cap, base * 2**attempt) seconds."""
    delay = min(cap, base * (2 ** attempt))
    return delay * (0.5 + 0.5 * rand())


def wait_until_clear(conn, caps, db, tables, own_ids, deadline, *, min_trx_seconds=0, refuse=False,
                     kill_accounts=(), suspects=(), clock=time.monotonic, sleep=time.sleep, on_wait=None):
    """Wait, with back-off, until no session blocks a DDL on `tables`; returns what was seen
    (`{"waited", "checks", "blockers_seen", "killed", "check_seconds", "open_transactions"}`, the last being
    open_transactions() of the passing check) or raises Blocked at `deadline`.

    Idle sessions of the accounts in `kill_accounts` that hold a lock the DDL needs are killed (KILL CONNECTION:
    their open transaction rolls back); nothing else ever is. `on_wait(blockers)` (described) is called before each
    back-off.
    """
    started = clock()
    seen, killed = {}, []
    checks, attempt, check_seconds = 0, 0, 0.0
    while True:
        t0 = clock()
        state = read_state(conn, caps, db)
        blockers = find_blockers(state, db, tables, own_ids, min_trx_seconds, suspects)
        check_seconds += clock() - t0
        checks += 1
        victims = [b for b in blockers if killable(b, kill_accounts)]
        for victim in victims:
            _kill(conn, "CONNECTION", victim["id"])
            killed.append(dict(victim, description=describe(victim)))
        if victims:
            continue
        for b in blockers:
            seen[b["id"]] = dict(b, description=describe(b))
        if not blockers:
            return {"waited": round(clock() - started, 3), "checks": checks, "check_seconds": round(check_seconds, 4),
                    "blockers_seen": list(seen.values()), "killed": killed,
                    "open_transactions": open_transactions(state, db)}
        remaining = deadline - clock()
        if refuse or remaining <= 0:
            raise Blocked([dict(b, description=describe(b)) for b in blockers], round(clock() - started, 3), killed,
                          checks, round(check_seconds, 4))
        if on_wait is not None:
            on_wait([dict(b, description=describe(b)) for b in blockers])
        sleep(min(remaining, backoff(attempt)))
        attempt += 1


def _kill(conn, what, pid):
    import pymysql

    with conn.cursor() as cur:
        try:
            cur.execute("KILL %s %d" % (what, int(pid)))
        except pymysql.err.MySQLError as exc:
            if not exc.args or exc.args[0] != 1094:  # 1094: unknown thread id, it has gone already
                raise


# ---------------------------------------------------------------------------------------------------------------
# The watchdog
# ---------------------------------------------------------------------------------------------------------------

WAITING_SQL = {
    "information_schema": ("SELECT ID, TIME, STATE, INFO FROM information_schema.PROCESSLIST "
                           "WHERE STATE LIKE 'Waiting for%metadata lock'"),
    "information_schema_ms": ("SELECT ID, TIME_MS / 1000, STATE, INFO FROM information_schema.PROCESSLIST "
                              "WHERE STATE LIKE 'Waiting for%metadata lock'"),
    "performance_schema": ("SELECT ID, TIME, STATE, INFO FROM performance_schema.processlist "
                           "WHERE STATE LIKE 'Waiting for%metadata lock'"),
}


def queued_behind(rows, ddl_id, own_ids, first_seen, now, match=None):
    """From WAITING_SQL rows: ([ids of the watched DDL sessions waiting for a metadata lock], [(id, seconds waited,
    statement)] of the other sessions waiting for one meanwhile). The watched DDL is the session `ddl_id`, or the
    sessions whose statement `match` accepts (an online tool's own DDL). `first_seen` remembers when each waiter
    was first seen, for servers whose process list counts whole seconds."""
    own = {int(i) for i in own_ids if i is not None}
    ddl_waiting = []
    queued = []
    for pid, seconds, _state, info in rows:
        pid = int(pid)
        if pid == ddl_id or (match is not None and match(info)):
            ddl_waiting.append(pid)
            continue
        if pid in own:
            continue
        first = first_seen.setdefault(pid, now)
        queued.append((pid, max(float(seconds or 0), now - first), redact(info) if info else None))
    return ddl_waiting, queued


class Watchdog:
    """Watches one running DDL from its own connection: when the DDL waits for a metadata lock while other
    sessions wait for one behind it for `threshold` seconds or more, it kills the DDL's statement (KILL QUERY;
    the statement rolls back) and records why. It never kills another session."""

    def __init__(self, connect, caps, own_ids=(), threshold=1.0, poll=None):
        self.connect = connect
        self.caps = caps
        self.own_ids = set(own_ids)
        self.threshold = float(threshold)
        self.poll = poll if poll is not None else max(0.05, min(0.2, self.threshold / 4))
        self.event = None
        self.error = None
        self._stop = threading.Event()
        self._thread = None
        self._conn = None

    def __enter__(self):
        self._conn = self.connect()
        self.own_ids.add(self._conn.thread_id())
        return self

    def __exit__(self, *exc):
        self.stop()
        try:
            self._conn.close()
        except Exception:  # a connection that went away with the server: nothing to close
            pass
        return False

    def start(self, ddl_id=None, match=None):
        """Watch the session `ddl_id`, or the sessions whose statement `match(info)` accepts."""
        self.stop()
        self.event = None
        self.error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(ddl_id, match), daemon=True)
        self._thread.start()

    def stop(self):
        """Stop watching; returns the kill event of this statement (or None)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        return self.event

    def _run(self, ddl_id, match):
        import pymysql

        first_seen = {}
        started = time.monotonic()
        try:
            with self._conn.cursor() as cur:
                while not self._stop.is_set():
                    cur.execute(WAITING_SQL[self.caps["processlist"]])
                    now = time.monotonic()
                    ddl_waiting, queued = queued_behind(cur.fetchall(), ddl_id, self.own_ids, first_seen, now,
                                                        match)
                    if ddl_waiting and queued:
                        longest = max(q[1] for q in queued)
                        if longest >= self.threshold:
                            for pid in ddl_waiting:
                                _kill(self._conn, "QUERY", pid)
                            self.event = {"killed": ddl_waiting, "after_seconds": round(now - started, 2),
                                          "queued": [{"id": q[0], "waited_seconds": round(q[1], 2),
                                                      "statement": q[2]} for q in queued],
                                          "longest_wait_seconds": round(longest, 2)}
                            return
                    elif not queued:
                        first_seen.clear()
                    self._stop.wait(self.poll)
        except pymysql.err.MySQLError as exc:
            self.error = str(exc)


def kill_message(event, threshold) -> str:
    return ("the watchdog killed it after %.1f s: it waited for a metadata lock while %d session(s) queued behind "
            "it (the longest for %.1f s, over schema_watchdog_queue_seconds %.1f)" % (
                event["after_seconds"], len(event["queued"]), event["longest_wait_seconds"], threshold))

