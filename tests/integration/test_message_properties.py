#!/usr/bin/python3
"""doc/design.md §5: the MQTT 5 user properties on every message, and per-route retain."""

import datetime
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event, parse_lsn, user_properties  # noqa: E402

RFC3339_MICROS = "%Y-%m-%dT%H:%M:%S.%fZ"


def db_now(db):
    """The server's clock, as the commit timestamps are taken from it."""
    return db.scalar("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
                     " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def parse_time(text):
    return datetime.datetime.strptime(text, RFC3339_MICROS)


class MessagePropertiesTest(harness.IntegrationCase):

    def write_transaction(self, db, rows):
        """Returns (events, WAL position before, after, server time before, after)."""
        time_before = db_now(db)
        lsn_before = db.scalar("SELECT pg_current_wal_insert_lsn()::text")
        with db.transaction() as cur:
            events = [insert_event(cur, "order", str(i), "placed", json.dumps({"n": i}))
                      for i in range(rows)]
        lsn_after = db.scalar("SELECT pg_current_wal_insert_lsn()::text")
        return events, lsn_before, lsn_after, time_before, db_now(db)

    def check_transaction(self, messages, events, lsn_before, lsn_after, time_before, time_after):
        self.assertEqual(len(messages), len(events))
        lsn = harness.user_property(messages[0], "lsn")
        commit_time = harness.user_property(messages[0], "commit-time")
        for msg, (row_id, topic, payload) in zip(messages, events):
            self.assertEqual((msg["topic"], msg["payload"]), (topic, payload))
            self.assertEqual(user_properties(msg), [("event-id", str(row_id)), ("lsn", lsn),
                                                    ("commit-time", commit_time),
                                                    ("source", "public.outbox")])
            self.assertFalse(msg["retain"])
        self.assertTrue(parse_lsn(lsn_before) < parse_lsn(lsn) < parse_lsn(lsn_after),
                        f"commit LSN {lsn} outside [{lsn_before}, {lsn_after}]")
        self.assertTrue(parse_time(time_before) <= parse_time(commit_time) <= parse_time(time_after),
                        f"commit time {commit_time} outside [{time_before}, {time_after}]")
        return parse_lsn(lsn)

    def test_every_message_carries_event_id_lsn_commit_time_and_source(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)

        written = [self.write_transaction(db, rows) for rows in (3, 1, 2)]
        rec.wait_for_count(6, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual(len(messages), 6)
        lsns = [self.check_transaction(messages[0:3], *written[0]),
                self.check_transaction(messages[3:4], *written[1]),
                self.check_transaction(messages[4:6], *written[2])]
        self.assertEqual(lsns, sorted(set(lsns)), "commit LSNs strictly increase")

    def test_retain_is_per_route(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.state (LIKE public.outbox INCLUDING ALL)")
        retained = {"table": "public.state", "topic": "state/{aggregate_id}", "payload": "payload",
                    "event_id": "id", "retain": True}
        relay = self.new_relay(db, routes=[harness.default_route(), retained]).start()
        relay.wait_for_slot(db, self.name)
        live = self.start_recorder()
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.state (aggregate_type, aggregate_id, event_type, payload)"
                        " VALUES ('s', 'a', 'set', '{\"v\": 1}')")
            insert_event(cur, "order", "1", "placed", json.dumps({"n": 1}))
        live.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)

        late = harness.Recorder(self.mqtt, self.workdir, ("state/#", "shop/#"),
                                name=f"{self.name}.late")
        self.addCleanup(late.stop)
        late.start()
        messages = late.sync()
        self.assertEqual([(m["topic"], m["payload"], m["retain"]) for m in messages],
                         [("state/a", '{"v": 1}', True)],
                         "a late subscriber gets the retained event only")

    def test_route_properties(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.req (id bigint PRIMARY KEY, body text, reply_to text, corr bytea)")
        request = {"table": "public.req", "topic": "req/{id}", "payload": "body", "event_id": "id",
                   "content_type": "text/plain", "message_expiry": "1500ms",
                   "response_topic": "reply_to", "correlation_data": "corr"}
        rec = self.start_recorder(filters=("shop/#", "req/#"))  # not the retained state/#
        relay = self.new_relay(db, routes=[harness.default_route(), request]).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            insert_event(cur, "order", "1", "placed", json.dumps({"n": 1}))
            cur.execute("INSERT INTO public.req VALUES (1, 'ping', 'replies/a', '\\x0102ff'),"
                        " (2, 'plain', NULL, NULL)")
        rec.wait_for_count(3, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        def props(m):
            return (m.get("content_type"), m.get("response_topic"), m.get("correlation_data"))
        self.assertEqual([(m["topic"], m["payload"]) for m in messages],
                         [("shop/order/1", '{"n": 1}'), ("req/1", "ping"), ("req/2", "plain")])
        self.assertEqual(props(messages[0]), ("application/json", None, None),
                         "a jsonb payload column implies application/json")
        self.assertIsNone(messages[0].get("message_expiry"))
        self.assertEqual(props(messages[1]), ("text/plain", "replies/a", "AQL/"))
        self.assertEqual(props(messages[2]), ("text/plain", None, None), "NULL columns: no property")
        for m in messages[1:]:
            self.assertIn(m.get("message_expiry"), (1, 2), "1500ms rounds up to 2 s, minus time queued")


if __name__ == "__main__":
    harness.main()
