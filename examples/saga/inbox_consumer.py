"""An MQTT consumer with an inbox: each message handled once, acknowledged after COMMIT.

Shared by order_service.py and payment_service.py. The rules (doc/design.md §27,
outbox-relay(8) CONSUMERS):

- a persistent session: a fixed client id, clean_start false and a session expiry, so that
  what is published while the consumer is down waits at the broker;
- subscriptions at QoS 1: paho-mqtt 1.6 sends PUBACK after on_message returns, but at
  QoS 2 it sends PUBREC on receipt and keeps the message in memory until PUBREL, so a
  consumer killed in between loses it;
- in on_message, one transaction: inbox_receive(consumer, event-id), and the handler's
  writes (its own outbox rows included) only when that says first time; COMMIT; return.
  paho acknowledges when on_message returns, so after the commit. An exception ends the
  process without acknowledging, and the broker delivers the message again to the next run;
- a handler that finds a row it expects missing raises NotYet: the transaction is rolled
  back and tried again a little later. An event can arrive before the transaction that
  caused it is visible in the database it came from (PostgreSQL can decode a commit a
  moment before other sessions see it), which a reply coming back to its requester's
  database may meet.

--ack-before-commit N turns the last rule around, to show what it prevents: on_message
queues the message and returns at once (paho acknowledges it), and a worker thread handles
it in a transaction committed every N messages. A consumer killed meanwhile has
acknowledged messages whose effects it never committed: they are lost.
"""

import argparse
import os
import queue
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import psycopg2

SESSION_EXPIRY = 7 * 24 * 3600   # seconds the broker keeps the session while we are away
INBOX = "outbox_relay"           # the bookkeeping schema holding config/inbox.sql
RETRY_DELAY = 0.05               # seconds between tries of a handler that raised NotYet
RETRIES = 200                    # then the process ends, unacknowledged


class NotYet(Exception):
    """Raised by a handler: what the message refers to is not visible yet; try again."""


_say_lock = threading.Lock()


def say(text):
    """One whole line on stdout, also from the worker thread."""
    with _say_lock:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def event_id(msg):
    """The relay's event-id user property of a message (MQTT 5)."""
    for name, value in getattr(msg.properties, "UserProperty", []):
        if name == "event-id":
            return value
    raise ValueError(f"a message on {msg.topic} without an event-id")


def arguments(description, name):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", required=True,
                        help="libpq connection string of the service's database")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--client-id", default=name,
                        help="MQTT client id, fixed: it names the persistent session")
    parser.add_argument("--ack-before-commit", type=int, metavar="N", default=0,
                        help="UNSAFE: acknowledge on receipt, commit every N messages")
    return parser.parse_args()


class Consumer:
    """Runs handler(cursor, message) once per event, in the inbox's transaction."""

    def __init__(self, args, subscriptions, handler):
        self.name = args.client_id
        self.args = args
        self.subscriptions = subscriptions
        self.handler = handler
        self.db = psycopg2.connect(args.db)
        self.batch = args.ack_before_commit
        self.queue = queue.Queue()
        self.client = mqtt.Client(client_id=self.name, protocol=mqtt.MQTTv5)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message_unsafe if self.batch else self.on_message

    # --- the MQTT side -------------------------------------------------------------

    def on_connect(self, client, userdata, flags, reason, properties):
        if reason != 0:
            say(f"{self.name}: connection refused: {reason}")
            return
        # A resumed session keeps its subscriptions; subscribing again is harmless.
        client.subscribe([(topic, 1) for topic in self.subscriptions])

    def on_subscribe(self, client, userdata, mid, reasons, properties):
        say(f"{self.name}: subscribed to {', '.join(self.subscriptions)}")

    def on_message(self, client, userdata, msg):
        """The safe way: handle and COMMIT here; paho sends PUBACK when this returns."""
        for attempt in range(RETRIES):
            try:
                with self.db:              # COMMIT on return, ROLLBACK on an exception
                    with self.db.cursor() as cur:
                        self.handle(cur, msg)
                return
            except NotYet as e:
                say(f"{self.name}: {e}; trying again")
                time.sleep(RETRY_DELAY)
        raise RuntimeError(f"{self.name}: gave up on {msg.topic} {event_id(msg)}")

    def handle(self, cur, msg):
        cur.execute(f"SELECT {INBOX}.inbox_receive(%s, %s)", (self.name, event_id(msg)))
        if cur.fetchone()[0]:
            self.handler(cur, msg)

    # --- the unsafe way, for comparison ------------------------------------------------

    def on_message_unsafe(self, client, userdata, msg):
        self.queue.put(msg)                # returns at once: paho acknowledges now
        say(f"{self.name}: acknowledged {event_id(msg)}")

    def work_unsafe(self):
        try:
            self.work_unsafe_batches()
        except BaseException as e:   # the loop would go on acknowledging: end it all
            say(f"{self.name}: {e!r}")
            os._exit(1)

    def work_unsafe_batches(self):
        cur = self.db.cursor()
        pending = 0
        while True:
            msg = self.queue.get()
            if msg is None:
                break
            self.handle(cur, msg)
            pending += 1
            say(f"{self.name}: handled {event_id(msg)}, not committed: {pending}")
            if pending == self.batch:
                self.db.commit()
                pending = 0
        self.db.commit()

    # --- running -------------------------------------------------------------------

    def run(self):
        """Until SIGTERM or SIGINT; returns the exit status."""
        signal.signal(signal.SIGTERM, lambda *_: self.client.disconnect())
        signal.signal(signal.SIGINT, lambda *_: self.client.disconnect())
        worker = None
        if self.batch:
            worker = threading.Thread(target=self.work_unsafe, daemon=True)
            worker.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        # clean_start=False on every connect: paho's default starts clean on the first
        # connect of the process, which would drop what waited for us at the broker.
        self.client.connect(self.args.mqtt_host, self.args.mqtt_port, keepalive=30,
                            clean_start=False, properties=props)
        self.client.loop_forever(retry_first_connection=True)
        if worker:
            self.queue.put(None)
            worker.join()
        self.db.close()
        say(f"{self.name}: stopped")
        return 0


def main(description, name, subscriptions, handler):
    args = arguments(description, name)
    sys.exit(Consumer(args, subscriptions, handler).run())
