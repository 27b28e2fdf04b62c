"""Writes a relay configuration and runs the outbox-relay binary under test."""

import contextlib
import copy
import json
import os
import re
import signal
import subprocess

from .util import print_tail, register_cleanup, stop_process, unregister_cleanup, wait_until

DEFAULT_TIMEOUT = 120
_PLAIN = re.compile(r"[A-Za-z0-9_./@-][A-Za-z0-9_./@:-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def relay_binary():
    path = os.environ.get("OUTBOX_RELAY")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "build", "src", "outbox-relay")


# --- configuration ---------------------------------------------------------------

def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not _looks_numeric(text):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _looks_numeric(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _is_scalar(value):
    return not isinstance(value, (dict, list))


def _dump(value, indent):
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_scalar(item):
                lines.append(f"{pad}{key}: {_scalar(item)}")
            else:
                lines.append(f"{pad}{key}:")
                lines.extend(_dump(item, indent + 1))
    else:
        for item in value:
            if _is_scalar(item):
                lines.append(f"{pad}- {_scalar(item)}")
                continue
            nested = _dump(item, indent + 1)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines.extend(nested[1:])
    return lines


def to_yaml(config):
    """Block-style YAML for nested dicts, lists and scalars (enough for relay configs)."""
    return "\n".join(_dump(config, 0)) + "\n"


def default_route(table="public.outbox", event_id="id"):
    route = {"table": table, "topic": "shop/{aggregate_type}/{aggregate_id}", "payload": "payload"}
    if event_id:
        route["event_id"] = event_id
    route["qos"] = 1
    return route


def _merge(base, overrides):
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def relay_config(pg, mqtt, dbname, slot, routes=None, **overrides):
    """A complete configuration for one database and slot; overrides merge by section."""
    config = {
        "source": {
            "conninfo": pg.conninfo(dbname),
            "slot": slot,
            "publication": slot,
            "create_slot": True,
            "create_publication": True,
            "status_interval": "1s",
            "reconnect": {"min": "100ms", "max": "2s"},
        },
        "broker": {
            "host": "127.0.0.1",
            "port": mqtt.port,
            "protocol": "mqttv5",
            "client_id": f"outbox-relay-{slot}",
            "keepalive": "30s",
            "max_inflight": 1000,
        },
        "routes": routes if routes is not None else [default_route()],
        "delivery": {
            "bookkeeping_schema": "outbox_relay",
            "create_bookkeeping": True,
            "checkpoint_interval": "200ms",
            "drain_timeout": "10s",
        },
        "log": {"level": "info"},
    }
    return _merge(config, overrides)


# --- the process -----------------------------------------------------------------

class Relay:
    """One relay configuration; start() may be called again after the process ended."""

    def __init__(self, workdir, name, config=None, env=None, config_file=None):
        """config: dict or text written to WORKDIR/NAME.yaml; or config_file, used as is."""
        self.workdir = workdir
        self.name = name
        self.config_path = config_file or os.path.join(workdir, f"{name}.yaml")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.runs = 0
        if config is not None:
            self.write_config(config)

    def write_config(self, config):
        """config: a dict (written as YAML) or the file's text as is."""
        text = config if isinstance(config, str) else to_yaml(config)
        with open(self.config_path, "w") as f:
            f.write(text)

    @property
    def log_path(self):
        return os.path.join(self.workdir, f"{self.name}.{self.runs}.stderr")

    @property
    def stdout_path(self):
        return os.path.join(self.workdir, f"{self.name}.{self.runs}.stdout")

    def start(self, *args, config=True):
        """Starts outbox-relay [-c CONFIG] ARGS in the background."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the relay is already running")
        self.runs += 1
        argv = [relay_binary()] + (["-c", self.config_path] if config else []) + list(args)
        with open(self.log_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=self.env)
        register_cleanup(self.kill)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_running(self):
        """For wait_until: raises if the relay exited."""
        if self.proc is not None and self.proc.poll() is not None:
            self.print_log()
            raise RuntimeError(f"the relay exited with status {self.proc.returncode}")

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """Waits for the relay to exit and returns its status (negative: killed by a signal)."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.print_log()
            raise TimeoutError(f"the relay did not exit within {timeout}s") from None
        unregister_cleanup(self.kill)
        return status

    def run(self, *args, timeout=DEFAULT_TIMEOUT, config=True):
        """Runs the relay to its end; returns its exit status."""
        self.start(*args, config=config)
        return self.wait(timeout)

    def terminate(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM, then waits for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        unregister_cleanup(self.kill)
        stop_process(self.proc, signal.SIGKILL)

    @contextlib.contextmanager
    def frozen(self):
        """Holds the relay still (SIGSTOP) inside the block and lets it go on (SIGCONT)
        after, e.g. to break something while its in-flight window is full."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)

    def stderr(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def print_log(self, lines=60):
        print_tail(f"relay {self.name} run {self.runs} stderr", self.log_path, lines)

    def wait_for_slot(self, db, slot, timeout=60):
        """Waits until the relay streams from slot (it exists and is active)."""
        wait_until(lambda: db.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                     (slot,)),
                   timeout, f"the relay to stream from slot {slot}", check=self.check_running)
