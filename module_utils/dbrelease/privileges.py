"""The least privileges of the release account, per phase, and which of them an account lacks. Pure logic except
`account_grants()`, which reads the connected account's own grants. Stdlib plus PyMySQL only (runs on targets).

`PHASES` is the one list of what each phase needs (the README's table is written from it). A requirement names a
scope - the release database (`db`), its temporary plan copies (`plan`, `<db>__dbrelease_plan_%`), its restore-test
copies (`restore`, `<db>__dbrelease_restore_%`), the lock's schema (`lock`), the `mysql` schema (`mysql`), or the
server (`global`) - the privilege, and why. Conditional ones (`when`) apply only when the server writes a binary
log (`log_bin`), when the backup is restore-tested (`restore_test`) and that restore skips the binary log
(`skip_binlog`), when the database holds objects of another DEFINER
(`other_definers`), or when it holds triggers or stored functions while the server writes a binary log without
log_bin_trust_function_creators (`stored_code_binlog`).
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.grants import parse_show_grants

# What the schema phase needs on the database and on its plan copies (the DDL itself, and copying every kind of
# object into the copy).
_DDL = ("SELECT", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
        "ALTER ROUTINE", "TRIGGER", "EVENT")
# What the schema plan's temporary account is granted on its copy (plancopy.PlanCopy), so what the release account
# must hold there with the grant option: the DDL, and the data statements a release may allow.
PLAN_ACCOUNT = _DDL + ("INSERT", "UPDATE", "DELETE", "EXECUTE", "LOCK TABLES", "CREATE TEMPORARY TABLES")
# What loading a dump needs (tables and rows, then views, routines, triggers and events).
_LOAD = ("SELECT", "INSERT", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES", "LOCK TABLES", "CREATE VIEW",
         "SHOW VIEW", "CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER", "EVENT")


# With the binary log on, the server lets only SUPER create triggers and stored functions, unless the server runs
# with log_bin_trust_function_creators=ON (MariaDB and MySQL alike; sql_log_bin=0 in the session does not count).
_TRUST = ("creating triggers and stored functions while the server writes a binary log (or set the server's "
          "log_bin_trust_function_creators=ON instead)")


def _reqs(scope, privileges, why, when=(), optional=False):
    """Requirements of `privileges` on `scope`, applying when every condition named in `when` holds. An optional
    one is what a phase works without, seeing less (it is warned about, never refused)."""
    when = (when,) if isinstance(when, str) else tuple(when)
    return [{"scope": scope, "privilege": p, "why": why, "when": when, "optional": optional} for p in privileges]


PHASES = {
    "preflight": (
        _reqs("global", ("SLAVE MONITOR",), "the topology check reads the replication status (without it, preflight "
              "cannot tell whether the endpoint is a replica, and says so)", optional=True)
        + _reqs("global", ("REPLICATION MASTER ADMIN",), "the topology check lists the replicas (SHOW SLAVE HOSTS)",
                optional=True)
    ),
    "lock": _reqs("lock", ("CREATE", "SELECT", "INSERT", "UPDATE", "DELETE"),
                  "the lock table: created once, then a row per release"),
    "maintenance": [],
    "backup": (
        _reqs("db", ("SELECT", "SHOW VIEW", "TRIGGER", "EVENT", "LOCK TABLES"),
              "mariadb-dump --single-transaction --routines --events --triggers")
        + _reqs("mysql", ("SELECT",), "the dump reads routine bodies (mysql.proc)")
        + _reqs("global", ("RELOAD",), "--master-data: FLUSH TABLES WITH READ LOCK for the binlog position",
                when="log_bin")
        + _reqs("global", ("BINLOG MONITOR",), "--master-data: SHOW MASTER STATUS", when="log_bin")
        + _reqs("restore", _LOAD, "the restore test loads the backup into <db>__dbrelease_restore_<random>",
                when="restore_test")
        + _reqs("global", ("BINLOG ADMIN",), "the restore test sets sql_log_bin=0 so replicas never get the copy",
                when=("restore_test", "skip_binlog"))
        + _reqs("global", ("SET USER",), "the restore test loads objects whose DEFINER is another account",
                when=("restore_test", "other_definers"))
        + _reqs("global", ("SUPER",), _TRUST, when=("restore_test", "stored_code_binlog"))
    ),
    "grants": _reqs("mysql", ("SELECT",), "SHOW GRANTS FOR the accounts checked"),
    "schema": (_reqs("db", _DDL, "the DDL files, and reading every object's definition")
               + _reqs("plan", PLAN_ACCOUNT + ("GRANT",), "the plan: a copy of the structure in "
                       "<db>__dbrelease_plan_<random>, granted to its temporary account (GRANT OPTION)")
               + _reqs("global", ("CREATE USER",), "the plan runs the DDL as a temporary account "
                       "dbrelease_plan_<random> that it creates and drops (--check stays in the copy)")
               + _reqs("global", ("SET USER",), "the copy's triggers and stored functions get the temporary account as "
                       "DEFINER while the server writes a binary log", when="stored_code_binlog")
               + _reqs("mysql", ("SELECT",), "routine definitions of other definers (mysql.proc)")
               + _reqs("global", ("SUPER",), _TRUST, when="stored_code_binlog")
               + _reqs("global", ("PROCESS",), "the lock guard sees other accounts' sessions (without it, it sees only "
                       "this account's)", optional=True)
               + _reqs("global", ("CONNECTION ADMIN",), "the lock guard kills the idle blockers named in "
                       "schema_kill_idle_blockers", optional=True)
               + _reqs("global", ("SUPER",), "pt-online-schema-change creates triggers on a large table's online "
                       "change while the server writes a binary log (or log_bin_trust_function_creators=ON)",
                       when="binlog_untrusted", optional=True)),
    "migrate": _reqs("db", ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX", "DROP"),
                     "the migrations and the tool's history table (more if the migrations do more)"),
    "verify_baseline": _reqs("db", ("SELECT",), "the outbox statistics taken before the schema changes"),
    "verify": _reqs("db", ("SELECT",), "snapshots, outbox statistics and the health checks"),
    "watch": _reqs("db", ("SELECT",), "the outbox statistics polled during the watch window"),
    "tag": [],
    # rollback.yml, release_rollback_mode restore or pitr (docs/rollback.md): the backup restored into a new schema,
    # verified, swapped in with one RENAME TABLE, the database as it was kept aside; in place (after a safety dump)
    # only where a swap is impossible.
    "rollback": (
        _reqs("db", _LOAD, "the swap renames the tables and recreates views, routines, triggers and events (in place: "
              "the database is dropped and the backup loaded into it)")
        + _reqs("rollback", _LOAD, "the backup is restored and verified in <db>__dbrelease_rollback_<random> first")
        + _reqs("kept", _LOAD, "the database as it was before the rollback is kept in <db>__before_rollback_<stamp>")
        + _reqs("db", ("SHOW VIEW", "TRIGGER", "EVENT"), "the safety dump taken before an in-place restore")
        + _reqs("mysql", ("SELECT",), "routine definitions of other definers, recreated by the swap (mysql.proc)")
        + _reqs("global", ("SET USER",), "loading objects whose DEFINER is another account", when="other_definers")
        + _reqs("global", ("SUPER",), _TRUST, when="stored_code_binlog")
        + _reqs("global", ("BINLOG MONITOR",), "the confirmation reads what was written since the backup (SHOW "
                "BINLOG EVENTS; without it, it says the binary log cannot tell)", when="log_bin", optional=True)
    ),
    # release_rollback_mode=pitr besides the above: the binary logs fetched over the replication protocol, then
    # replayed into the restored copy.
    "rollback_pitr": (
        _reqs("global", ("REPLICATION SLAVE",), "mariadb-binlog --read-from-remote-server fetches the binary logs")
        + _reqs("global", ("BINLOG MONITOR",), "SHOW BINARY LOGS and SHOW BINLOG EVENTS: the range to replay")
        + _reqs("global", ("BINLOG REPLAY",), "the replayed events set the session's GTID and server id")
    ),
}

# release_rollback_mode=schema: the reverse DDL goes through schema_apply like a release's, so it needs what the schema
# phase needs.
PHASES["rollback_schema"] = [dict(req, why="the reverse of the release's schema changes, through schema_apply: "
                                  + req["why"]) for req in PHASES["schema"]]

# Dynamic privileges are spelled differently on MySQL 8 (underscores), and older servers only know SUPER and
# REPLICATION CLIENT for them.
MYSQL_NAMES = {"BINLOG MONITOR": ("REPLICATION CLIENT",), "BINLOG ADMIN": ("SYSTEM_VARIABLES_ADMIN",
                                                                          "SESSION_VARIABLES_ADMIN"),
               "SET USER": ("SET_USER_ID", "SET_ANY_DEFINER"), "BINLOG REPLAY": ("BINLOG_ADMIN",),
               "SLAVE MONITOR": ("REPLICATION CLIENT",),
               "REPLICATION MASTER ADMIN": ("REPLICATION SLAVE",), "CONNECTION ADMIN": ("CONNECTION_ADMIN",)}
# What SUPER still covers: on MariaDB before 11.0 (where it was split up for good) and on MySQL.
SUPER_COVERS = ("BINLOG MONITOR", "BINLOG ADMIN", "SET USER", "SLAVE MONITOR", "REPLICATION MASTER ADMIN",
                "CONNECTION ADMIN")


def scope_names(database: str, lock_schema: str) -> dict:
    """A concrete schema name per scope, matched against the grant patterns (`db.*`, `db\\_\\_dbrelease\\_%`)."""
    return {"db": database, "plan": database + "__dbrelease_plan_0123abcd",
            "restore": database + "__dbrelease_restore_0123abcd", "lock": lock_schema, "mysql": "mysql",
            "rollback": database + "__dbrelease_rollback_0123abcd",
            "kept": database + "__before_rollback_20260101T000000Z"}


def required(phases, conditions: dict) -> list[dict]:
    """The requirements of `phases` that apply under `conditions` ({log_bin, skip_binlog, other_definers}),
    without duplicates (first phase that needs it kept)."""
    seen, out = set(), []
    for phase in phases:
        if phase not in PHASES:
            raise ValueError("unknown phase %r (known: %s)" % (phase, ", ".join(PHASES)))
        for req in PHASES[phase]:
            if not all(conditions.get(name) for name in req["when"]):
                continue
            key = (req["scope"], req["privilege"])
            if key not in seen:
                seen.add(key)
                out.append(dict(req, phase=phase))
    return out


def like(pattern: str, name: str) -> bool:
    """MySQL's LIKE for database names in grants: `%`, `_`, and `\\` escaping them."""
    regex, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(regex), name, re.DOTALL) is not None


