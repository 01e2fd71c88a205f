"""ALTERs of big tables through an online schema change tool. Stdlib plus PyMySQL only (runs on target hosts).

An ALTER that the server can only do by copying the table (ALGORITHM=COPY) blocks writes for the whole copy. Above
a size, such an ALTER runs through:

- pt-online-schema-change (Percona Toolkit): a new table with the change, triggers on the original that mirror
  every write into it, the rows copied in chunks of about `chunk_time` seconds, then an atomic RENAME. It connects
  with `F=<option file>` in its DSN: the project's 0600 client option file, so the password is on no command line;
- gh-ost, where it is installed and the server is MySQL writing row-based binary logs (it reads the binary log
  instead of using triggers; it gets the password from a 0600 `--conf` file). gh-ost is not available on the
  machines this project is tested on: its command line is unit-tested, its runs are not.

Both run with the release's lock wait timeout for their own short metadata locks, pause while a replica named in
the inventory lags (this module checks every second; it stops pt-osc's copy with SIGSTOP and lets it go on with
SIGCONT, and creates and removes gh-ost's `--throttle-flag-file`) or the server is loaded (`max_load`), stop at
`critical_load`, and print their progress every `progress_seconds`.
An abort leaves the original table as it was: the tool drops its triggers and its new table, and when it was
interrupted (it then keeps them), this module drops what it left, then checks the original's definition.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time

from ansible.module_utils.dbrelease import ddl_lint
from ansible.module_utils.dbrelease.db import client_option_file, quote_ident
from ansible.module_utils.dbrelease.topology import lag_ok, lag_text

PT_OSC = "pt-online-schema-change"
GH_OST = "gh-ost"
TOOLS = (PT_OSC, GH_OST)

_NAME = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"
_ALTER_RE = re.compile(r"^\s*ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+((?:%s\s*\.\s*)?%s)\s+(.+)$" % (_NAME, _NAME),
                       re.IGNORECASE | re.DOTALL)
_PROGRESS_RE = re.compile(r"^Copying .*?:\s+(\d+)% (\S+) remain")
_NEW_TABLE_RE = re.compile(r"Created new table (\S+?)\.(\S+) OK")


def choose_tool(preference, flavor, binlog, tcp=True, which=shutil.which):
    """(tool, path, reason): the tool to use for `preference` (auto, pt-online-schema-change, gh-ost, none) on this
    server, or (None, None, why not). gh-ost needs MySQL writing row-based binary logs, reached over TCP."""
    binlog = binlog or {}
    row_binlog = (flavor == "mysql" and binlog.get("enabled") and str(binlog.get("format", "")).upper() == "ROW"
                  and tcp)
    gh_ost, pt_osc = which(GH_OST), which(PT_OSC)
    if preference == "none":
        return None, None, "schema_online_tool is none"
    if preference in ("auto", GH_OST) and gh_ost and row_binlog:
        return GH_OST, gh_ost, ""
    if preference == GH_OST:
        return None, None, ("gh-ost is not installed" if not gh_ost else
                            "gh-ost needs MySQL with row-based binary logs, over TCP (this is %s, binlog %s%s)" % (
                                flavor, binlog.get("format") if binlog.get("enabled") else "off",
                                "" if tcp else ", reached by socket"))
    if pt_osc:
        return PT_OSC, pt_osc, ""
    return None, None, "pt-online-schema-change is not installed (percona-toolkit)"


def alter_parts(sql):
    """(table, clauses) of an `ALTER TABLE name clauses` statement, or None. The table loses its qualifier."""
    match = _ALTER_RE.match(sql or "")
    if not match:
        return None
    return ddl_lint.statement_target(sql)["table"], match.group(2).strip()


def ineligible(sql) -> str:
    """Why an ALTER cannot go through an online tool ('' when it can)."""
    parts = alter_parts(sql)
    if parts is None:
        return "not an ALTER TABLE statement"
    info = ddl_lint.statement_target(sql)
    for clause in info["clauses"]:
        kind = ddl_lint.clause_kind(clause)
        words = [t[1].upper() for t in clause if t[0] == "word"]
        if kind == "rename_table":
            return "it renames the table"
        if kind == "algorithm_option":
            return "the statement names its own ALGORITHM/LOCK"
        if "PARTITION" in words or "PARTITIONING" in words:
            return "it changes partitions"
    return ""


def adds_unique_key(sql) -> bool:
    info = ddl_lint.statement_target(sql)
    for clause in info["clauses"]:
        words = [t[1].upper() for t in clause if t[0] == "word"]
        if words[:1] == ["ADD"] and ("UNIQUE" in words or "PRIMARY" in words):
            return True
    return False


def trigger_prefix(db, table) -> str:
    """The prefix of pt-online-schema-change's trigger names (its own rule: non-word characters to `_`, 60 chars)."""
    return re.sub(r"\W", "_", "pt_osc_%s_%s" % (db, table))[:60]


