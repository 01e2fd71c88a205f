"""Outbox and refresh-token numbers from the table the user has, not only the example app's.

Stdlib plus PyMySQL only: this runs on target hosts.

Reading happens in two steps:

1. **Discovery** (information_schema only, no table is read): the outbox's columns, their types and its indexes;
   which column plays which part (`status`, `created_at`, `delivered_at`, from common names or the user's
   overrides); the status values (from an ENUM definition, else `SELECT DISTINCT` where an index makes it cheap);
   a separate dead-letter table; the refresh-token table's columns.
2. **Planning** (pure, `plan_outbox`, `plan_tokens`): for every number the verdict uses, either the query that
   reads it - only where an index serves it or the table is small (at most `exact_count_limit` rows, estimated) -
   or the reason it is "not available here". Nothing scans a large table, so the watch window's polls stay cheap
   on a production outbox of millions of rows.

Then `gather()` runs the planned queries in one read-only snapshot. A query the server refuses or stops (the
statement time limit, a missing privilege) makes that number unavailable, with the server's reason; it never fails
the whole read. Only a lost connection does.

Three outbox shapes are understood:

- `status`: a status column; its values map to the verdict's notions (`pending`, `delivered`, `failed`, `dead`)
  through `DEFAULT_STATUS_MAP`, overridable per notion;
- `delivered_column`: no status, but a delivery timestamp; a row whose timestamp is NULL is pending;
- `delete_on_relay`: neither (Debezium-style): every row still in the table is pending, deliveries leave no row.
"""

from __future__ import annotations

import re

from ansible.module_utils.dbrelease.db import quote_ident

try:
    import pymysql

    _MYSQL_ERROR = pymysql.err.MySQLError
except ImportError:  # pragma: no cover - require_pymysql() reports it
    _MYSQL_ERROR = Exception

NOTIONS = ("pending", "delivered", "failed", "dead")
# `ignored`: values the user deliberately leaves out of every check (for example `cancelled`, `archived`).
MAP_KEYS = NOTIONS + ("ignored",)

# Status values, compared case-insensitively after trimming. In-flight states count as pending: an event stuck in
# `processing` is as stalled as one stuck in `pending`.
DEFAULT_STATUS_MAP = {
    "pending": ["pending", "new", "queued", "ready", "unsent", "created", "waiting", "scheduled", "retry",
                "retrying", "processing", "in_progress", "sending", "claimed", "locked"],
    "delivered": ["delivered", "sent", "processed", "published", "done", "completed", "complete", "success",
                  "succeeded", "relayed", "dispatched", "acked", "acknowledged"],
    "failed": ["failed", "error", "errored", "failure"],
    "dead": ["dead", "dlq", "parked", "dead_letter", "dead_lettered", "deadletter", "dead-letter", "quarantined",
             "poison", "discarded", "abandoned"],
    "ignored": [],
}

# Column roles and the names looked for, in order of preference.
COLUMN_CANDIDATES = {
    "status": ["status", "state", "delivery_status", "outbox_status", "event_status"],
    "created_at": ["created_at", "created", "created_on", "inserted_at", "occurred_at", "occurred_on", "enqueued_at",
                   "timestamp", "ts", "event_time"],
    "delivered_at": ["delivered_at", "sent_at", "processed_at", "published_at", "relayed_at", "dispatched_at",
                     "delivered_on", "sent_on", "processed_on", "published_on"],
}
TIME_TYPES = ("datetime", "timestamp")

# A separate dead-letter table: `{t}` is the outbox's name.
DEAD_LETTER_TABLE_CANDIDATES = ["{t}_dead_letters", "{t}_dead_letter", "{t}_dlq", "{t}_dead", "{t}_parked",
                                "dead_letters", "dead_letter", "dead_letter_queue", "dlq"]
DEAD_LETTER_TIME_CANDIDATES = ["failed_at", "dead_at", "dead_lettered_at", "moved_at", "parked_at", "created_at",
                               "created", "inserted_at", "occurred_at", "timestamp"]

TOKEN_COLUMN_CANDIDATES = {
    "revoked": ["revoked", "is_revoked"],
    "revoked_at": ["revoked_at", "revoked_on"],
}

# The runbook's post-deploy queries (release checklist, step 7), as written there.
RUNBOOK_OUTBOX_QUERY = "SELECT status, COUNT(*) FROM outbox GROUP BY status"
RUNBOOK_TOKENS_QUERY = "SELECT COUNT(*) FROM refresh_tokens WHERE revoked = 1"

