"""A background writer of outbox transactions, for tests that act while rows keep coming."""

import contextlib
import json
import threading

import psycopg2

from .case import insert_event
from .postgres import Database

MAX_ROWS = 50000


class Writer(threading.Thread):
    """Commits transactions of 1..max_rows_per_txn rows on its own connection until told to stop.

    events: (id, topic, payload) of every committed row, in commit order.
    rollback_every: every Nth transaction is rolled back instead (0: none); the ids its
    rows took are in rolled_back. large_every / large_rows: every Nth transaction has
    large_rows rows (0: none).
    """

    def __init__(self, pg, dbname, max_rows_per_txn=5, rollback_every=0, large_every=0,
                 large_rows=0):
        super().__init__(daemon=True)
        self.db = Database(pg, dbname)
        self.max_rows_per_txn = max_rows_per_txn
        self.rollback_every = rollback_every
        self.large_every = large_every
        self.large_rows = large_rows
        self.events = []
        self.rolled_back = []
        self.error = None
        self._target = MAX_ROWS
        self._lock = threading.Lock()
        self._running = threading.Event()   # clear: paused between transactions
        self._running.set()
        self._idle = threading.Event()

    def stop_after(self, more_rows):
        """Writes at least more_rows more rows, then stops."""
        with self._lock:
            self._target = min(len(self.events) + more_rows, MAX_ROWS)

    def finish(self, timeout=120):
        self.join(timeout)
        self.db.close()
        if self.is_alive():
            raise TimeoutError("the writer did not finish")
        if self.error:
            raise self.error

    def _done(self):
        with self._lock:
            return len(self.events) >= self._target

    @contextlib.contextmanager
    def paused(self):
        """Holds the writer between two transactions (every commit so far is known), e.g.
        while the server restarts; reconnects before going on."""
        self._idle.clear()
        self._running.clear()
        try:
            if self.is_alive():
                self._idle.wait(60)
            yield
        finally:
            self.db.reconnect()
            self._running.set()

    def run(self):
        txn = 0
        try:
            while not self._done():
                if not self._running.is_set():
                    self._idle.set()
                    self._running.wait()
                self._write_transaction(txn)
                txn += 1
        except psycopg2.Error as e:
            self.error = e

    def _write_transaction(self, txn):
        rows = txn % self.max_rows_per_txn + 1
        if self.large_every and txn % self.large_every == self.large_every - 1:
            rows = self.large_rows
        commit = not (self.rollback_every and txn % self.rollback_every == self.rollback_every - 1)
        with self.db.transaction(commit=commit) as cur:
            batch = [insert_event(cur, "order", str(txn % 13), "written",
                                  json.dumps({"txn": txn, "row": i})) for i in range(rows)]
        with self._lock:
            if commit:
                self.events.extend(batch)
            else:
                self.rolled_back.extend(str(row_id) for row_id, _, _ in batch)
