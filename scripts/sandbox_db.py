#!/usr/bin/env python3
"""Start and stop throwaway MariaDB servers: a private datadir, socket and port.

Used by `make demo` (the embedded server), by the tests (one server per test session or per test) and by the
molecule scenarios. Nothing here touches a system-wide MariaDB: every file lives under the base directory given.

Replicas: `Sandbox(base, server_id=2).start(extra_args=["--read-only=ON"])` then `replica.replicate_from(primary)`
(a replication account on the primary, CHANGE MASTER TO with GTIDs, START SLAVE; `delay=N` for MASTER_DELAY).

CLI:
    sandbox_db.py start BASE [--port N] [--server-id N] [--replica-of PRIMARY_BASE]
                             [--no-binlog] [--binlog-format ROW] [--binlog-expire-seconds S]   # prints JSON
    sandbox_db.py stop BASE
    sandbox_db.py status BASE
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MARIADBD_CANDIDATES = ("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
INSTALL_DB_CANDIDATES = ("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db")


def _which(candidates):
    for name in candidates:
        path = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if path:
            return path
    raise RuntimeError(
        "MariaDB server binaries not found (%s). Install the packages listed in bindep.txt "
        "(apt-get install mariadb-server mariadb-client)." % ", ".join(candidates[:1])
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sandbox:
    """One throwaway server under `base`: base/data, base/mysqld.sock, base/mysqld.pid, base/mysqld.log."""

    def __init__(self, base, port=None, bind_address="127.0.0.1", server_id=None, log_bin=True, binlog_format=None,
                 binlog_expire_seconds=None):
        """`log_bin=False` starts a server that writes no binary log; `binlog_format` (ROW, MIXED, STATEMENT) and
        `binlog_expire_seconds` set those server options (the server's defaults otherwise: MIXED, never)."""
        self.base = Path(base).resolve()
        self.datadir = self.base / "data"
        self.socket = str(self.base / "mysqld.sock")
        self.pidfile = self.base / "mysqld.pid"
        self.log = self.base / "mysqld.log"
        self.tmpdir = self.base / "tmp"
        self.state = self.base / "sandbox.json"
        self.bind_address = bind_address
        self.log_bin = log_bin
        self.binlog_format = binlog_format
        self.binlog_expire_seconds = binlog_expire_seconds
        if port is None and self.state.exists():
            port = json.loads(self.state.read_text()).get("port")
        self.port = port or free_port()
        if server_id is None and self.state.exists():
            server_id = json.loads(self.state.read_text()).get("server_id")
        self.server_id = int(server_id or 1)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def pid(self):
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        # A pid file outlives a killed server, and pids are reused (pid_max is 32768 here): the pid is ours only
        # while it is a mariadbd started on this datadir. Without this check, stopping a sandbox whose server had
        # died could kill an unrelated process that got the same pid.
        return pid if _alive(pid) and _cmdline_has(pid, "--datadir=%s" % self.datadir) else None

    def running(self) -> bool:
        return self.pid() is not None

    def initialise(self, attempts=2):
        """mariadb-install-db into an empty datadir. A failed bootstrap (seen under heavy load) leaves a partial
        datadir: it is wiped and tried once more; the last failure is raised with the tool's own output."""
        if (self.datadir / "mysql" / "user.frm").exists() or (self.datadir / "mysql" / "global_priv.frm").exists():
            return
        cmd = [
            _which(INSTALL_DB_CANDIDATES),
            "--no-defaults",
            "--datadir=%s" % self.datadir,
            "--user=%s" % _current_user(),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        for attempt in range(1, attempts + 1):
            if self.datadir.exists():
                shutil.rmtree(self.datadir)
            self.datadir.mkdir(parents=True)
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode == 0:
                return
            if attempt == attempts:
                raise RuntimeError("mariadb-install-db failed for %s (exit %d, %d attempts): %s"
                                   % (self.datadir, proc.returncode, attempts, proc.stdout.strip()[-1500:]))

    def start(self, extra_args=(), timeout=30.0):
        if self.running():
            return self
        self.base.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        self.initialise()
        cmd = [
            _which(MARIADBD_CANDIDATES),
            "--no-defaults",
            "--user=%s" % _current_user(),
            "--datadir=%s" % self.datadir,
            "--socket=%s" % self.socket,
            "--pid-file=%s" % self.pidfile,
            "--port=%d" % self.port,
            "--bind-address=%s" % self.bind_address,
            "--log-error=%s" % self.log,
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--skip-name-resolve",
            *self.binlog_options(),
            "--server-id=%d" % self.server_id,
            # A replica names itself in the primary's SHOW SLAVE HOSTS.
            "--report-host=%s" % self.bind_address,
            "--report-port=%d" % self.port,
            "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=96M",
            "--max-allowed-packet=64M",
            # A temporary directory of its own: internal temporary tables in a /tmp shared with other servers and
            # test runs vanished under load ("Error on delete of '/tmp/#sql-temptable-...'", errno 2).
            "--tmpdir=%s" % self.tmpdir,
            *extra_args,
        ]
        with open(os.devnull, "rb") as devnull, open(self.log, "ab") as log:
            subprocess.Popen(cmd, stdin=devnull, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() and os.path.exists(self.socket) and self._port_open():
                self.state.write_text(json.dumps(self.describe()))
                return self
            time.sleep(0.05)
        raise RuntimeError("MariaDB sandbox did not start within %ss; see %s" % (timeout, self.log))

    def binlog_options(self) -> list:
        if not self.log_bin:
            return ["--skip-log-bin"]
        options = ["--log-bin=%s" % (self.datadir / "binlog")]
        if self.binlog_format:
            options.append("--binlog-format=%s" % self.binlog_format)
        if self.binlog_expire_seconds is not None:
            options.append("--binlog-expire-logs-seconds=%d" % self.binlog_expire_seconds)
        return options

    def _port_open(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((self.bind_address, self.port)) == 0

    def stop(self, timeout=30.0, kill=False):
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def destroy(self):
        self.stop(kill=True)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- access ----------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"base": str(self.base), "socket": self.socket, "port": self.port, "host": self.bind_address,
                "pid": self.pid(), "server_id": self.server_id}

    def root(self, database=None, autocommit=True):
        """A PyMySQL connection as root over the socket (root has no password in a sandbox)."""
        import pymysql

        return pymysql.connect(unix_socket=self.socket, user="root", database=database,
                               autocommit=autocommit, charset="utf8mb4")

    def sql(self, statements, database=None):
        """Run one or more statements as root; returns the rows of the last one."""
        if isinstance(statements, str):
            statements = [statements]
        conn = self.root(database)
        try:
            with conn.cursor() as cur:
                rows = ()
                for stmt in statements:
                    cur.execute(stmt)
                    rows = cur.fetchall()
                return rows
        finally:
            conn.close()

    def create_admin(self, user, password, hosts=("localhost", "%"), privileges="ALL PRIVILEGES ON *.*",
                     grant_option=True):
        """Create `user` at each host with `privileges` (as the runbook's db_admin)."""
        stmts = []
        for host in hosts:
            stmts.append("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s" % (_lit(user), _lit(host), _lit(password)))
            stmts.append("ALTER USER %s@%s IDENTIFIED BY %s" % (_lit(user), _lit(host), _lit(password)))
            stmts.append("GRANT %s TO %s@%s%s" % (privileges, _lit(user), _lit(host),
                                                  " WITH GRANT OPTION" if grant_option else ""))
        self.sql(stmts)


    # -- replication ---------------------------------------------------------------------------------------------
    def replicate_from(self, primary, user="sandbox_repl", password="sandbox-repl-pw", delay=0):
        """Make this server a replica of `primary` (GTID, from the primary's first binary log event): a
        replication account on the primary, CHANGE MASTER TO, START SLAVE. `delay` sets MASTER_DELAY."""
        primary.sql(["CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s" % (_lit(user), _lit(password)),
                     "GRANT REPLICATION SLAVE ON *.* TO %s@'%%'" % _lit(user)])
        self.sql(["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL gtid_slave_pos = ''",
                  "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                  "MASTER_USE_GTID=slave_pos, MASTER_DELAY=%d, MASTER_CONNECT_RETRY=1" % (
                      _lit(primary.bind_address), primary.port, _lit(user), _lit(password), int(delay)),
                  "START SLAVE"])
        return self

    def wait_caught_up(self, primary, timeout=30.0):
        """Wait until this replica has applied everything the primary has written (its GTID position)."""
        target = primary.sql("SELECT @@gtid_binlog_pos")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql("SELECT MASTER_GTID_WAIT(%s, 0.5)" % _lit(target))[0][0] == 0:
                return
        raise RuntimeError("replica %s did not reach GTID %s within %ss" % (self.base, target, timeout))


def _cmdline_has(pid: int, needle: str) -> bool:
    """True when process `pid` has the argument `needle` (always true where /proc cannot tell)."""
    try:
        args = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self/cmdline").exists()
    except OSError:
        return True
    return needle.encode() in args


def _alive(pid: int) -> bool:
    """True while `pid` runs; reaps it when it is our own child (a zombie would look alive to kill(0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status", "destroy"))
    parser.add_argument("base")
    parser.add_argument("--port", type=int)
    parser.add_argument("--server-id", type=int)
    parser.add_argument("--replica-of", metavar="PRIMARY_BASE", help="start as a read-only replica of that sandbox")
    parser.add_argument("--no-binlog", action="store_true", help="start a server that writes no binary log")
    parser.add_argument("--binlog-format", choices=("ROW", "MIXED", "STATEMENT"))
    parser.add_argument("--binlog-expire-seconds", type=int)
    args = parser.parse_args(argv)
    box = Sandbox(args.base, port=args.port, server_id=args.server_id or (2 if args.replica_of else None),
                  log_bin=not args.no_binlog, binlog_format=args.binlog_format,
                  binlog_expire_seconds=args.binlog_expire_seconds)
    if args.action == "start":
        box.start(extra_args=["--read-only=ON"] if args.replica_of else ())
        if args.replica_of:
            box.replicate_from(Sandbox(args.replica_of))
        print(json.dumps(box.describe()))
    elif args.action == "stop":
        box.stop()
        print("stopped" if not box.running() else "still running")
    elif args.action == "destroy":
        box.destroy()
    else:
        print(json.dumps(dict(box.describe(), running=box.running())))
        return 0 if box.running() else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