# Query templates. `{t}` is the quoted `database`.`table`, `{status}`, `{created}`, `{delivered}`, `{revoked}`,
# `{revoked_at}` quoted column names; values are bound parameters. Kept as data so that scripts/bench_verify.py and
# the tests EXPLAIN exactly what the module runs.
OUTBOX_QUERIES = {
    # An equality range on an index that starts with the status column, one per status value.
    "count_status": "SELECT COUNT(*) FROM {t} WHERE {status} = %s",
    # (status, created_at): MIN of the second column for a fixed first one is read from the index edge.
    "oldest_status": "SELECT TIMESTAMPDIFF(MICROSECOND, MIN({created}), NOW(3)) / 1000000 FROM {t} "
                     "WHERE {status} = %s",
    # A range over the last minutes of the delivery timestamp.
    "delivered_recent": "SELECT COUNT(*) FROM {t} WHERE {delivered} >= NOW(3) - INTERVAL %s MINUTE",
    # (status, created_at) range.
    "status_recent": "SELECT COUNT(*) FROM {t} WHERE {status} = %s AND {created} >= NOW(3) - INTERVAL %s MINUTE",
    # Exact per-status counts; reads the whole table or index: used only while the table is small.
    "group_by_status": "SELECT {status}, COUNT(*) FROM {t} GROUP BY {status}",
    # Status values, from an index that starts with the status column (a loose index scan) or a small table.
    "distinct_status": "SELECT DISTINCT {status} FROM {t} LIMIT 1000",
    # delivered_column shape: NULL delivery timestamp = pending (a ref lookup on the timestamp's index).
    "count_undelivered": "SELECT COUNT(*) FROM {t} WHERE {delivered} IS NULL",
    "oldest_undelivered": "SELECT TIMESTAMPDIFF(MICROSECOND, MIN({created}), NOW(3)) / 1000000 FROM {t} "
                          "WHERE {delivered} IS NULL",
    # delete_on_relay shape: every row is pending. Counted up to a bound, so the cost is bounded too.
    "count_rows_bounded": "SELECT COUNT(*) FROM (SELECT 1 FROM {t} LIMIT %s) AS bounded",
    "oldest_row": "SELECT TIMESTAMPDIFF(MICROSECOND, MIN({created}), NOW(3)) / 1000000 FROM {t}",
    # Dead-letter table: rows that arrived in the window.
    "rows_recent": "SELECT COUNT(*) FROM {t} WHERE {created} >= NOW(3) - INTERVAL %s MINUTE",
}
TOKEN_QUERIES = {
    # The runbook's query, an equality range on an index that starts with `revoked`.
    "revoked": "SELECT COUNT(*) FROM {t} WHERE {revoked} = 1",
    "revoked_by_time": "SELECT COUNT(*) FROM {t} WHERE {revoked_at} IS NOT NULL",
    # (revoked, revoked_at) range.
    "revoked_recent": "SELECT COUNT(*) FROM {t} WHERE {revoked} = 1 AND {revoked_at} >= NOW() - INTERVAL %s MINUTE",
    "revoked_recent_by_time": "SELECT COUNT(*) FROM {t} WHERE {revoked_at} >= NOW() - INTERVAL %s MINUTE",
    # Exact total; reads the smallest index: used only while the table is small.
    "total": "SELECT COUNT(*) FROM {t}",
}

# Server errors that end the connection: these fail the read. Any other error makes one number unavailable.
_CONNECTION_ERRORS = {2003, 2006, 2013, 2055}
_TIMEOUT_ERRORS = {1969, 3024}
_ENUM_VALUE_RE = re.compile(r"'((?:[^']|'')*)'")


class OutboxSettingsError(ValueError):
    """A setting the user gave (columns, status map) that cannot be used; the message names it."""


# -- settings ------------------------------------------------------------------------------------------------------
def status_map(overrides=None) -> dict:
    """The notion -> values map: the defaults, with each notion the user names replaced by the user's list."""
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise OutboxSettingsError("verify_outbox_status_map must be a dict of %s -> list of status values, got %s"
                                  % (", ".join(MAP_KEYS), type(overrides).__name__))
    unknown = sorted(set(overrides) - set(MAP_KEYS))
    if unknown:
        raise OutboxSettingsError("verify_outbox_status_map has unknown key(s) %s; known: %s"
                                  % (", ".join(unknown), ", ".join(MAP_KEYS)))
    merged = {}
    for notion in MAP_KEYS:
        values = overrides.get(notion, DEFAULT_STATUS_MAP[notion])
        if values is None:
            values = []
        if isinstance(values, (str, int)):
            values = [values]
        if not isinstance(values, (list, tuple)):
            raise OutboxSettingsError("verify_outbox_status_map.%s must be a list of status values, got %r"
                                      % (notion, values))
        merged[notion] = [str(v) for v in values]
    seen = {}
    for notion in MAP_KEYS:
        for value in merged[notion]:
            key = _norm(value)
            if key in seen and seen[key] != notion:
                raise OutboxSettingsError("verify_outbox_status_map puts status %r under both %s and %s"
                                          % (value, seen[key], notion))
            seen[key] = notion
    return merged


