"""A throwaway RabbitMQ (Debian's rabbitmq-server, 3.10) with its MQTT plugin, on free
loopback ports.

Everything lives in WORKDIR/NAME: rabbitmq.conf, the enabled_plugins file (rabbitmq_mqtt
only), the Mnesia directory, the log, and HOME with the Erlang cookie. The node has a name
of its own (outbox-XXXXXXXX@localhost); AMQP, the Erlang distribution and the MQTT
listener take free ports, and the node registers with an epmd the harness starts on a free
port of its own (ERL_EPMD_PORT), so neither a system instance (rabbit@HOST on 5672, 25672,
epmd on 4369) nor another run can collide with it. The harness stops the node and its
epmd by their PIDs.

The server runs in the foreground the way rabbitmq-server(8) runs it under systemd (the
script execs the Erlang VM): the harness's PID is the VM's.

Credentials: rabbitmq.conf creates one user (default_user, with all permissions on the
default virtual host) at the first boot, and the MQTT plugin takes no anonymous client
(mqtt.allow_anonymous = false): the relay and the harness's clients log in with
`username` and `password`. RabbitMQ 3.10 speaks MQTT 3.1.1 only (mqtt5 is false).

A restart (stop or kill, then start) keeps the node name, the ports and the Mnesia
directory: durable queues and the user survive it.
"""

import os
import shutil
import signal
import subprocess
import uuid

from .erlang_broker import ErlangBroker
from .util import port_open, register_cleanup, unregister_cleanup, wait_until

SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"

CONFIG = """# written by the outbox-relay test harness
listeners.tcp.default = 127.0.0.1:{amqp}
mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}
mqtt.allow_anonymous = false
default_user = {user}
default_pass = {password}
log.file.level = info
"""


def find_script():
    """RABBITMQ_SERVER, or where Debian's rabbitmq-server package installs the server."""
    path = os.environ.get("RABBITMQ_SERVER") or SCRIPT
    if not os.path.exists(path):
        raise RuntimeError("rabbitmq-server not found; install the rabbitmq-server package or"
                           " set RABBITMQ_SERVER")
    return path


def find_epmd():
    path = shutil.which("epmd") or "/usr/bin/epmd"
    if not os.path.exists(path):
        raise RuntimeError("epmd not found (erlang-base)")
    return path


class RabbitMQ(ErlangBroker):
    server_user = "rabbitmq"
    kind = "RabbitMQ"
    mqtt5 = False

    def __init__(self, workdir, name="rabbitmq"):
        super().__init__(workdir, name)
        self.script = find_script()
        self.username = "outbox"
        self.password = uuid.uuid4().hex
        self.epmd = None

    def port_names(self):
        return ("amqp", "dist", "epmd")

    def server_log(self):
        return os.path.join(self.dir, "log", "rabbit.log")

    def write_files(self):
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(CONFIG.format(amqp=self.ports["amqp"], mqtt=self.port, user=self.username,
                                  password=self.password))
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)

    def command(self):
        d = self.dir
        env = {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(self.ports["dist"]),
            "ERL_EPMD_PORT": str(self.ports["epmd"]),
            "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),   # none
            "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),        # none
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
            "RABBITMQ_LOGS": self.server_log(),
            "RABBITMQ_PID_FILE": os.path.join(d, "rabbitmq.pid"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(d, "plugins-expand"),
            # The script execs the VM (as under systemd) instead of waiting on it; the
            # input stays off.
            "RABBITMQ_ALLOW_INPUT": "true",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-noinput",
        }
        return [self.script], env

    def _start_once(self):
        self._start_epmd()
        return super()._start_once()

    def _start_epmd(self):
        """An epmd of the harness's own on the node's epmd port (kept across restarts)."""
        if self.epmd is not None and self.epmd.poll() is None:
            return
        port = self.ports["epmd"]
        with open(os.path.join(self.dir, "epmd.log"), "ab") as log:
            self.epmd = self.popen([find_epmd(), "-port", str(port), "-address", "127.0.0.1"],
                                   {}, log)
        register_cleanup(self._stop_epmd)
        wait_until(lambda: port_open(port), 30, f"epmd on port {port}",
                   check=self._check_epmd)

    def _check_epmd(self):
        if self.epmd.poll() is not None:
            raise RuntimeError(f"epmd exited with status {self.epmd.returncode}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stops the node by its PID; after an orderly stop its epmd too (a kill leaves the
        epmd for the next start)."""
        super().stop(sig, timeout)
        if sig == signal.SIGTERM:
            self._stop_epmd()

    def _stop_epmd(self):
        unregister_cleanup(self._stop_epmd)
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()
        self.epmd = None
