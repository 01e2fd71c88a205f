"""The release lock: one release at a time per database, held across tasks, phases and connections.

A row in a lock table (default `dbrelease`.`dbrelease_lock`, one row per locked database) rather than
`GET_LOCK()`, which dies with the connection of the task that took it. Stdlib plus PyMySQL only (runs on targets).

Every time comparison uses the server's clock (`UTC_TIMESTAMP(3)`), so controllers with skewed clocks agree on
whether a lock has expired. Acquisition is a transaction: `SELECT ... FOR UPDATE` on the row, then an `INSERT`
(free), an `UPDATE ... WHERE token = <old token>` (expired, or forced), or a refusal naming the holder. Two
acquisitions racing on a missing row meet on the primary key: one commits, the other gets a duplicate key or a
deadlock error, retries, and then sees the winner's row.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid

from ansible.module_utils.dbrelease.db import DbError, quote_ident

LOCK_COLUMNS = """
  lock_name    VARCHAR(191)  NOT NULL,
  token        CHAR(32)      NOT NULL,
  holder       TEXT          NOT NULL,
  acquired_at  DATETIME(3)   NOT NULL,
  heartbeat_at DATETIME(3)   NOT NULL,
  expires_at   DATETIME(3)   NOT NULL,
  takeover_of  TEXT          NULL,
  PRIMARY KEY (lock_name)
"""

# MySQL/MariaDB error codes retried during acquisition: duplicate key, deadlock, lock wait timeout.
_RETRY_CODES = (1062, 1213, 1205)


class LockHeld(DbError):
    """The lock is held by another live release; `holder`, `acquired_at`, `expires_at` describe it."""

    def __init__(self, message, row):
        super().__init__(message)
        self.row = row


def iso(value) -> str | None:
    """ISO 8601 (UTC) text for a naive UTC datetime from the server."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (py<3.11 targets)
    return str(value)


def describe_holder(holder) -> str:
    """`user@controller (pid N, release V, AWX job J)` from a holder dict (or its JSON text)."""
    if isinstance(holder, str):
        try:
            holder = json.loads(holder)
        except ValueError:
            return holder
    holder = holder or {}
    who = "%s@%s" % (holder.get("user") or "?", holder.get("controller") or "?")
    details = []
    if holder.get("pid"):
        details.append("pid %s" % holder["pid"])
    if holder.get("release"):
        details.append("release %s" % holder["release"])
    if holder.get("awx_job_id"):
        details.append("AWX job %s" % holder["awx_job_id"])
    return "%s (%s)" % (who, ", ".join(details)) if details else who


def age_text(seconds) -> str:
    seconds = int(max(0, seconds or 0))
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    return "%.1f h" % (seconds / 3600.0)


def held_message(name, row) -> str:
    return (
        "The release lock of database '%s' is held by %s since %s (%s ago, last heartbeat %s); it expires at %s "
        "unless that release refreshes it. Another release is running: wait for it to finish. If that run is "
        "dead and you are sure, wait for the expiry or set lock_force: true (the takeover is recorded)"
        % (name, describe_holder(row["holder"]), row["acquired_at"], age_text(row["age_seconds"]),
           row["heartbeat_at"], row["expires_at"])
    )


