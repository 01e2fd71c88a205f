"""The tag phase against real git repositories: a work tree and a bare repository as its remote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, recap, run_playbook, write_inventory

VERSION = "v1.2.0-canonical-schema"
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "t@example.org"}


def git(repo, *args):
    import os

    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=dict(os.environ, **GIT_ENV)).stdout.strip()


@pytest.fixture
def repos(tmp_path):
    """A work tree with two commits and a bare `origin` it was cloned from."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "--bare", "-q", str(bare)], check=True)
    work = tmp_path / "app"
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    for n in (1, 2):
        (work / "README").write_text("rev %d\n" % n)
        git(work, "add", "README")
        git(work, "commit", "-q", "-m", "rev %d" % n)
    git(work, "push", "-q", "origin", "HEAD")
    return work, bare


def setup_release(tmp_path, work, phases=None, **group_vars):
    artifacts = tmp_path / "artifacts"
    record_dir = artifacts / VERSION
    record_dir.mkdir(parents=True)
    if phases is None:
        phases = {"verify": {"status": "ok", "changed": False}, "watch": {"status": "ok", "changed": False}}
    (record_dir / "release.json").write_text(json.dumps({"version": VERSION, "phases": phases}))
    # The tag is made in production (release_tag_environment), after verify and watch.
    gv = {"release_version": VERSION, "release_db_name": "shop", "release_artifacts_dir": str(artifacts),
          "release_environment": "production",
          "release_git_repo": str(work), "tag_schema_change": "Canonical schema release: outbox + refresh_tokens",
          "tag_tagger_name": "Release Bot", "tag_tagger_email": "bot@example.org"}
    gv.update(group_vars)

    inv = write_inventory(tmp_path / "inv" / "hosts.yml",
                          {"db1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}, gv)
    return inv, record_dir


def record(record_dir):
    return json.loads((record_dir / "release.json").read_text())


def remote_tag(bare):
    out = subprocess.run(["git", "-C", str(bare), "for-each-ref", "--format=%(objectname) %(*objectname)",
                          "refs/tags/%s" % VERSION], check=True, capture_output=True, text=True).stdout.strip()
    return out.split() if out else None


def test_tag_is_annotated_pushed_once_and_a_rerun_changes_nothing(tmp_path, repos):
    work, bare = repos
    inv, record_dir = setup_release(tmp_path, work, tag_git_remote="origin")
    head = git(work, "rev-parse", "HEAD")

    first = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["db1"]["changed"] == 1
    assert git(work, "cat-file", "-t", VERSION) == "tag"
    assert git(work, "rev-parse", VERSION + "^{commit}") == head
    message = git(work, "tag", "-l", "--format=%(contents)", VERSION)
    assert message.startswith("Canonical schema release: outbox + refresh_tokens")
    assert "shop" in message
    assert git(work, "tag", "-l", "--format=%(taggername) %(taggeremail)", VERSION) == "Release Bot <bot@example.org>"
    tag_object = git(work, "rev-parse", VERSION)
    assert remote_tag(bare) == [tag_object, head]
    phase = record(record_dir)["phases"]["tag"]
    assert phase["status"] == "ok" and phase["changed"] is True
    assert phase["created"] is True and phase["pushed"] is True and phase["commit"] == head

    second = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["db1"]["changed"] == 0
    phase = record(record_dir)["phases"]["tag"]
    assert phase["changed"] is False and phase["created"] is False and phase["pushed"] is False
    assert phase["remote_state"] == "same"
    assert git(work, "rev-parse", VERSION) == tag_object


def test_existing_local_tag_is_pushed_when_the_remote_lacks_it(tmp_path, repos):
    work, bare = repos
    inv, record_dir = setup_release(tmp_path, work)
    assert run_playbook(ROOT / "playbooks/tag.yml", inv).returncode == 0
    assert remote_tag(bare) is None  # no remote configured: not pushed
    inv, _ = setup_release(tmp_path / "again", work, tag_git_remote=str(bare))
    rerun = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert rerun.returncode == 0, rerun.stdout
    assert remote_tag(bare)[0] == git(work, "rev-parse", VERSION)


def test_check_mode_reports_the_tag_and_push_without_making_them(tmp_path, repos):
    work, bare = repos
    inv, record_dir = setup_release(tmp_path, work, tag_git_remote="origin")
    dry = run_playbook(ROOT / "playbooks/tag.yml", inv, check=True, diff=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert recap(dry.stdout)["db1"]["changed"] == 1
    assert git(work, "tag", "-l", VERSION) == ""
    assert remote_tag(bare) is None
    assert "tag" not in record(record_dir)["phases"]
    assert json.loads((record_dir / "release.check.json").read_text())["phases"]["tag"]["created"] is True


def test_refuses_to_move_a_tag_that_points_to_another_commit(tmp_path, repos):
    work, bare = repos
    git(work, "tag", "-a", "-m", "Canonical schema release: outbox + refresh_tokens\n\nRelease %s of database shop."
        % VERSION, VERSION, "HEAD~1")
    old = git(work, "rev-parse", VERSION)
    inv, record_dir = setup_release(tmp_path, work, tag_git_remote="origin")
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode != 0
    assert "refusing to move a release tag" in result.stdout
    assert git(work, "rev-parse", VERSION) == old
    assert remote_tag(bare) is None
    phase = record(record_dir)["phases"]["tag"]
    assert phase["status"] == "failed" and "already points to" in phase["error"]


def test_refuses_to_overwrite_a_different_tag_on_the_remote(tmp_path, repos):
    work, bare = repos
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True, capture_output=True)
    git(other, "tag", "-a", "-m", "someone else's tag", VERSION, "HEAD~1")
    git(other, "push", "-q", "origin", "refs/tags/" + VERSION)
    before = remote_tag(bare)
    inv, record_dir = setup_release(tmp_path, work, tag_git_remote="origin")
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode != 0
    assert "refusing to overwrite it" in result.stdout
    assert remote_tag(bare) == before


def test_password_in_remote_url_is_refused_and_never_shown(tmp_path, repos):
    work, _ = repos
    inv, record_dir = setup_release(tmp_path, work, tag_git_remote="https://bot:Hunter2-secret@git.example.org/a.git")
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode != 0
    assert "embeds a password" in result.stdout
    assert "Hunter2-secret" not in result.stdout + result.stderr
    assert "Hunter2-secret" not in (record_dir / "release.json").read_text()


def test_unset_repository_skips_the_phase_and_says_so(tmp_path, repos):
    inv, record_dir = setup_release(tmp_path, repos[0], release_git_repo="")
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode == 0, result.stdout
    assert "release_git_repo is not set" in result.stdout
    phase = record(record_dir)["phases"]["tag"]
    assert phase["status"] == "skipped" and "release_git_repo is not set" in phase["reason"]


def test_tag_rerun_without_verify_in_the_record_names_the_phase_to_run_first(tmp_path, repos):
    work, _ = repos
    inv, record_dir = setup_release(tmp_path, work, phases={"schema": {"status": "ok"},
                                                           "verify": {"status": "failed"}})
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode != 0
    assert "phase 'verify' is failed" in result.stdout
    assert "--tags verify" in result.stdout
    assert git(work, "tag", "-l", VERSION) == ""


def test_repository_path_that_does_not_exist_fails_with_the_setting_to_fix(tmp_path, repos):
    inv, record_dir = setup_release(tmp_path, repos[0], release_git_repo=str(tmp_path / "nope"))
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode != 0
    assert "release_git_repo" in result.stdout and "does not exist" in result.stdout
    assert Path(record_dir / "report.md").exists()


def test_tags_tag_rerun_of_release_yml_in_a_new_process_tags_the_recorded_version(tmp_path, repos, mariadb, dbname):
    """After a release whose record shows verify ok, `release.yml --tags tag` (preflight and lock run too,
    tagged always) tags the version of the record and nothing else runs."""
    from conftest import ADMIN_PASSWORD, ADMIN_USER
    from helpers import local_host_vars

    work, bare = repos
    _, record_dir = setup_release(tmp_path, work)
    rec = record(record_dir)
    rec["phases"].update({"backup": {"status": "ok", "path": "/nowhere.sql.gz", "sha256": "0" * 64},
                          "schema": {"status": "ok"}})
    (record_dir / "release.json").write_text(json.dumps(rec))
    hv = local_host_vars(mariadb, ADMIN_USER, ADMIN_PASSWORD, release_version=VERSION, release_db_name=dbname,
                         release_artifacts_dir=str(tmp_path / "artifacts"), release_git_repo=str(work),
                         tag_git_remote="origin", tag_schema_change="Canonical schema release: outbox + refresh_tokens",
                         release_ddl_files=[str(ROOT / "examples/app/infra/ddls/create_distributed_tables.sql")],
                         release_tag_environment="staging")
    inv = write_inventory(tmp_path / "inv2" / "hosts.yml", {"db1": hv})
    result = run_playbook(ROOT / "release.yml", inv, tags="tag")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert git(work, "rev-parse", VERSION + "^{commit}") == git(work, "rev-parse", "HEAD")
    assert remote_tag(bare)[0] == git(work, "rev-parse", VERSION)
    rec = record(record_dir)
    assert rec["phases"]["tag"]["status"] == "ok"
    assert rec["phases"]["backup"]["path"] == "/nowhere.sql.gz"  # the backup did not run again
    # Only the argument checks of those roles (always run) appear, and preflight's look for a recent backup
    # (it imports backup/tasks/recent.yml).
    ran = re.findall(r"TASK \[(backup|schema|migrate|verify|grants) : (?!Validating arguments|Look for a recent valid "
                     r"backup|Keep what preflight records about the recent backup)", result.stdout)
    assert ran == [], [t for t in re.findall(r"TASK \[(?:backup|schema|migrate|verify|grants) : [^\]]*\]",
                                             result.stdout) if "Validating" not in t]
    assert ADMIN_PASSWORD not in result.stdout


def test_two_database_hosts_sharing_one_repository_create_and_push_the_tag_once(tmp_path, repos):
    work, bare = repos
    _, record_dir = setup_release(tmp_path, work, tag_git_remote="origin")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {}
    for name in ("db1", "db2"):
        artifacts = tmp_path / ("artifacts-" + name)
        (artifacts / VERSION).mkdir(parents=True)
        (artifacts / VERSION / "release.json").write_text(json.dumps(
            {"version": VERSION, "phases": {"verify": {"status": "ok"}, "watch": {"status": "ok"}}}))
        hosts[name] = dict(local, release_artifacts_dir=str(artifacts))
    inv = write_inventory(tmp_path / "inv2" / "hosts.yml", hosts, {
        "release_version": VERSION, "release_db_name": "shop", "release_git_repo": str(work),
        "release_environment": "production", "tag_git_remote": "origin",
        "tag_schema_change": "Canonical schema release: outbox + refresh_tokens"})
    result = run_playbook(ROOT / "playbooks/tag.yml", inv)
    assert result.returncode == 0, result.stdout[-3000:]
    phases = [json.loads((tmp_path / ("artifacts-" + n) / VERSION / "release.json").read_text())["phases"]["tag"]
              for n in ("db1", "db2")]
    assert sorted(p["created"] for p in phases) == [False, True]
    assert sorted(p["pushed"] for p in phases) == [False, True]
    assert phases[0]["tag_object"] == phases[1]["tag_object"] == remote_tag(bare)[0]
