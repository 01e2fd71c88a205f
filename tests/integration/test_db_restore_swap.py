"""db_restore against real MariaDB servers: the dump goes into a new schema, is verified, then swapped in; every way it
can fail leaves the database as it was, and a restore that needs privileges the account lacks is refused with the
list before anything changes."""

from __future__ import annotations

import json
import threading

import pytest
from conftest import ADMIN_PASSWORD, login_params
from dbstate import dump_db, run_sql, schema_state, schemas, without_event_states
from helpers import run_module

SCHEMA = """
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50) NOT NULL, email VARCHAR(80),
  name_upper VARCHAR(50) AS (UPPER(name)) VIRTUAL, UNIQUE KEY (email));
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new', placed_at DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE);
CREATE TABLE `{db}` (id INT PRIMARY KEY, `odd ``name`` col` TEXT, payload BLOB);
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(100) NOT NULL,
  at TIMESTAMP DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;
INSERT INTO customers (name, email) VALUES ('Ana', 'ana@example.test'), ('Bo', NULL), ('Çé ü', 'ce@example.test');
INSERT INTO orders (customer_id, total, status) VALUES (1, 10.50, 'paid'), (2, 3, 'new'), (3, 7.25, 'shipped');
INSERT INTO `{db}` VALUES (1, 'x', 0x00ff10), (2, NULL, NULL);
DELIMITER ;;
CREATE FUNCTION order_count(c INT) RETURNS INT READS SQL DATA
  RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = c);;
CREATE FUNCTION f_const() RETURNS INT DETERMINISTIC NO SQL RETURN 1;;
CREATE PROCEDURE touch(IN w VARCHAR(100)) MODIFIES SQL DATA BEGIN INSERT INTO audit (what) VALUES (w); END;;
CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));;
CREATE TRIGGER orders_ai_second AFTER INSERT ON orders FOR EACH ROW FOLLOWS orders_ai
  INSERT INTO audit (what) VALUES ('second');;
DELIMITER ;
CREATE VIEW customer_orders AS SELECT c.id, c.name, order_count(c.id) AS n FROM customers c;
CREATE VIEW busy_customers AS SELECT * FROM customer_orders WHERE n > 0;
CREATE DEFINER=`reporting`@`%` SQL SECURITY DEFINER VIEW report AS SELECT COUNT(*) AS orders FROM orders;
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY ON COMPLETION PRESERVE ENABLE COMMENT 'keep 30 days'
  DO DELETE FROM audit WHERE at < NOW() - INTERVAL 30 DAY;
CREATE EVENT paused ON SCHEDULE EVERY 1 HOUR DISABLE DO DELETE FROM audit WHERE id < 0;
"""

# What a release and the weeks after it do: a new table with rows, a new column, a changed view and routine, a dropped
# trigger, a new event, rows written to old tables (one marker value that must never reach a log or the journal).
RELEASE = """
CREATE TABLE refunds (id INT PRIMARY KEY, order_id INT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id));
ALTER TABLE orders ADD COLUMN note VARCHAR(40) NULL;
INSERT INTO customers (name, email) VALUES ('Secret-Row-Marker-7Q', 'late@example.test');
INSERT INTO orders (customer_id, total, note) VALUES (4, 99, 'after the release');
INSERT INTO refunds VALUES (1, 4);
CREATE OR REPLACE VIEW busy_customers AS SELECT * FROM customer_orders WHERE n > 1;
DROP TRIGGER orders_ai_second;
DROP FUNCTION f_const;
DELIMITER ;;
CREATE FUNCTION f_const() RETURNS INT DETERMINISTIC NO SQL RETURN 2;;
DELIMITER ;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM refunds WHERE id < 0;
"""


@pytest.fixture
def shop(mariadb, dbname, tmp_path):
    """A realistic database, its backup, then what a release did to it."""
    mariadb.sql("CREATE USER IF NOT EXISTS 'reporting'@'%'")
    run_sql(mariadb, dbname, SCHEMA.format(db=dbname))
    before = schema_state(mariadb, dbname)
    backup = dump_db(mariadb, dbname, tmp_path / "backups" / ("%s_v1.sql.gz" % dbname))
    run_sql(mariadb, dbname, RELEASE)
    after = schema_state(mariadb, dbname)
    assert after != before
    return dict(box=mariadb, db=dbname, before=before, after=after, backup=backup, tmp=tmp_path)


def restore_args(shop, **extra):
    args = dict(login_params(shop["box"]), database=shop["db"], path=shop["backup"]["path"],
                sha256=shop["backup"]["sha256"], journal_dir=str(shop["tmp"]), label="v1")
    args.update(extra)
    return args


