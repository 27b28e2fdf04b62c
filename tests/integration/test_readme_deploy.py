#!/usr/bin/python3
"""README.md, "Deploying with systemd", followed as written: the test reads that section and
runs every command of its sh blocks in order, checks its sql block against config/outbox.sql
and its text block against what a subscriber receives. A command the test does not know how
to follow fails it, so the README and this test change together. Its subsection "Without the
Debian package" is followed the same way, by a test of its own.

What differs from a real Debian 12 machine, and nothing else:
- The package: `apt-get build-dep ./` checks with dpkg-checkbuilddeps that the build
  dependencies are installed; `dpkg-buildpackage` runs as written in a copy of the source
  tree in the test's directory, with DEB_BUILD_OPTIONS=nocheck (the unit tests of the
  package build are the unit suite, run on their own); `cd` moves the directory the
  commands run in; `apt install` of the .deb unpacks it into a DESTDIR (dpkg-deb -x), after
  checking that its conffile is the configuration; its maintainer scripts, which only keep
  the units' state for systemd, do not run. tests/package/check-package installs it for real.
- Paths: /etc/outbox-relay, /etc/systemd/system, /usr/share/outbox-relay and the units'
  directories are under that DESTDIR (`meson install` runs as written, with DESTDIR in its
  environment), `outbox-relay` is found on PATH there, and build-deploy/ is in the test's
  directory. A command that would still name /etc/ or /usr/ fails the test before it runs.
- PostgreSQL: a cluster of the test's own, initialised as Debian's pg_createcluster does
  (`initdb --auth-local peer --auth-host scram-sha-256`) and with Debian 12's default
  pg_hba.conf (peer on the Unix socket, scram-sha-256 over TCP), wal_level left at its
  default, on a free port that commands and the service get in PGHOST/PGPORT instead of
  5432, with its socket in a directory of the test's made like /var/run/postgresql (which
  stands for it); `systemctl restart postgresql` restarts that cluster.
- Mosquitto: the harness's broker on a free port, written for `port: 1883` in the
  configuration; `mosquitto_sub` is the harness's recorder.
- systemd: `apt-get install` (or `apt install`) checks that the packages are installed; `systemctl
  daemon-reload` reads the installed unit and its drop-ins; `systemctl enable --now` does
  for them what systemd 252 (Debian 12) does: each LoadCredential= file is copied into a
  credentials directory that only the service's user can read (files 0400 owned by it),
  then ExecStartPre= and ExecStart= run as that user (nobody, for DynamicUser=) with the
  unit's UMask=, in /, with CREDENTIALS_DIRECTORY, NOTIFY_SOCKET and WATCHDOG_USEC set, and
  it returns on READY=1; `systemctl status` checks that the service runs.
After the section the test writes more events (a transaction rolled back among them),
reloads as the unit's ExecReload= does and stops with SIGTERM (exit 0). After the subsection
it installs again (an edited configuration is kept) and uninstalls (it is still kept).
"""

import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.notify import NotifySocket  # noqa: E402
from harness.util import is_root, print_tail, register_cleanup, stop_process  # noqa: E402
from harness.util import unregister_cleanup, wait_until  # noqa: E402

SOURCE_ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
README = os.path.join(SOURCE_ROOT, "README.md")
SECTION = "## Deploying with systemd"
SUBSECTION = "### Without the Debian package"
CONFIG = "/etc/outbox-relay/outbox-relay.yaml"
OUTBOX_SQL = os.path.join(SOURCE_ROOT, "config", "outbox.sql")

# The paths the README's commands write to, moved under the DESTDIR.
MOVED_PATHS = ("/etc/outbox-relay", "/etc/systemd/system", "/usr/share/outbox-relay",
               "/usr/sbin/outbox-relay", "/usr/lib/systemd/system", "/lib/systemd/system")
# Where units are installed: /lib by the package (Debian 12), /usr/lib by meson.
UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system")
# Commands that must never reach this machine: the test follows them itself.
GUARDED = ("systemctl", "journalctl", "apt-get", "apt", "mosquitto_sub", "service", "sudo",
           "pg_ctlcluster", "pg_createcluster", "pg_conftool")
