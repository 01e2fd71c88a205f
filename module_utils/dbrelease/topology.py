"""Replication topology of a database endpoint, and replica lag. Stdlib plus PyMySQL only (runs on target hosts).

What one server says about itself, per flavor and version:

- whether it is a replica: `SHOW ALL SLAVES STATUS` (MariaDB, every named connection), `SHOW REPLICA STATUS`
  (MySQL >= 8.0.22, `Source_*`/`Replica_*` columns) or `SHOW SLAVE STATUS` (older MySQL), and `read_only` /
  `super_read_only`;
- its replicas: `SHOW SLAVE HOSTS` (MariaDB, MySQL < 8.0.22) or `SHOW REPLICAS` (MySQL >= 8.0.22), which list
  replicas that set `report_host`; and the binary log dump threads in the process list (their client address);
- GTIDs: MySQL's `gtid_mode`; MariaDB's `gtid_strict_mode`, `gtid_binlog_pos` and each connection's `Using_Gtid`.

Replica lag is the larger of `Seconds_Behind_Master` / `Seconds_Behind_Source` (read on the replica), the age of
the event a delayed replica waits on (`SQL_Delay` - `SQL_Remaining_Delay`), and what the positions say: where the
primary's connection is given (`Replicas(primary=...)`), every check reads the primary's binary log position
(`@@gtid_binlog_pos` on MariaDB, `@@gtid_executed` on MySQL with GTIDs, else its binary log file and position)
and whether the replica has executed it (`@@gtid_slave_pos`, `GTID_SUBSET`, or `Relay_Master_Log_File` /
`Exec_Master_Log_Pos` of a direct replica). A replica that has executed everything the primary had written is 0 s
behind; one that has not is at least as far behind as the oldest such position it still lacks (the time since
that check), and never 0. Seconds_Behind_Master alone reads 0 when the replica has not even received the
primary's latest writes, and during the first second a delayed replica waits out MASTER_DELAY. NULL (a stopped
SQL or IO thread, a broken connection) is unknown lag, which never passes a lag gate.
"""

from __future__ import annotations

import math
import re
import time

from ansible.module_utils.dbrelease.db import DbError, connect, endpoint, server_info


class TopologyRefused(Exception):
    """The endpoint is a replica where a primary is required."""


class LagTooHigh(Exception):
    """Replica lag stayed over the threshold (or unknown) until the deadline."""

    def __init__(self, lags, waited, max_lag, setting="schema_replica_max_lag"):
        super().__init__("replica lag")
        self.lags = lags
        self.waited = waited
        self.max_lag = max_lag
        self.setting = setting

    def message(self):
        bad = ["%s %s" % (name, lag_text(info)) for name, info in sorted(self.lags.items())
               if not lag_ok(info, self.max_lag)]
        return ("replica lag over %s s (%s) after waiting %.0f s: %s" % (
            _num(self.max_lag), self.setting, self.waited, "; ".join(bad)))


def _num(value):
    return ("%g" % value) if value is not None else "?"


def _status_sql(flavor, version):
    version = tuple(version or (0, 0, 0))
    if flavor == "mariadb":
        return "SHOW ALL SLAVES STATUS"
    return "SHOW REPLICA STATUS" if version >= (8, 0, 22) else "SHOW SLAVE STATUS"


def _hosts_sql(flavor, version):
    version = tuple(version or (0, 0, 0))
    return "SHOW REPLICAS" if flavor == "mysql" and version >= (8, 0, 22) else "SHOW SLAVE HOSTS"


def _get(row, *names):
    for name in names:
        if name in row:
            return row[name]
    return None


def _yes(value):
    return str(value or "").lower() in ("yes", "on", "1", "true")


