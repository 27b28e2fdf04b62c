#!/usr/bin/python3
"""MQTT 3.1.1 at QoS 2 against a broker with its default in-flight limit.

Mosquitto accepts at most max_inflight_messages (default 20) incoming QoS 2 messages of a
client at once. An MQTT 5 client learns the limit as the CONNACK's Receive Maximum; an
MQTT 3.1.1 client is never told, and what it sends beyond the limit is answered with a
plain PUBREC (3.1.1 has no reason codes) and dropped. Every one of them is acknowledged
to the relay, so the loss is silent. The relay's window for mqttv311 must stay within what
a broker accepts by default.

Both cases leave broker.max_inflight out of the relay's file (the relay's default window)
and the max_inflight_messages line out of Mosquitto's (its default, 20), and drain a
backlog through one route at QoS 2 with `payload: envelope` (3.1.1 carries no event-id
property): once with `--drain`, once with a relay that runs and is stopped with SIGTERM.
Checks: nothing lost, first occurrences in commit order with the committed topic and
payload, no repeats (nothing broke), the checkpoint counts every event.

Sizes: a backlog of 3,000 events; OUTBOX_FAULT_FULL=1 gives 30,000.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import DistinctCount, FaultCase, make_plan, seeded_random, size  # noqa: E402
import harness  # noqa: E402

EVENTS = size(3000, 30000)
LARGE = size(300, 3000)        # one larger transaction in the backlog
RECORDER_RECEIVE_MAXIMUM = 65535   # see tests/tools/mqtt_recorder.c


class Mqtt311InflightTest(FaultCase):
    mosquitto_max_inflight = None      # Mosquitto's own default

    def setUp(self):
        super().setUp()
        with open(self.mqtt.config_path) as f:
            self.assertNotIn("max_inflight_messages", f.read(),
                             "the broker runs with its default in-flight limit")

    def backlog(self):
        """A relay (default window) whose slot holds a backlog, and a subscriber."""
        db = self.new_database()
        route = harness.default_route()
        route["qos"] = 2
        route["payload"] = "envelope"
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name, [route],
                                      broker={"protocol": "mqttv311"})
        del config["broker"]["max_inflight"]
        relay = self.relay_with_config(config)
        with open(relay.config_path) as f:
            self.assertNotIn("max_inflight", f.read(), "the relay runs with its default window")
        # A first run creates the slot, so that the backlog written next is in it.
        self.assertEqual(relay.run("--drain"), 0)
        distinct = DistinctCount()
        rec = self.start_recorder(qos=2, transform=distinct,
                                  receive_maximum=RECORDER_RECEIVE_MAXIMUM)
        writer = self.start_writer(db, make_plan(seeded_random(self.id()), EVENTS, LARGE))
        writer.finish()
        return db, relay, rec, distinct, writer

    def check(self, db, rec, distinct, writer, how):
        messages = rec.sync(qos=2)
        sys.stderr.write(f"{how}: {writer.total} events, {len(messages)} messages,"
                         f" {len(distinct)} distinct ({writer.total - len(distinct)} lost)\n")
        self.assert_none_lost(messages, writer, f" (MQTT 3.1.1, QoS 2, {how})")
        duplicates = self.verify_stream(messages, writer, db.name)
        self.assertEqual(len(duplicates), 0, "nothing broke, so nothing is repeated")
        checkpoint = self.checkpoint(db)
        self.assertEqual(checkpoint["published"], writer.total)
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))

    def test_drain(self):
        db, relay, rec, distinct, writer = self.backlog()
        self.assertEqual(relay.run("--drain", timeout=600), 0)
        self.check(db, rec, distinct, writer, "--drain")

    def test_running_relay(self):
        db, relay, rec, distinct, writer = self.backlog()
        relay.start()
        self.wait_published(db, writer.total, relay)
        self.assertEqual(relay.terminate(), 0)
        self.check(db, rec, distinct, writer, "running relay")


if __name__ == "__main__":
    harness.main()
