"""DDL execution: the tables a statement locks, the ALGORITHM clause it runs with, and which ALTERs go online."""

from __future__ import annotations

import pytest
from ansible.module_utils.dbrelease import ddl_exec as de
from ansible.module_utils.dbrelease import online_alter as oa


@pytest.mark.parametrize("sql, tables", [
    ("ALTER TABLE outbox ADD COLUMN w INT", ["outbox"]),
    ("ALTER TABLE `app`.`order items` ADD KEY k (x)", ["order items"]),
    ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id)", ["orders", "users"]),
    ("ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES `app`.`users` (id)", ["orders", "users"]),
    ("CREATE TABLE IF NOT EXISTS refresh_tokens (id INT, user_id INT, FOREIGN KEY (user_id) REFERENCES "
     "`users` (id))", ["refresh_tokens", "users"]),
    ("CREATE INDEX idx ON products (title)", ["products"]),
    ("DROP INDEX idx ON products", ["products"]),
    ("CREATE TRIGGER tr BEFORE INSERT ON orders FOR EACH ROW SET NEW.status = 'new'", ["orders"]),
    ("RENAME TABLE a TO b, c TO d", ["a", "b", "c", "d"]),
    ("DROP TABLE IF EXISTS a, b", ["a", "b"]),
    ("RENAME TABLE `app`.`a` TO `app`.b, app.c TO d", ["a", "b", "c", "d"]),
    ("ALTER TABLE t RENAME TO t_old", ["t", "t_old"]),
    ("TRUNCATE TABLE audit", ["audit"]),
    ("CREATE OR REPLACE VIEW v AS SELECT * FROM t", ["v"]),
    ("CREATE PROCEDURE p() SELECT 1", []),
])
def test_touched_tables(sql, tables):
    assert de.touched_tables(sql) == tables


def alter(algorithm, lock, source="tried on the temporary copy"):
    return {"algorithm": algorithm, "lock": lock, "source": source}


@pytest.mark.parametrize("plan, sql, clause", [
    (alter("instant", "none"), "ALTER TABLE t ADD COLUMN c INT", ", ALGORITHM=INSTANT"),
    (alter("inplace", "none"), "ALTER TABLE t ADD KEY k (c)", ", ALGORITHM=INPLACE, LOCK=NONE"),
    (alter("inplace", "shared"), "ALTER TABLE t ADD FULLTEXT KEY f (c)", ", ALGORITHM=INPLACE"),
    (alter("copy", "shared"), "ALTER TABLE t MODIFY c BIGINT", ", ALGORITHM=COPY"),
    (alter("inplace", "none"), "CREATE INDEX i ON t (c)", " ALGORITHM=INPLACE LOCK=NONE"),
    # As written: no plan entry, its own ALGORITHM, judged by rules, DROP INDEX (no trial), partitions.
    (None, "ALTER TABLE t ADD COLUMN c INT", ""),
    (alter("instant", "none"), "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INPLACE", ""),
    (alter("instant", "none", "rules for mariadb 10.11.6 (explicit ALGORITHM in the statement)"),
     "ALTER TABLE t ADD COLUMN c INT", ""),
    (alter("copy", "shared"), "DROP INDEX i ON t", ""),
    (alter("copy", "shared"), "ALTER TABLE t COALESCE PARTITION 2", ""),
])
def test_the_statement_runs_with_the_algorithm_the_plan_chose(plan, sql, clause):
    assert de.algorithm_clause(plan, sql) == clause


STATEMENTS = [{"file": "r.sql", "index": 1, "line": 1, "sql": "ALTER TABLE big MODIFY v BIGINT NOT NULL"},
              {"file": "r.sql", "index": 2, "line": 2, "sql": "ALTER TABLE big RENAME TO big2"}]
MARIADB = {"flavor": "mariadb", "version_tuple": [10, 11, 6]}


def planned(index, algorithm="copy", size=10 << 30):
    st = STATEMENTS[index - 1]
    return {"statement": {"file": st["file"], "index": index, "line": index, "sql": st["sql"]},
            "algorithm": algorithm, "lock": "shared", "table_bytes": size}


@pytest.mark.parametrize("entry, opts, installed, tool, reason", [
    (planned(1), {"online_min_bytes": 1 << 30}, (oa.PT_OSC,), oa.PT_OSC, None),
    (planned(1, size=1 << 20), {"online_min_bytes": 1 << 30}, (oa.PT_OSC,), None, None),
    (planned(1), {"online_min_bytes": 0}, (oa.PT_OSC,), None, None),
    (planned(1, algorithm="inplace"), {"online_min_bytes": 1}, (oa.PT_OSC,), None, None),
    (planned(1), {"online_min_bytes": 1, "online_tool": "none"}, (oa.PT_OSC,), None, "schema_online_tool is none"),
    (planned(1), {"online_min_bytes": 1}, (), None, "pt-online-schema-change is not installed (percona-toolkit)"),
    (planned(2), {"online_min_bytes": 1}, (oa.PT_OSC,), None, "it renames the table"),
])
def test_big_copies_go_online(entry, opts, installed, tool, reason):
    found = de.route_alter(entry, STATEMENTS, opts, MARIADB, {"enabled": True, "format": "MIXED"},
                           which=lambda n: "/usr/bin/" + n if n in installed else None)
    assert found == tool and entry.get("online") == tool
    if reason:
        assert entry["online_reason"] == "runs as a blocking copy: " + reason
    else:
        assert "online_reason" not in entry


def test_defaults_are_a_few_seconds_of_lock_wait_and_a_budget():
    opts = de.options({"lock_wait_timeout": 0})
    assert opts["lock_wait_timeout"] == 1 and opts["lock_budget_seconds"] == 120
    assert de.options({})["lock_wait_timeout"] == 5 and de.options({})["online_min_bytes"] == 256 << 20
