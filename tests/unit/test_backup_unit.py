"""Pure logic of the backup phase: names, commands, trailer/position parsing, manifests, comparisons, filters."""

from __future__ import annotations

import datetime
import os
import threading
import time

import pytest
from ansible.module_utils.dbrelease import backup as codec
from ansible.module_utils.dbrelease import backup_compare as cmp
from ansible.module_utils.dbrelease import backup_job, clock
from ansible.module_utils.dbrelease.backup_restore import RestoreFilter, restore_command

TOOLS = {"pigz": "/usr/bin/pigz", "gzip": "/bin/gzip", "zstd": "/usr/bin/zstd"}


@pytest.mark.parametrize("db,label,comp,expected", [
    ("shop", "v1.2.0", "gzip", "shop_v1.2.0_20261128T061814Z.sql.gz"),
    ("shop", "v1.2.0/canonical schema", "zstd", "shop_v1.2.0_canonical_schema_20261128T061814Z.sql.zst"),
    ("shop", "", "gzip", "shop_20261128T061814Z.sql.gz"),
    ("shop", "///", "gzip", "shop_20261128T061814Z.sql.gz"),
])
def test_backup_file_name_is_db_label_stamp_with_the_compression_extension(db, label, comp, expected):
    assert codec.backup_file_name(db, label, comp, "20261128T061814Z") == expected


def test_backup_file_name_rejects_an_unknown_compression():
    with pytest.raises(ValueError, match="unknown compression"):
        codec.backup_file_name("shop", "v1", "bzip2", "20261128T061814Z")


def test_partial_name_is_hidden_and_never_ends_like_a_backup():
    name = codec.partial_name("shop_v1_20261128T061814Z.sql.gz")
    assert name.startswith(".") and name.endswith(".partial")
    assert codec.compression_of(name) is None


def test_utc_stamp_is_sortable_utc():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert clock.utc_stamp(when) == "20260102T030405Z"


@pytest.mark.parametrize("name,db,label,expected", [
    ("shop_v1_20261128T061814Z.sql.gz", "shop", None, True),
    ("shop_v1_20261128T061814Z.sql.zst", "shop", "v1", True),
    ("shop_v2_20261128T061814Z.sql.gz", "shop", "v1", False),
    ("shop_v1_20261128T061814Z.sql.gz.sha256", "shop", None, False),
    (".shop_v1_20261128T061814Z.sql.gz.partial", "shop", None, False),
    ("shopping_v1_20261128T061814Z.sql.gz", "shop", None, False),
    ("shop_v1_20261128T061814Z.sql", "shop", None, False),
    ("shop_v1.sql.gz", "shop", None, False),
    ("shop_20261128T061814Z.sql.gz", "shop", "", True),
])
def test_candidate_matches_only_published_backups_of_the_database(name, db, label, expected):
    assert codec.candidate_matches(name, db, label) is expected


@pytest.mark.parametrize("server,log_bin,expected", [
    ({"flavor": "mariadb", "version_tuple": [10, 11, 6]}, True, ["--master-data=2", "--gtid"]),
    ({"flavor": "mysql", "version_tuple": [8, 0, 36]}, True, ["--source-data=2"]),
    ({"flavor": "mysql", "version_tuple": [8, 0, 25]}, True, ["--master-data=2"]),
    ({"flavor": "mysql", "version_tuple": [5, 7, 44]}, True, ["--master-data=2"]),
    ({"flavor": "mariadb", "version_tuple": [10, 11, 6]}, False, []),
])
def test_position_options_follow_the_server_flavour_and_version(server, log_bin, expected):
    assert codec.position_options(server, log_bin) == expected


