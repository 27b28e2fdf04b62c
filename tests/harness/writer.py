"""A background writer of outbox transactions, for tests that act while rows keep coming."""

import json
import threading

import psycopg2

from .case import insert_event
from .postgres import Database

MAX_ROWS = 50000


class Writer(threading.Thread):
    """Commits transactions of 1..max_rows_per_txn rows on its own connection until told to stop.

    events: (id, topic, payload) of every committed row, in commit order.
    """

    def __init__(self, pg, dbname, max_rows_per_txn=5):
        super().__init__(daemon=True)
        self.db = Database(pg, dbname)
        self.max_rows_per_txn = max_rows_per_txn
        self.events = []
        self.error = None
        self._target = MAX_ROWS
        self._lock = threading.Lock()

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

    def run(self):
        txn = 0
        try:
            while not self._done():
                self._write_transaction(txn)
                txn += 1
        except psycopg2.Error as e:
            self.error = e

    def _write_transaction(self, txn):
        rows = txn % self.max_rows_per_txn + 1
        with self.db.transaction() as cur:
            batch = [insert_event(cur, "order", str(txn % 13), "written",
                                  json.dumps({"txn": txn, "row": i})) for i in range(rows)]
        with self._lock:
            self.events.extend(batch)
