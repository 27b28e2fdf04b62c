#!/usr/bin/python3
"""doc/design.md §5 and §23: routes that publish updates and deletes (`changes`), which
mirror a table as retained state, one topic per row; and the replica identity checks at
start, each refused configuration with its message (exit 78)."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import user_property  # noqa: E402

ALL = ["insert", "update", "delete"]
# Fixed-length columns only: nothing an UPDATE could leave out as unchanged TOAST.
ITEMS_DDL = "CREATE TABLE public.items (id bigint PRIMARY KEY, qty integer NOT NULL, ok boolean)"
LSN_INDEX = re.compile(r"([0-9A-F]+/[0-9A-F]+):(\d+)")


def state_route(name, payload="row", retain=True, **extra):
    route = {"table": "public.items", "topic": name + "/{id}", "payload": payload,
             "event_id": "id", "retain": retain, "changes": ALL}
    route.update(extra)
    return route


def row(item_id, qty, ok=None):
    return json.dumps({"id": item_id, "qty": qty, "ok": ok}, separators=(",", ":"))


def tuple_kinds(data, pos):
    """The kinds ('n', 'u', 't') of a pgoutput TupleData at pos, and the position after it."""
    count = int.from_bytes(data[pos:pos + 2], "big")
    pos += 2
    kinds = []
    for _ in range(count):
        kind = chr(data[pos])
        pos += 1
        kinds.append(kind)
        if kind in "tb":
            pos += 4 + int.from_bytes(data[pos:pos + 4], "big")
    return kinds, pos


def update_new_kinds(data):
    """The kinds of the new tuple of a pgoutput Update message."""
    assert data[:1] == b"U", data[:1]
    pos = 5
    if data[pos:pos + 1] in (b"K", b"O"):
        _, pos = tuple_kinds(data, pos + 1)
    assert data[pos:pos + 1] == b"N"
    return tuple_kinds(data, pos + 1)[0]


def errors(relay):
    """The error= values of the relay's log, quotes unescaped."""
    return [e.replace('\\"', '"') for e in
            re.findall(r'error="((?:[^"\\]|\\.)*)"', relay.stderr())]


