"""Leftovers of runs that were killed (SIGKILL, a crash, a lost host) before they could clean up after themselves.

What a run creates while it works, how it is marked as its own, and how the next run knows the owner is gone:

- client option files (the password in clear), `<tmp>/dbrelease-opt-<host>.b<boot>.p<pid>-*/client.cnf`: the
  process that wrote one holds a `flock` on its directory; the owner is gone when the lock is free;
- `.DB_*.partial` dumps in the backup directory: the writer holds a `flock` on the file; gone when the lock is
  free and the file was not written to for a minute;
- temporary schemas `<db>__dbrelease_plan_<8 hex>` (the plan's structure copy) and
  `<db>__dbrelease_restore_<8 hex>` (restore-test copies): the connection that created one holds
  `GET_LOCK('<schema name>')`; gone when the named lock is free (the server drops it with the connection).

Nothing is removed while its owner lives, whoever started it, so a sweep may run at any time, alongside other
releases. Only those throwaway kinds are ever dropped: their content exists elsewhere (the source schema, the
backup file). Stdlib plus PyMySQL only (runs on target hosts).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time

from ansible.module_utils.dbrelease import backup_files, owner
from ansible.module_utils.dbrelease.db import OPTION_DIR_PREFIX, DbError, quote_ident

# The throwaway schemas a run creates, by the middle part of their name, and what they hold.
TEMP_SCHEMA_KINDS = {
    "plan": "structure copy made for the schema plan",
    "restore": "restore-test copy of a backup",
    "rollback": "a rollback's staging copy of a backup (never the kept <db>__before_rollback_<stamp>)",
}
TEMP_SCHEMA_RE = re.compile(r"__dbrelease_(?P<kind>%s)_[0-9a-f]{8}$" % "|".join(TEMP_SCHEMA_KINDS))
# Option-file directories written before they were named after their owner (`tempfile.mkdtemp("dbrelease-")`).
_UNMARKED_OPTION_DIR_RE = re.compile(r"^dbrelease-[a-z0-9_]{8}$")
# A new directory is locked right after mkdtemp returns; younger ones are left alone in case that moment is now.
OPTION_DIR_MIN_AGE_S = 10
UNMARKED_OPTION_DIR_MIN_AGE_S = 600


# -- temporary schemas --------------------------------------------------------------------------------------------
def claim_schema(conn, name):
    """Take the named lock that marks temporary schema `name` as this connection's, before creating it.

    Held until `release_schema_claim()` or until the connection ends (a killed run's connection ends with it).
    Only names matching TEMP_SCHEMA_RE are ever swept. Raises DbError when another connection holds the name:
    the caller must then not create (nor drop) it.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
        got = cur.fetchone()[0]
    if got != 1:
        raise DbError("the temporary schema name %s is held by another connection; try again" % name)


def release_schema_claim(conn, name):
    """Give back the named lock of `name` (after it was dropped); never raises: a lost connection dropped it."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
            cur.fetchall()
    except Exception:  # noqa: BLE001 - the lock dies with the connection anyway
        pass


def sweep_schemas(conn, check_mode=False, problems=None) -> list[dict]:
    """Drop the temporary schemas whose creating connection is gone; returns what was (or would be) dropped.

    A schema this account may not drop is left, with the server's reason appended to `problems`."""
    import pymysql

    removed = []
    with conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                    ("%\\_\\_dbrelease\\_%",))
        names = sorted(row[0] for row in cur.fetchall() if TEMP_SCHEMA_RE.search(row[0]))
        for name in names:
            cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
            if cur.fetchone()[0] != 1:
                continue  # its run is alive
            try:
                cur.execute("SELECT COUNT(*), MIN(CREATE_TIME) FROM information_schema.TABLES WHERE "
                            "TABLE_SCHEMA = %s", (name,))
                tables, created = cur.fetchone()
                if not check_mode:
                    cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(name))
            except pymysql.err.MySQLError as exc:
                if problems is not None:
                    problems.append("could not drop the abandoned temporary schema %s: %s" % (name, exc.args[-1]))
                continue
            finally:
                cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
                cur.fetchall()
            kind = TEMP_SCHEMA_RE.search(name).group("kind")
            removed.append({"kind": "schema", "name": name, "what": TEMP_SCHEMA_KINDS[kind],
                            "detail": "%d table(s)%s; the connection that created it is gone" % (
                                int(tables or 0), ", created %s UTC" % created if created else "")})
    return removed


