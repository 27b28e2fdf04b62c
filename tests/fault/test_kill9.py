#!/usr/bin/python3
"""kill -9 of the relay at random moments during a stream, restarting it each time.

doc/design.md §2.2/§2.4/§6: nothing lost; every restart resumes right after the checkpoint (the
first events of a partly published transaction included); duplicates only for events
acknowledged since the last checkpoint write or in flight at the kill, each with the same
event-id and payload; the checkpoint's published count matches its position.

Sizes: default 5,000 events and 6 kills; OUTBOX_FAULT_FULL=1: 50,000 events and 20
kills (the full-size numbers). The stream mixes single-row and 2..20-row transactions,
rolled-back ones, and one larger transaction (1,000 rows; 5,000 at full size), and is
paced so that each run lives a few seconds before its kill.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import FaultCase, kill_grace, make_plan, seeded_random, size  # noqa: E402
import harness  # noqa: E402

EVENTS = size(5000, 50000)
KILLS = size(6, 20)
LARGE = size(1000, 5000)
MAX_INFLIGHT = 100             # a small window keeps the duplicate bound tight
CHECKPOINT_INTERVAL = 0.2      # seconds; delivery.checkpoint_interval below
# Each run lives at least this long before it is killed, so that the bound of
# FaultCase.kill9 (events older than interval + grace must be checkpointed) has teeth:
# a relay that never checkpointed would have far more than MAX_INFLIGHT such events.
MIN_RUN_S = CHECKPOINT_INTERVAL + kill_grace() + 1.0
RUN_S = MIN_RUN_S + 0.5
RATE = EVENTS / ((KILLS + 1) * RUN_S)   # rows/s: the stream lasts through every kill


class Kill9Test(FaultCase):

    def test_kill9_at_random_moments_loses_nothing(self):
        rng = seeded_random(self.id())
        db = self.new_database()
        rec = self.start_compact_recorder()
        relay = self.new_relay(db, broker={"max_inflight": MAX_INFLIGHT},
                               delivery={"checkpoint_interval": f"{int(CHECKPOINT_INTERVAL * 1000)}ms"})
        relay.start()
        relay.wait_for_slot(db, self.name)
        plan = make_plan(rng, EVENTS, LARGE)
        writer = self.start_writer(db, plan, RATE)

        # One kill at a random moment of each of KILLS + 1 equal parts of the stream.
        thresholds = [int(EVENTS * (k + 1 + rng.uniform(-0.3, 0.3)) / (KILLS + 1))
                      for k in range(KILLS)]
        marks = [(0, -1)]     # (first message of a run, checkpoint index it starts after)
        overlaps = []
        for threshold in thresholds:
            started = time.monotonic()
            # Past the threshold, and the new run has published something of its own.
            rec.wait_for_count(max(threshold, marks[-1][0] + 1), timeout=300,
                               check=relay.check_running)
            time.sleep(max(0.0, started + MIN_RUN_S - time.monotonic()) + rng.uniform(0, 0.05))
            overlaps.append(self.kill9(relay, rec, db, writer, marks, MAX_INFLIGHT,
                                       CHECKPOINT_INTERVAL))
            relay.start()

        writer.finish()
        self.wait_for_distinct(rec, writer.total, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0, "clean stop after the last restart")
        messages = rec.sync()
        sys.stderr.write(f"kills: {KILLS}, events: {writer.total}, messages: {len(messages)},"
                         f" overlaps per kill: {overlaps}\n")

        duplicates = self.verify_stream(messages, writer, db.name)
        self.verify_runs(messages, writer, marks)
        self.assertLessEqual(len(duplicates), sum(overlaps))
        self.assertEqual(len(messages), writer.total + len(duplicates))
        checkpoint = self.checkpoint(db)
        self.assertEqual(checkpoint["published"], writer.total)
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))


if __name__ == "__main__":
    harness.main()
