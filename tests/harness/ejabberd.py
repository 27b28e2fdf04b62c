"""A throwaway ejabberd (Debian's ejabberd, 23.01) with its MQTT broker, mod_mqtt, on a free
loopback port.

Everything lives in WORKDIR/NAME: ejabberd.yml, the Mnesia spool, the logs, and HOME with
the Erlang cookie. The VM is started directly (what `ejabberdctl foreground` runs) with a
node name of its own (outbox-XXXXXXXX@localhost) and without epmd: the node listens for
the Erlang distribution on a free port given as -erl_epmd_port (as ejabberdctl does with
ERL_DIST_PORT), so no epmd is started and neither a system instance (ejabberd@localhost,
ports 5222, 5269, 5280, 1883) nor another run can collide with it. The harness's PID is the
VM's.

One virtual host, `localhost`. mod_mqtt takes a client only with a user name: it becomes
the user part of the client's JID (USER@localhost/CLIENT_ID), and a CONNECT without one is
refused as not authorized. The harness uses `auth_method: anonymous` with
`anonymous_protocol: login_anon`, which accepts any user name with any password and needs
no registered user (no ejabberdctl call, no distribution client); the relay and the
harness's clients give `username` (and a password, which is not checked). A production
server would rather register the relay's user (`ejabberdctl register USER HOST PASSWORD`)
with the default internal authentication.

mod_mqtt keeps sessions and subscriptions in RAM tables and only retained messages on disk:
a restart of the server ends every session. Its queue of messages for a subscriber is
limited (max_queue, 5,000 by default, beyond which it drops the session); the harness lifts
that limit so that a slow subscriber cannot fail a test.
"""

import glob
import os
import re
import shutil

from .erlang_broker import ErlangBroker

EJABBERDCTL = "/usr/sbin/ejabberdctl"

CONFIG = """# written by the outbox-relay test harness
hosts:
  - localhost
loglevel: info
log_rotate_count: 0
auth_method: anonymous
anonymous_protocol: login_anon
listen:
  -
    port: {mqtt}
    ip: "127.0.0.1"
    module: mod_mqtt
modules:
  mod_mqtt:
    max_queue: unlimited
"""


def erl_libs():
    """Where Debian installs ejabberd's Erlang applications (ejabberdctl's ERL_LIBS)."""
    try:
        with open(EJABBERDCTL, encoding="utf-8") as f:
            match = re.search(r"^ERL_LIBS='([^']+)'", f.read(), re.M)
        if match:
            return match.group(1)
    except OSError:
        pass
    found = glob.glob("/usr/lib/*/ejabberd-*/ebin")
    if not found:
        raise RuntimeError("ejabberd not found; install the ejabberd package")
    return os.path.dirname(os.path.dirname(found[0]))


class Ejabberd(ErlangBroker):
    server_user = "ejabberd"
    kind = "ejabberd"
    mqtt5 = True

    def __init__(self, workdir, name="ejabberd", username="outbox"):
        super().__init__(workdir, name)
        self.username = username
        self.password = "unchecked"
        self.libs = erl_libs()

    def port_names(self):
        return ("dist",)

    def server_log(self):
        return os.path.join(self.dir, "ejabberd.log")

    def write_files(self):
        with open(os.path.join(self.dir, "ejabberd.yml"), "w") as f:
            f.write(CONFIG.format(mqtt=self.port))
        os.makedirs(os.path.join(self.dir, "spool"), exist_ok=True)

    def command(self):
        d = self.dir
        argv = [shutil.which("erl") or "/usr/bin/erl", "-sname", self.node, "-erl_epmd_port", str(self.ports["dist"]),
                "-start_epmd", "false", "+K", "true", "-noinput",
                "-mnesia", "dir", '"' + os.path.join(d, "spool") + '"', "-s", "ejabberd"]
        env = {
            "EJABBERD_CONFIG_PATH": os.path.join(d, "ejabberd.yml"),
            "EJABBERD_LOG_PATH": self.server_log(),
            "EJABBERD_PID_PATH": os.path.join(d, "ejabberd.pid"),
            "ERL_LIBS": self.libs,
            "ERL_CRASH_DUMP": os.path.join(d, "erl_crash.dump"),
            "ERL_CRASH_DUMP_BYTES": "0",
        }
        return argv, env