class ReleaseLock:
    """Acquire, refresh, release or read the lock row `name` in `schema`.`table` over `conn` (PyMySQL)."""

    def __init__(self, conn, name, schema="dbrelease", table="dbrelease_lock"):
        if not name:
            raise DbError("the release lock needs a name (the database to lock)")
        self.conn = conn
        self.name = name
        self.schema = schema
        self.table = table
        self.qtable = "%s.%s" % (quote_ident(schema), quote_ident(table))

    # -- helpers ---------------------------------------------------------------------------------------------
    def table_exists(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (self.schema, self.table))
            return cur.fetchone()[0] > 0

    def ensure_table(self):
        with self.conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS %s" % quote_ident(self.schema))
            cur.execute("CREATE TABLE IF NOT EXISTS %s (%s) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                        % (self.qtable, LOCK_COLUMNS))

    def _select(self, cur, for_update=False):
        cur.execute(
            "SELECT token, holder, acquired_at, heartbeat_at, expires_at, takeover_of, "
            "expires_at <= UTC_TIMESTAMP(3) AS expired, TIMESTAMPDIFF(SECOND, acquired_at, UTC_TIMESTAMP(3)) "
            "FROM %s WHERE lock_name = %%s%s" % (self.qtable, " FOR UPDATE" if for_update else ""),
            (self.name,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        try:
            holder = json.loads(row[1])
        except ValueError:
            holder = {"text": row[1]}
        return {
            "token": row[0], "holder": holder, "holder_text": describe_holder(holder),
            "acquired_at": iso(row[2]), "heartbeat_at": iso(row[3]), "expires_at": iso(row[4]),
            "takeover_of": json.loads(row[5]) if row[5] else None, "expired": bool(row[6]), "age_seconds": row[7],
        }

    def read(self):
        """The current lock row as a dict, or None (also when the table does not exist)."""
        if not self.table_exists():
            return None
        with self.conn.cursor() as cur:
            return self._select(cur)

    # -- operations ------------------------------------------------------------------------------------------
    def acquire(self, holder, ttl_seconds, token=None, force=False, check_mode=False, retries=8):
        """Take the lock. Returns a dict: acquired/would_acquire, token, row, takeover (previous row or None).

        `token`: a token this run already holds (re-entrant: refreshes instead of failing).
        Raises LockHeld when another live release holds it (or check mode finds it held).
        """
        if check_mode:
            row = self.read()
            result = {"acquired": False, "token": None, "row": row, "takeover": None}
            if row is None or (token and row["token"] == token):
                result["would_acquire"] = row is None
                return result
            if row["expired"] or force:
                result.update(would_acquire=True, takeover=row)
                return result
            raise LockHeld(held_message(self.name, row), row)

        self.ensure_table()
        new_token = uuid.uuid4().hex
        holder_json = json.dumps(holder or {}, sort_keys=True, default=str)
        last_error = None
        for attempt in range(retries):
            try:
                self.conn.begin()
                with self.conn.cursor() as cur:
                    row = self._select(cur, for_update=True)
                    if row is None:
                        cur.execute(
                            "INSERT INTO %s (lock_name, token, holder, acquired_at, heartbeat_at, expires_at) "
                            "VALUES (%%s, %%s, %%s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), "
                            "UTC_TIMESTAMP(3) + INTERVAL %%s SECOND)" % self.qtable,
                            (self.name, new_token, holder_json, int(ttl_seconds)),
                        )
                        takeover = None
                    elif token and row["token"] == token:
                        self.conn.rollback()
                        refreshed = self.refresh(token, ttl_seconds)
                        return {"acquired": True, "reentrant": True, "token": token, "row": refreshed,
                                "takeover": None}
                    elif row["expired"] or force:
                        cur.execute(
                            "UPDATE %s SET token = %%s, holder = %%s, acquired_at = UTC_TIMESTAMP(3), "
                            "heartbeat_at = UTC_TIMESTAMP(3), expires_at = UTC_TIMESTAMP(3) + INTERVAL %%s SECOND, "
                            "takeover_of = %%s WHERE lock_name = %%s AND token = %%s" % self.qtable,
                            (new_token, holder_json, int(ttl_seconds),
                             json.dumps({k: row[k] for k in ("holder", "acquired_at", "heartbeat_at", "expires_at")}
                                        | {"forced": bool(force and not row["expired"])}, sort_keys=True),
                             self.name, row["token"]),
                        )
                        if cur.rowcount != 1:  # cannot happen under FOR UPDATE; retry rather than guess
                            raise DbError("lock row changed during takeover")
                        takeover = row
                    else:
                        self.conn.rollback()
                        raise LockHeld(held_message(self.name, row), row)
                    current = self._select(cur)
                self.conn.commit()
                return {"acquired": True, "reentrant": False, "token": new_token, "row": current,
                        "takeover": takeover}
            except LockHeld:
                raise
            except Exception as exc:  # PyMySQL errors: retry the races, re-raise anything else
                self.conn.rollback()
                code = exc.args[0] if getattr(exc, "args", None) else None
                if code not in _RETRY_CODES and "lock row changed" not in str(exc):
                    raise
                last_error = exc
                time.sleep(0.05 * (attempt + 1))
        raise DbError("could not acquire the release lock of '%s' after %d attempts: %s"
                      % (self.name, retries, last_error))

    def refresh(self, token, ttl_seconds, check_mode=False):
        """Push the expiry forward (heartbeat). Raises DbError if this token no longer holds the lock."""
        with self.conn.cursor() as cur:
            if not check_mode:
                cur.execute(
                    "UPDATE %s SET heartbeat_at = UTC_TIMESTAMP(3), "
                    "expires_at = GREATEST(expires_at, UTC_TIMESTAMP(3) + INTERVAL %%s SECOND) "
                    "WHERE lock_name = %%s AND token = %%s" % self.qtable,
                    (int(ttl_seconds), self.name, token),
                )
            row = self._select(cur) if self.table_exists() else None
        if row is None or row["token"] != token:
            if row is None:
                raise DbError("this release no longer holds the release lock of '%s': it was released or the "
                              "lock table was emptied. Stop and check that no other release is running."
                              % self.name)
            raise DbError("this release lost the release lock of '%s': it expired and %s took it over at %s. "
                          "Stop: two releases must not run at once. Raise lock_ttl_minutes if phases take longer."
                          % (self.name, row["holder_text"], row["acquired_at"]))
        return row

    def release(self, token, check_mode=False):
        """Delete the row if `token` holds it. Returns {released, row}; raises DbError if another holder has it."""
        if not self.table_exists():
            return {"released": False, "row": None}
        with self.conn.cursor() as cur:
            row = self._select(cur)
            if row is None:
                return {"released": False, "row": None}
            if row["token"] != token:
                raise DbError("refusing to release the release lock of '%s': it is held by %s since %s, not by "
                              "this release (token %s). Only the holder releases it."
                              % (self.name, row["holder_text"], row["acquired_at"], (token or "none")[:8]))
            if not check_mode:
                cur.execute("DELETE FROM %s WHERE lock_name = %%s AND token = %%s" % self.qtable,
                            (self.name, token))
                if cur.rowcount != 1:
                    raise DbError("the release lock of '%s' changed while releasing it" % self.name)
        return {"released": True, "row": row}