def test_dump_command_has_the_option_file_first_and_no_databases_flag():
    cmd = codec.dump_command("/usr/bin/mariadb-dump", "/tmp/x/client.cnf", "shop", ["--master-data=2"])
    assert cmd[1] == "--defaults-extra-file=/tmp/x/client.cnf"
    assert cmd[-1] == "shop"
    for flag in ("--single-transaction", "--routines", "--events", "--triggers", "--master-data=2"):
        assert flag in cmd
    assert "--databases" not in cmd and "-B" not in cmd
    assert not any("password" in arg for arg in cmd)


@pytest.mark.parametrize("bad", ["", "-e", "--all-databases"])
def test_dump_command_refuses_a_database_name_that_reads_as_an_option(bad):
    with pytest.raises(ValueError):
        codec.dump_command("/usr/bin/mariadb-dump", "/tmp/x.cnf", bad, [])


ISAL = dict(TOOLS, igzip="/usr/bin/igzip")


@pytest.mark.parametrize("comp,tools,level,threads,expected", [
    ("gzip", TOOLS, None, 0, ["/usr/bin/pigz", "-c"]),
    ("gzip", TOOLS, 1, 2, ["/usr/bin/pigz", "-c", "-p2", "-1"]),
    ("gzip", {"gzip": "/bin/gzip"}, None, 2, ["/bin/gzip", "-c"]),
    ("gzip", ISAL, 1, 0, ["/usr/bin/igzip", "-c", "-1"]),
    ("gzip", ISAL, 3, 2, ["/usr/bin/igzip", "-c", "-3", "-T2"]),
    ("gzip", ISAL, None, 0, ["/usr/bin/pigz", "-c"]),  # the tool's default level (6): igzip stops at 3
    ("gzip", ISAL, 9, 1, ["/usr/bin/pigz", "-c", "-p1", "-9"]),
    ("zstd", TOOLS, None, 0, ["/usr/bin/zstd", "-c", "-q", "-T0"]),
    ("zstd", TOOLS, 19, 1, ["/usr/bin/zstd", "-c", "-q", "-T1", "-19"]),
])
def test_compress_command_prefers_igzip_then_pigz_and_runs_zstd_threaded(comp, tools, level, threads, expected):
    assert codec.compress_command(comp, tools, level, threads) == expected


@pytest.mark.parametrize("tools,expected", [
    (ISAL, "/usr/bin/igzip"), (TOOLS, "/usr/bin/pigz"), ({"gzip": "/bin/gzip"}, "/bin/gzip"),
])
def test_any_gzip_tool_reads_a_gz_backup_the_fastest_first(tools, expected):
    assert codec.decompress_command("gzip", tools) == [expected, "-dc"]


@pytest.mark.parametrize("comp,tools,words", [
    ("zstd", {"gzip": "/bin/gzip"}, "zstd is not installed"),
    ("gzip", {}, "none of igzip, pigz or gzip"),
])
def test_compress_command_names_the_missing_tool(comp, tools, words):
    with pytest.raises(codec.BackupError, match=words):
        codec.compress_command(comp, tools)


@pytest.mark.parametrize("tail,expected", [
    (b"INSERT ...;\n-- Dump completed on 2026-11-28  6:18:14\n", "-- Dump completed on 2026-11-28  6:18:14"),
    (b"x\n-- Dump completed\n\n", "-- Dump completed"),
    (b"INSERT INTO t VALUES (1),(2", None),
    (b"-- Dump completed on 2026-11-28  6:18:14\nINSERT INTO t VALUES (1);\n", None),
    (b"", None),
    (b"-- Dump completed on 2026-11-28 garbage\n", None),
])
def test_trailer_line_is_found_only_as_the_last_line(tail, expected):
    assert codec.trailer_line(tail) == expected


