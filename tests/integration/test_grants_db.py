"""Grant verification against a real server: db_admin at localhost and %, missing and extra reported."""

import uuid

from conftest import ADMIN_PASSWORD
from helpers import run_module


def test_db_admin_at_both_hosts_with_all_privileges_passes(mariadb, admin_params):
    result = run_module("db_grants", dict(admin_params, user="db_admin", privileges={"default": "*.*:ALL,GRANT"}))
    assert result.get("failed") is not True, result
    assert result["ok"] is True and result["changed"] is False
    assert set(result["accounts"]) == {"db_admin@localhost", "db_admin@%"}


def test_missing_host_and_missing_privilege_are_reported_per_account(mariadb, admin_params):
    user = "app_" + uuid.uuid4().hex[:6]
    mariadb.sql(["CREATE USER '%s'@'localhost' IDENTIFIED BY 'x-Pw-1'" % user,
                 "GRANT SELECT ON *.* TO '%s'@'localhost'" % user])
    try:
        result = run_module("db_grants", dict(admin_params, user=user, privileges={"default": "*.*:SELECT,INSERT"}))
    finally:
        mariadb.sql("DROP USER '%s'@'localhost'" % user)
    assert result["failed"] is True
    assert "%s@localhost lacks INSERT on *.*" % user in result["msg"]
    assert "%s@%% does not exist" % user in result["msg"]
    assert result["accounts"]["%s@localhost" % user]["missing"] == {"*.*": ["INSERT"]}


def test_extra_privileges_are_reported_and_fail_only_when_asked(mariadb, admin_params):
    args = dict(admin_params, user="db_admin", privileges={"default": "*.*:SELECT"})
    lenient = run_module("db_grants", args)
    assert lenient["ok"] is True
    assert lenient["accounts"]["db_admin@%"]["extra"] == {"*.*": ["ALL", "GRANT"]}
    strict = run_module("db_grants", dict(args, fail_on_extra=True))
    assert strict["failed"] is True and "has unexpected ALL,GRANT on *.*" in strict["msg"]


def test_grants_output_never_contains_the_password_hash(mariadb, admin_params):
    result = run_module("db_grants", dict(admin_params, user="db_admin", privileges={"default": "*.*:ALL,GRANT"}))
    hashed = mariadb.sql("SELECT authentication_string FROM mysql.user WHERE user='db_admin' LIMIT 1")[0][0]
    text = str(result)
    assert hashed and hashed not in text
    assert ADMIN_PASSWORD not in text