def _norm(value) -> str:
    return str(value).strip().lower()


def notion_of(value, mapping) -> str | None:
    """The notion (or `ignored`) a status value maps to, else None."""
    key = _norm(value)
    for notion in MAP_KEYS:
        if key in (_norm(v) for v in mapping[notion]):
            return notion
    return None


def parse_enum(column_type: str) -> list[str] | None:
    """The values of an `enum('a','b')` column type, else None."""
    text = (column_type or "").strip()
    if not text.lower().startswith("enum("):
        return None
    return [v.replace("''", "'") for v in _ENUM_VALUE_RE.findall(text[5:-1])]


def resolve_columns(columns: dict, candidates: dict, overrides=None, setting="verify_outbox_columns"):
    """({role: column or None}, {role: reason when None}, [problems with the user's settings]).

    `columns` maps the table's column names to {"data_type": ...}. An override naming a column the table does not
    have is a problem (reported) and leaves the role empty; an override of "" or None says the table has none.
    """
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise OutboxSettingsError("%s must be a dict of %s -> column name" % (setting, ", ".join(candidates)))
    unknown = sorted(set(overrides) - set(candidates))
    if unknown:
        raise OutboxSettingsError("%s has unknown key(s) %s; known: %s"
                                  % (setting, ", ".join(unknown), ", ".join(candidates)))
    by_lower = {name.lower(): name for name in columns}
    roles, why, problems = {}, {}, []
    for role, names in candidates.items():
        if role in overrides:
            wanted = overrides[role]
            if wanted in (None, ""):
                roles[role], why[role] = None, "%s.%s is empty (the table has none)" % (setting, role)
                continue
            found = by_lower.get(str(wanted).lower())
            if found is None:
                roles[role] = None
                why[role] = "%s.%s names column %s, which the table does not have" % (setting, role, wanted)
                problems.append(why[role])
                continue
            roles[role] = found
        else:
            roles[role] = next((by_lower[n] for n in names if n in by_lower), None)
            if roles[role] is None:
                why[role] = "the table has no %s column (looked for %s; set %s.%s)" % (
                    role, ", ".join(names), setting, role)
                continue
        if role.endswith("_at") and columns[roles[role]]["data_type"] not in TIME_TYPES:
            why[role] = "column %s is %s, not DATETIME or TIMESTAMP, so it cannot be compared with the clock" % (
                roles[role], columns[roles[role]]["data_type"].upper())
            if role in overrides:
                problems.append("%s.%s: %s" % (setting, role, why[role]))
            roles[role] = None
    return roles, why, problems


# -- planning (pure) -----------------------------------------------------------------------------------------------
class Table:
    """What discovery found about one table: columns, indexes (name -> ordered columns), estimated rows."""

    def __init__(self, name, columns, indexes, estimate):
        self.name = name
        self.columns = columns
        self.indexes = indexes
        self.estimate = int(estimate or 0)

    def leads(self, *cols) -> bool:
        """Whether an index starts with exactly these columns, in this order."""
        want = [c.lower() for c in cols]
        return any([c.lower() for c in idx[:len(want)]] == want for idx in self.indexes.values())


def _cheap(table, exact_limit, *leading_options):
    """(True, None) when the table is small or an index starts with one of the column lists; else (False, why)."""
    if table.estimate <= exact_limit:
        return True, None
    for cols in leading_options:
        if table.leads(*cols):
            return True, None
    wanted = " or ".join("(%s)" % ", ".join(cols) for cols in leading_options)
    return False, ("%s holds about %d rows (more than verify_exact_count_limit=%d) and no index starts with %s, so "
                   "reading it would scan the table" % (table.name, table.estimate, exact_limit, wanted))


