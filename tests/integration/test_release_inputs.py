"""A bad role input is refused before anything happens: by the preflight play's one validation (release_inputs) in
release.yml, whichever phase's role it belongs to, and by Ansible's own validation when a phase playbook runs alone.
No server is needed: nothing may reach one."""

from __future__ import annotations

import sys

import pytest
from helpers import ROOT, recap, run_playbook, write_inventory


@pytest.fixture
def inventory(tmp_path):
    return write_inventory(tmp_path / "inventory.yml", {"db1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        # Nothing listens here: a run that got past the validation would fail to connect, not at its first task.
        "release_db_host": "127.0.0.1", "release_db_port": 9, "release_db_socket": str(tmp_path / "none.sock"),
        "release_db_name": "shop", "release_artifacts_dir": str(tmp_path / "artifacts"),
        "release_db_admin_password": "not-used"}})


@pytest.mark.parametrize("bad, role, entry", [
    ({"maintenance_driver": "carrier-pigeon"}, "maintenance", "main"),     # a phase's role (choices)
    ({"verify_watch_interval_seconds": "soon"}, "verify", "watch"),         # a second entry point of one role
    ({"notify_attempts": "twice"}, "notify", "finish"),                     # only the finish play's role uses it
])
def test_a_bad_input_of_any_role_is_refused_by_preflight_before_anything_runs(inventory, tmp_path, bad, role, entry):
    result = run_playbook(ROOT / "release.yml", inventory, dict({"release_version": "v1.0.0"}, **bad))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Validate the inputs of the roles this run uses" in out, out
    assert "role '%s' (entry point %s" % (role, entry) in out, out
    assert next(iter(bad)) in out
    assert recap(result.stdout)["db1"]["ok"] == 0, out     # the first task, nothing before it
    assert not (tmp_path / "artifacts").exists()          # no record, no report
    assert "Validating arguments against arg spec" not in out


def test_release_yml_validates_each_role_once_and_a_phase_playbook_alone_validates_its_role(inventory):
    # A tag that runs no phase past preflight's play: the one validation task, then the run stops at the connection.
    result = run_playbook(ROOT / "release.yml", inventory, {"release_version": "v1.0.0"}, tags="preflight")
    assert "Validating arguments against arg spec" not in result.stdout, result.stdout
    assert result.stdout.count("TASK [Validate the inputs of the roles this run uses") == 1, result.stdout
    alone = run_playbook(ROOT / "playbooks/grants.yml", inventory,
                         {"release_version": "v1.0.0", "grants_fail_on_extra": "perhaps"})
    assert alone.returncode != 0
    assert "Validating arguments against arg spec 'main'" in alone.stdout, alone.stdout
    assert "grants_fail_on_extra" in alone.stdout + alone.stderr
