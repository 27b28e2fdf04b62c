#!/usr/bin/python3
"""What an MQTT 5 broker says it takes (doc/design.md §24), against Mosquitto set up to take less:
a route that asks for more is refused at connect in one line naming the route and the fix (exit 78
before the first start), or downgraded when it says downgrade: true; a message larger than the
broker's Maximum Packet Size becomes a dead letter; a low Receive Maximum is said and honoured."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import Mosquitto, Recorder  # noqa: E402
from harness.util import wait_until  # noqa: E402

EXIT_CONFIG = 78


def route(qos=1, **extra):
    r = {"table": "public.outbox", "topic": "limits/{aggregate_id}", "payload": "payload",
         "event_id": "id", "qos": qos}
    r.update(extra)
    return r


def log_lines(relay, text):
    return [line for line in relay.stderr().splitlines() if text in line]


class BrokerLimitsTest(harness.IntegrationCase):

    def limited_broker(self, extra_config, max_inflight=0):
        """A Mosquitto of this test's own that takes less than MQTT allows."""
        broker = Mosquitto(self.workdir, extra_config=extra_config, name=f"{self.name}.mosquitto",
                           max_inflight_messages=max_inflight)
        broker.start()
        self.addCleanup(broker.stop)
        return broker

    def recorder(self, broker):
        # A large Receive Maximum: Mosquitto 2.0.11 can put more QoS 2 messages in flight to a
        # subscriber than it announced, which libmosquitto takes for a protocol error
        # (mqtt_recorder.c), and the subscriber, not the relay, would lose them.
        rec = Recorder(broker, self.workdir, ("limits/#",), qos=2, name=f"{self.name}.recorder",
                       receive_maximum=65535)
        self.addCleanup(rec.stop)
        return rec.start()

    def relay_on(self, db, broker, routes, **broker_keys):
        return self.new_relay(db, routes=routes, broker=dict(port=broker.port, **broker_keys))

    def insert(self, db, n, payload="{}"):
        ids = []
        with db.transaction() as cur:
            for i in range(n):
                cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                            " VALUES ('t', %s, 'e', %s) RETURNING id", (str(i), payload))
                ids.append(str(cur.fetchone()[0]))
        return ids

    def assert_refused(self, relay, key, broker_says, fix):
        self.assertEqual(relay.run(), EXIT_CONFIG, relay.stderr())
        lines = log_lines(relay, "the broker takes less than the configuration asks; stopping")
        self.assertEqual(len(lines), 1, relay.stderr())
        self.assertIn(f"key=\"{relay.config_path}:", lines[0])
        self.assertIn(key, lines[0])
        self.assertIn(f"broker=\"{broker_says}\"", lines[0])
        self.assertIn(fix, lines[0])

    def test_a_qos_2_route_is_refused_by_a_qos_1_broker(self):
        broker = self.limited_broker("max_qos 1\n")
        db = self.new_database()
        relay = self.relay_on(db, broker, [route(qos=1, topic="limits/one"),
                                           route(qos=2, topic="limits/two/{aggregate_id}")])
        self.assert_refused(relay, ": routes[1].qos\"", "Maximum QoS 1",
                            "set qos: 1 on routes[1], or downgrade: true")

    def test_downgrade_publishes_qos_2_at_qos_1_and_loses_nothing(self):
        broker = self.limited_broker("max_qos 1\n")
        db = self.new_database()
        rec = self.recorder(broker)
        relay = self.relay_on(db, broker, [route(qos=2, downgrade=True)]).start()
        relay.wait_for_slot(db, self.name)
        ids = self.insert(db, 200)
        rec.wait_for_count(len(ids), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        self.assertEqual([harness.event_id(m) for m in messages], ids, "every event, in order")
        self.assertEqual({m["qos"] for m in messages}, {1})
        said = log_lines(relay, "the broker takes less than MQTT allows")
        self.assertTrue(said and "maximum_qos=1" in said[0], relay.stderr())

    def test_a_retained_route_is_refused_without_retain_available(self):
        broker = self.limited_broker("retain_available false\n")
        db = self.new_database()
        relay = self.relay_on(db, broker, [route(retain=True)])
        self.assert_refused(relay, ": routes[0].retain\"", "Retain Available 0",
                            "retain: false on routes[0]")

    def test_downgrade_drops_the_retain_flag(self):
        broker = self.limited_broker("retain_available false\n")
        db = self.new_database()
        rec = self.recorder(broker)
        relay = self.relay_on(db, broker, [route(retain=True, downgrade=True)]).start()
        relay.wait_for_slot(db, self.name)
        ids = self.insert(db, 50)
        rec.wait_for_count(len(ids), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([harness.event_id(m) for m in rec.sync()], ids)
        self.assertEqual(log_lines(relay, "disconnected from broker"), [], "the broker never cut it off")

    def test_the_status_topics_will_needs_retain(self):
        broker = self.limited_broker("retain_available false\n")
        db = self.new_database()
        relay = self.relay_on(db, broker, [route()], status_topic=f"relays/{self.name}")
        self.assertEqual(relay.run(), EXIT_CONFIG, relay.stderr())
        lines = log_lines(relay, "the broker refused the relay before its first start")
        self.assertEqual(len(lines), 1, relay.stderr())
        self.assertIn("broker.status_topic", lines[0])

    def test_a_message_over_the_maximum_packet_size_is_a_dead_letter(self):
        broker = self.limited_broker("max_packet_size 2000\n")
        db = self.new_database()
        rec = self.recorder(broker)
        relay = self.relay_on(db, broker, [route()]).start()
        relay.wait_for_slot(db, self.name)
        small = self.insert(db, 5)
        large = self.insert(db, 1, payload='{"blob": "%s"}' % ("x" * 4000))
        after = self.insert(db, 5)
        rec.wait_for_count(len(small) + len(after), check=relay.check_running)
        wait_until(lambda: db.scalar("SELECT count(*) FROM outbox_relay.dead_letter") == 1, 30,
                   "the dead letter", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([harness.event_id(m) for m in rec.sync()], small + after)
        event_id, reason = db.query("SELECT event_id, reason FROM outbox_relay.dead_letter")[0]
        self.assertEqual(event_id, large[0])
        self.assertIn("larger than the broker's Maximum Packet Size (2000 bytes)", reason)

    def test_a_low_receive_maximum_is_said_and_honoured(self):
        broker = self.limited_broker("", max_inflight=5)
        db = self.new_database()
        rec = self.recorder(broker)
        relay = self.relay_on(db, broker, [route(qos=2)]).start()
        relay.wait_for_slot(db, self.name)
        ids = self.insert(db, 500)
        rec.wait_for_count(len(ids), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([harness.event_id(m) for m in rec.sync()], ids, "every event, in order")
        said = log_lines(relay, "the broker takes less than MQTT allows")
        self.assertTrue(said and "receive_maximum=5" in said[0], relay.stderr())
        self.assertEqual(log_lines(relay, "disconnected from broker"), [], "never over the limit")

    def test_reloaded_routes_that_ask_too_much_are_refused_until_fixed(self):
        broker = self.limited_broker("max_qos 1\n")
        db = self.new_database()
        rec = self.recorder(broker)
        relay = self.relay_on(db, broker, [route(qos=1)]).start()
        relay.wait_for_slot(db, self.name)
        first = self.insert(db, 10)
        rec.wait_for_count(len(first), check=relay.check_running)
        config = harness.relay_config(self.pg, broker, db.name, self.name, [route(qos=2)])
        relay.write_config(config)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: log_lines(relay, "the broker takes less than the configuration asks; retrying"),
                   30, "the refusal", check=relay.check_running)
        second = self.insert(db, 10)
        relay.write_config(harness.relay_config(self.pg, broker, db.name, self.name, [route(qos=1)]))
        relay.proc.send_signal(signal.SIGHUP)
        rec.wait_for_count(len(first) + len(second), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([harness.event_id(m) for m in rec.sync()], first + second)


if __name__ == "__main__":
    harness.main()
