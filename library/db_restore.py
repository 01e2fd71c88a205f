#!/usr/bin/python
"""Ansible module: restore a database from a verified, compressed single-database dump (the rollback)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_restore
short_description: Restore one database from a verified compressed dump (drop, recreate, load)
description:
  - Verifies the dump first, before anything changes - its sha256 against the recorded one (and against the
    C(NAME.sha256) file beside it, when present), that it decompresses completely, and that it ends with the
    C(-- Dump completed) trailer. Refuses to restore on any mismatch.
  - Optionally dumps the current database first (I(safety_dump_dir)), so the rollback itself can be undone.
  - Then drops the database and creates it again with the same default character set and collation, and loads
    the dump with C(decompress -dc FILE | mariadb DB). Both processes are checked, so a failure of either fails
    the restore (the pipefail rule), without a shell.
  - Recreating the database (rather than dropping the objects the release created) is what makes the restored
    schema exactly the backed-up one, whatever the release or its migrations added - tables, views, routines,
    triggers, events. Privileges granted on the database survive, as MariaDB and MySQL keep them across
    C(DROP DATABASE).
  - Every client tool gets the credentials from a 0600 option file passed as its first argument; no password is
    ever on a command line.
options:
  database:
    description: Database to restore.
    type: str
    required: true
  path:
    description: Dump file on the host running the module (C(.sql.gz) or C(.sql.zst)).
    type: path
    required: true
  sha256:
    description: The checksum the release recorded for I(path).
    type: str
    required: true
  safety_dump_dir:
    description: Directory to dump the current database into before it is dropped. Empty - no safety dump.
    type: path
    default: ""
  label:
    description: Label in the safety dump's name (the release version).
    type: str
    default: rollback
  character_set:
    description: Default character set of the recreated database. Empty - the one the database has now (or the
      server's default when it does not exist).
    type: str
    default: ""
  collation:
    description: Default collation of the recreated database. Empty - as for I(character_set).
    type: str
    default: ""
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: Verifies the dump (checksum, completeness) and reports what would be dropped and loaded, changing
      nothing.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Restore the release's backup
  db_restore:
    database: shop
    path: /var/backups/dbrelease/shop_v1.2.0_20261128T061814Z.sql.gz
    sha256: "{{ backup.sha256 }}"
    safety_dump_dir: /var/backups/dbrelease
  no_log: true
"""

RETURN = r"""
database:
  description: Database restored.
  returned: always
  type: str
path:
  description: Dump restored.
  returned: always
  type: str
sha256:
  description: Checksum verified.
  returned: always
  type: str
bytes:
  description: Size of the dump file.
  returned: always
  type: int
character_set:
  description: Default character set of the recreated database.
  returned: always
  type: str
collation:
  description: Default collation of the recreated database.
  returned: always
  type: str
safety_dump:
  description: C(path), C(sha256) and C(bytes) of the dump of the database taken before it was dropped ({} if none).
  returned: always
  type: dict
seconds:
  description: Wall time of the restore.
  returned: always
  type: float
record:
  description: What the release record keeps (phases.rollback) - C(database), C(restored_from), C(sha256), C(bytes),
    C(character_set), C(collation), C(safety_dump), C(seconds), C(plan).
  returned: success
  type: dict
"""

import os
import re
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.backup_files import sha256_of
from ansible.module_utils.dbrelease.clock import utc_stamp
from ansible.module_utils.dbrelease.db import (  # noqa: I001 (module_utils import, resolved by Ansible)
    DbError,
    client_binary,
    client_option_file,
    connect,
    connection_argument_spec,
    endpoint,
    quote_ident,
    require_pymysql,
    scrub,
)
from ansible.module_utils.dbrelease.files import make_private_dirs, write_atomic

CHUNK = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class RestoreError(Exception):
    pass


def parse_checksum_file(text: str, name: str) -> str | None:
    """The sha256 for `name` in `sha256sum` output (`HEX  NAME` or `HEX *NAME`, the codec's format); None when
    absent."""
    for line in text.splitlines():
        try:
            digest, listed = codec.parse_sha256_line(line)
        except ValueError:
            continue
        if os.path.basename(listed) == name:
            return digest
    return None


