#!/usr/bin/python3
"""Fault 8 (doc/design.md §2.8): a slot that vanished while the checkpoint shows it was in use is
never recreated silently; a dropped publication is a clear stop, not a retry loop. (The
standby takeover is test_standby_takeover.py.)"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402


class SlotLifecycleTest(harness.IntegrationCase):

    def run_once(self, db, n=3):
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            events = [insert_event(cur, "order", str(i), "placed", "{}") for i in range(n)]
        rec.wait_for_count(n)
        self.assertEqual(relay.terminate(), 0)
        return relay, events

    def test_missing_slot_with_a_checkpoint_stops_with_the_way_out(self):
        db = self.new_database()
        relay, _ = self.run_once(db)
        checkpoint = self.checkpoint(db)
        db.execute("SELECT pg_drop_replication_slot(%s)", (self.name,))
        self.assertEqual(relay.run(), 1)
        log = relay.stderr()
        self.assertIn("the replication slot is missing but the checkpoint shows it was in use", log)
        self.assertIn(f"checkpoint_lsn={checkpoint['confirmed_lsn']}", log)
        sql = re.search(r'sql="([^"]*)"', log).group(1)
        self.assertIsNone(self.slot_confirmed(db), "no slot was created behind the user's back")
        # The SQL given is the way out, and it works.
        db.execute(sql)
        relay.start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)

    def test_dropped_publication_is_a_clear_stop(self):
        db = self.new_database()
        relay, _ = self.run_once(db)
        db.execute(f'DROP PUBLICATION "{self.name}"')
        with db.transaction() as cur:
            insert_event(cur, "order", "late", "placed", "{}")
        relay.start()
        # Recreated now, the publication is still unknown to the WAL the slot must decode
        # first: PostgreSQL refuses, and retrying cannot help.
        status = relay.wait(timeout=60)
        self.assertEqual(status, 1, relay.stderr())
        self.assertRegex(relay.stderr(), r'level=error .*publication')


if __name__ == "__main__":
    harness.main()
