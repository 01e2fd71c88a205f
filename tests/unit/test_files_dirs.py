"""module_utils/dbrelease/files.py: the backup directory as db_backup makes it (ensure_dir), with the mode parser
it shares with maintenance_flag."""

from __future__ import annotations

import os
import stat

import pytest
from ansible.module_utils.dbrelease import files


@pytest.mark.parametrize("text, expected", [("0750", 0o750), ("750", 0o750), ("2775", 0o2775), (" 0700 ", 0o700)])
def test_modes_are_octal_digits(text, expected):
    assert files.parse_mode(text) == expected


@pytest.mark.parametrize("text", ["", "rwxr-x---", "0o750", "0999", "12345", "488"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        files.parse_mode(text)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("existing_mode, expected_changed", [(None, True), (0o755, True), (0o750, False)])
def test_ensure_dir_makes_the_directory_and_its_parents_with_the_mode_or_fixes_it(tmp_path, existing_mode,
                                                                                 expected_changed):
    target = tmp_path / "a" / "b" / "backups"
    if existing_mode is not None:
        target.mkdir(parents=True)
        os.chmod(target, existing_mode)
    old = os.umask(0)
    try:
        assert files.ensure_dir(str(target), 0o750) is expected_changed
    finally:
        os.umask(old)
    assert mode(target) == 0o750
    if existing_mode is None:
        assert mode(tmp_path / "a") == 0o750 and mode(tmp_path / "a" / "b") == 0o750
    assert files.ensure_dir(str(target), 0o750) is False  # a second run changes nothing
