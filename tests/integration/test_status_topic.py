#!/usr/bin/python3
"""doc/design.md §8: broker.status_topic. A retained {"state":"online"} with the stats line's
figures once the relay is ready and at every stats interval, {"state":"stopped"} after
SIGTERM, and the Will {"state":"offline"} when the relay dies; a standby says nothing. A
subscriber that connects later is told the last state at once (retained). Debian's
prometheus-mqtt-exporter, a monitoring system that reads MQTT, turns the messages into
metrics as they are.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.relay import relay_binary  # noqa: E402
from harness.util import free_port, print_tail, register_cleanup, stop_process  # noqa: E402
from harness.util import unregister_cleanup, wait_until  # noqa: E402

TEMPLATE = "outbox-relay/{client_id}/status"
FIGURES = ("published", "rate", "dead_lettered", "pending", "lag_bytes", "lag_ms",
           "checkpoint_lsn", "reconnects")
EXPORTER = "/usr/bin/prometheus-mqtt-exporter"


def relay_version():
    out = subprocess.run([relay_binary(), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.splitlines()[0].split()[1]   # "outbox-relay 0.1.0", then the libraries


class StatusTopicTest(harness.IntegrationCase):

    def status_relay(self, db, name=None, protocol="mqttv5", stats_interval="1s", port=None):
        return self.new_relay(db, name=name,
                              broker={"status_topic": TEMPLATE, "protocol": protocol,
                                      "port": port or self.mqtt.port},
                              log={"stats_interval": stats_interval})

    def client_id(self):
        return f"outbox-relay-{self.name}"

    def topic(self):
        return TEMPLATE.format(client_id=self.client_id())

    def subscriber(self, name, protocol=5):
        """A recorder of the status topic alone; each connects afresh."""
        rec = harness.Recorder(self.mqtt, self.workdir, (self.topic(),), protocol=protocol,
                               name=f"{self.name}.{name}")
        self.addCleanup(rec.stop)
        return rec.start()

    def statuses(self, rec):
        """(state object, retain flag) of every message on the topic, in order."""
        return [(json.loads(m["payload"]), m["retain"]) for m in rec.messages
                if m["topic"] == self.topic()]

    def wait_for(self, rec, predicate, what, relay=None):
        """Waits for a message whose state object satisfies predicate; returns the object."""
        def found():
            return next((s for s, _ in self.statuses(rec) if predicate(s)), None)
        return wait_until(found, 60, what, check=relay.check_running if relay else None)

    def insert(self, db, n, first=0):
        with db.transaction() as cur:
            for i in range(first, first + n):
                insert_event(cur, "order", str(i), "placed", json.dumps({"i": i}))

    def ready(self, relay):
        wait_until(lambda: "ready:" in relay.stderr(), 60, "the relay to be ready",
                   check=relay.check_running)

    def assert_online(self, state, slot):
        self.assertEqual(state["state"], "online", state)
        self.assertEqual(state["client_id"], self.client_id())
        self.assertEqual(state["slot"], slot)
        self.assertEqual(state["version"], relay_version())
        when = datetime.datetime.strptime(state["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        age = datetime.datetime.now(datetime.timezone.utc) - when.replace(
            tzinfo=datetime.timezone.utc)
        self.assertLess(abs(age.total_seconds()), 60, state)
        for key in FIGURES:
            self.assertIn(key, state)
        for key in ("published", "dead_lettered", "pending", "lag_bytes", "lag_ms", "reconnects"):
            self.assertIsInstance(state[key], int, state)
        self.assertIsInstance(state["rate"], (int, float), state)
        harness.parse_lsn(state["checkpoint_lsn"])

    def test_online_with_moving_figures_then_stopped_after_sigterm(self):
        db = self.new_database()
        relay = self.status_relay(db).start()
        self.ready(relay)

        # Retained: a subscriber that connects after the relay is told at once.
        late = self.subscriber("late")
        first = self.wait_for(late, lambda s: True, "the retained status")
        self.assertTrue(self.statuses(late)[0][1], "the first message is the retained one")
        self.assert_online(first, self.name)
        self.assertEqual(first["published"], 0, first)
        self.assertEqual(late.messages[0].get("content_type"), "application/json")

        # Renewed every stats interval, with the figures of the moment.
        self.insert(db, 7)
        moved = self.wait_for(late, lambda s: s.get("published") == 7 and s["pending"] == 0,
                              "a status with the seven events acknowledged", relay)
        self.assert_online(moved, self.name)
        self.assertEqual(moved["lag_ms"], 0, moved)
        self.insert(db, 5, first=7)
        self.wait_for(late, lambda s: s.get("published") == 12, "a status with twelve", relay)
        renewals = len(self.statuses(late))
        time.sleep(2.5)
        self.assertGreaterEqual(len(self.statuses(late)), renewals + 2, "renewed every second")

        self.assertEqual(relay.terminate(), 0)
        late.sync()
        last, _ = self.statuses(late)[-1]
        self.assertEqual(last["state"], "stopped", last)
        self.assertEqual(last["published"], 12, last)
        self.assertEqual(last["pending"], 0, last)
        self.assertEqual(last["checkpoint_lsn"], self.checkpoint(db)["commit_lsn"])
        # A clean DISCONNECT: the broker kept the Will to itself.
        self.assertNotIn("offline", [s["state"] for s, _ in self.statuses(late)])

        after = self.subscriber("after-stop")
        after.sync()
        self.assertEqual([(s["state"], retained) for s, retained in self.statuses(after)],
                         [("stopped", True)])

    def test_will_says_offline_after_kill_9(self):
        """On MQTT 3.1.1, which has no properties: the Will is the same."""
        db = self.new_database()
        relay = self.status_relay(db, protocol="mqttv311").start()
        self.ready(relay)
        rec = self.subscriber("watcher", protocol=311)
        self.wait_for(rec, lambda s: s["state"] == "online", "online", relay)

        relay.proc.send_signal(signal.SIGKILL)
        self.assertEqual(relay.wait(), -signal.SIGKILL)
        offline = self.wait_for(rec, lambda s: s["state"] == "offline", "the Will")
        self.assertEqual(offline, {"state": "offline", "client_id": self.client_id()})
        after = self.subscriber("after-kill")
        after.sync()
        self.assertEqual(self.statuses(after), [(offline, True)])

        # Started again, it is online again, with what the checkpoint counted.
        self.insert(db, 3)
        relay.start()
        back = self.wait_for(after, lambda s: s["state"] == "online" and s["published"] == 3,
                             "online again with three published", relay)
        self.assert_online(back, self.name)
        self.assertEqual(relay.terminate(), 0)

    def test_lost_connection_says_offline_until_back(self):
        """The broker sees the connection reset: it publishes the Will; the relay, connected
        again, says online again, one reconnection more."""
        db = self.new_database()
        proxy = harness.Proxy(self.mqtt.port)
        self.addCleanup(proxy.close)
        relay = self.status_relay(db, port=proxy.port, stats_interval="1h").start()
        self.ready(relay)
        rec = self.subscriber("watcher")
        self.wait_for(rec, lambda s: s["state"] == "online", "online", relay)

        proxy.drop()
        self.wait_for(rec, lambda s: s["state"] == "offline", "the Will", relay)
        back = self.wait_for(rec, lambda s: s["state"] == "online" and s["reconnects"] == 1,
                             "online again after reconnecting", relay)
        self.assert_online(back, self.name)
        self.assertEqual([s["state"] for s, _ in self.statuses(rec)],
                         ["online", "offline", "online"])
        self.assertEqual(relay.terminate(), 0)

    def test_drain_ends_stopped(self):
        db = self.new_database()
        relay = self.status_relay(db)
        self.assertEqual(relay.run("--drain"), 0)    # makes the slot
        self.insert(db, 3)
        self.assertEqual(relay.run("--drain"), 0)
        rec = self.subscriber("after-drain")
        rec.sync()
        [(last, retained)] = self.statuses(rec)
        self.assertTrue(retained)
        self.assertEqual((last["state"], last["published"], last["pending"]), ("stopped", 3, 0))

    def test_refused_by_the_broker_events_go_on(self):
        """A broker whose ACL leaves the status topic out refuses each status message (MQTT 5
        says so, 0x87): the relay warns once, and the events it publishes are not held up."""
        acl = os.path.join(self.workdir, f"{self.name}.acl")
        with open(acl, "w") as f:
            f.write("topic readwrite shop/#\ntopic readwrite harness/#\n")
        os.chmod(acl, 0o644)   # the broker runs as another user
        broker = harness.Mosquitto(self.workdir, name=f"{self.name}.mosquitto",
                                   extra_config=f"acl_file {acl}\n")
        broker.start()
        self.addCleanup(broker.stop)
        rec = harness.Recorder(broker, self.workdir, ("shop/#",), name=f"{self.name}.events")
        self.addCleanup(rec.stop)
        rec.start()
        db = self.new_database()
        relay = self.status_relay(db, port=broker.port).start()
        self.ready(relay)
        warning = "the broker refuses messages on the status topic"
        wait_until(lambda: warning in relay.stderr(), 30, "the warning", check=relay.check_running)
        self.insert(db, 5)
        rec.wait_for_count(5, check=relay.check_running)
        time.sleep(2)   # renewals, refused again
        self.assertEqual(relay.stderr().count(warning), 1, relay.stderr())
        self.assertIn("reason=\"Not authorized\"", relay.stderr())
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.checkpoint(db)["published"], 5)

    def test_standby_says_nothing_until_it_takes_over(self):
        db = self.new_database()
        active = self.status_relay(db, name="active").start()
        self.ready(active)
        rec = self.subscriber("watcher")
        self.wait_for(rec, lambda s: s["state"] == "online", "online", active)

        standby = self.status_relay(db, name="standby").start()
        wait_until(lambda: "waiting as a standby" in standby.stderr(), 30, "the standby to wait",
                   check=standby.check_running)
        time.sleep(2)
        # One connection with the client id: the active relay's.
        self.assertEqual(len(self.mqtt.client_connections(self.client_id())), 1)

        self.assertEqual(active.terminate(), 0)
        wait_until(lambda: "ready:" in standby.stderr(), 60, "the standby to take over",
                   check=standby.check_running)

        def online_after_stop():
            states = [s["state"] for s, _ in self.statuses(rec)]
            return "stopped" in states and "online" in states[states.index("stopped"):]
        wait_until(online_after_stop, 60, "online from the relay that took over",
                   check=standby.check_running)
        self.assertEqual(standby.terminate(), 0)
        rec.sync()
        self.assertEqual(self.statuses(rec)[-1][0]["state"], "stopped")

    def test_prometheus_mqtt_exporter_reads_it(self):
        """Debian's prometheus-mqtt-exporter, configured with the relay's field names only."""
        if not os.path.exists(EXPORTER):
            self.skipTest(f"{EXPORTER} is not installed (Debian: prometheus-mqtt-exporter)")
        port = free_port()
        exporter = self.start_exporter(port)
        db = self.new_database()
        relay = self.status_relay(db).start()
        self.ready(relay)
        self.insert(db, 4)

        def metric(name):
            """The value of name for this relay in /metrics, or None."""
            url = f"http://127.0.0.1:{port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                return None
            # name{labels} value [timestamp]
            for line in text.splitlines():
                if line.startswith(name + "{") and f'sensor="{self.client_id()}"' in line:
                    return float(line.split("} ", 1)[1].split()[0])
            return None

        def exporter_running():
            if exporter.poll() is not None:
                print_tail("exporter log", self.exporter_log)
                raise RuntimeError(f"the exporter exited with status {exporter.returncode}")

        def both_running():
            relay.check_running()
            exporter_running()

        wait_until(lambda: metric("outbox_relay_published") == 4, 60,
                   "the exporter to show 4 published", check=both_running)
        self.assertEqual(metric("outbox_relay_up"), 1)
        self.assertEqual(metric("outbox_relay_pending"), 0)
        self.assertEqual(relay.terminate(), 0)
        wait_until(lambda: metric("outbox_relay_up") == 0, 60, "the exporter to show it stopped",
                   check=exporter_running)
        self.assertEqual(metric("outbox_relay_published"), 4)

    exporter_log = None

    def start_exporter(self, port):
        """The exporter on a loopback port, subscribed to every relay's status topic; stopped
        by its PID at the end of the test."""
        config = os.path.join(self.workdir, f"{self.name}.exporter.yaml")
        with open(config, "w") as f:
            f.write(EXPORTER_CONFIG.format(mqtt_port=self.mqtt.port, client_id=f"exporter-{port}"))
        self.exporter_log = os.path.join(self.workdir, f"{self.name}.exporter.log")
        with open(self.exporter_log, "ab") as log:
            proc = subprocess.Popen([EXPORTER, "-config", config, "-listen-address", "127.0.0.1",
                                     "-listen-port", str(port)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir)

        def stop():
            unregister_cleanup(stop)
            stop_process(proc)
        register_cleanup(stop)
        self.addCleanup(stop)
        return proc


# prometheus-mqtt-exporter's configuration (/usr/share/doc/prometheus-mqtt-exporter): the
# device id is the relay's client id, taken from the topic; "state" becomes 1 for online.
EXPORTER_CONFIG = """mqtt:
  server: tcp://127.0.0.1:{mqtt_port}
  client_id: {client_id}
  topic_path: outbox-relay/+/status
  device_id_regex: "outbox-relay/(?P<deviceid>[^/]+)/status"
  qos: 1
cache:
  timeout: 24h
metrics:
  - prom_name: outbox_relay_up
    mqtt_name: state
    help: 1 while the relay is online
    type: gauge
    string_value_mapping:
      map:
        online: 1
        stopped: 0
        offline: 0
      error_value: 0
  - prom_name: outbox_relay_published
    mqtt_name: published
    help: Events acknowledged over the slot's life
    type: gauge
  - prom_name: outbox_relay_pending
    mqtt_name: pending
    help: Events received and not yet acknowledged
    type: gauge
  - prom_name: outbox_relay_lag_ms
    mqtt_name: lag_ms
    help: Age of the oldest committed event not yet acknowledged
    type: gauge
"""


if __name__ == "__main__":
    harness.main()
