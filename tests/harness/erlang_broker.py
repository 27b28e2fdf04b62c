"""What the harness's Erlang brokers (rabbitmq.py, ejabberd.py) share: a directory of their
own, a free loopback port for each listener, the Erlang cookie, the server user, start-up
until the MQTT listener answers a CONNECT, and stopping by PID.

Everything the server writes (configuration, Mnesia, logs, the cookie in its HOME) lives in
the broker's directory under the test's workdir, and every port is a free one chosen by the
harness, kept across restarts: a second run, or the system's own instance of the same
server, never collides with it. As root the server runs as the package's system user
(rabbitmq, ejabberd), like PostgreSQL in postgres.py; otherwise as the current user.

The PID the harness holds is the Erlang VM itself (beam.smp: erl execs it), so stop() is a
SIGTERM to the server (Erlang stops its applications in order) and kill() a SIGKILL, the
crash of a broker restart test. The processes the VM starts (erl_child_setup, its port
programs) end with it.
"""

import os
import pwd
import signal
import subprocess
import time
import uuid

from .mqtt_publish import Publisher
from .util import free_port, is_root, print_tail, register_cleanup, unregister_cleanup
from .util import stop_process, wait_until

START_TIMEOUT = 120
STOP_TIMEOUT = 60


class ErlangBroker:
    """The life cycle; subclasses name the server user, write the files and give the argv.

    username / password: the credentials the harness's clients (recorder, fence, relay)
    present; mqtt5: whether the broker speaks MQTT 5 (the fence falls back to 3.1.1).
    startup_seconds: how long each start took, until the MQTT listener answered.
    """

    server_user = None      # the Debian package's system user
    kind = "broker"
    mqtt5 = True

    def __init__(self, workdir, name):
        self.workdir = workdir
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.log_path = os.path.join(self.dir, "console.log")
        self.node = f"outbox-{uuid.uuid4().hex[:8]}@localhost"
        self.cookie = uuid.uuid4().hex.upper()
        self.port = None        # the MQTT listener
        self.ports = {}         # every other port the server listens on, by name
        self.proc = None
        self.username = None
        self.password = None
        self.startup_seconds = []
        self._prepared = False

    # --- what subclasses provide ----------------------------------------------------

    def port_names(self):
        """Names of the ports besides MQTT that the server needs (distribution...)."""
        return ()

    def write_files(self):
        """Writes the configuration for self.port and self.ports into self.dir."""
        raise NotImplementedError

    def command(self):
        """(argv, environment additions) that start the server in the foreground."""
        raise NotImplementedError

    def server_log(self):
        """The server's own log file (console.log holds its stdout and stderr)."""
        return self.log_path

    # --- files and users ---------------------------------------------------------------

    def _prepare(self):
        if self._prepared:
            return
        os.mkdir(self.dir, 0o700)
        home = os.path.join(self.dir, "home")
        os.mkdir(home, 0o700)
        cookie = os.path.join(home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(self.cookie)
        os.chmod(cookie, 0o400)
        self._prepared = True

    def chown_tree(self):
        """Gives the broker's directory to the server user (as root)."""
        if not is_root():
            return
        pw = pwd.getpwnam(self.server_user)
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    def environment(self, extra):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "HOME": os.path.join(self.dir, "home"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        env.update(extra)
        return env

    def popen(self, argv, env, log):
        """Starts argv as the server user, output to log; the child's PID is argv's own."""
        kwargs = {}
        if is_root():
            pw = pwd.getpwnam(self.server_user)
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.dir,
                                env=self.environment(env), **kwargs)

    # --- start and stop ---------------------------------------------------------------

    def start(self, attempts=3):
        """Starts the server and waits until its MQTT listener answers a CONNECT; keeps its
        ports across restarts, takes new ones if a first start could not bind them."""
        self._prepare()
        for attempt in range(attempts):
            first = self.port is None
            if first:
                self.port = free_port()
                self.ports = {name: free_port() for name in self.port_names()}
            self.write_files()
            self.chown_tree()
            if self._start_once():
                return self
            if not first or attempt == attempts - 1:
                break
            self.port = None
        self.print_logs()
        raise RuntimeError(f"{self.kind} did not start")

    def _start_once(self):
        argv, env = self.command()
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = self.popen(argv, env, log)
        register_cleanup(self.stop)
        try:
            wait_until(self._answers, START_TIMEOUT, f"{self.kind} to answer MQTT on port {self.port}",
                       check=self._check_running, interval=0.2)
        except RuntimeError:        # it exited: a port taken meanwhile, or a bad file
            unregister_cleanup(self.stop)
            self.proc = None
            return False
        except TimeoutError:
            self.print_logs()
            self.stop(signal.SIGKILL)
            raise
        self.startup_seconds.append(time.monotonic() - began)
        return True

    def _check_running(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with status {self.proc.returncode}")

    def _answers(self):
        """Our server (not another on that port: ours still runs) accepts a CONNECT with the
        harness's credentials."""
        try:
            Publisher(self.port, client_id=f"harness-probe-{uuid.uuid4().hex[:8]}", timeout=5,
                      protocol=5 if self.mqtt5 else 311, username=self.username,
                      password=self.password).close()
            return True
        except (OSError, RuntimeError):
            return False

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stops the server by its PID: SIGTERM (orderly) or SIGKILL (a crash)."""
        unregister_cleanup(self.stop)
        stop_process(self.proc, sig, timeout)
        self.proc = None

    def kill(self):
        """kill -9 of the server, as a crash."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        self.start()

    @property
    def pid(self):
        return None if self.proc is None else self.proc.pid

    # --- logs -----------------------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.server_log(), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def print_logs(self, lines=40):
        print_tail(f"{self.kind} output", self.log_path, lines)
        if self.server_log() != self.log_path:
            print_tail(f"{self.kind} log", self.server_log(), lines)
