#!/usr/bin/python3
"""doc/design.md §7: events that can never be published are dead-lettered (or stop the relay), and
the stream goes on; nothing is checkpointed past an event that is neither.

Three ways to be unpublishable, each real: a topic value with '+' (the relay refuses to
form the topic), a topic the broker's ACL denies (PUBACK reason 0x87), and a payload over
the broker's message_size_limit (refused with a reason code, or by the client when the
broker announces its limit).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import default_route, parse_lsn  # noqa: E402

SIZE_LIMIT = 10000
ROUTE = dict(default_route(), topic="{aggregate_type}/{aggregate_id}")


def insert(cur, aggregate_type, aggregate_id, payload):
    cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                " VALUES (%s, %s, 'e', %s) RETURNING id", (aggregate_type, aggregate_id, payload))
    return cur.fetchone()[0]


class RejectionsTest(harness.IntegrationCase):
    mosquitto_config = f"acl_file {{workdir}}/acl\nmessage_size_limit {SIZE_LIMIT}\n"

    @classmethod
    def prepare_files(cls):
        path = os.path.join(cls.workdir, "acl")
        with open(path, "w") as f:
            f.write("topic readwrite #\ntopic deny forbidden/#\n")
        os.chmod(path, 0o644)

    def dead_letters(self, db):
        return db.query("SELECT event_id, source, topic, commit_lsn::text, reason, payload, properties"
                        " FROM outbox_relay.dead_letter ORDER BY id")

    def start(self, db, **overrides):
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[ROUTE], **overrides).start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def test_rejected_events_are_dead_lettered_and_the_stream_goes_on(self):
        db = self.new_database()
        rec, relay = self.start(db)
        big = json.dumps({"blob": "x" * (SIZE_LIMIT + 100)})
        with db.transaction() as cur:
            ok1 = insert(cur, "shop", "1", '{"n": 1}')
            plus = insert(cur, "shop", "a+b", '{"n": 2}')
            denied = insert(cur, "forbidden", "2", '{"n": 3}')
            too_big = insert(cur, "shop", "big", big)
            ok2 = insert(cur, "shop", "3", '{"n": 5}')
        with db.transaction() as cur:
            ok3 = insert(cur, "shop", "4", '{"n": 6}')
        rec.wait_for_count(3)
        rec.sync()
        self.assertEqual([(harness.event_id(m), m["topic"]) for m in rec.messages],
                         [(str(ok1), "shop/1"), (str(ok2), "shop/3"), (str(ok3), "shop/4")])

        rows = self.dead_letters(db)
        self.assertEqual([(r[0], r[1], r[2]) for r in rows],
                         [(str(plus), "public.outbox", None),
                          (str(denied), "public.outbox", "forbidden/2"),
                          (str(too_big), "public.outbox", "shop/big")])
        self.assertIn("'+'", rows[0][4].replace('"', "'"))
        self.assertIn("0x87", rows[1][4])
        self.assertRegex(rows[2][4], "(?i)too large|size")
        self.assertEqual([bytes(r[5]) for r in rows],
                         [b'{"n": 2}', b'{"n": 3}', big.encode()])
        self.assertEqual(rows[1][6]["qos"], 1)
        commit_lsn = rows[0][3]
        self.assertEqual({r[3] for r in rows}, {commit_lsn})

        # The checkpoint goes past all of them, and a restart neither republishes nor
        # records them again.
        harness.wait_until(lambda: self.checkpoint(db)["published"] == 3, 30, "the checkpoint")
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(relay.stderr().count('msg="event dead-lettered"'), 3)
        relay.start()
        relay.wait_for_slot(db, self.name)
        rec.sync()
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(len(rec.messages), 3)
        self.assertEqual(len(self.dead_letters(db)), 3)

    def test_on_reject_stop_exits_without_checkpointing_past_the_event(self):
        for case, (aggregate_type, aggregate_id) in {"topic": ("shop", "x+y"),
                                                    "acl": ("forbidden", "1")}.items():
            with self.subTest(case=case):
                self.name = f"stop_{case}"
                self.check_stop(aggregate_type, aggregate_id)

    def check_stop(self, aggregate_type, aggregate_id):
        db = self.new_database()
        rec, relay = self.start(db, delivery={"on_reject": "stop"})
        with db.transaction() as cur:
            first = insert(cur, "shop", "1", "{}")
            refused = insert(cur, aggregate_type, aggregate_id, "{}")
            last = insert(cur, "shop", "2", "{}")
        self.assertEqual(relay.wait(), 1)
        self.assertIn("delivery.on_reject: stop", relay.stderr())
        rec.sync()
        ids = [harness.event_id(m) for m in rec.messages]
        if aggregate_type == "forbidden":
            # The broker refuses in its acknowledgement, by which time the next event may be
            # on the wire already: it will be published again after the restart (doc/design.md §2.4).
            self.assertIn(ids, ([str(first)], [str(first), str(last)]))
        else:
            self.assertEqual(ids, [str(first)])
        self.assertNotIn(str(refused), ids)
        self.assertEqual(self.dead_letters(db), [])
        commit_lsn = harness.user_property(rec.messages[0], "lsn")
        checkpoint = self.checkpoint(db)
        if checkpoint is not None and checkpoint["commit_lsn"] == commit_lsn:
            # At most the first event of the transaction is recorded, never the refused one.
            self.assertLessEqual(checkpoint["event_index"], 0)
        self.assertLess(parse_lsn(self.slot_confirmed(db)), parse_lsn(commit_lsn))
        # Restarted, it stops again at the same event: nothing was skipped.
        self.assertEqual(relay.run(), 1)

    def test_a_dead_letter_the_table_refuses_stops_the_relay(self):
        """A dead letter that cannot be written for good (a constraint, a privilege) stops the
        relay with exit 1 instead of trying the same event for ever."""
        db = self.new_database()
        rec, relay = self.start(db)
        db.execute("ALTER TABLE outbox_relay.dead_letter"
                   " ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        with db.transaction() as cur:
            first = insert(cur, "shop", "1", "{}")
            insert(cur, "shop+", "2", "{}")
            insert(cur, "shop", "3", "{}")
        self.assertEqual(relay.wait(), 1)
        self.assertIn("event cannot be dead-lettered; stopping", relay.stderr())
        self.assertIn("refuse_all", relay.stderr())
        rec.sync()
        self.assertEqual([harness.event_id(m) for m in rec.messages], [str(first)])
        self.assertEqual(self.dead_letters(db), [])


if __name__ == "__main__":
    harness.main()
