"""Table tests for the destructive_changes filter: what each allowed destructive change destroys and how it comes
back."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from destructive_changes import FilterModule, destructive_changes

BACKUP = "/var/backups/dbrelease/shop_v2_20261201T101010Z.sql.gz"


@pytest.mark.parametrize("finding, kind, destroys, step", [
    ({"object": "table legacy_orders", "reason": "drops the table and its rows", "rows": 1200},
     "drop_table", "every row of legacy_orders (1200 rows)",
     "CREATE TABLE `shop`.`legacy_orders` LIKE `shop__rollback`.`legacy_orders`"),
    ({"object": "table orders", "reason": "drops column legacy_flag", "values": 37},
     "drop_column", "the values of column legacy_flag (37 values)",
     "SET t.`legacy_flag` = s.`legacy_flag`"),
    ({"object": "orders.note", "kind": "narrow_column", "reason": "narrows column note: varchar(200) -> varchar(20)",
      "before": "VARCHAR(200) NULL"},
     "narrow_column", "the part of the values of note that no longer fits",
     "ALTER TABLE `shop`.`orders` MODIFY COLUMN `note` VARCHAR(200) NULL"),
    ({"object": "table sessions", "reason": "TRUNCATE deletes every row"}, "truncate",
     "every row of sessions (row count not recorded)", "INSERT INTO `shop`.`sessions` SELECT *"),
    ({"object": "table carts", "reason": "CREATE OR REPLACE TABLE drops the existing table and its rows", "rows": 1},
     "replace_table", "every row of carts (1 row)", "INSERT INTO `shop`.`carts`"),
    ({"object": "table outbox", "reason": "DELETE statement allowed in the schema phase", "affected_rows": 40},
     "data", "the previous content of 40 rows", "copy back the old rows"),
    ({"object": "view v_totals", "reason": "drops the view"}, "drop_object", "the definition of view v_totals",
     "from its definition in the schema snapshot"),
    ({"object": "table t", "reason": "drops and re-adds column c (its values are lost)"}, "drop_column",
     "the values of column c in every row of t", "SET t.`c` = s.`c`"),
], ids=["dropped table", "dropped column", "narrowed column", "truncate", "create or replace", "data statement",
        "dropped view", "drop and re-add"])
def test_each_kind_says_what_it_destroys_and_how_to_bring_it_back(finding, kind, destroys, step):
    [entry] = destructive_changes([finding], "shop", BACKUP)
    assert entry["kind"] == kind
    assert entry["destroys"].startswith(destroys), entry["destroys"]
    assert any(step in s for s in entry["rollback"]), entry["rollback"]
    assert entry["impact"]
    if kind != "drop_object":
        assert entry["rollback"][0] == "Check the backup first: sha256sum -c %s.sha256." % BACKUP
        assert "gunzip -c `%s` | mariadb shop__rollback" % BACKUP in entry["rollback"][1]
        assert entry["rollback"][-1] == "DROP DATABASE `shop__rollback`."
        assert "rollback.yml" in entry["impact"]


def test_the_schema_phase_lint_dict_is_accepted_and_order_is_kept():
    lint = {"destructive": [{"object": "table a", "reason": "drops the table and its rows"},
                            {"object": "table b", "reason": "drops column x"}]}
    assert [e["object"] for e in destructive_changes(lint, "db")] == ["table a", "table b"]
    assert destructive_changes({"destructive": []}, "db") == []
    assert destructive_changes(None, "db") == []


def test_without_a_backup_the_steps_point_to_the_record():
    [entry] = destructive_changes([{"object": "t", "reason": "drops the table and its rows"}], "db", "")
    assert "the release's backup (phases.backup.path in release.json)" in entry["rollback"][1]


@pytest.mark.parametrize("findings, database, message", [
    ("x", "db", "expected a list of findings"),
    ([1], "db", "each finding must be a dict"),
    ([{"object": "t", "kind": "explode"}], "db", "has kind 'explode'"),
    ([{"object": "t", "reason": "drops the table", "rows": "many"}], "db", "row must be a number"),
    ([], "", "database must be named"),
])
def test_bad_input_is_refused_naming_it(findings, database, message):
    with pytest.raises(AnsibleFilterError, match=message):
        destructive_changes(findings, database)


def test_filter_module_maps_only_the_filter_name():
    assert FilterModule().filters() == {"destructive_changes": destructive_changes}
