#!/usr/bin/python3
"""The relay against the brokers it claims to work with (doc/brokers.md): for each broker x
protocol x QoS, EVENTS events streamed through a relay that is stopped with SIGTERM and
started again a third of the way in, and a broker killed by its PID and started again on
the same port two thirds of the way in; every committed event must arrive, in commit order,
with its topic and payload, repeats only from the crash. Each combination prints its table
row; the whole markdown table ends the output.

- Mosquitto (Debian 12: 2.0.11) as users run it: its default in-flight limit, no
  persistence. MQTT 5 and 3.1.1, QoS 1 and 2.
- ejabberd (23.01) with mod_mqtt, anonymous login with a user name (tests/harness/ejabberd.py).
  MQTT 5 and 3.1.1, QoS 1 and 2.
- RabbitMQ (3.10) with rabbitmq_mqtt, a user and password (tests/harness/rabbitmq.py). MQTT
  3.1.1 at QoS 1 only: it has no MQTT 5 and answers a QoS 2 PUBLISH with PUBACK
  (test_broker_refusals.py).

Runs with OUTBOX_INTEROP=1 only (./scripts/test --interop). OUTBOX_INTEROP_EVENTS sets the
number of events per combination (2,000).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import interoplib  # noqa: E402
from interoplib import HarnessMosquitto, InteropCase  # noqa: E402
from harness.ejabberd import Ejabberd  # noqa: E402
from harness.mosquitto import PERSISTENCE_CONFIG, prepare_persistence  # noqa: E402
from harness.rabbitmq import RabbitMQ  # noqa: E402


def setUpModule():
    interoplib.require_enabled()


def tearDownModule():
    interoplib.print_table()


class EveryCombination:
    """MQTT 5 and 3.1.1, QoS 1 and 2: for a broker that supports them all."""

    def test_mqttv5_qos1(self):
        self.run_combination("mqttv5", 1)

    def test_mqttv5_qos2(self):
        self.run_combination("mqttv5", 2)

    def test_mqttv311_qos1(self):
        self.run_combination("mqttv311", 1)

    def test_mqttv311_qos2(self):
        self.run_combination("mqttv311", 2)


class MosquittoTest(EveryCombination, InteropCase):
    broker_label = "Mosquitto 2.0"

    @classmethod
    def make_broker(cls, workdir):
        return HarnessMosquitto(workdir)

    def test_subscriber_sessions(self):
        """Without persistence a restart ends every session; with it (written at shutdown
        and every autosave_interval, 30 minutes by default) a stop keeps them and a crash
        loses what came since the last save."""
        self.check_sessions(self.broker_label, {"stop": "lost", "kill": "lost"})
        persistent = HarnessMosquitto(self.workdir, name="mosquitto-persistent",
                                      extra_config=PERSISTENCE_CONFIG.format(workdir=self.workdir))
        prepare_persistence(self.workdir)
        self.addCleanup(persistent.stop)
        persistent.start()
        self.check_sessions(f"{self.broker_label}, persistence true", {"stop": "kept", "kill": "lost"},
                            persistent)


class EjabberdTest(EveryCombination, InteropCase):
    broker_label = "ejabberd 23.01"

    @classmethod
    def make_broker(cls, workdir):
        return Ejabberd(workdir)

    def test_subscriber_sessions(self):
        """mod_mqtt keeps sessions in RAM tables: any restart ends them."""
        self.check_sessions(self.broker_label, {"stop": "lost", "kill": "lost"})


class RabbitMQTest(InteropCase):
    broker_label = "RabbitMQ 3.10"

    @classmethod
    def make_broker(cls, workdir):
        return RabbitMQ(workdir)

    def test_mqttv311_qos1(self):
        self.run_combination("mqttv311", 1)

    def test_subscriber_sessions(self):
        """A persistent subscriber's queue is a durable queue, and a QoS 1 message a persistent
        message confirmed on disk before the PUBACK: both survive a crash."""
        self.check_sessions(self.broker_label, {"stop": "kept", "kill": "kept"})


if __name__ == "__main__":
    interoplib.main()
