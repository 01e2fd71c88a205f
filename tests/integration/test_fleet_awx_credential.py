"""The AWX credential type's option file, rendered as AWX renders it, logs in to a real MariaDB with the client."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import jinja2.sandbox
import pytest
import yaml
from conftest import ROOT, short_tmpdir


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
CTYPE = yaml.load((ROOT / "awx/credential_types.yml").read_text(), Loader=_Loader)["dbrelease_awx_credential_types"][0]
NASTY = 'p"a\\ss#w;o\'rd =x ' + uuid.uuid4().hex[:6]


def render(template: str, **inputs) -> str:
    """As AWX does: an immutable sandboxed Jinja environment over the credential's inputs."""
    return jinja2.sandbox.ImmutableSandboxedEnvironment().from_string(template).render(**inputs)


@pytest.fixture
def nasty_user(mariadb):
    user = "awx_" + uuid.uuid4().hex[:8]
    mariadb.create_admin(user, NASTY, hosts=("localhost", "127.0.0.1"), privileges="USAGE ON *.*",
                         grant_option=False)
    yield user
    mariadb.sql(["DROP USER IF EXISTS '%s'@'localhost'" % user, "DROP USER IF EXISTS '%s'@'127.0.0.1'" % user])


def client_login(option_file: Path, *args) -> subprocess.CompletedProcess:
    client = shutil.which("mariadb") or shutil.which("mysql")
    return subprocess.run([client, "--defaults-extra-file=%s" % option_file, *args, "-N", "-e",
                           "SELECT CURRENT_USER()"], capture_output=True, text=True, timeout=30)


def write_private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def test_injected_option_file_with_host_and_port_logs_in_with_a_password_full_of_quotes(mariadb, nasty_user):
    tmp = Path(short_tmpdir())
    try:
        text = render(CTYPE["injectors"]["file"]["template.client_cnf"], user=nasty_user, password=NASTY,
                      host="127.0.0.1", port=str(mariadb.port))
        proc = client_login(write_private(tmp / "client.cnf", text), "--protocol=TCP")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "%s@127.0.0.1" % nasty_user
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_injected_option_file_without_host_and_port_leaves_them_to_the_caller(mariadb, nasty_user):
    tmp = Path(short_tmpdir())
    try:
        text = render(CTYPE["injectors"]["file"]["template.client_cnf"], user=nasty_user, password=NASTY)
        assert "host=" not in text and "port=" not in text
        proc = client_login(write_private(tmp / "client.cnf", text), "--socket=%s" % mariadb.socket)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "%s@localhost" % nasty_user
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_wrong_password_in_the_option_file_is_refused(mariadb, nasty_user):
    """The login above proves the file, not a server that accepts anything."""
    tmp = Path(short_tmpdir())
    try:
        text = render(CTYPE["injectors"]["file"]["template.client_cnf"], user=nasty_user, password=NASTY + "x")
        proc = client_login(write_private(tmp / "client.cnf", text), "--socket=%s" % mariadb.socket)
        assert proc.returncode != 0
        assert "Access denied" in proc.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_extra_vars_carry_the_file_path_and_user_but_never_the_password():
    rendered = {name: render(template, user="db_admin", password=NASTY, tower={"filename": {"client_cnf": "/x/f"}})
                for name, template in CTYPE["injectors"]["extra_vars"].items()}
    assert rendered == {"release_db_admin_option_file": "/x/f", "release_db_admin_user": "db_admin"}
    assert not any(NASTY in value for value in rendered.values())


def test_preflight_logs_in_with_the_option_file_when_the_inventory_password_cannot_be_evaluated(mariadb, dbname):
    """As in AWX: the inventory points at a vault variable the job cannot decrypt; the credential's file wins."""
    from conftest import ADMIN_PASSWORD, ADMIN_USER
    from helpers import ROOT as REPO
    from helpers import local_host_vars, run_playbook, write_inventory

    tmp = Path(short_tmpdir())
    try:
        text = render(CTYPE["injectors"]["file"]["template.client_cnf"], user=ADMIN_USER, password=ADMIN_PASSWORD)
        option_file = write_private(tmp / "client_cnf", text)
        hv = local_host_vars(mariadb, ADMIN_USER, "{{ vault_release_db_admin_password }}", release_db_name=dbname,
                             release_artifacts_dir=str(tmp / "artifacts"))
        inventory = write_inventory(tmp / "inv.yml", {"db1": hv})
        extra = {"release_version": "v9.9.9-awx", "release_db_admin_option_file": str(option_file),
                 "release_db_admin_user": ADMIN_USER}
        proc = run_playbook(REPO / "playbooks/preflight.yml", inventory, extra)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert ADMIN_PASSWORD not in proc.stdout + proc.stderr
        record = (tmp / "artifacts/v9.9.9-awx/release.json").read_text()
        assert '"current_user"' in record and ADMIN_PASSWORD not in record

        option_file.write_text("[client]\nuser=%s\n" % ADMIN_USER)
        proc = run_playbook(REPO / "playbooks/preflight.yml", inventory, extra)
        assert proc.returncode != 0
        assert "release_db_admin_option_file %s: no password in its [client] group" % option_file in proc.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
