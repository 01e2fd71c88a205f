"""The plan's temporary copy of a schema, and the account every statement of the plan runs as. Stdlib + PyMySQL.

`--check` must change nothing outside the temporary schema, however the SQL is written. A text guard cannot
promise that (dynamic SQL, names resolved at run time, events and triggers firing, stored functions), so the
server's own privilege system does: the statements of the release run on the copy as a temporary account,
`dbrelease_plan_<token>@<the admin's client host>`, that holds privileges on the temporary schema only (and SELECT
on the other schemas the copied views read). Every view, routine, trigger and event of the copy is owned by that
account, so whatever they run at any time runs with its privileges; the server refuses anything else (creating a
user, SET GLOBAL, dropping another database) with an access-denied error, which fails the plan.

The admin connection creates the temporary schema and the account, copies the tables (with foreign_key_checks=0),
and creates what the account may not: a trigger or function while binary logging is on (error 1419, SUPER
needed) or an object whose statement names another definer - always with DEFINER = the temporary account, and
only for statements that define an object (they run no code when executed). The real definers are kept aside
and put back into the copy's snapshots, so the plan shows DEFINER changes as the real run will make them: a
statement without DEFINER gets the admin's account, as in the real run.

Objects are created in dependency order: tables, routines (a view may call a function), views in the order of
their references to each other, triggers, events (disabled, so none fires from the copy).
"""

from __future__ import annotations

import re
import secrets

from ansible.module_utils.dbrelease import classify as cls_mod
from ansible.module_utils.dbrelease.db import DbError, connect, quote_ident
from ansible.module_utils.dbrelease.leftovers import claim_schema, release_schema_claim
from ansible.module_utils.dbrelease.privileges import PLAN_ACCOUNT
from ansible.module_utils.dbrelease.sqlident import object_references, rewrite_schema, schema_qualifiers

ACCOUNT_PREFIX = "dbrelease_plan_"
# Errors meaning "the temporary account may not do this": access denied (1044, 1142, 1143, 1227, 1370),
# SUPER needed to create triggers and functions while binary logging is on (1419).
PRIVILEGE_ERRORS = (1044, 1142, 1143, 1227, 1370, 1419)
_DEFINITION_KINDS = ("view", "procedure", "function", "trigger", "event")
_EVENT_STATUS_RE = re.compile(r"\s(ENABLE|DISABLE ON SLAVE|DISABLE ON REPLICA|DISABLE)\s(?=.*\sDO\s)", re.DOTALL)


class CopyError(Exception):
    """The copy could not be made; the message names the object (or the account) and the server's error."""


def _code(exc):
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _text(exc):
    args = getattr(exc, "args", ())
    return args[1] if len(args) > 1 else str(exc)


