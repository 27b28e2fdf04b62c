"""The interop suite's shared parts: one PostgreSQL and one broker (Mosquitto, ejabberd or
RabbitMQ) per test class, the stream of one broker x protocol x QoS combination with a relay
restart and a broker crash in its middle, what a subscriber got, and the result table.

The suite runs only when OUTBOX_INTEROP=1 (`./scripts/test --interop` sets it): it starts
three brokers, two of them Erlang nodes that take seconds to boot, and CI's time is short.
"""

import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.mosquitto import Mosquitto  # noqa: E402
from harness.util import tcp_queues, wait_until  # noqa: E402

EVENTS = int(os.environ.get("OUTBOX_INTEROP_EVENTS", "2000"))
# The writer's pace: the stream lasts a few seconds, so that the relay restart and the
# broker crash fall in its middle whatever the broker's speed, and a backlog builds while
# the broker is away.
ROWS_PER_SECOND = 400
# The subscriber's MQTT 5 Receive Maximum (see tests/tools/mqtt_recorder.c).
RECEIVE_MAXIMUM = 65535
# The relay's default window (man/outbox-relay.yaml.5, broker.max_inflight), which the suite
# keeps: users run with it.
DEFAULT_WINDOW = {"mqttv5": 1000, "mqttv311": 20}
PROTOCOL_NUMBER = {"mqttv5": 5, "mqttv311": 311}
PROTOCOL_NAME = {"mqttv5": "5", "mqttv311": "3.1.1"}

ROWS = []           # one dict per combination run, in the order run
_began = time.monotonic()


def enabled():
    return os.environ.get("OUTBOX_INTEROP") == "1"


def require_enabled():
    """setUpModule of every interop file: skipped unless asked for."""
    if not enabled():
        raise unittest.SkipTest("the interop suite runs with OUTBOX_INTEROP=1"
                                " (./scripts/test --interop)")


def main():
    """Entry point of every interop file: exit status 77 (meson's "skipped") unless
    OUTBOX_INTEROP=1."""
    if not enabled():
        sys.stdout.write("skipped: the interop suite runs with OUTBOX_INTEROP=1"
                         " (./scripts/test --interop)\n")
        sys.exit(77)
    harness.main()


# --- brokers -------------------------------------------------------------------------------

class HarnessMosquitto(Mosquitto):
    """Mosquitto as a user runs it: its default in-flight limit (20), no persistence."""

    kind = "Mosquitto"
    mqtt5 = True
    username = password = None     # anonymous clients (allow_anonymous true)

    def __init__(self, workdir, name="mosquitto", extra_config=""):
        super().__init__(workdir, extra_config=extra_config, name=name,
                         max_inflight_messages=None)
        self.startup_seconds = []

    def start(self, attempts=5):
        began = time.monotonic()
        super().start(attempts)
        self.startup_seconds.append(time.monotonic() - began)

    def kill(self):
        self.stop(signal.SIGKILL)

    @property
    def pid(self):
        return None if self.proc is None else self.proc.pid

    def version(self):
        match = re.search(r"mosquitto version (\S+)", self.log_text())
        return match.group(1) if match else "?"


class PacedWriter(harness.Writer):
    """harness.Writer at no more than rows_per_second committed rows."""

    def __init__(self, pg, dbname, rows_per_second, **kwargs):
        super().__init__(pg, dbname, **kwargs)
        self.rate = rows_per_second
        self._began = None

    def _write_transaction(self, txn):
        if self._began is None:
            self._began = time.monotonic()
        super()._write_transaction(txn)
        ahead = len(self.events) / self.rate - (time.monotonic() - self._began)
        if ahead > 0:
            time.sleep(ahead)


# --- what arrived -----------------------------------------------------------------------

def compact(msg):
    """(event-id, topic, payload text) of a recorder message: from the user properties on
    MQTT 5, from the envelope (`payload: envelope`) on MQTT 3.1.1. The payload is the outbox
    column's JSON as PostgreSQL prints it, for comparison with the committed rows."""
    props = dict(tuple(p) for p in msg.get("user_properties", []))
    if "event-id" in props:
        return props["event-id"], msg["topic"], msg.get("payload")
    try:
        envelope = json.loads(msg.get("payload", ""))
        return (str(envelope["event_id"]), msg["topic"],
                json.dumps(envelope["row"]["payload"]))
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"no event-id property and no envelope in {msg!r}") from None


