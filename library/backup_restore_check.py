#!/usr/bin/python
"""Ansible module: restore a backup into a throwaway database, compare it with the source, drop it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_restore_check
short_description: Prove a backup restores - into a throwaway database compared object by object with the source
description:
  - Creates C(<database>__dbrelease_restore_<random>) on the same server, streams the backup into it with the
    C(mariadb)/C(mysql) client (events are restored disabled so none fires from the copy; the session skips the
    binary log unless I(skip_binlog=false); view definitions naming the source schema are made to name the copy),
    then compares every table, view, routine, trigger and event (same definition, DEFINER and SQL SECURITY
    included, with the schema name normalised identifier-aware), the exact row count of every table, and the
    rows themselves.
  - Rows are compared by checksums per table over its non-virtual columns, in primary-key order, in chunks of
    I(chunk_rows) rows (as pt-table-checksum does; C(CHECKSUM TABLE) is unstable on tables with virtual columns).
    Under I(checksum_budget_s), smallest tables first, a table that would not fit in its share of what is left of
    the budget is sampled (every n-th chunk), and C(sampled) names it. A table without a primary or NOT NULL
    unique key is checksummed whole.
  - Objects whose DEFINER account does not exist are restored as a stock client restores them, and named in
    C(missing_definers) (they fail when used, on the source as well).
  - With I(exact_counts=true) (a quiet source - staging, a maintenance window) any row count or checksum
    difference fails; otherwise differences are reported as C(live_differences).
  - The throwaway database is always dropped, also when the restore or the comparison fails.
  - With I(restore_server), the throwaway copy goes to that separate restore
    server instead (any MariaDB/MySQL server the database host can reach, ideally of the same version). The
    restore's writes and CPU are spared the source server, which only answers the comparison's reads (definitions
    and row counts). The streaming client runs where the module runs (the host holding the backup).
  - Its net effect on the server is nothing, so it reports C(changed=false).
options:
  path:
    description: The backup (C(.sql.gz) or C(.sql.zst)) on the database host.
    type: path
    required: true
  database:
    description: The source database the backup was taken from.
    type: str
    required: true
  exact_counts:
    description: Fail on any row count difference (else report it).
    type: bool
    default: true
  skip_binlog:
    description: Restore with C(sql_log_bin=0) so replicas never receive the throwaway copy (needs SUPER or
      BINLOG ADMIN).
    type: bool
    default: true
  restore_server:
    description:
      - Connection of a separate restore server for the throwaway copy; empty restores on the source server.
      - Keys C(login_host), C(login_port), C(login_unix_socket), C(login_user), C(login_password),
        C(connect_timeout). An empty C(login_user) or C(login_password) is the source connection's.
      - The release builds it from C(backup_restore_server) (C(release_restore_server_login) in
        C(vars/release.yml)).
    type: dict
    default: {}
  checksum_budget_s:
    description: Seconds the row checksums may take in all (source and copy); beyond a table's share, it is
      sampled.
    type: float
    default: 600
  chunk_rows:
    description: Rows per checksum chunk.
    type: int
    default: 10000
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: reports the throwaway database it would use; restores nothing.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Restore the backup into a throwaway database and compare
  backup_restore_check:
    path: "{{ __backup_result.path }}"
    database: arisgourmet
  no_log: true
"""