def leftovers(box, db):
    return {name for name in schemas(box) if name.startswith(db + "__")}


def test_swap_restores_the_backup_exactly_and_keeps_the_previous_database_aside(shop):
    box, db = shop["box"], shop["db"]
    result = run_module("db_restore", restore_args(shop))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] and result["method"] == "swap"
    assert schema_state(box, db) == shop["before"]
    # The database as it was before the rollback: every table with its rows, views, routines, triggers; events kept
    # DISABLED so that the copy never acts.
    kept = result["kept"]
    assert kept.startswith(db + "__before_rollback_")
    kept_state = schema_state(box, kept)
    assert without_event_states(kept_state) == without_event_states(dict(shop["after"], schema=kept_state["schema"]))
    assert {v[0] for k, v in kept_state.items() if k.startswith("event ")} == {"DISABLED"}
    assert leftovers(box, db) == {kept}
    assert result["verified"]["problems"] == [] and result["verified"]["tables_checksummed"] == 4
    assert result["replaced"]["tables"] == 5
    journal = open(result["journal"]).read()
    assert "Secret-Row-Marker-7Q" not in journal and ADMIN_PASSWORD not in journal
    assert ADMIN_PASSWORD not in json.dumps(result) and "Secret-Row-Marker-7Q" not in json.dumps(result)
    assert [s["step"] for s in json.loads(journal)["steps"]][-1] == "finished"
    # Events came back with the state the dump had (the staging copy held them DISABLED).
    assert shop["before"]["event purge_audit"][0] == "ENABLED"
    # The next rollback names what this one kept.
    assert run_module("db_restore", restore_args(shop), check=True)["earlier_rollbacks"] == {"kept": [kept],
                                                                                         "staging": []}


def test_check_mode_verifies_and_plans_without_changing_anything(shop):
    result = run_module("db_restore", restore_args(shop), check=True)
    assert result["changed"] and "swap it in as %s with one RENAME TABLE" % shop["db"] in result["plan"]
    assert result["declared"] == {"tables": 4, "views": 3, "routines": 3, "triggers": 2, "events": 2}
    assert schema_state(shop["box"], shop["db"]) == shop["after"]
    assert leftovers(shop["box"], shop["db"]) == set()


def test_a_copy_that_fails_verification_is_never_swapped_in(shop):
    result = run_module("db_restore", restore_args(shop, expect={"rows": {"customers": 99, "orders": 3}}))
    assert result["failed"]
    assert "table customers has 3 rows restored, the backup's restore test counted 99" in result["msg"]
    assert "nothing was changed in %s" % shop["db"] in result["msg"]
    assert schema_state(shop["box"], shop["db"]) == shop["after"]
    assert leftovers(shop["box"], shop["db"]) == set()


def test_a_copy_whose_checksum_differs_from_the_recorded_digest_is_never_swapped_in(shop):
    # A digest in the form the backup phase's restore test records per table, but not this backup's.
    result = run_module("db_restore", restore_args(shop, expect={"checksums": {"customers": {
        "digest": "0123456789abcdef", "method": "primary key", "sampled": False}}}))
    assert result["failed"]
    assert "table customers has checksum " in result["msg"] and ", 0123456789abcdef was recorded for this backup" \
        in result["msg"]
    assert schema_state(shop["box"], shop["db"]) == shop["after"]
    assert leftovers(shop["box"], shop["db"]) == set()


def test_a_swap_that_fails_half_way_is_undone(shop):
    """Another session holds a routine of the database (a transaction that called it): the swap renames the tables,
    cannot drop the routine within lock_wait_timeout, and puts everything back."""
    box, db = shop["box"], shop["db"]
    holding, release = threading.Event(), threading.Event()

    def hold():
        conn = box.root(db)
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION")  # the routine's metadata lock lasts until the transaction ends
            cur.execute("SELECT f_const()")
            holding.set()
            release.wait(60)
        conn.rollback()
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    try:
        result = run_module("db_restore", restore_args(shop, lock_wait_timeout=2))
    finally:
        release.set()
        holder.join()
    assert result["failed"]
    assert "failed and was undone, so the database is as it was before the rollback" in result["msg"], result["msg"]
    assert "Lock wait timeout" in result["msg"]
    assert schema_state(box, db) == shop["after"]
    assert leftovers(box, db) == set()
    steps = [s["step"] for s in json.loads(open(next(shop["tmp"].glob("*.journal.json"))).read())["steps"]]
    assert "renamed tables" in steps and steps[-1] == "undone"


