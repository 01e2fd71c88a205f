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
    got = choose("/d", verified, keep, {name % p for p in protect}, True, hasher=hasher)[:3]
    assert got == ([name % s for s in kept], [name % s for s in deleted], [name % s for s in corrupt])


def test_choose_without_verification_never_reads_files():
    def hasher(path):
        raise AssertionError("must not hash")

    kept, deleted, _, _ = choose("/d", _names("2", "1"), 1, set(), False, hasher=hasher)
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


# -- the backup of a release not verified in production is never deleted ------------------------------------------
@pytest.mark.parametrize("name, manifest, label", [
    ("app_v1.2.0_20260101T000000Z.sql.gz", None, "v1.2.0"),
    ("app_v1.2.0_canonical_20260101T000000Z.sql.zst", None, "v1.2.0_canonical"),
    ("app_20260101T000000Z.sql.gz", None, ""),
    ("app_x_20260101T000000Z.sql.gz", {"label": "v1.2.0/canonical"}, "v1.2.0_canonical"),
    ("app_x_20260101T000000Z.sql.gz", {"label": ""}, "x"),
])
def test_label_of_reads_the_manifest_then_the_file_name(name, manifest, label):
    from backup_retention import label_of

    assert label_of(name, DB, manifest) == label


def _releases(*pairs):
    return [{"name": "app_%s_%s.sql.gz" % (label, stamp) if label else "app_%s.sql.gz" % stamp,
             "sha256": "h", "label": label} for label, stamp in pairs]


@pytest.mark.parametrize("backups, keep, verified_releases, deleted, protected", [
    # v3 is running now, v2 failed its verification, v1 and v0 were verified in production.
    ([("v3", "4"), ("v2", "3"), ("v1", "2"), ("v0", "1")], 1, ["v1", "v0"], ["v1", "v0"], ["v2"]),
    # none verified: nothing of a release is deleted, whatever keep says
    ([("v3", "4"), ("v2", "3"), ("v1", "2")], 1, [], [], ["v2", "v1"]),
    # protection off (no list): count-based as before
    ([("v3", "4"), ("v2", "3"), ("v1", "2")], 1, None, ["v2", "v1"], []),
    # a backup without a label is not a release's: count-based
    ([("v3", "4"), ("", "3"), ("v1", "2")], 1, [], ["app_3.sql.gz"], ["v1"]),
], ids=["verified ones go, the failed one stays", "none verified", "protection off", "unlabelled backups"])
def test_only_backups_of_releases_verified_in_production_are_deleted(backups, keep, verified_releases, deleted,
                                                                     protected):
    verified = _releases(*backups)
    kept, gone, _, guarded = choose("/d", verified, keep, set(), False, verified_releases=verified_releases)
    by_label = {b["label"]: b["name"] for b in verified}
    assert gone == [d if d.endswith(".gz") else by_label[d] for d in deleted]
    assert [g["release"] for g in guarded] == protected
    assert all("is not recorded as verified in production" in g["reason"] for g in guarded)
    assert sorted(kept + gone) == sorted(b["name"] for b in verified)


def test_the_module_keeps_unverified_releases_on_disk_and_says_why(tmp_path):
    from helpers import run_module

    for label, stamp in (("v4", "20260401"), ("v3", "20260301"), ("v2", "20260201"), ("v1", "20260101")):
        _backup(tmp_path, "app_%s_%sT000000Z.sql.gz" % (label, stamp), content=label.encode())
    args = {"path": str(tmp_path), "database": DB, "keep": 1, "verified_releases": ["v1", "v2"]}
    dry = run_module("backup_retention", args, check=True)
    assert dry["deleted"] == ["app_v2_20260201T000000Z.sql.gz", "app_v1_20260101T000000Z.sql.gz"]
    assert len(list(tmp_path.iterdir())) == 12
    result = run_module("backup_retention", args)
    assert result["changed"] is True
    assert [p["name"] for p in result["protected"]] == ["app_v3_20260301T000000Z.sql.gz"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gz")) == [
        "app_v3_20260301T000000Z.sql.gz", "app_v4_20260401T000000Z.sql.gz"]
    assert run_module("backup_retention", args)["changed"] is False