def decompress_command(path: str) -> list:
    """The backup phase's own choice of decompressor (backup.decompress_command), reading `path`."""
    compression = codec.compression_of(path)
    if not compression:
        raise RestoreError("%s is neither .sql.gz nor .sql.zst: cannot tell how to decompress it" % path)
    tools = {name: client_binary(name) for name in ("igzip", "pigz", "gzip", "zstd")}
    try:
        return codec.decompress_command(compression, tools) + [path]
    except BackupError as exc:
        raise RestoreError("no decompressor for %s: %s" % (path, exc)) from None


def ends_with_trailer(tail: bytes) -> bool:
    return codec.trailer_line(tail) is not None


def check_complete(path: str) -> None:
    """Decompress the whole dump (proves the compressed stream is intact) and check the trailer of a complete dump."""
    proc = subprocess.Popen(decompress_command(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = b""
    for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
        tail = (tail + chunk)[-4096:]
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise RestoreError("%s does not decompress (%s); refusing to restore it" % (path, err))
    if not ends_with_trailer(tail):
        raise RestoreError("%s does not end with '-- Dump completed': the dump is incomplete; refusing to restore it"
                           % path)


def verify(path: str, expected: str) -> dict:
    if not os.path.isfile(path):
        raise RestoreError("backup %s does not exist on this host" % path)
    expected = (expected or "").strip().lower()
    if not _HEX64.match(expected):
        raise RestoreError("the recorded sha256 of %s is not a sha256 (%r)" % (path, expected))
    actual = sha256_of(path)
    if actual != expected:
        raise RestoreError("checksum mismatch for %s: the release recorded %s, the file has %s; refusing to restore "
                           "a backup that is not the one taken" % (path, expected, actual))
    sidecar = path + ".sha256"
    if os.path.exists(sidecar):
        with open(sidecar) as handle:
            listed = parse_checksum_file(handle.read(), os.path.basename(path))
        if listed is None:
            raise RestoreError("%s does not list %s" % (sidecar, os.path.basename(path)))
        if listed != actual:
            raise RestoreError("checksum mismatch for %s: %s says %s, the file has %s; refusing to restore"
                               % (path, sidecar, listed, actual))
    check_complete(path)
    return {"sha256": actual, "bytes": os.path.getsize(path)}


def database_charset(conn, database):
    with conn.cursor() as cur:
        cur.execute("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME = %s", (database,))
        row = cur.fetchone()
        if row:
            return row[0], row[1], True
        cur.execute("SELECT @@character_set_server, @@collation_server")
        row = cur.fetchone()
        return row[0], row[1], False


def run_pipeline(producer: list, consumer: list, stdout_path=None, params=None):
    """`producer | consumer` (consumer's stdout to a file when stdout_path); fails when either fails."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        first = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        second = subprocess.Popen(consumer, stdin=first.stdout, stdout=out, stderr=subprocess.PIPE)
        first.stdout.close()  # the consumer owns the pipe now; SIGPIPE reaches the producer if it dies
        err2 = second.stderr.read()
        rc2 = second.wait()
        err1 = first.stderr.read()
        rc1 = first.wait()
    finally:
        if stdout_path:
            out.close()
    errors = []
    if rc1 != 0:
        errors.append("%s exited %d: %s" % (os.path.basename(producer[0]), rc1,
                                            scrub(err1.decode(errors="replace").strip(), params)))
    if rc2 != 0:
        errors.append("%s exited %d: %s" % (os.path.basename(consumer[0]), rc2,
                                            scrub(err2.decode(errors="replace").strip(), params)))
    return errors


def safety_dump(params, database, directory, label):
    dump = client_binary("mariadb-dump", "mysqldump")
    tools = {name: client_binary(name) for name in ("pigz", "gzip")}
    try:
        compress = codec.compress_command("gzip", tools)
    except BackupError as exc:
        raise RestoreError("the safety dump needs a gzip compressor: %s" % exc) from None
    if not dump:
        raise RestoreError("mariadb-dump (or mysqldump) is needed for the safety dump")
    make_private_dirs(directory)
    name = codec.backup_file_name(database, "before-rollback_%s" % (codec.safe_label(label) or "rollback"), "gzip",
                                  utc_stamp())
    final = os.path.join(directory, name)
    fd, partial = tempfile.mkstemp(prefix=".%s." % os.path.basename(final), suffix=".partial", dir=directory)
    os.close(fd)
    try:
        with client_option_file(params) as option_file:
            errors = run_pipeline(
                [dump, "--defaults-extra-file=%s" % option_file, "--single-transaction", "--routines", "--events",
                 "--triggers", "--hex-blob", "--", database],
                compress, stdout_path=partial, params=params)
        if errors:
            raise RestoreError("the safety dump of %s failed, nothing was dropped: %s" % (database, "; ".join(errors)))
        os.chmod(partial, 0o640)
        digest = sha256_of(partial)
        os.replace(partial, final)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    write_atomic(codec.checksum_name(final), codec.sha256_line(digest, os.path.basename(final)))
    return {"path": final, "sha256": digest, "bytes": os.path.getsize(final)}


def restore(module, p):
    started = time.monotonic()
    database = p["database"]
    checked = verify(p["path"], p["sha256"])
    client = client_binary("mariadb", "mysql")
    if not client:
        raise RestoreError("the mariadb (or mysql) client is not installed on this host")
    try:
        conn = connect(p)
    except DbError as exc:
        raise RestoreError(str(exc)) from None
    try:
        charset, collation, exists = database_charset(conn, database)
        charset = p["character_set"] or charset
        collation = p["collation"] or collation
        result = dict(changed=True, database=database, path=p["path"], sha256=checked["sha256"],
                      bytes=checked["bytes"], character_set=charset, collation=collation, safety_dump={},
                      existed=exists)
        plan = "%s database %s, create it again (%s / %s), load %s (%d bytes)" % (
            "drop" if exists else "no", database, charset, collation, p["path"], checked["bytes"])
        if module._diff:
            result["diff"] = dict(before="database %s: current state\n" % database, after="%s\n" % plan)
        if module.check_mode:
            result["plan"] = plan
            result["seconds"] = round(time.monotonic() - started, 3)
            return result
        if exists and p["safety_dump_dir"]:
            result["safety_dump"] = safety_dump(p, database, p["safety_dump_dir"], p["label"])
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s" % quote_ident(database))
            cur.execute("CREATE DATABASE %s CHARACTER SET %s COLLATE %s"
                        % (quote_ident(database), quote_charset(charset), quote_charset(collation)))
    finally:
        conn.close()

    with client_option_file(p) as option_file:
        errors = run_pipeline(decompress_command(p["path"]),
                              [client, "--defaults-extra-file=%s" % option_file, "--batch", "--", database],
                              params=p)
    if errors:
        raise RestoreError("loading %s into %s as %s failed: %s. The database is only partly restored; the backup is "
                           "intact, so run the rollback again once the cause is fixed"
                           % (p["path"], database, endpoint(p), "; ".join(errors)))
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def quote_charset(name: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]+$", name or ""):
        raise RestoreError("invalid character set or collation name %r" % (name,))
    return name


def main():
    spec = connection_argument_spec()
    spec.update(
        database=dict(type="str", required=True),
        path=dict(type="path", required=True),
        sha256=dict(type="str", required=True),
        safety_dump_dir=dict(type="path", default=""),
        label=dict(type="str", default="rollback"),
        character_set=dict(type="str", default=""),
        collation=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    require_pymysql(module)
    try:
        result = restore(module, module.params)
    except RestoreError as exc:
        module.fail_json(msg=scrub(str(exc), module.params), database=module.params["database"],
                         path=module.params["path"])
    result["record"] = {key: result.get(key) for key in ("database", "sha256", "bytes", "character_set", "collation",
                                                          "safety_dump", "seconds")}
    result["record"].update(restored_from=result["path"], plan=result.get("plan", ""))
    result["msg"] = "%s %s from %s (sha256 verified, %s bytes) in %ss%s." % (
        "Would restore" if module.check_mode else "Restored", result["database"], result["path"], result["bytes"],
        result["seconds"], "; the database before the rollback is in %s" % result["safety_dump"]["path"]
        if result["safety_dump"].get("path") else "")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
