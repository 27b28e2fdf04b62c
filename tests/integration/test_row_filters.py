#!/usr/bin/python3
"""Filters on the server (doc/design.md §19.1): routes[].where, a publication row filter, and
routes[].columns, a column list. Filtered rows and columns never leave the database: they
reach neither the relay (fewer bytes on its connections) nor the broker. Checked at start
against the catalog; the publication is created or changed to match; the event trigger
adds a table created again with them; a backfill reads the same rows and columns."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import payload_bytes, user_properties, wait_until  # noqa: E402

EVENTS_DDL = ("CREATE TABLE public.events (id bigint PRIMARY KEY, region text NOT NULL,"
              " body text NOT NULL, note text)")
EU = "region = 'eu'"


def route(name, **extra):
    r = {"table": "public.events", "topic": name + "/{region}/{id}", "payload": "row",
         "event_id": "id"}
    r.update(extra)
    return r


def fill(db, first, count, body_size=10):
    """Rows first.., every other one in 'us' (odd ids) and the rest in 'eu'."""
    db.execute("INSERT INTO public.events (id, region, body)"
               " SELECT g, CASE WHEN g %% 2 = 0 THEN 'eu' ELSE 'us' END, repeat('x', %s)"
               " FROM generate_series(%s, %s) g", (body_size, first, first + count - 1))


def errors(relay):
    return [e.replace('\\"', '"') for e in
            re.findall(r'error="((?:[^"\\]|\\.)*)"', relay.stderr())]


def publication_table(db, pub):
    rows = db.query("SELECT attnames, rowfilter FROM pg_publication_tables"
                    " WHERE pubname = %s AND tablename = 'events'", (pub,))
    return rows[0] if rows else None


class RowFiltersTest(harness.IntegrationCase):

    def start(self, db, routes, slot=None, **overrides):
        rec = self.start_recorder(filters=(f"{self.name}/#",))
        relay = self.new_relay(db, slot=slot, routes=routes, **overrides).start()
        relay.wait_for_slot(db, slot or self.name)
        return rec, relay

    def run_through_proxy(self, db, slot, routes):
        """Starts a relay on db whose PostgreSQL connections go through a counting proxy;
        inserts 2,000 rows of 1 kB, half of them outside the filter; returns (bytes from the
        server, messages)."""
        proxy = harness.Proxy(self.pg.port)
        self.addCleanup(proxy.close)
        conninfo = self.pg.conninfo(db.name).replace(f"port={self.pg.port}", f"port={proxy.port}")
        rec = self.start_recorder(filters=(f"{slot}/#",))
        relay = self.new_relay(db, slot=slot, routes=routes,
                               source={"conninfo": conninfo}).start()
        relay.wait_for_slot(db, slot)
        before = proxy.received()
        fill(db, 1, 2000, body_size=1000)
        want = 1000 if routes[0].get("where") else 2000
        rec.wait_for_count(want, check=relay.check_running)
        messages = rec.sync()
        received = proxy.received() - before
        self.assertEqual(relay.terminate(), 0)
        return received, messages

    def test_rows_outside_the_filter_never_leave_the_database(self):
        plain_db = self.pg.create_database(self.name + "_all")
        self.addCleanup(plain_db.close)
        plain_db.execute(EVENTS_DDL)
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        plain_slot = self.name + "_all"
        everything, all_messages = self.run_through_proxy(
            plain_db, plain_slot, [route(plain_slot)])
        filtered, messages = self.run_through_proxy(db, self.name, [route(self.name, where=EU)])
        self.assertEqual(len(all_messages), 2000)
        self.assertEqual(len(messages), 1000)
        self.assertEqual({m["topic"].split("/")[1] for m in messages}, {"eu"})
        # The 1,000 rows left out are about 1 MB the server never sent.
        self.assertLess(filtered, everything - 900 * 1000,
                        f"with the filter {filtered} bytes, without {everything}")
        self.assertEqual(publication_table(db, self.name)[1], "(region = 'eu'::text)")

    def test_a_column_list_is_all_a_row_carries(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        rec, relay = self.start(db, [route(self.name, columns=["id", "region"])])
        fill(db, 1, 2)
        messages = rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([json.loads(payload_bytes(m)) for m in messages],
                         [{"id": 1, "region": "us"}, {"id": 2, "region": "eu"}])
        self.assertEqual(publication_table(db, self.name), (["id", "region"], None))

    def test_columns_without_a_column_the_route_reads_are_refused(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        relay = self.new_relay(db, routes=[route(self.name, columns=["id", "body"])])
        self.assertEqual(relay.run(), 78)
        self.assertEqual([e.split(": ", 1)[1] for e in errors(relay)], [
            "routes[0].columns: column \"region\" is read by routes[0].topic but is not in"
            " columns: the publication would not send it; add it to columns"])
        relay = self.new_relay(db, routes=[route(self.name, columns=["id", "nosuch"])])
        self.assertEqual(relay.run(), 78)
        self.assertIn("routes[0].columns: column \"nosuch\" does not exist in public.events",
                      errors(relay)[0])

    def test_a_filter_outside_the_replica_identity_is_refused_with_updates(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        changes = ["insert", "update", "delete"]
        relay = self.new_relay(db, routes=[route(self.name, where=EU, changes=changes,
                                                 topic=self.name + "/{id}", payload="id")])
        self.assertEqual(relay.run(), 78)
        self.assertIn("routes[].where of public.events reads column \"region\", which is not in"
                      " the table's replica identity", relay.stderr().replace('\\"', '"'))
        # Nothing was committed: the application's UPDATEs go on.
        self.assertIsNone(publication_table(db, self.name))
        db.execute("INSERT INTO public.events VALUES (1, 'eu', 'b')")
        db.execute("UPDATE public.events SET body = 'c'")
        # A column list must hold the key, and with FULL every column.
        db.execute("ALTER TABLE public.events REPLICA IDENTITY FULL")
        relay = self.new_relay(db, routes=[route(self.name, columns=["id", "region"],
                                                 changes=changes, topic=self.name + "/{id}")])
        self.assertEqual(relay.run(), 78)
        self.assertIn("column \"body\" of the replica identity (FULL: every column) of"
                      " public.events is not in columns", errors(relay)[0])

    def test_a_publication_that_publishes_updates_already_is_checked_too(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        # CREATE PUBLICATION's default publishes updates and deletes; the relay never narrows it.
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.events")
        relay = self.new_relay(db, routes=[route(self.name, where=EU)])
        self.assertEqual(relay.run(), 78)
        self.assertIn("reads column \"region\", which is not in the table's replica identity",
                      relay.stderr().replace('\\"', '"'))
        self.assertEqual(publication_table(db, self.name)[1], None)
        db.execute("UPDATE public.events SET body = 'c'")

    def test_an_existing_publication_gets_the_filter_at_start(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.events"
                   " WITH (publish = 'insert')")
        rec, relay = self.start(db, [route(self.name, where=EU, columns=["id", "region", "body"])])
        self.assertIn("the publication's column list and row filter for a routed table are the"
                      " route's", relay.stderr())
        fill(db, 1, 4)
        messages = rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([m["topic"] for m in rec.sync()],
                         [f"{self.name}/eu/2", f"{self.name}/eu/4"])
        self.assertEqual(len(messages), 2)
        self.assertEqual(publication_table(db, self.name),
                         (["id", "region", "body"], "(region = 'eu'::text)"))
        # Started again with the same route, the relay changes nothing.
        relay.start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertNotIn("are the route's", relay.stderr())
        # Without a filter, the route's table is published whole again.
        relay = self.new_relay(db, routes=[route(self.name)]).start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(publication_table(db, self.name),
                         (["id", "region", "body", "note"], None))

    def test_a_mismatching_publication_is_refused_with_the_statement(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.events WHERE (region = 'us')"
                   " WITH (publish = 'insert')")
        relay = self.new_relay(db, routes=[route(self.name, where=EU)],
                               source={"create_publication": False})
        self.assertEqual(relay.run(), 78)
        line = [x for x in relay.stderr().splitlines() if "level=error" in x]
        self.assertEqual(len(line), 1, relay.stderr())
        self.assertIn("column list or row filter for a routed table is not the route's", line[0])
        table = '\\"public\\".\\"events\\"'
        self.assertIn(f"sql=\"BEGIN; ALTER PUBLICATION \\\"{self.name}\\\" DROP TABLE {table};"
                      f" ALTER PUBLICATION \\\"{self.name}\\\" ADD TABLE {table}"
                      f" WHERE (region = 'eu'); COMMIT\"", line[0])
        # Written as PostgreSQL writes it back, it matches.
        relay = self.new_relay(db, routes=[route(self.name, where="region = 'us'::text")],
                               source={"create_publication": False}).start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)

    def test_a_table_created_again_keeps_its_filter(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        rec, relay = self.start(db, [route(self.name, where=EU, columns=["id", "region"])])
        db.execute("DROP TABLE public.events")
        db.execute(EVENTS_DDL)
        self.assertEqual(publication_table(db, self.name), (["id", "region"], "(region = 'eu'::text)"))
        fill(db, 1, 4)
        rec.wait_for_count(2, check=relay.check_running)
        messages = rec.sync()
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([json.loads(payload_bytes(m)) for m in messages],
                         [{"id": 2, "region": "eu"}, {"id": 4, "region": "eu"}])

    def test_a_backfill_reads_only_the_filtered_rows_and_columns(self):
        db = self.new_database(outbox=False)
        db.execute(EVENTS_DDL)
        fill(db, 1, 100)
        rec, relay = self.start(db, [route(self.name, where=EU, columns=["id", "region"])])
        rid = db.scalar("INSERT INTO outbox_relay.request (slot_name, kind, route, where_clause)"
                        " VALUES (%s, 'backfill', 'public.events', 'id <= 50') RETURNING id",
                        (self.name,))
        wait_until(lambda: db.scalar("SELECT state FROM outbox_relay.request WHERE id = %s",
                                     (rid,)) in ("done", "failed"), 120, "the backfill",
                   check=relay.check_running, interval=0.1)
        self.assertEqual(db.scalar("SELECT coalesce(error, state) FROM outbox_relay.request"
                                   " WHERE id = %s", (rid,)), "done")
        messages = rec.sync()
        self.assertEqual(relay.terminate(), 0)
        self.assertTrue(all(dict(user_properties(m)).get("origin") == "backfill"
                            for m in messages))
        self.assertEqual([json.loads(payload_bytes(m)) for m in messages],
                         [{"id": i, "region": "eu"} for i in range(2, 51, 2)])


if __name__ == "__main__":
    harness.main()
