"""A throwaway PostgreSQL cluster with logical replication, on a free loopback port.

As root the server runs as the `postgres` OS user (PostgreSQL refuses root) through
`runuser`, and everything it writes lives in a directory owned by that user.
"""

import glob
import os
import pwd
import re
import signal
import subprocess
from contextlib import contextmanager

import psycopg2

from .util import is_root, print_tail, register_cleanup, unregister_cleanup, wait_until
from .util import free_port

MIN_MAJOR = 14
START_TIMEOUT = 60
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

SETTINGS = """
# written by the outbox-relay test harness
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockdir}'
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 60
log_replication_commands = on
"""

HBA = """
# written by the outbox-relay test harness: trust, loopback only
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def find_bindir():
    """PG_BINDIR, or the newest /usr/lib/postgresql/N/bin with N >= 14."""
    bindir = os.environ.get("PG_BINDIR")
    if bindir:
        return bindir
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        major = os.path.basename(os.path.dirname(path))
        if major.isdigit() and int(major) >= MIN_MAJOR and os.path.exists(f"{path}/postgres"):
            found.append((int(major), path))
    if not found:
        raise RuntimeError(f"no PostgreSQL >= {MIN_MAJOR} under /usr/lib/postgresql; set PG_BINDIR")
    return max(found)[1]


def _as_server_user(argv):
    return ["runuser", "-u", "postgres", "--"] + argv if is_root() else argv


def _chown_to_server_user(path):
    if is_root():
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


class Postgres:
    """initdb, start, stop and restart one cluster under workdir/pg."""

    def __init__(self, workdir):
        self.bindir = find_bindir()
        self.dir = os.path.join(workdir, "pg")
        self.datadir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(workdir, "postgres.log")
        self.port = None
        self.proc = None
        self.pid = None

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def init(self):
        os.mkdir(self.dir, 0o700)
        _chown_to_server_user(self.dir)
        with open(self.log_path, "ab") as log:
            subprocess.run(_as_server_user([
                self._bin("initdb"), "-D", self.datadir, "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--no-locale", "--no-sync"]),
                stdout=log, stderr=subprocess.STDOUT, check=True, cwd=self.dir)
        self._write_server_file("postgresql.conf", SETTINGS.format(sockdir=self.dir), "a")
        self._write_server_file("pg_hba.conf", HBA, "w")

    def _write_server_file(self, name, text, mode):
        # The files belong to the server user already; root may write into them.
        with open(os.path.join(self.datadir, name), mode) as f:
            f.write(text)

    def start(self, attempts=5):
        """Starts the server on a free port (a new one if that port was taken meanwhile)."""
        for _ in range(attempts):
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return
            if not self._lost_port_race():
                break
            self.port = None
        print_tail("postgres log", self.log_path)
        raise RuntimeError("PostgreSQL did not start")

    def _start_on(self, port):
        self._log_offset = os.path.getsize(self.log_path)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            _as_server_user([self._bin("postgres"), "-D", self.datadir, "-p", str(port)]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()
        register_cleanup(self._emergency_stop)
        try:
            wait_until(lambda: self._accepts(port), START_TIMEOUT,
                       "PostgreSQL to accept connections", check=self._check_running)
        except RuntimeError:
            unregister_cleanup(self._emergency_stop)
            return False
        except TimeoutError:
            self._emergency_stop()
            raise
        self.pid = self._read_postmaster_pid()
        return True

    def _check_running(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with status {self.proc.returncode}")

    def _lost_port_race(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            text = f.read()
        return b"could not bind" in text or b"already in use" in text

    def _accepts(self, port):
        """True once our server (not another one on that port) takes connections."""
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres",
                                    user="postgres", connect_timeout=2)
        except psycopg2.OperationalError:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW data_directory")
                return os.path.realpath(cur.fetchone()[0]) == os.path.realpath(self.datadir)
        finally:
            conn.close()

    def _read_postmaster_pid(self):
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self, mode="fast", timeout=60):
        """Stops the server by its PID: smart (SIGTERM), fast (SIGINT) or immediate (SIGQUIT)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(STOP_SIGNALS[mode])
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        unregister_cleanup(self._emergency_stop)
        self.proc = None
        self.pid = None

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def _signal(self, sig):
        try:
            os.kill(self.pid or self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def _emergency_stop(self):
        self.stop("immediate", timeout=20)

    def prepend_hba(self, lines):
        """Puts lines before the harness's trust lines of pg_hba.conf and reloads, so that
        a test's roles authenticate otherwise (password, peer) while the rest trust."""
        path = os.path.join(self.datadir, "pg_hba.conf")
        with open(path) as f:
            rest = f.read()
        self._write_server_file("pg_hba.conf", lines.rstrip("\n") + "\n" + rest, "w")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()

    # --- clients ---------------------------------------------------------------

    def conninfo(self, dbname="postgres"):
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres"

    def connect(self, dbname="postgres"):
        conn = psycopg2.connect(self.conninfo(dbname))
        conn.autocommit = True
        return conn

    def create_database(self, name):
        check_identifier(name)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            conn.close()
        return Database(self, name)


def check_identifier(name):
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain identifier: {name!r}")


class Database:
    """One database, one autocommit connection, and explicit transactions."""

    def __init__(self, pg, name):
        self.pg = pg
        self.name = name
        self.conn = pg.connect(name)
        register_cleanup(self.close)

    def close(self):
        unregister_cleanup(self.close)
        if not self.conn.closed:
            self.conn.close()

    def reconnect(self):
        if not self.conn.closed:
            self.conn.close()
        self.conn = self.pg.connect(self.name)

    def execute(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def query(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def scalar(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self, commit=True):
        """BEGIN ... COMMIT (or ROLLBACK when commit is false, or on an exception)."""
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT" if commit else "ROLLBACK")
