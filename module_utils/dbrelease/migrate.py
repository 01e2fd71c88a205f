"""Database migrations: the built-in `sql` driver (versioned files + a history table with checksums) and the
`command` driver (the application's own tool, judged by its history table). Stdlib plus PyMySQL only.

sql driver
    Files `V<version>__<description>.sql` (version digits separated by `.` or `_`: `V1`, `V1.2`, `V2026_11_01`),
    applied in version order, each recorded in `dbrelease_schema_history` (version, description, script,
    checksum, installed_by, installed_on, execution_time_ms, success). An applied file whose checksum changed is
    refused, naming the file; a failed migration is recorded with success=0 and blocks every later run until it is
    repaired (`repair`: the failed entries are removed, after the operator fixed what the half-applied file left).

command driver
    Runs the tool (argv from the command string, no shell) in its directory with DB_HOST, DB_PORT, DB_USER,
    DB_PASSWORD, DB_NAME (and DB_SOCKET; with TLS DB_SSL_CA, DB_SSL_CERT, DB_SSL_KEY, DB_SSL_VERIFY) in its
    environment only. Whether anything was applied comes from the
    tool's history table (`knex_migrations`, `SequelizeMeta`, ...) compared before and after, else from a regex
    on its output.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import time

from ansible.module_utils.dbrelease.db import DbError, password_bytes, quote_ident, tls_environment
from ansible.module_utils.dbrelease.sqlsplit import SplitError, split_sql

SCRIPT_RE = re.compile(r"^V(\d+(?:[._]\d+)*)__(.+)\.sql$")

HISTORY_COLUMNS = """
  installed_rank    INT UNSIGNED  NOT NULL AUTO_INCREMENT,
  version           VARCHAR(50)   NOT NULL,
  description       VARCHAR(200)  NOT NULL,
  script            VARCHAR(255)  NOT NULL,
  checksum          CHAR(64)      NOT NULL,
  installed_by      VARCHAR(128)  NOT NULL,
  installed_on      DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  execution_time_ms INT UNSIGNED  NOT NULL DEFAULT 0,
  success           TINYINT(1)    NOT NULL,
  PRIMARY KEY (installed_rank),
  UNIQUE KEY uq_schema_history_version (version)
"""

# Columns that name a migration in the history tables of common tools, most specific first.
LABEL_COLUMNS = ("name", "migration_name", "migration", "script", "version", "description")


class MigrationError(DbError):
    """A refusal or failure; `details` carries what the caller records (applied so far, the failed file...)."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


# -- sql driver: pure helpers ----------------------------------------------------------------------------------
def parse_script_name(name):
    """`V1.2__add_col.sql` -> {"version": "1.2", "key": (1, 2), "description": "add col", "script": name}."""
    match = SCRIPT_RE.match(os.path.basename(name))
    if not match:
        return None
    version = match.group(1).replace("_", ".")
    return {"version": version, "key": tuple(int(x) for x in version.split(".")),
            "description": match.group(2).replace("_", " ").strip(), "script": os.path.basename(name)}


