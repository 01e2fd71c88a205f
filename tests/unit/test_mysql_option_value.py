"""The option-file reader that takes the AWX credential's password: every quoting the writers use."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError
from conftest import ROOT

sys.path.insert(0, str(ROOT / "filter_plugins"))
from ansible.module_utils.dbrelease.db import option_file_text  # noqa: E402
from mysql_option_value import mysql_option_value  # noqa: E402

NASTY = 'p"a\\ss#w;o\'rd =x '


def test_reads_back_exactly_what_db_py_writes_for_a_password_full_of_quotes():
    text = option_file_text({"login_user": "db_admin", "login_password": NASTY, "login_host": "h", "login_port": 1})
    assert mysql_option_value(text, "password") == NASTY
    assert mysql_option_value(text, "user") == "db_admin"


def test_reads_bare_and_single_quoted_values_and_skips_comments():
    text = "# comment\n; other\n[client]\nuser = admin # trailing\npassword='it\\'s'\n"
    assert mysql_option_value(text, "user") == "admin"
    assert mysql_option_value(text, "password") == "it's"


def test_only_the_requested_group_counts_and_the_last_value_wins():
    text = "[mysqldump]\npassword=dump\n[client]\npassword=first\npassword=second\n"
    assert mysql_option_value(text, "password") == "second"
    assert mysql_option_value(text, "password", "mysqldump") == "dump"


def test_dash_and_underscore_in_keys_are_the_same():
    assert mysql_option_value("[mysql]\nconnect-timeout=7\n", "connect_timeout", "mysql") == "7"


def test_a_missing_key_names_key_and_group_but_no_value():
    with pytest.raises(AnsibleFilterError, match=r"no password in its \[client\] group") as err:
        mysql_option_value("[client]\nuser=secret-user\n", "password")
    assert "secret-user" not in str(err.value)
    assert mysql_option_value("[client]\nuser=u\n", "password", default=None) is None
