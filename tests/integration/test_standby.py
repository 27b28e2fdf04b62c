#!/usr/bin/python3
"""doc/design.md §2.8: a second relay for a slot in use waits as a standby, says so once, and takes
over from the checkpoint the first one left when the slot is freed — nothing published
twice, nothing lost."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.util import wait_until  # noqa: E402


class StandbyTest(harness.IntegrationCase):

    def insert(self, db, first, n):
        with db.transaction() as cur:
            return [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i}))
                    for i in range(first, first + n)]

    def test_standby_waits_then_takes_over(self):
        db = self.new_database()
        rec = self.start_recorder()
        active = self.new_relay(db, name="active").start()
        active.wait_for_slot(db, self.name)
        events = self.insert(db, 0, 5)
        rec.wait_for_count(5)

        standby = self.new_relay(db, name="standby").start()
        wait_until(lambda: "waiting as a standby" in standby.stderr(), 30, "the standby to wait",
                   check=standby.check_running)
        events += self.insert(db, 5, 5)   # published by the active relay meanwhile
        rec.wait_for_count(10)
        time.sleep(3)                      # several retries: still one line about it
        self.assertEqual(standby.stderr().count("waiting as a standby"), 1)
        # It reads the checkpoint again on every attempt (the active relay moves it), and
        # says nothing about it at info: "checkpoint loaded" once at most, at the start.
        self.assertLessEqual(standby.stderr().count("checkpoint loaded"), 1)
        self.assertLessEqual(standby.stderr().count("level=info"), 5, standby.stderr())
        self.assertNotIn("level=warn", standby.stderr())
        self.assertNotIn("level=error", standby.stderr())

        self.assertEqual(active.terminate(), 0)
        wait_until(lambda: "taking over" in standby.stderr(), 30, "the standby to take over",
                   check=standby.check_running)
        events += self.insert(db, 10, 5)
        rec.wait_for_count(15)
        self.assertEqual(standby.terminate(), 0)
        rec.sync()
        self.assertEqual(harness.received(rec.messages), harness.expected(events))


if __name__ == "__main__":
    harness.main()