def normalise_replication(row: dict) -> dict:
    """One row of SHOW ALL SLAVES STATUS / SHOW REPLICA STATUS / SHOW SLAVE STATUS, with one set of names."""
    lag = _get(row, "Seconds_Behind_Source", "Seconds_Behind_Master")
    io = _get(row, "Replica_IO_Running", "Slave_IO_Running")
    using_gtid = _get(row, "Using_Gtid")
    auto_position = _get(row, "Auto_Position")
    return {
        "connection": _get(row, "Connection_name", "Channel_Name") or "",
        "source_host": _get(row, "Source_Host", "Master_Host"),
        "source_port": int(_get(row, "Source_Port", "Master_Port") or 0),
        "source_server_id": int(_get(row, "Source_Server_Id", "Master_Server_Id") or 0),
        "io_running": str(io or "No"),
        "sql_running": str(_get(row, "Replica_SQL_Running", "Slave_SQL_Running") or "No"),
        "seconds_behind": None if lag is None else int(lag),
        "sql_delay": int(_get(row, "SQL_Delay") or 0),
        "sql_remaining_delay": None if _get(row, "SQL_Remaining_Delay") is None else int(
            _get(row, "SQL_Remaining_Delay")),
        "exec_file": _get(row, "Relay_Source_Log_File", "Relay_Master_Log_File") or "",
        "exec_pos": int(_get(row, "Exec_Source_Log_Pos", "Exec_Master_Log_Pos") or 0),
        "do_domain_ids": _get(row, "Replicate_Do_Domain_Ids") or "",
        "ignore_domain_ids": _get(row, "Replicate_Ignore_Domain_Ids") or "",
        "last_io_error": _get(row, "Last_IO_Error") or "",
        "last_sql_error": _get(row, "Last_SQL_Error") or "",
        "gtid": ("Using_Gtid=%s" % using_gtid if using_gtid is not None else
                 "auto_position" if str(auto_position) == "1" else "file and position"),
        "gtid_io_pos": _get(row, "Gtid_IO_Pos", "Retrieved_Gtid_Set") or "",
        "executed_gtid_set": _get(row, "Executed_Gtid_Set") or "",
    }


def normalise_replica_host(row: dict) -> dict:
    """One row of SHOW SLAVE HOSTS / SHOW REPLICAS."""
    return {"server_id": int(_get(row, "Server_id", "Server_Id") or 0), "host": _get(row, "Host") or "",
            "port": int(_get(row, "Port") or 0),
            "source_server_id": int(_get(row, "Master_id", "Source_Id") or 0)}


def replicating(conn_rows) -> bool:
    """True when a replication connection is set up with a thread running (or trying to connect)."""
    return any(r["io_running"].lower() in ("yes", "connecting") or r["sql_running"].lower() == "yes"
               for r in conn_rows)


def role_of(read_only, super_read_only, replication) -> str:
    """`replica` when a replication source is set up (even with its threads stopped: a replica paused for
    maintenance is still a replica) or it refuses writes (read_only), else `primary`."""
    if replication or _yes(read_only) or _yes(super_read_only):
        return "replica"
    return "primary"


def _variable(cur, name):
    """A global variable's value, or None where the server has no such variable."""
    import pymysql

    try:
        cur.execute("SELECT @@%s" % name)
        return cur.fetchone()[0]
    except pymysql.err.MySQLError:
        return None


def _dict_rows(cur):
    cols = [c[0] for c in cur.description or ()]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _try_rows(cur, sql, notes, what):
    import pymysql

    try:
        cur.execute(sql)
        return _dict_rows(cur)
    except pymysql.err.MySQLError as exc:
        notes.append("%s unknown (%s: %s)" % (what, sql, exc.args[1] if len(exc.args) > 1 else exc))
        return None


def describe(conn, info=None) -> dict:
    """The endpoint's own view of its topology: role, read_only, replication connections, replicas it lists, its
    binary log dump threads, GTID mode. Privileges it lacks turn into `notes`, never into a guess."""
    info = info or server_info(conn)
    flavor, version = info["flavor"], tuple(info["version_tuple"])
    notes = []
    with conn.cursor() as cur:
        cur.execute("SELECT @@server_id, @@read_only, @@log_bin, @@binlog_format")
        server_id, read_only, log_bin, binlog_format = cur.fetchone()
        super_read_only = None
        if flavor == "mysql":
            # super_read_only from 5.7.8, gtid_mode from 5.6: older servers have neither.
            super_read_only = _variable(cur, "super_read_only")
            gtid = {"mode": _variable(cur, "gtid_mode") or "OFF"}
        else:
            strict = _variable(cur, "gtid_strict_mode")
            gtid = {"mode": "mariadb", "strict_mode": _yes(strict), "binlog_pos": _variable(cur, "gtid_binlog_pos"),
                    "slave_pos": _variable(cur, "gtid_slave_pos")}
        rows = _try_rows(cur, _status_sql(flavor, version), notes, "replication status")
        replication = [normalise_replication(r) for r in rows or ()]
        if flavor == "mariadb" and replication:
            gtid["using_gtid"] = sorted({r["gtid"] for r in replication})
        hosts = _try_rows(cur, _hosts_sql(flavor, version), notes, "listed replicas")
        listed = [normalise_replica_host(r) for r in hosts or ()]
        dumps = _try_rows(cur, "SELECT ID, USER, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST "
                               "WHERE COMMAND LIKE 'Binlog Dump%'", notes, "binary log dump threads")
        dump_threads = [{"id": int(d["ID"]), "user": d["USER"], "client": d["HOST"], "command": d["COMMAND"],
                         "seconds": int(d["TIME"] or 0)} for d in dumps or ()]
    return {
        "endpoint_server_id": int(server_id),
        "server": info["version"],
        "role": role_of(read_only, super_read_only, replication),
        "read_only": _yes(read_only),
        "super_read_only": _yes(super_read_only) if super_read_only is not None else None,
        "binlog": {"enabled": _yes(log_bin), "format": binlog_format},
        "gtid": gtid,
        "replication": replication,
        "replicas_listed": listed,
        "binlog_dump_threads": dump_threads,
        "notes": notes,
    }


