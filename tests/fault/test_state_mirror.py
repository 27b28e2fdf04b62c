#!/usr/bin/python3
"""doc/design.md §23: a table mirrored to retained topics stays exact across faults.

A table of 10,000 rows, one retained topic per row (`changes: [insert, update, delete]`,
`retain: true`, the topic from the primary key). Four writers make a random mix of
inserts, updates, key changes (UPDATE ... SET id = ...) and deletes, in single- and
multi-statement transactions, some rolled back; in the middle the relay is killed with
SIGKILL and started again, and later the broker (persistence on) is restarted. At the end a
fresh subscriber's retained view, topic by topic, equals SELECT of the table exactly.

Sizes: 10,000 operations by default; OUTBOX_FAULT_FULL=1: 50,000.
"""

import json
import os
import random
import sys
import threading
import time

import psycopg2
import psycopg2.errors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import FaultCase, parse_lsn, seeded_random, size, wait_until  # noqa: E402
import harness  # noqa: E402
from harness.mosquitto import PERSISTENCE_CONFIG, prepare_persistence  # noqa: E402

ROWS = 10000
OPERATIONS = size(10000, 50000)
WRITERS = 4
DURATION_S = size(15, 40)           # the writers' pace: the faults fall inside the stream
NEW_IDS = 1000000                   # ids given by inserts and key changes start here
BROKER_AWAY_S = 2

DDL = """
CREATE TABLE public.mirror (id bigint PRIMARY KEY, v bigint NOT NULL, w integer);
CREATE SEQUENCE public.mirror_ids START {start};
""".format(start=NEW_IDS)

# The row to change: the first at or after a random id (none: the statement does nothing).
PICK = "(SELECT id FROM public.mirror WHERE id >= %(pivot)s ORDER BY id LIMIT 1)"
STATEMENTS = {
    "insert": "INSERT INTO public.mirror VALUES (nextval('public.mirror_ids'), %(v)s, %(w)s)",
    "update": "UPDATE public.mirror SET v = v + %(v)s, w = %(w)s WHERE id = " + PICK,
    "key": "UPDATE public.mirror SET id = nextval('public.mirror_ids') WHERE id = " + PICK,
    "delete": "DELETE FROM public.mirror WHERE id = " + PICK,
}
WEIGHTS = {"insert": 25, "update": 40, "key": 10, "delete": 25}


class Writer(threading.Thread):
    """Makes its share of the operations, paced, on its own connection."""

    def __init__(self, pg, dbname, rng, operations, counter):
        super().__init__(daemon=True)
        self.pg, self.dbname, self.rng = pg, dbname, rng
        self.operations = operations
        self.counter = counter
        self.stats = {"committed": 0, "rolled_back": 0, "conflicts": 0}
        self.error = None

    def run(self):
        try:
            conn = psycopg2.connect(self.pg.conninfo(self.dbname))
            start, done = time.monotonic(), 0
            kinds = list(WEIGHTS)
            while done < self.operations:
                n = 1 if self.rng.random() < 0.6 else self.rng.randint(2, 4)
                n = min(n, self.operations - done)
                ops = self.rng.choices(kinds, [WEIGHTS[k] for k in kinds], k=n)
                self.transaction(conn, ops, commit=self.rng.randrange(10) != 0)
                done += n
                self.counter.add(n)
                ahead = done / (self.operations / DURATION_S) - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            conn.close()
        except Exception as e:  # reported by finish()
            self.error = e

    def transaction(self, conn, ops, commit):
        try:
            with conn.cursor() as cur:
                for op in ops:
                    cur.execute(STATEMENTS[op], self.params())
            if commit:
                conn.commit()
                self.stats["committed"] += 1
            else:
                conn.rollback()
                self.stats["rolled_back"] += 1
        except (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure):
            conn.rollback()   # two writers on the same rows: the transaction did nothing
            self.stats["conflicts"] += 1

    def params(self):
        top = NEW_IDS + self.counter.value
        pivot = (self.rng.randint(1, ROWS) if self.rng.random() < 0.5
                 else self.rng.randint(NEW_IDS, top))
        w = None if self.rng.random() < 0.2 else self.rng.randint(-1000, 1000)
        return {"pivot": pivot, "v": self.rng.randint(1, 9), "w": w}

    def finish(self, timeout=600):
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("a writer did not finish")
        if self.error:
            raise self.error