@pytest.mark.parametrize("head,expected", [
    ("-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000003', MASTER_LOG_POS=4521;\n"
     "-- SET GLOBAL gtid_slave_pos='0-1-27';",
     {"binlog_file": "binlog.000003", "binlog_pos": 4521, "gtid": "0-1-27"}),
    ("-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='bin.000001', SOURCE_LOG_POS=157;\n"
     "SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5';",
     {"binlog_file": "bin.000001", "binlog_pos": 157, "gtid": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"}),
    ("-- MariaDB dump 10.19\n-- Host: localhost", {}),
])
def test_parse_position_reads_binlog_file_position_and_gtid(head, expected):
    assert codec.parse_position(head) == expected


def test_sha256_line_round_trips_in_sha256sum_format():
    digest = "a" * 64
    line = codec.sha256_line(digest, "shop.sql.gz")
    assert line == digest + "  shop.sql.gz\n"
    assert codec.parse_sha256_line(line) == (digest, "shop.sql.gz")
    assert codec.parse_sha256_line(("B" * 64) + " *x.sql.gz") == ("b" * 64, "x.sql.gz")


@pytest.mark.parametrize("text", ["", "abc  x.sql.gz", ("a" * 63) + "  x", "a" * 64])
def test_parse_sha256_line_rejects_what_sha256sum_would_not_write(text):
    with pytest.raises(ValueError):
        codec.parse_sha256_line(text)


def test_manifest_keeps_sizes_ratio_and_drops_the_option_file_path():
    manifest = codec.build_manifest(
        database="shop", file_name="f.sql.gz", compression="gzip", server={"version": "10.11", "flavor": "mariadb"},
        position={}, tables=[{"name": "t"}], sha256="a" * 64, bytes_compressed=100, bytes_uncompressed=500,
        durations={"dump": 1.23456}, tools={"pigz": "pigz 2.6"}, host="db1", label="v1", created="x",
        command=["mariadb-dump", "--defaults-extra-file=/tmp/secret/client.cnf", "--single-transaction", "shop"])
    assert manifest["ratio"] == 5.0
    assert manifest["bytes"] == {"compressed": 100, "uncompressed": 500}
    assert manifest["durations_s"] == {"dump": 1.235}
    assert manifest["command"] == ["mariadb-dump", "--single-transaction", "shop"]


def test_progress_line_shows_bytes_rate_and_elapsed():
    line = codec.progress_line({"database": "shop", "stage": "dumping", "bytes_uncompressed": 10 * 1024 * 1024,
                               "bytes_compressed": 2 * 1024 * 1024, "elapsed_s": 5})
    assert line == "shop dumping: 10.0 MiB dumped, 2.0 MiB written, 2.0 MiB/s, 5s elapsed"


# -- comparison of a restored copy ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,text,expected", [
    ("tables", "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4",
     "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"),
    ("views", "select `shop`.`orders`.`id` AS `id` from `shop`.`orders`", "select `orders`.`id` AS `id` from `orders`"),
    ("views", "select `other`.`t`.`id` from `other`.`t`", "select `other`.`t`.`id` from `other`.`t`"),
    ("events", "CREATE EVENT `e` ON SCHEDULE EVERY 1 HOUR ON COMPLETION NOT PRESERVE DISABLE DO delete from t",
     "CREATE EVENT `e` ON SCHEDULE EVERY 1 HOUR ON COMPLETION NOT PRESERVE <state> DO delete from t"),
    ("events", "... PRESERVE ENABLE COMMENT 'it''s' DO x", "... PRESERVE <state> COMMENT 'it''s' DO x"),
    ("tables", None, ""),
])
def test_normalise_removes_the_schema_name_auto_increment_and_event_state(kind, text, expected):
    assert cmp.normalise(kind, text, "shop") == expected


def test_normalise_makes_source_and_copy_of_a_view_equal():
    source = cmp.normalise("views", "select `shop`.`t`.`a` from `shop`.`t`", "shop")
    copy = cmp.normalise("views", "select `shop__dbrelease_restore_ab`.`t`.`a` from `shop__dbrelease_restore_ab`.`t`",
                         "shop__dbrelease_restore_ab")
    assert source == copy


