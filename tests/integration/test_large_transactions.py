#!/usr/bin/python3
"""50 transactions of 100 rows: all 5,000 events in order, event-id <commit-lsn>:<index>."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event, parse_lsn  # noqa: E402

TRANSACTIONS = 50
ROWS = 100


class LargeTransactionsTest(harness.IntegrationCase):

    def write_transactions(self, db):
        """Returns [(WAL insert position before, after, [events])] per transaction."""
        written = []
        for t in range(TRANSACTIONS):
            with db.transaction() as cur:
                cur.execute("SELECT pg_current_wal_insert_lsn()::text")
                before = cur.fetchone()[0]
                events = [insert_event(cur, "batch", str(t), "row",
                                       json.dumps({"txn": t, "row": i})) for i in range(ROWS)]
            after = db.scalar("SELECT pg_current_wal_insert_lsn()::text")
            written.append((before, after, events))
        return written

    def check_transaction(self, messages, before, after, events):
        """One transaction's messages: same commit LSN, inside the WAL it was written to."""
        self.assertEqual([(m["topic"], m["payload"]) for m in messages],
                         [(topic, payload) for _, topic, payload in events])
        lsns, indexes = zip(*(harness.event_id(m).split(":") for m in messages))
        self.assertEqual(list(indexes), [str(i) for i in range(ROWS)])
        self.assertEqual(len(set(lsns)), 1, "one commit LSN for all rows of a transaction")
        self.assertRegex(lsns[0], r"^[0-9A-F]+/[0-9A-F]+$")
        commit_lsn = parse_lsn(lsns[0])
        self.assertTrue(parse_lsn(before) < commit_lsn < parse_lsn(after),
                        f"commit LSN {lsns[0]} not between {before} and {after}")
        return commit_lsn

    def test_5000_rows_in_50_transactions_with_lsn_event_ids(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[harness.default_route(event_id=None)]).start()
        relay.wait_for_slot(db, self.name)

        written = self.write_transactions(db)
        rec.wait_for_count(TRANSACTIONS * ROWS, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual(len(messages), TRANSACTIONS * ROWS)
        commit_lsns = [self.check_transaction(messages[t * ROWS:(t + 1) * ROWS], *written[t])
                       for t in range(TRANSACTIONS)]
        self.assertEqual(commit_lsns, sorted(set(commit_lsns)), "commit LSNs strictly increase")


if __name__ == "__main__":
    harness.main()