class Counter:
    def __init__(self):
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n):
        with self._lock:
            self.value += n


def retained_entry(msg):
    """The recorder's transform: what the comparison needs."""
    return msg["topic"], msg.get("payload"), msg["retain"]


class StateMirrorTest(FaultCase):
    mosquitto_config = PERSISTENCE_CONFIG

    @classmethod
    def prepare_files(cls):
        prepare_persistence(cls.workdir)

    def expected(self, db):
        return {f"mirror/{i}": {"id": i, "v": v, "w": w}
                for i, v, w in db.query("SELECT id, v, w FROM public.mirror")}

    def retained(self):
        """A fresh subscriber's view: topic -> row of every retained message."""
        rec = self.start_recorder(filters=("mirror/#",), transform=retained_entry)
        entries = rec.sync(timeout=300)
        rec.stop()
        view = {}
        for topic, payload, retain in entries:
            self.assertTrue(retain, f"{topic}: a live message reached the fresh subscriber")
            self.assertNotIn(topic, view, f"{topic}: retained twice")
            view[topic] = json.loads(payload)
        return view

    def wait_caught_up(self, db, relay):
        """Every change committed so far is acknowledged, checkpointed and confirmed."""
        target = parse_lsn(db.scalar("SELECT pg_current_wal_insert_lsn()::text"))
        wait_until(lambda: parse_lsn(self.slot_confirmed(db) or "0/0") >= target, 600,
                   "the relay to confirm everything written", check=relay.check_running,
                   interval=0.2)

    def test_retained_view_equals_the_table_after_kill_and_broker_restart(self):
        rng = seeded_random(self.id())
        db = self.new_database()
        db.execute(DDL)
        route = {"table": "public.mirror", "topic": "mirror/{id}", "payload": "row",
                 "retain": True, "qos": 1, "changes": ["insert", "update", "delete"]}
        relay = self.new_relay(db, routes=[route], broker={"max_inflight": 200})
        relay.start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.mirror SELECT g, g %% 7, g %% 100"
                        " FROM generate_series(1, %s) AS g", (ROWS,))

        counter = Counter()
        writers = [Writer(self.pg, db.name, random.Random(rng.getrandbits(64)),
                          OPERATIONS // WRITERS, counter) for _ in range(WRITERS)]
        for w in writers:
            w.start()
            self.addCleanup(w.join, 60)

        def reached(fraction):
            wait_until(lambda: counter.value >= OPERATIONS * fraction, 600,
                       f"{fraction:.0%} of the operations", check=relay.check_running)

        reached(rng.uniform(0.25, 0.4))
        relay.kill()
        self.assertEqual(relay.proc.returncode, -9, "the relay died of SIGKILL")
        relay.start()
        relay.wait_for_slot(db, self.name)

        reached(rng.uniform(0.6, 0.75))
        self.mqtt.stop()
        time.sleep(BROKER_AWAY_S)
        self.mqtt.start()

        for w in writers:
            w.finish()
        self.wait_caught_up(db, relay)
        self.assertEqual(relay.terminate(), 0)
        stats = {k: sum(w.stats[k] for w in writers) for k in writers[0].stats}
        sys.stderr.write(f"operations: {counter.value}, transactions: {stats},"
                         f" rows at the end: {db.scalar('SELECT count(*) FROM public.mirror')}\n")
        self.assertIn("disconnected from broker", relay.stderr())

        expected = self.expected(db)
        view = self.retained()
        missing = sorted(set(expected) - set(view))
        stale = sorted(set(view) - set(expected))
        wrong = sorted(t for t in set(view) & set(expected) if view[t] != expected[t])
        self.assertEqual((missing[:5], stale[:5], wrong[:5]), ([], [], []),
                         f"{len(missing)} rows without a retained message, {len(stale)} retained"
                         f" messages without a row, {len(wrong)} that differ from their row")
        self.assertEqual(len(view), len(expected))
        self.assertEqual(db.scalar("SELECT count(*) FROM outbox_relay.dead_letter"), 0)


if __name__ == "__main__":
    harness.main()
