#!/usr/bin/python
"""Ansible module: count the new lines of the server's error log and application logs by pattern."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: log_scan
short_description: Count new errors and warnings in the server's error log and application logs, by pattern
description:
  - With I(state=mark), records where each log ends now (the release's start), the I(marks) to pass back later.
  - With I(state=scan), reads what each log got since its mark, counts the lines by pattern (the first pattern of
    I(patterns) that applies to the file and matches the line classifies it) and returns the counts of this read
    (C(new_counts)), the totals since the marks were taken (C(counts)), a few sample lines per pattern, and the
    marks to resume from next time.
  - The server's error log is found from C(@@log_error) (relative to C(@@datadir)) when I(server_log=auto); a server
    that logs to stderr or syslog has no file to read, and the result says so. The result also says when the
    server's settings hide what a pattern looks for (C(log_warnings) below 2 hides aborted connections on
    MariaDB, C(log_error_verbosity) below 3 on MySQL; without C(innodb_print_all_deadlocks) deadlocks are not
    logged).
  - Follows log rotation (a renamed file is found by its inode and read to its end; a truncated one is read from
    its start) and says what could not be read. A log that does not exist or cannot be read is reported with
    C(status) C(missing) or C(unreadable) and a note, never as an error of the module.
  - Only whole lines are counted (a line still being written waits for the next read); at most I(max_bytes) are
    read per file and read, the oldest part being skipped and reported when more was written.
  - Reads only; C(changed) is always false.
options:
  state:
    description: C(mark) records the end of each log; C(scan) counts what was written since the marks.
    type: str
    choices: [mark, scan]
    default: scan
  server_log:
    description: The server's error log, C(auto) (from C(@@log_error), needs a connection), a path, or empty to
      read no server log.
    type: str
    default: auto
  files:
    description: Application log files to read, on this host (paths).
    type: list
    elements: str
    default: []
  patterns:
    description:
      - The patterns, in order; the first that applies to a file and matches a line classifies it.
      - Each is C(name), C(regex) (Python syntax), C(severity) (C(error) or C(warning)), C(applies_to) (C(all),
        C(server) or C(application)), C(ignorecase); other keys (thresholds) are ignored here.
    type: list
    elements: dict
    default: []
  marks:
    description: The marks returned by an earlier call (C(state=mark) or C(scan)), by path. A file without a mark
      is counted from now on (and said so).
    type: dict
    default: {}
  samples:
    description: Sample lines kept per pattern (first ones since the marks), each cut to 240 characters. 0 keeps
      none.
    type: int
    default: 3
  max_bytes:
    description: Most bytes read per file in one call.
    type: int
    default: 67108864
extends_documentation_fragment:
  - dbrelease.core.connection
attributes:
  check_mode:
    support: full
    details: Only reads; the same in check mode.
  diff_mode:
    support: none
notes:
  - Runs where the logs are (the database host for its error log); a file must be readable by the connection user.
requirements: [PyMySQL (only for server_log=auto)]
author: dbrelease
"""

EXAMPLES = r"""
# The connection comes from the play (module_defaults over group/dbrelease.core.db).
- name: Mark the logs at the release's start
  log_scan:
    state: mark
    files: [/var/log/app/app.log]
  register: __marks
  no_log: true

- name: Count what was logged since
  log_scan:
    state: scan
    files: [/var/log/app/app.log]
    patterns: "{{ verify_log_patterns }}"
    marks: "{{ __marks.marks }}"
  register: __scan
  no_log: true
"""

RETURN = r"""
files:
  description: One entry per log, C(name), C(path), C(kind) (C(server) or C(application)), C(status) (C(ok),
    C(missing), C(unreadable), C(no_file), C(no_mark)), C(note), C(new_counts), C(counts), C(samples),
    C(bytes_read), C(lines_read), C(skipped_bytes), C(rotated).
  returned: always
  type: list
  elements: dict
counts:
  description: Lines per pattern since the marks were taken, all logs together.
  returned: always
  type: dict
  sample: {deadlock: 1, server_error: 2, app_error: 7}
new_counts:
  description: Lines per pattern in this read only.
  returned: always
  type: dict
severity:
  description: Lines per severity since the marks (C(error), C(warning)).
  returned: always
  type: dict
marks:
  description: Where each log's next read resumes, by path (pass back as I(marks)).
  returned: always
  type: dict
server:
  description: What the server says about its error log, C(log_error), C(path), C(note), C(log_warnings) or
    C(log_error_verbosity), C(innodb_print_all_deadlocks), C(hidden) (what the settings keep out of the log).
  returned: when I(server_log=auto)
  type: dict
record:
  description: What the release record keeps - with I(state=mark), C(log_marks) (the marks, C(files) and C(server)
    as above; phases.preflight.log_marks); with I(state=scan), C(logs) (C(files) without their marks, C(counts),
    C(new_counts), C(severity), C(server), C(marks)).
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dbrelease.db import DbError, connect, connection_argument_spec, scrub, server_info
from ansible.module_utils.dbrelease.logscan import (
    PatternError,
    compile_patterns,
    mark_file,
    resolve_server_log,
    scan_file,
)


def server_settings(conn):
    """What the server says about its error log (read-only)."""
    info = server_info(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.log_error, @@global.datadir, @@global.innodb_print_all_deadlocks")
        log_error, datadir, deadlocks = cur.fetchone()
        if info["flavor"] == "mariadb":
            cur.execute("SELECT @@global.log_warnings")
            level_name, level = "log_warnings", int(cur.fetchone()[0])
        else:
            cur.execute("SELECT @@global.log_error_verbosity")
            level_name, level = "log_error_verbosity", int(cur.fetchone()[0])
    return describe_server(info["flavor"], log_error, datadir, deadlocks, level_name, level)


def describe_server(flavor, log_error, datadir, deadlocks, level_name, level):
    """Pure: the server's error log path and what its settings keep out of it."""
    log_error = log_error.decode() if isinstance(log_error, bytes) else log_error
    datadir = datadir.decode() if isinstance(datadir, bytes) else datadir
    path, note = resolve_server_log(log_error, datadir)
    hidden = []
    if (flavor == "mariadb" and level < 2) or (flavor != "mariadb" and level < 3):
        hidden.append("aborted connections are not logged (%s is %d; %s needed)"
                      % (level_name, level, "2" if flavor == "mariadb" else "3"))
    if not int(deadlocks or 0):
        hidden.append("deadlocks are not logged (innodb_print_all_deadlocks is OFF)")
    return {"log_error": log_error or "", "datadir": datadir or "", "path": path, "note": note,
            level_name: level, "innodb_print_all_deadlocks": bool(int(deadlocks or 0)), "hidden": hidden}