def pt_osc_command(binary, option_file, db, table, clauses, opts, preserve_triggers=False, child_tables=False,
                   adds_unique=False):
    """pt-online-schema-change's argv. The DSN's F= names the 0600 option file: no password on the command line."""
    wait = 1
    tries = max(3, min(100, int(opts["lock_budget_seconds"] // (opts["lock_wait_timeout"] + wait))))
    argv = [binary, "--noversion-check", "--execute",
            "--alter", clauses,
            "--set-vars", "lock_wait_timeout=%d,innodb_lock_wait_timeout=1,wait_timeout=10000" % (
                opts["lock_wait_timeout"]),
            "--tries", ",".join("%s:%d:%d" % (op, tries, wait) for op in (
                "create_triggers", "drop_triggers", "swap_tables", "update_foreign_keys", "analyze_table")) +
            ",copy_rows:10:0.25",
            "--chunk-time", "%g" % opts["chunk_time"],
            "--max-load", max_load_with_critical(opts["max_load"], opts["critical_load"]),
            "--critical-load", opts["critical_load"],
            "--progress", "time,%d" % opts["progress_seconds"],
            # Replicas are watched by this module (inventory replicas, any number, each with its own
            # connection), not discovered by the tool.
            "--recursion-method", "none"]
    if preserve_triggers:
        argv.append("--preserve-triggers")
    if child_tables:
        argv += ["--alter-foreign-keys-method", "auto"]
    if adds_unique:
        # The duplicate-under-UNIQUE lint ran first and found none; without this pt-osc refuses any new unique key.
        argv.append("--nocheck-unique-key-change")
    argv.append("F=%s,D=%s,t=%s" % (option_file, db, table))
    return argv


def max_load_with_critical(max_load, critical_load) -> str:
    """pt-osc (3.2) checks --critical-load only for the variables it watches for --max-load: a critical variable
    missing there is added, with the critical value as its pause threshold, so the abort still happens."""
    watched = [part for part in (max_load or "").split(",") if part.strip()]
    names = {part.split("=")[0].strip().lower() for part in watched}
    for part in (critical_load or "").split(","):
        if part.strip() and part.split("=")[0].strip().lower() not in names:
            watched.append(part.strip())
    return ",".join(watched)


def gh_ost_command(binary, conf_file, host, port, db, table, clauses, opts, throttle_file, panic_file, replicas=()):
    """gh-ost's argv; the account comes from `conf_file` ([client] user/password, 0600)."""
    tries = max(3, min(100, int(opts["lock_budget_seconds"] // (opts["lock_wait_timeout"] + 1))))
    argv = [binary, "--conf=%s" % conf_file, "--host=%s" % host, "--port=%d" % int(port),
            "--database=%s" % db, "--table=%s" % table, "--alter=%s" % clauses,
            "--allow-on-master", "--execute", "--verbose",
            "--cut-over-lock-timeout-seconds=%d" % opts["lock_wait_timeout"],
            "--default-retries=%d" % tries,
            "--max-load=%s" % opts["max_load"], "--critical-load=%s" % opts["critical_load"],
            "--throttle-flag-file=%s" % throttle_file, "--panic-flag-file=%s" % panic_file,
            "--initially-drop-ghost-table", "--ok-to-drop-table"]
    if opts.get("max_lag") is not None:
        argv.append("--max-lag-millis=%d" % int(opts["max_lag"] * 1000))
    if replicas:
        argv.append("--throttle-control-replicas=%s" % ",".join("%s:%d" % (h, int(p)) for h, p in replicas))
    return argv


def gh_ost_conf_text(params) -> str:
    """gh-ost's --conf file: only [client] user and password (gcfg quoting)."""

    def quote(value):
        return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')

    lines = ["[client]", "user = %s" % quote(params.get("login_user") or "")]
    if params.get("login_password"):
        lines.append("password = %s" % quote(params["login_password"]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Running pt-online-schema-change
# ---------------------------------------------------------------------------------------------------------------

def _rows(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def table_facts(conn, db, table):
    """Triggers (names), whether other tables reference it by foreign key, and its SHOW CREATE TABLE text."""
    triggers = [r[0] for r in _rows(conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                                          "WHERE EVENT_OBJECT_SCHEMA = %s AND EVENT_OBJECT_TABLE = %s", (db, table))]
    children = _rows(conn, "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE "
                           "REFERENCED_TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME = %s AND "
                           "NOT (TABLE_SCHEMA = %s AND TABLE_NAME = %s)", (db, table, db, table))[0][0]
    create = _rows(conn, "SHOW CREATE TABLE %s.%s" % (quote_ident(db), quote_ident(table)))[0][1]
    return {"triggers": triggers, "child_tables": int(children), "create": create}


def _table_exists(conn, db, table):
    return bool(_rows(conn, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                            "TABLE_NAME = %s", (db, table))[0][0])


_AUTO_INC_RE = re.compile(r" AUTO_INCREMENT=\d+")


def same_definition(a, b) -> bool:
    return _AUTO_INC_RE.sub("", a or "") == _AUTO_INC_RE.sub("", b or "")


class OnlineFailure(Exception):
    """The online change failed or was aborted; `report` says what happened and what state the table is in."""

    def __init__(self, message, report):
        super().__init__(message)
        self.message = message
        self.report = report


def run_pt_osc(params, conn, db, table, clauses, opts, binary, replicas=None, watchdog=None, sql=None,
               clock=time.monotonic, progress=None, should_stop=None):
    """Run pt-online-schema-change for one ALTER; returns its report or raises OnlineFailure.

    `conn` is the guard's connection (facts, clean-up). `replicas` (topology.Replicas) are checked every second:
    while one lags over `opts["max_lag"]` (or its lag is unknown) the copy pauses; paused longer than
    `opts["lag_wait_seconds"]`, the change is aborted. `watchdog` (lock_guard.Watchdog) watches the tool's own
    DDL sessions (CREATE/DROP TRIGGER, RENAME TABLE) and kills one that others queue behind; the tool retries it.
    `progress(tool_state)` is called every second with what the tool last said (`tool_state`); when
    `should_stop()` returns a reason the tool is interrupted, and its triggers and new table dropped, as for any
    abort.
    """
    facts = table_facts(conn, db, table)
    prefix = trigger_prefix(db, table)
    leftovers = [t for t in facts["triggers"] if t.startswith(prefix)]
    if leftovers:
        raise OnlineFailure(
            "table %s has triggers %s left by an earlier pt-online-schema-change run; nothing was started. Check "
            "that no such run is still going (SHOW PROCESSLIST), then drop them (DROP TRIGGER %s) and rerun" % (
                table, ", ".join(leftovers), ", ".join(quote_ident(t) for t in leftovers)),
            {"tool": PT_OSC, "ok": False, "original_untouched": True})
    with client_option_file(params) as option_file:
        argv = pt_osc_command(binary, option_file, db, table, clauses, opts,
                              preserve_triggers=bool(facts["triggers"]), child_tables=facts["child_tables"] > 0,
                              adds_unique=adds_unique_key(sql or ("ALTER TABLE t " + clauses)))
        report, out = _monitor(PT_OSC, argv, table, clauses, opts, None, None, replicas, watchdog,
                               _pt_osc_ddl_matcher(db, table, prefix), clock, progress, should_stop)
    if report["exit_code"] == 0 and "Successfully altered" in out:
        report["ok"] = True
        return report
    match = _NEW_TABLE_RE.search(out)
    new_tables = [match.group(2).strip("`").replace("``", "`")] if match else []
    swapped = "Swapped original and new tables OK" in out
    report["cleanup"] = cleanup(conn, db, table, prefix, new_tables, facts["triggers"], opts["lock_wait_timeout"])
    raise _failure(conn, db, table, facts, report, out, swapped)


def run_gh_ost(params, conn, db, table, clauses, opts, binary, replicas=None, watchdog=None, clock=time.monotonic,
               progress=None, should_stop=None):
    """Run gh-ost for one ALTER (MySQL with row-based binary logs, over TCP); returns its report or raises
    OnlineFailure. Not exercised by this project's tests: gh-ost and MySQL are not installed where they run."""
    facts = table_facts(conn, db, table)
    ghost, changelog = "_%s_gho" % table, "_%s_ghc" % table
    existing = [t for t in (ghost, changelog) if _table_exists(conn, db, t)]
    with client_option_file(params) as option_file:
        private = os.path.dirname(option_file)
        conf = os.path.join(private, "gh-ost.cnf")
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(gh_ost_conf_text(params))
        pause_file, panic_file = os.path.join(private, "pause"), os.path.join(private, "panic")
        throttle_replicas = [(r.get("host"), r.get("port") or 3306) for r in opts.get("replicas") or ()
                             if r.get("host")]
        argv = gh_ost_command(binary, conf, params.get("login_host") or "127.0.0.1", params.get("login_port") or 3306,
                              db, table, clauses, opts, pause_file, panic_file, throttle_replicas)
        report, out = _monitor(GH_OST, argv, table, clauses, opts, pause_file, panic_file, replicas, watchdog,
                               lambda info: bool(re.match(r"^\s*(LOCK\s+TABLES|RENAME\s+TABLE)", info or "", re.I))
                               and table in (info or ""), clock, progress, should_stop)
    if report["exit_code"] == 0 and "Done migrating" in out:
        report["ok"] = True
        return report
    left = [t for t in (ghost, changelog) if t not in existing]
    report["cleanup"] = cleanup(conn, db, table, None, left, facts["triggers"], opts["lock_wait_timeout"])
    raise _failure(conn, db, table, facts, report, out, swapped="Tables renamed" in out)


def _failure(conn, db, table, facts, report, out, swapped):
    """The OnlineFailure of a failed or aborted run, after checking the original table against its facts."""
    after = table_facts(conn, db, table)
    report["original_untouched"] = (not swapped and same_definition(after["create"], facts["create"]) and
                                    sorted(after["triggers"]) == sorted(facts["triggers"]))
    errors = [text for text in out.splitlines() if re.search(r"error|exceeds|abort|die|cannot|Exiting|panic",
                                                             text, re.I)]
    why = report["aborted"] or (errors[-1].strip() if errors else "exit code %s" % report["exit_code"])
    if report["original_untouched"]:
        state = "the original table is untouched (same definition; the tool's triggers and new table are gone)"
    elif swapped:
        state = "the tables were swapped: %s HAS the new definition" % table
    else:
        state = "CHECK table %s: its definition or triggers differ from before (%s)" % (
            table, "; ".join(report.get("cleanup", {}).get("errors", [])) or "see output_tail")
    return OnlineFailure("%s %s: %s; %s" % (report["tool"], "was aborted" if report["aborted"] else "failed",
                                            why, state), report)


def _in_copy(lines):
    """pt-osc is copying rows: between its "Copying approximately" and "Copied rows OK" lines."""
    texts = [text for _, _, text in lines]
    return any("Copying approximately" in t for t in texts) and not any("Copied rows OK" in t for t in texts)


def _pause(proc, pause_file):
    """gh-ost: its throttle flag file. pt-osc: SIGSTOP, and only while it copies rows - its --pause-file is
    checked again only every 60 s once paused (pt-osc 3.2 ignores --sleep there). Stopping the process is safe
    then: each chunk is one autocommitted INSERT ... SELECT that the server finishes on its own, and the triggers
    keep mirroring the application's writes."""
    if pause_file:
        open(pause_file, "w").close()
    else:
        os.killpg(proc.pid, signal.SIGSTOP)


def _resume(proc, pause_file):
    if pause_file:
        if os.path.exists(pause_file):
            os.unlink(pause_file)
    else:
        os.killpg(proc.pid, signal.SIGCONT)


def _monitor(tool, argv, table, clauses, opts, pause_file, panic_file, replicas, watchdog, matcher, clock,
             progress=None, should_stop=None):
    """Start the tool and watch it until it exits: replica lag pauses it (and aborts it when paused too long),
    the watchdog watches its DDL sessions, `progress` hears what it says every second, `should_stop` aborts it.
    Returns (report, the tool's whole output)."""
    report = {"tool": tool, "table": table, "alter": clauses, "ok": False, "progress": [], "pauses": [],
              "paused_seconds": 0.0, "lag_max": None, "watchdog": [], "aborted": None, "argv": argv}
    started = clock()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)
    lines = []
    readers = [threading.Thread(target=_read_lines, args=(stream, name, lines, started, clock), daemon=True)
               for stream, name in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for reader in readers:
        reader.start()
    if watchdog is not None:
        watchdog.start(match=matcher)
    paused_since = None
    try:
        while proc.poll() is None:
            if replicas:
                lags = replicas.lags()
                _note_lag(report, lags)
                lagging = {n: i for n, i in lags.items() if not lag_ok(i, opts["max_lag"])}
                now = clock()
                if lagging and paused_since is None and (pause_file or _in_copy(lines)):
                    paused_since = now
                    _pause(proc, pause_file)
                    report["pauses"].append({"at_seconds": round(now - started, 1), "replicas": lagging})
                elif not lagging and paused_since is not None:
                    report["paused_seconds"] += now - paused_since
                    paused_since = None
                    _resume(proc, pause_file)
                if paused_since is not None and now - paused_since > opts["lag_wait_seconds"]:
                    report["aborted"] = ("replica lag stayed over schema_replica_max_lag %g s for %.0f s "
                                         "(schema_replica_lag_wait_seconds): %s" % (
                                             opts["max_lag"], now - paused_since,
                                             "; ".join("%s %s" % (n, lag_text(i)) for n, i in lagging.items())))
                    _resume(proc, pause_file)
                    _interrupt(proc, panic_file)
                    break
            if watchdog is not None and watchdog.event:
                report["watchdog"].append(watchdog.event)
                watchdog.start(match=matcher)
            stop = should_stop() if should_stop is not None else None
            if stop:
                report["aborted"] = stop
                if paused_since is not None:
                    _resume(proc, pause_file)
                _interrupt(proc, panic_file)
                break
            if progress is not None:
                progress(tool_state(lines, clock() - started, "replica lag" if paused_since is not None else None))
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        if paused_since is not None:
            _resume(proc, pause_file)
        _interrupt(proc, panic_file)
        raise
    finally:
        if paused_since is not None:
            report["paused_seconds"] += clock() - paused_since
        if watchdog is not None:
            event = watchdog.stop()
            if event and event not in report["watchdog"]:
                report["watchdog"].append(event)
        proc.wait()
        for reader in readers:
            reader.join(5)
    report["seconds"] = round(clock() - started, 2)
    report["paused_seconds"] = round(report["paused_seconds"], 1)
    report["exit_code"] = proc.returncode
    report["progress"] = [{"at_seconds": t, "percent": int(m.group(1)), "remaining": m.group(2)}
                          for t, name, text in lines if name == "err" for m in [_PROGRESS_RE.match(text)] if m]
    report["output_tail"] = [text for _, _, text in lines if text.strip()][-25:]
    return report, "\n".join(text for _, _, text in lines)


_PAUSING_RE = re.compile(r"^Pausing because (.+?)\.?$")
_STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\s+")


def tool_state(lines, elapsed, paused_by=None) -> dict:
    """What the tool last said, from its lines `[(seconds, "out"|"err", text)]`: `percent` and `remaining` of its
    last progress line (pt-osc's `--progress`: `Copying `db`.`t`:  45% 00:03 remain`), `paused` (why it waits:
    its own `Pausing because Threads_running=30.` when that is its latest line, or `paused_by`, this module's replica
    lag pause), `step` (its latest step line, timestamp removed), `elapsed_seconds`."""
    state = {"percent": None, "remaining": None, "paused": paused_by, "step": None,
             "elapsed_seconds": round(elapsed, 1)}
    for _, _, text in list(lines):
        text = text.strip()
        match = _PROGRESS_RE.match(text)
        pausing = _PAUSING_RE.match(text)
        if match:
            state.update(percent=int(match.group(1)), remaining=match.group(2))
            state["paused"] = paused_by
        elif pausing:
            state["paused"] = paused_by or pausing.group(1)
        elif text and not text.startswith(("#", "Operation", " ")) and _STAMP_RE.match(text):
            state["step"] = _STAMP_RE.sub("", text)
            state["paused"] = paused_by
    return state


def _read_lines(stream, name, lines, started, clock):
    """Collect the tool's lines with their time."""
    for line in stream:
        lines.append((round(clock() - started, 1), name, line.rstrip("\n")))


def _interrupt(proc, panic_file=None):
    """gh-ost: its panic flag file; pt-osc: SIGINT (it stops after its current step, never in the middle of the
    swap). SIGKILL when it has not stopped after 30 s."""
    if proc.poll() is not None:
        return
    if panic_file:
        open(panic_file, "w").close()
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _pt_osc_ddl_matcher(db, table, prefix):
    """True for the process list Info of pt-osc's own DDL on this table."""
    names = {table, "_%s_new" % table, "_%s_old" % table}

    def match(info):
        text = info or ""
        if prefix in text and re.match(r"^\s*(CREATE|DROP)\s+TRIGGER", text, re.I):
            return True
        if re.match(r"^\s*RENAME\s+TABLE", text, re.I):
            found = {a or b for a, b in re.findall(r"`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)", text)}
            return bool(found & names)
        return False

    return match


def cleanup(conn, db, table, prefix, new_tables, triggers_before, lock_wait_timeout, attempts=5):
    """Drop what an interrupted or failed tool run left: its triggers on `table` (names starting with `prefix`,
    absent before) and the tables it made (`new_tables`: underscore-prefixed names it reported or that did not
    exist before it started)."""
    import pymysql

    done = {"dropped_triggers": [], "dropped_tables": [], "errors": []}
    triggers = [t for t in table_facts(conn, db, table)["triggers"] if prefix and t.startswith(prefix) and
                t not in triggers_before]
    statements = [("trigger", t, "DROP TRIGGER IF EXISTS %s.%s" % (quote_ident(db), quote_ident(t)))
                  for t in triggers]
    for new_table in new_tables or ():
        if new_table != table and new_table.startswith("_") and _table_exists(conn, db, new_table):
            statements.append(("table", new_table, "DROP TABLE IF EXISTS %s.%s" % (quote_ident(db),
                                                                                 quote_ident(new_table))))
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %d" % int(lock_wait_timeout))
        for kind, name, sql in statements:
            for attempt in range(attempts):
                try:
                    cur.execute(sql)
                except pymysql.err.MySQLError as exc:
                    if exc.args and exc.args[0] == 1205 and attempt + 1 < attempts:
                        time.sleep(0.5)
                        continue
                    done["errors"].append("%s: %s" % (sql, exc.args[1] if len(exc.args) > 1 else exc))
                    break
                done["dropped_triggers" if kind == "trigger" else "dropped_tables"].append(name)
                break
    return done


def _note_lag(report, lags):
    for info in lags.values():
        lag = info.get("lag_seconds")
        if lag is not None and (report["lag_max"] is None or lag > report["lag_max"]):
            report["lag_max"] = lag