@pytest.mark.parametrize("source,restored,expected", [
    ({"tables": {"a": "x", "b": "y"}}, {"tables": {"a": "x"}}, ["table b is missing from the restored copy"]),
    ({"views": {"v": "x"}}, {"views": {"v": "x", "w": "y"}}, ["view w is in the restored copy but not in the source"]),
    ({"triggers": {"t": "same"}}, {"triggers": {"t": "same"}}, []),
    ({"routines": {"procedure p": "BEGIN 1 END"}}, {"routines": {"procedure p": "BEGIN 2 END"}},
     ["routine procedure p has a different definition: source 'BEGIN 1 END' vs restored 'BEGIN 2 END'"]),
    ({"events": {"e": "x"}}, {}, ["event e is missing from the restored copy"]),
])
def test_compare_objects_names_each_missing_extra_or_different_object(source, restored, expected):
    assert cmp.compare_objects(source, restored) == expected


@pytest.mark.parametrize("exact,problems,live", [
    (True, ["table t has 9 rows in the restored copy but 10 in the source"], {}),
    (False, [], {"t": {"source": 10, "restored": 9, "difference": 1}}),
])
def test_compare_counts_fails_when_exact_and_reports_the_live_difference_otherwise(exact, problems, live):
    assert cmp.compare_counts({"t": 10, "u": 3}, {"t": 9, "u": 3}, exact) == (problems, live)


@pytest.mark.parametrize("db", ["shop", "x" * 64])
def test_restore_name_fits_the_identifier_limit(db):
    name = cmp.restore_name(db, "deadbeef")
    assert len(name) <= 64 and name.endswith("__dbrelease_restore_deadbeef")


# -- the restore stream ----------------------------------------------------------------------------------------
DUMP = (b"CREATE TABLE t (a int);\nINSERT INTO t VALUES (1),(2);\n-- ENABLE DO in data is left alone\n"
        b"\n-- Dumping events for database 'shop'\n--\nDELIMITER ;;\n"
        b"/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `purge` ON SCHEDULE EVERY 1 HOUR "
        b"STARTS '2026-11-28 06:00:00' ON COMPLETION NOT PRESERVE ENABLE DO delete from t */ ;;\n"
        b"/*!50106 CREATE*/ /*!50117 DEFINER=`root`@`localhost`*/ /*!50106 EVENT `tidy` ON SCHEDULE EVERY 1 DAY "
        b"ON COMPLETION PRESERVE ENABLE COMMENT 'keep ENABLE DO' DO delete from t */ ;;\n"
        b"DELIMITER ;\n-- Dump completed on 2026-11-28  6:18:14\n")


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_event_disabler_creates_events_disabled_whatever_the_chunk_size(size):
    filt = RestoreFilter()
    out = b"".join(filt.feed(DUMP[i:i + size]) for i in range(0, len(DUMP), size)) + filt.flush()
    assert filt.disabled == 2
    assert out == DUMP.replace(b"NOT PRESERVE ENABLE DO", b"NOT PRESERVE DISABLE DO").replace(
        b"PRESERVE ENABLE COMMENT", b"PRESERVE DISABLE COMMENT")
    assert b"-- ENABLE DO in data is left alone" in out


def test_event_disabler_passes_a_dump_without_events_unchanged():
    data = b"CREATE TABLE t (a int);\n-- Dump completed\n"
    filt = RestoreFilter()
    assert filt.feed(data[:5]) + filt.feed(data[5:]) + filt.flush() == data
    assert filt.disabled == 0


def test_restore_command_has_the_option_file_first_and_skips_the_binlog():
    cmd = restore_command("/usr/bin/mariadb", "/tmp/o.cnf", "shop__dbrelease_restore_x")
    assert cmd[1] == "--defaults-extra-file=/tmp/o.cnf" and cmd[-1] == "shop__dbrelease_restore_x"
    assert "--init-command=SET SESSION sql_log_bin=0" in cmd
    assert "--init-command=SET SESSION sql_log_bin=0" not in restore_command("m", "o", "d", skip_binlog=False)