def targets(server_path, files):
    """[(name, path, kind)]: the server's log first, then the application logs (each path once)."""
    out = []
    seen = set()
    if server_path:
        out.append(("server error log", server_path, "server"))
        seen.add(server_path)
    for path in files:
        if path and path not in seen:
            out.append((os.path.basename(path), path, "application"))
            seen.add(path)
    return out


def run(p, conn_factory=connect):
    """The module's work for the validated parameters `p`; raises PatternError or DbError."""
    compiled = compile_patterns(p["patterns"])
    if p["state"] == "scan" and not compiled:
        raise PatternError("log_scan: no pattern to count (patterns is empty)")
    result = {"changed": False}
    server_path = None
    entries = []
    if p["server_log"] == "auto":
        conn = conn_factory(p)
        try:
            server = server_settings(conn)
        finally:
            conn.close()
        result["server"] = server
        server_path = server["path"]
        if not server_path:
            entries.append({"name": "server error log", "path": "", "kind": "server", "status": "no_file",
                            "note": server["note"], "new_counts": {}, "counts": {}, "samples": {},
                            "bytes_read": 0, "lines_read": 0, "skipped_bytes": 0, "rotated": False})
    elif p["server_log"]:
        server_path = p["server_log"]
    marks = p["marks"] or {}
    new_marks = {}
    for name, path, kind in targets(server_path, p["files"]):
        if p["state"] == "mark":
            mark = mark_file(path)
            new_marks[path] = mark
            entries.append({"name": name, "path": path, "kind": kind,
                            "status": mark.get("status", "ok"), "note": mark.get("note", ""),
                            "new_counts": {}, "counts": {}, "samples": {}, "bytes_read": 0, "lines_read": 0,
                            "skipped_bytes": 0, "rotated": False})
            continue
        scanned = scan_file(path, marks.get(path), compiled, kind, p["samples"], p["max_bytes"])
        new_marks[path] = scanned.pop("mark")
        entries.append(dict(scanned, name=name))
    counts, new_counts, severity = {}, {}, {"error": 0, "warning": 0}
    severities = {entry[0]: entry[1] for entry in compiled}
    for entry in entries:
        for name, n in entry["counts"].items():
            counts[name] = counts.get(name, 0) + n
            severity[severities.get(name, "error")] += n
        for name, n in entry["new_counts"].items():
            new_counts[name] = new_counts.get(name, 0) + n
    result.update(files=entries, counts=counts, new_counts=new_counts, severity=severity, marks=new_marks)
    kept = {key: result[key] for key in ("files", "counts", "new_counts", "severity", "marks", "server")
            if key in result}
    result["record"] = {"log_marks": kept} if p["state"] == "mark" else {"logs": kept}
    return result


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        state=dict(type="str", choices=["mark", "scan"], default="scan"),
        server_log=dict(type="str", default="auto"),
        files=dict(type="list", elements="str", default=[]),
        patterns=dict(type="list", elements="dict", default=[]),
        marks=dict(type="dict", default={}),
        samples=dict(type="int", default=3),
        max_bytes=dict(type="int", default=64 << 20),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p["samples"] < 0 or p["max_bytes"] < 1:
        module.fail_json(msg="log_scan: samples must be 0 or more and max_bytes at least 1, got %d and %d"
                             % (p["samples"], p["max_bytes"]))
    try:
        result = run(p)
    except PatternError as exc:
        module.fail_json(msg="%s (set the patterns in verify_log_patterns)" % exc)
    except DbError as exc:
        module.fail_json(msg="log_scan: finding the server's error log (@@log_error) failed: %s" % exc)
    except Exception as exc:  # PyMySQL errors: say where, never the password
        module.fail_json(msg="log_scan: reading @@log_error failed: %s" % scrub(str(exc), p))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
