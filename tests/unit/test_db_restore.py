"""Pure functions of library/db_restore.py: checksum files, dump trailers, decompressors."""

from __future__ import annotations

import gzip
import hashlib

import pytest
from db_restore import RestoreError, decompress_command, ends_with_trailer, parse_checksum_file, verify

SHA = "a" * 64


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


@pytest.mark.parametrize("tail, complete", [
    (b"UNLOCK TABLES;\n-- Dump completed on 2026-11-28  6:18:14\n", True),
    (b"UNLOCK TABLES;\n-- Dump completed\n\n\n", True),
    (b"INSERT INTO `users` VALUES (1,'a'),(2,", False),
    (b"-- Dump completed on 2026\nINSERT INTO t VALUES (1);\n", False),
    (b"", False),
])
def test_only_a_dump_ending_with_the_completion_trailer_counts_as_complete(tail, complete):
    assert ends_with_trailer(tail) is complete


def test_decompressor_follows_the_extension_and_refuses_unknown_ones():
    assert decompress_command("/b/x.sql.gz")[1:] == ["-dc", "/b/x.sql.gz"]
    assert decompress_command("/b/x.sql.zst")[0].endswith("zstd")
    with pytest.raises(RestoreError, match="neither .sql.gz nor .sql.zst"):
        decompress_command("/b/x.sql")


def test_verify_refuses_a_file_whose_checksum_differs_from_the_recorded_one(tmp_path):
    dump = tmp_path / "shop.sql.gz"
    dump.write_bytes(gzip.compress(b"CREATE TABLE t (id INT);\n-- Dump completed\n"))
    real = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert verify(str(dump), real) == {"sha256": real, "bytes": dump.stat().st_size}
    with pytest.raises(RestoreError, match="checksum mismatch .* the release recorded " + "0" * 64):
        verify(str(dump), "0" * 64)
    (tmp_path / "shop.sql.gz.sha256").write_text("%s  shop.sql.gz\n" % ("1" * 64))
    with pytest.raises(RestoreError, match="shop.sql.gz.sha256 says " + "1" * 64):
        verify(str(dump), real)
    with pytest.raises(RestoreError, match="does not exist"):
        verify(str(tmp_path / "missing.sql.gz"), real)
