"""Runs tests/tools/mqtt_recorder and collects the messages it prints, one JSON a line."""

import base64
import json
import os
import subprocess
import threading
import uuid

from .mqtt_publish import Publisher
from .util import print_tail, register_cleanup, stop_process, unregister_cleanup, wait_until

FENCE_PREFIX = "harness/fence/"
READY_TIMEOUT = 30


def recorder_binary():
    path = os.environ.get("MQTT_RECORDER")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "build", "tests", "tools", "mqtt_recorder")


class Recorder:
    """Subscribes to filters (plus the harness fence topic) and keeps every message.

    Messages are the recorder's JSON objects as dicts; see user_properties() and
    event_id() for reading them. A broker object with username and password attributes
    (brokers that want them) gets them from the recorder and from its fence; one whose
    mqtt5 attribute is false is fenced over MQTT 3.1.1.
    """

    def __init__(self, mqtt, workdir, filters=("#",), qos=1, protocol=5, client_id=None,
                 persistent=False, name="recorder", transform=None, receive_maximum=None):
        """transform: when given, each message (not fence markers) is kept as transform(msg)
        instead of the whole dict, for streams too large to keep every parsed object.
        receive_maximum: the MQTT 5 Receive Maximum to announce (see mqtt_recorder.c)."""
        self.mqtt = mqtt
        self._transform = transform
        self._fences = set()
        self.argv = [recorder_binary(), "-h", "127.0.0.1", "-p", str(mqtt.port), "-q", str(qos),
                     "-V", str(protocol)]
        for topic_filter in list(filters) + [FENCE_PREFIX + "+"]:
            self.argv += ["-t", topic_filter]
        if client_id:
            self.argv += ["-i", client_id]
        if persistent:
            self.argv.append("-c")
        if receive_maximum:
            self.argv += ["-r", str(receive_maximum)]
        self.credentials = {"username": getattr(mqtt, "username", None),
                            "password": getattr(mqtt, "password", None)}
        if self.credentials["username"] is not None:
            self.argv += ["-u", self.credentials["username"]]
            if self.credentials["password"] is not None:
                self.argv += ["-P", self.credentials["password"]]
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._cond = threading.Condition()
        self._all = []
        self._ready = False
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL)
        register_cleanup(self.stop)
        self._ready = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_until(lambda: self._ready, READY_TIMEOUT, "the MQTT recorder to subscribe",
                   check=self._check_running)
        return self

    def _read(self):
        for line in self.proc.stdout:
            obj = json.loads(line)
            with self._cond:
                if obj.get("ready"):
                    self._ready = True
                elif self._transform is None:
                    self._all.append(obj)
                elif obj["topic"].startswith(FENCE_PREFIX):
                    self._fences.add(obj["topic"])
                else:
                    self._all.append(self._transform(obj))
                self._cond.notify_all()

    def _check_running(self):
        if self.proc.poll() is not None:
            print_tail("recorder log", self.log_path)
            raise RuntimeError(f"mqtt_recorder exited with status {self.proc.returncode}")

    def stop(self):
        """SIGTERM; returns the recorder's exit status (0 when it stopped cleanly)."""
        unregister_cleanup(self.stop)
        status = stop_process(self.proc)
        if self.proc is not None:
            self._thread.join(10)
            self.proc.stdout.close()
        return status

    @property
    def messages(self):
        """Every message received so far, fence markers left out."""
        with self._cond:
            if self._transform is not None:
                return list(self._all)
            return [m for m in self._all if not m["topic"].startswith(FENCE_PREFIX)]

    def count(self):
        if self._transform is not None:
            with self._cond:
                return len(self._all)
        return len(self.messages)

    def wait_for_count(self, n, timeout=120, check=None):
        """Waits until at least n messages arrived; returns them all."""
        wait_until(lambda: self.count() >= n, timeout, f"{n} MQTT messages (have {self.count()})",
                   check=check, interval=0.1)
        return self.messages

    def sync(self, timeout=60, qos=1):
        """Publishes a marker and waits for it: everything the broker accepted before is here.

        With qos=2 (and a QoS 2 subscription) the marker reaches the recorder only once
        every earlier message's hand-shake with it is complete: a QoS 1 marker can overtake
        the last QoS 2 messages, which are handed over at PUBREL."""
        topic = FENCE_PREFIX + uuid.uuid4().hex
        with Publisher(self.mqtt.port, client_id="fence-" + uuid.uuid4().hex[:8],
                       protocol=5 if getattr(self.mqtt, "mqtt5", True) else 311,
                       **self.credentials) as pub:
            pub.publish(topic, b"fence", qos=qos)
        with self._cond:
            seen = self._cond.wait_for(lambda: self._seen_fence(topic), timeout)
        if not seen:
            raise TimeoutError(f"the fence message {topic} did not come back within {timeout}s")
        return self.messages

    def _seen_fence(self, topic):
        if self._transform is not None:
            return topic in self._fences
        return any(m["topic"] == topic for m in self._all)


def user_properties(msg):
    return [tuple(pair) for pair in msg.get("user_properties", [])]


def user_property(msg, key):
    """The one value of user property key; raises if it is missing or repeated."""
    values = [v for k, v in user_properties(msg) if k == key]
    if len(values) != 1:
        raise AssertionError(f"expected one {key!r} user property, got {values!r} in {msg!r}")
    return values[0]


def event_id(msg):
    return user_property(msg, "event-id")


def payload_bytes(msg):
    return base64.b64decode(msg["payload_b64"])