def plan_outbox(table, roles, why, values, mapping, exact_limit):
    """The outbox queries to run and the numbers not available here.

    `values`: the status values known without reading rows (ENUM) or from a cheap DISTINCT, else None (then the
    map's own values are looked up). Returns {"shape", "queries": [(metric, template, args-builder key)],
    "unavailable": {metric: reason}, "status_values": {notion: [values]}, "unmapped": [values]}.
    """
    plan = {"queries": [], "unavailable": {}, "status_values": {}, "unmapped": []}
    status, created, delivered = roles["status"], roles["created_at"], roles["delivered_at"]
    add, skip = plan["queries"].append, plan["unavailable"].__setitem__

    if status:
        plan["shape"] = "status"
        known = values if values is not None else [v for n in NOTIONS for v in mapping[n]]
        for notion in NOTIONS:
            plan["status_values"][notion] = [v for v in known if notion_of(v, mapping) == notion]
        if values is not None:
            plan["unmapped"] = [v for v in values if notion_of(v, mapping) is None]
        small = table.estimate <= exact_limit
        status_ok, status_why = _cheap(table, exact_limit, [status])
        if small:
            add(("by_status", "group_by_status", ()))
        elif status_ok:
            for notion in ("pending", "failed", "dead"):
                for value in plan["status_values"][notion]:
                    add(("count:" + notion, "count_status", (value,)))
        else:
            for notion in NOTIONS:
                skip(notion, status_why)
        if not created:
            for metric in ("oldest_pending_age_seconds", "failed_recent", "dead_recent"):
                skip(metric, why["created_at"])
        elif not status_ok:
            for metric in ("oldest_pending_age_seconds", "failed_recent", "dead_recent"):
                skip(metric, status_why)
        else:
            for value in plan["status_values"]["pending"]:
                add(("oldest_pending_age_seconds", "oldest_status", (value,)))
            for notion in ("failed", "dead"):
                for value in plan["status_values"][notion]:
                    add((notion + "_recent", "status_recent", (value, "window")))
        if not delivered:
            skip("delivered_recent", why["delivered_at"])
        else:
            ok, reason = _cheap(table, exact_limit, [delivered])
            if ok:
                add(("delivered_recent", "delivered_recent", ("window",)))
            else:
                skip("delivered_recent", reason)
        return plan

    no_status = "%s has no status column (%s)" % (table.name, why["status"])
    if delivered:
        plan["shape"] = "delivered_column"
        ok, reason = _cheap(table, exact_limit, [delivered])
        if ok:
            add(("count:pending", "count_undelivered", ()))
            add(("delivered_recent", "delivered_recent", ("window",)))
            if created:
                add(("oldest_pending_age_seconds", "oldest_undelivered", ()))
            else:
                skip("oldest_pending_age_seconds", why["created_at"])
        else:
            for metric in ("pending", "delivered_recent", "oldest_pending_age_seconds"):
                skip(metric, reason)
        skip("delivered", "%s: delivered rows are not counted (only the recent ones, by %s)" % (no_status, delivered))
        reason = "%s, so failed events cannot be told from pending ones" % no_status
        for metric in ("failed", "failed_recent", "dead", "dead_recent"):
            skip(metric, reason)
    else:
        plan["shape"] = "delete_on_relay"
        gone = "%s and no delivery timestamp: rows are deleted once relayed, so a delivery leaves no row" % no_status
        add(("count:pending", "count_rows_bounded", ("bound",)))
        if created:
            ok, reason = _cheap(table, exact_limit, [created])
            if ok:
                add(("oldest_pending_age_seconds", "oldest_row", ()))
            else:
                skip("oldest_pending_age_seconds", reason)
        else:
            skip("oldest_pending_age_seconds", why["created_at"])
        for metric in ("delivered", "delivered_recent", "failed", "failed_recent", "dead", "dead_recent"):
            skip(metric, gone)
    plan["status_values"] = {}
    return plan


def plan_dead_letters(table, time_column, exact_limit):
    """Queries for a separate dead-letter table: its rows (bounded count) and the rows of the recent window."""
    plan = {"queries": [("dlq:rows", "count_rows_bounded", ("bound",))], "unavailable": {}}
    if time_column is None:
        plan["unavailable"]["dead_recent"] = (
            "dead-letter table %s has no timestamp column (looked for %s)"
            % (table.name, ", ".join(DEAD_LETTER_TIME_CANDIDATES)))
    else:
        ok, reason = _cheap(table, exact_limit, [time_column])
        if ok:
            plan["queries"].append(("dlq:recent", "rows_recent", ("window",)))
        else:
            plan["unavailable"]["dead_recent"] = reason
    return plan


