"""Pure logic of the rollback's restore: checksum files, the dump scanner, privileges, checksums, verification."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from ansible.module_utils.dbrelease import rollback_restore as rr
from ansible.module_utils.dbrelease.backup_stream import find_tools
from db_restore import RestoreError, parse_checksum_file, verify_checksum

SHA = "a" * 64

# Excerpts of dumps: mariadb-dump 10.11 (taken from the sandbox, with a few objects added by hand: odd names, a
# DISABLE ON SLAVE event whose comment says DO) and mysqldump 8.0 (written in its documented format: quoted trigger
# names, "Temporary view structure" placeholders).
FIXTURES = Path(__file__).parent / "fixtures"
MARIADB_DUMP = (FIXTURES / "mariadb10.11" / "rollback.dump.sql").read_bytes()
MYSQL8_DUMP = (FIXTURES / "mysql8" / "rollback.dump.sql").read_bytes()


@pytest.mark.parametrize("text, expected", [
    ("%s  shop.sql.gz\n" % SHA, SHA),
    ("%s *shop.sql.gz\n" % SHA, SHA),
    ("%s  /var/backups/shop.sql.gz\n" % SHA.upper(), SHA),
    ("%s  other.sql.gz\n" % SHA, None),
    ("not-a-sum  shop.sql.gz\n", None),
    ("", None),
])
def test_checksum_file_in_sha256sum_format_is_read_for_the_right_file(text, expected):
    assert parse_checksum_file(text, "shop.sql.gz") == expected


def test_a_file_whose_checksum_differs_from_the_recorded_one_is_refused(tmp_path):
    dump = tmp_path / "shop.sql.gz"
    dump.write_bytes(gzip.compress(b"CREATE TABLE t (id INT);\n-- Dump completed\n"))
    real = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert verify_checksum(str(dump), real) == {"sha256": real, "bytes": dump.stat().st_size}
    with pytest.raises(RestoreError, match="checksum mismatch .* the release recorded " + "0" * 64):
        verify_checksum(str(dump), "0" * 64)
    (tmp_path / "shop.sql.gz.sha256").write_text("%s  shop.sql.gz\n" % ("1" * 64))
    with pytest.raises(RestoreError, match="shop.sql.gz.sha256 says " + "1" * 64):
        verify_checksum(str(dump), real)
    with pytest.raises(RestoreError, match="does not exist"):
        verify_checksum(str(tmp_path / "missing.sql.gz"), real)


@pytest.mark.parametrize("dump, declared, definers, states", [
    (MARIADB_DUMP,
     {"tables": ["p", "we`ird"], "views": ["vw"], "routines": ["function f", "procedure do it"],
      "triggers": ["orders_status_default", "tr"], "events": ["ev", "off"]},
     {"root@localhost": ["trigger tr", "event ev", "event off", "routine function f", "routine procedure do it"],
      "app@%": ["trigger orders_status_default"], "reporting@%": ["view vw"]},
     {"ev": "ENABLE", "off": "DISABLE ON SLAVE"}),
    (MYSQL8_DUMP,
     {"tables": ["t"], "views": ["v"], "routines": ["procedure p"], "triggers": ["trg"], "events": ["e"]},
     {"root@localhost": ["trigger trg", "event e", "view v"], "admin@%": ["routine procedure p"]},
     {"e": "DISABLE"}),
])
def test_the_scanner_finds_every_declared_object_its_definer_and_event_state(dump, declared, definers, states):
    scanner = rr.DumpScanner()
    for i in range(0, len(dump), 37):  # chunk boundaries anywhere, mid-line included
        scanner.feed(dump[i:i + 37])
    scanner.finish()
    assert scanner.declared() == declared
    assert {k: sorted(v) for k, v in scanner.definers.items()} == {k: sorted(v) for k, v in definers.items()}
    assert scanner.event_states == states


def test_the_scanner_looks_only_at_line_starts_of_long_insert_lines():
    long_row = b"INSERT INTO `p` VALUES " + b",".join(b"(%d,'-- Table structure for table `x`')" % i
                                                   for i in range(5000)) + b";\n"
    scanner = rr.DumpScanner()
    for chunk in (b"-- Table structure for table `p`\n", long_row[:70000], long_row[70000:],
                  b"-- Table structure for table `q`\n"):
        scanner.feed(chunk)
    scanner.finish()
    assert scanner.declared()["tables"] == ["p", "q"]


def test_read_dump_refuses_a_dump_cut_short_and_scans_a_complete_one(tmp_path):
    tools = find_tools()
    good = tmp_path / "a.sql.gz"
    good.write_bytes(gzip.compress(MARIADB_DUMP))
    found = rr.read_dump(str(good), tools)
    assert found["declared"]["tables"] == ["p", "we`ird"] and found["bytes_uncompressed"] == len(MARIADB_DUMP)
    cut = tmp_path / "b.sql.gz"
    cut.write_bytes(gzip.compress(MARIADB_DUMP[:-60]))
    with pytest.raises(rr.RestoreError, match="the dump is incomplete"):
        rr.read_dump(str(cut), tools)
    broken = tmp_path / "c.sql.gz"
    broken.write_bytes(gzip.compress(MARIADB_DUMP)[:-20])
    with pytest.raises(rr.RestoreError, match="does not decompress"):
        rr.read_dump(str(broken), tools)
    with pytest.raises(rr.RestoreError, match="neither .sql.gz nor .sql.zst"):
        rr.read_dump(str(tmp_path / "d.sql"), tools)


@pytest.mark.parametrize("grants, privilege, schema, held", [
    ({"*.*": {"ALL"}}, "SUPER", None, True),
    ({"*.*": {"ALL"}}, "GRANT", None, False),
    ({"shop.*": {"ALL"}}, "CREATE", "shop", True),
    ({"shop.*": {"ALL"}}, "CREATE", "shop__dbrelease_rollback_1a2b", False),
    ({"shop\\_%.*": {"ALL"}}, "CREATE", "shop__dbrelease_rollback_1a2b", True),
    ({"shop\\_%.*": {"ALL"}}, "CREATE", "shopx", False),
    ({"sh_p.*": {"CREATE"}}, "CREATE", "shop", True),
    ({"shop.orders": {"ALL"}}, "CREATE", "shop", False),
    ({"shop.*": {"SELECT", "INSERT"}}, "DROP", "shop", False),
    ({"shop.*": {"ALL"}}, "SUPER", None, False),
    ({"*.*": {"SET USER"}}, "SET USER", None, True),
])
def test_privileges_are_read_from_global_and_database_level_grants_with_wildcards(grants, privilege, schema, held):
    assert rr.holds(grants, privilege, schema) is held


MARIADB = {"flavor": "mariadb", "version_tuple": [10, 11, 6]}
MYSQL = {"flavor": "mysql", "version_tuple": [8, 0, 36]}


def test_missing_privileges_name_each_privilege_its_scope_and_what_needs_it():
    dump = {"declared": {"tables": ["t"], "views": ["v"], "routines": ["function f"], "triggers": [], "events": []},
            "definers": {"app@localhost": ["view v"], "reporting@%": ["view w", "routine function f"]}}
    acct = {"user": "app@localhost", "grants": {"shop.*": {"ALL"}}}
    needs = {"shop": rr.load_needs(dump["declared"]), "shop__x": [("CREATE", "CREATE DATABASE")]}
    missing = rr.missing_privileges(acct, MARIADB, dump, needs, {"enabled": True, "trust": False}, replay=True)
    assert missing == [
        "CREATE on `shop__x`.* (CREATE DATABASE)",
        "SET USER or SUPER on *.* (objects whose DEFINER is another account: reporting@% for view w, "
        "routine function f)",
        "SUPER on *.*, or the server setting log_bin_trust_function_creators=1 (with binary logging on, creating "
        "the dump's routines and triggers needs one of them)",
        "BINLOG REPLAY or SUPER on *.* (the BINLOG statements of the point-in-time replay)",
        "REPLICATION SLAVE on *.* (reading the binary logs from the server)",
    ]
    assert rr.missing_privileges({"user": "root@localhost", "grants": {"*.*": {"ALL"}}}, MARIADB, dump, needs,
                                 {"enabled": True, "trust": False}, replay=True) == []
    mysql = rr.missing_privileges({"user": "a@%", "grants": {"*.*": {"SELECT"}, "shop.*": {"ALL"}}}, MYSQL, dump,
                                  {"shop": []}, {"enabled": False})
    assert mysql == ["SET_USER_ID or SUPER on *.* (objects whose DEFINER is another account: app@localhost for "
                     "view v; reporting@% for view w, routine function f)"]


@pytest.mark.parametrize("text, clause, expected", [
    ("CREATE DEFINER=`r`@`l` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01' ON COMPLETION NOT PRESERVE "
     "DISABLE DO DELETE FROM t WHERE a = 'ENABLE DO'", "ENABLE",
     "CREATE DEFINER=`r`@`l` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01' ON COMPLETION NOT PRESERVE "
     "ENABLE DO DELETE FROM t WHERE a = 'ENABLE DO'"),
    ("CREATE EVENT `e` ON SCHEDULE AT '2026-01-01' ON COMPLETION PRESERVE ENABLE COMMENT 'x DISABLE DO' DO SELECT 1",
     "DISABLE", "CREATE EVENT `e` ON SCHEDULE AT '2026-01-01' ON COMPLETION PRESERVE DISABLE COMMENT 'x DISABLE DO' "
     "DO SELECT 1"),
    ("CREATE EVENT `e` ON SCHEDULE EVERY 1 HOUR DISABLE ON SLAVE DO SELECT 1", "ENABLE",
     "CREATE EVENT `e` ON SCHEDULE EVERY 1 HOUR ENABLE DO SELECT 1"),
])
def test_an_event_definition_gets_the_state_it_had(text, clause, expected):
    assert rr.set_event_state(text, clause) == expected


def test_names_fit_the_64_character_limit_and_never_look_like_each_other():
    long = "d" * 64
    assert len(rr.staging_name(long, "abcd1234")) == 64 and rr.staging_name(long, "abcd1234").endswith(
        "__dbrelease_rollback_abcd1234")
    assert rr.kept_name("shop", "20261201T110104Z") == "shop__before_rollback_20261201T110104Z"
    assert len(rr.kept_name(long, "20261201T110104Z")) == 64


def test_the_recorded_digests_are_read_from_a_restore_test_and_sampled_tables_have_none():
    recorded = {"rows": {"orders": {"source": 3, "restored": 3}},
                "checksums": {"orders": {"method": "primary key", "sampled": False, "digest": "00ff00ff00ff00ff"},
                              "events_log": {"method": "primary key", "sampled": True, "every": 4},
                              "legacy": "0a0b0c0d0e0f0102"}}
    assert rr.expectations(recorded)["checksums"] == {"orders": "00ff00ff00ff00ff", "legacy": "0a0b0c0d0e0f0102"}
    assert rr.expectations(recorded)["rows"] == {"orders": 3}


def test_verification_names_what_is_missing_and_what_differs_from_the_record():
    declared = {"tables": ["a", "b"], "views": ["v"], "routines": [], "triggers": ["t"], "events": []}
    snap = {"tables": ["a", "c"], "views": ["v"], "routines": [], "triggers": ["t"], "events": []}
    checksums = {"a": {"rows": 3, "checksum": "x"}, "c": {"rows": 0, "checksum": ""}}
    problems = rr.verification_problems(declared, snap, checksums, {"rows": {"a": 4}, "checksums": {"a": "y"},
                                                                   "objects": {"views": 2}})
    assert problems == [
        "table b is in the dump but missing from the restored copy",
        "table c is in the restored copy but not declared in the dump",
        "1 views restored, the backup's restore test counted 2",
        "table a has 3 rows restored, the backup's restore test counted 4",
        "table a has checksum x restored, y was recorded for this backup",
    ]
    assert rr.verification_problems(declared, dict(snap, tables=["a", "b"]), checksums, {"rows": {"a": 3}}) == []
