#!/usr/bin/python3
"""Fault 7: WAL written only to tables that are not routed, while the routed ones are idle.
The slot must not hold that WAL: its retained WAL (current LSN - restart_lsn) falls below
the bound within 60 s, without a single event published.

And a cluster where nothing but the heartbeat writes, its segments switched and checkpoints
forced over and over (what archive_timeout does): the segments behind the slot are removed
while the relay runs (doc/design.md §17).

Size: 64 MB of WAL with a 16 MB bound; OUTBOX_FAULT_FULL=1 gives 200 MB and
32 MB.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.delivery import full_size  # noqa: E402
from harness.util import wait_until  # noqa: E402

MB = 1024 * 1024
WAL_BYTES, BOUND = (200 * MB, 32 * MB) if full_size() else (64 * MB, 16 * MB)


class IdleWalTest(harness.IntegrationCase):

    def retained(self, db):
        return db.scalar("SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots"
                         " WHERE slot_name = %s", (self.name,))

    def test_unrouted_wal_is_released(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.filler (id bigserial PRIMARY KEY, junk text)")
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        start = db.scalar("SELECT pg_current_wal_lsn()::text")
        while db.scalar("SELECT pg_current_wal_lsn() - %s::pg_lsn", (start,)) < WAL_BYTES:
            db.execute("INSERT INTO public.filler (junk) SELECT repeat(md5(g::text), 32)"
                       " FROM generate_series(1, 2000) g")
        wait_until(lambda: self.retained(db) < BOUND, 60, "the slot to release the idle WAL",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(rec.sync(), [])


# Rounds of pg_switch_wal() and CHECKPOINT, and how many segments older than the one the
# slot's restart_lsn is in may stay on disk after them: the server's idea of what the slot
# needs trails restart_lsn by a heartbeat or two (1 or 2 measured here). With a
# non-transactional heartbeat every round adds one: 24 after 24 rounds.
ROUNDS = 12
KEPT_BOUND = 3


class HeartbeatWalTest(harness.IntegrationCase):
    """A cluster of its own: no other slot may hold WAL back."""

    def behind_slot(self, db):
        """WAL segment files on disk that are older than the slot's restart_lsn's segment."""
        return db.scalar(
            "SELECT count(*) FROM pg_ls_waldir() w, pg_replication_slots s"
            " WHERE s.slot_name = %s AND w.name ~ '^[0-9A-F]{24}$'"
            " AND w.name < pg_walfile_name(s.restart_lsn)", (self.name,))

    def switch_and_checkpoint(self, db, relay):
        # A new segment, a heartbeat in it (its interval is 200 ms) confirmed by the relay,
        # then a checkpoint that removes what no one needs.
        db.execute("SELECT pg_switch_wal()")
        time.sleep(0.5)
        relay.check_running()
        db.execute("CHECKPOINT")

    def test_heartbeat_frees_idle_segments(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, source={"heartbeat_interval": "200ms"}).start()
        relay.wait_for_slot(db, self.name)
        for _ in range(ROUNDS):
            self.switch_and_checkpoint(db, relay)
        kept = self.behind_slot(db)
        # A few more rounds, for a slow machine: never enough without a fix, since every round
        # adds a segment.
        for _ in range(ROUNDS):
            if kept <= KEPT_BOUND:
                break
            self.switch_and_checkpoint(db, relay)
            kept = self.behind_slot(db)
        self.assertLessEqual(kept, KEPT_BOUND, f"{kept} WAL segments kept behind the slot's"
                             f" restart_lsn after {ROUNDS}+ switches and checkpoints")
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(rec.sync(), [])


if __name__ == "__main__":
    harness.main()
