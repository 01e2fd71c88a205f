"""log_scan without a server: the default patterns on real MariaDB/MySQL/application lines, and reading files
(new lines only, whole lines only, rotation by rename and by truncation, missing and unreadable files)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.dbrelease import logscan
from conftest import ROOT
from log_scan import describe_server, targets

PATTERNS = yaml.safe_load((ROOT / "roles/verify/defaults/main.yml").read_text())["verify_log_patterns"]
COMPILED = logscan.compile_patterns(PATTERNS)

LINES = [
    # MariaDB 10.11
    ("server", "2026-12-01 10:15:02 31 [Warning] Aborted connection 31 to db: 'shop' user: 'app' host: "
               "'10.0.0.7' (Got an error reading communication packets)", "aborted_connection"),
    ("server", "2026-12-01 10:15:09 0 [Note] InnoDB: Transactions deadlock detected, dumping detailed information.",
     "deadlock"),
    ("server", "2026-12-01 10:16:00 12 [ERROR] Slave SQL: Error 'Duplicate entry '7' for key 'PRIMARY'' on query. "
               "Default database: 'shop'. Internal MariaDB error code: 1062", "replication"),
    ("server", "2026-12-01 10:16:00 12 [Warning] Slave: Duplicate entry '7' for key 'PRIMARY' Error_code: 1062",
     "replication"),
    ("server", "2026-12-01 10:16:01 12 [ERROR] Error running query, slave SQL thread aborted. Fix the problem, and "
               "restart the slave SQL thread with \"SLAVE START\".", "replication"),
    ("server", "2026-12-01 10:16:02 11 [ERROR] Error reading packet from server: Lost connection to server during "
               "query (server_errno=2013)", "replication"),
    ("server", "2026-12-01 10:16:03 11 [Note] Slave I/O thread exiting, read up to log 'bin.000002', position 4",
     None),
    ("server", "2026-12-01 10:17:00 0 [ERROR] mariadbd: Table './shop/orders' is marked as crashed and should be "
               "repaired", "server_error"),
    ("server", "2026-12-01 10:17:01 9 [Warning] Access denied for user 'app'@'10.0.0.7' (using password: YES)",
     "access_denied"),
    ("server", "2026-12-01 10:17:02 0 [Warning] InnoDB: Difficult to find free blocks in the buffer pool",
     "server_warning"),
    ("server", "2026-12-01 10:17:03 0 [Note] InnoDB: Buffer pool(s) load completed at 261201 10:17:03", None),
    # MySQL 8
    ("server", "2026-12-01T10:15:02.123456Z 31 [Note] [MY-010914] [Server] Aborted connection 31 to db: 'shop' "
               "user: 'app' host: '10.0.0.7' (Got an error reading communication packets).", "aborted_connection"),
    ("server", "2026-12-01T10:15:09.000001Z 12 [Note] [MY-012469] [InnoDB] Transactions deadlock detected, dumping "
               "detailed information.", "deadlock"),
    ("server", "2026-12-01T10:16:00.000000Z 13 [ERROR] [MY-010584] [Repl] Replica SQL for channel '': Worker 1 "
               "failed executing transaction 'ANONYMOUS'; Error_code: MY-001062", "replication"),
    ("server", "2026-12-01T10:17:00.000000Z 0 [Warning] [MY-010068] [Server] CA certificate ca.pem is self signed.",
     "server_warning"),
    ("server", "2026-12-01T10:17:00.000000Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for "
               "connections.", None),
    # The application's own lines
    ("application", '{"level":"error","time":1764584100000,"msg":"outbox relay failed","err":"ECONNRESET"}',
     "app_error"),
    ("application", '{"level":50,"time":1764584100000,"msg":"request failed"}', "app_error"),
    ("application", "2026-12-01T10:15:00.120Z ERROR relay: cannot deliver event 91", "app_error"),
    ("application", "TypeError: Cannot read properties of undefined (reading 'id')", "app_error"),
    ("application", "Error: ER_LOCK_DEADLOCK: Deadlock found when trying to get lock; try restarting transaction",
     "deadlock"),
    ("application", "2026-12-01T10:15:01Z WARN slow query: 2300 ms", "app_warning"),
    ("application", '{"level":"warn","msg":"retrying"}', "app_warning"),
    ("application", "2026-12-01T10:15:02Z INFO processed 40 events, 0 errors, no error found", None),
    ("application", "GET /health 200 3ms", None),
    # A server pattern does not apply to an application log, nor the reverse.
    ("application", "[ERROR] written by something else", "app_error"),
    ("server", "2026-12-01 10:17:04 0 [Note] ERROR in the name of a table is not an error line", None),
]


@pytest.mark.parametrize("kind,line,expected", LINES, ids=["%s-%d" % (k, i) for i, (k, _, _) in enumerate(LINES)])
def test_the_default_patterns_classify_real_log_lines(kind, line, expected):
    assert logscan.classify(line, COMPILED, kind) == expected


def test_every_default_pattern_has_a_test_line_and_valid_limits():
    assert {name for _k, _l, name in LINES if name} == {p["name"] for p in PATTERNS}
    for pattern in PATTERNS:
        assert pattern["severity"] in ("error", "warning")
        for key in ("warn_above", "fail_above"):
            assert pattern.get(key) is None or int(pattern[key]) >= 0, pattern


@pytest.mark.parametrize("patterns,message", [
    ([{"name": "x"}], "needs a name and a regex"),
    ([{"name": "x", "regex": "("}], "x: invalid regex"),
    ([{"name": "x", "regex": "a", "severity": "fatal"}], "severity must be error or warning"),
    ([{"name": "x", "regex": "a", "applies_to": "app"}], "applies_to must be all, server or application"),
    ([{"name": "x", "regex": "a"}, {"name": "x", "regex": "b"}], "defined twice"),
])
def test_invalid_patterns_are_refused_naming_them(patterns, message):
    with pytest.raises(logscan.PatternError, match=message):
        logscan.compile_patterns(patterns)


def write(path, *lines, newline=True):
    with open(path, "a") as handle:
        handle.write("\n".join(lines) + ("\n" if newline else ""))


ERR = "2026-12-01T10:15:00Z ERROR boom"
WARN = "2026-12-01T10:15:00Z WARN slow"


def scan(path, mark):
    return logscan.scan_file(str(path), mark, COMPILED, "application", samples=2)


def test_only_lines_written_after_the_mark_are_counted_and_reading_resumes(tmp_path):
    log = tmp_path / "app.log"
    write(log, ERR, ERR)
    mark = logscan.mark_file(str(log))
    assert mark["offset"] == log.stat().st_size
    write(log, ERR, WARN, "INFO fine")
    first = scan(log, mark)
    assert first["status"] == "ok" and first["new_counts"] == {"app_error": 1, "app_warning": 1}
    assert first["lines_read"] == 3 and first["samples"]["app_error"] == [ERR]
    write(log, ERR, ERR)
    second = scan(log, first["mark"])
    assert second["new_counts"] == {"app_error": 2}
    assert second["counts"] == {"app_error": 3, "app_warning": 1}  # totals since the mark
    assert second["samples"]["app_error"] == [ERR, ERR]  # at most `samples` kept


def test_a_line_still_being_written_waits_for_the_next_read(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    mark = logscan.mark_file(str(log))
    write(log, "2026-12-01 ERR", newline=False)
    first = scan(log, mark)
    assert first["lines_read"] == 0 and first["mark"]["offset"] == 0
    write(log, "OR half written")
    second = scan(log, first["mark"])
    assert second["new_counts"] == {"app_error": 1}


def test_a_renamed_log_is_read_to_its_end_then_the_new_one_from_its_start(tmp_path):
    log = tmp_path / "app.log"
    write(log, "INFO before")
    mark = logscan.mark_file(str(log))
    write(log, ERR)  # after the mark, in the file that is then rotated
    os.rename(log, tmp_path / "app.log.1")
    write(log, ERR, WARN)  # the new file
    result = scan(log, mark)
    assert result["rotated"] and result["rotated_from"].endswith("app.log.1")
    assert result["new_counts"] == {"app_error": 2, "app_warning": 1}
    assert "rotated: read the rest of" in result["note"]
    again = scan(log, result["mark"])
    assert again["new_counts"] == {} and not again["rotated"]


def test_a_rotated_log_that_is_not_recreated_yet_is_still_followed(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    mark = logscan.mark_file(str(log))
    os.rename(log, tmp_path / "app.log-20261201")
    write(tmp_path / "app.log-20261201", ERR)  # the writer still has the old file open
    gone = scan(log, mark)
    assert gone["status"] == "missing" and gone["new_counts"] == {"app_error": 1}
    write(tmp_path / "app.log-20261201", ERR)
    write(log, WARN)
    later = scan(log, gone["mark"])
    assert later["new_counts"] == {"app_error": 1, "app_warning": 1}


def test_a_compressed_rotation_is_said_and_the_new_file_read(tmp_path):
    log = tmp_path / "app.log"
    write(log, "INFO before")
    mark = logscan.mark_file(str(log))
    write(tmp_path / "app.log.new", ERR)
    os.unlink(log)  # rotated and compressed: the old inode is gone
    os.rename(tmp_path / "app.log.new", log)
    result = scan(log, mark)
    assert result["new_counts"] == {"app_error": 1}
    assert "old file is gone or compressed" in result["note"]


def test_a_truncated_log_copytruncate_is_read_from_its_start(tmp_path):
    log = tmp_path / "app.log"
    write(log, *["INFO padding line %d" % i for i in range(50)])
    mark = logscan.mark_file(str(log))
    log.write_text("")
    write(log, ERR)
    result = scan(log, mark)
    assert result["rotated"] and result["new_counts"] == {"app_error": 1}
    assert "copytruncate" in result["note"]


def test_a_log_created_after_the_mark_is_read_whole(tmp_path):
    log = tmp_path / "later.log"
    mark = logscan.mark_file(str(log))
    assert mark["exists"] is False and mark["status"] == "missing"
    write(log, ERR)
    result = scan(log, mark)
    assert result["status"] == "ok" and result["new_counts"] == {"app_error": 1}
    assert "did not exist at the last read" in result["note"]


def test_missing_and_unreadable_logs_are_said_not_raised(tmp_path):
    missing = scan(tmp_path / "nope.log", logscan.mark_file(str(tmp_path / "nope.log")))
    assert missing["status"] == "missing" and "does not exist" in missing["note"]
    (tmp_path / "dir.log").mkdir()
    directory = scan(tmp_path / "dir.log", None)
    assert directory["status"] == "unreadable" and "not a regular file" in directory["note"]
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)  # opening it would block: it must be refused before that
    assert scan(fifo, None)["status"] == "unreadable"


def test_a_log_this_user_may_not_read_is_said(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to run the scan as another user")
    log = tmp_path / "secret.log"
    write(log, ERR)
    log.chmod(0o600)
    tmp_path.chmod(0o755)
    code = ("import sys, json; sys.path.insert(0, %r); import ansible.module_utils as m; "
            "m.__path__.append(%r); from ansible.module_utils.dbrelease import logscan; "
            "print(json.dumps(logscan.scan_file(%r, None, [], 'application')))"
            % (str(ROOT / "library"), str(ROOT / "module_utils"), str(log)))
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"status": "unreadable"' in proc.stdout and "permission denied" in proc.stdout


def test_no_mark_counts_from_now_and_says_so(tmp_path):
    log = tmp_path / "app.log"
    write(log, ERR, ERR)
    result = scan(log, None)
    assert result["status"] == "no_mark" and result["new_counts"] == {}
    assert "counting starts now" in result["note"]
    write(log, ERR)
    assert scan(log, result["mark"])["new_counts"] == {"app_error": 1}


def test_more_than_max_bytes_skips_the_oldest_part_and_says_so(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    mark = logscan.mark_file(str(log))
    write(log, *[ERR] * 1000)
    result = logscan.scan_file(str(log), mark, COMPILED, "application", max_bytes=3000)
    assert 0 < result["new_counts"]["app_error"] < 1000
    assert result["skipped_bytes"] > 0 and "bytes were skipped" in result["note"]
    assert result["mark"]["offset"] == log.stat().st_size


def test_samples_are_cut_and_undecodable_bytes_do_not_break_the_count(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    mark = logscan.mark_file(str(log))
    with open(log, "ab") as handle:
        handle.write(b"ERROR \xff\xfe " + b"x" * 500 + b"\n")
    result = scan(log, mark)
    assert result["new_counts"] == {"app_error": 1}
    assert len(result["samples"]["app_error"][0]) == logscan.SAMPLE_CHARS


@pytest.mark.parametrize("log_error,datadir,expected", [
    ("/var/log/mysql/error.log", "/var/lib/mysql/", "/var/log/mysql/error.log"),
    ("./db1.err", "/var/lib/mysql/", "/var/lib/mysql/db1.err"),
    ("db1.err", "/var/lib/mysql", "/var/lib/mysql/db1.err"),
    ("", "/var/lib/mysql/", None),
    ("stderr", "/var/lib/mysql/", None),
])
def test_the_server_log_is_found_from_log_error_and_datadir(log_error, datadir, expected):
    path, note = logscan.resolve_server_log(log_error, datadir)
    assert path == expected
    assert bool(note) == (expected is None)


@pytest.mark.parametrize("flavor,level_name,level,deadlocks,hidden", [
    ("mariadb", "log_warnings", 2, 1, []),
    ("mariadb", "log_warnings", 1, 1, ["aborted connections are not logged (log_warnings is 1; 2 needed)"]),
    ("mysql", "log_error_verbosity", 2, 0, ["aborted connections are not logged (log_error_verbosity is 2; 3 needed)",
                                            "deadlocks are not logged (innodb_print_all_deadlocks is OFF)"]),
])
def test_settings_that_keep_lines_out_of_the_log_are_said(flavor, level_name, level, deadlocks, hidden):
    server = describe_server(flavor, b"./x.err", b"/d/", deadlocks, level_name, level)
    assert server["path"] == "/d/x.err" and server["hidden"] == hidden


def test_targets_read_the_server_log_first_and_each_path_once():
    assert targets("/d/x.err", ["/a/app.log", "/d/x.err", "/a/app.log", ""]) == [
        ("server error log", "/d/x.err", "server"), ("app.log", "/a/app.log", "application")]


def test_a_list_of_regexes_is_their_alternatives():
    compiled = logscan.compile_patterns([{"name": "x", "regex": ["^a", "b$"]}])
    assert [logscan.classify(line, compiled, "server") for line in ("a1", "1b", "1a1")] == ["x", "x", None]


def test_every_default_alternative_starts_with_a_literal_so_the_search_stays_fast():
    """A regex that starts with a literal is found by a plain string search; one that starts with \\b, a group, ^ or
    an ignorecase flag is tried at every position of the log, many times slower (docs/benchmarks.md, bench logs)."""
    for pattern in PATTERNS:
        assert not pattern.get("ignorecase"), pattern["name"]
        for part in pattern["regex"] if isinstance(pattern["regex"], list) else [pattern["regex"]]:
            assert part[0].isalnum() or part[0] in "\"_" or part[:2] in ("\\[", "\\("), (pattern["name"], part)
