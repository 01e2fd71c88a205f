"""Least privilege: what each phase needs, and which of it an account's grants lack."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import privileges as priv
from ansible.module_utils.dbrelease.grants import parse_show_grants

ALL_CONDITIONS = {"log_bin": True, "restore_test": True, "skip_binlog": True, "other_definers": True,
                  "stored_code_binlog": True, "binlog_untrusted": True}
NAMES = priv.scope_names("shop", "dbrelease")
RELEASE = ["preflight", "lock", "maintenance", "backup", "grants", "schema", "migrate", "verify", "tag"]


@pytest.mark.parametrize("pattern, name, expected", [
    ("shop", "shop", True), ("shop", "shops", False), ("sh_p", "shop", True), ("sh\\_p", "sh_p", True),
    ("sh\\_p", "shop", False), ("shop\\_\\_dbrelease\\_plan\\_%", "shop__dbrelease_plan_0123abcd", True),
    ("shop\\_\\_dbrelease\\_plan\\_%", "shopx__dbrelease_plan_0123abcd", False), ("%", "anything", True),
    ("a.b", "axb", False),
])
def test_grant_patterns_match_database_names_as_the_server_does(pattern, name, expected):
    assert priv.like(pattern, name) is expected


def test_conditional_privileges_count_only_when_they_apply():
    plain = {(r["scope"], r["privilege"]) for r in priv.required(["backup"], {})}
    assert ("global", "RELOAD") not in plain and ("global", "SET USER") not in plain
    full = {(r["scope"], r["privilege"]) for r in priv.required(["backup"], ALL_CONDITIONS)}
    assert {("global", "RELOAD"), ("global", "BINLOG MONITOR"), ("global", "BINLOG ADMIN"),
            ("global", "SET USER")} <= full


def test_each_requirement_is_listed_once_with_the_first_phase_that_needs_it():
    reqs = priv.required(["backup", "grants", "schema"], {})
    keys = [(r["scope"], r["privilege"]) for r in reqs]
    assert len(keys) == len(set(keys))
    assert next(r for r in reqs if r["scope"] == "mysql")["phase"] == "backup"


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown phase 'deploy'"):
        priv.required(["deploy"], {})


@pytest.mark.parametrize("lines, flavor, version, lacking", [
    (["GRANT ALL PRIVILEGES ON *.* TO `a`@`%` WITH GRANT OPTION"], "mariadb", (10, 11, 6), set()),
    (["GRANT ALL PRIVILEGES ON *.* TO `a`@`%`"], "mariadb", (10, 11, 6), {("plan", "GRANT")}),
    (["GRANT USAGE ON *.* TO `a`@`%`", "GRANT ALL PRIVILEGES ON `shop`.* TO `a`@`%`"], "mariadb", (10, 11, 6),
     {("plan", "CREATE"), ("lock", "INSERT"), ("mysql", "SELECT"), ("global", "RELOAD")}),
    (["GRANT SUPER, RELOAD, CREATE USER ON *.* TO `a`@`%`", "GRANT ALL ON `shop`.* TO `a`@`%`",
      "GRANT ALL ON `shop\\_\\_dbrelease\\_%`.* TO `a`@`%` WITH GRANT OPTION", "GRANT ALL ON `dbrelease`.* TO `a`@`%`",
      "GRANT SELECT ON `mysql`.* TO `a`@`%`"], "mariadb", (10, 11, 6), set()),
    (["GRANT SUPER, RELOAD, CREATE USER ON *.* TO `a`@`%`", "GRANT ALL ON `shop`.* TO `a`@`%`",
      "GRANT ALL ON `shop\\_\\_dbrelease\\_%`.* TO `a`@`%` WITH GRANT OPTION", "GRANT ALL ON `dbrelease`.* TO `a`@`%`",
      "GRANT SELECT ON `mysql`.* TO `a`@`%`"], "mariadb", (11, 8, 3),
     {("global", "BINLOG MONITOR"), ("global", "BINLOG ADMIN"), ("global", "SET USER")}),
    (["GRANT RELOAD, REPLICATION CLIENT, CREATE USER ON *.* TO `a`@`%`",
      "GRANT SYSTEM_VARIABLES_ADMIN,SET_USER_ID ON *.* TO `a`@`%`", "GRANT SUPER ON *.* TO `a`@`%`",
      "GRANT ALL ON `shop`.* TO `a`@`%`",
      "GRANT ALL ON `shop\\_\\_dbrelease\\_%`.* TO `a`@`%` WITH GRANT OPTION", "GRANT ALL ON `dbrelease`.* TO `a`@`%`",
      "GRANT SELECT ON `mysql`.* TO `a`@`%`"], "mysql", (8, 0, 36), set()),
])
def test_missing_names_exactly_what_the_grants_do_not_cover(lines, flavor, version, lacking):
    reqs = priv.required(RELEASE, ALL_CONDITIONS)
    found = {(m["scope"], m["privilege"]) for m in priv.missing(reqs, parse_show_grants(lines), NAMES, flavor,
                                                                   version) if not m["optional"]}
    assert lacking <= found
    if not lacking:
        assert found == set()


@pytest.mark.parametrize("conditions, version", [
    (ALL_CONDITIONS, (10, 11, 6)), (ALL_CONDITIONS, (11, 8, 3)), (dict(ALL_CONDITIONS, stored_code_binlog=False),
                                                                 (10, 11, 6)),
])
def test_the_generated_grants_give_exactly_what_is_needed_and_no_privilege_in_them_is_spare(conditions, version):
    phases = RELEASE + ["rollback"]
    statements = priv.grant_statements("shop", "dbrelease", phases, conditions, account="`r`@`%`", version=version)
    reqs = [r for r in priv.required(phases, conditions) if not r["optional"]]
    assert priv.missing(reqs, parse_show_grants(statements), NAMES, "mariadb", version) == []
    assert "GRANT SELECT ON `mysql`.* TO `r`@`%`" in statements
    assert any("`shop\\_\\_dbrelease\\_plan\\_%`" in s for s in statements)
    for index, statement in enumerate(statements):
        privs, _, rest = statement[len("GRANT "):].partition(" ON ")
        for dropped in privs.split(", "):
            kept = [p for p in privs.split(", ") if p != dropped]
            fewer = statements[:index] + (["GRANT %s ON %s" % (", ".join(kept), rest)] if kept else []) + \
                statements[index + 1:]
            assert priv.missing(reqs, parse_show_grants(fewer), NAMES, "mariadb", version), (dropped, rest)
        if rest.endswith(" WITH GRANT OPTION"):  # the grant option is needed too
            fewer = statements[:index] + ["GRANT %s ON %s" % (privs, rest[:-len(" WITH GRANT OPTION")])] + \
                statements[index + 1:]
            assert priv.missing(reqs, parse_show_grants(fewer), NAMES, "mariadb", version), ("GRANT", rest)


def test_the_summary_groups_by_phase_and_says_why():
    lacking = priv.split_missing(priv.missing(priv.required(["lock", "schema"], {}), {}, NAMES))[0]
    text = priv.summary(lacking)
    assert text.startswith("lock needs CREATE, SELECT, INSERT, UPDATE, DELETE on dbrelease.* (the lock table")
    assert "schema needs" in text and "shop__dbrelease_plan_0123abcd.*" in text


def test_the_table_in_docs_security_is_the_list_the_check_uses():
    from conftest import ROOT

    page = (ROOT / "docs/security.md").read_text()
    start = page.index("<!-- privileges table: generated by privileges.markdown_table() -->\n")
    end = page.index("<!-- end of privileges table -->")
    assert page[start:end].split("\n", 1)[1] == priv.markdown_table()


def test_every_phase_of_a_release_and_the_rollback_has_its_privileges_listed():
    import yaml
    from conftest import ROOT

    phases = [p["name"] for p in yaml.safe_load((ROOT / "vars/release.yml").read_text())["release_phases"]]
    assert sorted(priv.PHASES) == sorted(phases + ["rollback", "rollback_pitr", "rollback_schema"])


def test_the_priv_spec_of_the_least_privileges_reads_back_as_the_grants_do():
    from ansible.module_utils.dbrelease.grants import compare, parse_priv_spec

    phases = RELEASE + ["rollback"]
    spec = priv.priv_spec("shop", "dbrelease", phases, ALL_CONDITIONS)
    grants = parse_show_grants(priv.grant_statements("shop", "dbrelease", phases, ALL_CONDITIONS,
                                                     account="`r`@`%`"))
    assert compare(parse_priv_spec(spec), grants) == {"missing": {}, "extra": {}}


def test_optional_privileges_are_reported_apart_and_never_generated():
    conditions = dict(ALL_CONDITIONS, stored_code_binlog=False)  # else SUPER is required, not optional
    reqs = priv.required(["preflight", "schema"], conditions)
    needed, optional = priv.split_missing(priv.missing(reqs, {}, NAMES))
    assert {m["privilege"] for m in optional} == {"SLAVE MONITOR", "REPLICATION MASTER ADMIN", "PROCESS",
                                                  "CONNECTION ADMIN", "SUPER"}
    assert "PROCESS" not in {m["privilege"] for m in needed}
    statements = priv.grant_statements("shop", "dbrelease", ["preflight", "schema"], conditions)
    assert not any("PROCESS" in s or "SLAVE MONITOR" in s for s in statements)