def plan_tokens(table, roles, why, exact_limit):
    plan = {"queries": [], "unavailable": {}}
    flag, stamp = roles["revoked"], roles["revoked_at"]
    if flag or stamp:
        ok, reason = _cheap(table, exact_limit, [flag or stamp])
        if ok:
            plan["queries"].append(("revoked", "revoked" if flag else "revoked_by_time", ()))
        else:
            plan["unavailable"]["revoked"] = reason
    else:
        plan["unavailable"]["revoked"] = "%s has no revoked column (%s)" % (table.name, why["revoked"])
    if not stamp:
        plan["unavailable"]["revoked_recent"] = why["revoked_at"]
    elif flag:
        ok, reason = _cheap(table, exact_limit, [flag, stamp], [stamp])
        if ok:
            plan["queries"].append(("revoked_recent", "revoked_recent", ("window",)))
        else:
            plan["unavailable"]["revoked_recent"] = reason
    else:
        ok, reason = _cheap(table, exact_limit, [stamp])
        if ok:
            plan["queries"].append(("revoked_recent", "revoked_recent_by_time", ("window",)))
        else:
            plan["unavailable"]["revoked_recent"] = reason
    return plan


# -- reading -------------------------------------------------------------------------------------------------------
class QueryFailed(Exception):
    """One query was refused or stopped by the server; the message says why (never a bound value)."""


def run(cur, sql, args=None, statement_timeout=0):
    """Rows of one query; QueryFailed when the server refuses or stops it, the driver's error when the link dies."""
    try:
        cur.execute(sql, args)
        return cur.fetchall()
    except _MYSQL_ERROR as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in _CONNECTION_ERRORS:
            raise
        if code in _TIMEOUT_ERRORS:
            raise QueryFailed("the server stopped the query after verify_statement_timeout=%s s" % statement_timeout)
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise QueryFailed("the server refused the query: (%s) %s" % (code, message)) from None


def table_names(cur, database, names):
    """{lower-case name: real name} of the tables (not views) among `names` that exist in `database`."""
    if not names:
        return {}
    placeholders = ", ".join(["%s"] * len(names))
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN (" + placeholders + ")", [database, *names])
    return {row[0].lower(): row[0] for row in cur.fetchall()}


def describe(cur, database, name) -> Table:
    """Columns, indexes and the estimated row count of one table, from information_schema (no row is read)."""
    cur.execute("SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", [database, name])
    columns = {col: {"data_type": str(dtype).lower(), "column_type": str(ctype)} for col, dtype, ctype in
               cur.fetchall()}
    cur.execute("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX", [database, name])
    indexes = {}
    for index, col in cur.fetchall():
        indexes.setdefault(index, []).append(col)
    cur.execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                [database, name])
    row = cur.fetchone()
    return Table(name, columns, indexes, row[0] if row else 0)


def _qualified(database, table):
    return quote_ident(database) + "." + quote_ident(table)


def _args(spec, window, bound):
    return [window if a == "window" else bound if a == "bound" else a for a in spec]


def _age(value):
    return None if value is None else max(0.0, round(float(value), 3))


class Reader:
    """Runs queries on one cursor. Once the server stops a query on a table (the statement time limit, typically a
    lock someone holds), later queries on that table are not sent: they would wait just as long."""

    def __init__(self, cur, statement_timeout):
        self.cur = cur
        self.timeout = statement_timeout
        self.stopped = {}

    def rows(self, sql, args=None, table=None):
        if table in self.stopped:
            raise QueryFailed("not run: %s" % self.stopped[table])
        try:
            return run(self.cur, sql, args, self.timeout)
        except QueryFailed as exc:
            if table is not None and "stopped" in str(exc):
                self.stopped[table] = "an earlier query on %s was stopped by the statement time limit" % table
            raise

    def scalar(self, sql, args=None, table=None):
        rows = self.rows(sql, args, table)
        return rows[0][0] if rows else None


def _by_status(reader, names, table_name):
    """{value: rows} from the GROUP BY (NULL as "NULL"), and the query's rows as the server returned them."""
    rows = reader.rows(OUTBOX_QUERIES["group_by_status"].format(**names), table=table_name)
    return {("NULL" if v is None else str(v)): int(n) for v, n in rows}, [[v, int(n)] for v, n in rows]


