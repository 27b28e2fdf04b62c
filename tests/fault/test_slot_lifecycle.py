#!/usr/bin/python3
"""Fault 8 (SPEC §2.8): a slot that vanished while the checkpoint shows it was in use is
never recreated silently; a dropped publication is a clear stop, not a retry loop; SIGTERM
and restart ten times over loses and repeats nothing (fault 2)."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.delivery import DeliveryReport, full_size, wait_for_all  # noqa: E402
from harness.util import wait_until  # noqa: E402

RESTARTS, EVENTS = (10, 20000) if full_size() else (10, 4000)


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

    def test_sigterm_and_restart_ten_times(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        writer = harness.Writer(self.pg, db.name, max_rows_per_txn=5, rollback_every=7,
                                large_every=200, large_rows=300)
        self.addCleanup(writer.stop_after, 0)
        writer.stop_after(EVENTS)
        writer.start()
        for i in range(RESTARTS):
            target = EVENTS * (i + 1) // (RESTARTS + 2)
            wait_until(lambda: len(rec.messages) >= target, 300, f"{target} messages",
                       check=relay.check_running)
            self.assertEqual(relay.terminate(), 0)
            relay.start()
            relay.wait_for_slot(db, self.name)
        writer.finish(timeout=600)
        wait_for_all(self, rec, writer.events, relay)
        self.assertEqual(relay.terminate(), 0)
        DeliveryReport(rec.sync(), writer.events, writer.rolled_back).check(self, max_duplicates=0)


if __name__ == "__main__":
    harness.main()
