"""Connections to the database, shared by every module. Stdlib plus PyMySQL only: this runs on target hosts.

Nothing here ever puts a password on a command line, in an environment variable of a client tool, in an error
message or in a log. Client tools read it from an option file: `client_option_pipe()` hands them the text through a
pipe (`--defaults-extra-file=/dev/fd/N`), so it never touches a disk; `client_option_file()` writes a 0600 file for
tools that read it more than once, removed afterwards and held by its owner until then (`owner.py`), so that a
run killed before it could remove the file leaves something the next run recognises and removes
(`leftovers.py`).

Passwords are sent as UTF-8 bytes (PyMySQL would encode a `str` as latin-1: `€` could not be sent and `ü` would
be the wrong bytes). Any character works except NUL, which neither an option file nor an environment variable can
hold.

TLS (`ssl_ca`, `ssl_cert`, `ssl_key`, `ssl_verify`): used by every connection, PyMySQL's and the client tools'
(through the option file), and given to the migration command as `DB_SSL_*` variables (`tls_environment()`).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile

from ansible.module_utils.dbrelease import owner

try:
    import pymysql
    import pymysql.cursors

    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by require_pymysql()
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = exc

if HAS_PYMYSQL:
    class _Connection(pymysql.connections.Connection):
        """PyMySQL 1.2 offers TLS on every TCP connection that sets no TLS option ("preferred", unverified) and
        builds a new SSL context for each one, loading the system's CA store: about 50 ms of CPU per connection.
        This builds that context once per process; contexts with options are built as PyMySQL builds them."""

        _preferred_ctx = None

        def _create_ssl_ctx(self, sslp):
            if sslp:
                return super()._create_ssl_ctx(sslp)
            if _Connection._preferred_ctx is None:
                _Connection._preferred_ctx = super()._create_ssl_ctx(sslp)
            return _Connection._preferred_ctx

# The private directories of option files: `dbrelease-opt-<owner tag>-<random>` under the system temp dir.
OPTION_DIR_PREFIX = "dbrelease-opt-"
# Clients read option file lines into a 4096-byte buffer; a longer line would be cut (and read as two options).
MAX_OPTION_LINE = 4000
# Where the project-wide name of each connection setting is documented (for messages).
SETTINGS = {
    "login_user": "release_db_admin_user",
    "login_password": "release_db_admin_password",
    "login_host": "release_db_host",
    "login_port": "release_db_port",
    "login_unix_socket": "release_db_socket",
    "ssl_ca": "release_db_ssl_ca",
    "ssl_cert": "release_db_ssl_cert",
    "ssl_key": "release_db_ssl_key",
    "ssl_verify": "release_db_ssl_verify",
}


class DbError(Exception):
    """A database error whose message is safe to show: it names the account and endpoint, never the password."""


def setting(name: str) -> str:
    """`ssl_ca (release_db_ssl_ca)`: a module option with the project-wide input it comes from."""
    return "%s (%s)" % (name, SETTINGS[name]) if name in SETTINGS else name


def connection_argument_spec():
    """Connection parameters, named as in community.mysql where it has them, plus TLS."""
    return dict(
        login_user=dict(type="str", default="db_admin"),
        login_password=dict(type="str", no_log=True, default=""),
        login_host=dict(type="str", default="localhost"),
        login_port=dict(type="int", default=3306),
        login_unix_socket=dict(type="str", default=""),
        connect_timeout=dict(type="int", default=10),
        ssl_ca=dict(type="str", default="", aliases=["ca_cert"]),
        ssl_cert=dict(type="str", default="", aliases=["client_cert"]),
        ssl_key=dict(type="str", default="", aliases=["client_key"]),
        ssl_verify=dict(type="bool"),
    )


def require_pymysql(module):
    if not HAS_PYMYSQL:
        module.fail_json(msg="PyMySQL is required on the database host's Python interpreter "
                             "(%s): pip install PyMySQL" % PYMYSQL_IMPORT_ERROR)


def endpoint(params) -> str:
    """`user@host:port` or `user@socket`, for messages."""
    if params.get("login_unix_socket"):
        where = "socket %s" % params["login_unix_socket"]
    else:
        where = "%s:%s" % (params.get("login_host") or "localhost", params.get("login_port") or 3306)
    return "%s@%s" % (params.get("login_user"), where)


# -- passwords --------------------------------------------------------------------------------------------------
def password_problem(password) -> str | None:
    """Why `password` cannot be used by every client of a release (None when it can). Never quotes it."""
    if not password:
        return None
    if "\x00" in password:
        return ("it contains a NUL character, which no client option file and no environment variable can hold; "
                "change the password")
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode text (it holds a lone surrogate); check how it was read"
    if len(_option_value(password).encode("utf-8")) + len("password=") > MAX_OPTION_LINE:
        return ("it is %d bytes long: the client tools read option file lines of at most %d bytes; use a shorter "
                "password" % (len(encoded), MAX_OPTION_LINE))
    return None


def password_bytes(params) -> bytes:
    """The password as PyMySQL must get it: UTF-8 bytes. Raises DbError (safe to show) when it cannot be used."""
    password = params.get("login_password") or ""
    problem = password_problem(password)
    if problem:
        raise DbError("the password of %s cannot be used: %s (%s)" % (endpoint(params), problem,
                                                                     setting("login_password")))
    return password.encode("utf-8")


def scrub(text: str, params) -> str:
    """Remove the password from any text before it is shown, in the forms a message may quote it in."""
    password = params.get("login_password") if params else None
    if not password or not text:
        return text
    forms = {password, repr(password)[1:-1], json.dumps(password)[1:-1],
             password.encode("utf-8", "replace").decode("latin-1"), _option_value(password)[1:-1]}
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, "********")
    return text


# -- TLS ----------------------------------------------------------------------------------------------------------
def tls_settings(params) -> dict:
    """`{"enabled", "ca", "cert", "key", "verify"}` from the module params.

    TLS is on when any of ssl_ca, ssl_cert, ssl_key is given or ssl_verify is set. `verify` (the server's
    certificate chain and, over TCP, its host name) defaults to on whenever a CA is given.
    """
    ca, cert, key = (params.get(name) or "" for name in ("ssl_ca", "ssl_cert", "ssl_key"))
    verify = params.get("ssl_verify")
    enabled = bool(ca or cert or key or verify is not None)
    if verify is None:
        verify = bool(ca)
    return {"enabled": enabled, "ca": ca, "cert": cert, "key": key, "verify": bool(verify) and enabled}


def _readable(params, name) -> str:
    path = params.get(name) or ""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DbError("cannot use %s %s for the connection of %s: %s" % (
            setting(name), path, endpoint(params), exc.strerror or exc)) from None
    return path


def tls_context(params):
    """An ssl.SSLContext for PyMySQL (None without TLS). Raises DbError naming the file or setting at fault."""
    tls = tls_settings(params)
    if not tls["enabled"]:
        return None
    if bool(tls["cert"]) != bool(tls["key"]):
        raise DbError("a client certificate needs both %s and %s (only %s is set)" % (
            setting("ssl_cert"), setting("ssl_key"), "ssl_cert" if tls["cert"] else "ssl_key"))
    ca = _readable(params, "ssl_ca") if tls["ca"] else None
    try:
        ctx = ssl.create_default_context(cafile=ca if tls["verify"] else None)
    except ssl.SSLError as exc:
        raise DbError("%s %s is not a PEM CA certificate file (%s)" % (setting("ssl_ca"), ca, exc.reason or exc)
                      ) from None
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    if tls["verify"]:
        # Over a unix socket there is no host name to check (the socket itself is local); the chain still is.
        ctx.check_hostname = not params.get("login_unix_socket")
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls["cert"]:
        cert, key = _readable(params, "ssl_cert"), _readable(params, "ssl_key")
        try:
            ctx.load_cert_chain(cert, keyfile=key)
        except ssl.SSLError as exc:
            raise DbError("cannot load the client certificate %s with the key %s (%s, %s): %s" % (
                cert, key, setting("ssl_cert"), setting("ssl_key"), exc.reason or exc)) from None
    return ctx


def tls_environment(params) -> dict:
    """`DB_SSL_CA`, `DB_SSL_CERT`, `DB_SSL_KEY`, `DB_SSL_VERIFY` (`true`/`false`) for the migration command, when
    TLS is on; an empty dict otherwise."""
    tls = tls_settings(params)
    if not tls["enabled"]:
        return {}
    env = {"DB_SSL_VERIFY": "true" if tls["verify"] else "false"}
    for name, key in (("DB_SSL_CA", "ca"), ("DB_SSL_CERT", "cert"), ("DB_SSL_KEY", "key")):
        if tls[key]:
            env[name] = tls[key]
    return env


# -- connecting ---------------------------------------------------------------------------------------------------
def connect(params, database=None, autocommit=True, cursorclass=None):
    """A PyMySQL connection from module params; raises DbError with a message safe to show."""
    if not HAS_PYMYSQL:
        raise DbError("PyMySQL is not installed on this host: pip install PyMySQL")
    kwargs = dict(
        user=params.get("login_user"),
        password=password_bytes(params),
        database=database,
        autocommit=autocommit,
        charset="utf8mb4",
        connect_timeout=params.get("connect_timeout") or 10,
        cursorclass=cursorclass or pymysql.cursors.Cursor,
    )
    ctx = tls_context(params)
    if ctx is not None:
        kwargs["ssl"] = ctx
    elif params.get("login_unix_socket"):
        # No TLS asked for over a local socket: none offered either (as the mysql and mariadb clients do).
        kwargs["ssl_disabled"] = True
    if params.get("login_unix_socket"):
        kwargs["unix_socket"] = params["login_unix_socket"]
    else:
        kwargs["host"] = params.get("login_host") or "localhost"
        kwargs["port"] = int(params.get("login_port") or 3306)
    try:
        return _Connection(**kwargs)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message that says what happened
        raise DbError("cannot connect as %s: %s" % (endpoint(params), scrub(connect_error(exc, params), params))
                      ) from None


def connect_error(exc, params) -> str:
    """What went wrong when connecting, in words: TLS, the network, the account, or PyMySQL itself."""
    original = getattr(exc, "original_exception", None) or exc
    tls = tls_settings(params)
    if isinstance(original, ssl.SSLCertVerificationError):
        reason = getattr(original, "verify_message", None) or str(original)
        if "hostname" in reason.lower() or "ip address" in reason.lower():
            return ("the server's TLS certificate does not name %s (%s): connect with a host name the certificate "
                    "names (%s), or set %s to false" % (params.get("login_host"), reason, setting("login_host"),
                                                        setting("ssl_verify")))
        return ("the server's TLS certificate did not verify (%s) against %s: set %s to the CA that signed the "
                "server's certificate" % (reason, tls["ca"] or "the system's CA certificates", setting("ssl_ca")))
    if isinstance(original, ssl.SSLError):
        return "the TLS handshake failed: %s" % (original.reason or original)
    if isinstance(original, (socket.timeout, TimeoutError)):
        return "no answer within %s s (connect_timeout)" % (params.get("connect_timeout") or 10)
    if isinstance(original, ConnectionRefusedError):
        return "the connection was refused: no server listens there (%s, %s)" % (
            setting("login_host"), setting("login_port"))
    if isinstance(original, FileNotFoundError) and params.get("login_unix_socket"):
        return "the socket does not exist: no server listens there (%s)" % setting("login_unix_socket")
    if isinstance(original, socket.gaierror):
        return "the host name %s does not resolve (%s)" % (params.get("login_host"), setting("login_host"))
    if isinstance(original, OSError):
        return "the network said: %s" % (original.strerror or original)
    if HAS_PYMYSQL and isinstance(exc, pymysql.err.MySQLError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code == 1045:
            hint = "wrong password, no such account at this host part"
            hint += ", or the account requires TLS or a client certificate (%s, %s)" % (
                setting("ssl_cert"), setting("ssl_key")) if not tls["cert"] else ""
            return "(1045) %s: %s" % (text, hint)
        if code == 3159 or "insecure transport" in str(text).lower():
            return "(%s) %s: the server accepts TLS connections only; set %s" % (code, text, setting("ssl_ca"))
        return "(%s) %s" % (code, text) if code is not None else str(text)
    return "%s: %s" % (type(exc).__name__, exc)


# -- client option files ---------------------------------------------------------------------------------------------
ClientOptions = collections.namedtuple("ClientOptions", "arg path pass_fds")
_FLAVORS = {}


def client_flavor(binary) -> str:
    """`mariadb` or `mysql`: which family a client tool belongs to (their option names differ). Cached."""
    if not binary:
        return "mariadb"
    if binary not in _FLAVORS:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
            text = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            text = ""
        _FLAVORS[binary] = "mariadb" if "mariadb" in text.lower() or not text else "mysql"
    return _FLAVORS[binary]


@contextlib.contextmanager
def client_option_pipe(params, database=None, group="client", client=None):
    """Yield `ClientOptions(arg, path, pass_fds)` whose text the client reads from a pipe: nothing on disk.

    `arg` is `--defaults-extra-file=/dev/fd/N`, to pass as the tool's *first* argument, and `pass_fds` goes to
    `subprocess.Popen`. A pipe is read once: use one per child process, and the file variant
    (`client_option_file()`) for tools that read their option file again later (pt-online-schema-change).
    """
    data = option_file_text(params, database=database, group=group, flavor=client_flavor(client)).encode("utf-8")
    read_fd, write_fd = os.pipe()
    try:
        try:
            view = memoryview(data)
            while view:  # a few KiB at most: fits in the pipe's buffer, so this never blocks
                view = view[os.write(write_fd, view):]
        finally:
            os.close(write_fd)
        path = "/dev/fd/%d" % read_fd
        yield ClientOptions("--defaults-extra-file=" + path, path, (read_fd,))
    finally:
        os.close(read_fd)


@contextlib.contextmanager
def client_option_file(params, database=None, group="client", client=None):
    """Yield the path of a private option file for client tools that need a real file.

    Pass it as the *first* argument: `--defaults-extra-file=PATH`. The file is mode 0600 inside a 0700 directory
    named `dbrelease-opt-<host>.b<boot>.p<pid>-<random>` and locked by this process while it exists; it is removed
    when the block ends, and, when this process is killed before that, by the next run's clean-up
    (`leftovers.sweep_option_dirs()`), which sees that the lock is free.
    """
    text = option_file_text(params, database=database, group=group, flavor=client_flavor(client))
    tmpdir = tempfile.mkdtemp(prefix="%s%s-" % (OPTION_DIR_PREFIX, owner.owner_tag()))
    held = None
    try:
        held = owner.hold(tmpdir)
        os.chmod(tmpdir, 0o700)
        path = os.path.join(tmpdir, "client.cnf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        owner.release(held)


_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"))


def _option_value(value) -> str:
    """A double-quoted option file value: the clients unescape `\\\\ \\" \\n \\r \\t \\b` inside quotes, and keep
    every other character (`#`, `;`, `'`, spaces at either end, any Unicode) as it is."""
    text = str(value)
    for char, escaped in _ESCAPES:
        text = text.replace(char, escaped)
    return '"%s"' % text


def option_file_text(params, database=None, group="client", flavor="mariadb") -> str:
    """The option file's text. Raises DbError (naming the setting, never the value) for what it cannot hold."""
    for name in ("login_user", "login_password", "login_unix_socket", "login_host", "ssl_ca", "ssl_cert",
                 "ssl_key"):
        value = params.get(name) or ""
        if "\x00" in value:
            raise DbError("%s contains a NUL character, which a client option file cannot hold" % setting(name))
    problem = password_problem(params.get("login_password") or "")
    if problem:
        raise DbError("the password of %s cannot be written to a client option file: %s (%s)" % (
            endpoint(params), problem, setting("login_password")))
    lines = ["[%s]" % group, "user=%s" % _option_value(params.get("login_user"))]
    if params.get("login_password"):
        lines.append("password=%s" % _option_value(params["login_password"]))
    if params.get("login_unix_socket"):
        lines.append("socket=%s" % _option_value(params["login_unix_socket"]))
        lines.append("protocol=SOCKET")
    else:
        lines.append("host=%s" % _option_value(params.get("login_host") or "localhost"))
        lines.append("port=%d" % int(params.get("login_port") or 3306))
        lines.append("protocol=TCP")
    if database:
        lines.append("database=%s" % _option_value(database))
    lines += tls_option_lines(params, flavor)
    # Only the interactive client knows connect-timeout; mariadb-dump/mysqldump refuse it under [client] (even as
    # `loose-`, with a warning), and they do not read the [mysql] group.
    lines += ["", "[mysql]", "connect-timeout=%d" % int(params.get("connect_timeout") or 10)]
    return "\n".join(lines) + "\n"


