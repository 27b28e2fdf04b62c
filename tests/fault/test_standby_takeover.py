#!/usr/bin/python3
"""A second relay started with the same configuration file (same slot, same client id)
while the first streams: doc/design.md §2.8.

The second one waits as a standby, says so once (not once per retry), stays off the broker
(it would take the first one's session over: same client id), and takes over when the
first stops: after SIGTERM with nothing lost or repeated; after kill -9 with nothing lost
and repeats bounded as in test_kill9.

Sizes: default 3,000 events; OUTBOX_FAULT_FULL=1: 20,000. The stream mixes single-row and
2..20-row transactions, rolled-back ones and one larger transaction (500; 5,000 rows).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import FaultCase, Positions, log_lines, make_plan, seeded_random, size  # noqa: E402
import harness  # noqa: E402
from harness.util import wait_until  # noqa: E402

EVENTS = size(3000, 20000)
LARGE = size(500, 5000)
RATE = size(1000, 2000)
MAX_INFLIGHT = 100
STANDBY_NOTE = "in use by another process"
RETRIES_WATCHED_S = 3.5     # the standby asks for the slot every second


class StandbyTakeoverTest(FaultCase):

    def broker_sessions(self, client_id):
        """How many times client_id connected to the broker so far."""
        with open(self.mqtt.log_path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if f" as {client_id} " in line)

    def start_pair(self):
        rng = seeded_random(self.id())
        db = self.new_database()
        rec = self.start_compact_recorder()
        first = self.new_relay(db, name="first", broker={"max_inflight": MAX_INFLIGHT}).start()
        first.wait_for_slot(db, self.name)
        writer = self.start_writer(db, make_plan(rng, EVENTS, LARGE), RATE)
        rec.wait_for_count(EVENTS // 10, timeout=300, check=first.check_running)

        second = harness.Relay(self.workdir, "second", config_file=first.config_path)
        self.addCleanup(second.kill)
        self.addCleanup(lambda: None if self._passed() else second.print_log())
        second.start()
        wait_until(lambda: log_lines(second, STANDBY_NOTE), 30, "the second relay to wait",
                   check=second.check_running)
        time.sleep(RETRIES_WATCHED_S)
        self.assertTrue(first.running() and second.running())
        self.assertEqual(len(log_lines(second, STANDBY_NOTE)), 1, "the standby says so once")
        self.assertEqual(log_lines(second, "level=(warn|error)"), [])
        client_id = f"outbox-relay-{self.name}"
        self.assertEqual(self.broker_sessions(client_id), 1,
                         "the standby stays off the broker while it does not hold the slot")
        self.assertEqual(log_lines(first, "disconnected from broker|broker connection lost"), [],
                         "the active relay keeps its broker session")
        return db, rec, writer, first, second

    def finish(self, db, rec, writer, second, marks):
        wait_until(lambda: log_lines(second, "taking over"), 60, "the standby to take over",
                   check=second.check_running)
        writer.finish()
        self.wait_for_distinct(rec, writer.total, check=second.check_running)
        self.assertEqual(second.terminate(), 0)
        messages = rec.sync()
        duplicates = self.verify_stream(messages, writer, db.name)
        self.verify_runs(messages, writer, marks)
        self.assertEqual(self.checkpoint(db)["published"], writer.total)
        return messages, duplicates

    # While the first relay stops and what it left is read, the second is held with
    # SIGSTOP, so that its takeover cannot race the accounting; it goes on with SIGCONT.

    def test_standby_takes_over_after_sigterm(self):
        db, rec, writer, first, second = self.start_pair()
        os.kill(second.proc.pid, signal.SIGSTOP)
        self.assertEqual(first.terminate(), 0)
        messages = rec.sync()
        pos = Positions(writer)
        pos.learn(messages)
        cp_index = pos.checkpoint_index(self.checkpoint(db))
        self.assertEqual(len(messages), cp_index + 1, "a clean stop checkpoints all it sent")
        os.kill(second.proc.pid, signal.SIGCONT)
        _, duplicates = self.finish(db, rec, writer, second, [(0, -1), (len(messages), cp_index)])
        self.assertEqual(len(duplicates), 0)

    def test_standby_takes_over_after_kill9(self):
        db, rec, writer, first, second = self.start_pair()
        marks = [(0, -1)]
        os.kill(second.proc.pid, signal.SIGSTOP)
        overlap = self.kill9(first, rec, db, writer, marks, MAX_INFLIGHT, 0.2)
        os.kill(second.proc.pid, signal.SIGCONT)
        _, duplicates = self.finish(db, rec, writer, second, marks)
        self.assertLessEqual(len(duplicates), overlap)


if __name__ == "__main__":
    harness.main()
