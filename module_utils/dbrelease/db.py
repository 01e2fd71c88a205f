"""Connections to the database, shared by every module. Stdlib plus PyMySQL only: this runs on target hosts.

Nothing here ever puts a password on a command line, in an environment variable of a client tool, in an error
message or in a log: client tools read it from a 0600 option file that `client_option_file()` removes afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile

try:
    import pymysql
    import pymysql.cursors

    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by require_pymysql()
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = exc


class DbError(Exception):
    """A database error whose message is safe to show: it names the account and endpoint, never the password."""


def connection_argument_spec():
    """Connection parameters, named as in community.mysql so users find them familiar."""
    return dict(
        login_user=dict(type="str", default="db_admin"),
        login_password=dict(type="str", no_log=True, default=""),
        login_host=dict(type="str", default="localhost"),
        login_port=dict(type="int", default=3306),
        login_unix_socket=dict(type="str", default=""),
        connect_timeout=dict(type="int", default=10),
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


def connect(params, database=None, autocommit=True, cursorclass=None):
    """A PyMySQL connection from module params; raises DbError with a message safe to show."""
    if not HAS_PYMYSQL:
        raise DbError("PyMySQL is not installed on this host: pip install PyMySQL")
    kwargs = dict(
        user=params.get("login_user"),
        password=params.get("login_password") or "",
        database=database,
        autocommit=autocommit,
        charset="utf8mb4",
        connect_timeout=params.get("connect_timeout") or 10,
        cursorclass=cursorclass or pymysql.cursors.Cursor,
    )
    if params.get("login_unix_socket"):
        kwargs["unix_socket"] = params["login_unix_socket"]
    else:
        kwargs["host"] = params.get("login_host") or "localhost"
        kwargs["port"] = int(params.get("login_port") or 3306)
    try:
        return pymysql.connect(**kwargs)
    except pymysql.err.MySQLError as exc:
        raise DbError("cannot connect as %s: %s" % (endpoint(params), scrub(str(exc), params))) from None


def scrub(text: str, params) -> str:
    """Remove the password from any text before it is shown (belt and braces: servers do not echo it)."""
    password = params.get("login_password") if params else None
    if password and text:
        text = text.replace(password, "********")
    return text


@contextlib.contextmanager
def client_option_file(params, database=None, group="client"):
    """Yield the path of a private `[client]` option file for mysql/mysqldump/mariadb tools.

    Pass it as the *first* argument: `--defaults-extra-file=PATH`. The file is mode 0600 inside a 0700 directory
    and is removed when the block ends, whatever happens.
    """
    tmpdir = tempfile.mkdtemp(prefix="dbrelease-")
    os.chmod(tmpdir, 0o700)
    path = os.path.join(tmpdir, "client.cnf")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(option_file_text(params, database=database, group=group))
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _option_value(value) -> str:
    # Option files accept quoted values with backslash escapes.
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def option_file_text(params, database=None, group="client") -> str:
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
    # Only the interactive client knows connect-timeout; mariadb-dump/mysqldump refuse it under [client] (even as
    # `loose-`, with a warning), and they do not read the [mysql] group.
    lines += ["", "[mysql]", "connect-timeout=%d" % int(params.get("connect_timeout") or 10)]
    return "\n".join(lines) + "\n"


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