def tls_option_lines(params, flavor="mariadb") -> list:
    """The TLS options of the clients of `flavor`: MariaDB's `ssl`/`ssl-verify-server-cert` (10.11 does not verify
    unless told, 11.4 and later verify unless told not to: both are told), MySQL's `ssl-mode`."""
    tls = tls_settings(params)
    if not tls["enabled"]:
        return []
    socket_path = params.get("login_unix_socket")
    if flavor == "mysql":
        lines = ["ssl-mode=%s" % ("VERIFY_IDENTITY" if tls["verify"] and not socket_path else
                                  "VERIFY_CA" if tls["verify"] else "REQUIRED")]
    else:
        # The MariaDB clients check the chain against ssl-ca whenever one is given; ssl-verify-server-cert adds the
        # host name (none to check over a socket).
        lines = ["ssl", "ssl-verify-server-cert" if tls["verify"] and not socket_path
                 else "skip-ssl-verify-server-cert"]
    if tls["ca"] and tls["verify"]:
        lines.append("ssl-ca=%s" % _option_value(tls["ca"]))
    if tls["cert"]:
        lines.append("ssl-cert=%s" % _option_value(tls["cert"]))
    if tls["key"]:
        lines.append("ssl-key=%s" % _option_value(tls["key"]))
    return lines


# -- server and names -------------------------------------------------------------------------------------------------
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def parse_version(version: str):
    """`('mariadb'|'mysql', (major, minor, patch))` from a `SELECT VERSION()` string."""
    match = _VERSION_RE.match(version or "")
    numbers = tuple(int(x) for x in match.groups()) if match else (0, 0, 0)
    flavor = "mariadb" if "mariadb" in (version or "").lower() else "mysql"
    return flavor, numbers


def server_info(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    flavor, numbers = parse_version(version)
    return {"version": version, "flavor": flavor, "version_tuple": list(numbers)}


def quote_ident(name: str) -> str:
    """Backtick-quote an identifier (database, table, column, user name part)."""
    if name is None or name == "" or "\x00" in str(name):
        raise ValueError("invalid identifier: %r" % (name,))
    return "`%s`" % str(name).replace("`", "``")


def client_binary(*candidates):
    """First of the named client tools found on PATH (mariadb-dump before mysqldump, and so on)."""
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None
