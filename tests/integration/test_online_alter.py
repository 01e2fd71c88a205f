"""Big tables change online: an ALTER that needs a copy of a million-row table runs through
pt-online-schema-change while the test writes to the table; no write is lost, no write waits a second, and the
password never reaches a command line. A failed change leaves the original table as it was."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import schema_apply
from conftest import ADMIN_PASSWORD, ADMIN_USER, login_params, short_tmpdir
from ddl_load import Writer, checksum, make_table
from sandbox_db import Sandbox

ROWS = 1 << 20


@pytest.fixture(scope="module")
def server():
    box = Sandbox(short_tmpdir())
    # A test server: durability traded for speed (the change under test is not about crash safety).
    box.start(extra_args=("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-buffer-pool-size=256M"))
    box.create_admin(ADMIN_USER, ADMIN_PASSWORD)
    yield box
    box.destroy()


class CommandLines:
    """Every command line of the pt-online-schema-change processes, sampled from /proc while the change runs."""

    def __init__(self):
        self.seen = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    args = Path("/proc/%s/cmdline" % pid).read_bytes()
                except OSError:
                    continue
                if b"pt-online-schema-change" in args:
                    self.seen.add(args)
            self._stop.wait(0.1)


def params(box, db, tmp_path, text, **extra):
    path = tmp_path / "release.sql"
    path.write_text(text)
    p = dict(login_params(box), db=db, ddl_files=[str(path)], ddl_names=[], ddl_contents=[], environment="production",
             allow_destructive=False, allow_blocking_alter=False, large_table_bytes=1 << 20,
             require_approved_plan=False, approved_plan=None, plan_override=False,
             temp_schema_prefix="__dbrelease_plan_", plan_copy="referenced", online_min_bytes=1 << 20,
             lock_wait_timeout=1, watchdog_queue_seconds=0.5, online_progress_seconds=1)
    p.update(extra)
    return p


def triggers_and_leftovers(box, db, table):
    triggers = box.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = '%s' AND "
                       "EVENT_OBJECT_TABLE = '%s'" % (db, table))
    tables = box.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME LIKE "
                     "'\\_%%'" % db)
    return [r[0] for r in triggers], [r[0] for r in tables]


def test_a_copy_of_a_million_rows_runs_online_under_writes_losing_nothing(server, tmp_path):
    db = "ledger_" + uuid.uuid4().hex[:6]
    server.sql("CREATE DATABASE `%s`" % db)
    make_table(server, db, "entries", ROWS)
    count, crc = checksum(server, db, "entries")
    assert count == ROWS
    release = "ALTER TABLE entries MODIFY amount BIGINT NOT NULL, ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'EUR';\n"
    with CommandLines() as argv, Writer(server, db, "entries", count, crc, ROWS) as writer:
        time.sleep(0.3)
        result = schema_apply.run(params(server, db, tmp_path, release))
        time.sleep(0.3)
    # The plan found a copy; production would refuse a blocking copy of this size, but it ran online.
    alter = result["lint"]["alters"][0]
    assert (alter["algorithm"], alter["online"]) == ("copy", "pt-online-schema-change")
    record = result["execution"]["statements"][0]
    assert record["route"] == "pt-online-schema-change" and record["online"]["ok"] is True
    online = record["online"]
    assert online["progress"] and online["progress"][-1]["percent"] >= 50
    assert online["seconds"] > 0 and online["exit_code"] == 0
    assert result["changed"] is True
    definition = server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]
    assert "`amount` bigint(20) NOT NULL" in definition and "`currency` char(3) NOT NULL DEFAULT 'EUR'" in definition
    assert triggers_and_leftovers(server, db, "entries") == ([], [])
    # No write lost: the count and checksum the writer kept match the table's.
    assert writer.errors == [] and len(writer.latencies) > 50 and len(writer.deadlocks) < len(writer.latencies) / 20
    assert checksum(server, db, "entries") == (writer.count, writer.crc)
    assert max(writer.latencies) < 1.0, max(writer.latencies)
    # The account reached pt-online-schema-change through the option file only, which is gone.
    assert argv.seen and all(ADMIN_PASSWORD.encode() not in a for a in argv.seen)
    dsn = online["argv"][-1]
    assert dsn.startswith("F=") and dsn.endswith(",D=%s,t=entries" % db)
    assert not os.path.exists(dsn[2:].split(",")[0])
    result_text = str(result)
    assert ADMIN_PASSWORD not in result_text
    print("online ALTER of %d rows: %.1f s, %d writes (%d deadlocks retried), worst write %.3f s" % (
        ROWS, online["seconds"], len(writer.latencies), len(writer.deadlocks), max(writer.latencies)))


def test_an_online_change_that_fails_leaves_the_original_table_as_it_was(server, tmp_path):
    db = "ledger_" + uuid.uuid4().hex[:6]
    server.sql("CREATE DATABASE `%s`" % db)
    make_table(server, db, "entries", 50000)
    server.sql("CREATE TRIGGER `%s`.entries_audit BEFORE UPDATE ON `%s`.entries FOR EACH ROW SET NEW.note = "
               "LEFT(NEW.note, 20)" % (db, db))
    before = checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]
    release = "ALTER TABLE entries MODIFY amount BIGINT NOT NULL;\n"
    # More connections than the critical load allows: pt-osc stops at its first check and cleans up.
    with pytest.raises(schema_apply.SchemaFailure) as err:
        schema_apply.run(params(server, db, tmp_path, release, online_critical_load="Threads_connected=1",
                                online_chunk_time=0.05))
    msg = err.value.msg
    assert "pt-online-schema-change failed" in msg and "Threads_connected" in msg
    assert "the original table is untouched" in msg
    online = err.value.result["execution"]["statements"][0]["online"]
    assert online["original_untouched"] is True and "--preserve-triggers" in online["argv"]
    assert (checksum(server, db, "entries"), server.sql("SHOW CREATE TABLE `%s`.entries" % db)[0][1]) == before
    assert triggers_and_leftovers(server, db, "entries") == (["entries_audit"], [])
    assert err.value.result["applied"] == []