def grant_pattern(name: str) -> str:
    """A database name for GRANT ... ON `name`.*, with the LIKE wildcards `_` and `%` escaped."""
    return quote_ident(name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%"))


def view_order(creates: dict) -> list:
    """View names ordered so that every view comes after the views it reads (names in sorted order otherwise)."""
    deps = {}
    for name, text in creates.items():
        body = text.split(" AS ", 1)[1] if " AS " in text else text
        refs = {n for _s, n in object_references(body)}
        deps[name] = {n for n in refs if n in creates and n != name}
    ordered, done = [], set()
    pending = sorted(deps)
    while pending:
        ready = [n for n in pending if deps[n] <= done]
        if not ready:  # a reference the reader took for a dependency but is not one: keep the rest sorted
            ready = pending[:1]
        for n in ready:
            ordered.append(n)
            done.add(n)
        pending = [n for n in pending if n not in done]
    return ordered


_NOLOG_NAME = "dbrelease_session_nolog"
_NOLOG_PROCEDURE = ("CREATE DEFINER = CURRENT_USER PROCEDURE %s.%s() SQL SECURITY DEFINER "
                    "SET SESSION sql_log_bin = 0")


class PlanCopy:
    """A temporary schema `tmp` holding the structure of `db`, and the temporary account that works in it.

    Use as a context manager: on exit the schema, the account and the account's connection are removed, also on
    failure. `source_conn` is the target's server when `conn` is another one (schema_plan_server): the schema's
    character set is read there. `overrides` maps (kind, name) to the definer the object has in the real schema
    (or will have after the real run; None = the admin's account).
    """

    def __init__(self, conn, params, db, tmp, flavor="mariadb", version=(10, 11, 0), source_conn=None):
        self.conn, self.params, self.db, self.tmp = conn, params, db, tmp
        self.source_conn = source_conn or conn
        self.flavor, self.version = flavor, version
        self.token = tmp.rsplit("_", 1)[-1] if "_" in tmp else secrets.token_hex(4)
        self.user = (ACCOUNT_PREFIX + self.token)[:32]
        self.host = None
        self.admin_account = None
        self.runner = None
        self.overrides = {}
        self.created_schema = False
        self.created_account = False
        self.claims = []
        self.problems = []

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Drop the temporary schema and account and close the account's connection; never raises."""
        problems = []
        if self.runner is not None:
            try:
                self.runner.close()
            except Exception:  # noqa: BLE001 - a dead connection has nothing to close
                pass
            self.runner = None
        with self.conn.cursor() as cur:
            if self.created_schema:
                try:
                    cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(self.tmp))
                    self.created_schema = False
                except Exception as exc:  # noqa: BLE001 - reported below
                    problems.append("drop the temporary schema %s: %s" % (self.tmp, exc))
            if self.created_account:
                try:
                    cur.execute("DROP USER IF EXISTS %s@%s", (self.user, self.host))
                    self.created_account = False
                except Exception as exc:  # noqa: BLE001 - reported below
                    problems.append("drop the temporary account %s@%s: %s" % (self.user, self.host, exc))
        if not (self.created_schema or self.created_account):
            for name in self.claims:
                release_schema_claim(self.conn, name)
            self.claims = []
        self.problems = problems

    # -- creation ----------------------------------------------------------------------------------------------
    def create(self, objects, creates, scope=None, reads=()):
        """Create the temporary schema, the account, and the copy of `objects` (their SHOW CREATE texts in
        `creates`), limited to `scope` (schema.plan_scope) when given. The account may read the schemas the
        copied views read, and `reads`. Returns the creates copied."""
        if scope is not None:
            creates = dict(creates)
            creates["tables"] = {n: t for n, t in creates["tables"].items() if n in scope["tables"]}
            creates["views"] = {n: t for n, t in creates["views"].items() if n in scope["views"]}
            creates["triggers"] = {n: t for n, t in creates["triggers"].items()
                                   if objects["triggers"][n]["table"] in scope["tables"]}
        with self.source_conn.cursor() as cur:
            cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = %s", (self.db,))
            charset, collation = cur.fetchone()
        with self.conn.cursor() as cur:
            cur.execute("SELECT USER(), CURRENT_USER()")
            client, current = cur.fetchone()
            self.host = client.rsplit("@", 1)[1] if "@" in client else "localhost"
            self.admin_account = current
            # The copy and the account are marked as this connection's (named locks): a run killed before
            # close() leaves them to the next run's clean-up (leftovers.sweep_schemas, sweep_plan_accounts).
            for name in (self.tmp, self.user):
                claim_schema(self.conn, name)
                self.claims.append(name)
            cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s" % (quote_ident(self.tmp), charset,
                                                                           collation))
            self.created_schema = True
        self._create_account(creates, reads)
        with self.conn.cursor() as cur:
            cur.execute("USE %s" % quote_ident(self.tmp))
            cur.execute("SET SESSION foreign_key_checks = 0")
            try:
                for name in sorted(creates["tables"]):
                    self._copy(cur, "table", name, creates["tables"][name], admin_only=True)
            finally:
                cur.execute("SET SESSION foreign_key_checks = 1")
            for name in sorted(creates["routines"]):
                self._copy(cur, "routine", name, creates["routines"][name], key=("routines", name),
                           definer=objects["routines"][name].get("definer"))
            for name in view_order(creates["views"]):
                self._copy(cur, "view", name, creates["views"][name], key=("views", name),
                           definer=objects["views"][name].get("definer"))
            for name in sorted(creates["triggers"]):
                self._copy(cur, "trigger", name, creates["triggers"][name], key=("triggers", name),
                           definer=objects["triggers"][name].get("definer"))
            for name in sorted(creates["events"]):
                text = _EVENT_STATUS_RE.sub(" DISABLE ", creates["events"][name], count=1)
                self._copy(cur, "event", name, text, key=("events", name),
                           definer=objects["events"][name].get("definer"))
            cur.execute("USE %s" % quote_ident(self.db))
        return creates

    def _create_account(self, creates, reads=()):
        password = secrets.token_hex(24)
        others = set(reads)
        for text in creates["views"].values():
            others |= schema_qualifiers(text)
        others -= {self.db, self.tmp, "information_schema", "performance_schema"}
        with self.conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.sql_log_bin, @@GLOBAL.read_only")
            log_bin, read_only = (int(v or 0) for v in cur.fetchone())
        # The admin session's binary logging is off where the plan must reach no binary log (a replica or a
        # separate server as schema_plan_server, ddl_exec.plan_connection): the account's session must be too.
        nolog = not log_bin
        try:
            with self.conn.cursor() as cur:
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (self.user, self.host, password))
                self.created_account = True
                cur.execute("GRANT %s ON %s.* TO %%s@%%s" % (", ".join(PLAN_ACCOUNT), grant_pattern(self.tmp)),
                            (self.user, self.host))
                for other in sorted(others):
                    cur.execute("GRANT SELECT, SHOW VIEW ON %s.* TO %%s@%%s" % grant_pattern(other),
                                (self.user, self.host))
                if read_only:
                    # A read-only plan server (a replica): the account may write where its grants let it, the
                    # temporary schema only.
                    cur.execute("GRANT %s ON *.* TO %%s@%%s" % self.read_only_privilege(), (self.user, self.host))
                if nolog:
                    cur.execute(_NOLOG_PROCEDURE % (quote_ident(self.tmp), quote_ident(_NOLOG_NAME)))
        except Exception as exc:  # noqa: BLE001 - PyMySQL errors: said with the privileges to grant
            raise CopyError(
                "cannot create the temporary account %s@%s that the plan runs the DDL as (so that --check cannot "
                "change anything outside the temporary schema): (%s) %s; the admin account needs CREATE USER and "
                "the GRANT OPTION%s" % (self.user, self.host, _code(exc), _text(exc), (
                    " (with %s, as the plan server is read-only)" % self.read_only_privilege()) if read_only else ""
                )) from None
        try:
            self.runner = connect(dict(self.params, login_user=self.user, login_password=password))
        except DbError as exc:
            raise CopyError("cannot connect as the temporary account %s@%s: %s" % (self.user, self.host, exc)) from None
        with self.runner.cursor() as cur:
            cur.execute("USE %s" % quote_ident(self.tmp))
            if nolog:
                # The admin-owned procedure turns the account's session binary logging off (the account itself
                # may not); dropped at once, before anything of the copy exists.
                cur.execute("CALL %s.%s()" % (quote_ident(self.tmp), quote_ident(_NOLOG_NAME)))
                cur.execute("SELECT @@SESSION.sql_log_bin")
                still = int(cur.fetchone()[0] or 0)
        if nolog:
            with self.conn.cursor() as cur:
                cur.execute("DROP PROCEDURE %s.%s" % (quote_ident(self.tmp), quote_ident(_NOLOG_NAME)))
            if still:
                raise CopyError("cannot turn binary logging off for the temporary account's session on this plan "
                                "server, so the plan's DDL would reach its binary log; nothing was planned")

    def read_only_privilege(self) -> str:
        """The privilege that lets an account write on a read-only server (only where its grants allow)."""
        if self.flavor == "mariadb":
            return "READ_ONLY ADMIN" if tuple(self.version[:3]) >= (10, 5, 2) else "SUPER"
        return "CONNECTION_ADMIN"

    def _copy(self, cur, label, name, text, key=None, definer=None, admin_only=False):
        import pymysql

        text = rewrite_schema(text, self.db, self.tmp)
        try:
            if admin_only:
                cur.execute(text)
                return
            self._run_definition(cls_mod.set_definer(text, self.user, self.host))
            self.overrides[key] = definer
        except pymysql.err.MySQLError as exc:
            hint = ""
            if _code(exc) == 1419:
                hint = (" (with binary logging on, creating routines and triggers needs SUPER or "
                        "log_bin_trust_function_creators=1 - the real DDL would need it too)")
            elif _code(exc) == 1227:
                hint = " (the admin account needs SET USER or SUPER to give the copy's objects their owner)"
            raise CopyError("cannot copy %s %s into the temporary schema: (%s) %s%s" % (
                label, name, _code(exc), _text(exc), hint)) from None

    def _run_definition(self, text):
        """Run an object definition (DEFINER = the temporary account) as the account, or as the admin where the
        account may not (a trigger or function with binary logging on)."""
        import pymysql

        try:
            with self.runner.cursor() as cur:
                cur.execute(text)
        except pymysql.err.MySQLError as exc:
            if _code(exc) not in PRIVILEGE_ERRORS:
                raise
            with self.conn.cursor() as cur:
                cur.execute("USE %s" % quote_ident(self.tmp))
                try:
                    cur.execute(text)
                finally:
                    cur.execute("USE %s" % quote_ident(self.db))

    # -- statements of the release -----------------------------------------------------------------------------
    def retarget(self, sql: str) -> str:
        return rewrite_schema(sql, self.db, self.tmp)

    def cursor(self):
        """A cursor of the temporary account's connection (its current database is the copy)."""
        return self.runner.cursor()

    def execute(self, sql: str, info: dict, target: dict, trial=None):
        """Run one statement (already retargeted) on the copy as the temporary account.

        `info` is its classification, `target` its ddl_lint target. A definition of a view, routine, trigger or
        event is given the account as DEFINER (the definer it names is kept in `overrides`); `trial`, when
        given, is called with a cursor to run the statement (the ALGORITHM trials) and its result returned.
        """
        kind, verb = info.get("kind"), target.get("verb")
        key = self.object_key(kind, target.get("name"))
        defines = kind in _DEFINITION_KINDS and verb in ("create", "alter")
        if defines:
            named = info.get("definer")
            insert = verb == "create" or kind == "event"  # ALTER VIEW without DEFINER keeps the view's definer
            if named or insert:
                self.overrides[key] = None if named in (None, "CURRENT_USER") else named
            sql = cls_mod.set_definer(sql, self.user, self.host, insert=insert)
            self._run_definition(sql)
            return None
        if verb == "drop" and kind in _DEFINITION_KINDS:
            self.overrides.pop(key, None)
            self._run_definition(sql)  # dropping runs no code; with binary logging on it needs SUPER for some
            return None
        with self.runner.cursor() as cur:
            if trial is not None:
                return trial(cur, sql)
            cur.execute(sql)
            while cur.nextset():
                pass
        return None

    @staticmethod
    def object_key(kind, name):
        """(snapshot kind, name) of a view, routine, trigger or event; None for anything else."""
        if not name:
            return None
        if kind in ("procedure", "function"):
            return ("routines", "%s %s" % (kind.upper(), name))
        plural = {"view": "views", "trigger": "triggers", "event": "events"}.get(kind)
        return (plural, name) if plural else None

    def real_definers(self, objects: dict) -> dict:
        """`objects` (a snapshot of the copy) with the definers the real schema has, or will have after the real
        run: the kept definer of each copied or redefined object; the admin's account for objects the account
        defined without naming a definer."""
        me = "%s@%s" % (self.user, self.host)
        out = dict(objects)
        for kind in ("views", "routines", "triggers", "events"):
            mapped = {}
            for name, spec in objects.get(kind, {}).items():
                spec = dict(spec)
                key = (kind, name)
                if key in self.overrides:
                    spec["definer"] = self.overrides[key] or self.admin_account
                elif spec.get("definer") == me:
                    spec["definer"] = self.admin_account
                mapped[name] = spec
            out[kind] = mapped
        return out
