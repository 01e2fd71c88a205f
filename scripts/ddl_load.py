"""Application load for the DDL tests and benchmarks (tests/integration/test_online_alter.py, test_ddl_locks.py,
scripts/bench_ddl.py): a table made in one set-based statement, a writer that keeps the count and checksum the
table must end with, and a reader that times the application's queries.

The checksum is BIT_XOR(CRC32(CONCAT_WS('#', id, account_id, amount, note))) over the rows: a write's effect on it
is known without reading the table again (XOR out the old row, XOR in the new), so "no write lost" is checked
exactly after a change that copied the table.
"""

from __future__ import annotations

import random
import threading
import time
import zlib

import pymysql

CHECKSUM_SQL = ("SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, account_id, amount, note))), 0) "
                "FROM %s")


def make_table(box, db, table, rows, binlog=False):
    """`table` with `rows` rows in one INSERT ... SELECT from the sequence engine (not row by row); outside the
    binary log unless `binlog` (replicas must then get it)."""
    box.sql((["SET SESSION sql_log_bin = 0"] if not binlog else []) + [
        "CREATE TABLE `%s`.`%s` (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "account_id INT NOT NULL, amount INT NOT NULL, note VARCHAR(20) NOT NULL, KEY idx_account (account_id)) "
        "ENGINE=InnoDB" % (db, table),
        "INSERT INTO `%s`.`%s` (id, account_id, amount, note) SELECT seq, seq MOD 5000, (seq * 7919) MOD 100000, "
        "CONCAT('n', seq MOD 977) FROM seq_1_to_%d" % (db, table, rows),
        "ANALYZE TABLE `%s`.`%s`" % (db, table)], database=db)


def checksum(box, db, table):
    count, crc = box.sql(CHECKSUM_SQL % ("`%s`.`%s`" % (db, table)))[0]
    return int(count), int(crc)


def row_crc(row):
    return zlib.crc32(("%d#%d#%d#%s" % row).encode())


class Writer:
    """The application writing to the table from its own session: inserts, updates and deletes, each its own
    transaction, timed; it keeps the count and checksum the table must end with. A deadlock rolls a write back
    before it is acknowledged: it is counted and the next write goes on, as an application retries."""

    def __init__(self, box, db, table, count, crc, max_id, pause=0.01, seed=15):
        self.conn = pymysql.connect(unix_socket=box.socket, user="root", database=db, autocommit=False)
        self.table = table
        self.count, self.crc, self.max_id = count, crc, max_id
        self.pause = pause
        self.latencies = []
        self.errors = []
        self.deadlocks = []
        self.rand = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)
        self.conn.close()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                delta = self._one()
                self.conn.commit()
            except pymysql.err.MySQLError as exc:
                self.conn.rollback()
                (self.deadlocks if exc.args[0] == 1213 else self.errors).append(exc)
            else:
                if delta:
                    self.count += delta[0]
                    self.crc ^= delta[1]
                    self.max_id = max(self.max_id, delta[2])
            self.latencies.append(time.monotonic() - t0)
            self._stop.wait(self.pause)

    def _one(self):
        """One write; returns its (count change, checksum change, id) once the server has done it."""
        op = self.rand.random()
        with self.conn.cursor() as cur:
            if op < 0.4:
                row = (0, self.rand.randrange(5000), self.rand.randrange(100000), "w%d" % self.rand.randrange(999))
                cur.execute("INSERT INTO %s (account_id, amount, note) VALUES (%%s, %%s, %%s)" % self.table, row[1:])
                row = (cur.lastrowid,) + row[1:]
                return 1, row_crc(row), row[0]
            target = self.rand.randrange(1, self.max_id + 1)
            cur.execute("SELECT id, account_id, amount, note FROM %s WHERE id = %%s FOR UPDATE" % self.table, (target,))
            old = cur.fetchone()
            if old is None:
                return None
            if op < 0.9:
                new = (old[0], old[1], (old[2] + 1) % 100000, old[3])
                cur.execute("UPDATE %s SET amount = %%s WHERE id = %%s" % self.table, (new[2], new[0]))
                return 0, row_crc(old) ^ row_crc(new), 0
            cur.execute("DELETE FROM %s WHERE id = %%s" % self.table, (old[0],))
            return -1, row_crc(old), 0


class Queries:
    """The application running `sql` every `every` seconds on `conn` (its own session), each query timed."""

    def __init__(self, conn, sql, every=0.05):
        self.conn = conn
        self.sql = sql
        self.every = every
        self.latencies = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(60)
        self.conn.close()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with self.conn.cursor() as cur:
                    cur.execute(self.sql)
                    cur.fetchall()
            except pymysql.err.MySQLError as exc:
                self.errors.append(exc)
            self.latencies.append(time.monotonic() - t0)
            self._stop.wait(self.every)

    @property
    def worst(self):
        return max(self.latencies) if self.latencies else 0.0
