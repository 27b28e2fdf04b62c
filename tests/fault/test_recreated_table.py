#!/usr/bin/python3
"""Fault: a routed table dropped and created again loses no row.

The publication names its tables (FOR TABLE), and dropping a table takes it out. pgoutput
decides with the catalog as it was at each change whether a row belongs to the
publication, so every row written to the new table before it is added back is never
decoded. The relay's event trigger adds a routed table to the publication inside the
transaction that creates (or renames) it; these cases check, at the subscriber, that the
rows written before the drop, in the transaction that creates the table again, between and
after arrive exactly once and in commit order, with the relay running and with it stopped,
as a superuser and as the least-privileged role of config/least-privilege.sql.

Some rows are inserted and deleted in the same transaction, as outbox tables are often
kept empty: they are gone from the table, so only decoding can publish them.

The relay here is run as systemd would (Restart=on-failure): if it exits 1 it is started
again, so that a failure shows which rows were lost, not only that the relay stopped.
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.util import wait_until  # noqa: E402

LEAST_PRIVILEGE_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                   "config", "least-privilege.sql")

# Ids from a sequence the table does not own, so that they stay unique (they are the
# event-ids) across drops and re-creations.
OUTBOX_DDL = """
CREATE TABLE public.outbox (
    id bigint PRIMARY KEY DEFAULT nextval('public.outbox_ids'),
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL
)
"""

DROPPED_WARNING = "a routed table was dropped"


class RecreatedTableTest(harness.IntegrationCase):

    # --- the relay, restarted like a systemd unit with Restart=on-failure -----------------

    def start_relay(self, db, **overrides):
        self.rec = self.start_recorder()
        self.relay = self.new_relay(db, **overrides)
        self.exits = []          # statuses of the relay's unexpected exits
        self.logs = []           # stderr of every finished run
        self.relay.start()
        self.relay.wait_for_slot(db, self.name)

    def supervise(self):
        """Starts the relay again when it exited on its own (wait_until's check)."""
        if self.relay.running() or len(self.exits) >= 5:
            return  # running, or given up on: check_delivery reports what was lost
        status = self.relay.wait()
        self.exits.append(status)
        self.logs.append(self.relay.stderr())
        self.relay.start()

    def stop_relay(self):
        self.assertEqual(self.relay.terminate(), 0)
        self.logs.append(self.relay.stderr())

    def all_logs(self):
        return "".join(self.logs) + (self.relay.stderr() if self.relay.running() else "")

    # --- the database ------------------------------------------------------------------

    def new_db(self):
        db = self.new_database(outbox=False)
        db.execute("CREATE SEQUENCE public.outbox_ids")
        db.execute(OUTBOX_DDL)
        return db

    def least_privilege(self, db, role):
        """Runs config/least-privilege.sql as a superuser, as an administrator would."""
        subprocess.run([os.path.join(self.pg.bindir, "psql"), "-X", "-q", "-h", "127.0.0.1",
                        "-p", str(self.pg.port), "-U", "postgres", "-d", db.name,
                        "-v", f"role={role}", "-v", "schema=outbox_relay",
                        "-v", f"publication={self.name}", "-v", "table_schemas=public",
                        "-v", "tables=public.outbox", "-f", LEAST_PRIVILEGE_SQL],
                       check=True, capture_output=True)

    def write(self, db, label, n=3):
        """n rows in one transaction; their (event-id, topic, payload)."""
        with db.transaction() as cur:
            return self.insert(cur, label, n)

    def insert(self, cur, label, n):
        return [harness.insert_event(cur, "order", f"{label}-{i}", "placed", f'{{"{label}": {i}}}')
                for i in range(n)]

    def write_and_delete(self, db, label, n=2):
        """n rows inserted and deleted in one transaction: only the WAL still has them."""
        with db.transaction() as cur:
            rows = self.insert(cur, label, n)
            cur.execute("DELETE FROM public.outbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
        return rows

    def recreate(self, db):
        """Drops the routed table and creates it again, each in its own transaction."""
        db.execute("DROP TABLE public.outbox")
        db.execute(OUTBOX_DDL)

    # --- checks ------------------------------------------------------------------------

    def wait_for_event(self, event, timeout=30):
        """Waits until event arrived: everything committed before it has arrived by then
        (events are published in commit order) or never will. A lost event is reported by
        check_delivery, with the others."""
        wanted = str(event[0])
        try:
            wait_until(lambda: any(harness.event_id(m) == wanted for m in self.rec.messages),
                       timeout, f"event {wanted}", check=self.supervise)
        except TimeoutError:
            pass

    def wait_noticed_drop(self, timeout=60):
        """Until the relay has seen the table missing (it warns), or it exited."""
        wait_until(lambda: DROPPED_WARNING in self.relay.stderr() or not self.relay.running(),
                   timeout, "the relay to notice the dropped table")

    def check_delivery(self, events):
        """Every event exactly once, in commit order, and the relay never exited."""
        self.rec.sync()
        self.assertEqual(harness.received(self.rec.messages), harness.expected(events))
        self.assertEqual(self.exits, [], "the relay exited while a routed table was re-created")
        self.assertNotIn("level=error", self.all_logs())

    # --- the cases ---------------------------------------------------------------------

    def test_recreated_while_the_relay_runs(self):
        """(a) rows before the drop, while the table is missing (none can be written), on
        the new table, and after."""
        db = self.new_db()
        self.start_relay(db, source={"status_interval": "200ms"})
        events = self.write(db, "before")
        self.wait_for_event(events[-1])
        db.execute("DROP TABLE public.outbox")
        self.wait_noticed_drop()
        db.execute(OUTBOX_DDL)
        events += self.write(db, "between")
        events += self.write_and_delete(db, "between-deleted")
        events += self.write(db, "after")
        self.wait_for_event(events[-1])
        self.check_delivery(events)
        self.assertEqual(self.relay.stderr().count(DROPPED_WARNING), 1, "warned once")
        self.stop_relay()

    def test_recreated_while_the_relay_is_stopped(self):
        """(b) the relay stopped with SIGTERM; the table re-created and written meanwhile."""
        db = self.new_db()
        self.start_relay(db)
        events = self.write(db, "before")
        self.wait_for_event(events[-1])
        self.stop_relay()
        self.recreate(db)
        events += self.write(db, "down")
        events += self.write_and_delete(db, "down-deleted")
        self.relay.start()
        self.relay.wait_for_slot(db, self.name)
        events += self.write(db, "after")
        self.wait_for_event(events[-1])
        self.check_delivery(events)
        self.stop_relay()

    def test_started_and_reloaded_while_the_table_is_missing(self):
        """(b) with the table still missing when the relay starts and when it reloads: a
        table it routed before is a warning, not a configuration error, and its rows are
        published once it is created."""
        db = self.new_db()
        self.start_relay(db)
        events = self.write(db, "before")
        self.wait_for_event(events[-1])
        self.stop_relay()
        db.execute("DROP TABLE public.outbox")
        self.relay.start()
        self.relay.wait_for_slot(db, self.name)
        self.assertIn(DROPPED_WARNING, self.relay.stderr())
        self.relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in self.relay.stderr(), 30, "the reload",
                   check=self.relay.check_running)
        db.execute(OUTBOX_DDL)
        events += self.write(db, "created")
        events += self.write_and_delete(db, "created-deleted")
        self.wait_for_event(events[-1])
        self.check_delivery(events)
        self.stop_relay()

    def test_drop_create_and_insert_in_one_transaction(self):
        """(c) DROP, CREATE and INSERT in one transaction, a rename swapping a new table in,
        and a transaction older than the new table writing to it: the rows written after the
        command that gives the table its routed name are decoded, even in the same
        transaction."""
        db = self.new_db()
        self.start_relay(db, source={"status_interval": "200ms"})
        events = self.write(db, "before")
        with db.transaction() as cur:
            cur.execute("DROP TABLE public.outbox")
            cur.execute(OUTBOX_DDL)
            events += self.insert(cur, "same-txn", 3)
        with db.transaction() as cur:
            cur.execute(OUTBOX_DDL.replace("TABLE public.outbox", "TABLE public.outbox_next"))
            cur.execute("ALTER TABLE public.outbox RENAME TO outbox_old")
            cur.execute("ALTER TABLE public.outbox_next RENAME TO outbox")
            events += self.insert(cur, "renamed", 2)
        # A transaction that began (and wrote) before the table was created again, and
        # writes to the new table after: decoded with the catalog of the commit between.
        db.execute("CREATE TABLE public.elsewhere (n int)")
        other = self.pg.connect(db.name)
        self.addCleanup(other.close)
        with other.cursor() as early:
            early.execute("BEGIN")
            early.execute("INSERT INTO public.elsewhere VALUES (1)")
            with db.transaction() as cur:
                cur.execute("DROP TABLE public.outbox")
                cur.execute(OUTBOX_DDL)
            events += self.insert(early, "began-before", 2)
            early.execute("COMMIT")
        events += self.write(db, "after")
        self.wait_for_event(events[-1])
        self.check_delivery(events)
        self.stop_relay()

    def test_least_privilege_sql_and_the_relay_install_the_same(self):
        """least-privilege.sql includes config/routed-tables.sql, which the relay runs as it
        is: run as a superuser afterwards, the relay finds everything as it would make it
        and changes nothing (the rows' xmin stay)."""
        db = self.new_db()
        self.least_privilege(db, "relay_same")

        def versions():
            return db.query(
                "SELECT (SELECT xmin::text FROM pg_proc WHERE oid ="
                "        'outbox_relay.add_routed_tables()'::regprocedure),"
                " (SELECT xmin::text FROM pg_event_trigger"
                "  WHERE evtname = 'outbox_relay_add_routed_tables' AND evtenabled = 'A'),"
                " (SELECT xmin::text FROM pg_class WHERE oid = 'outbox_relay.routed_table'::regclass)")
        installed = versions()
        self.assertNotIn(None, installed[0])
        relay = self.new_relay(db)
        self.assertEqual(relay.run("--drain"), 0)
        self.assertEqual(versions(), installed)
        self.assertEqual(db.query("SELECT publication, schema_name, table_name"
                                  " FROM outbox_relay.routed_table"),
                         [(self.name, "public", "outbox")])
        log = relay.stderr()
        self.assertNotIn("event trigger installed", log)
        self.assertNotIn("no event trigger", log)

    def test_least_privileged_relay(self):
        """(a) and (b) with the objects config/least-privilege.sql installs and the relay
        running as that role."""
        db = self.new_db()
        role = "relay_recreated"
        self.least_privilege(db, role)
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user={role}"
        self.start_relay(db, source={"conninfo": conninfo, "create_publication": False,
                                     "status_interval": "200ms"})
        events = self.write(db, "before")
        self.wait_for_event(events[-1])
        db.execute("DROP TABLE public.outbox")
        self.wait_noticed_drop()
        db.execute(OUTBOX_DDL)  # without the old table's grants: decoding needs none
        events += self.write(db, "running")
        events += self.write_and_delete(db, "running-deleted")
        self.wait_for_event(events[-1])
        self.stop_relay()
        self.recreate(db)
        events += self.write(db, "down")
        self.relay.start()
        self.relay.wait_for_slot(db, self.name)
        events += self.write(db, "after")
        self.wait_for_event(events[-1])
        self.check_delivery(events)
        self.stop_relay()


if __name__ == "__main__":
    harness.main()
