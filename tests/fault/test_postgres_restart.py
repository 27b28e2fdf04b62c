#!/usr/bin/python3
"""PostgreSQL restarted mid-stream, `-m fast` and `-m immediate`: nothing lost, nothing twice.

doc/design.md §2.2/§2.4: the relay waits out the outage, reconnects with backoff, and resumes. After
an immediate stop the server recovers the slot from its last checkpoint and may send older
transactions again: the relay skips them by its own bookkeeping, so the subscriber sees
every committed event exactly once, in commit order.

The writer is held between transactions while the server is down, so no commit is ever in
doubt; it writes faster than the relay publishes, so the restart lands mid-stream.

Sizes: default 4,000 events, two restarts per mode; OUTBOX_FAULT_FULL=1: 20,000 events,
two restarts per mode. One larger transaction of 1,000 rows (5,000 at full size).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import FaultCase, make_plan, seeded_random, size, wait_until  # noqa: E402
import harness  # noqa: E402

EVENTS = size(4000, 20000)
LARGE = size(1000, 5000)
RESTARTS_AT = (0.3, 0.65)     # fractions of the stream written when the server restarts


class PostgresRestartTest(FaultCase):

    def restart_mid_stream(self, mode):
        rng = seeded_random(self.id())
        db = self.new_database()
        rec = self.start_compact_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer = self.start_writer(db, make_plan(rng, EVENTS, LARGE))

        for restart, fraction in enumerate(RESTARTS_AT):
            # The writer outruns the relay: the server restarts with a backlog to send.
            wait_until(lambda: writer.committed_rows >= EVENTS * fraction or not writer.is_alive(),
                       300, "the writer", check=relay.check_running)
            writer.pause()
            backlog = writer.committed_rows - rec.count()
            self.pg.restart(mode)
            sys.stderr.write(f"{mode} restart with {backlog} committed events not yet received\n")
            db.reconnect()
            writer.resume()
            # Streaming again before the next fault.
            wait_until(lambda: len(harness_lines(relay, "replication started")) == restart + 2,
                       120, "the relay to stream again", check=relay.check_running)

        writer.finish()
        self.wait_for_distinct(rec, writer.total, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        self.assertEqual(relay.runs, 1, "one relay process throughout")
        self.assertEqual(len(harness_lines(relay, "replication started")), len(RESTARTS_AT) + 1,
                         "the relay reconnected once per restart")
        duplicates = self.verify_stream(messages, writer, db.name)
        self.assertEqual(len(duplicates), 0,
                         f"{len(duplicates)} duplicates after a {mode} restart: {duplicates[:3]}")
        self.verify_runs(messages, writer, [(0, -1)])
        checkpoint = self.checkpoint(db)
        self.assertEqual(checkpoint["published"], writer.total)
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))

    def test_fast_restart(self):
        self.restart_mid_stream("fast")

    def test_immediate_restart(self):
        self.restart_mid_stream("immediate")


def harness_lines(relay, text):
    return [line for line in relay.stderr().splitlines() if text in line]


if __name__ == "__main__":
    harness.main()