def _held(grants: dict, schema: str) -> set:
    """Privileges that apply to every table of `schema`: global ones and those of matching database patterns."""
    held = set(grants.get("*.*", set()))
    for obj, privs in grants.items():
        db, _, table = obj.rpartition(".")
        if table == "*" and db != "*" and like(db, schema):
            held |= privs
    return held


def covered(privilege: str, held: set, flavor: str, version) -> bool:
    if privilege in held or ("ALL" in held and privilege != "GRANT"):  # ALL PRIVILEGES leaves out the grant option
        return True
    if flavor == "mysql" and any(name in held for name in MYSQL_NAMES.get(privilege, ())):
        return True
    if flavor == "mariadb" and privilege in ("BINLOG MONITOR", "SLAVE MONITOR") and "REPLICATION CLIENT" in held:
        return True  # their name before MariaDB 10.5.2, kept as an alias (REPLICA MONITOR: SLAVE MONITOR's)
    if flavor == "mariadb" and privilege == "SLAVE MONITOR" and "REPLICA MONITOR" in held:
        return True
    old_super = flavor == "mysql" or tuple(version or (0,))[:1] < (11,)
    return privilege in SUPER_COVERS and "SUPER" in held and old_super


def missing(requirements, grants: dict, names: dict, flavor="mariadb", version=(10, 11, 0)) -> list[dict]:
    """The requirements not covered by `grants` ({object: set(privileges)}, as parse_show_grants returns)."""
    lacking = []
    for req in requirements:
        schema = names.get(req["scope"])
        held = set(grants.get("*.*", set())) if req["scope"] == "global" else _held(grants, schema)
        if not covered(req["privilege"], held, flavor, version):
            lacking.append(dict(req, on="*.*" if req["scope"] == "global" else "%s.*" % schema))
    return lacking


