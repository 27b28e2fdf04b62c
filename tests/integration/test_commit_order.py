#!/usr/bin/python3
"""Only committed rows are published, each once, in commit order, on its templated topic."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import expected, insert_event, received  # noqa: E402

COMMITTED = 2000
ROLLED_BACK = 200
AGGREGATES = ("order", "customer", "invoice")


class CommitOrderTest(harness.IntegrationCase):

    def write_interleaved(self, db):
        """2,200 single-row transactions; every 11th is rolled back."""
        committed, rolled_back = [], []
        for i in range(COMMITTED + ROLLED_BACK):
            commit = i % 11 != 10
            with db.transaction(commit) as cur:
                event = insert_event(cur, AGGREGATES[i % 3], f"agg-{i % 17}", "changed",
                                     json.dumps({"seq": i, "committed": commit}))
            (committed if commit else rolled_back).append(event)
        self.assertEqual((len(committed), len(rolled_back)), (COMMITTED, ROLLED_BACK))
        return committed, rolled_back

    def test_only_committed_rows_in_commit_order(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)

        committed, rolled_back = self.write_interleaved(db)
        rec.wait_for_count(COMMITTED, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual(received(messages), expected(committed))
        self.assertEqual({(m["qos"], m["retain"]) for m in messages}, {(1, False)})
        ids = {harness.event_id(m) for m in messages}
        self.assertFalse(ids & {str(row_id) for row_id, _, _ in rolled_back})


if __name__ == "__main__":
    harness.main()
