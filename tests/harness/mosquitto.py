"""A throwaway Mosquitto broker on a free loopback port.

Started as root, Mosquitto drops to the `mosquitto` user: its log goes to stderr, which
the harness redirects to a file it opened itself, and persistence is off, so the broker
writes nothing else.

The harness lifts the broker's in-flight limit (`max_inflight_messages 0`) unless told to
keep Mosquitto's default (20), which an MQTT 3.1.1 publisher is never told about.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess

from .util import free_port, is_root, port_open, print_tail, register_cleanup, unregister_cleanup
from .util import stop_process, wait_until

START_TIMEOUT = 30

CONFIG = """# written by the outbox-relay test harness
listener {port} 127.0.0.1
allow_anonymous true
{max_inflight}max_queued_messages 1000000
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
"""


def find_mosquitto():
    """MOSQUITTO, or mosquitto on PATH, or where Debian installs it (not on a user's PATH)."""
    path = os.environ.get("MOSQUITTO") or shutil.which("mosquitto")
    if path:
        return path
    if os.path.exists("/usr/sbin/mosquitto"):
        return "/usr/sbin/mosquitto"
    raise RuntimeError("mosquitto not found; install the mosquitto package or set MOSQUITTO")


class Mosquitto:
    def __init__(self, workdir, extra_config="", name="mosquitto", max_inflight_messages=0):
        """extra_config: lines appended to the harness's configuration (ACLs, limits...).
        max_inflight_messages: the broker's per-client in-flight limit (0: none); None
        leaves the line out, so Mosquitto's own default applies."""
        self.binary = find_mosquitto()
        self.extra_config = extra_config
        self.max_inflight_messages = max_inflight_messages
        self.workdir = workdir
        self.config_path = os.path.join(workdir, f"{name}.conf")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.port = None
        self.proc = None

    def start(self, attempts=5):
        """Starts the broker; keeps its port across restarts, takes a new one if it was taken."""
        for _ in range(attempts):
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return
            self.port = None
        print_tail("mosquitto log", self.log_path)
        raise RuntimeError("Mosquitto did not start")

    def _start_on(self, port):
        with open(self.config_path, "w") as f:
            limit = self.max_inflight_messages
            f.write(CONFIG.format(port=port, max_inflight="" if limit is None
                                  else f"max_inflight_messages {limit}\n"))
            f.write(self.extra_config)
        os.chmod(self.config_path, 0o644)
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", self.config_path],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)
        register_cleanup(self.stop)
        try:
            wait_until(lambda: self._running() and port_open(port), START_TIMEOUT,
                       "Mosquitto to listen", check=self._check_running)
        except RuntimeError:
            unregister_cleanup(self.stop)
            return False
        except TimeoutError:
            self.stop()
            raise
        return True

    def _running(self):
        """Our broker has opened its listener (rather than someone else holding the port)."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return b" running" in f.read()

    def _check_running(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with status {self.proc.returncode}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the broker by its PID (SIGTERM; SIGKILL for a crash)."""
        unregister_cleanup(self.stop)
        stop_process(self.proc, sig, timeout)
        self.proc = None

    def print_logs(self, lines=40):
        print_tail("mosquitto log", self.log_path, lines)

    def restart(self):
        self.stop()
        self.start()

    # --- what the broker logged (connection_messages is on) ---------------------------

    def log_text(self):
        """The broker's whole log, every run of it."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def starts(self, text=None):
        """How many times the broker came up (its "running" line) in text, by default the
        whole log."""
        text = self.log_text() if text is None else text
        return len(re.findall(r"^\d+: mosquitto version \S+ running$", text, re.M))

    def client_connections(self, client_id, text=None):
        """(remote port, previous log line) of every connection the broker accepted for
        client_id, in order. A previous line "Client ID already connected, closing old
        connection." means the connection took the client id over from a live one. text:
        the log, or the part of it to look at."""
        lines = (self.log_text() if text is None else text).splitlines()
        pattern = re.compile(
            r"^\d+: New client connected from [0-9.]+:(\d+) as (.*) \(p\d+, c\d+, k\d+")
        found = []
        for i, line in enumerate(lines):
            match = pattern.match(line)
            if match and match.group(2) == client_id:
                found.append((int(match.group(1)), lines[i - 1] if i else ""))
        return found

    def live_connection(self, client_id, text=None):
        """The remote port of client_id's connection if the broker holds one now (its last
        connect is not followed by a disconnect), else None."""
        text = self.log_text() if text is None else text
        connected = re.compile(r"^\d+: New client connected from [0-9.]+:(\d+) as (.*) \(p\d")
        gone = re.compile(r"^\d+: (?:Client (.*) (?:disconnected|closed its connection"
                          r"|has exceeded timeout, disconnecting|already connected, closing old"
                          r" connection)|Socket error on client (.*), disconnecting)\.?$")
        restarted = re.compile(r"^\d+: mosquitto version \S+ (?:starting|terminating)$")
        port = None
        for line in text.splitlines():
            if restarted.match(line):
                port = None
                continue
            match = connected.match(line)
            if match and match.group(2) == client_id:
                port = int(match.group(1))
                continue
            match = gone.match(line)
            if match and client_id in (match.group(1), match.group(2)):
                port = None
        return port


# A broker that keeps its state on disk across restarts (add to mosquitto_config, and call
# prepare_persistence from prepare_files).
PERSISTENCE_CONFIG = "persistence true\npersistence_location {workdir}/mqtt-data/\n"


def prepare_persistence(workdir):
    """The directory PERSISTENCE_CONFIG names, writable by the user the broker drops to."""
    data = os.path.join(workdir, "mqtt-data")
    os.mkdir(data, 0o700)
    if is_root():   # the broker drops to the mosquitto user
        pw = pwd.getpwnam("mosquitto")
        os.chown(data, pw.pw_uid, pw.pw_gid)


def took_over(previous_line, client_id):
    """True when previous_line is the broker closing a live connection of client_id."""
    return previous_line.endswith(
        f": Client {client_id} already connected, closing old connection.")
