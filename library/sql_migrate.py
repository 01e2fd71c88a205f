#!/usr/bin/python
"""Ansible module: database migrations, with the built-in SQL driver or the application's own tool."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sql_migrate
short_description: Apply database migrations (versioned SQL files with a history table, or the app's own tool)
description:
  - I(driver=sql) applies versioned files C(V<version>__<description>.sql) in version order and records each in a
    history table (default C(dbrelease_schema_history) - version, description, script, checksum, installed_by,
    installed_on, execution_time_ms, success). It refuses to run when an applied file was edited (the message
    names the file), when a migration failed earlier (recorded with C(success=0)) until I(repair) is set, and when
    a pending file is older than the newest applied version unless I(out_of_order).
  - I(driver=command) runs the application's migration tool (for example C(npm run migrate:run)) in I(chdir) with
    C(DB_HOST), C(DB_PORT), C(DB_USER), C(DB_PASSWORD), C(DB_NAME) (and C(DB_SOCKET) when a socket is used) in its
    environment only, never in its arguments. No shell is involved. C(changed) is true only when the tool's
    I(history_table) gained rows (C(knex_migrations), C(SequelizeMeta), ...), or, without a history table, when its
    output does not match I(nochange_regex). Its output, with the password scrubbed, is returned in C(log).
options:
  driver:
    description: C(sql) (built-in) or C(command) (the application's tool).
    type: str
    choices: [sql, command]
    required: true
  db_name:
    description: The database the migrations apply to (the tool receives it as C(DB_NAME)).
    type: str
    required: true
  scripts:
    description: I(driver=sql) - the versioned scripts as C({file name - content}) (read on the controller).
    type: dict
  sql_dir:
    description: I(driver=sql) - a directory on the managed host holding the versioned scripts (instead of
      I(scripts)).
    type: path
  history_table:
    description: I(driver=sql) - the history table (default C(dbrelease_schema_history)). I(driver=command) - the
      tool's history table, C(table) or C(schema.table), compared before and after; C(auto) looks for the tables
      of common tools (C(knex_migrations), C(SequelizeMeta), C(_prisma_migrations), C(flyway_schema_history),
      C(schema_migrations), C(goose_db_version), C(typeorm_migrations)) and falls back to I(nochange_regex) when
      none exists; empty judges by I(nochange_regex) only.
    type: str
  out_of_order:
    description: I(driver=sql) - allow a pending file older than the newest applied version.
    type: bool
    default: false
  repair:
    description: I(driver=sql) - remove history entries of failed migrations (after fixing what they left) before
      planning.
    type: bool
    default: false
  installed_by:
    description: I(driver=sql) - recorded in C(installed_by); defaults to I(login_user).
    type: str
  command:
    description: I(driver=command) - the migration command, split like a shell would but run without one.
    type: str
  chdir:
    description: I(driver=command) - directory to run the command in.
    type: path
  environment:
    description: I(driver=command) - extra environment variables for the tool (C(DB_*) always win).
    type: dict
    default: {}
  nochange_regex:
    description: I(driver=command) - without I(history_table), output matching this regex means nothing was applied
      (C(changed=false)). Without either, any successful run counts as a change.
    type: str
  status_command:
    description: I(driver=command) - a read-only command listing the migrations (for example
      C(npm run migrate:status)); run in check mode instead of the migration command, its output returned.
    type: str
  migrations_dir:
    description: I(driver=command) - the tool's migration files; in check mode the files that the history table does
      not list are returned as C(pending).
    type: path
  timeout:
    description: I(driver=command) - seconds before the command is killed and the task fails.
    type: int
    default: 3600
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: Nothing is run or written. I(driver=sql) returns the pending files (after the same checksum and
      failed-migration checks a real run makes); I(driver=command) returns the migration files not in the tool's
      history (I(migrations_dir)) and the output of I(status_command).
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Run the application's migrations
  sql_migrate:
    driver: command
    db_name: arisgourmet
    command: npm run migrate:run
    chdir: /srv/app/backend
    history_table: knex_migrations
    migrations_dir: /srv/app/backend/migrations
  no_log: true
  register: __migrate_result

- name: Apply versioned SQL migrations
  sql_migrate:
    driver: sql
    db_name: arisgourmet
    sql_dir: /srv/app/db/migrations
  no_log: true
"""

