#!/usr/bin/python3
"""doc/design.md §4: the keys that shape the relay's sessions and bookkeeping, each observed where
it shows — in the broker's log, the server's views, the bookkeeping tables, the stats.

source.create_slot, source.status_interval, broker.client_id, broker.keepalive,
broker.max_inflight, delivery.bookkeeping_schema, delivery.create_bookkeeping,
delivery.checkpoint_interval, delivery.drain_timeout.
"""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.util import wait_until  # noqa: E402


class OperationalKeysTest(harness.IntegrationCase):

    def insert(self, db, n, first=0):
        with db.transaction() as cur:
            return [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i}))
                    for i in range(first, first + n)]

    def broker_paused(self):
        """Freezes the broker (SIGSTOP) for a with-block: nothing gets acknowledged."""
        test = self

        class Paused:
            def __enter__(self):
                os.kill(test.mqtt.proc.pid, signal.SIGSTOP)

            def __exit__(self, *exc):
                os.kill(test.mqtt.proc.pid, signal.SIGCONT)
        return Paused()

    def stats(self, relay):
        """Asks for a stats line (SIGUSR1) and returns its fields."""
        before = relay.stderr().count("msg=stats")
        relay.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: relay.stderr().count("msg=stats") > before, 30, "a stats line",
                   check=relay.check_running)
        line = [x for x in relay.stderr().splitlines() if "msg=stats" in x][-1]
        return dict(re.findall(r"(\w+)=(\S+)", line))

    def test_client_id_and_keepalive_reach_the_broker(self):
        db = self.new_database()
        relay = self.new_relay(db, broker={"client_id": "relay-under-test-7", "keepalive": "45s"})
        relay.start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "relay-under-test-7" in harness.util.tail(self.mqtt.log_path, 50), 30,
                   "the broker to log the client")
        self.assertEqual(relay.terminate(), 0)
        with open(self.mqtt.log_path) as f:
            line = [x for x in f if "as relay-under-test-7" in x][-1]
        self.assertIn("k45", line)      # Mosquitto logs the keepalive as k<seconds>
        self.assertIn("p5", line)       # and the protocol as p<level>

    def test_create_slot_false_never_creates_one(self):
        db = self.new_database()
        relay = self.new_relay(db, source={"create_slot": False})
        self.assertEqual(relay.run(), 1)
        self.assertRegex(relay.stderr(), r"level=error .*slot")
        self.assertIsNone(self.slot_confirmed(db))

    def test_status_interval_paces_standby_updates(self):
        db = self.new_database()
        relay = self.new_relay(db, source={"status_interval": "200ms"}).start()
        relay.wait_for_slot(db, self.name)

        def reply_time():
            return db.scalar("SELECT reply_time FROM pg_stat_replication WHERE pid ="
                             " (SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s)",
                             (self.name,))
        wait_until(lambda: reply_time() is not None, 30, "a first status update",
                   check=relay.check_running)
        first = reply_time()
        # Nothing happens on the stream: only the interval makes the relay speak (the
        # server asks for a reply only every wal_sender_timeout / 2, 30 s here).
        wait_until(lambda: (reply_time() - first).total_seconds() >= 0.6, 30,
                   "three status updates", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)

    def test_max_inflight_bounds_unacknowledged_messages(self):
        db = self.new_database()
        relay = self.new_relay(db, broker={"max_inflight": 2}).start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready")
        with self.broker_paused():
            self.insert(db, 10)
            time.sleep(1)
            self.assertEqual(self.stats(relay)["pending"], "2")
        rec = self.start_recorder()
        rec.sync()
        wait_until(lambda: self.stats(relay)["published"] == "10", 30, "all ten acknowledged")
        self.assertEqual(relay.terminate(), 0)

    def test_drain_timeout_bounds_the_wait_for_acknowledgements(self):
        db = self.new_database()
        relay = self.new_relay(db, delivery={"drain_timeout": "500ms"}).start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready")
        with self.broker_paused():
            self.insert(db, 3)
            wait_until(lambda: self.stats(relay)["pending"] == "3", 30, "three in flight")
            self.assertEqual(relay.terminate(timeout=20), 0)
        self.assertIn("unacknowledged=3", relay.stderr())
        checkpoint = self.checkpoint(db)
        self.assertTrue(checkpoint is None or checkpoint["published"] == 0, checkpoint)

    def test_a_second_signal_stops_without_waiting(self):
        db = self.new_database()
        relay = self.new_relay(db, delivery={"drain_timeout": "1h"}).start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready")
        with self.broker_paused():
            self.insert(db, 3)
            wait_until(lambda: self.stats(relay)["pending"] == "3", 30, "three in flight")
            relay.proc.send_signal(signal.SIGINT)
            wait_until(lambda: "waiting for in-flight acknowledgements" in relay.stderr(), 30,
                       "the first stop request", check=relay.check_running)
            relay.proc.send_signal(signal.SIGTERM)
            self.assertEqual(relay.wait(timeout=30), 0)     # not an hour
        self.assertIn("second stop request", relay.stderr())
        self.assertIn("unacknowledged=3", relay.stderr())

    def test_checkpoint_interval_spaces_checkpoint_writes(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, delivery={"checkpoint_interval": "1h"}).start()
        relay.wait_for_slot(db, self.name)
        self.insert(db, 1)
        wait_until(lambda: (self.checkpoint(db) or {}).get("published") == 1, 30,
                   "the first checkpoint")
        self.insert(db, 2, first=1)
        rec.wait_for_count(3)
        time.sleep(1)
        self.assertEqual(self.checkpoint(db)["published"], 1)   # next write is an hour away
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.checkpoint(db)["published"], 3)   # the final one at stop

    def test_bookkeeping_schema_and_create_bookkeeping(self):
        db = self.new_database()
        missing = self.new_relay(db, name="missing", delivery={
            "bookkeeping_schema": "relay_books", "create_bookkeeping": False})
        self.assertEqual(missing.run(), 1)
        self.assertIn("create_bookkeeping", missing.stderr())
        self.assertIsNone(db.scalar("SELECT nspname FROM pg_namespace WHERE nspname = 'relay_books'"))

        relay = self.new_relay(db, delivery={"bookkeeping_schema": "relay_books"}).start()
        relay.wait_for_slot(db, self.name)
        self.insert(db, 2)
        wait_until(lambda: db.scalar("SELECT published FROM relay_books.checkpoint"
                                     " WHERE slot_name = %s", (self.name,)) == 2, 30,
                   "the checkpoint in relay_books")
        self.assertEqual(relay.terminate(), 0)
        self.assertIsNone(db.scalar("SELECT nspname FROM pg_namespace WHERE nspname = 'outbox_relay'"))


if __name__ == "__main__":
    harness.main()