def split_missing(lacking) -> tuple[list, list]:
    """(required, optional) parts of `missing()`'s result."""
    return [m for m in lacking if not m["optional"]], [m for m in lacking if m["optional"]]


def summary(lacking) -> str:
    """`phase: PRIV on obj (why); ...` grouped by phase."""
    by_phase = {}
    for item in lacking:
        by_phase.setdefault(item["phase"], []).append(item)
    parts = []
    for phase, items in by_phase.items():
        on = {}
        for item in items:
            on.setdefault((item["on"], item["why"]), []).append(item["privilege"])
        parts.append("%s needs %s" % (phase, ", ".join("%s on %s (%s)" % (", ".join(privs), obj, why)
                                                        for (obj, why), privs in on.items())))
    return "; ".join(parts)


# -- reading the connected account's grants -------------------------------------------------------------------------
def account_grants(conn, flavor: str) -> tuple[str, dict, list]:
    """(current user, {object: privileges}, SHOW GRANTS lines) of the connected account, with its active roles."""
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        user = cur.fetchone()[0]
        cur.execute("SHOW GRANTS")
        lines = [row[0] for row in cur.fetchall()]
        if flavor == "mysql":
            cur.execute("SELECT CURRENT_ROLE()")
            roles = cur.fetchone()[0]
            if roles and roles != "NONE":
                cur.execute("SHOW GRANTS FOR CURRENT_USER() USING %s" % roles)
                lines = [row[0] for row in cur.fetchall()]
    return user, parse_show_grants(lines), lines