RETURN = r"""
driver:
  description: The driver used.
  returned: always
  type: str
applied:
  description: Migrations applied by this run (sql - script names; command - the new history entries' names).
  returned: always
  type: list
pending:
  description: Migrations still to apply (check mode; sql driver always). Null when it cannot be known.
  returned: always
  type: list
history:
  description: sql driver - versions recorded as applied before this run.
  returned: driver=sql
  type: list
missing:
  description: sql driver - applied versions whose file is no longer there (a warning, not an error).
  returned: driver=sql
  type: list
repaired:
  description: sql driver - failed entries removed by I(repair).
  returned: driver=sql
  type: list
rc:
  description: command driver - the command's exit code.
  returned: driver=command, when it ran
  type: int
stdout:
  description: command driver - standard output, password scrubbed.
  returned: driver=command, when it ran
  type: str
stderr:
  description: command driver - standard error, password scrubbed.
  returned: driver=command, when it ran
  type: str
status_output:
  description: command driver in check mode - output of I(status_command), password scrubbed.
  returned: when status_command ran
  type: str
log:
  description: What to keep with the release (the command's output, or the SQL files applied with timings).
  returned: always
  type: str
duration_ms:
  description: Wall time of the migrations.
  returned: always
  type: int
msg:
  description: What the migrations did, in one line.
  returned: success
  type: str
record:
  description: What the release record keeps (phases.migrate) - C(driver), C(applied), C(pending),
    C(history_table), C(rc), C(duration_ms), C(missing), C(repaired), C(failed_migration), C(check_mode). Also
    when a migration fails.
  returned: always, once connected
  type: dict
"""

import datetime
import re
import shlex

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import migrate as mg
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    scrub,
)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (py<3.11 targets)


def run_sql(module, conn):
    p = module.params
    scripts = p["scripts"] if p["scripts"] is not None else mg.read_sql_dir(p["sql_dir"])
    migrator = mg.SqlMigrator(conn, p["db_name"], p["history_table"] or "dbrelease_schema_history",
                              installed_by=p["installed_by"] or p["login_user"])
    parsed = mg.collect_scripts(scripts)
    history = migrator.history()
    repaired = []
    if p["repair"]:
        repaired = [h["script"] for h in history if not h["success"]]
        if repaired and not module.check_mode:
            migrator.repair()
        history = [h for h in history if h["success"]]
    planned = mg.plan(parsed, history, out_of_order=p["out_of_order"])
    pending = [s["script"] for s in planned["pending"]]
    log = ["%s sql driver on %s.%s, %d file(s), %d applied before, %d pending%s"
           % (now(), p["db_name"], migrator.table, len(parsed), len(planned["applied"]), len(pending),
              " (check mode: nothing run)" if module.check_mode else "")]
    log += ["repaired (failed entry removed): %s" % s for s in repaired]
    result = dict(driver="sql", history=planned["applied"], missing=[h["script"] for h in planned["missing"]],
                  repaired=repaired, history_table="%s.%s" % (p["db_name"], migrator.table))
    if module.check_mode:
        log += ["pending: %s" % s for s in pending]
        return dict(result, changed=bool(pending) or bool(repaired), applied=[], pending=pending,
                    log="\n".join(log) + "\n", duration_ms=0)
    started = datetime.datetime.now()
    try:
        done = migrator.apply(planned["pending"], log)
    except mg.MigrationError as exc:
        exc.details["log"] = "\n".join(log) + "\n"
        raise
    elapsed = int((datetime.datetime.now() - started).total_seconds() * 1000)
    return dict(result, changed=bool(done) or bool(repaired), applied=[d["script"] for d in done], pending=[],
                applied_details=done, log="\n".join(log) + "\n", duration_ms=elapsed)


def command_log(p, argv, rc, stdout, stderr, elapsed, applied, check=False):
    head = ["# %s migration command%s" % (now(), " (check mode: status only)" if check else ""),
            "# command: %s" % " ".join(shlex.quote(a) for a in argv),
            "# chdir: %s" % (p["chdir"] or "."),
            "# database: %s as %s" % (p["db_name"], endpoint(p)),
            "# rc: %s, %d ms, applied: %s" % (rc, elapsed, ", ".join(applied) if applied else "none"),
            "", "## stdout", stdout.rstrip(), "", "## stderr", stderr.rstrip(), ""]
    return "\n".join(head)