def read_outbox(reader, database, table_name, options, dead_letter_names):
    """The outbox section of the result (see the outbox_stats module's RETURN)."""
    cur, window, exact_limit = reader.cur, options["window"], options["exact_limit"]
    bound = max(1, exact_limit) + 1
    table = describe(cur, database, table_name)
    mapping = status_map(options.get("status_map"))
    roles, why, problems = resolve_columns(table.columns, COLUMN_CANDIDATES, options.get("columns"))
    out = {"present": True, "table": table_name, "window_minutes": window, "estimated_rows": table.estimate,
           "columns": roles, "problems": problems, "unavailable": {}}
    names = {"t": _qualified(database, table_name)}
    for role, key in (("status", "status"), ("created_at", "created"), ("delivered_at", "delivered")):
        if roles[role]:
            names[key] = quote_ident(roles[role])

    # The status values: a small table's GROUP BY gives them with exact counts; else the ENUM definition; else a
    # DISTINCT where an index starts with the status column; else only the map's values are looked up.
    values, values_source, by_status, failed_metrics = None, None, None, {}
    if roles["status"]:
        enum = parse_enum(table.columns[roles["status"]]["column_type"])
        if table.estimate <= exact_limit:
            try:
                by_status, raw_rows = _by_status(reader, names, table_name)
                out["group_by_status"] = {"rows": raw_rows}
                values, values_source = sorted(set(by_status) | set(enum or [])), "rows"
            except QueryFailed as exc:
                for notion in NOTIONS:
                    failed_metrics[notion] = str(exc)
                out["group_by_status"] = {"error": str(exc)}
        if values is None and enum is not None:
            values, values_source = enum, "enum"
        elif values is None and _cheap(table, exact_limit, [roles["status"]])[0] and not failed_metrics:
            try:
                values = [row[0] for row in reader.rows(OUTBOX_QUERIES["distinct_status"].format(**names),
                                                        table=table_name) if row[0] is not None]
                values_source = "distinct"
            except QueryFailed as exc:
                problems.append("status values could not be listed: %s" % exc)
        if values is None:
            values_source = "the status map's values (the table's own could not be listed)"
    plan = plan_outbox(table, roles, why, values, mapping, exact_limit)
    out["shape"] = plan["shape"]
    out["unavailable"].update(plan["unavailable"])
    if roles["status"]:
        out["status_map"] = plan["status_values"]
        out["status_values"] = values
        out["status_values_source"] = values_source

    counts, ages, recent = {}, [], {}
    for metric, template, spec in plan["queries"]:
        if metric == "by_status":
            continue  # read above
        target = metric.split(":", 1)[1] if metric.startswith("count:") else metric
        try:
            value = reader.scalar(OUTBOX_QUERIES[template].format(**names), _args(spec, window, bound),
                                  table=table_name)
        except QueryFailed as exc:
            failed_metrics.setdefault(target, str(exc))
            continue
        if metric.startswith("count:"):
            counts[target] = counts.get(target, 0) + int(value or 0)
        elif metric == "oldest_pending_age_seconds":
            if value is not None:
                ages.append(_age(value))
        else:
            recent[metric] = recent.get(metric, 0) + int(value or 0)

    if by_status is not None:
        out["by_status"] = by_status
        for notion in NOTIONS:
            counts[notion] = sum(n for v, n in by_status.items() if notion_of(v, mapping) == notion)
        unmapped = {v: n for v, n in by_status.items() if notion_of(v, mapping) is None}
        out["delivered_estimated"] = False
    else:
        unmapped = {str(v): None for v in plan["unmapped"]}
        if out["shape"] == "status" and "pending" not in out["unavailable"] and "pending" not in failed_metrics:
            others = sum(counts.get(n, 0) for n in ("pending", "failed", "dead"))
            counts["delivered"] = max(0, table.estimate - others)
            out["delivered_estimated"] = True
    if out["shape"] == "delete_on_relay" and "pending" in counts and counts["pending"] >= bound:
        counts["pending"] = max(table.estimate, bound)
        out["pending_estimated"] = True
    if out["shape"] == "status":
        out["unmapped"] = unmapped
    for notion in NOTIONS:
        if notion in failed_metrics:
            counts.pop(notion, None)
            out["unavailable"][notion] = failed_metrics[notion]
        elif notion not in out["unavailable"]:
            counts.setdefault(notion, 0)
    out["counts"] = {n: counts[n] for n in NOTIONS if n in counts}
    if "oldest_pending_age_seconds" in failed_metrics:
        out["unavailable"]["oldest_pending_age_seconds"] = failed_metrics["oldest_pending_age_seconds"]
    if "oldest_pending_age_seconds" not in out["unavailable"]:
        out["oldest_pending_age_seconds"] = min(ages) if ages else None
    for metric in ("delivered_recent", "failed_recent", "dead_recent"):
        if metric in failed_metrics:
            out["unavailable"][metric] = failed_metrics[metric]
        elif metric not in out["unavailable"]:
            out[metric] = recent.get(metric, 0)

    read_dead_letters(reader, database, table_name, options, dead_letter_names, out, bound)
    if "dead" in out["counts"]:
        out["dead_letters"] = out["counts"]["dead"]
    return out


def dead_letter_candidates(outbox_table, setting):
    """Table names to look for: the user's one, none, or the common names."""
    if setting in (None, "", "none"):
        return []
    if setting != "auto":
        return [setting]
    return [c.format(t=outbox_table) for c in DEAD_LETTER_TABLE_CANDIDATES]