def checksum(content: str) -> str:
    """sha256 of the file's text with line endings normalised (a CRLF checkout is not an edit)."""
    return hashlib.sha256(content.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def collect_scripts(scripts: dict):
    """Versioned scripts from {file name: content}, sorted by version. Other file names are an error."""
    parsed, seen = [], {}
    for name, content in (scripts or {}).items():
        info = parse_script_name(name)
        if info is None:
            raise MigrationError("%s is not a versioned migration: name it V<version>__<description>.sql, "
                                 "for example V3__add_orders_currency.sql" % name)
        if info["key"] in seen:
            raise MigrationError("%s and %s have the same version %s: give each file its own version"
                                 % (seen[info["key"]], name, info["version"]))
        seen[info["key"]] = name
        info["content"] = content
        info["checksum"] = checksum(content)
        parsed.append(info)
    return sorted(parsed, key=lambda s: s["key"])


def read_sql_dir(path):
    """{file name: content} of the versioned scripts in a directory (other files ignored)."""
    if not os.path.isdir(path):
        raise MigrationError("migration directory %s does not exist (set migrate_sql_dir)" % path)
    result = {}
    for name in sorted(os.listdir(path)):
        if SCRIPT_RE.match(name) and os.path.isfile(os.path.join(path, name)):
            with open(os.path.join(path, name), encoding="utf-8") as handle:
                result[name] = handle.read()
    return result


def plan(scripts, history, out_of_order=False):
    """What to apply, given sorted scripts and history rows; raises MigrationError on an unsafe state.

    history: list of dicts (version, script, checksum, success, installed_on). Returns
    {"pending": [scripts], "applied": [versions], "missing": [history rows whose file is gone]}.
    """
    by_version = {s["version"]: s for s in scripts}
    failed = [h for h in history if not h["success"]]
    if failed:
        h = failed[0]
        raise MigrationError(
            "migration %s (%s) failed on %s and is recorded with success=0 in the history: the database may hold "
            "part of it. Fix the database and the file, then rerun with migrate_sql_repair: true to remove the "
            "failed entry (or delete it: DELETE FROM <history> WHERE version = '%s')."
            % (h["version"], h["script"], h["installed_on"], h["version"]),
            failed_migrations=[h["script"] for h in failed])
    edited = []
    for h in history:
        script = by_version.get(h["version"])
        if script and script["checksum"] != h["checksum"]:
            edited.append("%s (applied %s, checksum %s..., file now %s...)"
                          % (script["script"], h["installed_on"], h["checksum"][:12], script["checksum"][:12]))
    if edited:
        raise MigrationError(
            "applied migration file(s) changed since they ran: %s. An applied migration must not change: revert "
            "the edit and put the change in a new V<next>__*.sql file." % "; ".join(edited), edited=edited)
    applied_versions = {h["version"] for h in history}
    pending = [s for s in scripts if s["version"] not in applied_versions]
    applied_keys = [tuple(int(x) for x in v.split(".")) for v in applied_versions]
    newest = max(applied_keys) if applied_keys else None
    late = [s["script"] for s in pending if newest is not None and s["key"] < newest]
    if late and not out_of_order:
        raise MigrationError(
            "pending migration(s) %s are older than the newest applied version %s: refusing to apply out of order "
            "(rename them after %s, or set migrate_sql_out_of_order: true)"
            % (", ".join(late), ".".join(str(x) for x in newest), ".".join(str(x) for x in newest)), late=late)
    missing = [h for h in history if h["version"] not in by_version]
    return {"pending": pending, "applied": sorted(applied_versions, key=lambda v: tuple(map(int, v.split(".")))),
            "missing": missing}


# -- sql driver: the database side ----------------------------------------------------------------------------
class SqlMigrator:
    def __init__(self, conn, database, table="dbrelease_schema_history", installed_by="dbrelease"):
        self.conn = conn
        self.database = database
        self.table = table
        self.qtable = "%s.%s" % (quote_ident(database), quote_ident(table))
        self.installed_by = installed_by

    def history_exists(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (self.database, self.table))
            return cur.fetchone()[0] > 0

    def ensure_history(self):
        with self.conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS %s (%s) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                        % (self.qtable, HISTORY_COLUMNS))

    def history(self):
        if not self.history_exists():
            return []
        with self.conn.cursor() as cur:
            cur.execute("SELECT version, description, script, checksum, installed_by, installed_on, "
                        "execution_time_ms, success FROM %s ORDER BY installed_rank" % self.qtable)
            cols = ("version", "description", "script", "checksum", "installed_by", "installed_on",
                    "execution_time_ms", "success")
            rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        for row in rows:
            row["installed_on"] = str(row["installed_on"])
            row["success"] = bool(row["success"])
        return rows

    def repair(self):
        """Remove failed entries; returns their scripts."""
        failed = [h["script"] for h in self.history() if not h["success"]]
        if failed:
            with self.conn.cursor() as cur:
                cur.execute("DELETE FROM %s WHERE success = 0" % self.qtable)
        return failed

    def _record(self, script, elapsed_ms, success):
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO %s (version, description, script, checksum, installed_by, execution_time_ms, "
                        "success) VALUES (%%s, %%s, %%s, %%s, %%s, %%s, %%s)" % self.qtable,
                        (script["version"], script["description"][:200], script["script"], script["checksum"],
                         self.installed_by[:128], int(elapsed_ms), 1 if success else 0))

    def apply(self, pending, log):
        """Apply the pending scripts in order; returns [{script, version, statements, execution_time_ms}]."""
        split = {}
        for script in pending:  # split them all first: an unterminated quote stops the run before anything ran
            try:
                split[script["script"]] = split_sql(script["content"], file=script["script"])
            except SplitError as exc:
                raise MigrationError(str(exc), applied=[]) from None
        self.ensure_history()
        done = []
        for script in pending:
            statements = split[script["script"]]
            started = time.monotonic()
            for stmt in statements:
                try:
                    with self.conn.cursor() as cur:
                        cur.execute(stmt["sql"])
                        while cur.nextset():
                            pass
                except Exception as exc:  # PyMySQL error: record the failure, then stop
                    elapsed = (time.monotonic() - started) * 1000
                    self._record(script, elapsed, success=False)
                    took_effect = stmt["index"] - 1
                    log.append("FAILED %s statement #%d (line %d) after %.0f ms: %s"
                               % (script["script"], stmt["index"], stmt["line"], elapsed, exc))
                    raise MigrationError(
                        "migration %s failed at statement #%d (line %d): %s. %s It is recorded with success=0: fix "
                        "the database and the file, then rerun with migrate_sql_repair: true."
                        % (script["script"], stmt["index"], stmt["line"], exc,
                           ("The %d statement(s) before it in this file took effect (MySQL DDL is not "
                            "transactional)." % took_effect) if took_effect else "No earlier statement of this file "
                           "ran."),
                        applied=[d["script"] for d in done], failed_migration=script["script"],
                        statement=stmt["index"], line=stmt["line"]) from None
            elapsed = (time.monotonic() - started) * 1000
            self._record(script, elapsed, success=True)
            entry = {"script": script["script"], "version": script["version"], "statements": len(statements),
                     "execution_time_ms": int(elapsed)}
            done.append(entry)
            log.append("applied %s (%d statements) in %.0f ms" % (script["script"], len(statements), elapsed))
        return done


