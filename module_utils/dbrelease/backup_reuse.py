"""Whether a rerun of a release may reuse the backup it took earlier: only while the database still matches it.

Stdlib plus PyMySQL only (it runs on target hosts). The evidence is the binary log: every transaction written to
the database since the backup's position (`SHOW BINLOG EVENTS`), leaving out the ranges where this release itself
wrote (its schema and migrate phases, from the release record). `verdict()` is pure and unit-tested; `evidence()`
reads the server.
"""

from __future__ import annotations

import datetime

from ansible.module_utils.dbrelease import binlog
from ansible.module_utils.dbrelease.clock import utc_now

POLICIES = ("new", "refuse", "reuse")


def segments(start: dict, own_writes) -> tuple:
    """([(from, to or None)], open_end): the ranges after the backup that are not this release's own writes.

    `own_writes`: [{"from": position, "to": position or None}], in order; a range without `to` (the run that wrote
    it ended without recording where) leaves everything after its start unattributable: `open_end` is True."""
    out, cursor = [], start
    for own in own_writes or ():
        begin = binlog.normalise_position(own.get("from"))
        if not begin:
            continue
        if binlog.position_key(begin) > binlog.position_key(cursor):
            out.append((cursor, begin))
        end = binlog.normalise_position(own.get("to"))
        if not end:
            return out, True
        if binlog.position_key(end) > binlog.position_key(cursor):
            cursor = end
    out.append((cursor, None))
    return out, False


def evidence(conn, database: str, position, own_writes, max_seconds: float = 60.0) -> dict:
    """What the binary log says about `database` since `position` (the backup's): `{"state": "unchanged" |
    "changed" | "unknown", "why": text, "writes": tally}`."""
    start = binlog.normalise_position(position)
    if not start:
        return {"state": "unknown", "why": "the backup recorded no binary log position (the server wrote no binary "
                                           "log when it was taken)"}
    with conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.log_bin")
        if str(cur.fetchone()[0]).upper() not in ("1", "ON"):
            return {"state": "unknown", "why": "the server writes no binary log now"}
    ranges, open_end = segments(start, own_writes)
    total = {"transactions": 0, "row_events": 0, "statement_events": 0, "bytes": 0, "complete": True,
             "row_events_by_table": {}}
    try:
        for begin, end in ranges:
            found = binlog.writes_since(conn, database, begin, end, max_seconds=max_seconds)
            for key in ("transactions", "row_events", "statement_events", "bytes"):
                total[key] += found[key]
            total["complete"] = total["complete"] and found["complete"]
            for table, n in found["row_events_by_table"].items():
                total["row_events_by_table"][table] = total["row_events_by_table"].get(table, 0) + n
    except binlog.BinlogError as exc:
        return {"state": "unknown", "why": str(exc)}
    except Exception as exc:  # noqa: BLE001 - SHOW BINLOG EVENTS needs BINLOG MONITOR / REPLICATION SLAVE
        args = getattr(exc, "args", ())
        return {"state": "unknown", "why": "the binary log cannot be read (%s)" % (
            "(%s) %s" % (args[0], args[1]) if len(args) > 1 else exc)}
    if total["transactions"]:
        return {"state": "changed", "writes": total,
                "why": "%s since the backup's position %s, besides this release's own writes" % (
                    binlog.writes_summary(total), binlog.describe(start))}
    if open_end:
        return {"state": "unknown", "writes": total,
                "why": "nothing was written to it between the backup and this release's first change, but the run "
                       "that made the change recorded no end, so what was written after it cannot be told apart "
                       "from the release's own writes"}
    return {"state": "unchanged", "writes": total,
            "why": "nothing but this release wrote to the database since the backup's position %s"
                   % binlog.describe(start)}


def verdict(found: dict, policy: str, age_hours, max_age_hours: float) -> dict:
    """`{"action": "reuse" | "new" | "refuse", "msg": ..., "caveat": ...}` for a valid backup, given the evidence.

    unchanged: reuse. changed: the policy (new backup, refuse, or reuse knowingly). unknown: reuse when the backup is
    at most `max_age_hours` old (with a caveat), otherwise as changed."""
    if policy not in POLICIES:
        raise ValueError("unknown reuse policy %r, expected one of %s" % (policy, ", ".join(POLICIES)))
    age = "%.1f h old" % float(age_hours) if age_hours is not None else "of unknown age"
    if found["state"] == "unchanged":
        return {"action": "reuse", "msg": "the backup still matches the database: %s" % found["why"]}
    if found["state"] == "unknown" and age_hours is not None and float(age_hours) <= float(max_age_hours):
        return {"action": "reuse", "caveat": "whether the database changed since the backup could not be checked "
                                             "(%s); it is reused because it is %s (backup_reuse_max_age_hours: %s)"
                                             % (found["why"], age, max_age_hours),
                "msg": "reusing the backup (%s): it could not be checked against the database" % age}
    why = found["why"] if found["state"] == "changed" else (
        "whether it changed cannot be checked (%s) and the backup is %s, more than backup_reuse_max_age_hours (%s)"
        % (found["why"], age, max_age_hours))
    if policy == "new":
        return {"action": "new", "msg": "a new backup is taken: the database no longer matches the release's backup "
                                        "(%s)" % why}
    if policy == "reuse":
        return {"action": "reuse", "caveat": "the backup no longer matches the database (%s); reused as "
                                             "backup_reuse_changed says: a restore rollback loses those writes, pitr "
                                             "and schema modes keep them" % why,
                "msg": "reusing a backup that no longer matches the database (backup_reuse_changed: reuse)"}
    return {"action": "refuse",
            "msg": "refusing to reuse the release's backup: the database no longer matches it (%s), and this release "
                   "has already changed the database, so a new backup would not be the state before the release. "
                   "Set backup_reuse_changed: reuse to keep the backup (a restore rollback then loses those writes; "
                   "release_rollback_mode pitr or schema keeps them), or backup_reuse_changed: new to take a new "
                   "one (a rollback then returns to the database as it is now, with the release's changes so far)"
                   % why}


def stamp_age_hours(stamp: str, now: datetime.datetime | None = None):
    """Hours since a backup's UTC stamp (`20261128T061814Z`), None when it is not one."""
    try:
        taken = datetime.datetime.strptime(stamp or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    now = now or utc_now()
    return round((now - taken).total_seconds() / 3600.0, 2)