def read_dead_letters(reader, database, outbox_table, options, names, out, bound):
    """Adds the separate dead-letter table's rows to the outbox's dead letters (out is updated in place)."""
    setting = options.get("dead_letter_table", "auto")
    wanted = dead_letter_candidates(outbox_table, setting)
    found = next((names[c.lower()] for c in wanted if c.lower() in names and c.lower() != outbox_table.lower()),
                 None)
    if found is None:
        if setting not in (None, "", "none", "auto"):
            out["problems"].append("verify_outbox_dead_letter_table names table %s, which database %s does not have"
                                   % (setting, database))
        out["dead_letter_table"] = None
        return
    table = describe(reader.cur, database, found)
    lower = {c.lower(): c for c in table.columns}
    stamp = next((lower[n] for n in DEAD_LETTER_TIME_CANDIDATES
                  if n in lower and table.columns[lower[n]]["data_type"] in TIME_TYPES), None)
    plan = plan_dead_letters(table, stamp, options["exact_limit"])
    names_q = {"t": _qualified(database, found), "created": quote_ident(stamp) if stamp else ""}
    info = {"table": found, "time_column": stamp, "estimated_rows": table.estimate,
            "discovered": setting == "auto"}
    for metric, template, spec in plan["queries"]:
        try:
            value = int(reader.scalar(OUTBOX_QUERIES[template].format(**names_q),
                                      _args(spec, options["window"], bound), table=found) or 0)
        except QueryFailed as exc:
            plan["unavailable"]["dead" if metric == "dlq:rows" else "dead_recent"] = str(exc)
            continue
        if metric == "dlq:rows":
            info["rows_estimated"] = value >= bound
            info["rows"] = max(table.estimate, bound) if value >= bound else value
        else:
            info["recent"] = value
    out["dead_letter_table"] = info
    # The outbox's own dead letters (status) and the dead-letter table add up; where the outbox cannot say, the
    # table's numbers stand alone.
    if "rows" in info:
        out["counts"]["dead"] = out["counts"].get("dead", 0) + info["rows"]
        reason = out["unavailable"].pop("dead", None)
        if reason and out["shape"] == "status":
            out["dead_letters_partial"] = "only the dead-letter table %s: %s" % (found, reason)
    elif "dead" in plan["unavailable"]:
        info["unavailable"] = plan["unavailable"]["dead"]
    if "recent" in info:
        out["dead_recent"] = out.get("dead_recent", 0) + info["recent"]
        out["unavailable"].pop("dead_recent", None)
    elif "dead_recent" in plan["unavailable"]:
        info["recent_unavailable"] = plan["unavailable"]["dead_recent"]


def read_tokens(reader, database, table_name, options):
    cur, window, exact_limit = reader.cur, options["window"], options["exact_limit"]
    table = describe(cur, database, table_name)
    roles, why, problems = resolve_columns(table.columns, TOKEN_COLUMN_CANDIDATES, options.get("token_columns"),
                                           setting="verify_tokens_columns")
    out = {"present": True, "table": table_name, "window_minutes": window, "columns": roles,
           "problems": problems}
    names = {"t": _qualified(database, table_name)}
    for role in ("revoked", "revoked_at"):
        if roles[role]:
            names[role] = quote_ident(roles[role])
    plan = plan_tokens(table, roles, why, exact_limit)
    out["unavailable"] = dict(plan["unavailable"])
    for metric, template, spec in plan["queries"]:
        try:
            out[metric] = int(reader.scalar(TOKEN_QUERIES[template].format(**names), _args(spec, window, 0),
                                            table=table_name) or 0)
        except QueryFailed as exc:
            out["unavailable"][metric] = str(exc)
    if table.estimate <= exact_limit:
        try:
            out["total"] = int(reader.scalar(TOKEN_QUERIES["total"].format(**names), table=table_name) or 0)
            out["total_estimated"] = False
        except QueryFailed:
            out["total"], out["total_estimated"] = table.estimate, True
    else:
        out["total"] = max(table.estimate, out.get("revoked", 0))
        out["total_estimated"] = True
    return out


