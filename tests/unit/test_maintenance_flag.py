"""Pure functions of library/maintenance_flag.py: the mode it accepts and what it decides to do."""

from __future__ import annotations

import pytest
from maintenance_flag import parse_mode, plan


@pytest.mark.parametrize("text, expected", [("0644", 0o644), ("644", 0o644), ("0600", 0o600), ("2775", 0o2775),
                                            (" 0640 ", 0o640)])
def test_octal_modes_are_read_as_octal(text, expected):
    assert parse_mode(text) == expected


@pytest.mark.parametrize("text", ["", "rw-r--r--", "0o644", "0999", "12345", "u=rw"])
def test_anything_but_octal_digits_is_refused(text):
    with pytest.raises(ValueError):
        parse_mode(text)


@pytest.mark.parametrize("state, before_data, before_mode, expected", [
    ("present", None, None, "write"),                  # no flag yet
    ("present", b"other release\n", 0o644, "write"),   # someone else's text: ours replaces it
    ("present", b"flag\n", 0o600, "chmod"),            # right text, wrong mode
    ("present", b"flag\n", 0o644, None),               # already as wanted: no change
    ("absent", b"flag\n", 0o644, "remove"),
    ("absent", None, None, None),                      # nothing to remove: no change
])
def test_the_plan_changes_only_what_differs(state, before_data, before_mode, expected):
    assert plan(state, b"flag\n", 0o644, before_data, before_mode) == expected
