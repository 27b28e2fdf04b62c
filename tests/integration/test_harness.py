#!/usr/bin/python3
"""The harness itself, without the relay: real servers, logical decoding, the recorder."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import Publisher, payload_bytes, user_properties  # noqa: E402


class HarnessTest(harness.IntegrationCase):

    def test_postgres_is_ready_for_logical_replication(self):
        db = self.new_database()
        self.assertEqual(db.scalar("SHOW wal_level"), "logical")
        self.assertGreaterEqual(int(db.scalar("SHOW server_version_num")), 140000)
        db.execute("CREATE PUBLICATION harness_pub FOR TABLE public.outbox"
                   " WITH (publish = 'insert')")
        db.execute("SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')")
        self.addCleanup(db.execute, "SELECT pg_drop_replication_slot('harness_slot')")
        with db.transaction() as cur:
            harness.insert_event(cur, "order", "1", "created", '{"n": 1}')
        with db.transaction(commit=False) as cur:
            harness.insert_event(cur, "order", "2", "created", '{"n": 2}')
        changes = db.query(
            "SELECT substr(data, 1, 1) FROM pg_logical_slot_peek_binary_changes("
            "'harness_slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'harness_pub')")
        kinds = b"".join(bytes(row[0]) for row in changes)
        self.assertEqual(kinds, b"BRIC",
                         "only the committed transaction: Begin, Relation, Insert, Commit")

    def test_recorder_prints_every_property(self):
        rec = self.start_recorder(filters=("rec/#",))
        with Publisher(self.mqtt.port) as pub:
            pub.publish("rec/a", '{"x": "é"}', qos=1,
                        user_properties=[("k", "1"), ("k", "2"), ("event-id", "7")],
                        content_type="application/json", message_expiry=3600,
                        response_topic="reply/here", correlation_data=b"\x00\xffcorr",
                        payload_format=1)
            pub.publish("rec/b", b"\xff\xfe\x00binary", qos=0)
            pub.publish("rec/c", b"", qos=1)
        messages = rec.sync()
        self.assertEqual([m["topic"] for m in messages], ["rec/a", "rec/b", "rec/c"])
        first, second, third = messages
        self.assertEqual(first["payload"], '{"x": "é"}')
        self.assertEqual(user_properties(first), [("k", "1"), ("k", "2"), ("event-id", "7")])
        self.assertEqual(harness.event_id(first), "7")
        self.assertEqual(first["content_type"], "application/json")
        self.assertLessEqual(first["message_expiry"], 3600)
        self.assertEqual(first["response_topic"], "reply/here")
        self.assertEqual(first["correlation_data"], "AP9jb3Jy")
        self.assertEqual(first["payload_format_indicator"], 1)
        self.assertEqual((first["qos"], first["retain"]), (1, False))
        self.assertNotIn("payload", second, "not UTF-8: base64 only")
        self.assertEqual(payload_bytes(second), b"\xff\xfe\x00binary")
        self.assertEqual(second["qos"], 0)
        self.assertEqual((third["payload"], third["payload_b64"]), ("", ""))
        self.assertEqual(rec.stop(), 0)

    def test_recorder_persistent_session_keeps_messages_while_away(self):
        rec = self.start_recorder(filters=("away/#",), client_id="harness-persistent",
                                  persistent=True)
        self.assertEqual(rec.stop(), 0)
        with Publisher(self.mqtt.port) as pub:
            for i in range(5):
                pub.publish(f"away/{i}", str(i), qos=1)
        again = self.start_recorder(filters=("away/#",), client_id="harness-persistent",
                                    persistent=True)
        messages = again.wait_for_count(5, timeout=30)
        self.assertEqual([m["payload"] for m in messages], ["0", "1", "2", "3", "4"])

    def test_recorder_speaks_mqtt_311(self):
        rec = self.start_recorder(filters=("v3/#",), protocol=311)
        with Publisher(self.mqtt.port) as pub:
            pub.publish("v3/x", "hello", qos=1, user_properties=[("dropped", "on 3.1.1")])
        (msg,) = rec.sync()
        self.assertEqual(msg["payload"], "hello")
        self.assertNotIn("user_properties", msg)

    def test_servers_restart_on_their_ports(self):
        pg_port, mqtt_port = self.pg.port, self.mqtt.port
        self.pg.restart("immediate")
        self.mqtt.restart()
        self.assertEqual((self.pg.port, self.mqtt.port), (pg_port, mqtt_port))
        conn = self.pg.connect()
        conn.close()
        rec = self.start_recorder(filters=("after/#",))
        with Publisher(self.mqtt.port) as pub:
            pub.publish("after/restart", "ok")
        self.assertEqual([m["payload"] for m in rec.sync()], ["ok"])


if __name__ == "__main__":
    harness.main()
