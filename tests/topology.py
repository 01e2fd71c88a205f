#!/usr/bin/env python3
"""A multi-host test topology of Linux network namespaces: real hosts over SSH on one machine.

    python tests/topology.py up BASE [--db db1 --db db2 --vault vault1]   # prints the state as JSON
    python tests/topology.py up BASE --example     # + the example app on each database host, release vars
    python tests/topology.py up BASE --example --app   # + the example app's HTTP server on each database host
    python tests/topology.py down BASE                                    # removes everything (idempotent)
    python tests/topology.py status BASE
    python tests/topology.py inventory BASE OUT.yml                       # an Ansible inventory for it

Layout (N is a free index picked at `up`, 1..254, recorded in BASE/topology.json):

    root namespace (the controller)     bridge dbr<N>br, 10.231.<N>.1/24
      |-- netns dbr<N>-db1    eth0 10.231.<N>.10   mariadbd :3306 (bound to that address) + sshd :22
      |-- netns dbr<N>-db2    eth0 10.231.<N>.11   mariadbd :3306 + sshd :22
      `-- netns dbr<N>-vault1 eth0 10.231.<N>.20   sshd :22

Namespaces share the filesystem, so every host has its own tree, BASE/hosts/<name>/ (sshd config, host keys,
pid file, log; mysql/ for the database hosts; vault/ for the vault hosts; backups/ for the dumps), and one client
key pair, BASE/ssh/id_ed25519, is authorised for root on every host and given to the controller and to the
database hosts (they push backups to the vault with it). BASE/ssh/known_hosts holds every host key, so SSH runs
with StrictHostKeyChecking=yes. The namespaces have no default route: only the topology's own addresses exist.

`up` is idempotent (a running topology is left as it is, a partial one is completed); `down` removes processes,
namespaces, links and files even after a partial or failed `up`. Importable from pytest fixtures: `Topology`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SUBNET_PREFIX = "10.231"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ADMIN_USER = "db_admin"


def available() -> str | None:
    """None when this process can build namespaces, else the reason it cannot (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    if not shutil.which("ip"):
        return "iproute2 `ip` is not installed"
    if not os.path.exists(SSHD):
        return "sshd is not installed (openssh-server)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "`ip netns` is unavailable: %s" % probe.stderr.strip()
    return None


def _run(cmd, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (" ".join(map(str, cmd)), proc.returncode,
                                                      (proc.stderr or proc.stdout).strip()))
    return proc


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _netns_exists(name: str) -> bool:
    return name in _run(["ip", "netns", "list"]).stdout.split()


def _port_open(ip: str, port: int, timeout=0.2) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((ip, port)) == 0


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))