# How long the conditions' reads of information_schema wait for a table's metadata lock (a DDL of a running release
# holds them): past it, the condition is unknown rather than the check waiting (lock_wait_timeout is a day by default).
CONDITIONS_LOCK_WAIT_S = 5


def _count_or_none(cur, sql, args):
    """COUNT(*) of `sql`, or None when a metadata lock held by another session kept it from being read in time."""
    try:
        cur.execute(sql, args)
        return int(cur.fetchone()[0])
    except Exception as exc:  # noqa: BLE001 - PyMySQL errors; only the lock wait timeout is expected
        if not exc.args or exc.args[0] != 1205:
            raise
        return None


def conditions(conn, database: str, skip_binlog: bool, restore_test: bool = True) -> dict:
    """The conditions of PHASES' conditional requirements, as found on the server and in `database`.

    Reading the triggers, routines, views and events of `database` waits for their tables' metadata locks; when a
    running DDL keeps them past CONDITIONS_LOCK_WAIT_S, the conditions depending on them are assumed to hold and
    listed in `unknown` (the caller then asks for their privileges without refusing the run for them)."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %d" % CONDITIONS_LOCK_WAIT_S)
        cur.execute("SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators, CURRENT_USER()")
        log_bin, trusted, user = cur.fetchone()
        log_bin = str(log_bin).upper() in ("1", "ON")
        stored_code = _count_or_none(
            cur, "SELECT (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s) + "
            "(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s AND "
            "ROUTINE_TYPE = 'FUNCTION')", (database, database))
        others = _count_or_none(
            cur, "SELECT COUNT(*) FROM ("
            "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s UNION ALL "
            "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s UNION ALL "
            "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s UNION ALL "
            "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s) d WHERE d.DEFINER <> %s",
            (database, database, database, database, user))
    untrusted = log_bin and str(trusted).upper() not in ("1", "ON")
    found = {"log_bin": log_bin, "restore_test": bool(restore_test), "skip_binlog": bool(skip_binlog),
             "other_definers": others is None or others > 0,
             "stored_code_binlog": untrusted and (stored_code is None or stored_code > 0),
             "binlog_untrusted": untrusted}
    unknown = ([] if stored_code is not None else ["stored_code_binlog"]) + ([] if others is not None else
                                                                              ["other_definers"])
    if unknown:
        found["unknown"] = unknown
    return found


def demote_unknown(requirements, found: dict) -> list[dict]:
    """The requirements, those depending on a condition `conditions()` could not read made optional."""
    unknown = set(found.get("unknown") or ())
    return [dict(r, optional=True) if unknown & set(r["when"]) else r for r in requirements]


def grant_statements(database, lock_schema, phases, conditions, account="'db_release'@'%'", version=(10, 11, 0)
                     ) -> list[str]:
    """The GRANT statements that give `account` exactly what `phases` need on a MariaDB server of `version`
    (without what SUPER covers there when SUPER is needed anyway): what the README's least-privilege section shows
    and what the tests create."""
    patterns = {"db": _escape(database), "plan": _escape(database + "__dbrelease_plan_") + "%",
                "restore": _escape(database + "__dbrelease_restore_") + "%", "lock": _escape(lock_schema),
                "mysql": "mysql", "rollback": _escape(database + "__dbrelease_rollback_") + "%",
                "kept": _escape(database + "__before_rollback_") + "%"}
    by_object = {}
    needed = [req for req in required(phases, conditions) if not req["optional"]]
    supered = any(r["privilege"] == "SUPER" for r in needed)
    for req in needed:
        if supered and req["privilege"] != "SUPER" and covered(req["privilege"], {"SUPER"}, "mariadb", version):
            continue
        obj = "*.*" if req["scope"] == "global" else "`%s`.*" % patterns[req["scope"]]
        privs = by_object.setdefault(obj, [])
        if req["privilege"] not in privs:
            privs.append(req["privilege"])
    return ["GRANT %s ON %s TO %s%s" % (", ".join(p for p in privs if p != "GRANT"), obj, account,
                                        " WITH GRANT OPTION" if "GRANT" in privs else "")
            for obj, privs in by_object.items()]


def _escape(name: str) -> str:
    """A database name as a GRANT pattern that matches only itself (`_` and `%` are wildcards there)."""
    return name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


WHEN_TEXT = {"log_bin": "when the server writes a binary log", "restore_test": "when the backup is restore-tested "
             "(backup_restore_test, on in staging)", "skip_binlog": "when the restore test skips the binary log (the "
             "default)", "other_definers": "when the database has objects of another DEFINER",
             "stored_code_binlog": "when the database has triggers or stored functions and the server writes a "
             "binary log without log_bin_trust_function_creators", "binlog_untrusted": "when the server writes a "
             "binary log without log_bin_trust_function_creators"}
SCOPE_TEXT = {"db": "`<db>`.*", "plan": "`<db>\\_\\_dbrelease\\_plan\\_%`.*",
              "restore": "`<db>\\_\\_dbrelease\\_restore\\_%`.*", "lock": "`<lock schema>`.* (`dbrelease`)",
              "mysql": "`mysql`.*", "global": "`*.*`", "rollback": "`<db>\\_\\_dbrelease\\_rollback\\_%`.*",
              "kept": "`<db>\\_\\_before\\_rollback\\_%`.*"}


def markdown_table() -> str:
    """PHASES as the table of docs/security.md (a unit test keeps the page and this list the same)."""
    rows = ["| phase | on | privileges | why |", "| --- | --- | --- | --- |"]
    for phase, reqs in PHASES.items():
        if not reqs:
            rows.append("| %s | | (none beyond connecting) | |" % phase)
            continue
        groups = {}
        for req in reqs:
            groups.setdefault((req["scope"], req["why"], req["when"], req["optional"]), []).append(req["privilege"])
        for (scope, why, when, optional), privs in groups.items():
            rows.append("| %s | %s | %s | %s%s%s |" % (phase, SCOPE_TEXT[scope], ", ".join(privs),
                                                        "optional: " if optional else "", why,
                                                        " (%s)" % " and ".join(WHEN_TEXT[w] for w in when)
                                                        if when else ""))
    return "\n".join(rows) + "\n"


def priv_spec(database, lock_schema, phases, conditions, version=(10, 11, 0)) -> str:
    """The same privileges in community.mysql's `priv` syntax, for release_db_admin_privileges (the grants phase
    then checks the account has exactly them)."""
    parts = []
    for statement in grant_statements(database, lock_schema, phases, conditions, account="x", version=version):
        privs, _, rest = statement[len("GRANT "):].partition(" ON ")
        names = [p.strip() for p in privs.split(",")] + (["GRANT"] if rest.endswith(" WITH GRANT OPTION") else [])
        parts.append("%s:%s" % (rest.rpartition(" TO ")[0], ",".join(names)))
    return "/".join(parts)
