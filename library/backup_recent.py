#!/usr/bin/python
"""Ansible module: is there a recent, valid backup of the database? (read-only, for preflight)"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_recent
short_description: Find the newest backup of a database and say whether it is recent and its checksum valid
description:
  - Looks in I(backup_dir) for the newest published backup of I(database) (a C(.sql.gz)/C(.sql.zst) with its
    C(.sha256) beside it and, where there is one, a manifest naming the database), re-hashes it against its
    C(.sha256), and compares its age with I(max_age_hours).
  - Never fails because no backup exists or it is old or invalid - it reports it (C(recent=false) with a
    C(reason)); the caller decides. Read-only.
options:
  backup_dir:
    description: Directory holding the backups on the database host.
    type: path
    required: true
  database:
    description: Database whose backups to look for.
    type: str
    required: true
  max_age_hours:
    description: A backup older than this is not recent.
    type: float
    default: 24
  verify_checksum:
    description: Re-hash the file against its C(.sha256) (reads the whole file).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: read-only.
author: dbrelease
"""

EXAMPLES = r"""
- name: Look for a recent valid backup
  backup_recent:
    backup_dir: /var/backups/dbrelease
    database: arisgourmet
    max_age_hours: 24
  register: __preflight_backup_recent
"""

RETURN = r"""
found:
  description: Whether any backup of the database was found.
  returned: always
  type: bool
path:
  description: The newest backup (empty when none).
  returned: always
  type: str
age_hours:
  description: Its age, from its UTC stamp.
  returned: when found
  type: float
valid:
  description: Whether its checksum matches its C(.sha256) (C(null) when I(verify_checksum=false)).
  returned: always
  type: bool
recent:
  description: Found, valid and younger than I(max_age_hours).
  returned: always
  type: bool
reason:
  description: Why it is not recent (or a confirmation).
  returned: always
  type: str
msg:
  description: One line for the operator.
  returned: always
  type: str
record:
  description: What the release record keeps (phases.preflight.backup_recent) - C(path), C(age_hours), C(valid),
    C(recent), C(reason), C(max_age_hours).
  returned: always
  type: dict
"""

import datetime
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup_files


def age_hours(stamp, now=None):
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return (now - when).total_seconds() / 3600.0


def main():
    module = AnsibleModule(argument_spec=dict(
        backup_dir=dict(type="path", required=True), database=dict(type="str", required=True),
        max_age_hours=dict(type="float", default=24.0), verify_checksum=dict(type="bool", default=True)),
        supports_check_mode=True)
    params = module.params
    result = dict(changed=False, found=False, path="", valid=False, recent=False, sha256="",
                  backup_dir=params["backup_dir"], max_age_hours=params["max_age_hours"])
    if not os.path.isdir(params["backup_dir"]):
        finish(module, result, "backup directory %s does not exist" % params["backup_dir"])
    found = backup_files.find_backups(params["backup_dir"], params["database"])
    if not found:
        finish(module, result, "no backup of %s in %s" % (params["database"], params["backup_dir"]))
    newest = found[0]
    expected = backup_files.read_checksum_file(newest["path"] + ".sha256")
    age = age_hours(newest["stamp"])
    result.update(found=True, path=newest["path"], sha256=expected or "", age_hours=round(age, 3),
                  bytes=os.path.getsize(newest["path"]))
    if params["verify_checksum"]:
        actual = backup_files.sha256_of(newest["path"])
        result["valid"] = expected is not None and actual == expected
    else:
        result["valid"] = None
    if result["valid"] is False:
        reason = "the newest backup %s fails its checksum (%s)" % (
            newest["path"], "unreadable .sha256" if expected is None else "sha256 mismatch")
    elif age > params["max_age_hours"]:
        reason = "the newest backup %s is %.1f h old, more than %s h (backup_recent_max_age_hours)" % (
            newest["path"], result["age_hours"], params["max_age_hours"])
    else:
        result["recent"] = True
        reason = "%s is %.1f h old%s" % (newest["path"], result["age_hours"],
                                         ", checksum valid" if result["valid"] else "")
    finish(module, result, reason)


def finish(module, result, reason):
    result["reason"] = reason
    result["msg"] = ("Recent valid backup: %s (%s h old)" % (result["path"], result["age_hours"])
                     if result["recent"] and result["valid"] else
                     "No recent valid backup of %s: %s (the backup phase takes one)." % (module.params["database"],
                                                                                         reason))
    result["record"] = {"backup_recent": {"path": result["path"], "age_hours": result.get("age_hours"),
                                          "valid": result["valid"], "recent": result["recent"], "reason": reason,
                                          "max_age_hours": result["max_age_hours"]}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
