"""Backups, manifests, checksums, records, snapshots and lock files keep private modes whatever the umask: with
umask 000 nothing they write is readable or writable by others."""

from __future__ import annotations

import os
import stat
import uuid

import pytest
import release_record as rr
from conftest import login_params
from helpers import run_module


@pytest.fixture
def umask_000():
    previous = os.umask(0)
    yield
    os.umask(previous)


def world_accessible(root):
    """Every path under `root` (root included) that others may read, write or enter."""
    found = []
    for base, dirs, files in os.walk(root):
        for name in [base] + [os.path.join(base, n) for n in dirs + files]:
            mode = stat.S_IMODE(os.lstat(name).st_mode)
            if mode & 0o007:
                found.append("%s %o" % (name, mode))
    return sorted(set(found))


def test_the_record_its_lock_and_its_new_parent_directories_are_private_under_umask_000(umask_000, tmp_path):
    release_dir = tmp_path / "artifacts" / "db1" / "v1.2.0"
    os.chmod(tmp_path, 0o700)
    rr.update(dict(path=str(release_dir), phase="backup", status="ok", changed=True, outputs={}, error=None, top={},
                   files=[], state="present"), check_mode=False)
    rr.update(dict(path=str(release_dir / "schema"), phase=None, status=None, changed=False, outputs={}, error=None,
                   top={}, files=[{"name": "pre.sql", "content": "CREATE TABLE t (id INT);\n", "force": True}],
                   state="artifacts"), check_mode=False)
    assert (release_dir / "release.json").exists() and (release_dir / ".release.lock").exists()
    assert (release_dir / "schema" / "pre.sql").exists()
    assert world_accessible(tmp_path / "artifacts") == []
    assert stat.S_IMODE(os.stat(release_dir / ".release.lock").st_mode) == 0o600


def test_an_existing_release_directory_open_to_everyone_is_closed(umask_000, tmp_path):
    release_dir = tmp_path / "v1"
    release_dir.mkdir(mode=0o777)
    os.chmod(release_dir, 0o777)
    (release_dir / ".release.lock").touch(mode=0o666)
    rr.update(dict(path=str(release_dir), phase="grants", status="ok", changed=False, outputs={}, error=None,
                   top={}, files=[], state="present"), check_mode=False)
    assert world_accessible(release_dir) == []


@pytest.mark.parametrize("version", ["../../escaped", "v1\n", "v\x1b[31m"])
def test_a_release_directory_that_climbs_out_or_holds_control_characters_is_refused(version, tmp_path):
    artifacts = tmp_path / "inside" / "artifacts"
    for state, files in (("present", []), ("artifacts", [{"name": "report.md", "content": "x", "force": True}])):
        with pytest.raises(ValueError, match="refusing to write"):
            rr.update(dict(path="%s/%s" % (artifacts, version), phase="preflight", status="failed", changed=False,
                           outputs={}, error="x", top={}, files=files, state=state), check_mode=False)
    written = [os.path.join(base, n) for base, dirs, files in os.walk(tmp_path) for n in dirs + files]
    assert written == [], written


def test_a_backup_its_checksum_and_manifest_are_private_under_umask_000(umask_000, mariadb, tmp_path):
    name = "modes_" + uuid.uuid4().hex[:8]
    mariadb.sql(["CREATE DATABASE `%s`" % name, "CREATE TABLE `%s`.t (id INT PRIMARY KEY)" % name])
    try:
        backups = tmp_path / "backups"
        backups.mkdir(mode=0o750)
        os.chmod(backups, 0o750)
        result = run_module("db_backup", dict(login_params(mariadb), database=name, backup_dir=str(backups),
                                              label="v1", mode="run"))
        assert result.get("path"), result
        names = sorted(os.listdir(backups))
        assert len(names) == 3 and any(n.endswith(".manifest.json") for n in names)
        assert world_accessible(backups) == []
    finally:
        mariadb.sql("DROP DATABASE IF EXISTS `%s`" % name)
