"""The network-namespace topology: real hosts (sshd, mariadbd) that the tests create and remove."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import topology  # noqa: E402
from topology import Topology, running_topology  # noqa: E402

pytestmark = pytest.mark.skipif(topology.available() is not None, reason=str(topology.available()))


@pytest.fixture(scope="module")
def topo():
    with running_topology() as topo:
        yield topo


def _leftovers(index: int, base: Path) -> dict:
    """Everything of topology `index` still present: namespaces, links, processes using its files."""
    netns = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
             if n.startswith("dbr%d-" % index)]
    names = [line.split(":")[1].strip().split("@")[0] for line in
             subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()]
    ours = {"dbr%dbr" % index} | {"dbr%d%s" % (index, h) for h in ("db1", "db2", "vault1")}
    procs = [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
             .splitlines() if str(base) + "/" in line]
    return {"netns": netns, "links": [n for n in names if n in ours], "procs": procs}


def test_every_host_answers_ssh_on_its_own_address_and_nothing_else(topo):
    for host in topo.hosts():
        out = topo.ssh(host, "hostname -I; ip -4 route").stdout.split("\n")
        assert out[0].split() == [topo.ip(host)]
        assert "default" not in "\n".join(out[1:]), "a namespace must have no route out of the topology"


def test_each_database_host_runs_its_own_server_bound_to_its_address(topo):
    seen = set()
    for host in topo.db_hosts:
        conn = pymysql.connect(host=topo.ip(host), port=3306, user=topology.ADMIN_USER,
                               password=topo.admin_password, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@bind_address, @@datadir, CURRENT_USER()")
                bind, datadir, user = cur.fetchone()
        finally:
            conn.close()
        assert bind == topo.ip(host)
        assert datadir.startswith(str(topo.host_dir(host)))
        assert user == "db_admin@%"
        seen.add(datadir)
    assert len(seen) == len(topo.db_hosts)


def test_database_host_logs_into_its_own_server_over_tcp_as_admin_at_percent(topo):
    host = topo.db_hosts[0]
    # The password goes through a 0600 option file, never on the command line.
    opt = topo.host_dir(host) / "client.cnf"
    opt.write_text("[client]\nuser=%s\npassword=%s\n" % (topology.ADMIN_USER, topo.admin_password))
    opt.chmod(0o600)
    try:
        out = topo.ssh(host, "mariadb --defaults-extra-file=%s -h %s -P 3306 -N -e 'SELECT CURRENT_USER()'"
                       % (opt, topo.ip(host))).stdout.strip()
    finally:
        opt.unlink()
    assert out == "db_admin@%"


def test_database_host_reaches_the_vault_over_ssh_with_the_topology_key(topo):
    db, vault = topo.db_hosts[0], topo.vault_hosts[0]
    opts = " ".join(topo.ssh_options())
    out = topo.ssh(db, "ssh %s root@%s hostname -I" % (opts, topo.ip(vault))).stdout
    assert out.split() == [topo.ip(vault)]


def test_unknown_host_key_is_refused(topo):
    """StrictHostKeyChecking=yes with the private known_hosts: a host whose key is not listed is refused."""
    empty = topo.base / "empty_known_hosts"
    empty.write_text("")
    opts = [o.replace(str(topo.known_hosts), str(empty)) for o in topo.ssh_options()]
    proc = subprocess.run(["ssh", *opts, "root@%s" % topo.ip(topo.vault_hosts[0]), "true"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_up_again_is_a_no_op_that_restarts_nothing(topo):
    pids = {h: topo.sshd_pid(h) for h in topo.hosts()}
    server_pids = {h: topo.sandbox(h).pid() for h in topo.db_hosts}
    Topology(topo.base).up()
    assert {h: topo.sshd_pid(h) for h in topo.hosts()} == pids
    assert {h: topo.sandbox(h).pid() for h in topo.db_hosts} == server_pids


def test_stopped_sshd_and_downed_link_make_a_host_unreachable_then_come_back(topo):
    vault = topo.vault_hosts[0]
    topo.stop_sshd(vault)
    proc = topo.ssh(vault, "true", check=False)
    assert proc.returncode == 255 and "refused" in proc.stderr
    topo.start_sshd(vault)
    topo.link(vault, up=False)
    try:
        proc = subprocess.run(["ssh", *topo.ssh_options(), "-o", "ConnectTimeout=1", "root@%s" % topo.ip(vault),
                               "true"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 255
    finally:
        topo.link(vault, up=True)
    assert topo.ssh(vault, "true").returncode == 0


def test_up_then_down_leaves_nothing_and_a_second_down_succeeds():
    base = Path(subprocess.check_output(["mktemp", "-d", "/tmp/dbr-topo-XXXX"], text=True).strip())
    try:
        started = time.monotonic()
        out = subprocess.run([sys.executable, str(ROOT / "tests" / "topology.py"), "up", str(base)],
                             capture_output=True, text=True, timeout=120)
        up_s = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert (base / "inventory.yml").stat().st_mode & 0o077 == 0, "the inventory holds a password: 0600"
        assert _leftovers(info["index"], base)["netns"]
        started = time.monotonic()
        down = subprocess.run([sys.executable, str(ROOT / "tests" / "topology.py"), "down", str(base)],
                              capture_output=True, text=True, timeout=120)
        down_s = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert _leftovers(info["index"], base) == {"netns": [], "links": [], "procs": []}
        assert not (base / "hosts").exists()
        # down again: nothing left to do, still succeeds
        again = subprocess.run([sys.executable, str(ROOT / "tests" / "topology.py"), "down", str(base)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0
        # Timings are printed, not asserted (speed belongs in `make bench`; a loaded CI machine is slower).
        print("topology up %.2fs, down %.2fs" % (up_s, down_s))
    finally:
        Topology(base).down()
        subprocess.run(["rm", "-rf", str(base)])


def test_down_removes_everything_after_a_failed_up(monkeypatch):
    base = Path(subprocess.check_output(["mktemp", "-d", "/tmp/dbr-topo-XXXX"], text=True).strip())
    topo = Topology(base)

    seen = {}

    def broken(self, host, proc, timeout):
        seen["index"] = self.index
        if proc is not None:
            proc.communicate(timeout=60)
        raise RuntimeError("injected failure while starting %s" % host)

    monkeypatch.setattr(Topology, "_mariadb_finish", broken)
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            topo.up()
        assert not (base / "topology.json").exists(), "a failed up tears itself down (state file removed)"
        assert _leftovers(seen["index"], base) == {"netns": [], "links": [], "procs": []}
    finally:
        Topology(base).down()
        subprocess.run(["rm", "-rf", str(base)])


def test_down_cleans_up_a_half_built_topology_left_by_a_crash():
    """A crash mid-up (process killed: no exception handler ran) still leaves a state file that down uses."""
    base = Path(subprocess.check_output(["mktemp", "-d", "/tmp/dbr-topo-XXXX"], text=True).strip())
    try:
        topo = Topology(base)
        topo._allocate_index()
        topo._network()
        topo._keys()
        topo._sshd(topo.vault_hosts[0])  # half-way: one sshd, no servers
        index = topo.index
        assert _leftovers(index, base)["netns"]
        Topology(base).down()
        assert _leftovers(index, base) == {"netns": [], "links": [], "procs": []}
    finally:
        Topology(base).down()
        subprocess.run(["rm", "-rf", str(base)])
