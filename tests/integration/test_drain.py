#!/usr/bin/python3
"""--drain publishes a backlog once, checkpoints where the slot is confirmed, and exits 0."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import expected, insert_event, received  # noqa: E402


QOS0_BACKLOG = 50000


class DrainTest(harness.IntegrationCase):

    def write_backlog(self, db, transactions=100, rows=10):
        events = []
        for t in range(transactions):
            commit = t % 10 != 9
            with db.transaction(commit) as cur:
                batch = [insert_event(cur, "order", str(t), "placed", json.dumps({"t": t, "r": r}))
                         for r in range(rows)]
            if commit:
                events.extend(batch)
        return events

    def assert_checkpoint_matches_slot(self, db):
        checkpoint = self.checkpoint(db)
        self.assertIsNotNone(checkpoint, "the relay wrote its checkpoint row")
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))

    def test_drain_publishes_backlog_once(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db)
        self.assertEqual(relay.run("--drain"), 0, "first drain: creates the slot, nothing to send")
        self.assertEqual(rec.sync(), [])

        backlog = self.write_backlog(db)
        self.assertEqual(relay.run("--drain"), 0)
        messages = rec.sync()
        self.assertEqual(received(messages), expected(backlog))
        self.assert_checkpoint_matches_slot(db)

        self.assertEqual(relay.run("--drain"), 0, "drain with nothing new")
        self.assertEqual(rec.sync(), messages, "nothing published again")
        self.assert_checkpoint_matches_slot(db)

        with db.transaction() as cur:
            marker = insert_event(cur, "order", "marker", "placed", '{"marker": true}')
        self.assertEqual(relay.run("--drain"), 0)
        self.assertEqual(received(rec.sync()), expected(backlog + [marker]))
        self.assert_checkpoint_matches_slot(db)

    def test_qos0_drain_of_a_large_backlog_ends(self):
        """At QoS 0 the client reports a message done once written; one publish call may
        write several queued ones at once, and every one of those reports counts."""
        db = self.new_database()
        route = dict(harness.default_route(), qos=0)
        rec = self.start_recorder(qos=0)
        relay = self.new_relay(db, routes=[route])
        self.assertEqual(relay.run("--drain"), 0)
        db.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                   " SELECT 'order', (g %% 97)::text, 'placed', jsonb_build_object('note', repeat('x', 150))"
                   " FROM generate_series(1, %s) g", (QOS0_BACKLOG,))
        self.assertEqual(relay.run("--drain", timeout=120), 0)
        self.assertEqual(self.checkpoint(db)["published"], QOS0_BACKLOG)
        self.assert_checkpoint_matches_slot(db)
        self.assertGreater(len(rec.sync()), 0)


if __name__ == "__main__":
    harness.main()
