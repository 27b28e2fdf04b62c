"""The base class of the integration tests: one PostgreSQL and one Mosquitto per file."""

import hashlib
import os
import re
import shutil
import sys
import unittest

from .mosquitto import Mosquitto
from .postgres import Postgres
from .recorder import Recorder, event_id
from .relay import Relay, relay_config
from .util import install_signal_cleanup, make_workdir, print_tail, register_cleanup
from .util import unregister_cleanup

# The outbox table of the example configuration: the one the project ships, which the README
# shows and the deploy test checks.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config",
                       "outbox.sql"), encoding="utf-8") as _ddl:
    OUTBOX_DDL = _ddl.read()

LSN_RE = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")


def parse_lsn(text):
    """PostgreSQL's X/Y text form to an integer, for comparing positions."""
    if not LSN_RE.fullmatch(text):
        raise ValueError(f"not an LSN: {text!r}")
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


def insert_event(cur, aggregate_type, aggregate_id, event_type, payload_json):
    """Inserts one outbox row; returns (id, topic, payload text as the relay must send it)."""
    cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                " VALUES (%s, %s, %s, %s) RETURNING id, payload::text",
                (aggregate_type, aggregate_id, event_type, payload_json))
    row_id, payload = cur.fetchone()
    return row_id, f"shop/{aggregate_type}/{aggregate_id}", payload


def received(messages):
    """(event-id, topic, payload) of each message, for exact comparisons."""
    return [(event_id(m), m["topic"], m.get("payload")) for m in messages]


def expected(events):
    """(event-id, topic, payload) of rows from insert_event, event-id being the id column."""
    return [(str(row_id), topic, payload) for row_id, topic, payload in events]


def short_name(method):
    """A database and slot name from a test method's name: unique, at most 40 characters."""
    name = re.sub(r"[^a-z0-9_]", "_", method.lower())
    if len(name) <= 40:
        return name
    return name[:31] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


class IntegrationCase(unittest.TestCase):
    """setUpClass starts the servers (unless needs_servers is false); tests get helpers."""

    needs_servers = True
    # Lines added to the broker's configuration for this file; {workdir} is replaced.
    mosquitto_config = ""
    # The broker's max_inflight_messages: 0 lifts the limit; None keeps Mosquitto's default.
    mosquitto_max_inflight = 0
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.workdir = make_workdir()
        register_cleanup(cls._remove_workdir)
        cls.pg = cls.mqtt = None
        if not cls.needs_servers:
            return
        try:
            cls.pg = Postgres(cls.workdir)
            cls.pg.init()
            cls.pg.start()
            cls.prepare_files()
            cls.mqtt = cls.make_broker(cls.workdir)
            cls.mqtt.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def make_broker(cls, workdir):
        """The broker of this file, not started: Mosquitto unless a subclass says otherwise
        (tests/interop); it has start(), stop(), port and print_logs()."""
        return Mosquitto(workdir, extra_config=cls.mosquitto_config.format(workdir=workdir),
                         max_inflight_messages=cls.mosquitto_max_inflight)

    @classmethod
    def prepare_files(cls):
        """Writes what the servers' configuration refers to (ACLs, certificates) into workdir."""

    @classmethod
    def tearDownClass(cls):
        if cls.mqtt:
            cls.mqtt.stop()
        if cls.pg:
            cls.pg.stop()
        cls._remove_workdir()

    @classmethod
    def _remove_workdir(cls):
        unregister_cleanup(cls._remove_workdir)
        if os.environ.get("OUTBOX_TEST_KEEP"):
            sys.stderr.write(f"kept {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        self.name = short_name(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self._logs_on_failure)

    def _logs_on_failure(self):
        if self._passed():
            return
        if self.pg:
            print_tail("postgres log", self.pg.log_path, 30)
        if self.mqtt:
            self.mqtt.print_logs(30)

    def new_database(self, outbox=True):
        """A database named after the test, with the standard outbox table."""
        db = self.pg.create_database(self.name)
        self.addCleanup(db.close)
        if outbox:
            db.execute(OUTBOX_DDL)
        return db

    def start_recorder(self, filters=("#",), **kwargs):
        rec = Recorder(self.mqtt, self.workdir, filters, name=f"{self.name}.recorder", **kwargs)
        self.addCleanup(rec.stop)
        return rec.start()

    def new_relay(self, db, slot=None, routes=None, name=None, **overrides):
        """A relay for db; slot defaults to the test's name."""
        slot = slot or self.name
        config = relay_config(self.pg, self.mqtt, db.name, slot, routes, **overrides)
        return self.relay_with_config(config, name or slot)

    def relay_with_config(self, config, name=None, env=None):
        relay = Relay(self.workdir, name or self.name, config, env)
        self.addCleanup(relay.kill)
        self.addCleanup(lambda: None if self._passed() else relay.print_log())
        return relay

    def _passed(self):
        """False once this test has failed or erred (for cleanups that print logs)."""
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return True
        # Python 3.11 reports to the result at once; older ones collect in outcome.errors.
        failed = [test for test, exc in getattr(outcome, "errors", []) if exc is not None]
        result = getattr(outcome, "result", None)
        if result is not None:
            failed += [test for test, _ in result.failures + result.errors]
        return not any(test is self for test in failed)

    def checkpoint(self, db, slot=None):
        """The relay's checkpoint row for slot as a dict, or None."""
        rows = db.query("SELECT commit_lsn::text, event_index, confirmed_lsn::text, published"
                        " FROM outbox_relay.checkpoint WHERE slot_name = %s", (slot or self.name,))
        if not rows:
            return None
        return dict(zip(("commit_lsn", "event_index", "confirmed_lsn", "published"), rows[0]))

    def slot_confirmed(self, db, slot=None):
        return db.scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                         " WHERE slot_name = %s", (slot or self.name,))


def main():
    """Entry point of every test file."""
    install_signal_cleanup()
    unittest.main(verbosity=2)