RETURN = r"""
ok:
  description: Whether the copy matched the source.
  returned: success or comparison failure
  type: bool
problems:
  description: Every difference found (missing or extra objects, different definitions, row counts).
  returned: success or comparison failure
  type: list
throwaway:
  description: The throwaway database used (already dropped).
  returned: always
  type: str
objects:
  description: Number of tables, views, routines, triggers and events compared.
  returned: success or comparison failure
  type: dict
rows:
  description: Exact row counts per table, source and restored.
  returned: success or comparison failure
  type: dict
checksums:
  description: Per table - C(chunks), C(checked), C(sampled), C(every) (when sampled), C(rows_checked),
    C(differences) (chunk bounds, rows on each side) and C(method) (C(primary key), C(whole table), or why not
    compared).
  returned: success or comparison failure
  type: dict
sampled:
  description: Tables whose rows were compared on sampled chunks only (or not at all), because of the budget.
  returned: success or comparison failure
  type: list
missing_definers:
  description: Objects whose DEFINER account does not exist on the server (C(object), C(definer)).
  returned: success or comparison failure
  type: list
live_differences:
  description: Row count differences tolerated because I(exact_counts=false).
  returned: success or comparison failure
  type: dict
durations_s:
  description: Seconds spent restoring, comparing and in total.
  returned: success or comparison failure
  type: dict
restore_server:
  description: The separate restore server used (C(endpoint), its C(server) version and the C(source_server)
    version).
  returned: when a restore server is given
  type: dict
record:
  description: What the release record keeps (phases.backup.restore_test) - C(ran), C(ok), C(throwaway), C(objects),
    C(rows), C(live_differences), C(duration_s), C(restore_server) (the separate server's endpoint, when one
    was used); in check mode C(ran=false) with a C(reason).
  returned: success or comparison failure, and in check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup_compare, backup_restore, backup_stream
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.db import connection_argument_spec, endpoint, require_pymysql


def record_part(report):
    """What the release record keeps of a restore test: the comparison, which tables were only sampled (the
    checksum budget), and the objects restored with a DEFINER that does not exist."""
    checksums = report.get("checksums") or {}
    return {"restore_test": {"ran": True, "ok": report.get("ok"), "throwaway": report.get("throwaway"),
                             "objects": report.get("objects"), "rows": report.get("rows"),
                             "live_differences": report.get("live_differences"),
                             "checksums": {t: {k: c.get(k) for k in ("method", "chunks", "checked", "sampled",
                                                                     "rows_checked", "digest")}
                                           for t, c in checksums.items()},
                             "sampled": report.get("sampled", []),
                             "checksum_budget_s": report.get("checksum_budget_s"),
                             "missing_definers": report.get("missing_definers", []),
                             "problems": report.get("problems", []),
                             "duration_s": (report.get("durations_s") or {}).get("total"),
                             "restore_server": (report.get("restore_server") or {}).get("endpoint")}}


def main():
    spec = connection_argument_spec()
    spec.update(path=dict(type="path", required=True), database=dict(type="str", required=True),
                exact_counts=dict(type="bool", default=True), skip_binlog=dict(type="bool", default=True),
                restore_server=dict(type="dict", default={}, no_log=False, options=dict(
                    login_host=dict(type="str", default=""), login_port=dict(type="int", default=3306),
                    login_unix_socket=dict(type="str", default=""), login_user=dict(type="str", default=""),
                    login_password=dict(type="str", default="", no_log=True),
                    connect_timeout=dict(type="int", default=10))),
                checksum_budget_s=dict(type="float", default=600.0), chunk_rows=dict(type="int", default=10000))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    params = module.params
    restore_params = restore_server_params(params)
    where = " on the restore server %s" % endpoint(restore_params) if restore_params else ""
    if module.check_mode:
        module.exit_json(changed=False, throwaway=backup_compare.restore_name(params["database"], "<random>"),
                         record={"restore_test": {"ran": False, "reason": "check mode: a dry run restores nothing"}},
                         msg="would restore %s into a throwaway copy of %s%s and compare" % (
                             params["path"], params["database"], where))
    tools = backup_stream.find_tools()
    if not tools["client"]:
        module.fail_json(msg="neither the mariadb nor the mysql client is installed: cannot test the restore")
    try:
        report = backup_restore.restore_test(params, tools, params["path"], params["database"],
                                             exact_counts=params["exact_counts"], skip_binlog=params["skip_binlog"],
                                             checksum_budget_s=params["checksum_budget_s"],
                                             chunk_rows=params["chunk_rows"], restore_params=restore_params)
    except BackupError as exc:
        module.fail_json(msg="restore test of %s as %s%s failed: %s check failed: %s" % (
            params["path"], endpoint(params), where, exc.check or "restore", exc), check=exc.check or "restore")
    if not report["ok"]:
        module.fail_json(msg="restore test of %s%s failed: the restored copy differs from %s: %s" % (
            params["path"], where, params["database"], "; ".join(report["problems"])), check="compare",
            record=record_part(report), **report)
    notes = []
    if report["sampled"]:
        notes.append("rows compared on sampled chunks only (checksum budget %s s): %s" % (
            report["checksum_budget_s"], ", ".join(report["sampled"])))
    if report["missing_definers"]:
        notes.append("restored with a DEFINER that does not exist on the server: %s" % ", ".join(
            "%s (%s)" % (d["object"], d["definer"]) for d in report["missing_definers"]))
    module.exit_json(changed=False, record=record_part(report), msg="restore test passed%s: %s; rows compared "
                     "by checksum%s" % (where, ", ".join("%d %s" % (n, kind) for kind, n in report["objects"].items()),
                                     "".join("; " + n for n in notes)), **report)


def restore_server_params(params):
    """Connection parameters of the separate restore server, or None to restore on the source server."""
    server = params.get("restore_server") or {}
    if not server.get("login_host") and not server.get("login_unix_socket"):
        return None
    return dict(params, login_host=server.get("login_host") or "localhost", login_port=server.get("login_port") or 3306,
                login_unix_socket=server.get("login_unix_socket") or "",
                login_user=server.get("login_user") or params["login_user"],
                login_password=server.get("login_password") or params["login_password"],
                connect_timeout=server.get("connect_timeout") or params["connect_timeout"])


if __name__ == "__main__":
    main()
