"""A private PKI and a TLS-only MariaDB for tests: a CA, a server certificate for `localhost` only (so 127.0.0.1
does not match it), a client certificate, and an unrelated CA, all made with openssl; the server started with
--require-secure-transport=ON."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sandbox_db import Sandbox


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dbrelease test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=base)
    (base / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, subject, ext in (("server", "/CN=localhost", ["-extfile", "server.ext"]),
                               ("client", "/CN=release", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", name + ".key", "-out",
                name + ".csr", cwd=base)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", name + ".pem", *ext, cwd=base)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA",
            "-keyout", "other.key", "-out", "other.pem", cwd=base)
    for key in base.glob("*.key"):
        key.chmod(0o600)
    return base


def start_tls_server(base: str, pki: Path, extra_args=()) -> Sandbox:
    box = Sandbox(base)
    box.start(extra_args=["--ssl-ca=%s" % (pki / "ca.pem"), "--ssl-cert=%s" % (pki / "server.pem"),
                          "--ssl-key=%s" % (pki / "server.key"), "--require-secure-transport=ON", *extra_args])
    return box


def create_account(box, user, password, require="", privileges=("ALL PRIVILEGES ON *.* WITH GRANT OPTION",),
                   hosts=("localhost", "127.0.0.1")):
    """`user` at each host with `password` (bound, so any character works), `require` and the GRANTs listed."""
    conn = box.root()
    with conn.cursor() as cur:
        for host in hosts:
            cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            cur.execute("CREATE USER %%s@%%s IDENTIFIED BY %%s %s" % require, (user, host, password))
            for grant in privileges:
                grant, option = grant.split(" WITH GRANT OPTION")[0], " WITH GRANT OPTION" in grant
                cur.execute("GRANT %s TO %%s@%%s%s" % (grant.replace("%", "%%"), " WITH GRANT OPTION" if option
                                                        else ""), (user, host))
    conn.close()