# -- detached jobs ---------------------------------------------------------------------------------------------
def test_job_dir_check_refuses_directories_that_are_not_backup_jobs(tmp_path):
    with pytest.raises(ValueError):
        backup_job.check_job_dir(str(tmp_path))
    with pytest.raises(ValueError):
        backup_job.check_job_dir("/etc")
    job = backup_job.new_job_dir()
    try:
        assert backup_job.check_job_dir(job) == os.path.realpath(job)
        assert os.stat(job).st_mode & 0o777 == 0o700
    finally:
        backup_job.remove(job)


def test_lease_expires_when_the_controller_stops_polling():
    job = backup_job.new_job_dir()
    try:
        backup_job.touch_lease(job)
        assert backup_job.lease_expired(job, 60) is None
        old = os.path.getmtime(os.path.join(job, "lease")) - 120
        os.utime(os.path.join(job, "lease"), (old, old))
        assert "stopped polling" in backup_job.lease_expired(job, 60)
        assert backup_job.lease_expired(job, 0) is None
    finally:
        backup_job.remove(job)


def test_a_long_poll_returns_as_soon_as_the_job_ends_and_otherwise_after_its_wait():
    job = backup_job.new_job_dir()
    try:
        backup_job.write_status(job, {"state": "running", "pid": os.getpid()})
        started = time.monotonic()
        assert backup_job.wait_status(job, 0.3)["state"] == "running"
        assert 0.3 <= time.monotonic() - started < 2
        ender = threading.Timer(0.3, backup_job.write_status, (job, {"state": "done", "result": {}}))
        ender.start()
        started = time.monotonic()
        assert backup_job.wait_status(job, 30)["state"] == "done"
        assert time.monotonic() - started < 5, "the end of the job must end the wait"
        ender.join()
    finally:
        backup_job.remove(job)


def test_recent_age_is_measured_from_the_utc_stamp():
    from backup_recent import age_hours

    now = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=datetime.UTC)
    assert age_hours("20261128T060000Z", now) == 6.0


# -- checks of a dump verified while it was written -------------------------------------------------------------
GOOD_CHECK = {"rc": 0, "bytes": 100, "tail": b"INSERT 1;\n-- Dump completed on 2026-11-28  6:18:14\n", "stderr": ""}


@pytest.mark.parametrize("checked,disk_sha,failed", [
    (GOOD_CHECK, "a" * 64, []),
    (GOOD_CHECK, "b" * 64, ["checksum"]),
    (dict(GOOD_CHECK, rc=1, stderr="gzip: stdin: unexpected end of file"), "a" * 64, ["decompress"]),
    (dict(GOOD_CHECK, bytes=99), "a" * 64, ["decompress"]),
    (dict(GOOD_CHECK, tail=b"INSERT INTO t VALUES (1"), "a" * 64, ["trailer"]),
])
def test_stream_checks_name_each_failed_check(checked, disk_sha, failed):
    from ansible.module_utils.dbrelease.backup_checks import failed_checks, stream_checks

    report = stream_checks("gzip", checked, 100, "a" * 64, disk_sha)
    assert failed_checks(report) == failed


def test_sweep_removes_only_idle_finished_jobs():
    done, running = backup_job.new_job_dir(), backup_job.new_job_dir()
    try:
        backup_job.write_status(done, {"state": "done", "pid": 1})
        backup_job.write_status(running, {"state": "running", "pid": os.getpid()})
        for job in (done, running):
            backup_job.touch_lease(job)
            old = os.path.getmtime(os.path.join(job, "lease")) - 3600
            os.utime(os.path.join(job, "lease"), (old, old))
        removed = backup_job.sweep()
        assert done in removed and not os.path.exists(done)
        assert os.path.isdir(running)
    finally:
        backup_job.remove(done)
        backup_job.remove(running)
