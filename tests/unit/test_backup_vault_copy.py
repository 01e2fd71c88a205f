"""The shell scripts backup_vault_copy runs on the vault, run here with sh against a directory (no SSH needed)."""

import hashlib
import subprocess

import backup_vault_copy as bvc

NAME = "app_v1_20261130T000000Z.sql.gz"


def run(script, cwd):
    return subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, text=True)


def test_probe_removes_interrupted_runs_staging_and_stages_this_run_when_the_vault_lacks_the_backup(tmp_path):
    stale = tmp_path / (".%s.incoming-111-dead" % NAME)
    stale.mkdir()
    (stale / NAME).write_bytes(b"half a dump")
    out = run(bvc.probe_script(str(tmp_path), NAME, [NAME + ".sha256"], "ab" * 32, "222-live"), tmp_path)
    assert out.returncode == 0, out.stderr
    found = bvc.parse_probe(out.stdout)
    assert found == {"final": None, "sidecars": {}, "staged": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".%s.incoming-222-live" % NAME]


def test_probe_reports_a_verified_backup_already_there_and_stages_nothing(tmp_path):
    data = b"-- dump\n" * 1000
    (tmp_path / NAME).write_bytes(data)
    (tmp_path / (NAME + ".sha256")).write_text("x")
    digest = hashlib.sha256(data).hexdigest()
    found = bvc.parse_probe(run(bvc.probe_script(str(tmp_path), NAME, [NAME + ".sha256"], digest, "3-a"),
                                tmp_path).stdout)
    assert found == {"final": {"bytes": len(data), "sha256": digest}, "sidecars": {NAME + ".sha256": 1},
                     "staged": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, NAME + ".sha256"]


def test_probe_in_check_mode_changes_nothing(tmp_path):
    stale = tmp_path / (".%s.incoming-1-x" % NAME)
    stale.mkdir()
    assert run(bvc.probe_script(str(tmp_path), NAME, []), tmp_path).returncode == 0
    assert stale.is_dir()


def stage(tmp_path, run_id, data):
    staging = tmp_path / bvc.staging_name(NAME, run_id)
    staging.mkdir()
    (staging / NAME).write_bytes(data)
    (staging / (NAME + ".sha256")).write_text(hashlib.sha256(data).hexdigest() + "  " + NAME + "\n")
    return staging


def test_commit_verifies_then_renames_the_sidecar_and_the_dump_into_place(tmp_path):
    data = b"INSERT INTO t VALUES (1);\n" * 5000
    stage(tmp_path, "9-ok", data)
    digest = hashlib.sha256(data).hexdigest()
    out = run(bvc.commit_script(str(tmp_path), NAME, [NAME + ".sha256"], digest, True, "9-ok"), tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["OK", digest], out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, NAME + ".sha256"]
    assert (tmp_path / NAME).read_bytes() == data


def test_commit_of_a_corrupt_copy_removes_it_and_leaves_nothing_under_the_backup_name(tmp_path):
    data = b"INSERT INTO t VALUES (1);\n" * 5000
    stage(tmp_path, "9-bad", data[:-1] + b"X")
    out = run(bvc.commit_script(str(tmp_path), NAME, [NAME + ".sha256"], hashlib.sha256(data).hexdigest(), False,
                                "9-bad"), tmp_path)
    assert out.returncode == bvc.EXIT_MISMATCH and out.stdout.startswith("MISMATCH ")
    assert list(tmp_path.iterdir()) == []
