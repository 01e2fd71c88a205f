#!/usr/bin/python
"""Ansible module: connect as the release's admin user and describe the server (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_server_info
short_description: Connect to the database server and report what the release needs to know
description:
  - Connects as the admin user (proving the credentials and the endpoint), and returns the server version and
    flavor, the binary log and GTID state, the database's existence, charset and size, and the account the
    server authenticated (C(CURRENT_USER())).
  - Read-only; never changes anything.
  - Fails with a message naming the user and the endpoint (never the password) when it cannot connect.
options:
  database:
    description: The release's database. Reported as absent (not an error) when it does not exist, unless
      I(require_database=true).
    type: str
    required: true
  require_database:
    description: Fail when the database does not exist.
    type: bool
    default: true
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Connect as the admin user and record the server version
  db_server_info:
    database: arisgourmet
  no_log: true
"""

RETURN = r"""
server:
  description: Version, flavor (mariadb or mysql) and version tuple.
  returned: success
  type: dict
current_user:
  description: The account the server matched, for example C(db_admin@localhost).
  returned: success
  type: str
binlog:
  description: Whether binary logging is on, and the format; GTID mode where the server has one.
  returned: success
  type: dict
database:
  description: C(exists), C(charset), C(collation), C(tables), C(bytes) of the release database.
  returned: success
  type: dict
endpoint:
  description: The endpoint connected to, as C(user@host:port) or C(user@socket PATH).
  returned: always
  type: str
msg:
  description: One line for the operator, e.g. C(db_admin@socket /run/mysqld/mysqld.sock is 10.11.6-MariaDB
    (mariadb), database shop - 12 tables, 1.2 MiB).
  returned: success
  type: str
record:
  description: What the release record keeps (phases.preflight) - C(endpoint), C(current_user), C(server),
    C(binlog), C(database), C(check_mode).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.db import (
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    server_info,
)
from ansible.module_utils.dbrelease.units import human_bytes


def describe(conn, database):
    info = {"server": server_info(conn)}
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        info["current_user"] = cur.fetchone()[0]
        cur.execute("SELECT @@log_bin, @@binlog_format")
        log_bin, binlog_format = cur.fetchone()
        binlog = {"enabled": bool(int(log_bin)), "format": binlog_format}
        if info["server"]["flavor"] == "mariadb":
            cur.execute("SELECT @@gtid_binlog_pos")
            binlog["gtid_binlog_pos"] = cur.fetchone()[0]
        else:
            cur.execute("SELECT @@gtid_mode")
            binlog["gtid_mode"] = cur.fetchone()[0]
        info["binlog"] = binlog
        cur.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = %s",
            (database,),
        )
        row = cur.fetchone()
        db = {"name": database, "exists": row is not None}
        if row:
            db["charset"], db["collation"] = row
            cur.execute(
                "SELECT COUNT(*), COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (database,),
            )
            tables, size = cur.fetchone()
            db["tables"], db["bytes"] = int(tables), int(size)
        info["database"] = db
    return info


def main():
    spec = connection_argument_spec()
    spec.update(database=dict(type="str", required=True), require_database=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    where = endpoint(module.params)
    try:
        conn = connect(module.params)
    except DbError as exc:
        module.fail_json(msg="%s. Check release_db_host/release_db_port/release_db_socket and the admin "
                             "credentials (release_db_admin_user, release_db_admin_password)." % exc,
                         endpoint=where)
    try:
        info = describe(conn, module.params["database"])
    finally:
        conn.close()
    if module.params["require_database"] and not info["database"]["exists"]:
        module.fail_json(msg="database %r does not exist on %s; check release_db_name"
                             % (module.params["database"], where), endpoint=where, **info)
    db = info["database"]
    msg = "%s is %s (%s), database %s: %s" % (
        where, info["server"]["version"], info["server"]["flavor"], module.params["database"],
        "%d tables, %s" % (db["tables"], human_bytes(db["bytes"])) if db["exists"] else "does not exist")
    record = dict(info, endpoint=where, check_mode=module.check_mode)
    module.exit_json(changed=False, endpoint=where, msg=msg, record=record, **info)


if __name__ == "__main__":
    main()