SERVICE_USER = "nobody"     # stands in for DynamicUser=: a user that owns nothing
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# pg_hba.conf as pg_createcluster writes it on Debian 12, without its comments.
DEBIAN_HBA = """# written by test_readme_deploy: Debian 12's default (pg_createcluster)
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""

SETTINGS = """
# written by test_readme_deploy: the rest is initdb's, as on Debian
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockdir}'
fsync = off
full_page_writes = off
"""


class DebianPostgres(harness.Postgres):
    """The harness's cluster, initialised as pg_createcluster does: peer on the Unix socket,
    scram-sha-256 over TCP, wal_level left at its default. The test reaches it as the
    postgres user through the socket, as the README does."""

    def __init__(self, workdir):
        super().__init__(workdir)
        # Debian's /var/run/postgresql: the server's, and open to every user.
        self.sockdir = os.path.join(workdir, "run-postgresql")

    def init(self):
        server = pwd.getpwnam("postgres")
        for path, mode in ((self.dir, 0o700), (self.sockdir, 0o2775)):
            os.mkdir(path)
            os.chown(path, server.pw_uid, server.pw_gid)
            os.chmod(path, mode)
        with open(self.log_path, "ab") as log:
            subprocess.run(["runuser", "-u", "postgres", "--", self._bin("initdb"), "-D", self.datadir,
                            "--auth-local", "peer", "--auth-host", "scram-sha-256",
                            "-E", "UTF8", "--no-locale", "--no-sync"],
                           stdout=log, stderr=subprocess.STDOUT, check=True, cwd=self.dir)
        # The files belong to the server's user already; root writes into them.
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(SETTINGS.format(sockdir=self.sockdir))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write(DEBIAN_HBA)

    def psql(self, sql, dbname="postgres", check=True):
        """Runs sql as the postgres user through the socket; returns psql's result."""
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", self._bin("psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-h", self.sockdir, "-p", str(self.port), "-d", dbname],
            input=sql, capture_output=True, text=True, cwd=self.dir)
        if check and result.returncode != 0:
            raise AssertionError(f"psql failed: {result.stderr}")
        return result

    def _accepts(self, port):
        """True once our server takes connections: its socket is in the test's directory."""
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", self._bin("psql"), "-X", "-A", "-t", "-h", self.sockdir,
             "-p", str(port), "-d", "postgres", "-c", "SHOW data_directory"],
            capture_output=True, text=True, cwd=self.dir)
        return (result.returncode == 0
                and os.path.realpath(result.stdout.strip()) == os.path.realpath(self.datadir))


# --- reading the README ---------------------------------------------------------------

FENCE = re.compile(r"^( *)```(\w*)$")
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def readme_section():
    with open(README) as f:
        text = f.read()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start:] if end < 0 else text[start:end]


def deploy_section():
    """The section up to its subsection for systems without the package."""
    section = readme_section()
    return section[:section.index("\n" + SUBSECTION + "\n")]


def without_package_section():
    section = readme_section()
    return section[section.index("\n" + SUBSECTION + "\n"):]


def copy_source_tree(target):
    """The source tree without its build directories (build*/, obj-*/) and .git."""
    def ignore(directory, names):
        if os.path.realpath(directory) != SOURCE_ROOT:
            return [name for name in names if name == "__pycache__"]
        return [name for name in names
                if name.startswith(("build", "obj-")) or name in (".git", "__pycache__")]
    shutil.copytree(SOURCE_ROOT, target, symlinks=True, ignore=ignore)


def code_blocks(section):
    """(language, text) of each fenced block, without the indentation of its fence."""
    blocks = []
    lines = section.split("\n")
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        i += 1
        if not fence:
            continue
        indent, body = len(fence.group(1)), []
        while lines[i].strip() != "```":
            if lines[i][:indent].strip():
                raise AssertionError(f"README: line outside its block's indentation: {lines[i]!r}")
            body.append(lines[i][indent:])
            i += 1
        i += 1
        blocks.append((fence.group(2), "\n".join(body) + "\n"))
    return blocks


def shell_commands(script):
    """Each command of a sh block: a line with its continuation lines and here-document."""
    commands = []
    lines = script.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        command = [lines[i]]
        i += 1
        if not command[0].strip() or command[0].lstrip().startswith("#"):
            continue
        while command[-1].endswith("\\"):
            command.append(lines[i])
            i += 1
        heredoc = HEREDOC.search("\n".join(command))
        if heredoc:
            while lines[i] != heredoc.group(1):
                command.append(lines[i])
                i += 1
            command.append(lines[i])
            i += 1
        commands.append("\n".join(command))
    return commands


