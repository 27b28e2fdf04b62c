#!/usr/bin/python3
"""Backfill requests (doc/design.md §22.1): rows already in a routed table are published,
interleaved with the live stream, with the live event's id and origin=backfill; bad requests
fail with their reason while the stream goes on."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import event_id, insert_event, payload_bytes, user_properties, wait_until  # noqa: E402


def request_backfill(db, slot, route, where=None):
    return db.scalar("INSERT INTO outbox_relay.request (slot_name, kind, route, where_clause)"
                     " VALUES (%s, 'backfill', %s, %s) RETURNING id", (slot, route, where))


def request_row(db, rid):
    rows = db.query("SELECT state, done, total, error, position FROM outbox_relay.request"
                    " WHERE id = %s", (rid,))
    return dict(zip(("state", "done", "total", "error", "position"), rows[0]))


def wait_request(db, rid, relay, timeout=120):
    wait_until(lambda: request_row(db, rid)["state"] in ("done", "failed"), timeout,
               f"request {rid} to end", check=relay.check_running, interval=0.1)
    return request_row(db, rid)


def fill(db, first, count):
    db.execute("INSERT INTO public.outbox (id, aggregate_type, aggregate_id, event_type, payload)"
               " SELECT g, 'order', (g %% 31)::text, 'placed', jsonb_build_object('g', g)"
               " FROM generate_series(%s, %s) g", (first, first + count - 1))
    db.execute("SELECT setval('public.outbox_id_seq', %s)", (first + count - 1,))


def backfilled(messages):
    return [m for m in messages if dict(user_properties(m)).get("origin") == "backfill"]


class BackfillTest(harness.IntegrationCase):

    def start(self, db, routes=None, **overrides):
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=routes, **overrides)
        relay.start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def test_rows_already_there_are_published_with_their_ids(self):
        db = self.new_database()
        fill(db, 1, 5000)
        rec, relay = self.start(db)
        rid = request_backfill(db, self.name, "public.outbox")
        with db.transaction() as cur:
            live = insert_event(cur, "order", "live", "placed", '{"live": true}')
        row = wait_request(db, rid, relay)
        self.assertEqual(row["state"], "done", row["error"])
        messages = rec.sync()
        back = sorted(int(event_id(m)) for m in backfilled(messages))
        # The live row is in the table too: a chunk read after its commit covers it again.
        self.assertIn(back, (list(range(1, 5001)), list(range(1, 5002))))
        self.assertIn(row["done"], (5000, 5001))
        self.assertIn(str(live[0]), [event_id(m) for m in messages])
        first = next(m for m in backfilled(messages) if event_id(m) == "1")
        self.assertEqual(first["topic"], "shop/order/1")
        self.assertEqual(json.loads(payload_bytes(first)), {"g": 1})
        self.assertEqual(relay.terminate(), 0)

    def test_where_replays_a_range(self):
        db = self.new_database()
        fill(db, 1, 3000)
        rec, relay = self.start(db)
        rid = request_backfill(db, self.name, "outbox", "id > 2500")
        self.assertEqual(wait_request(db, rid, relay)["state"], "done")
        back = backfilled(rec.sync())
        self.assertEqual(sorted(int(event_id(m)) for m in back), list(range(2501, 3001)))
        self.assertEqual(relay.terminate(), 0)

    def test_sigterm_during_a_backfill_publishes_nothing_twice(self):
        db = self.new_database()
        fill(db, 1, 60000)
        rec, relay = self.start(db)
        rid = request_backfill(db, self.name, "public.outbox")
        for _ in range(3):
            # Each run moves the backfill on before it is stopped.
            before = request_row(db, rid)["done"]
            wait_until(lambda before=before: request_row(db, rid)["done"] > before + 3000, 120,
                       "the backfill to move on", check=relay.check_running, interval=0.05)
            self.assertEqual(relay.terminate(), 0)
            relay.start()
            relay.wait_for_slot(db, self.name)
        self.assertEqual(wait_request(db, rid, relay)["state"], "done")
        ids = [int(event_id(m)) for m in backfilled(rec.sync())]
        self.assertEqual(len(ids), len(set(ids)), "a clean stop made a backfill repeat rows")
        self.assertEqual(sorted(ids), list(range(1, 60001)))
        self.assertEqual(relay.terminate(), 0)

    def test_the_client_queues_a_backfill_and_follows_it_to_the_end(self):
        db = self.new_database()
        fill(db, 1, 2000)
        rec, relay = self.start(db)
        client = harness.Relay(self.workdir, f"{self.name}.client", config_file=relay.config_path)
        self.assertEqual(client.run("--backfill", "outbox", "--where", "id % 2 = 0", "--wait",
                                    timeout=120), 0, client.stderr())
        self.assertIn("done", client.stdout().splitlines()[-1])
        back = sorted(int(event_id(m)) for m in backfilled(rec.sync()))
        self.assertEqual(back, list(range(2, 2001, 2)))
        failed = harness.Relay(self.workdir, f"{self.name}.failed", config_file=relay.config_path)
        self.assertEqual(failed.run("--backfill", "public.nosuch", "--wait", timeout=120), 1)
        self.assertIn("no table route", failed.stdout() + failed.stderr())
        self.assertEqual(relay.terminate(), 0)

    def test_snapshot_initial_publishes_the_rows_there_at_the_first_start_once(self):
        db = self.new_database()
        fill(db, 1, 3000)
        route = dict(harness.default_route(), snapshot="initial")
        rec, relay = self.start(db, routes=[route])
        rid = db.scalar("SELECT id FROM outbox_relay.request WHERE slot_name = %s", (self.name,))
        self.assertIsNotNone(rid, "the snapshot is a request")
        self.assertEqual(wait_request(db, rid, relay)["state"], "done")
        with db.transaction() as cur:
            live = insert_event(cur, "order", "live", "placed", '{"live": true}')
        wait_until(lambda: str(live[0]) in [event_id(m) for m in rec.sync()], 30, "the live event")
        self.assertEqual(relay.terminate(), 0)
        relay.start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(db.scalar("SELECT count(*) FROM outbox_relay.request"), 1,
                         "a later start queues no second snapshot")
        back = sorted(int(event_id(m)) for m in backfilled(rec.sync()))
        self.assertIn(back, (list(range(1, 3001)), list(range(1, 3002))))

    def test_bad_requests_fail_with_their_reason_and_the_stream_goes_on(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.keyless (id bigint, aggregate_type text, aggregate_id text,"
                   " event_type text, payload jsonb)")
        routes = [harness.default_route(), harness.default_route(table="public.keyless")]
        rec, relay = self.start(db, routes=routes)
        unknown = request_backfill(db, self.name, "public.nosuch")
        bad_where = request_backfill(db, self.name, "public.outbox", "id >")
        keyless = request_backfill(db, self.name, "public.keyless")
        for rid, words in ((unknown, "no table route"), (bad_where, "syntax error"),
                           (keyless, "no primary key")):
            row = wait_request(db, rid, relay)
            self.assertEqual(row["state"], "failed")
            self.assertIn(words, row["error"])
        self.assertIn("request failed", relay.stderr())
        with db.transaction() as cur:
            live = insert_event(cur, "order", "after", "placed", '{"after": true}')
        wait_until(lambda: str(live[0]) in [event_id(m) for m in rec.sync()], 30, "the live event")
        self.assertEqual(relay.terminate(), 0)


if __name__ == "__main__":
    harness.main()