def replica_refusal(topo, where) -> str:
    """The message refusing DDL on `topo` (an endpoint that is a replica), or '' for a primary."""
    if topo["role"] != "replica":
        return ""
    why = []
    for r in topo["replication"]:
        why.append("%s %s:%s%s (server_id %s; IO thread %s, SQL thread %s)" % (
            "it replicates from" if replicating([r]) else "replication is set up (stopped) from",
            r["source_host"], r["source_port"], " connection '%s'" % r["connection"] if r["connection"] else "",
            r["source_server_id"], r["io_running"], r["sql_running"]))
    if topo["read_only"]:
        why.append("read_only is ON")
    if topo.get("super_read_only"):
        why.append("super_read_only is ON")
    return ("%s is a replica (%s): DDL runs on the primary only, and its replicas receive it through replication. "
            "Point the release at the primary (release_db_host / release_db_port / release_db_socket)" % (
                where, "; ".join(why) or "replica"))


# ---------------------------------------------------------------------------------------------------------------
# Replicas and their lag
# ---------------------------------------------------------------------------------------------------------------

def replica_params(base, replica) -> dict:
    """Connection parameters of a replica (or another server) named in the inventory as `{name, host, port, socket,
    user, password}`: its own host/port/socket, the primary's account unless it names its own."""
    params = dict(base)
    params["login_unix_socket"] = replica.get("socket") or ""
    for key, option in (("host", "login_host"), ("port", "login_port"), ("user", "login_user"),
                        ("password", "login_password"), ("connect_timeout", "connect_timeout")):
        if replica.get(key) not in (None, ""):
            params[option] = int(replica[key]) if option in ("login_port", "connect_timeout") else replica[key]
    return params


def replica_name(replica, params) -> str:
    return replica.get("name") or endpoint(params).split("@", 1)[1]


def primary_position(conn, flavor) -> dict:
    """The primary's binary log position now: `{"gtid", "file", "pos"}` (None where it has none: no GTIDs, binary
    log off, or the account may not read it)."""
    import pymysql

    found = {"gtid": None, "file": None, "pos": None}
    with conn.cursor() as cur:
        if flavor == "mariadb":
            found["gtid"] = _variable(cur, "gtid_binlog_pos") or None
        elif str(_variable(cur, "gtid_mode") or "OFF").upper() == "ON":
            found["gtid"] = _variable(cur, "gtid_executed") or None
        for sql in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):  # the latter from MySQL 8.2
            try:
                cur.execute(sql)
                row = cur.fetchone()
            except pymysql.err.MySQLError:
                continue
            if row:
                found["file"], found["pos"] = row[0], int(row[1])
            break
    return found


def mariadb_gtid_reached(replica_pos, primary_pos, do_domains="", ignore_domains="") -> bool:
    """True when a MariaDB GTID position (`@@gtid_slave_pos`) has reached `primary_pos` (`@@gtid_binlog_pos`) in
    every replication domain it replicates (CHANGE MASTER TO DO_DOMAIN_IDS / IGNORE_DOMAIN_IDS, as SHOW SLAVE
    STATUS lists them): its sequence number there is at least the primary's."""
    def ids(text):
        return {int(part) for part in re.split(r"[\s,]+", str(text or "")) if part.strip().isdigit()}

    only, skip = ids(do_domains), ids(ignore_domains)

    def domains(text):
        found = {}
        for part in (text or "").split(","):
            part = part.strip()
            if part:
                domain, _server, seq = part.split("-")
                found[int(domain)] = max(found.get(int(domain), 0), int(seq))
        return found

    have = domains(replica_pos)
    return all(have.get(domain, -1) >= seq for domain, seq in domains(primary_pos).items()
               if domain not in skip and (not only or domain in only))


