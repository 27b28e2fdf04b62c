#!/usr/bin/python3
"""doc/design.md §22.3, retention: routes[].cleanup and delivery.dead_letter_retention.

With cleanup: delete the relay deletes a row once its event is acknowledged, in the
transaction of the checkpoint that covers it: under a steady insert load the table stays
small, every event is received, and a kill -9 at any moment never has deleted a row whose
event the subscriber has not received. A table that cannot tell its rows apart, or that
the relay may not delete from, stops the relay with status 78. Dead letters of the relay's
slot older than the retention are deleted, in batches; newer ones and other slots' stay.

Sizes: about 1,000 rows/s for 20 s (CI); OUTBOX_RETENTION_SECONDS lengthens the load.
"""

import os
import random
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import event_id  # noqa: E402
from harness.util import wait_until  # noqa: E402

RATE = 1000                 # rows a second
LOAD_S = float(os.environ.get("OUTBOX_RETENTION_SECONDS", "20"))
ROWS_PER_TXN = 10
CHECKPOINT_INTERVAL = "200ms"
MAX_INFLIGHT = 1000
# What the table may hold at any moment: rows not yet published and acknowledged (at most
# the in-flight window, and what the relay has not read yet), plus those acknowledged since
# the last checkpoint (about checkpoint_interval x RATE). A few batches of 1,000; a table
# that is never cleaned up passes it in 3 s.
TABLE_BOUND = 3000
KILLS = 5
DEAD_LETTER_BATCH = 10000   # bookkeeping.h

INSERT = ("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
          " SELECT 'order', (g %% 13)::text, 'placed', jsonb_build_object('g', g)"
          " FROM generate_series(1, %s) g RETURNING id")


class LoadWriter(threading.Thread):
    """Inserts ROWS_PER_TXN rows a transaction at RATE rows a second on its own connection,
    for seconds; ids: the ids of every committed row, in commit order."""

    def __init__(self, pg, dbname, seconds):
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(pg.conninfo(dbname))
        self.seconds = seconds
        self.ids = []
        self.error = None
        self._lock = threading.Lock()

    def committed(self):
        with self._lock:
            return list(self.ids)

    def run(self):
        start = time.monotonic()
        try:
            while time.monotonic() - start < self.seconds:
                with self.conn.cursor() as cur:
                    cur.execute(INSERT, (ROWS_PER_TXN,))
                    ids = [row[0] for row in cur.fetchall()]
                self.conn.commit()
                with self._lock:
                    self.ids.extend(ids)
                ahead = len(self.ids) / RATE - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except psycopg2.Error as e:
            self.error = e
        finally:
            self.conn.close()

    def finish(self, timeout=LOAD_S + 60):
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("the writer did not finish")
        if self.error:
            raise self.error


class TableSampler(threading.Thread):
    """Counts the rows of public.outbox every interval until stopped; peak: the most seen."""

    def __init__(self, pg, dbname, interval=0.1):
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(pg.conninfo(dbname))
        self.conn.autocommit = True
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self):
        try:
            while not self._done.wait(self.interval):
                with self.conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM public.outbox")
                    self.peak = max(self.peak, cur.fetchone()[0])
                self.samples += 1
        finally:
            self.conn.close()

    def finish(self):
        self._done.set()
        self.join(10)