def run_command(module, conn):
    p = module.params
    if not p["command"]:
        module.fail_json(msg="driver=command needs 'command' (release_migration_command)")
    table = p["history_table"] or ""
    tables = mg.KNOWN_HISTORY_TABLES if table == "auto" else ([table] if table else [])
    before = mg.snapshots(conn, p["db_name"], tables)
    env = mg.migration_env(p, p["db_name"], p["environment"])
    result = dict(driver="command", history_table=", ".join(sorted(before)) or table or None, command=p["command"],
                  chdir=p["chdir"])

    if module.check_mode:
        known = [entry for rows in before.values() for entry in rows]
        pending = mg.pending_files(p["migrations_dir"], known) if tables else None
        status = None
        if p["status_command"]:
            rc, out, err, elapsed = mg.run_tool(p["status_command"], p["chdir"], env, p["timeout"])
            status = scrub(out + err, p)
            if rc != 0:
                module.fail_json(msg="the status command %r failed (rc=%d): %s"
                                 % (p["status_command"], rc, mg.error_excerpt(scrub(err or out, p))),
                                 status_output=status)
        log = command_log(p, shlex.split(p["status_command"] or ""), "-", status or "", "", 0, [], check=True)
        log += "\n## would run\n%s\n## pending\n%s\n" % (
            p["command"], "\n".join(pending) if pending is not None else "unknown (set migrations_dir and "
                                                                          "history_table)")
        return dict(result, changed=bool(pending) if pending is not None else True, applied=[], pending=pending,
                    status_output=status, log=log, duration_ms=0)

    rc, out, err, elapsed = mg.run_tool(p["command"], p["chdir"], env, p["timeout"])
    out, err = scrub(out, p), scrub(err, p)
    applied = []
    after = mg.snapshots(conn, p["db_name"], tables)
    if before or after:
        for name, rows in after.items():
            applied += mg.new_history_entries(before.get(name, []), rows)
        changed = bool(applied)
        result["history_table"] = ", ".join(sorted(set(before) | set(after)))
    elif table and table != "auto":
        changed = False
        if rc == 0:
            module.warn("history table %s does not exist after the migration command: is migrate_history_table "
                        "right? Reporting no change." % table)
    elif p["nochange_regex"]:
        changed = re.search(p["nochange_regex"], out + err, re.MULTILINE) is None
    else:
        changed = True
    log = command_log(p, shlex.split(p["command"]), rc, out, err, elapsed, applied)
    result.update(rc=rc, stdout=out, stderr=err, applied=applied, log=log, duration_ms=elapsed, pending=None)
    if rc != 0:
        module.fail_json(msg="the migration command %r failed (rc=%d) in %s%s; last lines: %s"
                         % (p["command"], rc, p["chdir"] or ".",
                            (", after applying %s" % ", ".join(applied)) if applied else "",
                            mg.error_excerpt(err or out)), changed=changed,
                         record=record_part(result, p, module.check_mode), **result)
    return dict(result, changed=changed)


def record_part(result, params, check_mode):
    """What the release record keeps of the migrations (also of a failed run)."""
    history_table = result.get("history_table") or params["history_table"] or (
        "dbrelease_schema_history" if params["driver"] == "sql" else None)
    return {"driver": params["driver"], "applied": result.get("applied") or [], "pending": result.get("pending"),
            "history_table": history_table, "rc": result.get("rc"),
            "duration_ms": result.get("duration_ms"), "missing": result.get("missing") or [],
            "repaired": result.get("repaired") or [], "failed_migration": result.get("failed_migration"),
            "check_mode": check_mode}


def result_line(result, check_mode):
    pending = result.get("pending")
    return "%s driver%s: applied %s; pending %s" % (
        result.get("driver"), " (check mode)" if check_mode else "",
        ", ".join(result.get("applied") or []) or "nothing",
        (", ".join(pending) or "nothing") if pending is not None else "not listed")


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        driver=dict(type="str", choices=["sql", "command"], required=True),
        db_name=dict(type="str", required=True),
        scripts=dict(type="dict"),
        sql_dir=dict(type="path"),
        history_table=dict(type="str"),
        out_of_order=dict(type="bool", default=False),
        repair=dict(type="bool", default=False),
        installed_by=dict(type="str"),
        command=dict(type="str"),
        chdir=dict(type="path"),
        environment=dict(type="dict", default={}),
        nochange_regex=dict(type="str"),
        status_command=dict(type="str"),
        migrations_dir=dict(type="path"),
        timeout=dict(type="int", default=3600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("driver", "sql", ("scripts", "sql_dir"), True),
                                        ("driver", "command", ("command",))])
    require_pymysql(module)
    p = module.params
    try:
        conn = connect(p, database=p["db_name"])
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = run_sql(module, conn) if p["driver"] == "sql" else run_command(module, conn)
    except mg.MigrationError as exc:
        details = {k: (scrub(v, p) if isinstance(v, str) else v) for k, v in exc.details.items()}
        module.fail_json(msg=scrub(str(exc), p), driver=p["driver"],
                         record=record_part(details, p, module.check_mode), **details)
    except DbError as exc:
        module.fail_json(msg=scrub(str(exc), p), driver=p["driver"])
    except Exception as exc:  # PyMySQL errors: name the endpoint, never the password
        module.fail_json(msg="migrations on %s failed: %s" % (endpoint(p), scrub(str(exc), p)), driver=p["driver"])
    finally:
        conn.close()
    module.exit_json(msg=result_line(result, module.check_mode), record=record_part(result, p, module.check_mode),
                     **result)


if __name__ == "__main__":
    main()
