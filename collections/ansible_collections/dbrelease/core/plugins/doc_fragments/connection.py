"""The connection options of every dbrelease module that talks to the database, documented once."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_user:
    description:
      - Account to connect as. Plays pass it with the rest of the connection from C(release_db_login)
        (C(release_db_admin_user)) through C(module_defaults) over the action group C(dbrelease.core.db).
    type: str
    default: db_admin
  login_password:
    description:
      - Its password (C(release_db_admin_password), from vault or an AWX credential). Never on a command line; client
        tools read it from a 0600 option file passed first as C(--defaults-extra-file) and removed afterwards.
    type: str
    default: ""
  login_host:
    description: Server host (C(release_db_host)).
    type: str
    default: localhost
  login_port:
    description: Server port (C(release_db_port)).
    type: int
    default: 3306
  login_unix_socket:
    description: Server socket (C(release_db_socket)); wins over I(login_host) and I(login_port) when set.
    type: str
    default: ""
  connect_timeout:
    description: Seconds to wait for the server (C(release_db_connect_timeout)).
    type: int
    default: 10
"""
