"""Grant parsing and comparison: MariaDB output, MySQL 8 output (from the MySQL 8.0 manual), secrets redacted."""

import pytest
from ansible.module_utils.dbrelease.grants import (
    GrantSpecError,
    compare,
    parse_priv_spec,
    parse_show_grants,
    redact,
)

MARIADB_ALL = [
    "GRANT ALL PRIVILEGES ON *.* TO `db_admin`@`localhost` IDENTIFIED BY PASSWORD "
    "'*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' WITH GRANT OPTION",
]
# MySQL 8.0 manual, SHOW GRANTS: ALL on *.* is shown as static privileges plus a line of dynamic ones.
MYSQL8_ALL = [
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, SHUTDOWN, PROCESS, FILE, REFERENCES, INDEX, "
    "ALTER, SHOW DATABASES, SUPER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, "
    "REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, "
    "CREATE TABLESPACE, CREATE ROLE, DROP ROLE ON *.* TO `db_admin`@`%` WITH GRANT OPTION",
    "GRANT APPLICATION_PASSWORD_ADMIN,AUDIT_ADMIN,BACKUP_ADMIN ON *.* TO `db_admin`@`%` WITH GRANT OPTION",
]


@pytest.mark.parametrize(
    "lines, expected",
    [
        (MARIADB_ALL, {"*.*": {"ALL", "GRANT"}}),
        (["GRANT USAGE ON *.* TO `app`@`%`", "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`"],
         {"shop.*": {"SELECT", "INSERT"}}),
        (["GRANT SELECT (id, email), UPDATE ON `shop`.`users` TO `app`@`%`"],
         {"shop.users": {"SELECT (ID, EMAIL)", "UPDATE"}}),
        (["GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `app`@`%`"], {"shop.p": {"EXECUTE"}}),
        (["GRANT `reader` TO `app`@`%`", "GRANT PROXY ON ''@'%' TO 'app'@'%'"], {}),
    ],
)
def test_show_grants_parse_into_objects_and_privileges(lines, expected):
    assert parse_show_grants(lines) == expected


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("*.*:ALL,GRANT", {"*.*": {"ALL", "GRANT"}}),
        ("*.*:ALL PRIVILEGES", {"*.*": {"ALL"}}),
        ("shop.*:SELECT,INSERT/*.*:PROCESS", {"shop.*": {"SELECT", "INSERT"}, "*.*": {"PROCESS"}}),
    ],
)
def test_priv_spec_is_community_mysql_syntax(spec, expected):
    assert parse_priv_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "ALL", "shop:SELECT", "*.*:"])
def test_bad_priv_spec_is_refused_with_the_reason(spec):
    with pytest.raises(GrantSpecError):
        parse_priv_spec(spec)


@pytest.mark.parametrize(
    "expected, lines, flavor, missing, extra",
    [
        ("*.*:ALL,GRANT", MARIADB_ALL, "mariadb", {}, {}),
        # On MySQL 8, ALL includes the dynamic privileges: none of them is extra.
        ("*.*:ALL,GRANT", MYSQL8_ALL, "mysql", {}, {}),
        ("*.*:SELECT,GRANT", MYSQL8_ALL[:1], "mysql", {}, {"*.*": ["ALL"]}),
        ("*.*:ALL,GRANT", ["GRANT ALL PRIVILEGES ON *.* TO `a`@`%`"], "mariadb", {"*.*": ["GRANT"]}, {}),
        ("*.*:SELECT", MARIADB_ALL, "mariadb", {}, {"*.*": ["ALL", "GRANT"]}),
        ("shop.*:SELECT,INSERT", ["GRANT SELECT ON `shop`.* TO `a`@`%`"], "mariadb", {"shop.*": ["INSERT"]}, {}),
        ("shop.*:SELECT", ["GRANT ALL PRIVILEGES ON `shop`.* TO `a`@`%`"], "mariadb", {}, {"shop.*": ["ALL"]}),
    ],
)
def test_compare_reports_missing_and_extra_per_object(expected, lines, flavor, missing, extra):
    result = compare(parse_priv_spec(expected), parse_show_grants(lines), flavor)
    assert result["missing"] == missing
    assert result["extra"] == extra


@pytest.mark.parametrize(
    "line",
    [
        MARIADB_ALL[0],
        "GRANT USAGE ON *.* TO 'u'@'%' IDENTIFIED WITH 'mysql_native_password' AS '*AB12' REQUIRE NONE",
        "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'",
    ],
)
def test_redact_removes_password_hashes_and_auth_strings(line):
    clean = redact(line)
    assert "*2470C0C06DEE" not in clean and "*AB12" not in clean and "ZIgUREUg5" not in clean
    assert clean.startswith("GRANT") and "<redacted>" in clean
