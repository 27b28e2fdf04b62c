#!/usr/bin/python3
"""Fault 7: WAL written only to tables that are not routed, while the routed ones are idle.
The slot must not hold that WAL: its retained WAL (current LSN - restart_lsn) falls below
the bound within 60 s, without a single event published.

Size: 64 MB of WAL with a 16 MB bound; OUTBOX_FAULT_FULL=1 gives 200 MB and
32 MB.
"""

import os
import sys

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


if __name__ == "__main__":
    harness.main()
