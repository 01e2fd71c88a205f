#!/usr/bin/python
"""Ansible module: copy the binary logs written since a position into a directory, verified, with checksums."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: binlog_archive
short_description: Archive the closed binary logs written since a position, each verified and checksummed
description:
  - Copies, byte for byte over the replication protocol (C(mariadb-binlog -R --raw), or C(mysqlbinlog)), every
    binary log file from the one holding I(since) to the last closed one into I(dest_dir) on this host, so that a
    point-in-time recovery does not depend on the server keeping them. No access to the server's data directory is
    needed, only C(REPLICATION SLAVE).
  - Each copy is verified as a backup is - its size is the one the server lists for the file, it reads through to
    its end with the decoder - and gets a C(NAME.sha256) beside it (C(sha256sum -c) format); the vault copy
    (C(backup_vault_copy)) then re-verifies that checksum on each vault. A file already archived with a matching
    checksum and size is not copied again.
  - With I(rotate), the server first closes its current binary log (C(FLUSH BINARY LOGS)), so that everything
    written up to now is in closed files and gets archived.
options:
  since:
    description: Position from which the binary logs are needed (C(file)/C(pos), or a backup manifest's
      C(binlog_file)/C(binlog_pos)).
    type: dict
    required: true
  dest_dir:
    description: Directory on this host for the copies (created 0750).
    type: path
    required: true
  rotate:
    description: C(FLUSH BINARY LOGS) first, so that the file being written is closed and archived too.
    type: bool
    default: false
notes:
  - The password reaches C(mariadb-binlog) in a 0600 option file, never its command line.
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: lists the files it would copy (and whether it would rotate); copies nothing.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Archive the binary logs written since the backup
  binlog_archive:
    since: "{{ backup.position }}"
    dest_dir: /var/backups/dbrelease/binlogs
    rotate: true
  no_log: true
"""

RETURN = r"""
files:
  description: Every archived file of the range - C(file), C(path), C(sha256), C(bytes), C(copied) (false when it
    was already archived).
  returned: success
  type: list
rotated:
  description: The position the server closed (C(FLUSH BINARY LOGS)), when I(rotate).
  returned: when rotated
  type: dict
until:
  description: The end of what is archived (the end of the last closed file).
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import binlog
from ansible.module_utils.dbrelease.db import (  # noqa: I001 (module_utils import, resolved by Ansible)
    DbError,
    connect,
    connection_argument_spec,
    endpoint,
    require_pymysql,
    scrub,
    server_info,
)


def already_archived(path, size) -> dict | None:
    if not os.path.isfile(path) or os.path.getsize(path) != size:
        return None
    try:
        return binlog.verify_archived(path)
    except binlog.BinlogError:
        return None


def run(module):
    p = module.params
    since = binlog.normalise_position(p["since"])
    if not since:
        module.fail_json(msg="no binary log position to archive from (since=%r): the backup recorded none, so the "
                             "server wrote no binary log when it was taken" % (p["since"],))
    try:
        conn = connect(p)
    except DbError as exc:
        module.fail_json(msg=str(exc))
    try:
        flavor = server_info(conn)["flavor"]
        result = {"changed": False, "files": []}
        if p["rotate"]:
            result["rotated"] = binlog.current_position(conn, flavor)
            if not module.check_mode:
                with conn.cursor() as cur:
                    cur.execute("FLUSH BINARY LOGS")
            result["changed"] = True
        logs = binlog.binary_logs(conn)
        # The file being written is not archived: it is still growing. Under --check the rotation is only planned,
        # so the current file counts as closed.
        closed = {name for name, _ in (logs if p["rotate"] and module.check_mode else logs[:-1])}
        sizes = dict(logs)
        wanted = [name for name in binlog.files_between(logs, since) if name in closed]
        to_copy = []
        for name in wanted:
            found = already_archived(os.path.join(p["dest_dir"], name), sizes[name])
            if found:
                result["files"].append(dict(found, file=name, path=os.path.join(p["dest_dir"], name), copied=False))
            else:
                to_copy.append(name)
        if to_copy and not module.check_mode:
            for item in binlog.fetch(p, flavor, to_copy, p["dest_dir"], expected_sizes={n: sizes[n] for n in to_copy}):
                result["files"].append(dict(item, copied=True))
        elif to_copy:
            result["files"] += [{"file": n, "path": os.path.join(p["dest_dir"], n), "bytes": sizes[n], "copied": True}
                                for n in to_copy]
        result["files"].sort(key=lambda item: binlog.sequence(item["file"]))
        result["changed"] = result["changed"] or bool(to_copy)
        if wanted:
            result["until"] = {"file": wanted[-1], "pos": sizes[wanted[-1]]}
        result["msg"] = "%d binary log file(s) since %s archived in %s (%d copied now)" % (
            len(result["files"]), binlog.describe(since), p["dest_dir"], len(to_copy))
        return result
    except binlog.BinlogError as exc:
        module.fail_json(msg="archiving the binary logs as %s: %s" % (endpoint(p), exc))
    except Exception as exc:  # noqa: BLE001 - a server error (privileges: REPLICATION SLAVE, RELOAD)
        module.fail_json(msg=scrub("archiving the binary logs as %s: %s" % (endpoint(p), exc), p))
    finally:
        conn.close()


def main():
    spec = connection_argument_spec()
    spec.update(since=dict(type="dict", required=True), dest_dir=dict(type="path", required=True),
                rotate=dict(type="bool", default=False))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
