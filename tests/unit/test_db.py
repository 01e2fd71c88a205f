"""Shared connection helpers: option files that keep passwords off command lines, version parsing, quoting."""

import os
import stat

import pytest
from ansible.module_utils.dbrelease.db import (
    client_option_file,
    endpoint,
    option_file_text,
    parse_version,
    quote_ident,
    scrub,
)


@pytest.mark.parametrize(
    "version, flavor, numbers",
    [
        ("10.11.19-MariaDB-0+deb12u1-log", "mariadb", (10, 11, 19)),
        ("8.0.36", "mysql", (8, 0, 36)),
        ("8.4.0-commercial", "mysql", (8, 4, 0)),
        ("5.5.5-10.6.16-MariaDB", "mariadb", (5, 5, 5)),
        ("garbage", "mysql", (0, 0, 0)),
    ],
)
def test_parse_version_tells_flavor_and_numbers(version, flavor, numbers):
    assert parse_version(version) == (flavor, numbers)


@pytest.mark.parametrize(
    "name, quoted",
    [("outbox", "`outbox`"), ("we`ird", "`we``ird`"), ("with space", "`with space`")],
)
def test_quote_ident_escapes_backticks(name, quoted):
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("bad", ["", None, "a\x00b"])
def test_quote_ident_refuses_empty_or_nul(bad):
    with pytest.raises(ValueError):
        quote_ident(bad)


def test_option_file_quotes_passwords_with_special_characters():
    text = option_file_text({"login_user": "db_admin", "login_password": 'p"a\\ss#;word',
                             "login_unix_socket": "/run/x.sock"})
    assert 'password="p\\"a\\\\ss#;word"' in text
    assert "socket=\"/run/x.sock\"" in text and "protocol=SOCKET" in text and "host=" not in text


def test_option_file_uses_tcp_when_no_socket():
    text = option_file_text({"login_user": "u", "login_password": "", "login_host": "db1", "login_port": 3307})
    assert 'host="db1"' in text and "port=3307" in text and "protocol=TCP" in text and "password" not in text


def test_client_option_file_is_private_and_removed_afterwards():
    with client_option_file({"login_user": "u", "login_password": "pw"}) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_client_option_file_is_removed_when_the_block_fails():
    with pytest.raises(RuntimeError), client_option_file({"login_user": "u", "login_password": "pw"}) as path:
        raise RuntimeError("boom")
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "params, text",
    [
        ({"login_user": "a", "login_unix_socket": "/s.sock"}, "a@socket /s.sock"),
        ({"login_user": "a", "login_host": "db", "login_port": 3307}, "a@db:3307"),
    ],
)
def test_endpoint_names_user_and_where_never_the_password(params, text):
    assert endpoint(dict(params, login_password="secret")) == text


def test_scrub_hides_the_password_in_any_text():
    assert scrub("Access denied for pw123", {"login_password": "pw123"}) == "Access denied for ********"