class Arrivals:
    """A recorder transform that keeps compact messages and counts distinct event-ids."""

    def __init__(self):
        self.seen = set()

    def __call__(self, msg):
        m = compact(msg)
        self.seen.add(m[0])
        return m

    def __len__(self):
        return len(self.seen)


def canonical_payload(text):
    """JSON text compared by value (the envelope re-encodes the outbox column)."""
    return json.dumps(json.loads(text), sort_keys=True)


class Result:
    """What a subscriber got against what was committed."""

    def __init__(self, messages, committed, rolled_back):
        self.sent = len(committed)
        expected = {str(i): (topic, canonical_payload(payload)) for i, topic, payload in committed}
        order = [str(i) for i, _, _ in committed]
        first, self.repeats, self.changed, self.wrong, self.unknown = {}, 0, [], [], []
        firsts = []
        for eid, topic, payload in messages:
            content = (topic, canonical_payload(payload))
            if eid in first:
                self.repeats += 1
                if first[eid] != content:
                    self.changed.append(eid)
                continue
            first[eid] = content
            firsts.append(eid)
            if eid not in expected:
                self.unknown.append(eid)
            elif expected[eid] != content:
                self.wrong.append(eid)
        self.distinct = len([e for e in firsts if e in expected])
        self.lost = [e for e in order if e not in first]
        self.leaked = sorted(set(first) & set(rolled_back))
        got = set(first)
        self.in_order = [e for e in firsts if e in expected] == [e for e in order if e in got]

    def row(self, broker, protocol, qos, relay_session):
        return {"broker": broker, "protocol": PROTOCOL_NAME[protocol], "qos": qos,
                "sent": self.sent, "received": self.distinct, "lost": len(self.lost),
                "duplicates": self.repeats, "in_order": "yes" if self.in_order else "no",
                "relay_session": relay_session}


COLUMNS = [("broker", "broker"), ("protocol", "protocol"), ("qos", "QoS"), ("sent", "sent"),
           ("received", "received (distinct)"), ("lost", "lost"), ("duplicates", "duplicates"),
           ("in_order", "in order"), ("relay_session", "relay's session after the broker crash")]


def table_line(row):
    return "| " + " | ".join(f"{row[key]:,}" if isinstance(row[key], int) and key != "qos"
                             else str(row[key]) for key, _ in COLUMNS) + " |"


def table(rows):
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    return "\n".join([head, rule] + [table_line(r) for r in rows])


SESSIONS = []       # (broker, after a stop, after a kill)


def print_table():
    """The whole table of the combinations run, and what subscribers' sessions survived, on
    stdout (tearDownModule)."""
    if ROWS:
        sys.stdout.write(f"\n{table(ROWS)}\n\n{len(ROWS)} combinations, {EVENTS:,} events"
                         " each\n")
    if SESSIONS:
        sys.stdout.write("\n| broker | subscriber's session after a stop and start | after kill -9"
                         " and start |\n|---|---|---|\n")
        for broker, stopped, killed in SESSIONS:
            sys.stdout.write(f"| {broker} | {stopped} | {killed} |\n")
    sys.stdout.write(f"\ninterop: {time.monotonic() - _began:.0f} s\n")
    sys.stdout.flush()


# --- sockets of a process ------------------------------------------------------------------

