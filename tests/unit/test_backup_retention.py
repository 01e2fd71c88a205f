"""Retention decisions of library/backup_retention.py: which backups are kept, deleted, left alone."""

from __future__ import annotations

import hashlib
import json

import pytest
from backup_retention import choose, classify

DB = "app"


def _names(*stamps):
    return [{"name": "app_v_%s.sql.gz" % s, "sha256": "h%s" % s} for s in stamps]


@pytest.mark.parametrize(
    "stamps, keep, protect, bad, kept, deleted, corrupt",
    [
        # newest first in, newest first out
        (["3", "2", "1"], 2, [], [], ["3", "2"], ["1"], []),
        (["3", "2", "1"], 5, [], [], ["3", "2", "1"], [], []),
        (["3", "2", "1"], 1, [], [], ["3"], ["2", "1"], []),
        # a protected older backup (the one this run made, with a skewed clock) stays on top of N
        (["3", "2", "1"], 1, ["1"], [], ["3", "1"], ["2"], []),
        # a corrupt newest one is not counted and not deleted: the next good one is kept instead
        (["3", "2", "1"], 1, [], ["3"], ["2"], ["1"], ["3"]),
        (["3", "2", "1"], 2, [], ["2"], ["3", "1"], [], ["2"]),
        ([], 3, [], [], [], [], []),
    ],
)
def test_choose_keeps_the_newest_n_that_prove_their_checksum(stamps, keep, protect, bad, kept, deleted, corrupt):
    verified = _names(*stamps)

    def hasher(path):
        stamp = path.rsplit("_", 1)[1].split(".")[0]
        return "wrong" if stamp in bad else "h%s" % stamp

    name = "app_v_%s.sql.gz"
    got = choose("/d", verified, keep, {name % p for p in protect}, True, hasher=hasher)
    assert got == ([name % s for s in kept], [name % s for s in deleted], [name % s for s in corrupt])


def test_choose_without_verification_never_reads_files():
    def hasher(path):
        raise AssertionError("must not hash")

    kept, deleted, _ = choose("/d", _names("2", "1"), 1, set(), False, hasher=hasher)
    assert kept == ["app_v_2.sql.gz"] and deleted == ["app_v_1.sql.gz"]


def _backup(directory, name, database=DB, sidecar=True, manifest=True, manifest_sha=None, content=b"dump"):
    (directory / name).write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    if sidecar:
        (directory / (name + ".sha256")).write_text("%s  %s\n" % (digest, name))
    if manifest:
        (directory / (name + ".manifest.json")).write_text(json.dumps({"database": database,
                                                                        "sha256": manifest_sha or digest}))


def test_classify_counts_only_verified_backups_of_the_database(tmp_path):
    _backup(tmp_path, "app_v1_20260101T000000Z.sql.gz")
    _backup(tmp_path, "app_v2_20260301T000000Z.sql.zst")
    _backup(tmp_path, "app_v3_20260201T000000Z.sql.gz", manifest=False)  # sidecar only: verified
    _backup(tmp_path, "app_v4_20260401T000000Z.sql.gz", sidecar=False)  # no checksum: unverified
    _backup(tmp_path, "app_v5_20260501T000000Z.sql.gz", manifest_sha="0" * 64)  # disagreeing: unverified
    _backup(tmp_path, "app_x_20260601T000000Z.sql.gz", database="app_x")  # another database
    _backup(tmp_path, "other_v1_20260101T000000Z.sql.gz", database="other")
    (tmp_path / ".app_v6_20260701T000000Z.sql.gz.partial").write_bytes(b"partial")
    verified, unverified = classify(str(tmp_path), sorted(p.name for p in tmp_path.iterdir()), DB)
    assert [b["name"] for b in verified] == ["app_v2_20260301T000000Z.sql.zst", "app_v3_20260201T000000Z.sql.gz",
                                             "app_v1_20260101T000000Z.sql.gz"]
    assert unverified == ["app_v4_20260401T000000Z.sql.gz", "app_v5_20260501T000000Z.sql.gz"]
