"""backup_vault_copy: the shell scripts it runs on the vault (run here with sh against a directory, no SSH needed) and
its choice of SSH options."""

import hashlib
import subprocess

import backup_vault_copy as bvc
import pytest

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


X86_AES = "processor\t: 0\nflags\t\t: fpu vme sse2 aes avx2 sha_ni\n"
ARM_AES = "processor\t: 0\nFeatures\t: fp asimd aes pmull sha1 sha2\n"
NO_AES = "processor\t: 0\nflags\t\t: fpu vme sse2 avx2\n"
ALL_CIPHERS = ["aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
               "chacha20-poly1305@openssh.com"]


@pytest.mark.parametrize("cpuinfo, has", [(X86_AES, True), (ARM_AES, True), (NO_AES, False), ("", False),
                                          ("flags : fpu vaes\n", False)])
def test_aes_instructions_are_read_from_cpuinfo(cpuinfo, has):
    assert bvc.cpu_has_aes(cpuinfo) is has


def test_auto_ciphers_put_aes_gcm_first_keep_fallbacks_and_only_what_ssh_supports():
    assert bvc.cipher_preference("auto", X86_AES, ALL_CIPHERS) == (
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr")
    # Without AES instructions, or an ssh without AES-GCM, the choice stays with ssh.
    assert bvc.cipher_preference("auto", NO_AES, ALL_CIPHERS) == ""
    assert bvc.cipher_preference("auto", X86_AES, ["chacha20-poly1305@openssh.com", "aes128-ctr"]) == ""
    # Explicit settings are passed through, "" leaves the choice to ssh.
    assert bvc.cipher_preference("aes256-ctr", NO_AES, []) == "aes256-ctr"
    assert bvc.cipher_preference("", X86_AES, ALL_CIPHERS) == ""


def test_the_users_ciphers_option_wins_over_the_modules():
    p = {"port": 22, "connect_timeout": 5, "ssh_key": None,
         "ssh_options": ["-o", "Ciphers=aes256-ctr"]}
    cmd = bvc.ssh_command(p, None, "aes128-gcm@openssh.com")
    # ssh keeps the first value given for an option: the user's comes first.
    assert cmd.index("Ciphers=aes256-ctr") < cmd.index("Ciphers=aes128-gcm@openssh.com")
    assert "-o" in cmd and bvc.ssh_command(p, None, "")[-2:] == ["-o", "Ciphers=aes256-ctr"]
