#!/usr/bin/python3
"""doc/design.md §8: what the stats line's numbers mean, observed against a real PostgreSQL and
Mosquitto. Idle and caught up reads 0 in both lags; a broker outage with events waiting
makes both grow, whether the events are in the relay's window or still in the WAL; once the
broker is back and everything is acknowledged they are 0 again; pending counts what was
received and not acknowledged; rate counts only this process's acknowledgements.

"Grows" compares two lines taken one after the other (SIGUSR1); no assertion depends on
how fast anything runs.
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

# A WAL record or two that the server wrote after its last keepalive (a checkpoint row, a
# running-transactions record): "small" for a relay that has caught up.
SMALL_LAG_BYTES = 16384


class StatsTest(harness.IntegrationCase):

    def insert(self, db, n, first=0):
        with db.transaction() as cur:
            return [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i}))
                    for i in range(first, first + n)]

    def stats(self, relay):
        """Asks for a stats line (SIGUSR1); returns its fields, numbers as numbers."""
        before = relay.stderr().count("msg=stats ")
        relay.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: relay.stderr().count("msg=stats ") > before, 30, "a stats line",
                   check=relay.check_running)
        line = [x for x in relay.stderr().splitlines() if "msg=stats " in x][-1]
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        for key in ("published", "dead_lettered", "pending", "lag_bytes", "lag_ms", "reconnects"):
            fields[key] = int(fields[key])
        fields["rate"] = float(fields["rate"])
        return fields

    def ready_relay(self, db, **overrides):
        overrides.setdefault("log", {"stats_interval": "1h"})   # lines on SIGUSR1 only
        relay = self.new_relay(db, **overrides).start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready",
                   check=relay.check_running)
        return relay

    def behind(self, relay):
        """Waits for a line with both lags above 0; returns it."""
        found = {}

        def check():
            found.update(self.stats(relay))
            return found["lag_ms"] > 0 and found["lag_bytes"] > 0
        wait_until(check, 30, "a line with both lags above 0", check=relay.check_running)
        return found

    def caught_up(self, relay, published):
        """Waits for a line with everything acknowledged and the WAL confirmed; returns it."""
        found = {}

        def check():
            found.update(self.stats(relay))
            return (found["published"] == published and found["pending"] == 0
                    and found["lag_ms"] == 0 and found["lag_bytes"] <= SMALL_LAG_BYTES)
        wait_until(check, 60, f"a caught-up line with {published} published",
                   check=relay.check_running)
        return found

    def test_idle_and_caught_up_reads_zero(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.ready_relay(db)
        self.insert(db, 5)
        rec.wait_for_count(5)
        self.caught_up(relay, 5)
        # Idle for a while: the lags stay 0 (lag_ms used to be the age of the newest
        # acknowledged commit, growing for as long as nothing was written).
        time.sleep(3)
        stats = self.stats(relay)
        self.assertEqual(stats["lag_ms"], 0, stats)
        self.assertEqual(stats["pending"], 0, stats)
        self.assertLessEqual(stats["lag_bytes"], SMALL_LAG_BYTES, stats)
        self.assertEqual(relay.terminate(), 0)

    def test_broker_down_with_events_in_the_wal(self):
        """The broker is away before anything is written: the relay stops reading, and the
        events wait in the WAL, where only the server can say how far behind it is."""
        db = self.new_database()
        relay = self.ready_relay(db)
        self.caught_up(relay, 0)
        self.mqtt.stop()
        wait_until(lambda: "disconnected from broker" in relay.stderr(), 30,
                   "the relay to see the broker go", check=relay.check_running)
        self.insert(db, 10)
        first = self.behind(relay)
        time.sleep(1)
        self.insert(db, 10, first=10)
        second = self.stats(relay)
        self.assertGreater(second["lag_ms"], first["lag_ms"], (first, second))
        self.assertGreater(second["lag_bytes"], first["lag_bytes"], (first, second))
        self.assertEqual(second["pending"], 0, second)     # not read: not received

        # The relay waits while the broker comes back and the subscriber is in place (a fence
        # through the broker says it is), or it might publish before anyone listens.
        with relay.frozen():
            self.mqtt.start()
            rec = self.start_recorder()
            rec.sync()
        self.caught_up(relay, 20)
        self.assertEqual(relay.terminate(), 0)
        rec.sync()
        self.assertEqual(len(rec.messages), 20)

    def test_broker_frozen_with_events_in_the_window(self):
        """The broker takes messages and acknowledges none: the window fills, the rest waits
        in the WAL; the oldest event held gives lag_ms."""
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.ready_relay(db, broker={"max_inflight": 3})
        self.caught_up(relay, 0)
        os.kill(self.mqtt.proc.pid, signal.SIGSTOP)
        try:
            self.insert(db, 10)
            wait_until(lambda: self.stats(relay)["pending"] == 3, 30, "a full window",
                       check=relay.check_running)
            first = self.behind(relay)
            time.sleep(1)
            self.insert(db, 10, first=10)
            second = self.stats(relay)
        finally:
            os.kill(self.mqtt.proc.pid, signal.SIGCONT)
        self.assertGreater(second["lag_ms"], first["lag_ms"], (first, second))
        self.assertGreater(second["lag_bytes"], first["lag_bytes"], (first, second))
        self.assertEqual(second["pending"], 3, second)

        rec.wait_for_count(20)
        self.caught_up(relay, 20)
        self.assertEqual(relay.terminate(), 0)

    def test_rate_after_a_restart_counts_this_process_only(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.ready_relay(db)
        self.insert(db, 100)
        rec.wait_for_count(100)
        self.caught_up(relay, 100)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.checkpoint(db)["published"], 100)

        started = time.monotonic()
        relay.start()
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready again",
                   check=relay.check_running)
        ready = time.monotonic()
        time.sleep(1)   # so that the interval is long enough for the bound below to bite
        self.insert(db, 3, first=100)
        wait_until(lambda: self.checkpoint(db)["published"] == 103, 30,
                   "the three acknowledged", check=relay.check_running)
        asked = time.monotonic()
        stats = self.stats(relay)     # the first line of this process
        seen = time.monotonic()
        self.assertEqual(stats["published"], 103, stats)
        # The interval runs from this process's start (before "ready", after `started`) to
        # the line (after `asked`, before `seen`); the rate is printed to 0.1 per second.
        self.assertGreater(stats["rate"], 0, stats)
        self.assertGreaterEqual((stats["rate"] + 0.05) * (seen - started), 3, stats)
        self.assertLessEqual(max(stats["rate"] - 0.05, 0) * (asked - ready), 3, stats)
        self.assertEqual(relay.terminate(), 0)


if __name__ == "__main__":
    harness.main()