def _log_index(name):
    match = re.search(r"(\d+)$", name or "")
    return (re.sub(r"\d+$", "", name or ""), int(match.group(1)) if match else -1)


def file_pos_reached(replica_file, replica_pos, primary_file, primary_pos) -> bool:
    """True when a direct replica's executed position (Relay_Master_Log_File, Exec_Master_Log_Pos) is at or past
    the primary's binary log (file, position)."""
    mine, theirs = _log_index(replica_file), _log_index(primary_file)
    if mine[0] != theirs[0]:
        return False
    return (mine[1], int(replica_pos)) >= (theirs[1], int(primary_pos))


def read_lag(conn, flavor, version, primary_server_id=None, target=None) -> dict:
    """The lag of a replica (see lag_from_rows), read on it; with `target` (primary_position()), `caught_up` says
    whether it has executed that position (None when the positions cannot be compared), and `reached` is a
    function telling that of an earlier target."""
    import pymysql

    with conn.cursor() as cur:
        try:
            cur.execute(_status_sql(flavor, version))
            rows = [normalise_replication(r) for r in _dict_rows(cur)]
            executed = _variable(cur, "gtid_slave_pos" if flavor == "mariadb" else "gtid_executed")
        except pymysql.err.MySQLError as exc:
            return {"lag_seconds": None, "reason": "cannot read its replication status: %s" % (
                exc.args[1] if len(exc.args) > 1 else exc)}
    info = lag_from_rows(rows, primary_server_id)
    if target is not None and info.get("lag_seconds") is not None:
        row = next((r for r in rows if r["source_server_id"] == info["source_server_id"]), rows[0])
        reached = _reached_fn(conn, flavor, row, executed, info["source_server_id"] == primary_server_id)
        info["reached"] = reached
        info["caught_up"] = reached(target)
    return info


def _reached_fn(conn, flavor, row, executed, direct):
    """A function of a primary position: True / False when this replica has / has not executed it, None when
    they cannot be compared."""
    import pymysql

    def reached(target):
        if target.get("gtid") and executed:
            if flavor == "mariadb":
                return mariadb_gtid_reached(executed, target["gtid"], row["do_domain_ids"], row["ignore_domain_ids"])
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT GTID_SUBSET(%s, @@GLOBAL.gtid_executed)", (target["gtid"],))
                    return bool(cur.fetchone()[0])
            except pymysql.err.MySQLError:
                return None
        if direct and target.get("file") and row["exec_file"]:
            return file_pos_reached(row["exec_file"], row["exec_pos"], target["file"], target["pos"])
        return None

    return reached


def lag_from_rows(rows, primary_server_id=None) -> dict:
    """`{"lag_seconds", "io_running", "sql_running", "sql_delay", "source_server_id", "reason"}` from a replica's
    normalised replication rows: the connection from the primary (`primary_server_id`), or the worst one.
    `lag_seconds` is None when unknown: a thread stopped, not a replica of this primary, no replication set up."""
    if primary_server_id:
        mine = [r for r in rows if r["source_server_id"] in (primary_server_id, 0)]
        if rows and not mine:
            return {"lag_seconds": None, "reason": "it replicates from server_id %s, not from the primary "
                                                   "(server_id %s)" % (", ".join(str(r["source_server_id"])
                                                                                for r in rows), primary_server_id)}
        rows = mine or rows
    if not rows:
        return {"lag_seconds": None, "reason": "no replication is set up on it"}
    worst = None
    for r in rows:
        lag = r["seconds_behind"]
        if lag is not None and r.get("sql_remaining_delay") is not None:
            # Waiting out MASTER_DELAY: the event it waits on was written SQL_Delay - SQL_Remaining_Delay s ago.
            lag = max(lag, r["sql_delay"] - r["sql_remaining_delay"])
        entry = {"lag_seconds": lag, "io_running": r["io_running"], "sql_running": r["sql_running"],
                 "sql_delay": r["sql_delay"], "source_server_id": r["source_server_id"], "reason": ""}
        if r["sql_running"].lower() != "yes":
            entry.update(lag_seconds=None, reason="its SQL thread is stopped%s" % (
                ": " + r["last_sql_error"] if r["last_sql_error"] else ""))
        elif r["io_running"].lower() != "yes":
            entry.update(lag_seconds=None, reason="its IO thread is %s%s" % (
                r["io_running"], ": " + r["last_io_error"] if r["last_io_error"] else ""))
        if worst is None or entry["lag_seconds"] is None or (
                worst["lag_seconds"] is not None and entry["lag_seconds"] > worst["lag_seconds"]):
            worst = entry
    return worst


