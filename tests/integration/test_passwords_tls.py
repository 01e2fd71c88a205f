"""Passwords with any character, and TLS with a verified server certificate, through every kind of connection the
modules make (PyMySQL, the dump and restore clients reading their options from a pipe, the migration command's
environment), against real servers: one started by these tests with --require-secure-transport=ON, a CA, a
server certificate and a client certificate made here with openssl."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import short_tmpdir
from helpers import run_module
from tls import create_account, make_pki, start_tls_server

# Every character that broke something once: PyMySQL's latin-1 (€ crashed, ü was denied), option-file quoting
# (quotes, backslash, #, ;, =, spaces at either end, a newline), Ansible's templating ({{ }}, {% %}), printf (%).
KITCHEN_SINK = " p€ü'\"\\#;={{ x }}{% if %}%s%%\t\nend "
PASSWORDS = [KITCHEN_SINK, "ü", "€", "日本語パスワード", "😀emoji", "\\", '"', "'", " ", "#", "{{ vault }}",
             "line\nbreak"]

MIGRATE_SCRIPT = r'''
import os, ssl, sys
import pymysql
kwargs = dict(user=os.environ["DB_USER"], password=os.environ["DB_PASSWORD"].encode(), database=os.environ["DB_NAME"])
if os.environ.get("DB_SOCKET"):
    kwargs["unix_socket"] = os.environ["DB_SOCKET"]
else:
    kwargs.update(host=os.environ["DB_HOST"], port=int(os.environ["DB_PORT"]))
if "DB_SSL_VERIFY" in os.environ:
    ctx = ssl.create_default_context(cafile=os.environ.get("DB_SSL_CA"))
    if os.environ["DB_SSL_VERIFY"] != "true":
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if os.environ.get("DB_SSL_CERT"):
        ctx.load_cert_chain(os.environ["DB_SSL_CERT"], os.environ["DB_SSL_KEY"])
    kwargs["ssl"] = ctx
conn = pymysql.connect(**kwargs)
with conn.cursor() as cur:
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
    tls = cur.fetchone()[1]
    cur.execute("CREATE TABLE IF NOT EXISTS migrated (id INT PRIMARY KEY, tls VARCHAR(20))")
    cur.execute("REPLACE INTO migrated VALUES (1, %s)", (tls,))
conn.commit()
print("migrated over", tls or "plain TCP/socket")
'''


def account(box, user, password, require="", privileges="ALL PRIVILEGES ON *.* WITH GRANT OPTION"):
    create_account(box, user, password, require=require, privileges=(privileges,))


def params(box, user, password, via="socket", **extra):
    base = dict(login_user=user, login_password=password, login_host="127.0.0.1", login_port=box.port,
                login_unix_socket=box.socket if via == "socket" else "", connect_timeout=5)
    base.update(extra)
    return base


def assert_secret_absent(result, password):
    text = json.dumps(result, ensure_ascii=False)
    for form in {password.strip(), json.dumps(password)[1:-1]}:
        if len(form) >= 3:
            assert form not in text, "the password leaked into a module result"


@pytest.fixture(scope="module")
def app(mariadb):
    name = "pw_" + uuid.uuid4().hex[:8]
    mariadb.sql("CREATE DATABASE `%s`" % name)
    mariadb.sql(["CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(40))",
                 "INSERT INTO orders VALUES (1, 'a'), (2, 'ü€')",
                 "CREATE VIEW recent AS SELECT id FROM orders WHERE id > 1"], database=name)
    yield name
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % name)


@pytest.mark.parametrize("password", PASSWORDS, ids=lambda p: repr(p)[1:-1][:24])
def test_any_password_works_for_pymysql_and_for_the_clients_reading_the_option_pipe(mariadb, password):
    from ansible.module_utils.dbrelease.db import client_option_pipe, connect

    user = "pw_" + uuid.uuid4().hex[:8]
    account(mariadb, user, password, privileges="SELECT ON *.*")
    try:
        for via in ("socket", "tcp"):
            p = params(mariadb, user, password, via)
            conn = connect(p)
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                assert cur.fetchone()[0].startswith(user + "@")
            conn.close()
            with client_option_pipe(p, client=shutil.which("mariadb")) as options:
                out = subprocess.run(["mariadb", options.arg, "-N", "-e", "SELECT CURRENT_USER()"],
                                     capture_output=True, text=True, pass_fds=options.pass_fds, timeout=30)
            assert out.returncode == 0 and out.stdout.startswith(user + "@"), out.stderr
    finally:
        mariadb.sql(["DROP USER IF EXISTS '%s'@'localhost'" % user, "DROP USER IF EXISTS '%s'@'127.0.0.1'" % user])


def test_the_kitchen_sink_password_goes_through_every_module(mariadb, app, tmp_path):
    user = "ks_" + uuid.uuid4().hex[:8]
    account(mariadb, user, KITCHEN_SINK)
    p = params(mariadb, user, KITCHEN_SINK, via="tcp")
    try:
        info = run_module("db_server_info", dict(p, database=app))
        assert info.get("server") and not info.get("failed"), info
        lock = run_module("release_lock", dict(p, name=app, lock_schema="pw_lock_" + app[3:],
                                               holder={"user": "t", "controller": "c"}))
        assert lock.get("acquired"), lock
        backups = tmp_path / "backups"
        backups.mkdir()
        dumped = run_module("db_backup", dict(p, database=app, backup_dir=str(backups), label="v1", mode="run"))
        assert dumped.get("path") and not dumped.get("failed"), dumped
        restored = run_module("backup_restore_check", dict(p, path=dumped["path"], database=app))
        assert restored.get("ok") is True, restored
        ddl = tmp_path / "change.sql"
        ddl.write_text("ALTER TABLE orders ADD COLUMN shipped TINYINT NOT NULL DEFAULT 0;\n")
        applied = run_module("schema_apply", dict(p, db=app, ddl_files=[str(ddl)]))
        assert applied.get("changed") is True and not applied.get("failed"), applied
        script = tmp_path / "migrate.py"
        script.write_text(MIGRATE_SCRIPT)
        migrated = run_module("sql_migrate", dict(p, driver="command", db_name=app,
                                                  command="%s %s" % (sys.executable, script), history_table=""))
        assert migrated.get("rc") == 0, migrated
        leftovers = run_module("release_leftovers", dict(p, temp_dir=str(tmp_path)))
        assert not leftovers.get("failed"), leftovers
        released = run_module("release_lock", dict(p, name=app, lock_schema="pw_lock_" + app[3:], state="absent",
                                                   token=lock["token"]))
        assert released.get("released") is True, released
        for result in (info, lock, dumped, restored, applied, migrated, leftovers, released):
            assert_secret_absent(result, KITCHEN_SINK)
    finally:
        mariadb.sql(["DROP USER IF EXISTS '%s'@'localhost'" % user, "DROP USER IF EXISTS '%s'@'127.0.0.1'" % user,
                     "DROP DATABASE IF EXISTS `pw_lock_%s`" % app[3:]])


def test_a_wrong_password_with_odd_characters_is_denied_without_being_quoted(mariadb, app):
    wrong = "wr€ng-{{ x }}-" + uuid.uuid4().hex[:6]
    result = run_module("db_server_info", dict(params(mariadb, "db_admin", wrong), database=app))
    assert result["failed"] and "(1045) Access denied" in result["msg"] and "wrong password" in result["msg"]
    assert_secret_absent(result, wrong)


def test_a_password_no_client_can_hold_is_refused_before_connecting_with_the_reason(mariadb, app):
    result = run_module("db_server_info", dict(params(mariadb, "db_admin", "nul\x00byte-" + uuid.uuid4().hex[:6]),
                                               database=app))
    assert result["failed"] and "NUL character" in result["msg"] and "release_db_admin_password" in result["msg"]
    assert "nul" not in result["msg"].split("cannot be used")[0]


# -- TLS ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki():
    base = make_pki(Path(short_tmpdir("dbr-pki-")))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server(pki):
    box = start_tls_server(short_tmpdir("dbr-tls-"), pki)
    box.sql(["CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))",
             "INSERT INTO shop.orders VALUES (1, 'tls')"])
    account(box, "x509_admin", KITCHEN_SINK, require="REQUIRE X509")
    yield box
    box.destroy()


def tls_params(box, pki, host="localhost", **extra):
    base = dict(login_user="x509_admin", login_password=KITCHEN_SINK, login_host=host, login_port=box.port,
                login_unix_socket="", connect_timeout=5, ssl_ca=str(pki / "ca.pem"),
                ssl_cert=str(pki / "client.pem"), ssl_key=str(pki / "client.key"))
    base.update(extra)
    return base


def test_an_x509_account_on_a_tls_only_server_works_for_every_kind_of_connection(tls_server, pki, tmp_path):
    from ansible.module_utils.dbrelease.db import connect

    p = tls_params(tls_server, pki)
    conn = connect(p)
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        assert cur.fetchone()[1].startswith("TLS")
    conn.close()
    info = run_module("db_server_info", dict(p, database="shop"))
    assert info.get("server") and not info.get("failed"), info
    backups = tmp_path / "backups"
    backups.mkdir()
    dumped = run_module("db_backup", dict(p, database="shop", backup_dir=str(backups), label="tls", mode="run"))
    assert dumped.get("path"), dumped
    restored = run_module("backup_restore_check", dict(p, path=dumped["path"], database="shop"))
    assert restored.get("ok") is True, restored
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATE_SCRIPT)
    migrated = run_module("sql_migrate", dict(p, driver="command", db_name="shop",
                                              command="%s %s" % (sys.executable, script), history_table=""))
    assert migrated.get("rc") == 0 and "migrated over TLS" in migrated["stdout"], migrated
    assert tls_server.sql("SELECT tls FROM shop.migrated")[0][0].startswith("TLS")


def test_a_wrong_ca_fails_saying_the_certificate_did_not_verify(tls_server, pki):
    result = run_module("db_server_info", dict(tls_params(tls_server, pki, ssl_ca=str(pki / "other.pem")),
                                               database="shop"))
    assert result["failed"] and "the server's TLS certificate did not verify" in result["msg"], result
    assert "release_db_ssl_ca" in result["msg"] and "Access denied" not in result["msg"]


def test_a_host_name_the_certificate_does_not_name_fails_saying_so(tls_server, pki):
    result = run_module("db_server_info", dict(tls_params(tls_server, pki, host="127.0.0.1"), database="shop"))
    assert result["failed"] and "certificate does not name 127.0.0.1" in result["msg"], result
    unverified = run_module("db_server_info", dict(tls_params(tls_server, pki, host="127.0.0.1", ssl_verify=False),
                                                   database="shop"))
    assert unverified.get("server"), unverified


def test_the_dump_client_verifies_the_server_too(tls_server, pki, tmp_path):
    """The option pipe carries ssl-verify-server-cert: the dump client refuses a host name the certificate lacks."""
    from ansible.module_utils.dbrelease.db import client_option_pipe

    for host, ok in (("localhost", True), ("127.0.0.1", False)):
        with client_option_pipe(tls_params(tls_server, pki, host=host), client=shutil.which("mariadb-dump")) as opts:
            out = subprocess.run(["mariadb-dump", opts.arg, "--no-data", "shop"], capture_output=True, text=True,
                                 pass_fds=opts.pass_fds, timeout=30)
        assert (out.returncode == 0) is ok, out.stderr
        if not ok:
            assert "TLS/SSL error" in out.stderr


def test_an_x509_account_without_a_client_certificate_is_told_what_may_be_missing(tls_server, pki):
    p = tls_params(tls_server, pki, ssl_cert="", ssl_key="")
    result = run_module("db_server_info", dict(p, database="shop"))
    assert result["failed"] and "(1045)" in result["msg"] and "release_db_ssl_cert" in result["msg"], result


def test_tls_files_that_are_missing_are_named(tls_server, pki, tmp_path):
    result = run_module("db_server_info", dict(tls_params(tls_server, pki, ssl_key=str(tmp_path / "gone.key")),
                                               database="shop"))
    assert result["failed"] and "ssl_key (release_db_ssl_key)" in result["msg"] and "gone.key" in result["msg"]


def test_a_socket_connection_needs_no_host_name_but_still_checks_the_chain(tls_server, pki):
    p = tls_params(tls_server, pki, login_unix_socket=tls_server.socket)
    assert run_module("db_server_info", dict(p, database="shop")).get("server")
    bad = run_module("db_server_info", dict(p, database="shop", ssl_ca=str(pki / "other.pem")))
    assert bad["failed"] and "did not verify" in bad["msg"], bad


def test_no_tls_where_the_server_wants_it_is_not_passed_off_as_an_account_problem_only(tls_server, pki):
    """The server answers 1045 for an X509 account without TLS; the message says TLS may be why."""
    p = tls_params(tls_server, pki, ssl_ca="", ssl_cert="", ssl_key="")
    result = run_module("db_server_info", dict(p, database="shop"))
    assert result["failed"] and "requires TLS or a client certificate" in result["msg"], result



NODE_CHECK = ("node -e \"const m = require('mysql2/promise'); const {connectionFromEnv} = require('./db.config');"
              " m.createConnection(connectionFromEnv()).then(async (c) => {"
              " const [rows] = await c.query(\\\"SHOW SESSION STATUS LIKE 'Ssl_version'\\\");"
              " console.log('node connected over ' + (rows[0].Value || 'no TLS')); await c.end(); })"
              ".catch((e) => { console.error(e.message); process.exit(3); })\"")


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_the_example_backend_connects_with_the_environment_the_migrate_phase_gives_it(tls_server, pki):
    backend = Path(__file__).resolve().parents[2] / "examples/app/backend"
    for host, expect in (("localhost", "node connected over TLS"), ("127.0.0.1", None)):
        result = run_module("sql_migrate", dict(tls_params(tls_server, pki, host=host), driver="command",
                                                db_name="shop", command=NODE_CHECK, chdir=str(backend),
                                                history_table=""))
        if expect:
            assert result.get("rc") == 0 and expect in result["stdout"], result
        else:  # mysql2 checks the host name as well
            assert result.get("failed") and "127.0.0.1" in result["msg"], result


@pytest.mark.skipif(not shutil.which("pt-online-schema-change"), reason="percona-toolkit is not installed")
def test_pt_online_schema_change_inherits_the_tls_settings_from_the_option_file(tls_server, pki):
    """pt-online-schema-change rereads its option file for each connection: the file variant, TLS included."""
    from ansible.module_utils.dbrelease.db import client_option_file

    for ca, ok in (("ca.pem", True), ("other.pem", False)):
        p = tls_params(tls_server, pki, login_unix_socket=tls_server.socket, ssl_ca=str(pki / ca))
        with client_option_file(p) as path:
            out = subprocess.run(["pt-online-schema-change", "--dry-run", "--alter", "ADD COLUMN w INT",
                                  "--recursion-method=none", "F=%s,D=shop,t=orders" % path],
                                 capture_output=True, text=True, timeout=120)
        assert (out.returncode == 0) is ok, out.stdout + out.stderr
        assert ("Dry run complete" in out.stdout) if ok else ("TLS/SSL error" in out.stdout + out.stderr)
