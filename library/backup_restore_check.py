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
    binary log unless I(skip_binlog=false)), then compares every table, view, routine, trigger and event (same
    definition, with the schema name normalised) and the exact row count of every table.
  - With I(exact_counts=true) (a quiet source - staging, a maintenance window) any row count difference fails;
    otherwise differences are reported as C(live_differences).
  - The throwaway database is always dropped, also when the restore or the comparison fails.
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
live_differences:
  description: Row count differences tolerated because I(exact_counts=false).
  returned: success or comparison failure
  type: dict
durations_s:
  description: Seconds spent restoring, comparing and in total.
  returned: success or comparison failure
  type: dict
record:
  description: What the release record keeps (phases.backup.restore_test) - C(ran), C(ok), C(throwaway), C(objects),
    C(rows), C(live_differences), C(duration_s); in check mode C(ran=false) with a C(reason).
  returned: success or comparison failure, and in check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup_compare, backup_restore, backup_stream
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.db import connection_argument_spec, endpoint, require_pymysql


def record_part(report):
    """What the release record keeps of a restore test."""
    return {"restore_test": {"ran": True, "ok": report.get("ok"), "throwaway": report.get("throwaway"),
                             "objects": report.get("objects"), "rows": report.get("rows"),
                             "live_differences": report.get("live_differences"),
                             "duration_s": (report.get("durations_s") or {}).get("total")}}


def main():
    spec = connection_argument_spec()
    spec.update(path=dict(type="path", required=True), database=dict(type="str", required=True),
                exact_counts=dict(type="bool", default=True), skip_binlog=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    params = module.params
    if module.check_mode:
        module.exit_json(changed=False, throwaway=backup_compare.restore_name(params["database"], "<random>"),
                         record={"restore_test": {"ran": False, "reason": "check mode"}},
                         msg="would restore %s into a throwaway copy of %s and compare" % (
                             params["path"], params["database"]))
    tools = backup_stream.find_tools()
    if not tools["client"]:
        module.fail_json(msg="neither the mariadb nor the mysql client is installed: cannot test the restore")
    try:
        report = backup_restore.restore_test(params, tools, params["path"], params["database"],
                                             exact_counts=params["exact_counts"], skip_binlog=params["skip_binlog"])
    except BackupError as exc:
        module.fail_json(msg="restore test of %s as %s failed: %s check failed: %s" % (
            params["path"], endpoint(params), exc.check or "restore", exc), check=exc.check or "restore")
    if not report["ok"]:
        module.fail_json(msg="restore test of %s failed: the restored copy differs from %s: %s" % (
            params["path"], params["database"], "; ".join(report["problems"])), check="compare",
            record=record_part(report), **report)
    module.exit_json(changed=False, record=record_part(report), msg="restore test passed: %s" % ", ".join(
        "%d %s" % (n, kind) for kind, n in report["objects"].items()), **report)


if __name__ == "__main__":
    main()
