#!/usr/bin/python
"""Ansible module: a streaming, verified, atomic dump of one database (with an action plugin for progress)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_backup
short_description: Dump one database, compressed and checksummed in one pass, verified before it is published
description:
  - Runs C(mariadb-dump) (or C(mysqldump)) with C(--single-transaction --routines --events --triggers) and,
    where the server writes a binary log, the position (and GTID) as a comment; pipes it into C(igzip) (ISA-L,
    levels 1-3), C(pigz) or C(gzip), the first installed, all writing the same C(.gz) format, or into
    C(zstd -T0); computes the sha256 of the compressed stream while writing it to a
    hidden C(.NAME.partial) file in I(backup_dir).
  - Checks every stage's exit status, fsyncs, verifies the file (decompression, the C(-- Dump completed)
    trailer, checksum), writes C(NAME.sha256) (C(sha256sum -c) format) and C(NAME.manifest.json), and only then
    renames the dump to its final name. A failed, cancelled or interrupted run removes its partial file.
  - The password reaches the client tools only through a 0600 option file given as their first argument.
  - With the C(db_backup) action plugin (the normal case) the work runs detached on the database host and the
    controller prints progress (bytes, rate, elapsed) every few seconds. I(mode) is the plugin's protocol.
  - With I(reuse=true) and a I(label), an existing backup of the same database and label whose checksum is valid
    is returned instead of taking a new one (C(changed=false)), so rerunning a release does not pile up dumps - but
    only while it still matches the database (see I(reuse_changed)) - a rerun days later never silently reuses a
    backup that the binary log shows the database has moved away from.
options:
  database:
    description: Database to dump. Required unless I(mode=status) or I(mode=cancel).
    type: str
  backup_dir:
    description: Directory on the database host for the dump, its C(.sha256) and its manifest. Must exist unless
      I(create_dir).
    type: path
  create_dir:
    description: Create I(backup_dir) (and its missing parents) with I(dir_mode) when it does not exist, and give an
      existing one I(dir_mode), as C(ansible.builtin.file) with C(state=directory) would (not in check mode).
    type: bool
    default: false
  dir_mode:
    description: The mode of I(backup_dir) with I(create_dir), 3 or 4 octal digits (C("0750")).
    type: str
    default: "0750"
  compression:
    description: C(gzip) writes C(.sql.gz) (with igzip or pigz where installed, same format); C(zstd) writes
      C(.sql.zst).
    type: str
    choices: [gzip, zstd]
    default: gzip
  compression_level:
    description: Compressor level; the tool's default when unset.
    type: int
  compression_threads:
    description: Compressor threads; C(0) means all cores.
    type: int
    default: 0
  helper_nice:
    description:
      - Niceness added to the helpers of the dump (the compressor, the decompressor that checks the stream, and this
        module's threads that move the bytes), not to the dump client. On a host with spare CPU they still run at
        full speed; when the CPU is short they yield to the database server and to the dump client, whose speed
        sets the backup's (on the 2-core benchmark host, 19 cut a 1 GB zstd backup from 7.6 s to 6.8 s).
      - On a host whose CPU is saturated by other work, niced helpers also yield to that work, so the dump (and its
        snapshot) lasts longer rather than production slowing down. C(0) gives them the same priority as
        everything else.
    type: int
    default: 19
  label:
    description: Release label put in the file name (C(<database>_<label>_<UTC stamp>.sql.gz)).
    type: str
    default: ""
  reuse:
    description: Return an existing valid backup of the same database and I(label) instead of taking another.
    type: bool
    default: true
  reuse_changed:
    description:
      - What to do when the existing backup no longer matches the database - the binary log shows transactions on
        it since the backup's position, other than this release's own (I(reuse_own_writes)); or that cannot be
        checked and the backup is older than I(reuse_max_age_hours).
      - C(new) takes a new backup; C(refuse) fails, saying why (the role asks for it once the release has changed
        the database, when a new backup would not be the state before the release); C(reuse) keeps it, saying so.
    type: str
    choices: [new, refuse, reuse]
    default: new
  reuse_own_writes:
    description: The binary log ranges where this release wrote to the database (C(from), C(to); C(to) empty when the
      run did not record it), left out of the check.
    type: list
    elements: dict
    default: []
  reuse_max_age_hours:
    description: A backup whose match with the database cannot be checked (no binary log) is reused only up to this
      age.
    type: float
    default: 24
  mode:
    description:
      - C(run) does the whole backup in this call. C(start) forks the work and returns a I(job_dir); C(status)
        reads a job's status and renews its lease; C(cancel) stops a job (which removes its partial file).
    type: str
    choices: [run, start, status, cancel]
    default: run
extends_documentation_fragment:
  - dbrelease.core.connection
  - dbrelease.core.job
attributes:
  check_mode:
    support: full
    details: connects and reports the file it would write, the command and the tables; creates nothing.
author: dbrelease
"""

