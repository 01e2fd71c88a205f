"""What a database holds, read as root, for tests that must prove a database is exactly what it was."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
from pathlib import Path

_AUTO_INC_RE = re.compile(r" AUTO_INCREMENT=\d+")


def run_sql(box, db, text: str) -> None:
    """Run a script (DELIMITER and all) with the mariadb client as root."""
    subprocess.run(["mariadb", "--no-defaults", "-uroot", "-S", box.socket, db], input=text.encode(), check=True)


def schema_state(box, db, rows=True) -> dict:
    """Every object's definition (read with `db` as the default database, so same-schema names are unqualified),
    the order of triggers, each event's state, and (rows=True) every row of every table."""
    conn = box.root(db)
    out = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                        "ORDER BY 1", (db,))
            for name, kind in cur.fetchall():
                if kind == "VIEW":
                    cur.execute("SHOW CREATE VIEW `%s`" % name.replace("`", "``"))
                    out["view " + name] = cur.fetchone()[1]
                    continue
                cur.execute("SHOW CREATE TABLE `%s`" % name.replace("`", "``"))
                out["table " + name] = _AUTO_INC_RE.sub("", cur.fetchone()[1])
                if rows:
                    cur.execute("SELECT * FROM `%s`" % name.replace("`", "``"))
                    out["rows " + name] = sorted(map(repr, cur.fetchall()))
            cur.execute("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
                        "ORDER BY 1, 2", (db,))
            for kind, name in cur.fetchall():
                cur.execute("SHOW CREATE %s `%s`" % (kind, name))
                row = cur.fetchone()
                out["%s %s" % (kind.lower(), name)] = (row[1], row[2])
            cur.execute("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_STATEMENT, DEFINER "
                        "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY 1", (db,))
            for name, table, order, statement, definer in cur.fetchall():
                out["trigger " + name] = (table, order, statement, definer)
            cur.execute("SELECT EVENT_NAME, STATUS, EVENT_DEFINITION, INTERVAL_VALUE, INTERVAL_FIELD, DEFINER "
                        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s ORDER BY 1", (db,))
            for name, *rest in cur.fetchall():
                out["event " + name] = tuple(rest)
            cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = %s", (db,))
            out["schema"] = cur.fetchone()
    finally:
        conn.close()
    return out


def without_event_states(state: dict) -> dict:
    return {k: (v[1:] if k.startswith("event ") else v) for k, v in state.items()}


def dump_db(box, db, path: Path, position=True) -> dict:
    """A backup in the backup phase's format (NAME.sql.gz + NAME.sql.gz.sha256), with the binlog position."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["mariadb-dump", "--no-defaults", "-uroot", "-S", box.socket, "--single-transaction", "--routines",
           "--events", "--triggers", "--hex-blob"]
    if position:
        cmd += ["--master-data=2", "--gtid"]
    data = subprocess.run(cmd + [db], check=True, capture_output=True).stdout
    path.write_bytes(gzip.compress(data))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (path.parent / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
    found = re.search(rb"MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)", data)
    out = {"path": str(path), "sha256": digest, "bytes": path.stat().st_size}
    if found:
        out["position"] = {"binlog_file": found.group(1).decode(), "binlog_pos": int(found.group(2))}
    return out


def schemas(box) -> set:
    return {row[0] for row in box.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")}