def test_foreign_keys_from_another_schema_mean_an_in_place_restore_that_says_why(shop):
    box, db = shop["box"], shop["db"]
    other = db + "_billing"
    box.sql(["CREATE DATABASE `%s`" % other,
             "CREATE TABLE `%s`.invoices (id INT PRIMARY KEY, customer_id INT, FOREIGN KEY (customer_id) "
             "REFERENCES `%s`.customers (id))" % (other, db)])
    try:
        refused = run_module("db_restore", restore_args(shop, method="swap"))
        assert refused["failed"] and "a swap is impossible, so nothing was changed" in refused["msg"]
        assert "%s.invoices" % other in refused["msg"]
        assert schema_state(box, db) == shop["after"]
        result = run_module("db_restore", restore_args(shop, safety_dump_dir=str(shop["tmp"] / "safety")))
        assert result.get("failed") is not True, result.get("msg")
        assert result["method"] == "in_place" and "foreign keys" in result["method_reason"]
        assert schema_state(box, db) == shop["before"]
        assert result["safety_dump"]["path"].startswith(str(shop["tmp"] / "safety"))
        create = box.sql("SHOW CREATE TABLE `%s`.invoices" % other)[0][1]
        assert "REFERENCES `%s`.`customers`" % db in create
    finally:
        box.sql("DROP DATABASE IF EXISTS `%s`" % other)


def test_an_admin_without_set_user_is_refused_with_the_full_list_before_anything_changes(private_mariadb, tmp_path):
    """Today's failure: an admin of the application's schemas (no SET USER, no SUPER) stopped at the first object
    with another DEFINER after the DROP, leaving a few tables. Now the whole list comes first, and nothing changes;
    with the missing privileges granted, the same account restores."""
    box, db = private_mariadb, "shop_app"
    box.sql(["CREATE DATABASE %s" % db, "CREATE USER 'reporting'@'%'",
             "CREATE USER 'app_admin'@'localhost' IDENTIFIED BY 'Adm-Pw-3'",
             "GRANT ALL PRIVILEGES ON `shop\\_app%`.* TO 'app_admin'@'localhost'"])
    run_sql(box, db, SCHEMA.format(db=db))
    before = schema_state(box, db)
    backup = dump_db(box, db, tmp_path / "shop_app_v1.sql.gz")
    run_sql(box, db, RELEASE)
    after = schema_state(box, db)
    args = dict(login_user="app_admin", login_password="Adm-Pw-3", login_unix_socket=box.socket, database=db,
                path=backup["path"], sha256=backup["sha256"], journal_dir=str(tmp_path))
    for method in ("auto", "in_place"):
        result = run_module("db_restore", dict(args, method=method))
        assert result["failed"], result
        assert "refused before changing anything" in result["msg"]
        missing = " | ".join(result["missing_privileges"])
        assert "SET USER or SUPER on *.*" in missing and "reporting@% for view report" in missing
        assert "log_bin_trust_function_creators=1" in missing
        if method == "auto":  # the swap keeps the current routines aside: their bodies must be readable
            assert "SELECT on mysql.proc" in missing and "function shop_app.f_const" in missing
        assert schema_state(box, db) == after
        assert schemas(box) >= {db} and not {s for s in schemas(box) if s.startswith(db + "__")}
    box.sql(["GRANT SET USER ON *.* TO 'app_admin'@'localhost'",
             "GRANT SELECT ON mysql.proc TO 'app_admin'@'localhost'", "SET GLOBAL log_bin_trust_function_creators = 1"])
    result = run_module("db_restore", args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["method"] == "swap"
    assert schema_state(box, db) == before



def test_a_dead_rollback_staging_copy_is_swept_a_live_one_and_the_kept_database_never(mariadb, dbname, tmp_path):
    dead = "%s__dbrelease_rollback_%s" % (dbname, "0badc0de")
    live = "%s__dbrelease_rollback_%s" % (dbname, "5afe5afe")
    kept = "%s__before_rollback_20261201T000000Z" % dbname
    owner = mariadb.root()  # a running rollback: its connection holds the claim (leftovers.claim_schema)
    try:
        with owner.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (live,))
        mariadb.sql(["CREATE DATABASE `%s`" % name for name in (dead, live, kept)]
                    + ["CREATE TABLE `%s`.t (id INT PRIMARY KEY)" % name for name in (dead, live, kept)])
        swept = run_module("release_leftovers", dict(login_params(mariadb), temp_dir=str(tmp_path)))
        assert [item["name"] for item in swept["removed"]] == [dead], swept
        assert "a rollback's staging copy of a backup" in swept["msg"]
        assert leftovers(mariadb, dbname) == {live, kept}
    finally:
        owner.close()
        mariadb.sql(["DROP DATABASE IF EXISTS `%s`" % name for name in (dead, live, kept)])