def runbook_results(reader, database, outbox, tokens):
    """The runbook's two queries and their results, as the DBA would see them in the client.

    The text is the runbook's; where the outbox or token table (or its status/revoked column) has another name, the
    query names the real ones and says so. A query that cannot run on this schema says why instead of rows.
    """
    results = []
    entry = {"runbook": RUNBOOK_OUTBOX_QUERY}
    if not outbox.get("present"):
        entry["not_run"] = "database %s has no outbox table %s" % (database, outbox.get("table"))
    elif not (outbox.get("columns") or {}).get("status"):
        entry["not_run"] = "table %s has no status column (%s shape), so the query would fail" % (
            outbox["table"], outbox.get("shape"))
    else:
        status_col = outbox["columns"]["status"]
        entry["query"] = "SELECT %s, COUNT(*) FROM %s GROUP BY %s" % (
            _plain(status_col), _plain(outbox["table"]), _plain(status_col))
        cached = outbox.get("group_by_status") or {}
        try:
            if "error" in cached:
                raise QueryFailed(cached["error"])
            rows = cached["rows"] if "rows" in cached else _by_status(
                reader, {"t": _qualified(database, outbox["table"]), "status": quote_ident(status_col)},
                outbox["table"])[1]
            entry.update(columns=[status_col, "COUNT(*)"], rows=rows)
        except QueryFailed as exc:
            entry["error"] = str(exc)
    results.append(entry)

    entry = {"runbook": RUNBOOK_TOKENS_QUERY}
    if not tokens.get("present"):
        entry["not_run"] = "database %s has no refresh-token table %s" % (database, tokens.get("table"))
    elif not (tokens.get("columns") or {}).get("revoked"):
        entry["not_run"] = "table %s has no revoked column, so the query would fail" % tokens["table"]
    else:
        revoked = tokens["columns"]["revoked"]
        entry["query"] = "SELECT COUNT(*) FROM %s WHERE %s = 1" % (_plain(tokens["table"]), _plain(revoked))
        try:
            sql = "SELECT COUNT(*) FROM %s WHERE %s = 1" % (_qualified(database, tokens["table"]),
                                                             quote_ident(revoked))
            entry.update(columns=["COUNT(*)"], rows=[[int(reader.scalar(sql, table=tokens["table"]) or 0)]])
        except QueryFailed as exc:
            entry["error"] = str(exc)
    results.append(entry)
    for entry in results:
        if entry.get("query") == entry["runbook"]:
            entry["as_written"] = True
        elif "query" in entry:
            entry["as_written"] = False
    return results


def _plain(name):
    """A name as the runbook writes it: bare when it is a plain identifier, backtick-quoted otherwise."""
    return name if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) else quote_ident(name)


def absent_outbox(table, window):
    return {"present": False, "table": table, "counts": {}, "oldest_pending_age_seconds": None,
            "window_minutes": window, "unavailable": {}, "problems": []}


def absent_tokens(table, window):
    return {"present": False, "table": table, "window_minutes": window, "unavailable": {}, "problems": []}


def set_statement_timeout(cur, flavor, seconds):
    if not seconds:
        return
    if flavor == "mariadb":
        cur.execute("SET SESSION max_statement_time = %s", [float(seconds)])
    else:
        cur.execute("SET SESSION max_execution_time = %s", [int(seconds) * 1000])


def gather(conn, database, outbox_table="outbox", tokens_table="refresh_tokens", window=15, exact_limit=200000,
           statement_timeout=30, columns=None, status_map_overrides=None, dead_letter_table="auto",
           token_columns=None, runbook_queries=False, flavor="mariadb"):
    """All the numbers, read in one read-only snapshot. Pure reads: nothing is written.

    Raises OutboxSettingsError for unusable settings (before anything is read) and the driver's error when the
    connection is lost; every other failure makes one number unavailable, with its reason.
    """
    options = {"window": window, "exact_limit": exact_limit, "columns": columns or {},
               "status_map": status_map_overrides or {}, "dead_letter_table": dead_letter_table,
               "token_columns": token_columns or {}}
    status_map(options["status_map"])  # refuse a bad map before reading anything
    with conn.cursor() as cur:
        set_statement_timeout(cur, flavor, statement_timeout)
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            reader = Reader(cur, statement_timeout)
            server_time = str(reader.scalar("SELECT NOW(3)"))
            wanted = [outbox_table, tokens_table] + dead_letter_candidates(outbox_table, dead_letter_table)
            names = table_names(cur, database, list(dict.fromkeys(wanted)))
            result = {"database": database, "server_time": server_time}
            if outbox_table.lower() in names:
                result["outbox"] = read_outbox(reader, database, names[outbox_table.lower()], options, names)
            else:
                result["outbox"] = absent_outbox(outbox_table, window)
            if tokens_table.lower() in names:
                result["refresh_tokens"] = read_tokens(reader, database, names[tokens_table.lower()], options)
            else:
                result["refresh_tokens"] = absent_tokens(tokens_table, window)
            if runbook_queries:
                result["runbook"] = runbook_results(reader, database, result["outbox"], result["refresh_tokens"])
        finally:
            cur.execute("COMMIT")
    result["outbox"].pop("group_by_status", None)
    return result
