#!/usr/bin/python3
"""SIGTERM while rows keep coming: exit 0; after a restart every event arrives exactly once."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import expected, received  # noqa: E402

BEFORE_STOP = 300       # messages seen before SIGTERM: the stream is well under way
AFTER_STOP = 1000       # rows written while the relay is down


class SigtermRestartTest(harness.IntegrationCase):

    def test_sigterm_mid_stream_then_restart_loses_and_repeats_nothing(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer = harness.Writer(self.pg, db.name)
        self.addCleanup(writer.stop_after, 0)
        writer.start()

        rec.wait_for_count(BEFORE_STOP, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0, "clean stop on SIGTERM")
        self.assertTrue(writer.is_alive(), "rows were still being written at SIGTERM")
        checkpoint = self.checkpoint(db)
        self.assertIsNotNone(checkpoint, "a checkpoint row after a clean stop")
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))

        writer.stop_after(AFTER_STOP)
        writer.finish()
        first_run = len(rec.sync())
        self.assertLess(first_run, len(writer.events))

        relay.start()
        rec.wait_for_count(len(writer.events), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        self.assertEqual(received(messages), expected(writer.events))


if __name__ == "__main__":
    harness.main()