EXAMPLES = r"""
# The connection (login_*) comes from the play: module_defaults over group/dbrelease.core.db.
- name: Dump the release database
  db_backup:
    database: arisgourmet
    backup_dir: /var/backups/dbrelease
    compression: gzip
    label: v1.2.0
  no_log: true
  register: __backup_result
"""

RETURN = r"""
path:
  description: The published dump (or, in check mode, the file that would be written).
  returned: success
  type: str
sha256:
  description: sha256 of the compressed file.
  returned: success and not check mode
  type: str
bytes:
  description: Size of the compressed file.
  returned: success and not check mode
  type: int
bytes_uncompressed:
  description: Size of the SQL text.
  returned: success and not check mode
  type: int
checksum_file:
  description: C(<path>.sha256), in C(sha256sum -c) format.
  returned: success and not check mode
  type: str
manifest:
  description: C(<path>.manifest.json).
  returned: success and not check mode
  type: str
manifest_data:
  description: The manifest's content (database, server, position, tables, bytes, durations, tools, checksum).
  returned: success and not check mode
  type: dict
checks:
  description: Verification checks and whether each passed (C(checksum), C(decompress), C(trailer)).
  returned: success and not check mode
  type: dict
compression:
  description: C(gzip) or C(zstd).
  returned: success
  type: str
compressor:
  description: The compressor binary used (C(igzip), C(pigz), C(gzip), C(zstd)).
  returned: success
  type: str
memory:
  description: Peak resident memory (KiB) of the process that streamed the dump and of its tools.
  returned: when a new backup was taken
  type: dict
reused:
  description: Whether an existing valid backup was returned instead of a new one.
  returned: success
  type: bool
job_dir:
  description: With I(mode=start), the job to poll.
  returned: mode=start
  type: str
state:
  description: With I(mode=status)/I(cancel), C(running), C(done) or C(failed); C(progress) holds the counters.
  returned: mode=status or mode=cancel
  type: str
reuse_check:
  description: Whether the existing backup still matched the database - C(action) (C(reuse), C(new)), C(msg),
    C(caveat) (reused without proof), C(evidence) (C(state), C(why), C(writes) counts), C(backup) (its path).
  returned: when an existing valid backup was found
  type: dict
record:
  description: What the release record keeps (phases.backup) - C(path), C(sha256), C(bytes), C(bytes_uncompressed),
    C(manifest), C(duration_s), C(compression), C(compressor), C(position), C(reused), C(verified) (the checks),
    C(vault) (empty here; the vault copies add theirs), C(reuse_check) (C(action), C(msg), C(caveat), C(state); empty
    when no earlier backup was found).
  returned: success, with mode=run (or mode=status when done)
  type: dict
"""

import os
import resource
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_files, backup_job, backup_reuse, backup_stream, files, job
from ansible.module_utils.dbrelease.backup import BackupError
from ansible.module_utils.dbrelease.clock import utc_stamp
from ansible.module_utils.dbrelease.db import DbError, connect, connection_argument_spec, endpoint, require_pymysql


