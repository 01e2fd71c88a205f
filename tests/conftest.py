"""Shared pytest fixtures: real, throwaway MariaDB servers (never a mock of the database)."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "filter_plugins"))
sys.path.insert(0, str(ROOT / "library"))
sys.path.insert(0, str(ROOT / "tests"))

# Make `ansible.module_utils.dbrelease` importable in tests exactly as modules import it on a target host.
import ansible.module_utils  # noqa: E402

if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))

from sandbox_db import Sandbox  # noqa: E402

ADMIN_USER = "db_admin"
ADMIN_PASSWORD = "S3cret-Admin-Pw-" + uuid.uuid4().hex[:8]


def short_tmpdir(prefix="dbr-") -> str:
    """A short path under /tmp: unix socket paths are limited to 108 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


@pytest.fixture(scope="session")
def mariadb():
    """One real MariaDB server for the whole test session, with db_admin at localhost and %."""
    box = Sandbox(short_tmpdir())
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


@pytest.fixture
def private_mariadb():
    """A server of the test's own, for tests that kill, fill or otherwise break it."""
    box = Sandbox(short_tmpdir())
    box.start()
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


@pytest.fixture
def dbname(mariadb):
    """A fresh, empty database on the session server, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:10]
    mariadb.sql("CREATE DATABASE `%s`" % name)
    yield name
    mariadb.sql("DROP DATABASE IF EXISTS `%s`" % name)


def login_params(box, via="socket"):
    """Module-style connection parameters for `box` as db_admin."""
    params = dict(login_user=ADMIN_USER, login_password=ADMIN_PASSWORD, connect_timeout=5,
                  login_host="127.0.0.1", login_port=box.port, login_unix_socket="")
    if via == "socket":
        params["login_unix_socket"] = box.socket
    return params


@pytest.fixture
def admin_params(mariadb):
    return login_params(mariadb)


@pytest.fixture(scope="session")
def root_dir():
    return ROOT


os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
