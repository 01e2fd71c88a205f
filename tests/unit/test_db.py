"""Shared connection helpers: option files that keep passwords off command lines, version parsing, quoting."""

import os
import stat
import subprocess

import pytest
from ansible.module_utils.dbrelease.db import (
    DbError,
    client_option_file,
    client_option_pipe,
    endpoint,
    option_file_text,
    parse_version,
    password_bytes,
    password_problem,
    quote_ident,
    scrub,
    tls_context,
    tls_environment,
    tls_option_lines,
    tls_settings,
)
from ansible.module_utils.dbrelease.owner import owner_gone, owner_tag


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


# -- passwords with any character ------------------------------------------------------------------------------------
def _read_back(text, key="password"):
    """What the MariaDB/MySQL clients read from a double-quoted option value (my_default.c's unescaping)."""
    line = next(item for item in text.splitlines() if item.startswith(key + "="))
    body = line[len(key) + 2:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", "\\": "\\", '"': '"', "'": "'"}
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], "\\" + body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("password", [
    "p€ss", "üñí", 'qu"ote', "it's", "back\\slash\\", "#hash;semi", " lead and trail ", "{{ x }}{% if %}",
    "%s%%", "line\nbreak", "cr\rlf\t", "\x01\x7f", "emoji😀", "\ufeffbom", "=equals=", "\\n literally",
])
def test_option_file_holds_any_password_the_clients_read_back_exactly(password):
    text = option_file_text({"login_user": "u", "login_password": password, "login_host": "h", "login_port": 1})
    assert len(text.splitlines()[2]) == len(text.splitlines()[2].strip("\n"))  # one line per option
    assert all("\n" not in line for line in text.split("\n"))
    assert _read_back(text) == password


@pytest.mark.parametrize("password, reason", [
    ("nul\x00byte", "NUL character"),
    ("x" * 5000, "at most 4000 bytes"),
    ("lone\udc80surrogate", "not valid Unicode"),
])
def test_passwords_no_client_can_hold_are_refused_without_quoting_them(password, reason):
    assert reason in password_problem(password)
    with pytest.raises(DbError, match=reason) as err:
        option_file_text({"login_user": "u", "login_password": password})
    assert password not in str(err.value)
    with pytest.raises(DbError, match=reason):
        password_bytes({"login_user": "u", "login_password": password})


def test_passwords_go_to_pymysql_as_utf8_bytes():
    assert password_bytes({"login_password": "p€ü"}) == "p€ü".encode()
    assert password_bytes({"login_password": ""}) == b""


@pytest.mark.parametrize("text", [
    "Access denied (p€ss)", "repr 'p\\u20acss'", "mojibake pâ\x82¬ss", "escaped p\\\"€ss",
])
def test_scrub_hides_the_password_in_the_forms_a_message_may_quote_it(text):
    password = 'p€ss' if "escaped" not in text else 'p"€ss'
    assert "p€ss" not in scrub(text, {"login_password": password})
    assert "********" in scrub(text, {"login_password": password})


# -- TLS -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, expected", [
    ({}, {"enabled": False, "verify": False}),
    ({"ssl_ca": "/ca.pem"}, {"enabled": True, "verify": True}),
    ({"ssl_ca": "/ca.pem", "ssl_verify": False}, {"enabled": True, "verify": False}),
    ({"ssl_cert": "/c.pem", "ssl_key": "/k.pem"}, {"enabled": True, "verify": False}),
    ({"ssl_verify": False}, {"enabled": True, "verify": False}),
    ({"ssl_verify": True}, {"enabled": True, "verify": True}),
])
def test_tls_is_on_with_any_setting_and_verifies_by_default_whenever_a_ca_is_given(params, expected):
    tls = tls_settings(params)
    assert {key: tls[key] for key in expected} == expected


@pytest.mark.parametrize("params, flavor, lines", [
    ({"ssl_ca": "/ca.pem"}, "mariadb", ["ssl", "ssl-verify-server-cert", 'ssl-ca="/ca.pem"']),
    ({"ssl_ca": "/ca.pem", "ssl_verify": False}, "mariadb", ["ssl", "skip-ssl-verify-server-cert"]),
    ({"ssl_ca": "/ca.pem", "login_unix_socket": "/s"}, "mariadb",
     ["ssl", "skip-ssl-verify-server-cert", 'ssl-ca="/ca.pem"']),
    ({"ssl_ca": "/ca.pem", "ssl_cert": "/c", "ssl_key": "/k"}, "mysql",
     ["ssl-mode=VERIFY_IDENTITY", 'ssl-ca="/ca.pem"', 'ssl-cert="/c"', 'ssl-key="/k"']),
    ({"ssl_verify": False}, "mysql", ["ssl-mode=REQUIRED"]),
    ({"ssl_ca": "/ca.pem", "login_unix_socket": "/s"}, "mysql", ["ssl-mode=VERIFY_CA", 'ssl-ca="/ca.pem"']),
    ({}, "mariadb", []),
])
def test_tls_options_are_spelled_for_each_client_family(params, flavor, lines):
    assert tls_option_lines(params, flavor) == lines
    text = option_file_text(dict(params, login_user="u"), flavor=flavor)
    assert all(line in text.split("[mysql]")[0] for line in lines)


def test_the_migration_command_gets_the_tls_settings_as_db_ssl_variables():
    assert tls_environment({}) == {}
    assert tls_environment({"ssl_ca": "/ca", "ssl_cert": "/c", "ssl_key": "/k"}) == {
        "DB_SSL_CA": "/ca", "DB_SSL_CERT": "/c", "DB_SSL_KEY": "/k", "DB_SSL_VERIFY": "true"}
    assert tls_environment({"ssl_verify": False}) == {"DB_SSL_VERIFY": "false"}


def test_tls_files_that_cannot_be_read_are_named_with_their_setting(tmp_path):
    with pytest.raises(DbError, match=r"ssl_ca \(release_db_ssl_ca\) .*/nope.pem .*No such file"):
        tls_context({"login_user": "u", "ssl_ca": str(tmp_path / "nope.pem")})
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(DbError, match="is not a PEM CA certificate file"):
        tls_context({"login_user": "u", "ssl_ca": str(bad)})
    with pytest.raises(DbError, match="needs both ssl_cert"):
        tls_context({"login_user": "u", "ssl_cert": str(bad)})


# -- option pipes and files ------------------------------------------------------------------------------------------
def test_the_option_pipe_holds_the_text_and_nothing_reaches_the_disk():
    params = {"login_user": "u", "login_password": "p€ss\nx", "login_host": "h", "login_port": 1}
    with client_option_pipe(params) as options:
        assert options.arg == "--defaults-extra-file=" + options.path and options.path.startswith("/dev/fd/")
        assert stat.S_ISFIFO(os.stat(options.path).st_mode)
        out = subprocess.run(["cat", options.path], capture_output=True, pass_fds=options.pass_fds, check=True)
        assert out.stdout.decode() == option_file_text(params)
    with pytest.raises(OSError):
        os.fstat(options.pass_fds[0])


def test_the_option_file_directory_names_its_owner_and_is_held_while_it_exists():
    with client_option_file({"login_user": "u", "login_password": "pw"}) as path:
        directory = os.path.dirname(path)
        assert os.path.basename(directory).startswith("dbrelease-opt-%s-" % owner_tag())
        assert not owner_gone(directory)
    assert not os.path.exists(directory)
