"""The phases a run executes, from its tags: what preflight checks the privileges of."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT
from release_phases_to_run import release_phases_to_run

PHASES = yaml.safe_load((ROOT / "vars/release.yml").read_text())["release_phases"]
ALL = [p["name"] for p in PHASES]


@pytest.mark.parametrize("run, skip, expected", [
    (["all"], [], ALL),
    (None, None, ALL),
    (["verify"], [], ["preflight", "lock", "verify"]),
    (["schema"], [], ["preflight", "lock", "verify_baseline", "schema"]),
    (["backup", "tag"], [], ["preflight", "lock", "backup", "tag"]),
    (["all"], ["backup", "migrate"], [n for n in ALL if n not in ("backup", "migrate")]),
    (["verify"], ["always"], ["verify"]),
])
def test_the_phases_follow_ansibles_tag_rules(run, skip, expected):
    assert release_phases_to_run(PHASES, run, skip) == expected
