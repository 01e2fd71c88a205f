"""Online ALTER: which tool, which statements, and the tools' command lines (never a password on them)."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import online_alter as oa

OPTS = {"lock_wait_timeout": 3, "lock_budget_seconds": 60, "chunk_time": 0.5, "max_load": "Threads_running=25",
        "critical_load": "Threads_running=50", "progress_seconds": 5, "max_lag": 10.0}


def which_of(*installed):
    return lambda name: "/usr/bin/" + name if name in installed else None


ROW = {"enabled": True, "format": "ROW"}


@pytest.mark.parametrize("preference, flavor, binlog, tcp, installed, tool, reason", [
    ("auto", "mariadb", ROW, True, (oa.PT_OSC, oa.GH_OST), oa.PT_OSC, ""),
    ("auto", "mysql", ROW, True, (oa.PT_OSC, oa.GH_OST), oa.GH_OST, ""),
    ("auto", "mysql", {"enabled": True, "format": "MIXED"}, True, (oa.PT_OSC, oa.GH_OST), oa.PT_OSC, ""),
    ("auto", "mysql", ROW, False, (oa.PT_OSC, oa.GH_OST), oa.PT_OSC, ""),
    ("auto", "mysql", ROW, True, (oa.PT_OSC,), oa.PT_OSC, ""),
    ("auto", "mariadb", ROW, True, (), None, "pt-online-schema-change is not installed"),
    (oa.GH_OST, "mariadb", ROW, True, (oa.GH_OST,), None, "gh-ost needs MySQL with row-based binary logs"),
    (oa.GH_OST, "mysql", ROW, True, (oa.PT_OSC,), None, "gh-ost is not installed"),
    (oa.PT_OSC, "mysql", ROW, True, (oa.PT_OSC, oa.GH_OST), oa.PT_OSC, ""),
    ("none", "mysql", ROW, True, (oa.PT_OSC,), None, "schema_online_tool is none"),
])
def test_tool_choice(preference, flavor, binlog, tcp, installed, tool, reason):
    chosen, path, why = oa.choose_tool(preference, flavor, binlog, tcp=tcp, which=which_of(*installed))
    assert chosen == tool and (path is None) is (tool is None)
    assert why.startswith(reason)


@pytest.mark.parametrize("sql, table, clauses", [
    ("ALTER TABLE outbox MODIFY v BIGINT NOT NULL", "outbox", "MODIFY v BIGINT NOT NULL"),
    ("alter table `app`.`order items` add column x int, add key k (x)", "order items",
     "add column x int, add key k (x)"),
    ("ALTER ONLINE IGNORE TABLE app.t\n  ENGINE=InnoDB", "t", "ENGINE=InnoDB"),
])
def test_alter_parts(sql, table, clauses):
    assert oa.alter_parts(sql) == (table, clauses)


@pytest.mark.parametrize("sql, why", [
    ("ALTER TABLE t MODIFY v BIGINT", ""),
    ("ALTER TABLE t ADD UNIQUE KEY uq (v)", ""),
    ("ALTER TABLE t RENAME TO t2", "it renames the table"),
    ("ALTER TABLE t MODIFY v BIGINT, ALGORITHM=COPY", "the statement names its own ALGORITHM/LOCK"),
    ("ALTER TABLE t REORGANIZE PARTITION p0 INTO (PARTITION p1 VALUES LESS THAN (10))", "it changes partitions"),
    ("CREATE INDEX i ON t (v)", "not an ALTER TABLE statement"),
])
def test_which_alters_can_go_online(sql, why):
    assert oa.ineligible(sql) == why


@pytest.mark.parametrize("sql, unique", [
    ("ALTER TABLE t ADD UNIQUE KEY uq (v)", True),
    ("ALTER TABLE t ADD CONSTRAINT uq UNIQUE (v)", True),
    ("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, v)", True),
    ("ALTER TABLE t ADD KEY k (v), MODIFY v BIGINT", False),
])
def test_new_unique_keys_are_noticed(sql, unique):
    assert oa.adds_unique_key(sql) is unique


def test_trigger_prefix_follows_pt_osc():
    assert oa.trigger_prefix("app", "order items") == "pt_osc_app_order_items"
    assert len(oa.trigger_prefix("a" * 64, "b" * 64)) == 60


def test_pt_osc_command_takes_the_account_from_the_option_file_only():
    argv = oa.pt_osc_command("/usr/bin/pt-online-schema-change", "/tmp/dbrelease-x/client.cnf", "app", "outbox",
                             "MODIFY v BIGINT NOT NULL", OPTS)
    assert argv[-1] == "F=/tmp/dbrelease-x/client.cnf,D=app,t=outbox"
    assert not any(a.startswith(("--password", "-p", "--user", "p=", "u=")) for a in argv)
    assert "--noversion-check" in argv and "--execute" in argv
    assert argv[argv.index("--set-vars") + 1].startswith("lock_wait_timeout=3,")
    assert argv[argv.index("--alter") + 1] == "MODIFY v BIGINT NOT NULL"
    tries = argv[argv.index("--tries") + 1]
    assert "create_triggers:15:1" in tries and "swap_tables:15:1" in tries  # 60 s budget / (3 s + 1 s)
    assert argv[argv.index("--progress") + 1] == "time,5"
    assert argv[argv.index("--recursion-method") + 1] == "none"
    assert argv[argv.index("--max-load") + 1] == "Threads_running=25"
    assert "--sleep" not in argv and "--preserve-triggers" not in argv and "--nocheck-unique-key-change" not in argv


def test_pt_osc_command_options_follow_the_table():
    argv = oa.pt_osc_command("pt", "/f", "app", "orders", "ADD UNIQUE KEY uq (v)", OPTS,
                             preserve_triggers=True, child_tables=True, adds_unique=True)
    assert "--preserve-triggers" in argv and "--nocheck-unique-key-change" in argv
    assert argv[argv.index("--alter-foreign-keys-method") + 1] == "auto"


@pytest.mark.parametrize("max_load, critical, watched", [
    ("Threads_running=25", "Threads_running=50", "Threads_running=25"),
    ("Threads_running=25", "Threads_connected=500", "Threads_running=25,Threads_connected=500"),
    ("", "Threads_running=50,Innodb_row_lock_current_waits=100",
     "Threads_running=50,Innodb_row_lock_current_waits=100"),
])
def test_every_critical_variable_is_watched(max_load, critical, watched):
    assert oa.max_load_with_critical(max_load, critical) == watched


def test_gh_ost_command_and_conf():
    argv = oa.gh_ost_command("/usr/bin/gh-ost", "/tmp/d/gh-ost.cnf", "db1", 3306, "app", "outbox", "MODIFY v BIGINT",
                             OPTS, "/tmp/d/pause", "/tmp/d/panic", replicas=[("db2", 3306), ("db3", 3307)])
    assert "--conf=/tmp/d/gh-ost.cnf" in argv and "--alter=MODIFY v BIGINT" in argv
    assert "--throttle-flag-file=/tmp/d/pause" in argv and "--panic-flag-file=/tmp/d/panic" in argv
    assert "--cut-over-lock-timeout-seconds=3" in argv and "--max-lag-millis=10000" in argv
    assert "--throttle-control-replicas=db2:3306,db3:3307" in argv
    assert not any("password" in a for a in argv)
    conf = oa.gh_ost_conf_text({"login_user": "db_admin", "login_password": 'p"w\\x'})
    assert conf == '[client]\nuser = "db_admin"\npassword = "p\\"w\\\\x"\n'


def test_definitions_compare_without_auto_increment():
    assert oa.same_definition("CREATE TABLE t (...) ENGINE=InnoDB AUTO_INCREMENT=17",
                              "CREATE TABLE t (...) ENGINE=InnoDB")
    assert not oa.same_definition("CREATE TABLE t (a int)", "CREATE TABLE t (a bigint)")
