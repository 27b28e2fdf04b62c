#!/usr/bin/python3
"""SIGTERM and restart, ten times during a stream: nothing lost, nothing published twice.

doc/design.md §2.4: a clean stop waits for the in-flight acknowledgements, writes the checkpoint and
confirms the same position to the slot, so the next run starts exactly after the last
event published. Checked after every stop (exit 0, checkpoint = slot, published = events
received) and over the whole stream (every run continues exactly where the last ended).

Sizes: default 5,000 events, 10 stops; OUTBOX_FAULT_FULL=1: 20,000 events, 10 stops. The
stream mixes single-row and 2..20-row transactions, rolled-back ones and one larger
transaction (1,000 rows; 5,000 at full size).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import FaultCase, Positions, make_plan, seeded_random, size  # noqa: E402
import harness  # noqa: E402

EVENTS = size(5000, 20000)
STOPS = 10
LARGE = size(1000, 5000)
RATE = size(1000, 2000)


class SigtermRestartsTest(FaultCase):

    def test_ten_sigterm_restarts_lose_and_repeat_nothing(self):
        rng = seeded_random(self.id())
        db = self.new_database()
        rec = self.start_compact_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer = self.start_writer(db, make_plan(rng, EVENTS, LARGE), RATE)

        thresholds = sorted(rng.sample(range(EVENTS // 20, EVENTS * 19 // 20), STOPS))
        marks = [(0, -1)]
        for stop, threshold in enumerate(thresholds):
            rec.wait_for_count(max(threshold, marks[-1][0] + 1), timeout=300,
                               check=relay.check_running)
            time.sleep(rng.uniform(0, 0.05))
            self.assertEqual(relay.terminate(), 0, f"stop {stop}: exit status of SIGTERM")
            messages = rec.sync()
            checkpoint = self.checkpoint(db)
            self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db),
                             f"stop {stop}: the slot is confirmed where the checkpoint says")
            pos = Positions(writer)
            pos.learn(messages)
            cp_index = pos.checkpoint_index(checkpoint)
            self.assertEqual(checkpoint["published"], cp_index + 1)
            self.assertEqual(len(messages), cp_index + 1,
                             f"stop {stop}: everything received is acknowledged and checkpointed")
            marks.append((len(messages), cp_index))
            relay.start()

        writer.finish()
        self.wait_for_distinct(rec, writer.total, check=relay.check_running)
        # Everything may have arrived before the last start: a SIGTERM before the relay has
        # set up its signal handling would kill it, which is not what this test is about.
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        duplicates = self.verify_stream(messages, writer, db.name)
        self.verify_runs(messages, writer, marks)
        self.assertEqual(len(duplicates), 0, f"duplicates after clean stops: {duplicates[:5]}")
        self.assertEqual(len(messages), writer.total)
        self.assertEqual(self.checkpoint(db)["published"], writer.total)


if __name__ == "__main__":
    harness.main()