def _pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its (foreign) parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _kill_pids(pids, grace=5.0):
    """TERM the given pids, then KILL what is left after `grace` seconds."""
    pids = [p for p in pids if p and _pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Topology:
    """Database hosts (mariadbd + sshd) and vault hosts (sshd), each in its own network namespace."""

    def __init__(self, base, db_hosts=("db1", "db2"), vault_hosts=("vault1",), admin_password=None):
        self.base = Path(base).resolve()
        self.state_file = self.base / "topology.json"
        self.ssh_dir = self.base / "ssh"
        self.key = self.ssh_dir / "id_ed25519"
        self.known_hosts = self.ssh_dir / "known_hosts"
        state = self._load()
        if state:
            self.index = state["index"]
            self.db_hosts = tuple(state["db_hosts"])
            self.vault_hosts = tuple(state["vault_hosts"])
            self.admin_password = state["admin_password"]
        else:
            self.index = None
            self.db_hosts = tuple(db_hosts)
            self.vault_hosts = tuple(vault_hosts)
            self.admin_password = admin_password or "Topo-Admin-" + secrets.token_hex(8)
        for name in self.db_hosts + self.vault_hosts:
            if not name.isalnum() or len(name) > 8:
                raise ValueError("host name %r: use at most 8 letters/digits (it becomes an interface name)" % name)

    # -- state ----------------------------------------------------------------------------------------------
    def _load(self):
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _save(self):
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"index": self.index, "db_hosts": list(self.db_hosts),
                                   "vault_hosts": list(self.vault_hosts),
                                   "admin_password": self.admin_password}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_file)

    # -- names ----------------------------------------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return "dbr%dbr" % self.index

    @property
    def gateway(self) -> str:
        return "%s.%d.1" % (SUBNET_PREFIX, self.index)

    def hosts(self):
        return list(self.db_hosts) + list(self.vault_hosts)

    def netns(self, host: str) -> str:
        return "dbr%d-%s" % (self.index, host)

    def veth(self, host: str) -> str:
        return "dbr%d%s" % (self.index, host)

    def ip(self, host: str) -> str:
        if host in self.db_hosts:
            return "%s.%d.%d" % (SUBNET_PREFIX, self.index, 10 + self.db_hosts.index(host))
        return "%s.%d.%d" % (SUBNET_PREFIX, self.index, 100 + self.vault_hosts.index(host))

    def host_dir(self, host: str) -> Path:
        return self.base / "hosts" / host

    def backup_dir(self, host: str) -> Path:
        """The database host's local backup directory (release_backup_dir)."""
        return self.host_dir(host) / "backups"

    def vault_dir(self, host: str) -> Path:
        """The vault host's backup store."""
        return self.host_dir(host) / "vault"

    def sandbox(self, host: str):
        sys.path.insert(0, str(SCRIPTS))
        from sandbox_db import Sandbox

        return Sandbox(self.host_dir(host) / "mysql", port=3306, bind_address=self.ip(host))

    def ssh_options(self) -> list[str]:
        """Client options that reach any host of the topology (controller or database host alike)."""
        return ["-o", "IdentityFile=%s" % self.key, "-o", "IdentitiesOnly=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]

    # -- up -------------------------------------------------------------------------------------------------
    def _allocate_index(self):
        """Claim a free index by creating its bridge: `ip link add` fails if another topology holds it."""
        used = _run(["ip", "-4", "-o", "addr", "show"]).stdout
        for index in range(1, 255):
            if "%s.%d." % (SUBNET_PREFIX, index) in used:
                continue
            if subprocess.run(["ip", "link", "add", "dbr%dbr" % index, "type", "bridge"],
                              capture_output=True).returncode == 0:
                self.index = index
                self._save()
                return
        raise RuntimeError("no free 10.231.N.0/24 subnet for a topology (all 254 in use)")

    def up(self, timeout=60.0) -> dict:
        """Build (or complete) the topology; returns describe()."""
        started = time.monotonic()
        if self.index is None:
            self._allocate_index()
        try:
            self._network()
            self._keys()
            for host in self.hosts():
                self._sshd(host)
            procs = [self._mariadb_spawn(h) for h in self.db_hosts]
            for host, proc in zip(self.db_hosts, procs, strict=True):
                self._mariadb_finish(host, proc, timeout)
            for host in self.hosts():
                _wait(lambda h=host: _port_open(self.ip(h), 22), timeout, "sshd on %s" % host)
        except BaseException:
            self.down()
            raise
        info = self.describe()
        info["up_seconds"] = round(time.monotonic() - started, 2)
        return info

    def _network(self):
        if not _link_exists(self.bridge):
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        addrs = _run(["ip", "-4", "-o", "addr", "show", "dev", self.bridge]).stdout
        if self.gateway + "/" not in addrs:
            _run(["ip", "addr", "add", "%s/24" % self.gateway, "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        for host in self.hosts():
            ns, veth = self.netns(host), self.veth(host)
            if not _netns_exists(ns):
                _run(["ip", "netns", "add", ns])
            if not _link_exists(veth):
                _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
            inside = ["ip", "netns", "exec", ns]
            _run(inside + ["ip", "link", "set", "lo", "up"])
            if "%s/" % self.ip(host) not in _run(inside + ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout:
                _run(inside + ["ip", "addr", "add", "%s/24" % self.ip(host), "dev", "eth0"])
            _run(inside + ["ip", "link", "set", "eth0", "up"])

    def _keys(self):
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.ssh_dir, 0o700)
        if not self.key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbrelease-topology", "-f", str(self.key)])
        (self.ssh_dir / "authorized_keys").write_text((self.ssh_dir / "id_ed25519.pub").read_text())
        lines = []
        for host in self.hosts():
            hdir = self.host_dir(host)
            hdir.mkdir(parents=True, exist_ok=True)
            hostkey = hdir / "ssh_host_ed25519_key"
            if not hostkey.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", str(hostkey)])
            pub = Path(str(hostkey) + ".pub").read_text().split()
            lines.append("%s %s %s" % (self.ip(host), pub[0], pub[1]))
            (self.backup_dir(host) if host in self.db_hosts else self.vault_dir(host)).mkdir(exist_ok=True)
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _sshd_config(self, host: str) -> Path:
        hdir = self.host_dir(host)
        conf = hdir / "sshd_config"
        conf.write_text("\n".join([
            "# sshd of the test host %s (network namespace %s)" % (host, self.netns(host)),
            "ListenAddress %s" % self.ip(host),
            "Port 22",
            "HostKey %s" % (hdir / "ssh_host_ed25519_key"),
            "PidFile %s" % (hdir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (self.ssh_dir / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # BASE lives under /tmp (mode 1777), which StrictModes rejects as a parent of authorized_keys.
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LogLevel ERROR",
            # The namespaces share the controller's home, so bash would source the controller's ~/.bashrc for every
            # SSH command (Debian's bash does for a top-level shell run by sshd); on a machine whose .bashrc runs
            # `pyenv init` that is 0.15-0.2 CPU-s per module run, and its rehash lock can hang the others. A host
            # has its own dotfiles: with SHLVL already 1, the session's bash is not top-level and skips them.
            "SetEnv SHLVL=1",
            "",
        ]))
        return conf

    def sshd_pid(self, host: str):
        try:
            pid = int((self.host_dir(host) / "sshd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        # A stale pid file's pid may belong to another process by now (pids are reused): check it is our sshd
        # (whose title, rewritten by sshd, still shows its command line with our log file).
        log = str(self.host_dir(host) / "sshd.log")
        try:
            ours = log.encode() in Path("/proc/%d/cmdline" % pid).read_bytes()
        except OSError:
            ours = False
        return pid if ours and _pid_alive(pid) else None

    def _sshd(self, host: str):
        if self.sshd_pid(host):
            return
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        conf = self._sshd_config(host)
        _run(["ip", "netns", "exec", self.netns(host), SSHD, "-f", str(conf),
              "-E", str(self.host_dir(host) / "sshd.log")])

    def start_sshd(self, host: str, timeout=10.0):
        self._sshd(host)
        _wait(lambda: _port_open(self.ip(host), 22), timeout, "sshd on %s" % host)

    def stop_sshd(self, host: str):
        """Stop the host's sshd listener (open sessions are not touched)."""
        _kill_pids([self.sshd_pid(host)])

    def link(self, host: str, up: bool):
        """Take the host's network link down (unreachable, connections time out) or up again."""
        _run(["ip", "link", "set", self.veth(host), "up" if up else "down"])

    def _mariadb_spawn(self, host: str):
        box = self.sandbox(host)
        if box.running():
            return None
        code = ("import sys; sys.path.insert(0, %r); from sandbox_db import Sandbox; "
                "Sandbox(%r, port=3306, bind_address=%r).start()" % (str(SCRIPTS), str(box.base), self.ip(host)))
        return subprocess.Popen(["ip", "netns", "exec", self.netns(host), sys.executable, "-c", code],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def _mariadb_finish(self, host: str, proc, timeout: float):
        if proc is not None:
            out, err = proc.communicate(timeout=timeout + 30)
            if proc.returncode != 0:
                raise RuntimeError("mariadbd on %s did not start: %s" % (host, (err or out).strip()[-2000:]))
        self.sandbox(host).create_admin(ADMIN_USER, self.admin_password)

    # -- down -----------------------------------------------------------------------------------------------
    def down(self):
        """Remove every process, namespace, link and file of the topology; safe to call at any point."""
        if self.index is not None:
            pids = []
            for host in self.hosts():
                if _netns_exists(self.netns(host)):
                    pids += _run(["ip", "netns", "pids", self.netns(host)], check=False).stdout.split()
            _kill_pids([int(p) for p in pids if p.isdigit()])  # only processes inside our own namespaces
            for host in self.db_hosts:
                self.sandbox(host).stop(timeout=10, kill=True)
            for host in self.hosts():
                self.stop_sshd(host)
                _run(["ip", "netns", "del", self.netns(host)], check=False)
                if _link_exists(self.veth(host)):
                    _run(["ip", "link", "del", self.veth(host)], check=False)
            if _link_exists(self.bridge):
                _run(["ip", "link", "del", self.bridge], check=False)
        if self.base.exists():
            for name in ("hosts", "ssh"):
                shutil.rmtree(self.base / name, ignore_errors=True)
            for name in ("topology.json", "topology.tmp", "inventory.yml"):
                try:
                    (self.base / name).unlink()
                except FileNotFoundError:
                    pass
        self.index = None

    # -- the example application -----------------------------------------------------------------------------
    def load_example_app(self):
        """On every database host: the example app's pre-release schema and rows (arisgourmet) and a git
        repository of the app with a bare remote (for the tag phase), as `make demo` prepares them."""
        sys.path.insert(0, str(SCRIPTS))
        import demo

        with contextlib.redirect_stdout(sys.stderr):  # demo.py narrates; keep stdout for the JSON
            for host in self.db_hosts:
                demo.load_example(self.sandbox(host))
                demo.prepare_repo(self.host_dir(host))

    APP_PORT = 3000

    def app_url(self, host: str) -> str:
        return "http://%s:%d" % (self.ip(host), self.APP_PORT)

    def app_flag(self, host: str) -> Path:
        """The example server's maintenance flag on `host` (the maintenance role's file driver writes it)."""
        return self.host_dir(host) / "maintenance.flag"

    def start_example_servers(self, timeout=20.0):
        """On every database host: the example app's HTTP server (examples/app/backend/server.js, node) on its
        address, port 3000, in maintenance while its flag exists. It lives in the host's namespace, so down() stops
        it with the rest."""
        node = shutil.which("node") or shutil.which("nodejs")
        if not node:
            raise RuntimeError("node is not installed: the example server needs it (apt-get install nodejs)")
        for host in self.db_hosts:
            if _port_open(self.ip(host), self.APP_PORT):
                continue
            env = dict(os.environ, HOST=self.ip(host), PORT=str(self.APP_PORT),
                       MAINTENANCE_FILE=str(self.app_flag(host)), SCHEMA_VERSION="v1.2.0-canonical-schema")
            server = str(ROOT / "examples/app/backend/server.js")
            with open(self.host_dir(host) / "app.log", "ab") as log:
                subprocess.Popen(["ip", "netns", "exec", self.netns(host), node, server], env=env, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        for host in self.db_hosts:
            _wait(lambda h=host: _port_open(self.ip(h), self.APP_PORT), timeout, "the example server on %s" % host)

    def release_vars(self, host: str) -> dict:
        """Project-wide release_* inputs for a whole release.yml on a database host of the topology."""
        # No release_environment: a host var would outrank the scenario's group vars (molecule ssh releases in
        # production); the release's default is staging.
        return {
            "release_db_name": "arisgourmet",
            "release_ddl_files": [str(ROOT / "examples/app/infra/ddls/create_distributed_tables.sql")],
            "release_migration_command": "npm run migrate:run",
            "release_migration_chdir": str(ROOT / "examples/app/backend"),
            "release_git_repo": str(self.host_dir(host) / "app-repo"),
            "tag_git_remote": "origin",
            # Where the example server listens when started (start_example_servers, --app), and its flag.
            "example_app_url": self.app_url(host),
            "example_app_maintenance_flag": str(self.app_flag(host)),
        }

    # -- use ------------------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "base": str(self.base), "index": self.index, "bridge": self.bridge, "gateway": self.gateway,
            "ssh_key": str(self.key), "known_hosts": str(self.known_hosts),
            "hosts": {h: {"netns": self.netns(h), "ip": self.ip(h), "dir": str(self.host_dir(h)),
                          "role": "database" if h in self.db_hosts else "backup_vault",
                          "sshd_pid": self.sshd_pid(h)} for h in self.hosts()},
        }

    def ssh(self, host: str, command: str, check=True, timeout=60, **kw):
        """Run a shell command on `host` over SSH as root, from the controller."""
        proc = subprocess.run(["ssh", *self.ssh_options(), "root@%s" % self.ip(host), command],
                              capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise RuntimeError("ssh %s %r: rc=%d %s" % (host, command, proc.returncode, proc.stderr.strip()))
        return proc

    def host_vars(self, host: str) -> dict:
        hv = {
            "ansible_host": self.ip(host),
            "ansible_user": "root",
            "ansible_connection": "ssh",
            "ansible_python_interpreter": str(VENV_PYTHON),
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": " ".join(self.ssh_options()),
        }
        if host in self.db_hosts:
            hv.update({
                "release_db_host": self.ip(host),
                "release_db_port": 3306,
                "release_db_admin_user": ADMIN_USER,
                "release_db_admin_password": self.admin_password,
                "release_backup_dir": str(self.backup_dir(host)),
                "release_artifacts_dir": str(self.host_dir(host) / "artifacts"),
                # The database host pushes its backups to the vault with the topology's client key.
                "backup_vault_ssh_key": str(self.key),
                "backup_vault_ssh_options": ["-o", "UserKnownHostsFile=%s" % self.known_hosts,
                                             "-o", "GlobalKnownHostsFile=/dev/null",
                                             "-o", "StrictHostKeyChecking=yes"],
            })
        else:
            hv.update({"backup_vault_dir": str(self.vault_dir(host))})
        return hv

    def inventory(self, path=None, db_vars=None, vault_vars=None, all_vars=None, db_hosts=None,
                  release=False) -> Path:
        """Write a YAML inventory (mode 0600: it holds the admin password) with `databases` and `backup_vault`.

        With `release=True` the database hosts also get release_vars() (the example app, for release.yml)."""
        import yaml

        path = Path(path) if path else self.base / "inventory.yml"
        dbs = {h: dict(self.host_vars(h), **(self.release_vars(h) if release else {}))
               for h in (db_hosts or self.db_hosts)}
        inv = {"all": {"vars": dict(all_vars or {}), "children": {
            "databases": {"hosts": dbs, "vars": dict(db_vars or {})},
            "backup_vault": {"hosts": {h: self.host_vars(h) for h in self.vault_hosts},
                             "vars": dict(vault_vars or {})},
        }}}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(yaml.safe_dump(inv, sort_keys=False))
        return path


@contextlib.contextmanager
def running_topology(base=None, **kwargs):
    """A topology that is up inside the `with` block and removed afterwards, also when the block fails.

    For pytest fixtures: `with running_topology() as topo: yield topo`.
    """
    base = base or tempfile.mkdtemp(prefix="dbr-topo-", dir="/tmp")
    topo = Topology(base, **kwargs)
    try:
        topo.up()
        yield topo
    finally:
        topo.down()
        shutil.rmtree(base, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down", "status", "inventory"))
    parser.add_argument("base")
    parser.add_argument("output", nargs="?", help="inventory: where to write it (default BASE/inventory.yml)")
    parser.add_argument("--db", action="append", help="database host name (repeat; default db1 db2)")
    parser.add_argument("--vault", action="append", help="vault host name (repeat; default vault1)")
    parser.add_argument("--example", action="store_true",
                        help="up: load the example app into every database host; inventory: add release vars")
    parser.add_argument("--app", action="store_true",
                        help="up: also start the example app's HTTP server on every database host")
    args = parser.parse_args(argv)
    reason = available()
    if reason and args.action != "status":
        print("topology unavailable: %s" % reason, file=sys.stderr)
        return 2
    topo = Topology(args.base, db_hosts=args.db or ("db1", "db2"), vault_hosts=args.vault or ("vault1",))
    if args.action == "up":
        info = topo.up()
        if args.example:
            topo.load_example_app()
        if args.app:
            topo.start_example_servers()
        info["inventory"] = str(topo.inventory(args.output, release=args.example))
        print(json.dumps(info, indent=2))
    elif args.action == "down":
        topo.down()
        print("down")
    elif args.action == "inventory":
        if topo.index is None:
            print("no topology under %s" % args.base, file=sys.stderr)
            return 3
        print(topo.inventory(args.output, release=args.example))
    else:
        if topo.index is None:
            print(json.dumps({"base": str(topo.base), "up": False}))
            return 3
        print(json.dumps(topo.describe(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
