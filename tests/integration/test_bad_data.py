#!/usr/bin/python3
"""The bad-input catalogue, data side (README "Bad input"): schema changes in the middle of
a stream, and values that cannot become a message. Each case checks what the relay says
and that nothing committed is lost: published, or in dead_letter with the reason."""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import default_route, insert_event, payload_bytes  # noqa: E402
from harness.util import wait_until  # noqa: E402

ROUTE = dict(default_route(), properties={"event-type": "event_type"})


class BadDataTest(harness.IntegrationCase):

    def start(self, db, routes=None, **overrides):
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=routes or [ROUTE], **overrides).start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def insert(self, db, aggregate_id, payload="{}"):
        with db.transaction() as cur:
            return insert_event(cur, "order", aggregate_id, "placed", payload)[0]

    def dead_letters(self, db):
        return db.query("SELECT event_id, reason FROM outbox_relay.dead_letter ORDER BY id")

    def ids(self, rec):
        return [harness.event_id(m) for m in rec.messages]

    def test_add_column_and_type_change_mid_stream(self):
        db = self.new_database()
        rec, relay = self.start(db)
        first = self.insert(db, "1")
        db.execute("ALTER TABLE public.outbox ADD COLUMN region text DEFAULT 'eu'")
        second = self.insert(db, "2")
        db.execute("ALTER TABLE public.outbox ALTER COLUMN payload TYPE text")
        third = self.insert(db, "3", "not json any more")
        rec.wait_for_count(3)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.ids(rec), [str(first), str(second), str(third)])
        self.assertEqual(payload_bytes(rec.messages[2]), b"not json any more")
        self.assertEqual(self.dead_letters(db), [])

    def test_drop_of_a_routed_column_dead_letters_and_goes_on(self):
        db = self.new_database()
        audit = {"table": "public.audit", "topic": "audit/{id}", "payload": "what"}
        db.execute("CREATE TABLE public.audit (id bigserial PRIMARY KEY, what text NOT NULL)")
        rec, relay = self.start(db, routes=[ROUTE, audit])
        first = self.insert(db, "1")
        db.execute("ALTER TABLE public.outbox DROP COLUMN event_type")
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, payload)"
                        " VALUES ('order', '2', '{}') RETURNING id")
            lost_column = cur.fetchone()[0]
            cur.execute("INSERT INTO public.audit (what) VALUES ('still flowing')")
        wait_until(lambda: len(self.dead_letters(db)) == 1, 30, "the dead letter",
                   check=relay.check_running)
        rec.wait_for_count(2)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([m["topic"] for m in rec.messages], ["shop/order/1", "audit/1"])
        self.assertEqual(self.ids(rec)[0], str(first))
        event, reason = self.dead_letters(db)[0]
        self.assertEqual(event, f"{lost_column}")
        self.assertIn('column "event_type" does not exist', reason)

    def test_table_dropped_and_created_again_without_the_event_trigger(self):
        """The relay (a superuser here) installs the event trigger that keeps a re-created
        routed table in the publication (tests/fault/test_recreated_table.py). Disabled, the
        relay stops loudly, says how to install it, and its next start says that the rows
        written to the new table meanwhile are lost."""
        db = self.new_database()
        rec, relay = self.start(db, source={"status_interval": "200ms"})
        first = self.insert(db, "1")
        rec.wait_for_count(1)
        db.execute("ALTER EVENT TRIGGER outbox_relay_add_routed_tables DISABLE")
        db.execute("DROP TABLE public.outbox")
        db.execute(harness.OUTBOX_DDL)
        self.assertEqual(relay.wait(timeout=60), 1)
        # Seen dropped, or already created again, depending on when the relay looked.
        self.assertRegex(relay.stderr(), r'level=error msg="a routed table (left|is not in) the'
                                          r' publication.*sql_file=\S*routed-tables.sql')
        self.insert(db, "lost")
        # Started again, it warns, adds the table back and goes on from there.
        relay.start()
        relay.wait_for_slot(db, self.name)
        later = self.insert(db, "2")
        rec.wait_for_count(2)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.ids(rec), [str(first), str(later)])
        log = relay.stderr()
        self.assertIn("no event trigger keeps the routed tables in the publication", log)
        self.assertIn("a routed table was created again while no event trigger kept it", log)

    def test_values_that_cannot_form_a_topic(self):
        db = self.new_database()
        rec, relay = self.start(db)
        long_value = "x" * 70000
        ok1 = self.insert(db, "1")
        too_long = self.insert(db, long_value)
        nul_free = self.insert(db, "caf\u00e9")       # non-ASCII is fine
        wait_until(lambda: len(self.dead_letters(db)) == 1, 30, "the dead letter",
                   check=relay.check_running)
        rec.wait_for_count(2)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.ids(rec), [str(ok1), str(nul_free)])
        event, reason = self.dead_letters(db)[0]
        self.assertEqual(event, str(too_long))
        self.assertIn("65535", reason)

    def test_latin1_database_text_arrives_as_utf8(self):
        """The relay's sessions ask for UTF-8: a LATIN1 database's text is converted, so a
        topic and a payload with an accent are what they say (not LATIN1 bytes)."""
        self.pg.connect().cursor().execute(
            f"CREATE DATABASE {self.name} ENCODING 'LATIN1' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'")
        db = harness.Database(self.pg, self.name)
        self.addCleanup(db.close)
        db.execute(harness.OUTBOX_DDL)
        rec, relay = self.start(db)
        row = self.insert(db, "caf\u00e9", '{"name": "cr\u00e8me br\u00fbl\u00e9e"}')
        rec.wait_for_count(1, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.dead_letters(db), [])
        self.assertEqual(harness.received(rec.messages),
                         [(str(row), "shop/order/caf\u00e9", '{"name": "cr\u00e8me br\u00fbl\u00e9e"}')])

    def test_invalid_utf8_in_a_topic_column(self):
        """Only a SQL_ASCII database can hold it; such a value never becomes a topic."""
        self.pg.connect().cursor().execute(
            f"CREATE DATABASE {self.name} ENCODING 'SQL_ASCII' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'")
        db = harness.Database(self.pg, self.name)
        self.addCleanup(db.close)
        db.execute(harness.OUTBOX_DDL)
        rec, relay = self.start(db)
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                        " VALUES ('order', convert_from('\\xff41'::bytea, 'SQL_ASCII'), 'placed', '{}')"
                        " RETURNING id")
            bad = cur.fetchone()[0]
        good = self.insert(db, "fine")
        rec.wait_for_count(1)
        wait_until(lambda: len(self.dead_letters(db)) == 1, 30, "the dead letter",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.ids(rec), [str(good)])
        event, reason = self.dead_letters(db)[0]
        self.assertEqual(event, str(bad))
        self.assertIn("UTF-8", reason)

    def test_nul_bytes_in_a_bytea_payload(self):
        db = self.new_database(outbox=False)
        db.execute("CREATE TABLE public.blobs (id bigserial PRIMARY KEY, body bytea)")
        route = {"table": "public.blobs", "topic": "blobs/{id}", "payload": "body", "event_id": "id"}
        rec, relay = self.start(db, routes=[route])
        blob = bytes(range(256)) * 4 + b"\x00\x00"
        db.execute("INSERT INTO public.blobs (body) VALUES (%s)", (blob,))
        rec.wait_for_count(1)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(payload_bytes(rec.messages[0]), blob)

    def test_a_50_mb_payload_is_relayed_with_bounded_memory(self):
        db = self.new_database()
        rec, relay = self.start(db)
        size = 50 * 1024 * 1024
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)"
                        " VALUES ('order', 'big', 'placed', jsonb_build_object('blob', repeat('x', %s)))"
                        " RETURNING id", (size,))
            big = cur.fetchone()[0]
        after = self.insert(db, "after")
        rec.wait_for_count(2, timeout=300)
        with open(f"/proc/{relay.proc.pid}/status") as f:
            peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.ids(rec), [str(big), str(after)])
        self.assertEqual(len(payload_bytes(rec.messages[0])), size + len('{"blob": ""}'))
        print(f"peak RSS {peak_kb} kB for a {size >> 20} MB payload")
        if "ASAN_OPTIONS" not in os.environ:
            # The message exists a few times over (libpq's buffer, the event, the client's
            # packet); it must not be more than that.
            self.assertLess(peak_kb, 8 * size // 1024)

    def test_a_large_bytea_payload_arrives_exact_with_memory_near_its_floor(self):
        """payload: COLUMN with a bytea of P bytes. What must exist at the peak: libpq's input
        buffer with the message (the hex text, 2P, kept by libpq for the connection's life),
        the event's decoded payload (P, kept until the PUBACK so that a refusal can be
        dead-lettered with it), and libmosquitto's message (P, kept until the PUBACK) and
        packet (P, until written). The copy libpq hands out (another 2P) is freed before
        publishing, and decoding allocates once: 5P in all, where it was 7P."""
        db = self.new_database(outbox=False)
        db.execute("CREATE TABLE public.blobs (id bigserial PRIMARY KEY, body bytea)")
        route = {"table": "public.blobs", "topic": "blobs/{id}", "payload": "body", "event_id": "id",
                 "qos": 1}
        rec = self.start_recorder(transform=lambda m: hashlib.sha256(payload_bytes(m)).digest())
        relay = self.new_relay(db, routes=[route])
        # meson sets it to catch use of uninitialised memory: glibc then writes every byte
        # malloc hands out, so RSS would count the capacity libpq reserves, not its use.
        relay.env.pop("MALLOC_PERTURB_", None)
        relay.start()
        relay.wait_for_slot(db, self.name)
        db.execute("INSERT INTO public.blobs (body) VALUES ('\\x00')")
        rec.wait_for_count(1)
        baseline = peak_rss(relay)
        size = 24 * 1024 * 1024
        blob = os.urandom(size)
        db.execute("INSERT INTO public.blobs (body) VALUES (%s)", (blob,))
        rec.wait_for_count(2, timeout=120)
        growth = peak_rss(relay) - baseline
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(rec.messages, [hashlib.sha256(b"\x00").digest(),
                                        hashlib.sha256(blob).digest()])
        print(f"peak RSS grew by {growth >> 20} MB ({growth / size:.2f} x) for a {size >> 20} MB"
              " bytea payload")
        if "ASAN_OPTIONS" not in os.environ:
            self.assertLessEqual(growth, 5.3 * size)


def peak_rss(relay):
    """The relay's peak resident memory so far, in bytes (VmHWM)."""
    with open(f"/proc/{relay.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


if __name__ == "__main__":
    harness.main()