# -- command driver ---------------------------------------------------------------------------------------------
def split_table(name, database):
    """`schema.table` or `table` (in `database`) -> (schema, table)."""
    if "." in name:
        schema, table = name.split(".", 1)
        return schema.strip("`"), table.strip("`")
    return database, name.strip("`")


def history_snapshot(conn, database, table):
    """(exists, [(label, row tuple)]) of a migration tool's history table, in table order."""
    schema, table = split_table(table, database)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (schema, table))
        if cur.fetchone()[0] == 0:
            return False, []
        cur.execute("SELECT * FROM %s.%s" % (quote_ident(schema), quote_ident(table)))
        columns = [d[0].lower() for d in cur.description]
        rows = [tuple(str(v) for v in row) for row in cur.fetchall()]
    label_at = next((columns.index(c) for c in LABEL_COLUMNS if c in columns), None)
    return True, [(row[label_at] if label_at is not None else " ".join(row), row) for row in rows]


# History tables of common migration tools, looked for when the history table is `auto`.
KNOWN_HISTORY_TABLES = ("knex_migrations", "SequelizeMeta", "_prisma_migrations", "flyway_schema_history",
                        "schema_migrations", "goose_db_version", "typeorm_migrations")


def snapshots(conn, database, tables):
    """{table: [(label, row)]} for those of `tables` that exist."""
    found = {}
    for table in tables:
        exists, rows = history_snapshot(conn, database, table)
        if exists:
            found[table] = rows
    return found


def new_history_entries(before, after):
    """Labels of the rows in `after` that were not in `before` (whole-row comparison)."""
    seen = {row for _, row in before}
    return [label for label, row in after if row not in seen]


def pending_files(migrations_dir, history):
    """Migration files in `migrations_dir` that the history does not list (by file name or by stem)."""
    if not migrations_dir or not os.path.isdir(migrations_dir):
        return None
    labels = {label for label, _ in history}
    names = sorted(n for n in os.listdir(migrations_dir)
                   if not n.startswith(".") and os.path.isfile(os.path.join(migrations_dir, n)))
    return [n for n in names if n not in labels and os.path.splitext(n)[0] not in labels]


TLS_VARIABLES = ("DB_SSL_CA", "DB_SSL_CERT", "DB_SSL_KEY", "DB_SSL_VERIFY")


def migration_env(params, database, extra=None, base=None):
    """The child's environment: the module's own plus DB_* (the password only here, never in argv), and with TLS
    DB_SSL_CA, DB_SSL_CERT, DB_SSL_KEY (paths) and DB_SSL_VERIFY (`true`/`false`)."""
    env = dict(os.environ if base is None else base)
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    password_bytes(params)  # raises DbError, naming the reason, for a password no environment can hold
    for name in TLS_VARIABLES:
        env.pop(name, None)
    env.update(tls_environment(params))
    env.update({
        "DB_HOST": params.get("login_host") or "localhost",
        "DB_PORT": str(params.get("login_port") or 3306),
        "DB_USER": params.get("login_user") or "",
        "DB_PASSWORD": params.get("login_password") or "",
        "DB_NAME": database,
    })
    if params.get("login_unix_socket"):
        env["DB_SOCKET"] = params["login_unix_socket"]
    else:
        env.pop("DB_SOCKET", None)
    return env


def run_tool(command, chdir, env, timeout):
    """Run `command` (a string split like a shell would, but without a shell). Returns rc, stdout, stderr, ms."""
    argv = shlex.split(command)
    if not argv:
        raise MigrationError("the migration command is empty")
    if chdir and not os.path.isdir(chdir):
        raise MigrationError("the migration directory %s does not exist (release_migration_chdir)" % chdir)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=chdir or None, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise MigrationError("the migration command %r was not found on PATH (%s) of this host"
                             % (argv[0], env.get("PATH", ""))) from None
    except subprocess.TimeoutExpired as exc:
        raise MigrationError("the migration command did not finish within %d s" % timeout,
                             stdout=(exc.stdout or b"").decode("utf-8", "replace"),
                             stderr=(exc.stderr or b"").decode("utf-8", "replace")) from None
    elapsed = int((time.monotonic() - started) * 1000)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
            elapsed)


_FRAME_RE = re.compile(r"^\s+(at\s|File\s\"|\.\.\.\s*\d+ more)")


def error_excerpt(text, lines=6, width=300):
    """The last lines of a tool's error output that are not stack frames (Node, Python, Java), each shortened."""
    kept = [line.rstrip() for line in (text or "").splitlines() if line.strip() and not _FRAME_RE.match(line)]
    return " | ".join(line if len(line) <= width else line[:width - 3] + "..." for line in kept[-lines:])
