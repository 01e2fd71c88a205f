"""Real schemas plan and apply: a sakila-style schema (tests/fixtures/schemas/filmstore.sql) with views over stored
functions, triggers and routines with DEFINERs, generated columns, FULLTEXT and spatial indexes, foreign keys, a
table named like its database, odd identifiers; the plan equals what the real run then does; a rerun applies only
what changes something; DEFINER and SQL SECURITY changes are changes.
"""

from __future__ import annotations

import pymysql
import pytest
import schema_apply
from ansible.module_utils.dbrelease.sqlsplit import split_sql
from conftest import ROOT

SCHEMAS = ROOT / "tests/fixtures/schemas"


def filmstore_sql(db, name="filmstore.sql"):
    """The fixture with every `filmstore` made the database's own name: the table `filmstore` is named like it."""
    return (SCHEMAS / name).read_text().replace("filmstore", db)


@pytest.fixture
def films(mariadb, dbname, admin_params):
    """filmstore loaded by the release account (db_admin), as a schema it released before: its objects' definer."""
    conn = pymysql.connect(unix_socket=admin_params["login_unix_socket"], user=admin_params["login_user"],
                           password=admin_params["login_password"], database=dbname, charset="utf8mb4",
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            for name in ("filmstore.sql", "filmstore_seed.sql"):
                for st in split_sql(filmstore_sql(dbname, name)):
                    cur.execute(st["sql"])
    finally:
        conn.close()
    return dbname


def params(admin_params, db, text, **extra):
    p = dict(admin_params, db=db, ddl_files=[], ddl_names=["release.sql"], ddl_contents=[text],
             environment="staging", allow_destructive=False, allow_statements=[], allow_blocking_alter=False,
             large_table_bytes=1 << 30, require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced")
    p.update(extra)
    return p


def leftovers(box):
    schemas = [r[0] for r in box.sql("SHOW DATABASES") if "__dbrelease_plan_" in r[0]]
    accounts = [r[0] for r in box.sql("SELECT User FROM mysql.user WHERE User LIKE 'dbrelease\\_plan\\_%'")]
    return schemas + accounts


# Varied releases against the same schema: the --check plan must equal the change set of the real run.
RELEASES = {
    "add columns and an index": (
        "ALTER TABLE film ADD COLUMN IF NOT EXISTS imdb_id VARCHAR(12) NULL, ADD INDEX IF NOT EXISTS idx_imdb "
        "(imdb_id);\nALTER TABLE customer ADD COLUMN IF NOT EXISTS loyalty INT NOT NULL DEFAULT 0;\n"),
    "a view over a function, replaced": (
        "CREATE OR REPLACE SQL SECURITY INVOKER VIEW film_list AS SELECT film.film_id AS fid, "
        "film_label(film.title, film.release_year) AS label, film.rating, film.length, film.rate_cents FROM film;\n"),
    "a new function and a view over it": (
        "DELIMITER ;;\nCREATE OR REPLACE FUNCTION rate_band(p_rate DECIMAL(4,2)) RETURNS VARCHAR(8) DETERMINISTIC\n"
        "RETURN IF(p_rate < 2, 'cheap', 'regular') ;;\nDELIMITER ;\n"
        "CREATE OR REPLACE VIEW film_bands AS SELECT film_id, rate_band(rental_rate) AS band FROM film;\n"),
    "renames": (
        "ALTER TABLE customer RENAME COLUMN email TO email_address;\nRENAME TABLE film_text TO film_search;\n"
        "ALTER TABLE `order` CHANGE `ñote café` `note_cafe` VARCHAR(120) NULL;\n"),
    "the table named like its database": (
        "ALTER TABLE {db}.{db} ADD COLUMN IF NOT EXISTS {db}_code CHAR(3) NULL;\n"
        "CREATE OR REPLACE VIEW store_names AS SELECT {db}.{db}.id, {db}.{db}.{db} AS name, {db}.{db}.{db}_code "
        "FROM {db}.{db};\n"),
    "triggers dropped and created with a new body": (
        "DROP TRIGGER IF EXISTS customer_create_date;\nDELIMITER ;;\nCREATE TRIGGER customer_create_date BEFORE "
        "INSERT ON customer FOR EACH ROW SET NEW.create_date = UTC_TIMESTAMP() ;;\nDELIMITER ;\n"),
    "a foreign key, a check and a unique key over clean data": (
        "ALTER TABLE film_text ADD CONSTRAINT fk_film_text_film FOREIGN KEY (film_id) REFERENCES film (film_id);\n"
        "ALTER TABLE payment ADD CONSTRAINT chk_amount CHECK (amount >= 0);\n"
        "ALTER TABLE customer ADD UNIQUE KEY IF NOT EXISTS uq_customer_email (email);\n"),
    "generated, FULLTEXT and spatial": (
        "ALTER TABLE film ADD COLUMN IF NOT EXISTS title_len INT AS (CHAR_LENGTH(title)) VIRTUAL;\n"
        "ALTER TABLE film_text ADD FULLTEXT INDEX IF NOT EXISTS ft_title (title);\n"
        "ALTER TABLE store ADD COLUMN IF NOT EXISTS area POLYGON NULL;\n"),
    "an event and a procedure": (
        "CREATE OR REPLACE EVENT close_stale_rentals ON SCHEDULE EVERY 2 DAY DISABLE DO UPDATE rental SET "
        "return_date = NOW() WHERE return_date IS NULL AND rental_date < NOW() - INTERVAL 2 YEAR;\n"
        "DELIMITER //\nCREATE OR REPLACE PROCEDURE rentals_of(IN p_customer INT) READS SQL DATA\nBEGIN\n"
        "  SELECT * FROM rental WHERE customer_id = p_customer;\nEND //\nDELIMITER ;\n"),
    "odd identifiers": (
        "ALTER TABLE `order` ADD COLUMN IF NOT EXISTS `a.b c` INT NULL, ADD INDEX IF NOT EXISTS `ix.ñ` (`Größe`);\n"
        "CREATE TABLE IF NOT EXISTS `se.lect` (`from` INT PRIMARY KEY, `ü` TEXT);\n"),
    "widening types and a character set": (
        "ALTER TABLE film MODIFY title VARCHAR(255) NOT NULL;\nALTER TABLE customer MODIFY first_name VARCHAR(90) "
        "NOT NULL;\nALTER TABLE `order` MODIFY `Größe` BIGINT NULL;\n"),
    "drop a view, and a definer change": (
        "DROP VIEW IF EXISTS available_films;\nALTER DEFINER = CURRENT_USER VIEW sales_by_store AS SELECT s.store_id, "
        "SUM(p.amount) AS total_sales FROM payment p JOIN rental r ON p.rental_id = r.rental_id JOIN inventory i ON "
        "r.inventory_id = i.inventory_id JOIN store s ON i.store_id = s.store_id GROUP BY s.store_id;\n"),
    "session settings of a dump around a new table": (
        "/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, "
        "FOREIGN_KEY_CHECKS=0 */;\nCREATE TABLE IF NOT EXISTS staff (staff_id TINYINT UNSIGNED PRIMARY KEY, "
        "store_id TINYINT UNSIGNED NOT NULL, CONSTRAINT fk_staff_store FOREIGN KEY (store_id) REFERENCES store "
        "(store_id));\n/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n"),
    "nothing to do": "CREATE OR REPLACE VIEW film_list AS SELECT 1 AS one;\nCREATE OR REPLACE VIEW film_list AS "
                     "SELECT film.film_id AS fid FROM film;\nDROP VIEW IF EXISTS film_list;\n",
}


def changes_of(result, key):
    return [(c["object"], c["action"], c["details"]) for c in result[key]]


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_the_check_plan_equals_what_the_real_run_does(mariadb, films, admin_params, name):
    text = RELEASES[name].format(db=films)
    p = params(admin_params, films, text, allow_destructive=True)
    plan = schema_apply.run(p, check_mode=True)
    real = schema_apply.run(p)
    assert changes_of(plan, "plan") == changes_of(real, "changes")
    assert plan["changed"] == real["changed"] == bool(real["changes"])
    assert [s["index"] for s in plan["skipped"]] == [s["index"] for s in real["skipped"]]
    if not plan["lint"]["idempotence"]:
        # A rerun changes nothing; it runs only what changed something on the copy (and the session settings).
        again = schema_apply.run(p)
        assert again["changed"] is False and again["changes"] == []
        if name != "nothing to do":  # (three statements that each change the view, leaving it as it was)
            assert [a for a in again["applied"] if "SET " not in a["sql"].upper()] == []
    assert leftovers(mariadb) == []


def test_views_over_functions_copy_in_dependency_order_in_both_copy_modes(films, admin_params):
    text = "ALTER TABLE film ADD COLUMN IF NOT EXISTS imdb_id VARCHAR(12) NULL;\n"
    for mode in ("full", "referenced"):
        result = schema_apply.run(params(admin_params, films, text, plan_copy=mode), check_mode=True)
        assert [c["object"] for c in result["plan"]] == ["table film"]
        if mode == "full":
            assert result["plan_copied"] == {"tables": 13, "views": 5, "routines": 3, "triggers": 3, "events": 1}
        else:  # film, its neighbours and the views over it (two of them call functions)
            assert result["plan_copied"]["views"] >= 3 and result["plan_copied"]["routines"] == 3


def test_a_rerun_leaves_unchanged_triggers_and_routines_in_place(mariadb, films, admin_params):
    text = ("DROP TRIGGER IF EXISTS customer_create_date;\nDELIMITER ;;\nCREATE TRIGGER customer_create_date "
            "BEFORE INSERT ON customer FOR EACH ROW SET NEW.create_date = NOW() ;;\n"
            "CREATE OR REPLACE PROCEDURE film_in_stock(IN p_film_id INT, IN p_store_id INT, OUT p_film_count INT)\n"
            "    READS SQL DATA\nBEGIN\n  SELECT COUNT(*) INTO p_film_count FROM inventory\n"
            "  WHERE film_id = p_film_id AND store_id = p_store_id AND inventory_in_stock(inventory_id);\nEND ;;\n"
            "DELIMITER ;\n")
    created = "SELECT CREATED FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '%s'" % films
    altered = "SELECT LAST_ALTERED FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '%s' AND " \
              "ROUTINE_NAME = 'film_in_stock'" % films
    first_trigger, first_routine = mariadb.sql(created), mariadb.sql(altered)
    result = schema_apply.run(params(admin_params, films, text))
    # The trigger and the procedure are as the schema has them (same body, same definer): nothing runs.
    assert result["applied"] == [] and result["changed"] is False
    assert [(s["index"], s["reason"].split(":")[0]) for s in result["skipped"]] == [
        (1, "trigger customer_create_date is dropped and created again as it is"),
        (2, "trigger customer_create_date is dropped and created again as it is"),
        (3, "no effect on the temporary copy")]
    assert mariadb.sql(created) == first_trigger and mariadb.sql(altered) == first_routine
    assert result["lint"]["idempotence"] == []  # DROP ... IF EXISTS + CREATE is rerunnable


def test_definer_and_sql_security_changes_are_changes(mariadb, films, admin_params):
    mariadb.sql(["CREATE USER IF NOT EXISTS 'reporting'@'%'",
                 "CREATE DEFINER='reporting'@'%' SQL SECURITY DEFINER VIEW v_names AS SELECT first_name FROM customer"],
                database=films)
    try:
        same = "CREATE OR REPLACE DEFINER='reporting'@'%' VIEW v_names AS SELECT first_name FROM customer;\n"
        assert schema_apply.run(params(admin_params, films, same), check_mode=True)["plan"] == []
        cases = {
            "CREATE OR REPLACE VIEW v_names AS SELECT first_name FROM customer;\n": ["definer changed"],
            "CREATE OR REPLACE DEFINER='reporting'@'%' SQL SECURITY INVOKER VIEW v_names AS "
            "SELECT first_name FROM customer;\n": ["security changed"],
        }
        for text, details in cases.items():
            plan = schema_apply.run(params(admin_params, films, text), check_mode=True)
            assert changes_of(plan, "plan") == [("view v_names", "alter", details)] and plan["changed"]
        real = schema_apply.run(params(admin_params, films, list(cases)[0]))
        assert changes_of(real, "changes") == [("view v_names", "alter", ["definer changed"])]
        definer = mariadb.sql("SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '%s' AND "
                              "TABLE_NAME = 'v_names'" % films)[0][0]
        assert definer == "db_admin@localhost"
        assert real["post_snapshot"]["objects"]["views"]["v_names"]["definer"] == "db_admin@localhost"
    finally:
        mariadb.sql("DROP USER IF EXISTS 'reporting'@'%'")


def test_objects_whose_definer_does_not_exist_plan_and_keep_their_definer(mariadb, films, admin_params):
    mariadb.sql(["CREATE DEFINER='ghost'@'%' VIEW v_ghost AS SELECT film_id FROM film",
                 "CREATE DEFINER='ghost'@'%' TRIGGER ghost_touch BEFORE UPDATE ON store FOR EACH ROW "
                 "SET NEW.address_id = NEW.address_id"], database=films)
    plan = schema_apply.run(params(admin_params, films, "ALTER TABLE store ADD COLUMN IF NOT EXISTS note TEXT;\n",
                                   plan_copy="full"), check_mode=True)
    assert [c["object"] for c in plan["plan"]] == ["table store"]
    assert plan["pre_snapshot"]["objects"]["views"]["v_ghost"]["definer"] == "ghost@%"