def words(command):
    """The words of a command's first line (continuations joined), for matching it."""
    head = re.split(r"(?<!\\)\n", command)[0].replace("\\\n", " ")
    return shlex.split(head, comments=True)


# --- the test -------------------------------------------------------------------------

class ReadmeDeployTest(harness.IntegrationCase):
    needs_servers = False

    @classmethod
    def setUpClass(cls):
        if not is_root():
            raise unittest.SkipTest("the README's deploy path runs as root")
        super().setUpClass()
        try:
            cls.pg = DebianPostgres(cls.workdir)
            cls.pg.init()
            cls.pg.start()
            cls.mqtt = harness.Mosquitto(cls.workdir)
            cls.mqtt.start()
        except BaseException:
            cls.tearDownClass()
            raise

    def setUp(self):
        super().setUp()
        base = os.path.join(self.workdir, self.name)
        os.mkdir(base)
        self.dest = os.path.join(base, "dest")
        self.builddir = os.path.join(base, "build-deploy")
        self.journal = os.path.join(base, "service")      # stdout and stderr of each run
        self.command_log = os.path.join(base, "commands.log")
        self.cwd = SOURCE_ROOT      # where the commands run; `cd` moves it
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("PG") and key not in ("DESTDIR", "CREDENTIALS_DIRECTORY")}
        self.env.update(PATH=f"{self.dest}/usr/sbin:{self.dest}/usr/bin:{os.environ['PATH']}",
                        DESTDIR=self.dest, PGHOST=self.pg.sockdir, PGPORT=str(self.pg.port))
        self.unit = None
        self.service = None
        self.notify = None
        self.recorder = None
        self.runs = 0
        self.addCleanup(self._stop_service)
        self.addCleanup(lambda: None if self._passed() else print_tail("commands", self.command_log, 80))

    # --- following the README -----------------------------------------------------------

    def test_readme_deploy_path(self):
        # "in this source tree": a copy of it, since dpkg-buildpackage writes into the tree
        # and next to it.
        self.cwd = os.path.join(self.workdir, self.name, "src", "outbox-relay")
        copy_source_tree(self.cwd)
        for lang, text in code_blocks(deploy_section()):
            if lang == "sh":
                for command in shell_commands(text):
                    self.follow(command)
            elif lang == "sql":
                self.check_outbox_sql(text)
            elif lang == "text":
                self.check_subscriber_output(text)
            else:
                self.fail(f"the test does not know how to follow a {lang!r} block of the README")
        self.after_the_readme()

    def follow(self, command):
        argv = words(command)
        with open(self.command_log, "a") as log:
            log.write(f"$ {command}\n")
        if argv[0] in ("apt-get", "apt") and argv[1:2] == ["install"]:
            names = [word for word in argv[2:] if not word.startswith("-")]
            for deb in [name for name in names if name.endswith(".deb")]:
                self.unpack(deb)
            self.packages_installed([name for name in names if not name.endswith(".deb")])
        elif argv == ["apt-get", "build-dep", "./"]:
            checked = subprocess.run(["dpkg-checkbuilddeps"], cwd=self.cwd, capture_output=True,
                                     text=True)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        elif argv[:1] == ["dpkg-buildpackage"]:
            self.sh(command, DEB_BUILD_OPTIONS="nocheck")
        elif argv[:1] == ["cd"]:
            self.assertEqual(len(argv), 2, f"the test follows a cd alone: {command}")
            self.cwd = os.path.normpath(os.path.join(self.cwd, argv[1]))
            self.assertTrue(self.cwd.startswith(self.workdir + "/"), f"{command}: out of the test's directory")
        elif argv == ["systemctl", "restart", "postgresql"]:
            self.pg.restart()
            self.assertEqual(self.pg.psql("SHOW wal_level").stdout.strip(), "logical")
        elif argv == ["systemctl", "daemon-reload"]:
            self.unit = self.load_unit("outbox-relay.service")
        elif argv == ["systemctl", "enable", "--now", "outbox-relay"]:
            self.start_service()
        elif argv == ["systemctl", "status", "outbox-relay"]:
            self.assertTrue(self.service is not None and self.service.poll() is None,
                            "the service is not running")
            self.assertIn("READY=1", self.notify.lines())
            self.assertEqual(os.stat(f"/proc/{self.service.pid}").st_uid,
                             pwd.getpwnam(SERVICE_USER).pw_uid)
        elif argv[:1] == ["mosquitto_sub"]:
            self.subscribe(argv[1:])
        elif argv[0] in GUARDED:
            self.fail(f"the test does not know how to follow this README command: {command}")
        else:
            self.sh(command)

    def localize(self, text):
        """The README's text with its paths in the test's directories and the broker's port."""
        # Once: files the README wrote hold moved paths already, after the DESTDIR's last
        # letter; /lib/... inside /usr/lib/... is not moved twice either.
        for path in MOVED_PATHS:
            text = re.sub(r"(?<![\w.-])" + re.escape(path) + r"(?=/|\b)",
                          lambda _, p=path: self.dest + p, text)
        text = re.sub(r"(?<![\w/.-])build-deploy(?![\w-])", lambda _: self.builddir, text)
        text = re.sub(r"/(var/)?run/postgresql\b", lambda _: self.pg.sockdir, text)
        text = text.replace("port: 1883", f"port: {self.mqtt.port}")
        rest = text.replace(self.dest, "DESTDIR").replace(self.builddir, "BUILDDIR")
        self.assertIsNone(re.search(r"(?<![\w.$}-])/(etc|usr|var|run|lib|root|home)/", rest),
                          f"this would touch the machine's own files: {text}")
        return text

    def sh(self, command, **env):
        """Runs one README command with bash, as root, in the source tree (or where `cd` went),
        with env added to the environment."""
        prelude = "set -euo pipefail\numask 022\n" + "".join(
            f"{name}() {{ echo '{name}: not run by the test' >&2; return 99; }}\n" for name in GUARDED)
        with open(self.command_log, "a") as log:
            result = subprocess.run(["bash", "-c", prelude + self.localize(command)], cwd=self.cwd,
                                    env=dict(self.env, **env), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        self.assertEqual(result.returncode, 0, f"README command failed: {command}")

    def unpack(self, pattern):
        """`apt install ./NAME.deb`: the one package the pattern names, unpacked into the
        DESTDIR, once dpkg-deb says its conffile is the configuration."""
        debs = glob.glob(os.path.join(self.cwd, pattern))
        self.assertEqual(len(debs), 1, f"{pattern} in {self.cwd}: {debs}")
        conffiles = subprocess.run(["dpkg-deb", "-I", debs[0], "conffiles"], capture_output=True,
                                   text=True, check=True).stdout
        self.assertEqual(conffiles.split(), [CONFIG])
        with open(self.command_log, "a") as log:
            subprocess.run(["dpkg-deb", "-x", debs[0], self.dest], check=True, stdout=log,
                           stderr=subprocess.STDOUT)

    def packages_installed(self, packages):
        self.assertTrue(packages)
        for package in packages:
            status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                    capture_output=True, text=True)
            self.assertEqual(status.stdout, "install ok installed", f"package {package}")

    def check_outbox_sql(self, text):
        """The README shows config/outbox.sql, as installed."""
        with open(OUTBOX_SQL) as f:
            self.assertEqual(text, f.read())
        with open(self.dest + "/usr/share/outbox-relay/outbox.sql") as f:
            self.assertEqual(text, f.read())

    def subscribe(self, args):
        self.assertEqual(args[:2], ["-h", "127.0.0.1"])
        filters = [args[i + 1] for i, arg in enumerate(args) if arg == "-t"]
        self.assertIn("-v", args)
        self.recorder = harness.Recorder(self.mqtt, self.workdir, filters, name="mosquitto_sub")
        self.addCleanup(self.recorder.stop)
        self.recorder.start()

    def check_subscriber_output(self, text):
        """What `mosquitto_sub -v` prints: topic, space, payload, per message."""
        self.assertEqual(self.received_lines(len(text.splitlines())), text.splitlines())

    def received(self, count):
        """Every message once count arrived, and a fence went through after them (so that
        one too many would be there as well)."""
        self.recorder.wait_for_count(count, timeout=60, check=self.check_service)
        return self.recorder.sync()

    def received_lines(self, count):
        return [f"{m['topic']} {m['payload']}" for m in self.received(count)]

    # --- the unit, as systemd runs it -----------------------------------------------------

    def load_unit(self, name):
        """The [Service] settings of the installed unit and its drop-ins, as lists of values."""
        paths = [f"{self.dest}{unit_dir}/{name}" for unit_dir in UNIT_DIRS
                 if os.path.exists(f"{self.dest}{unit_dir}/{name}")]
        self.assertEqual(len(paths), 1, f"{name} in {UNIT_DIRS} under the DESTDIR")
        paths += sorted(glob.glob(f"{self.dest}/etc/systemd/system/{name}.d/*.conf"))
        settings = {}
        for path in paths:
            section = None
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith(("#", ";")):
                        continue
                    if line.startswith("["):
                        section = line
                        continue
                    key, value = line.split("=", 1)
                    if section == "[Service]":
                        # An empty value resets a list setting, as systemd does.
                        settings[key] = settings.get(key, []) + [value] if value else []
        return settings

    def one(self, key):
        values = self.unit.get(key, [])
        self.assertEqual(len(values), 1, f"{key}: {values}")
        return values[0]

    def exec_line(self, key):
        line = self.one(key)
        self.assertRegex(line, r"^/", f"{key}= with a prefix the test does not follow")
        return [self.localize(arg) for arg in shlex.split(line)]

    def start_service(self):
        self.assertIsNotNone(self.unit, "systemctl daemon-reload comes first")
        self.assertEqual(self.one("Type"), "notify")
        self.assertEqual(self.one("DynamicUser"), "yes")
        user = pwd.getpwnam(SERVICE_USER)
        creds = self.credentials(user)
        env = {"PATH": SERVICE_PATH, "CREDENTIALS_DIRECTORY": creds, "PGPORT": str(self.pg.port)}
        as_user = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
                       umask=int(self.one("UMask"), 8), stdin=subprocess.DEVNULL)

        check = subprocess.run(self.exec_line("ExecStartPre"), env=env, capture_output=True,
                               text=True, **as_user)
        self.assertEqual((check.returncode, check.stdout), (0, "configuration OK\n"), check.stderr)

        notify_dir = os.path.join(self.workdir, "notify")
        os.mkdir(notify_dir, 0o755)
        self.notify = NotifySocket(os.path.join(notify_dir, "notify"), others_may_send=True)
        self.addCleanup(self.notify.close)
        watchdog = re.fullmatch(r"(\d+)s", self.one("WatchdogSec"))
        env.update(NOTIFY_SOCKET=self.notify.sock.getsockname(),
                   WATCHDOG_USEC=str(int(watchdog.group(1)) * 1000000))
        self.runs += 1
        with open(f"{self.journal}.{self.runs}.log", "wb") as journal:
            self.service = subprocess.Popen(self.exec_line("ExecStart"), env=env, stdout=journal,
                                            stderr=subprocess.STDOUT, **as_user)
        register_cleanup(self._stop_service)
        wait_until(lambda: "READY=1" in self.notify.lines(), 60, "READY=1 from the service",
                   check=self.check_service)

    def credentials(self, user):
        """LoadCredential=ID:PATH as systemd 252 does it on ramfs: a directory and files that
        only the service's user can read, owned by it."""
        creds = os.path.join(self.workdir, "run", "credentials", "outbox-relay.service")
        os.makedirs(creds)
        loaded = self.unit.get("LoadCredential", [])
        self.assertTrue(loaded, "no LoadCredential= in the unit or its drop-ins")
        for setting in loaded:
            cred_id, path = setting.split(":", 1)
            with open(self.localize(path), "rb") as src:
                data = src.read()
            target = os.path.join(creds, cred_id)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(target, 0o400)
            os.chown(target, user.pw_uid, -1)
        os.chmod(creds, 0o500)
        os.chown(creds, user.pw_uid, -1)
        return creds

    def check_service(self):
        if self.service.poll() is not None:
            print_tail("service", f"{self.journal}.{self.runs}.log", 60)
            raise RuntimeError(f"the service exited with status {self.service.returncode}")

    def _stop_service(self):
        unregister_cleanup(self._stop_service)
        if self.service is not None:
            stop_process(self.service, signal.SIGKILL)

    def journal_text(self):
        with open(f"{self.journal}.{self.runs}.log", encoding="utf-8", errors="replace") as f:
            return f.read()

    # --- after the README ----------------------------------------------------------------

    def outbox_rows(self):
        """(event-id, topic, payload) of every outbox row, as the relay must publish them."""
        out = self.pg.psql("SELECT id, 'shop/' || aggregate_type || '/' || aggregate_id, payload::text"
                           " FROM public.outbox ORDER BY id", dbname="shop").stdout
        return [tuple(line.split("|", 2)) for line in out.splitlines()]

    def after_the_readme(self):
        config = self.dest + "/etc/outbox-relay/outbox-relay.yaml"
        password = self.dest + "/etc/outbox-relay/pg-password"
        st = os.stat(password)
        self.assertEqual((st.st_mode & 0o777, st.st_uid), (0o600, 0))

        # Why the README's --check names CREDENTIALS_DIRECTORY: without it the password
        # file's path does not expand.
        bare = subprocess.run([self.dest + "/usr/sbin/outbox-relay", "--check", "-c", config],
                              capture_output=True, text=True, env=self.env)
        self.assertEqual(bare.returncode, 78, bare.stderr)
        self.assertIn("CREDENTIALS_DIRECTORY", bare.stderr)

        # More events: one transaction of three, one rolled back, one alone.
        self.pg.psql("""
            BEGIN;
            INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
            VALUES ('order', '43', 'order-created', '{"total": 11}'),
                   ('order', '43', 'order-paid', '{"paid": true}'),
                   ('customer', '7', 'customer-renamed', '{"name": "Ada"}');
            COMMIT;
            BEGIN;
            INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
            VALUES ('order', '44', 'order-created', '{"total": 12}');
            ROLLBACK;
            INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
            VALUES ('order', '45', 'order-created', '{"total": 13}');
            """, dbname="shop")
        rows = self.outbox_rows()
        self.assertEqual(len(rows), 5)
        self.assertEqual(harness.received(self.received(len(rows))), rows)

        # systemctl reload: ExecReload= as the unit says; the service is ready again and relays.
        self.assertEqual(self.one("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.service.send_signal(signal.SIGHUP)
        wait_until(lambda: self.notify.lines().count("READY=1") == 2, 60, "READY=1 after the reload",
                   check=self.check_service)
        self.pg.psql("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                     " VALUES ('order', '46', 'order-created', '{\"total\": 14}')", dbname="shop")
        rows = self.outbox_rows()
        self.assertEqual(harness.received(self.received(len(rows))), rows)

        # systemctl stop: SIGTERM, a clean exit, nothing logged as an error.
        self.assertEqual(stop_process(self.service, signal.SIGTERM), 0)
        self.assertNotIn("level=error", self.journal_text())
        self.assertEqual(self.pg.psql("SELECT published FROM outbox_relay.checkpoint",
                                      dbname="shop").stdout.strip(), "6")

        # Removing the package and installing it again keep the configuration and the
        # password: tests/package/check-package, with dpkg.

    # --- without the package ------------------------------------------------------------

    def test_readme_without_the_package(self):
        """The subsection for other systems, as written: meson installs the same files, with
        the example copied to the configuration; installing again keeps an edited
        configuration, and uninstalling leaves it."""
        blocks = code_blocks(without_package_section())
        self.assertTrue(blocks)
        for lang, text in blocks:
            self.assertEqual(lang, "sh", "the test follows only sh blocks in this subsection")
            for command in shell_commands(text):
                self.follow(command)
        config = self.dest + CONFIG
        self.assertTrue(os.access(self.dest + "/usr/sbin/outbox-relay", os.X_OK))
        for unit in ("outbox-relay.service", "outbox-relay@.service"):
            self.assertTrue(os.path.isfile(f"{self.dest}/usr/lib/systemd/system/{unit}"), unit)
        with open(config) as f, open(self.dest + "/usr/share/outbox-relay/outbox-relay.yaml") as g:
            self.assertEqual(f.read(), g.read())

        # A new version installed over it keeps the configuration; uninstalling leaves it.
        with open(config, "a") as f:
            f.write("# edited by the administrator\n")
        with open(config) as f:
            written = f.read()
        self.sh("meson install -C build-deploy")
        with open(config) as f:
            self.assertEqual(f.read(), written)
        with open(os.path.join(self.builddir, "meson-logs", "install-log.txt")) as f:
            logged = [line.strip() for line in f if not line.startswith("#")]
        self.assertTrue(logged and all(path.startswith(self.dest + "/") for path in logged), logged)
        self.sh("ninja -C build-deploy uninstall")
        self.assertFalse(os.path.exists(self.dest + "/usr/sbin/outbox-relay"))
        with open(config) as f:
            self.assertEqual(f.read(), written)

if __name__ == "__main__":
    harness.main()