def with_record(result, params):
    """The result, with the part the release record keeps."""
    result["record"] = {
        "path": result.get("path"), "sha256": result.get("sha256", ""), "bytes": result.get("bytes", 0),
        "bytes_uncompressed": result.get("bytes_uncompressed") or 0, "manifest": result.get("manifest", ""),
        "duration_s": (result.get("durations_s") or {}).get("total", 0),
        "compression": result.get("compression") or params["compression"], "compressor": result.get("compressor") or "",
        "position": result.get("position") or {}, "reused": bool(result.get("reused")),
        "verified": result.get("checks") or {}, "vault": {},
        "reuse_check": {k: v for k, v in (result.get("reuse_check") or {}).items() if k in ("action", "msg", "caveat")}
        if result.get("reuse_check") else {}}
    if result.get("reuse_check"):
        result["record"]["reuse_check"]["state"] = result["reuse_check"]["evidence"]["state"]
    return result


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        database=dict(type="str"),
        backup_dir=dict(type="path"),
        create_dir=dict(type="bool", default=False),
        dir_mode=dict(type="str", default="0750"),
        compression=dict(type="str", choices=list(codec.COMPRESSIONS), default="gzip"),
        compression_level=dict(type="int"),
        compression_threads=dict(type="int", default=0),
        helper_nice=dict(type="int", default=19),
        label=dict(type="str", default=""),
        reuse=dict(type="bool", default=True),
        reuse_changed=dict(type="str", choices=list(backup_reuse.POLICIES), default="new"),
        reuse_own_writes=dict(type="list", elements="dict", default=[]),
        reuse_max_age_hours=dict(type="float", default=24),
    )
    spec.update(job.argument_spec())
    return spec


def reuse_check(params, item) -> dict:
    """Whether the valid backup `item` still matches the database (module_utils/dbrelease/backup_reuse.py)."""
    try:
        conn = connect(params)
    except DbError as exc:
        raise BackupError(str(exc), check="connect") from None
    try:
        found = backup_reuse.evidence(conn, params["database"], item["manifest"].get("position"),
                                      params["reuse_own_writes"])
    finally:
        conn.close()
    decided = backup_reuse.verdict(found, params["reuse_changed"], backup_reuse.stamp_age_hours(item["stamp"]),
                                   params["reuse_max_age_hours"])
    return dict(decided, evidence=found, backup=item["path"])


def existing_backup(params):
    """(A valid backup of the same database and label that still matches the database, the reuse check); the
    backup is None when reuse is off, none is found, or the check says to take a new one. BackupError when the check
    refuses."""
    if not params["reuse"] or not codec.safe_label(params["label"]):
        return None, None
    for item in backup_files.find_backups(params["backup_dir"], params["database"], params["label"]):
        expected = backup_files.read_checksum_file(item["path"] + ".sha256")
        if item["manifest"] is None or expected is None:
            continue
        if backup_files.sha256_of(item["path"]) != expected:
            continue
        manifest = item["manifest"]
        check = reuse_check(params, item)
        if check["action"] == "refuse":
            raise BackupError(check["msg"], check="reuse")
        if check["action"] == "new":
            return None, check
        return dict(reuse_check=check, path=item["path"], sha256=expected, bytes=os.path.getsize(item["path"]),
                    bytes_uncompressed=manifest.get("bytes", {}).get("uncompressed"),
                    checksum_file=item["path"] + ".sha256", manifest=item["path"] + ".manifest.json",
                    manifest_data=manifest, compression=manifest.get("compression"),
                    compressor=None, position=manifest.get("position", {}),
                    checks={"checksum": True}, durations_s=manifest.get("durations_s", {}), reused=True), check
    return None, None


def inspect_source(params):
    try:
        conn = connect(params)
    except DbError as exc:
        raise BackupError(str(exc), check="connect") from None
    try:
        return backup_stream.source_info(conn, params["database"])
    finally:
        conn.close()