# The temporary account the plan runs the release's DDL as (plancopy.PlanCopy): `dbrelease_plan_<8 hex>`, held like a
# temporary schema by `GET_LOCK('<account name>')` on the connection that created it.
PLAN_ACCOUNT_RE = re.compile(r"^dbrelease_plan_[0-9a-f]{8}$")


def sweep_plan_accounts(conn, check_mode=False, problems=None) -> list[dict]:
    """Drop the plan's temporary accounts whose creating connection is gone; returns what was (or would be)
    dropped. An account that cannot read mysql.user (or may not drop users) is told so in `problems`."""
    import pymysql

    removed = []
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", ("dbrelease\\_plan\\_%",))
            accounts = sorted((u, h) for u, h in cur.fetchall() if PLAN_ACCOUNT_RE.match(u))
        except pymysql.err.MySQLError as exc:
            if problems is not None:
                problems.append("could not look for the plan's abandoned temporary accounts (dbrelease_plan_*) in "
                                "mysql.user: %s" % exc.args[-1])
            return removed
        for user, host in accounts:
            cur.execute("SELECT GET_LOCK(%s, 0)", (user,))
            if cur.fetchone()[0] != 1:
                continue  # its run is alive
            try:
                if not check_mode:
                    cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            except pymysql.err.MySQLError as exc:
                if problems is not None:
                    problems.append("could not drop the abandoned temporary account %s@%s: %s" % (
                        user, host, exc.args[-1]))
                continue
            finally:
                cur.execute("SELECT RELEASE_LOCK(%s)", (user,))
                cur.fetchall()
            removed.append({"kind": "account", "name": "%s@%s" % (user, host),
                            "what": "temporary account the schema plan ran its DDL as",
                            "detail": "the connection that created it is gone"})
    return removed


# -- files ------------------------------------------------------------------------------------------------------------
def _own_dir(path):
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    return info


def sweep_option_dirs(base=None, check_mode=False, now=None) -> list[dict]:
    """Remove the private directories of client option files whose owner died; returns what was removed."""
    base = base or tempfile.gettempdir()
    now = now or time.time()
    removed = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(base, name)
        if name.startswith(OPTION_DIR_PREFIX):
            info = _own_dir(path)
            if info is None or now - info.st_mtime < OPTION_DIR_MIN_AGE_S or not owner.owner_gone(path):
                continue
            detail = "left by %s, which is gone" % owner.describe_tag(name)
        elif _UNMARKED_OPTION_DIR_RE.match(name) and os.path.isfile(os.path.join(path, "client.cnf")):
            info = _own_dir(path)
            if info is None or now - info.st_mtime < UNMARKED_OPTION_DIR_MIN_AGE_S:
                continue
            detail = "unmarked (written by an earlier version), %d min old" % ((now - info.st_mtime) // 60)
        else:
            continue
        if not check_mode:
            shutil.rmtree(path, ignore_errors=True)
            if os.path.lexists(path):
                continue
        removed.append({"kind": "option_file", "name": os.path.join(path, "client.cnf"),
                        "what": "client option file holding a password", "detail": detail})
    return removed


def sweep_partials(backup_dir, database, check_mode=False) -> list[dict]:
    """The `.partial` dumps of `database` whose writer died (see `backup_files.remove_stale_partials`)."""
    if not backup_dir or not database:
        return []
    found = backup_files.remove_stale_partials(backup_dir, database, check_mode=check_mode)
    return [{"kind": "partial_dump", "name": item["path"], "what": "unfinished dump",
             "detail": "its writer is gone; not written to for %d s" % item["idle_s"]} for item in found]


def ansible_tmp_leftovers(home=None, older_than_s=3600, now=None) -> list[str]:
    """Ansible's own `~/.ansible/tmp/ansible-tmp-*` directories older than an hour (reported, never removed: they
    belong to Ansible, and a directory's name does not say whether its controller still runs)."""
    base = os.path.join(home or os.path.expanduser("~"), ".ansible", "tmp")
    now = now or time.time()
    found = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return found
    for name in names:
        path = os.path.join(base, name)
        info = _own_dir(path) if name.startswith("ansible-tmp-") else None
        if info is not None and now - info.st_mtime > older_than_s:
            found.append(path)
    return found


def describe(item: dict) -> str:
    """`<what> <name> (<detail>)`, one line of the clean-up's message."""
    return "%s %s (%s)" % (item["what"], item["name"], item["detail"])