class RetentionTest(harness.IntegrationCase):

    def cleanup_relay(self, db, **overrides):
        route = dict(harness.default_route(), cleanup="delete")
        return self.new_relay(db, routes=[route], broker={"max_inflight": MAX_INFLIGHT},
                              delivery={"checkpoint_interval": CHECKPOINT_INTERVAL}, **overrides)

    def start_load(self, db, seconds=LOAD_S):
        writer = LoadWriter(self.pg, db.name, seconds)
        writer.start()
        self.addCleanup(writer.join, 5)
        sampler = TableSampler(self.pg, db.name)
        sampler.start()
        self.addCleanup(sampler.finish)
        return writer, sampler

    def assert_deleted_were_received(self, db, writer, rec):
        """Every row gone from the table had its event received by the subscriber. The
        writer's ids are read first: a row committed later cannot pass for a deleted one."""
        committed = writer.committed()
        present = {row[0] for row in db.query("SELECT id FROM public.outbox")}
        received = set(rec.sync())
        deleted = [i for i in committed if i not in present]
        unreceived = [i for i in deleted if str(i) not in received]
        self.assertEqual(unreceived[:10], [], f"{len(unreceived)} of {len(deleted)} deleted rows"
                                              " never reached the subscriber")
        return len(deleted)

    def published(self, db):
        checkpoint = self.checkpoint(db)
        return checkpoint["published"] if checkpoint else 0

    def test_cleanup_keeps_the_table_small_under_load(self):
        db = self.new_database()
        rec = self.start_recorder(transform=event_id)
        relay = self.cleanup_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer, sampler = self.start_load(db)
        writer.finish()
        committed = writer.committed()
        wait_until(lambda: {str(i) for i in committed} <= set(rec.messages), 120,
                   f"all {len(committed)} events", check=relay.check_running)
        wait_until(lambda: db.scalar("SELECT count(*) FROM public.outbox") == 0, 30,
                   "the last rows to be deleted", check=relay.check_running)
        sampler.finish()
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        sys.stderr.write(f"cleanup under load: {len(committed)} rows in {LOAD_S:.0f}s, table at"
                         f" most {sampler.peak} rows over {sampler.samples} samples\n")
        self.assertGreater(sampler.samples, LOAD_S * 5, "the table was sampled throughout")
        self.assertLess(sampler.peak, TABLE_BOUND)
        self.assertEqual(sorted(set(messages)), sorted(str(i) for i in committed))
        self.assertEqual(len(messages), len(committed), "nothing published twice")
        self.assertEqual(self.checkpoint(db)["published"], len(committed))
        self.assertNotIn("level=error", relay.stderr())

    def test_kill9_never_deletes_an_unreceived_row(self):
        rng = random.Random(os.environ.get("OUTBOX_FAULT_SEED") or None)
        db = self.new_database()
        rec = self.start_recorder(transform=event_id)
        relay = self.cleanup_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer, sampler = self.start_load(db)
        deleted = []
        for kill in range(KILLS):
            time.sleep(LOAD_S / (KILLS + 1) * rng.uniform(0.7, 1.3))
            relay.check_running()
            relay.kill()
            deleted.append(self.assert_deleted_were_received(db, writer, rec))
            relay.start()
        writer.finish()
        committed = writer.committed()
        # Received is not enough: what a killed run published past its checkpoint is
        # published again, and only then deleted.
        wait_until(lambda: self.published(db) == len(committed), 120,
                   f"the checkpoint to cover all {len(committed)} events",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        sampler.finish()
        deleted.append(self.assert_deleted_were_received(db, writer, rec))
        sys.stderr.write(f"kill -9 with cleanup: {len(committed)} rows, deleted at each kill"
                         f" {deleted[:-1]}, table at most {sampler.peak} rows\n")
        self.assertGreater(deleted[-2], 0, "rows were deleted before the last kill")
        self.assertEqual(db.scalar("SELECT count(*) FROM public.outbox"), 0,
                         "the final checkpoint deleted the rest")
        self.assertEqual(set(rec.messages), {str(i) for i in committed}, "nothing lost")

    def test_dead_letters_past_the_retention_are_deleted(self):
        db = self.new_database()
        relay = self.new_relay(db, delivery={"dead_letter_retention": "0s"})
        self.assertEqual(relay.run("--drain"), 0, "creates the bookkeeping tables")
        old = 3 * DEAD_LETTER_BATCH + 500    # more than one run's batches
        db.execute("INSERT INTO outbox_relay.dead_letter (slot_name, event_id, reason, created_at)"
                   " SELECT %s, 'old-' || g, 'test', now() - interval '2 days' - g * interval '1 s'"
                   " FROM generate_series(1, %s) g", (self.name, old))
        db.execute("INSERT INTO outbox_relay.dead_letter (slot_name, event_id, reason, created_at)"
                   " SELECT %s, 'recent-' || g, 'test', now() - interval '23 hours'"
                   " FROM generate_series(1, 10) g", (self.name,))
        db.execute("INSERT INTO outbox_relay.dead_letter (slot_name, event_id, reason, created_at)"
                   " SELECT 'other_slot', 'other-' || g, 'test', now() - interval '2 days'"
                   " FROM generate_series(1, 10) g")

        def left(prefix):
            return db.scalar("SELECT count(*) FROM outbox_relay.dead_letter WHERE event_id LIKE %s",
                             (prefix + "%",))

        relay = self.new_relay(db, name=f"{self.name}_1d", delivery={"dead_letter_retention": "1d"})
        relay.start()
        wait_until(lambda: left("old-") == 0, 60, "old dead letters to be deleted",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(left("recent-"), 10, "dead letters within the retention stay")
        self.assertEqual(left("other-"), 10, "other slots' dead letters stay")
        counts = [int(line.split("deleted=")[1].split()[0]) for line in relay.stderr().splitlines()
                  if "dead letters past delivery.dead_letter_retention deleted" in line]
        self.assertEqual(sum(counts), old, relay.stderr())
        self.assertGreater(len(counts), 1, "a run takes a few batches, then lets the loop go on")
        self.assertTrue(all(c <= 3 * DEAD_LETTER_BATCH for c in counts), counts)

    def test_cleanup_needs_a_key_and_the_delete_privilege(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.heap (LIKE public.outbox)")
        db.execute("CREATE TABLE public.full_identity (LIKE public.outbox INCLUDING ALL)")
        db.execute("ALTER TABLE public.full_identity REPLICA IDENTITY FULL")
        cases = (("heap", "needs a primary key to tell rows apart, and public.heap has none"),
                 ("full_identity", "public.full_identity has REPLICA IDENTITY FULL"))
        for table, why in cases:
            with self.subTest(table):
                route = dict(harness.default_route(f"public.{table}"), cleanup="delete")
                relay = self.new_relay(db, name=f"{self.name}_{table}", routes=[route])
                self.assertEqual(relay.run(), 78)
                self.assertIn("routes[0].cleanup: delete", relay.stderr())
                self.assertIn(why, relay.stderr())

        db.execute("CREATE ROLE no_delete LOGIN REPLICATION")
        db.execute("GRANT SELECT ON public.outbox TO no_delete")
        db.execute(f"GRANT CREATE ON DATABASE {db.name} TO no_delete")
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user=no_delete"
        route = dict(harness.default_route(), cleanup="delete")
        relay = self.new_relay(db, name=f"{self.name}_priv", routes=[route],
                               source={"conninfo": conninfo})
        self.assertEqual(relay.run(), 78)
        errors = [line for line in relay.stderr().splitlines() if "level=error" in line]
        self.assertEqual(len(errors), 1, relay.stderr())
        self.assertIn('cause="a privilege is missing"', errors[0])
        self.assertIn("permission denied for table outbox", errors[0])
        self.assertIn("cleanup: delete", errors[0])
        self.assertIn("role=no_delete", errors[0])


if __name__ == "__main__":
    harness.main()
