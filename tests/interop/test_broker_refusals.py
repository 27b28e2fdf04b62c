#!/usr/bin/python3
"""What RabbitMQ 3.10 (rabbitmq_mqtt) cannot do, and what the relay says about it
(doc/brokers.md):

- QoS 2 on MQTT 3.1.1: RabbitMQ answers a QoS 2 PUBLISH with PUBACK, as if it were QoS 1.
  That is no acknowledgement of a QoS 2 message, and publishing again would only repeat the
  event: the relay stops with status 78 and one error line that names QoS 2.
- MQTT 5: RabbitMQ closes the connection on an MQTT 5 CONNECT without a CONNACK. The relay
  cannot tell that from a broker that went away, so it keeps trying, with its growing
  backoff (no storm), and says what the likely cause is: the broker does not support MQTT 5,
  use mqttv311.

Runs with OUTBOX_INTEROP=1 only (./scripts/test --interop).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import interoplib  # noqa: E402
from interoplib import InteropCase  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.rabbitmq import RabbitMQ  # noqa: E402
from harness.util import backoff_attempts_bound, wait_until  # noqa: E402

RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0     # seconds: the relay's broker.reconnect here
STORM_WINDOW = 6                            # seconds over which attempts are counted


def setUpModule():
    interoplib.require_enabled()


def error_lines(text):
    return [line for line in text.splitlines() if "level=error" in line]


class RabbitMQRefusalsTest(InteropCase):

    @classmethod
    def make_broker(cls, workdir):
        return RabbitMQ(workdir)

    def test_qos2_on_mqtt311_stops_the_relay(self):
        db = self.new_database()
        rec = self.subscriber("mqttv311", 1)
        relay = self.interop_relay(db, "mqttv311", 2).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            insert_event(cur, "order", "1", "placed", json.dumps({"qos": 2}))
        self.assertEqual(relay.wait(timeout=60), 78, relay.stderr())
        errors = error_lines(relay.stderr())
        self.assertEqual(len(errors), 1, relay.stderr())
        self.assertIn("QoS 2", errors[0])
        # Published once at most (RabbitMQ forwards it as QoS 1), never again in a loop.
        self.assertLessEqual(len(rec.sync()), 1)

    def test_mqtt5_is_named_and_retried_with_backoff(self):
        proxy = Proxy(self.mqtt.port)     # counts the relay's connections
        self.addCleanup(proxy.close)
        db = self.new_database()
        relay = self.interop_relay(
            db, "mqttv5", 1,
            broker_extra={"port": proxy.port,
                          "reconnect": {"min": f"{int(RECONNECT_MIN * 1000)}ms",
                                        "max": f"{int(RECONNECT_MAX * 1000)}ms"}}).start()

        def named():
            return [line for line in relay.stderr().splitlines()
                    if "does not support MQTT 5" in line and "mqttv311" in line]
        wait_until(named, 30, "a line saying the broker does not support MQTT 5",
                   check=relay.check_running)
        start, first = time.monotonic(), proxy.accepted
        wait_until(lambda: time.monotonic() - start >= STORM_WINDOW, STORM_WINDOW + 30,
                   f"{STORM_WINDOW}s of retries", check=relay.check_running, interval=0.2)
        elapsed, count = time.monotonic() - start, proxy.accepted - first
        bound = backoff_attempts_bound(elapsed, RECONNECT_MIN, RECONNECT_MAX) + 1  # + 1: the edge
        sys.stderr.write(f"MQTT 5 against RabbitMQ: {count} connections in {elapsed:.1f}s"
                         f" (backoff allows {bound}); {len(named())} lines name the cause\n")
        self.assertGreaterEqual(count, 2, "the relay keeps trying")
        self.assertLessEqual(count, bound, "retried no faster than the backoff")
        self.assertEqual(relay.terminate(), 0)


if __name__ == "__main__":
    interoplib.main()
