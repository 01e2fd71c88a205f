"""Preflight checks privileges for the lock and the restore test as those roles are configured: its defaults
mirror theirs, and this test fails when a copy drifts."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT


def defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())


@pytest.mark.parametrize("mine, role, theirs", [
    ("preflight_lock_schema", "lock", "lock_schema"),
    ("preflight_restore_test", "backup", "backup_restore_test"),
    ("preflight_restore_skip_binlog", "backup", "backup_restore_skip_binlog"),
])
def test_preflight_mirrors_the_defaults_it_checks_privileges_for(mine, role, theirs):
    assert defaults("preflight")[mine] == defaults(role)[theirs]