def dry_run(params, tools, info):
    name = codec.backup_file_name(params["database"], params["label"], params["compression"], utc_stamp())
    compress = codec.compress_command(params["compression"], tools, params["compression_level"],
                                     params["compression_threads"])
    dump = codec.dump_command(tools["dump"], "OPTION_FILE", params["database"],
                             codec.position_options(info["server"], info["log_bin"]))
    return dict(changed=True, path=os.path.join(params["backup_dir"], name), compression=params["compression"],
                compressor=os.path.basename(compress[0]), command=" ".join(dump[2:]) + " | " + " ".join(compress),
                server=info["server"], tables=info["tables"], reused=False,
                msg="would dump %s to %s" % (params["database"], os.path.join(params["backup_dir"], name)))


def make_work(params, tools, info, extra=None):
    def work(report, should_stop):
        progress = backup_stream.Progress(params["database"], callback=report, should_stop=should_stop)
        result = backup_stream.run_dump(
            params, info, tools, progress, database=params["database"], backup_dir=params["backup_dir"],
            compression=params["compression"], level=params["compression_level"],
            threads=params["compression_threads"], label=params["label"], host=socket.getfqdn(),
            helper_nice=params["helper_nice"])
        memory = {"worker_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "tools_peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
        return with_record(dict(result, changed=True, memory=memory, msg="backup %s verified (%s)%s" % (
            result["path"], ", ".join(sorted(result["checks"])),
            "; %s" % extra["reuse_check"]["msg"] if extra else ""), **(extra or {})), params)
    return work


def prepare(module, params):
    """Validate, find the tools, reuse or inspect the source. Returns (result or None, tools, info, extra): `extra`
    holds the reuse check that asked for a new backup."""
    for key in ("database", "backup_dir"):
        if not params.get(key):
            module.fail_json(msg="%s is required with mode=%s" % (key, params["mode"]))
    dir_changed = False
    if params["create_dir"] and not module.check_mode:
        try:
            dir_changed = files.ensure_dir(params["backup_dir"], files.parse_mode(params["dir_mode"]))
        except (OSError, ValueError) as exc:
            module.fail_json(msg="cannot create the backup directory %s (backup_dir, mode %s) on %s: %s"
                             % (params["backup_dir"], params["dir_mode"], socket.getfqdn(), exc))
    if not os.path.isdir(params["backup_dir"]) and not module.check_mode:
        module.fail_json(msg="backup directory %s does not exist on %s (backup_dir)"
                         % (params["backup_dir"], socket.getfqdn()))
    tools = backup_stream.find_tools()
    if not tools["dump"]:
        module.fail_json(msg="neither mariadb-dump nor mysqldump is installed on %s" % socket.getfqdn())
    reused, check = existing_backup(params)
    if reused:
        # changed only when the backup directory's mode had to be set (create_dir): the dump is not new.
        return with_record(dict(reused, changed=dir_changed,
                                msg="reusing the valid backup %s of %s (label %s): %s"
                                % (reused["path"], params["database"], params["label"], check["msg"])),
                           params), tools, None, None
    return None, tools, inspect_source(params), ({"reuse_check": check} if check else None)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    mode = params["mode"]
    if mode in ("status", "cancel"):
        backup_job.serve(module, params)
    require_pymysql(module)
    try:
        done, tools, info, extra = prepare(module, params)
        if done:
            module.exit_json(**dict(done, finished=True))
        if module.check_mode:
            module.exit_json(finished=True, **with_record(dict(dry_run(params, tools, info), **(extra or {})), params))
        work = make_work(params, tools, info, extra)
        if mode == "start":
            job_dir = backup_job.new_job_dir()
            pid = backup_job.start(job_dir, work, params["lease_seconds"])
            module.exit_json(changed=False, finished=False, job_dir=job_dir, pid=pid)
        module.exit_json(finished=True, **work(None, lambda: None))
    except BackupError as exc:
        module.fail_json(msg="backup of %s as %s failed: %s" % (params["database"], endpoint(params), exc),
                         check=exc.check)


if __name__ == "__main__":
    main()