def local_port_to(pid, remote_port):
    """The local port of pid's established loopback TCP connection to remote_port, or None."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                return int(local.split(":")[1], 16)
    return None


# --- the test case ---------------------------------------------------------------------------

class InteropCase(harness.IntegrationCase):
    """setUpClass starts PostgreSQL and the class's broker (make_broker); self.mqtt is the
    broker, so the harness's recorder and relay configuration use it."""

    broker_label = "?"

    @classmethod
    def make_broker(cls, workdir):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        sys.stderr.write(f"{cls.mqtt.kind}: started in {cls.mqtt.startup_seconds[0]:.1f} s\n")

    @classmethod
    def tearDownClass(cls):
        if cls.mqtt is not None:
            starts = ", ".join(f"{s:.1f}" for s in cls.mqtt.startup_seconds)
            sys.stderr.write(f"{cls.mqtt.kind}: start-up times {starts} s\n")
        super().tearDownClass()

    # --- pieces ---------------------------------------------------------------------

    def broker_settings(self, protocol):
        """broker: keys for the relay: protocol, the broker's credentials, a short backoff;
        the relay's default window (no max_inflight)."""
        broker = {"protocol": protocol, "reconnect": {"min": "100ms", "max": "1s"}}
        if self.mqtt.username is not None:
            broker["username"] = self.mqtt.username
        if self.mqtt.password is not None:
            path = os.path.join(self.workdir, f"{self.name}.mqtt-password")
            with open(path, "w") as f:
                f.write(self.mqtt.password + "\n")
            os.chmod(path, 0o600)
            broker["password_file"] = path
        return broker

    def interop_relay(self, db, protocol, qos, broker_extra=None, **overrides):
        route = harness.default_route()
        route["qos"] = qos
        if protocol == "mqttv311":
            route["payload"] = "envelope"   # no properties: the event-id is in the body
        broker = dict(self.broker_settings(protocol), **(broker_extra or {}))
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name, [route],
                                      broker=broker, **overrides)
        del config["broker"]["max_inflight"]
        return self.relay_with_config(config)

    def subscriber(self, protocol, qos):
        """A persistent subscriber at the route's QoS, over the relay's protocol."""
        kwargs = {"receive_maximum": RECEIVE_MAXIMUM} if protocol == "mqttv5" else {}
        return self.start_recorder(filters=("shop/#",), qos=qos,
                                   protocol=PROTOCOL_NUMBER[protocol],
                                   client_id=f"rec-{self.name}"[:23], persistent=True,
                                   transform=Arrivals(), **kwargs)

    def fence(self, rec, qos, timeout=60):
        """Everything the broker accepted before is at the subscriber (a QoS 2 marker when the
        subscription is QoS 2: QoS 2 messages are handed over at PUBREL)."""
        return rec.sync(timeout=timeout, qos=qos)

    def wait_resubscribed(self, rec, qos, timeout=120):
        """After a broker restart: fences until one comes back (the recorder reconnects every
        200 ms and subscribes again)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.fence(rec, qos, timeout=3)
            except (TimeoutError, OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise

    # --- the faults ---------------------------------------------------------------------

    def restart_relay(self, relay):
        """SIGTERM mid-stream: the relay waits for its acknowledgements, checkpoints and exits
        0; it starts again at once."""
        self.assertEqual(relay.terminate(), 0, "the relay stops cleanly on SIGTERM")
        relay.start()

    def crash_broker(self, relay, rec, qos):
        """kill -9 of the broker by its PID, and a start on the same port.

        The relay is held still (SIGSTOP) meanwhile, as in tests/fault/test_mqtt_sessions.py:
        the broker reads what the relay sent and acknowledges it, a fence gives the
        subscriber everything the broker forwarded, then the broker dies with the relay's
        window unacknowledged as far as the relay knows (it reads the acknowledgements only
        after). So whatever the subscriber misses afterwards is the relay's to publish
        again, not a message the broker lost in its own queues. Returns how long the broker
        took to come back."""
        port = self.mqtt.port
        relay_port = wait_until(lambda: local_port_to(relay.proc.pid, port), 30,
                                "the relay's connection to the broker", check=relay.check_running)

        def unread():
            out, into = tcp_queues(relay_port, port), tcp_queues(port, relay_port)
            return (out[0] if out else 0) + (into[1] if into else 0)

        with relay.frozen():
            wait_until(lambda: unread() == 0, 60, "the broker to read everything the relay sent")
            self.fence(rec, qos)
            self.mqtt.kill()
            began = time.monotonic()
            self.mqtt.start()
            back = time.monotonic() - began
            self.assertEqual(self.mqtt.port, port, "the broker came back on the relay's port")
            self.wait_resubscribed(rec, qos)
        return back

    # --- one combination ---------------------------------------------------------------------

    def run_combination(self, protocol, qos):
        """EVENTS events through the relay while it is stopped with SIGTERM and started again
        (about a third in) and the broker crashes and comes back (about two thirds in).
        Checks: every committed event received, none of a rolled-back transaction, first
        occurrences in commit order with the committed topic and payload, repeats identical
        and no more than the relay's window; prints the table row."""
        began = time.monotonic()
        db = self.new_database()
        rec = self.subscriber(protocol, qos)
        arrivals = rec._transform
        relay = self.interop_relay(db, protocol, qos).start()
        relay.wait_for_slot(db, self.name)
        writer = PacedWriter(self.pg, db.name, ROWS_PER_SECOND, max_rows_per_txn=5,
                             rollback_every=7)
        self.addCleanup(writer.stop_after, 0)
        writer.stop_after(EVENTS)
        writer.start()

        wait_until(lambda: len(arrivals) >= EVENTS // 3, 300, f"{EVENTS // 3} events",
                   check=relay.check_running, interval=0.05)
        self.restart_relay(relay)
        wait_until(lambda: len(arrivals) >= EVENTS * 2 // 3, 300, f"{EVENTS * 2 // 3} events",
                   check=relay.check_running, interval=0.05)
        log_before = len(relay.stderr())
        down = self.crash_broker(relay, rec, qos)
        delivered_at_crash = len(arrivals)
        writer.finish(timeout=300)
        total = len(writer.events)     # at least EVENTS: the writer ends on a commit
        wait_until(lambda: self.published(db) >= total, 300, "the relay to checkpoint every event",
                   check=relay.check_running, interval=0.1)
        after_crash = relay.stderr()[log_before:]
        self.assertEqual(relay.terminate(), 0)
        messages = self.fence(rec, qos)
        self.assertLess(delivered_at_crash, total, "the broker crashed before the end of the stream")

        result = Result(messages, writer.events, writer.rolled_back)
        if "session=resumed" in after_crash:
            session = "kept"
        elif "did not keep the session" in after_crash:
            session = "lost"
        else:
            session = "new (none in flight)"
        row = result.row(self.broker_label, protocol, qos, session)
        ROWS.append(row)
        sys.stdout.write(table_line(row) + "\n")
        sys.stdout.flush()
        sys.stderr.write(f"{self.broker_label} {protocol} QoS {qos}: {time.monotonic() - began:.1f} s,"
                         f" broker back in {down:.1f} s\n")

        self.assertEqual(result.lost[:10], [], f"{len(result.lost)} committed events lost")
        self.assertEqual(result.leaked[:10], [], "events of rolled-back transactions")
        self.assertEqual(result.unknown[:10], [], "events nobody committed")
        self.assertTrue(result.in_order, "first occurrences out of commit order")
        self.assertEqual(result.wrong[:10], [], "events with the wrong topic or payload")
        self.assertEqual(result.changed[:10], [], "repeats that differ from the original")
        self.assertLessEqual(result.repeats, DEFAULT_WINDOW[protocol],
                             "more repeats than the relay's window: only the broker crash may"
                             " repeat, and only what was in flight")
        checkpoint = self.checkpoint(db)
        self.assertEqual(checkpoint["published"], total)
        self.assertEqual(checkpoint["confirmed_lsn"], self.slot_confirmed(db))

    # --- what a subscriber's session survives ------------------------------------------

    def subscriber_session_survives(self, how, broker=None):
        """Whether a persistent QoS 1 subscriber that is away gets, after it comes back, a
        message published while it was away, when the broker was stopped (how="stop",
        SIGTERM) or killed (how="kill") and started again meanwhile. "kept" or "lost"."""
        broker = broker or self.mqtt
        protocol = 5 if broker.mqtt5 else 311
        client_id = f"probe-{how}-{self.name}"[:23]
        topic = f"probe/{how}"

        def recorder():
            return harness.Recorder(broker, self.workdir, (topic,), qos=1, protocol=protocol,
                                    client_id=client_id, persistent=True,
                                    name=f"{self.name}.{how}.recorder")
        rec = recorder().start()
        self.assertEqual(rec.stop(), 0)        # a clean disconnect: the session stays
        with harness.Publisher(broker.port, client_id=f"probe-pub-{how}", protocol=protocol,
                               username=broker.username, password=broker.password) as pub:
            pub.publish(topic, b"queued while away", qos=1)
        if how == "kill":
            broker.kill()
        else:
            broker.stop()
        broker.start()
        rec = recorder()
        self.addCleanup(rec.stop)
        rec.start()
        self.wait_resubscribed(rec, 1)
        got = [m for m in rec.messages if m["topic"] == topic]
        rec.stop()
        return "kept" if got else "lost"

    def check_sessions(self, label, expected, broker=None):
        """Records and checks what a subscriber's session survives (doc/brokers.md)."""
        found = {how: self.subscriber_session_survives(how, broker) for how in ("stop", "kill")}
        SESSIONS.append((label, found["stop"], found["kill"]))
        sys.stdout.write(f"{label}: a persistent subscriber's session after a stop: {found['stop']},"
                         f" after a kill: {found['kill']}\n")
        self.assertEqual(found, expected, f"{label}: what a subscriber's session survives")

    def published(self, db):
        cp = self.checkpoint(db)
        return cp["published"] if cp else 0


__all__ = ["EVENTS", "main", "HarnessMosquitto", "InteropCase", "ROWS", "Result", "SESSIONS",
           "enabled", "print_table", "require_enabled", "table", "table_line"]
