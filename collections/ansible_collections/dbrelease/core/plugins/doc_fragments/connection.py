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
      - Its password (C(release_db_admin_password), from vault or an AWX credential). Any character but NUL; sent to
        PyMySQL as UTF-8 bytes. Never on a command line; client tools read it from an option file passed first as
        C(--defaults-extra-file) - through a pipe (C(/dev/fd/N)), or, for tools that reread it, a 0600 file removed
        afterwards (see docs/security.md).
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
  ssl_ca:
    description:
      - CA certificate (PEM, on the database host) that signed the server's certificate (C(release_db_ssl_ca)).
        Any of the four TLS options turns TLS on, for PyMySQL, the client tools' option file and the migration
        command (C(DB_SSL_*)).
    type: str
    default: ""
    aliases: [ca_cert]
  ssl_cert:
    description: Client certificate (PEM), for accounts that C(REQUIRE X509) (C(release_db_ssl_cert)).
    type: str
    default: ""
    aliases: [client_cert]
  ssl_key:
    description: The client certificate's private key (PEM) (C(release_db_ssl_key)).
    type: str
    default: ""
    aliases: [client_key]
  ssl_verify:
    description:
      - Verify the server's certificate chain and, over TCP, that it names I(login_host) (C(release_db_ssl_verify)).
        On by default whenever I(ssl_ca) is given; C(false) alone gives an encrypted, unverified connection.
    type: bool
"""
