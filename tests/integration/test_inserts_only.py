#!/usr/bin/python3
"""Only INSERTs are published: UPDATEs and DELETEs of outbox rows produce nothing."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import expected, insert_event, received  # noqa: E402


class InsertsOnlyTest(harness.IntegrationCase):

    def write_changes(self, db):
        """Insert, update, delete, insert+delete in one transaction, a last insert."""
        with db.transaction() as cur:
            first = insert_event(cur, "order", "1", "placed", '{"v": 1}')
        with db.transaction() as cur:
            cur.execute("UPDATE public.outbox SET payload = %s WHERE id = %s",
                        ('{"v": 2}', first[0]))
        with db.transaction() as cur:
            cur.execute("UPDATE public.outbox SET event_type = 'again' WHERE id = %s", (first[0],))
        with db.transaction() as cur:
            cur.execute("DELETE FROM public.outbox WHERE id = %s", (first[0],))
        with db.transaction() as cur:
            transient = insert_event(cur, "order", "2", "placed", '{"v": 3}')
            cur.execute("DELETE FROM public.outbox WHERE id = %s", (transient[0],))
        with db.transaction() as cur:
            last = insert_event(cur, "order", "3", "placed", '{"v": 4}')
        return [first, transient, last]

    def run_relay_over_changes(self, db, **overrides):
        rec = self.start_recorder()
        relay = self.new_relay(db, **overrides).start()
        relay.wait_for_slot(db, self.name)
        inserted = self.write_changes(db)
        rec.wait_for_count(len(inserted), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(received(rec.sync()), expected(inserted))
        self.assertEqual(db.scalar("SELECT count(*) FROM public.outbox"), 1)
        return relay

    def test_update_and_delete_publish_nothing(self):
        db = self.new_database()
        self.run_relay_over_changes(db)

    def run_with_publication_of_all_operations(self, db):
        """The relay gets UPDATEs and DELETEs too: a publication it did not create."""
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.outbox")
        return self.run_relay_over_changes(db, source={"create_publication": False})

    def test_publication_with_all_operations_still_publishes_inserts_only(self):
        db = self.new_database()
        self.run_with_publication_of_all_operations(db)

    def test_update_of_outbox_row_is_warned_once(self):
        # doc/design.md §5: an UPDATE of an outbox row is logged as a warning once per table.
        db = self.new_database()
        relay = self.run_with_publication_of_all_operations(db)
        warnings = [line for line in relay.stderr().splitlines()
                    if "level=warn" in line and re.search("update", line, re.I)]
        self.assertEqual(len(warnings), 1, f"one warning for the updated table: {warnings}")


if __name__ == "__main__":
    harness.main()