class StateRoutesTest(harness.IntegrationCase):

    def start(self, db, routes, **overrides):
        rec = self.start_recorder(filters=(f"{self.name}/#",))
        relay = self.new_relay(db, routes=routes, **overrides).start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def retained(self):
        """What a fresh subscriber gets: topic -> payload of every retained message."""
        rec = self.start_recorder(filters=(f"{self.name}/#",))
        messages = rec.sync()
        rec.stop()
        self.assertTrue(all(m["retain"] for m in messages), messages)
        return {m["topic"]: m["payload"] for m in messages}

    def summary(self, messages):
        """(op, topic, payload) of each message."""
        return [(user_property(m, "op"), m["topic"], m["payload"]) for m in messages]

    def test_inserts_updates_and_deletes_of_a_retained_mirror(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        rec, relay = self.start(db, [state_route(self.name)])
        self.assertEqual(db.query("SELECT pubinsert, pubupdate, pubdelete, pubtruncate"
                                  " FROM pg_publication WHERE pubname = %s", (self.name,)),
                         [(True, True, True, False)])
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.items VALUES (1, 1, true), (2, 5, NULL)")
        with db.transaction() as cur:
            cur.execute("UPDATE public.items SET qty = 2 WHERE id = 1")
        with db.transaction() as cur:
            cur.execute("DELETE FROM public.items WHERE id = 2")
            cur.execute("INSERT INTO public.items VALUES (3, 7, false)")
        messages = rec.wait_for_count(5, check=relay.check_running)
        t = self.name
        self.assertEqual(self.summary(messages), [
            ("insert", f"{t}/1", row(1, 1, True)), ("insert", f"{t}/2", row(2, 5)),
            ("update", f"{t}/1", row(1, 2, True)), ("delete", f"{t}/2", ""),
            ("insert", f"{t}/3", row(3, 7, False))])
        # An insert keeps its id column; an update or a delete has <commit-lsn>:<index>.
        self.assertEqual([harness.event_id(m) for m in messages[:2]], ["1", "2"])
        update_id, delete_id = harness.event_id(messages[2]), harness.event_id(messages[3])
        self.assertEqual(LSN_INDEX.fullmatch(update_id).groups(),
                         (user_property(messages[2], "lsn"), "0"))
        self.assertEqual(LSN_INDEX.fullmatch(delete_id).groups(),
                         (user_property(messages[3], "lsn"), "0"))
        self.assertEqual(harness.event_id(messages[4]), "3")
        self.assertNotIn("content_type", messages[3])
        self.assertEqual(messages[2].get("content_type"), "application/json")
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.retained(), {f"{t}/1": row(1, 2, True), f"{t}/3": row(3, 7, False)})
        self.assertNotIn("UPDATE of an outbox table", relay.stderr())

    def test_an_update_of_the_topic_clears_the_old_one_first(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        db.execute("INSERT INTO public.items VALUES (1, 1, NULL)")
        rec, relay = self.start(db, [state_route(self.name)])
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.items VALUES (2, 2, NULL)")
        with db.transaction() as cur:
            cur.execute("UPDATE public.items SET id = 10 WHERE id = 2")
            cur.execute("UPDATE public.items SET qty = 3 WHERE id = 10")
        messages = rec.wait_for_count(4, check=relay.check_running)
        t = self.name
        self.assertEqual(self.summary(messages), [
            ("insert", f"{t}/2", row(2, 2)),
            ("delete", f"{t}/2", ""), ("update", f"{t}/10", row(10, 2)),
            ("update", f"{t}/10", row(10, 3))])
        lsn = user_property(messages[1], "lsn")
        self.assertEqual([harness.event_id(m) for m in messages[1:]],
                         [f"{lsn}:0", f"{lsn}:1", f"{lsn}:2"])
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.retained(), {f"{t}/10": row(10, 3)})

    def test_without_retain_a_delete_publishes_the_old_key(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        envelope = {"table": "public.items", "topic": self.name + "/env/{id}",
                    "payload": "envelope", "changes": ALL}
        db.execute("CREATE TABLE public.items2 (LIKE public.items INCLUDING ALL)")
        plain = dict(state_route(self.name, "row", retain=False), table="public.items2")
        rec, relay = self.start(db, [envelope, plain], broker={"protocol": "mqttv311"})
        for table in ("items", "items2"):
            with db.transaction() as cur:
                cur.execute(f"INSERT INTO public.{table} VALUES (1, 1, NULL)")
            with db.transaction() as cur:
                cur.execute(f"UPDATE public.{table} SET id = 4, qty = 2 WHERE id = 1")
            with db.transaction() as cur:
                cur.execute(f"DELETE FROM public.{table} WHERE id = 4")
        messages = rec.wait_for_count(8, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertFalse(any(m.get("user_properties") for m in messages), "MQTT 3.1.1")
        envs = [json.loads(m["payload"]) for m in messages[:4]]
        t = self.name
        self.assertEqual([m["topic"] for m in messages[:4]],
                         [f"{t}/env/1", f"{t}/env/1", f"{t}/env/4", f"{t}/env/4"])
        self.assertEqual([(e["op"], e["old_key"], e["row"]) for e in envs], [
            ("insert", None, {"id": 1, "qty": 1, "ok": None}),
            ("delete", {"id": 1}, None),
            ("update", {"id": 1}, {"id": 4, "qty": 2, "ok": None}),
            ("delete", {"id": 4}, None)])
        self.assertEqual(list(envs[1]), ["event_id", "source", "lsn", "commit_time", "op",
                                         "old_key", "row"])
        self.assertEqual(envs[1]["event_id"], f"{envs[1]['lsn']}:0")
        self.assertEqual(envs[2]["event_id"], f"{envs[2]['lsn']}:1")
        self.assertEqual([(m["topic"], m["payload"], m["retain"]) for m in messages[4:]], [
            (f"{t}/1", row(1, 1), False), (f"{t}/1", '{"id":1}', False),
            (f"{t}/4", row(4, 2), False), (f"{t}/4", '{"id":4}', False)])
        self.assertEqual(self.retained(), {})

    def test_unchanged_toast_under_full_identity_publishes_the_full_row(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.docs (id bigint PRIMARY KEY, body text, n integer)")
        # Out of line and uncompressed: an UPDATE that leaves it alone does not carry it.
        db.execute("ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL")
        db.execute("ALTER TABLE public.docs REPLICA IDENTITY FULL")
        route = {"table": "public.docs", "topic": self.name + "/{id}", "payload": "row",
                 "retain": True, "changes": ALL}
        rec, relay = self.start(db, [route])
        # A second slot shows what the stream carries: the update leaves body out.
        peek = self.name + "_peek"
        db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (peek,))
        self.addCleanup(db.execute, "SELECT pg_drop_replication_slot(%s)", (peek,))
        body = os.urandom(50 * 1024).hex()   # 100 kB
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.docs VALUES (1, %s, 1)", (body,))
        with db.transaction() as cur:
            cur.execute("UPDATE public.docs SET n = 2 WHERE id = 1")
        changes = db.query("SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
                           " 'proto_version', '1', 'publication_names', %s)", (peek, self.name))
        updates = [bytes(d) for (d,) in changes if bytes(d)[:1] == b"U"]
        self.assertEqual([update_new_kinds(u) for u in updates], [["t", "u", "t"]])
        messages = rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([user_property(m, "op") for m in messages], ["insert", "update"])
        self.assertEqual(json.loads(messages[1]["payload"]), {"id": 1, "body": body, "n": 2})
        self.assertEqual(db.scalar("SELECT count(*) FROM outbox_relay.dead_letter"), 0)

    def test_a_backfill_fills_the_mirror_beside_key_changes_and_deletes(self):
        """doc/design.md §23: a backfill publishes rows as inserts; a key changed or deleted
        while a chunk is open does not come back; the request table's own UPDATEs, in the
        publication now that it publishes updates, are ignored."""
        db = self.new_database()
        db.execute(ITEMS_DDL)
        db.execute("INSERT INTO public.items SELECT g, g % 5, NULL"
                   " FROM generate_series(1, 3000) AS g")
        rec, relay = self.start(db, [state_route(self.name)])
        rid = db.scalar("INSERT INTO outbox_relay.request (slot_name, kind, route)"
                        " VALUES (%s, 'backfill', 'public.items') RETURNING id", (self.name,))
        for i in range(1, 3000, 97):
            with db.transaction() as cur:
                cur.execute("UPDATE public.items SET id = id + 100000 WHERE id = %s", (i,))
                cur.execute("DELETE FROM public.items WHERE id = %s", (i + 1,))
        harness.wait_until(lambda: db.scalar("SELECT state FROM outbox_relay.request WHERE id = %s",
                                             (rid,)) in ("done", "failed"), 120,
                           "the backfill to end", check=relay.check_running)
        self.assertEqual(db.scalar("SELECT state FROM outbox_relay.request WHERE id = %s", (rid,)),
                         "done")
        lsn = harness.parse_lsn(db.scalar("SELECT pg_current_wal_insert_lsn()::text"))
        harness.wait_until(lambda: harness.parse_lsn(self.slot_confirmed(db)) >= lsn, 120,
                           "everything to be confirmed", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        backfilled = [m for m in rec.messages
                      if dict(harness.user_properties(m)).get("origin") == "backfill"]
        self.assertTrue(backfilled)
        self.assertEqual({user_property(m, "op") for m in backfilled}, {"insert"})
        self.assertNotIn("UPDATE of an outbox table", relay.stderr())
        self.assertEqual(self.retained(), {f"{self.name}/{i}": row(i, q, ok) for i, q, ok in
                                           db.query("SELECT id, qty, ok FROM public.items")})

    # --- configurations the database does not fit: exit 78, naming table and fix --------

    def refused(self, db, routes, **overrides):
        """Runs the relay to its exit 78; returns its error lines."""
        relay = self.new_relay(db, routes=routes, **overrides)
        self.assertEqual(relay.run(), 78)
        found = errors(relay)
        self.assertTrue(found, relay.stderr())
        self.assertIsNone(db.scalar("SELECT slot_name FROM pg_replication_slots"
                                    " WHERE slot_name = %s", (self.name,)))
        return found

    def where(self, relay_line):
        return relay_line.split(": ", 1)[1]

    def test_no_replica_identity_is_refused(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.items (id bigint NOT NULL, qty integer)")
        db.execute("CREATE TABLE public.flags (id bigint PRIMARY KEY, qty integer)")
        db.execute("ALTER TABLE public.flags REPLICA IDENTITY NOTHING")
        route = state_route(self.name)
        nothing = dict(state_route(self.name), table="public.flags", changes=["insert", "delete"])
        found = [self.where(e) for e in self.refused(db, [route, nothing])]
        self.assertEqual(found, [
            "routes[0].changes: public.items has no primary key: an UPDATE or DELETE carries"
            " nothing of the old row, and PostgreSQL refuses both once the publication"
            " publishes them; give it a primary key or run ALTER TABLE public.items REPLICA"
            " IDENTITY FULL",
            "routes[1].changes: public.flags has REPLICA IDENTITY NOTHING: an UPDATE or DELETE"
            " carries nothing of the old row, and PostgreSQL refuses both once the publication"
            " publishes them; give it a primary key or run ALTER TABLE public.flags REPLICA"
            " IDENTITY FULL"])

    def test_an_outbox_without_identity_beside_a_state_route_is_refused(self):
        db = self.new_database(outbox=False)
        db.execute(harness.OUTBOX_DDL.replace("bigserial PRIMARY KEY", "bigserial"))
        db.execute(ITEMS_DDL)
        found = [self.where(e) for e in
                 self.refused(db, [harness.default_route(), state_route(self.name)])]
        self.assertEqual(found, [
            "routes[0].table: the publication publishes updates and deletes for other routes,"
            " and public.outbox has no primary key: PostgreSQL would refuse UPDATE and DELETE"
            " on it; give it a primary key or run ALTER TABLE public.outbox REPLICA IDENTITY"
            " FULL"])

    def test_a_topic_outside_the_key_is_refused_unless_full(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        route = state_route(self.name, topic=self.name + "/{qty}/{id}",
                            changes=["insert", "delete"])
        found = [self.where(e) for e in self.refused(db, [route])]
        self.assertEqual(found, [
            "routes[0].topic: column \"qty\" is not in the replica identity of public.items"
            " (id): a DELETE, or an UPDATE that changes it, does not carry its old value, so"
            " its old topic could not be cleared; run ALTER TABLE public.items REPLICA IDENTITY"
            " FULL, or build the topic from key columns only"])
        db.execute("ALTER TABLE public.items REPLICA IDENTITY FULL")
        rec, relay = self.start(db, [route])
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.items VALUES (1, 5, NULL)")
        with db.transaction() as cur:
            cur.execute("DELETE FROM public.items")
        messages = rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(self.summary(messages), [("insert", f"{self.name}/5/1", row(1, 5)),
                                                  ("delete", f"{self.name}/5/1", "")])

    def test_toastable_columns_an_update_reads_are_refused_unless_full(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, qty integer,"
                   " note text, tag varchar(20), code text)")
        db.execute("ALTER TABLE public.items ALTER COLUMN code SET STORAGE PLAIN")
        routes = [state_route(self.name),
                  state_route(self.name, payload="note", properties={"tag": "tag", "code": "code"}),
                  state_route(self.name, payload="qty", changes=["insert", "delete"],
                              properties={"tag": "tag"})]
        found = [self.where(e) for e in self.refused(db, routes)]
        fix = ("carries its value only with REPLICA IDENTITY FULL; run ALTER TABLE public.items"
               " REPLICA IDENTITY FULL, or leave update out of changes")
        self.assertEqual(found, [
            "routes[0].payload: payload: row and envelope need every column of an updated row,"
            " and column \"note\" of public.items may be stored out of line (TOAST), and an"
            f" UPDATE that leaves it unchanged {fix}",
            "routes[1].payload: column \"note\" of public.items may be stored out of line"
            f" (TOAST), and an UPDATE that leaves it unchanged {fix}",
            "routes[1].properties.tag: column \"tag\" of public.items may be stored out of line"
            f" (TOAST), and an UPDATE that leaves it unchanged {fix}"])
        db.execute("ALTER TABLE public.items REPLICA IDENTITY FULL")
        relay = self.new_relay(db, routes=routes).start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)

    def test_a_publication_without_updates_is_refused_with_the_statement(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.items"
                   " WITH (publish = 'insert, truncate')")
        relay = self.new_relay(db, routes=[state_route(self.name)],
                               source={"create_publication": False})
        self.assertEqual(relay.run(), 78)
        line = [x for x in relay.stderr().splitlines() if "level=error" in x]
        self.assertEqual(len(line), 1, relay.stderr())
        self.assertIn("does not publish every change the routes publish", line[0])
        self.assertIn(f"sql=\"ALTER PUBLICATION \\\"{self.name}\\\" SET (publish = 'insert,"
                      f" update, delete, truncate')\"", line[0])
        # Allowed to, the relay widens it itself and keeps what it had.
        relay = self.new_relay(db, routes=[state_route(self.name)]).start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(db.query("SELECT pubinsert, pubupdate, pubdelete, pubtruncate"
                                  " FROM pg_publication WHERE pubname = %s", (self.name,)),
                         [(True, True, True, True)])

    def test_message_property_op_is_carried_by_v5_only_on_state_routes(self):
        db = self.new_database()
        db.execute(ITEMS_DDL)
        rec, relay = self.start(db, [dict(harness.default_route(), topic=self.name + "/o/{id}"),
                                     state_route(self.name)])
        with db.transaction() as cur:
            harness.insert_event(cur, "order", "1", "placed", "{}")
            cur.execute("INSERT INTO public.items VALUES (1, 1, NULL)")
        messages = rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([k for k, _ in harness.user_properties(messages[0])],
                         ["event-id", "lsn", "commit-time", "source"])
        self.assertEqual([k for k, _ in harness.user_properties(messages[1])],
                         ["event-id", "lsn", "commit-time", "source", "op"])


if __name__ == "__main__":
    harness.main()
