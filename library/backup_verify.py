#!/usr/bin/python
"""Ansible module: integrity checks of a backup file (checksum, decompression, completion trailer)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_verify
short_description: Check a backup's integrity - sha256, decompression and the dump's completion trailer
description:
  - Reads the file once - hashing it and feeding the decompressor - and runs three checks, each reported on its
    own, so a failure says which check failed - C(checksum) (against C(<path>.sha256), or I(sha256)),
    C(decompress) (gzip/zstd integrity), C(trailer) (the SQL ends with C(-- Dump completed)).
  - With a manifest beside the file, also checks that it names I(database) and that the uncompressed size
    matches.
  - Read-only; never changes anything.
options:
  path:
    description: The backup (C(.sql.gz) or C(.sql.zst)) on the target host.
    type: path
    required: true
  sha256:
    description: Expected checksum. Defaults to the one in C(<path>.sha256).
    type: str
  database:
    description: When set, the manifest must name this database.
    type: str
attributes:
  check_mode:
    support: full
    details: read-only; the checks run in check mode too.
author: dbrelease
"""

EXAMPLES = r"""
- name: Verify the backup
  backup_verify:
    path: /var/backups/dbrelease/arisgourmet_v1.2.0_20261128T061814Z.sql.gz
    database: arisgourmet
"""

RETURN = r"""
checks:
  description: Each check (C(checksum), C(decompress), C(trailer), C(manifest)) and whether it passed.
  returned: always
  type: dict
check_messages:
  description: What each check found.
  returned: always
  type: dict
failed_checks:
  description: Names of the checks that failed.
  returned: always
  type: list
sha256:
  description: sha256 of the file as read.
  returned: always
  type: str
bytes:
  description: Compressed size.
  returned: always
  type: int
bytes_uncompressed:
  description: Size of the SQL text.
  returned: always
  type: int
record:
  description: What the release record keeps (phases.backup.verified) - the checks and whether each passed.
  returned: success
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_checks, backup_files, backup_stream


def manifest_check(path, database, report):
    try:
        with open(path + ".manifest.json") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"ok": False, "msg": "manifest %s.manifest.json is unreadable: %s" % (path, exc)}
    if database and manifest.get("database") != database:
        return {"ok": False, "msg": "manifest names database %r, expected %r" % (manifest.get("database"), database)}
    expected = (manifest.get("bytes") or {}).get("uncompressed")
    if expected is not None and report["checks"]["decompress"]["ok"] and expected != report["bytes_uncompressed"]:
        return {"ok": False, "msg": "manifest records %s uncompressed bytes, the file holds %d"
                % (expected, report["bytes_uncompressed"])}
    return {"ok": True, "msg": "manifest matches"}


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True), sha256=dict(type="str"),
                                              database=dict(type="str")),
                           supports_check_mode=True)
    path = module.params["path"]
    compression = codec.compression_of(path)
    if not os.path.isfile(path):
        module.fail_json(msg="backup %s does not exist" % path, failed_checks=["exists"])
    if compression is None:
        module.fail_json(msg="%s is neither .sql.gz nor .sql.zst" % path, failed_checks=["format"])
    expected = module.params["sha256"] or backup_files.read_checksum_file(path + ".sha256")
    report = backup_checks.verify_file(path, compression, backup_stream.find_tools(), expected_sha256=expected)
    manifest = manifest_check(path, module.params["database"], report)
    if manifest is not None:
        report["checks"]["manifest"] = manifest
    failed = backup_checks.failed_checks(report)
    result = dict(changed=False, path=path, sha256=report["sha256"], bytes=report["bytes"],
                  bytes_uncompressed=report["bytes_uncompressed"], failed_checks=failed,
                  checks={name: check["ok"] for name, check in report["checks"].items()},
                  check_messages={name: check["msg"] for name, check in report["checks"].items()})
    if failed:
        module.fail_json(msg=backup_checks.checks_message(path, report), **result)
    module.exit_json(msg="backup %s passed %s" % (path, ", ".join(sorted(result["checks"]))),
                     record={"verified": result["checks"]}, **result)


if __name__ == "__main__":
    main()
