#!/usr/bin/python3
"""doc/design.md §5: transactional logical messages with a routed prefix are events of their
transaction; non-transactional, unrouted and rolled-back ones are never published."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event, payload_bytes, user_properties  # noqa: E402

MESSAGE_ROUTE = {"message_prefix": "shop.*", "topic": "shop/messages/{prefix}", "qos": 1}


def emit(cur, transactional, prefix, content):
    cur.execute("SELECT pg_logical_emit_message(%s, %s, %s::bytea)", (transactional, prefix, content))


class MessageRoutesTest(harness.IntegrationCase):

    def test_messages_are_published_in_transaction_order(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[harness.default_route(), MESSAGE_ROUTE]).start()
        relay.wait_for_slot(db, self.name)

        with db.transaction() as cur:
            first = insert_event(cur, "order", "1", "placed", json.dumps({"n": 1}))
            emit(cur, True, "shop.saga", b"hi\x00\x01")
            second = insert_event(cur, "order", "2", "placed", json.dumps({"n": 2}))
        with db.transaction() as cur:
            emit(cur, False, "shop.audit", b"not transactional")
        with db.transaction(commit=False) as cur:
            emit(cur, True, "shop.saga", b"rolled back")
        with db.transaction() as cur:
            emit(cur, True, "billing.saga", b"prefix not routed")
            third = insert_event(cur, "order", "3", "placed", json.dumps({"n": 3}))

        rec.wait_for_count(4, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual([m["topic"] for m in messages],
                         ["shop/order/1", "shop/messages/shop.saga", "shop/order/2", "shop/order/3"])
        self.assertEqual(payload_bytes(messages[1]), b"hi\x00\x01")
        lsn = harness.user_property(messages[0], "lsn")
        self.assertEqual(user_properties(messages[1]), [
            ("event-id", f"{lsn}:1"), ("lsn", lsn),
            ("commit-time", harness.user_property(messages[0], "commit-time")),
            ("source", "message:shop.saga")])
        self.assertEqual([harness.event_id(m) for m in (messages[0], messages[2], messages[3])],
                         [str(first[0]), str(second[0]), str(third[0])])

    def test_message_routes_alone_need_no_table(self):
        db = self.new_database(outbox=False)
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[MESSAGE_ROUTE]).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            emit(cur, True, "shop.a", b"1")
            emit(cur, True, "shop.b", b"2")
        rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        lsn = harness.user_property(messages[0], "lsn")
        self.assertEqual([(m["topic"], payload_bytes(m), harness.event_id(m)) for m in messages],
                         [("shop/messages/shop.a", b"1", f"{lsn}:0"),
                          ("shop/messages/shop.b", b"2", f"{lsn}:1")])


if __name__ == "__main__":
    harness.main()
