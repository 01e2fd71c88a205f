"""Schema rollback against a real MariaDB: the reverse of a release computed from its snapshots and applied through
schema_apply keeps every row written since the release and gives back the pre-release schema."""

from __future__ import annotations

import pytest
from conftest import login_params
from dbstate import run_sql, schema_state
from helpers import run_module

SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50) NOT NULL, email VARCHAR(80),
  name_upper VARCHAR(50) AS (UPPER(name)) VIRTUAL);
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(10,2),
  status VARCHAR(10) DEFAULT 'new', FOREIGN KEY (customer_id) REFERENCES customers (id));
CREATE TABLE `{db}` (id INT PRIMARY KEY, `odd ``name`` col` TEXT);
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(100));
INSERT INTO customers (name, email) VALUES ('Ana', 'a@example.test'), ('Bo', NULL);
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 20);
CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE VIEW customer_orders AS SELECT c.id, c.name, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.id) AS n
  FROM customers c;
CREATE VIEW busy AS SELECT * FROM customer_orders WHERE n > 0;
"""


def apply(box, db, text, name, check=False, allow_destructive=False):
    result = run_module("schema_apply", dict(login_params(box), db=db, ddl_contents=[text], ddl_names=[name],
                                             allow_destructive=allow_destructive), check=check)
    assert result.get("ok"), result.get("msg")
    return result


def reverse_of(box, db, released):
    result = run_module("schema_reverse", dict(login_params(box), db=db, pre_snapshot=released["pre_snapshot"],
                                               pre_sql=released["pre_sql"]))
    assert result.get("failed") is not True, result.get("msg")
    return result


def rows(box, db, table, columns):
    return sorted(box.sql("SELECT %s FROM `%s`" % (", ".join("`%s`" % c for c in columns), table), database=db))


@pytest.fixture
def app(mariadb, dbname):
    run_sql(mariadb, dbname, SCHEMA.format(db=dbname))
    return mariadb, dbname


def test_a_schema_rollback_keeps_every_write_to_the_old_tables_and_gives_back_the_pre_release_schema(app):
    box, db = app
    before = schema_state(box, db, rows=False)
    released = apply(box, db, "CREATE TABLE refunds (id INT PRIMARY KEY, order_id INT NOT NULL, "
                              "CONSTRAINT refunds_order FOREIGN KEY (order_id) REFERENCES orders (id));\n"
                              "ALTER TABLE orders ADD COLUMN note VARCHAR(40) NULL AFTER total;\n", "v2.sql")
    box.sql(["INSERT INTO customers (name) VALUES ('After the release')",
             "INSERT INTO orders (customer_id, total, note) VALUES (3, 30, 'written by v2')",
             "UPDATE orders SET total = total + 1, note = 'updated' WHERE id = 1",
             "DELETE FROM audit WHERE id = 1",
             "INSERT INTO refunds VALUES (1, 3)"], database=db)
    kept = {"customers": rows(box, db, "customers", ["id", "name", "email"]),
            "orders": rows(box, db, "orders", ["id", "customer_id", "total", "status"]),
            "audit": rows(box, db, "audit", ["id", "what"])}
    rev = reverse_of(box, db, released)
    assert rev["steps"] == ["table refunds: drop", "table orders: drop column note"]
    assert rev["lossless"] is False and rev["losses"] == [
        "1 row(s) in refunds, a table the release created",
        "2 row(s) with a value in orders.note, a column the release added"]
    assert "Secret" not in str(rev) and "written by v2" not in str(rev)  # counts, never values
    planned = apply(box, db, rev["ddl"], "reverse-v2.sql", check=True, allow_destructive=True)
    assert {c["object"] for c in planned["plan"]} == {"table refunds", "table orders"}
    assert "refunds" in {row[0] for row in box.sql("SHOW TABLES", database=db)}  # --check changed nothing
    done = apply(box, db, rev["ddl"], "reverse-v2.sql", allow_destructive=True)
    assert done["post_sha256"] == released["pre_sha256"]  # the schema equals the pre-release snapshot
    assert schema_state(box, db, rows=False) == before
    for table, columns in (("customers", ["id", "name", "email"]), ("orders", ["id", "customer_id", "total",
                                                                               "status"]), ("audit", ["id", "what"])):
        assert rows(box, db, table, columns) == kept[table]
    again = reverse_of(box, db, released)
    assert again["steps"] == [] and again["lossless"] is True and again["changes"] == 0


def test_what_does_not_fit_is_left_and_named_and_everything_else_is_reversed(app):
    box, db = app
    before = schema_state(box, db, rows=False)
    released = apply(box, db, "\n".join([
        "ALTER TABLE orders ADD INDEX by_status (status), MODIFY status VARCHAR(50) DEFAULT 'new';",
        "ALTER TABLE customers RENAME COLUMN email TO contact_email;",
        "ALTER TABLE orders DROP COLUMN total;",
        "RENAME TABLE `%s` TO legacy_names;" % db,
        "CREATE OR REPLACE VIEW busy AS SELECT * FROM customer_orders WHERE n > 5;",
        "DROP TRIGGER orders_ai;",
        "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;"]) + "\n",
        "v3.sql", allow_destructive=True)
    box.sql(["UPDATE orders SET status = 'awaiting-approval' WHERE id = 2"], database=db)
    rev = reverse_of(box, db, released)
    assert rev["not_reversed"] == ["table orders: modify column status back left as it is: 1 value(s) of "
                                   "orders.status that do not fit its previous definition varchar(10)"]
    assert "column orders.total was dropped by the release: its values are only in the backup (2 row(s) of orders " \
           "that get total's default instead of their old value)" in rev["losses"]
    apply(box, db, rev["ddl"], "reverse-v3.sql", allow_destructive=True)
    now = schema_state(box, db, rows=False)
    assert {k for k in set(now) | set(before) if now.get(k) != before.get(k)} == {"table orders"}
    assert "`status` varchar(50)" in now["table orders"]
    # Once the value fits, the next schema rollback finishes the job.
    box.sql("UPDATE orders SET status = 'paid' WHERE id = 2", database=db)
    final = reverse_of(box, db, released)
    assert final["steps"] == ["table orders: modify column status back"] and final["lossless"] is True
    done = apply(box, db, final["ddl"], "reverse-v3b.sql", allow_destructive=True)
    assert done["post_sha256"] == released["pre_sha256"]
    assert schema_state(box, db, rows=False) == before