def lag_ok(info, max_lag) -> bool:
    return info.get("lag_seconds") is not None and info["lag_seconds"] <= max_lag


def lag_text(info) -> str:
    if info.get("lag_seconds") is None:
        return "lag unknown (%s)" % (info.get("reason") or "no value")
    return "%g s behind" % info["lag_seconds"]


def with_positions(info, pending, now):
    """`info` (read_lag with a target) with the lag the positions show. `pending` is this replica's list of
    (check time, primary position) it had not executed yet, oldest first; positions it has executed since are
    dropped from it. Caught up: 0 s behind. Not caught up: at least the time since the oldest position it still
    lacks was read, rounded up to tenths of a second (so never 0)."""
    reached = info.pop("reached", None)
    caught_up = info.get("caught_up")
    if info.get("lag_seconds") is None or caught_up is None:
        pending.clear()
        return info
    if caught_up:
        pending.clear()
        info["lag_seconds"] = 0
        return info
    while len(pending) > 1 and reached(pending[0][1]):
        pending.pop(0)
    behind = math.ceil(max(0.0, now - pending[0][0]) * 10) / 10
    info["lag_seconds"] = max(info["lag_seconds"], behind, 0.1)
    return info


class Replicas:
    """Connections to the replicas named in the inventory, opened once, with the lag gate."""

    def __init__(self, base_params, replicas, primary_server_id=None, connect_fn=connect, primary=None,
                 primary_flavor=None, clock=time.monotonic):
        """`primary` (a connection to the primary, and its flavor) adds the position check to each lag read."""
        self.items = []
        self.primary_server_id = primary_server_id
        self.primary, self.primary_flavor, self.clock = primary, primary_flavor, clock
        self.pending = {}
        self.errors = {}
        for replica in replicas or ():
            params = replica_params(base_params, replica)
            name = replica_name(replica, params)
            try:
                conn = connect_fn(params)
                info = server_info(conn)
            except DbError as exc:
                self.errors[name] = str(exc)
                continue
            self.items.append((name, conn, info))

    def __bool__(self):
        return bool(self.items or self.errors)

    def lags(self) -> dict:
        found = {name: {"lag_seconds": None, "reason": "cannot connect: %s" % err}
                 for name, err in self.errors.items()}
        target, now = None, self.clock()
        if self.primary is not None and self.items:
            target = primary_position(self.primary, self.primary_flavor)
            if not (target["gtid"] or target["file"]):
                target = None
        for name, conn, info in self.items:
            lag = read_lag(conn, info["flavor"], info["version_tuple"], self.primary_server_id, target)
            pending = self.pending.setdefault(name, [])
            if target is not None and lag.get("caught_up") is False:
                pending.append((now, target))
            found[name] = with_positions(lag, pending, now)
        return found

    def wait(self, max_lag, deadline, clock=time.monotonic, sleep=time.sleep, every=1.0,
             setting="schema_replica_max_lag"):
        """Wait until every replica's lag is known and at most `max_lag`; returns `{"lags", "waited"}` with the
        lags of the passing check and the worst seen, or raises LagTooHigh at `deadline`."""
        started = clock()
        worst = {}
        while True:
            lags = self.lags()
            for name, info in lags.items():
                prev = worst.get(name)
                if prev is None or info.get("lag_seconds") is None or (
                        prev.get("lag_seconds") is not None and info["lag_seconds"] > prev["lag_seconds"]):
                    worst[name] = info
            if all(lag_ok(i, max_lag) for i in lags.values()):
                return {"lags": lags, "worst": worst, "waited": round(clock() - started, 2)}
            if clock() >= deadline:
                raise LagTooHigh(lags, clock() - started, max_lag, setting)
            sleep(min(every, max(0.0, deadline - clock())))

    def close(self):
        for _, conn, _ in self.items:
            try:
                conn.close()
            except Exception:  # a replica that went away: nothing left to close
                pass
        self.items = []
