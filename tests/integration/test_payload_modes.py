#!/usr/bin/python3
"""doc/design.md §5 payloads: `row` (a typed JSON object of all columns) and `envelope`
(event_id, source, lsn, commit_time and the row), against a real decoding stream."""

import json
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import payload_bytes  # noqa: E402
from harness.util import wait_until  # noqa: E402

TYPED_DDL = """
CREATE TABLE public.{name} (
    id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision,
    n numeric, b boolean, j json, jb jsonb, raw bytea, t text, u uuid, d date, nothing text)
"""

ROW_1 = ("1, -2, 40000, 9007199254740993, 1.5, -2.25e-05, 12345678901234567890.123, true,"
         " '{\"a\": [1, 2]}', '{\"k\": \"v\"}', '\\x00ff10'::bytea, E'he said \"hi\"\\n\u20ac',"
         " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-01-02', NULL")
EXPECTED_1 = [
    ("id", 1), ("i2", -2), ("i4", 40000), ("i8", 9007199254740993), ("f4", Decimal("1.5")),
    ("f8", Decimal("-2.25e-05")), ("n", Decimal("12345678901234567890.123")), ("b", True),
    ("j", {"a": [1, 2]}), ("jb", {"k": "v"}), ("raw", "AP8Q"), ("t", 'he said "hi"\n\u20ac'),
    ("u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("d", "2026-01-02"), ("nothing", None),
]
ROW_2 = ("2, NULL, NULL, NULL, 'NaN', '-Infinity', 'NaN', false, NULL, NULL, ''::bytea, '', NULL,"
         " NULL, NULL")
EXPECTED_2 = [
    ("id", 2), ("i2", None), ("i4", None), ("i8", None), ("f4", "NaN"), ("f8", "-Infinity"),
    ("n", "NaN"), ("b", False), ("j", None), ("jb", None), ("raw", ""), ("t", ""), ("u", None),
    ("d", None), ("nothing", None),
]


def ordered(payload):
    """The JSON object as a list of (key, value) in document order, exact decimals."""
    return json.loads(payload, parse_float=Decimal, object_pairs_hook=lambda pairs: pairs)


def as_dicts(pairs):
    return [(k, dict(v) if isinstance(v, list) and v and isinstance(v[0], tuple) else v)
            for k, v in pairs]


class PayloadModesTest(harness.IntegrationCase):

    def start(self, db):
        for name in ("typed", "typed_env"):
            db.execute(TYPED_DDL.format(name=name))
        routes = [
            {"table": "public.typed", "topic": "typed/{id}", "payload": "row", "event_id": "id"},
            {"table": "public.typed_env", "topic": "env/{id}", "payload": "envelope",
             "event_id": "id"},
        ]
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=routes).start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def test_row_and_envelope(self):
        db = self.new_database(outbox=False)
        rec, relay = self.start(db)
        with db.transaction() as cur:
            for table in ("typed", "typed_env"):
                cur.execute(f"INSERT INTO public.{table} VALUES ({ROW_1})")
                cur.execute(f"INSERT INTO public.{table} VALUES ({ROW_2})")
        rec.wait_for_count(4, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual([m["topic"] for m in messages], ["typed/1", "typed/2", "env/1", "env/2"])
        for msg, expected in zip(messages[:2], (EXPECTED_1, EXPECTED_2)):
            self.assertEqual(as_dicts(ordered(payload_bytes(msg))), expected)
        for msg, expected in zip(messages[2:], (EXPECTED_1, EXPECTED_2)):
            envelope = ordered(payload_bytes(msg))
            self.assertEqual([k for k, _ in envelope],
                             ["event_id", "source", "lsn", "commit_time", "row"])
            fields = dict(envelope)
            self.assertEqual(fields["event_id"], harness.event_id(msg))
            self.assertEqual(fields["source"], "public.typed_env")
            self.assertEqual(fields["lsn"], harness.user_property(msg, "lsn"))
            self.assertEqual(fields["commit_time"], harness.user_property(msg, "commit-time"))
            self.assertEqual(as_dicts(fields["row"]), expected)

    def test_domains_are_written_as_their_base_types(self):
        """A domain's values are its base type's: over jsonb (also through another domain)
        embedded JSON, over integer a number, over bytea base64 in a row and raw bytes as
        the payload column; in an envelope too, and for a domain created while the relay
        runs."""
        db = self.new_database(outbox=False)
        db.execute("CREATE DOMAIN doc AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');"
                   " CREATE DOMAIN order_doc AS doc; CREATE DOMAIN qty AS integer CHECK (VALUE > 0);"
                   " CREATE DOMAIN blob AS bytea;"
                   " CREATE TABLE public.dom_row (id bigint PRIMARY KEY, d doc, nested order_doc,"
                   "   q qty, b blob, late jsonb);"
                   " CREATE TABLE public.dom_blob (id bigint PRIMARY KEY, b blob);"
                   " CREATE TABLE public.dom_doc (id bigint PRIMARY KEY, d order_doc);"
                   " CREATE TABLE public.dom_env (id bigint PRIMARY KEY, d doc, q qty)")
        routes = [
            {"table": "public.dom_row", "topic": "row/{id}", "payload": "row", "event_id": "id"},
            {"table": "public.dom_blob", "topic": "blob/{id}", "payload": "b", "event_id": "id"},
            {"table": "public.dom_doc", "topic": "doc/{id}", "payload": "d", "event_id": "id"},
            {"table": "public.dom_env", "topic": "env/{id}", "payload": "envelope", "event_id": "id"},
        ]
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=routes).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.dom_row VALUES (1, '{\"a\": [1, 2]}', '{\"n\": {}}', 7,"
                        " '\\x00ff10', '{\"s\": 1}')")
            cur.execute("INSERT INTO public.dom_blob VALUES (1, '\\x00ff10')")
            cur.execute("INSERT INTO public.dom_doc VALUES (1, '{\"k\": \"v\"}')")
            cur.execute("INSERT INTO public.dom_env VALUES (1, '{\"e\": 1}', 3)")
        rec.wait_for_count(4, check=relay.check_running)
        # A domain the relay has not seen: the relation arrives again with its OID.
        db.execute("CREATE DOMAIN late_doc AS jsonb;"
                   " ALTER TABLE public.dom_row ALTER COLUMN late TYPE late_doc")
        db.execute("INSERT INTO public.dom_row VALUES (2, NULL, NULL, NULL, NULL, '{\"s\": 2}')")
        rec.wait_for_count(5, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()

        self.assertEqual([m["topic"] for m in messages],
                         ["row/1", "blob/1", "doc/1", "env/1", "row/2"])
        self.assertEqual(ordered(payload_bytes(messages[0])), [
            ("id", 1), ("d", [("a", [1, 2])]), ("nested", [("n", [])]), ("q", 7), ("b", "AP8Q"),
            ("late", [("s", 1)])])
        self.assertEqual(payload_bytes(messages[1]), b"\x00\xff\x10")
        self.assertNotIn("content_type", messages[1])
        self.assertEqual(json.loads(payload_bytes(messages[2])), {"k": "v"})
        self.assertEqual(messages[2]["content_type"], "application/json")
        self.assertEqual(dict(ordered(payload_bytes(messages[3])))["row"],
                         [("id", 1), ("d", [("e", 1)]), ("q", 3)])
        self.assertEqual(ordered(payload_bytes(messages[4])), [
            ("id", 2), ("d", None), ("nested", None), ("q", None), ("b", None), ("late", [("s", 2)])])

    def test_generated_columns_are_absent_and_huge_numerics_are_literals(self):
        """What the manual says `payload: row` cannot carry, pinned: PostgreSQL (15 here;
        18 only with publish_generated_columns, which the relay's publication does not set)
        does not send generated columns. A numeric of 5,000 digits is written as its exact
        literal, which Python's json refuses by default (4,300 digits) but parses with
        parse_int / parse_float given."""
        db = self.new_database(outbox=False)
        db.execute("CREATE TABLE public.calc (id bigint PRIMARY KEY, i integer,"
                   " twice integer GENERATED ALWAYS AS (i * 2) STORED, n numeric)")
        route = {"table": "public.calc", "topic": "calc/{id}", "payload": "row", "event_id": "id"}
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[route]).start()
        relay.wait_for_slot(db, self.name)
        digits = "9" * 5000
        db.execute(f"INSERT INTO public.calc (id, i, n) VALUES (1, 21, {digits})")
        rec.wait_for_count(1, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(db.scalar("SELECT twice FROM public.calc"), 42)
        body = payload_bytes(rec.sync()[0]).decode()
        self.assertEqual(body, f'{{"id":1,"i":21,"n":{digits}}}')
        with self.assertRaisesRegex(ValueError, "4300 digits"):
            json.loads(body)
        self.assertEqual(json.loads(body, parse_int=Decimal)["n"], Decimal(digits))

    def test_session_formats_whatever_the_role_says(self):
        """The relay's sessions set the formats it parses: a role whose defaults say escape
        bytea, German dates, rounded floats, SQL-standard intervals and LATIN1 still gets
        byte-exact bytea payloads and ISO, full-precision, UTF-8 rows. Options of the user's
        own in conninfo are kept, except for those settings (TimeZone kept, DateStyle not)."""
        db = self.new_database(outbox=False)
        role = f"{self.name}_role"
        db.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
        for setting in ("bytea_output = 'escape'", "DateStyle = 'German'", "extra_float_digits = 0",
                        "IntervalStyle = 'sql_standard'", "client_encoding = 'LATIN1'"):
            db.execute(f"ALTER ROLE {role} SET {setting}")
        db.execute("CREATE TABLE public.blobs (id bigint PRIMARY KEY, body bytea);"
                   " CREATE TABLE public.shapes (id bigint PRIMARY KEY, at timestamptz,"
                   "   local timestamp, d date, f8 double precision, f4 real, span interval,"
                   "   raw bytea, t text)")
        routes = [
            {"table": "public.blobs", "topic": "blob/{id}", "payload": "body", "event_id": "id"},
            {"table": "public.shapes", "topic": "shape/{id}", "payload": "row", "event_id": "id"},
        ]
        conninfo = (self.pg.conninfo(db.name).replace("user=postgres", f"user={role}")
                    + " options='-c DateStyle=SQL -c TimeZone=Asia/Kolkata'")
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=routes, source={"conninfo": conninfo}).start()
        relay.wait_for_slot(db, self.name)
        blob = bytes(range(256)) + b"\\'\"\\000"
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.blobs VALUES (1, %s)", (blob,))
            cur.execute("INSERT INTO public.shapes VALUES (1, '2026-01-02 03:04:05.123456+00',"
                        " '2026-01-02 03:04:05', '2026-01-02', 0.1::float8 + 0.2, 0.1,"
                        " '1 day 02:03:04', '\\x00ff5c', 'caf\u00e9 \u20ac')")
        wait_until(lambda: len(rec.messages) + len(db.query("SELECT 1 FROM outbox_relay.dead_letter"))
                   >= 2, 60, "both rows published or dead-lettered", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(db.query("SELECT event_id, reason FROM outbox_relay.dead_letter"), [])
        messages = rec.sync()
        self.assertEqual([m["topic"] for m in messages], ["blob/1", "shape/1"])
        self.assertEqual(payload_bytes(messages[0]), blob)
        self.assertEqual(ordered(payload_bytes(messages[1])), [
            ("id", 1), ("at", "2026-01-02 08:34:05.123456+05:30"), ("local", "2026-01-02 03:04:05"),
            ("d", "2026-01-02"), ("f8", Decimal("0.30000000000000004")), ("f4", Decimal("0.1")),
            ("span", "1 day 02:03:04"), ("raw", "AP9c"), ("t", "caf\u00e9 \u20ac")])


if __name__ == "__main__":
    harness.main()
