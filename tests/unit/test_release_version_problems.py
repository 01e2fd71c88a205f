"""release_version is a git tag, a directory name and a backup label at once: checked with git's own rules."""

from __future__ import annotations

import subprocess

import pytest
from release_version_problems import release_version_problems

GOOD = ["v1.2.0-canonical-schema", "v9.9.9", "1.0", "release_2026_11_30", "V1", "a" * 64, "v1.2.0-rc.1",
        "v1-lock", "v.lockless"]
BAD = {
    "v9..1": "'..'",
    "v1.lock": "ends with '.lock'",
    "v1.": "ends with '.'",
    "v1\n": "a newline",
    "v1\nv2": "a newline",
    "v1\t": "control character",
    "v1 2": "a space",
    "v1@{1}": "'@{'",
    "../../etc": "starts with '.'",
    "..": "starts with '.'",
    ".hidden": "starts with '.'",
    "-x": "starts with '-'",
    "v1/": "'/'",
    "a/b": "'/'",
    "a//b": "'//'",
    "/abs": "'/'",
    "v1~1": "'~'",
    "v1^": "'^'",
    "v1:x": "':'",
    "v1?": "'?'",
    "v1*": "'*'",
    "v1[x": "'['",
    "v1\\x": "'\\\\'",
    "v1\x7f": "control character",
    "v1.ü": "'ü'",
    "@": "'@'",
    "a" * 65: "65 characters long",
    "": "empty",
}


@pytest.mark.parametrize("version", GOOD)
def test_usable_versions_have_no_problem(version):
    assert release_version_problems(version) == []


@pytest.mark.parametrize("version, reason", list(BAD.items()))
def test_unusable_versions_are_refused_naming_the_reason(version, reason):
    problems = release_version_problems(version)
    assert problems and any(reason in p for p in problems), problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("value", [None, 12, ["v1"]])
def test_a_version_that_is_not_text_is_refused(value):
    assert release_version_problems(value)


def git_accepts(version: str) -> bool:
    proc = subprocess.run(["git", "check-ref-format", "refs/tags/" + version], capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("version", GOOD + [v for v in BAD if v and "\x00" not in v])
def test_everything_git_refuses_is_refused_and_every_accepted_version_is_a_valid_tag(version):
    """git itself is the reference: the filter is at least as strict (it also keeps paths and labels safe)."""
    if not release_version_problems(version):
        assert git_accepts(version), version
    if not git_accepts(version):
        assert release_version_problems(version), version
