#!/usr/bin/python3
"""Re-drive requests (doc/design.md §22.2): dead letters are published again with their stored
topic, payload, event id and properties, and origin=redrive; each dead letter records what
became of it, the request counts what was published and what was refused again.

The broker's ACL file denies the relay's MQTT user one topic branch per test, so that
Mosquitto answers PUBACK with reason 0x87 (MQTT 5) and those events are dead-lettered. A test
that lifts its deny rewrites the file and has Mosquitto read it again (SIGHUP, Mosquitto 2.0).
Requests are rows inserted by SQL.
"""

import base64
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import event_id, insert_event, payload_bytes, user_properties, wait_until  # noqa: E402

USER, PASSWORD = "relay", "redrive-test-password"

# The branches denied to the relay's user, one per test; a test that lifts its deny removes
# its branch. Anonymous clients (the recorder, the harness's fences) read everything.
BRANCHES = {"lifted": "shop/lifted/#", "still": "shop/still/#", "by_id": "shop/by_id/#",
            "typed": "typed/#"}

NOTES = {"table": "public.notes", "topic": "notes/{channel}", "payload": "body", "event_id": "id"}
TYPED = {"table": "public.typed", "topic": "typed/{kind}", "payload": "body", "event_id": "id",
         "content_type": "text/x-memo", "properties": {"tenant": "tenant", "kind": "kind"},
         "response_topic": "reply_to", "correlation_data": "corr", "message_expiry": "1h"}
# Binary correlation data: a NUL byte and bytes that are not UTF-8.
CORRELATION = b"\x01\x00\xff\xc3"


def request_redrive(db, slot, ids=None):
    return db.scalar("INSERT INTO outbox_relay.request (slot_name, kind, dead_letter_ids)"
                     " VALUES (%s, 'redrive', %s::bigint[]) RETURNING id", (slot, ids))


def request_row(db, rid):
    rows = db.query("SELECT state, done, refused, error FROM outbox_relay.request WHERE id = %s",
                    (rid,))
    return dict(zip(("state", "done", "refused", "error"), rows[0]))


def wait_request(db, rid, relay, timeout=120):
    """Waits for the request to end; returns its row. The request table is in the publication,
    so the stream brings the request at once: it starts well before the relay's 10 s look at
    the table would find it."""
    wait_until(lambda: request_row(db, rid)["state"] in ("done", "failed"), timeout,
               f"request {rid} to end", check=relay.check_running, interval=0.1)
    waited = db.scalar("SELECT extract(epoch FROM started_at - created_at)::float8"
                       " FROM outbox_relay.request WHERE id = %s", (rid,))
    if waited >= 5:
        raise AssertionError(f"request {rid} started {waited:.1f}s after it was committed")
    return request_row(db, rid)


def dead_letters(db, slot):
    rows = db.query("SELECT id, event_id, topic, reason, payload, properties, redriven_at,"
                    " redrive_outcome FROM outbox_relay.dead_letter WHERE slot_name = %s ORDER BY id",
                    (slot,))
    keys = ("id", "event_id", "topic", "reason", "payload", "properties", "redriven_at", "outcome")
    return [dict(zip(keys, row)) for row in rows]


def origin(msg):
    return dict(user_properties(msg)).get("origin")


def redriven(messages):
    return [m for m in messages if origin(m) == "redrive"]


def content(messages):
    """(event-id, topic, payload) of each message."""
    return [(event_id(m), m["topic"], m.get("payload")) for m in messages]


class RedriveTest(harness.IntegrationCase):
    mosquitto_config = "password_file {workdir}/mosquitto.passwd\nacl_file {workdir}/acl\n"
    denied = set(BRANCHES)

    @classmethod
    def prepare_files(cls):
        passwd = os.path.join(cls.workdir, "mosquitto.passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, USER, PASSWORD], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(passwd, 0o644)   # the broker runs as another user
        cls.write_acl()

    @classmethod
    def write_acl(cls):
        path = os.path.join(cls.workdir, "acl")
        with open(path + ".new", "w") as f:
            f.write("topic read #\ntopic readwrite harness/#\n"
                    f"user {USER}\ntopic readwrite #\n")
            for name in sorted(cls.denied):
                f.write(f"topic deny {BRANCHES[name]}\n")
        os.chmod(path + ".new", 0o644)
        os.replace(path + ".new", path)

    def lift_deny(self, name):
        """Allows the branch and has the broker read its ACL file again (SIGHUP, to its PID).
        Mosquitto logs "Reloading config." and re-reads the file in the same turn of its loop,
        before it reads another packet: whatever is published after the line is judged by the
        new ACL."""
        type(self).denied = self.denied - {name}
        self.write_acl()
        before = self.mqtt.log_text().count("Reloading config.")
        self.mqtt.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.mqtt.log_text().count("Reloading config.") > before, 30,
                   "Mosquitto to reload its configuration")

    def start(self, db, routes=None):
        rec = self.start_recorder()
        pw = os.path.join(self.workdir, f"{self.name}.mqtt-pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o600)
        relay = self.new_relay(db, routes=routes, broker={"username": USER, "password_file": pw})
        relay.start()
        relay.wait_for_slot(db, self.name)
        return rec, relay

    def dead_letter_events(self, db, rec, relay, aggregate_type, n, per_txn=50):
        """n events on a denied branch, dead-lettered; returns them as insert_event does."""
        events = []
        for first in range(0, n, per_txn):
            with db.transaction() as cur:
                events += [insert_event(cur, aggregate_type, str(i), "placed", json.dumps({"i": i}))
                           for i in range(first, min(n, first + per_txn))]
        wait_until(lambda: len(dead_letters(db, self.name)) == n, 120,
                   f"{n} dead letters", check=relay.check_running, interval=0.1)
        self.assertEqual(redriven(rec.sync()), [])
        self.assertEqual([m for m in rec.messages if event_id(m) in {str(e[0]) for e in events}], [],
                         "the broker refused them")
        return events

    def test_redrive_after_lifting_the_deny(self):
        """The issue's check: refused by the ACL, dead-lettered; the ACL lifted, a re-drive
        publishes them as they were, with origin=redrive, while live events go on."""
        db = self.new_database()
        rec, relay = self.start(db)
        # More than the first chunk (1000 rows): the re-drive reads in several chunks.
        n = 1100
        events = self.dead_letter_events(db, rec, relay, "lifted", n)
        letters = dead_letters(db, self.name)
        self.assertTrue(all("0x87" in d["reason"] for d in letters), letters[0]["reason"])
        self.assertEqual([d["outcome"] for d in letters], [None] * n)
        self.assertEqual(relay.stderr().count('msg="event dead-lettered"'), n)

        self.lift_deny("lifted")
        rid = request_redrive(db, self.name)
        live = []
        while request_row(db, rid)["state"] not in ("done", "failed") and len(live) < 100:
            with db.transaction() as cur:
                live.append(insert_event(cur, "order", f"live-{len(live)}", "placed",
                                         json.dumps({"live": len(live)})))
        row = wait_request(db, rid, relay)
        self.assertEqual(row, {"state": "done", "done": n, "refused": 0, "error": None})
        with db.transaction() as cur:   # the branch is open to live events now too
            after = insert_event(cur, "lifted", "after", "placed", '{"after": true}')
        wait_until(lambda: str(after[0]) in [event_id(m) for m in rec.sync()], 30,
                   "a live event on the lifted branch", check=relay.check_running)

        messages = rec.sync()
        again = redriven(messages)
        self.assertEqual(sorted(content(again), key=lambda c: int(c[0])), harness.expected(events))
        self.assertEqual(content(again), harness.expected(events), "in dead letter order")
        for m in again[:3]:
            self.assertEqual(payload_bytes(m), m["payload"].encode())
            self.assertEqual(harness.user_property(m, "source"), "public.outbox")
        others = [m for m in messages if origin(m) is None]
        self.assertEqual(content(others), harness.expected(live + [after]),
                         "live events arrive, in order, without origin")
        self.assertEqual(len(messages), n + len(live) + 1, "nothing twice")

        letters = dead_letters(db, self.name)
        self.assertEqual(len(letters), n, "no new dead letter")
        self.assertEqual({d["outcome"] for d in letters}, {"published"})
        self.assertTrue(all(d["redriven_at"] is not None for d in letters))
        self.assertEqual(relay.terminate(), 0)

    def test_still_refused(self):
        """Without lifting the deny, a re-drive is refused again: each dead letter stays, says
        refused with the new reason, and no second dead letter is written."""
        db = self.new_database()
        rec, relay = self.start(db)
        n = 5
        events = self.dead_letter_events(db, rec, relay, "still", n)
        db.execute("UPDATE outbox_relay.dead_letter SET reason = 'old reason' WHERE slot_name = %s",
                   (self.name,))
        rid = request_redrive(db, self.name)
        row = wait_request(db, rid, relay)
        self.assertEqual(row, {"state": "done", "done": 0, "refused": n, "error": None})

        letters = dead_letters(db, self.name)
        self.assertEqual(len(letters), n, "no new dead letter")
        self.assertEqual([d["event_id"] for d in letters], [str(e[0]) for e in events])
        for d in letters:
            self.assertEqual(d["outcome"], "refused")
            self.assertIsNotNone(d["redriven_at"])
            self.assertIn("0x87", d["reason"])
        self.assertEqual(redriven(rec.sync()), [])
        self.assertEqual(relay.stderr().count('msg="event dead-lettered"'), n)
        self.assertEqual(relay.stderr().count('msg="re-driven dead letter refused again"'), n)

        # Refused is not published: a second request for all of them tries them again.
        rid = request_redrive(db, self.name)
        self.assertEqual(wait_request(db, rid, relay)["refused"], n)
        self.assertEqual(len(dead_letters(db, self.name)), n)
        self.assertEqual(relay.terminate(), 0)

    def test_by_id(self):
        """Only the listed dead letters are re-driven; the others are left as they were."""
        db = self.new_database()
        rec, relay = self.start(db)
        events = self.dead_letter_events(db, rec, relay, "by_id", 6)
        letters = dead_letters(db, self.name)
        chosen = [letters[1]["id"], letters[4]["id"]]
        self.lift_deny("by_id")
        rid = request_redrive(db, self.name, chosen)
        self.assertEqual(wait_request(db, rid, relay),
                         {"state": "done", "done": 2, "refused": 0, "error": None})
        self.assertEqual(content(redriven(rec.sync())), harness.expected([events[1], events[4]]))
        after = dead_letters(db, self.name)
        for before, now in zip(letters, after):
            if now["id"] in chosen:
                self.assertEqual(now["outcome"], "published")
                self.assertIsNotNone(now["redriven_at"])
            else:
                self.assertEqual(now, before, "untouched")
        self.assertEqual(relay.terminate(), 0)

    def test_dead_letter_without_topic_is_refused_again(self):
        """A dead letter whose topic could not be formed (a NULL template column) has nothing
        to publish to: re-driven, it is refused again, saying so."""
        db = self.new_database()
        db.execute("CREATE TABLE public.notes (id bigserial PRIMARY KEY, channel text, body text)")
        rec, relay = self.start(db, routes=[harness.default_route(), NOTES])
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.notes (channel, body) VALUES (NULL, 'nowhere'),"
                        " ('general', 'somewhere') RETURNING id")
            nowhere, somewhere = [r[0] for r in cur.fetchall()]
        wait_until(lambda: str(somewhere) in [event_id(m) for m in rec.sync()], 30,
                   "the note with a channel", check=relay.check_running)
        letters = dead_letters(db, self.name)
        self.assertEqual([(d["event_id"], d["topic"]) for d in letters], [(str(nowhere), None)])
        self.assertEqual(bytes(letters[0]["payload"]), b"nowhere")

        rid = request_redrive(db, self.name)
        self.assertEqual(wait_request(db, rid, relay),
                         {"state": "done", "done": 0, "refused": 1, "error": None})
        letters = dead_letters(db, self.name)
        self.assertEqual(len(letters), 1, "no new dead letter")
        self.assertEqual(letters[0]["outcome"], "refused")
        self.assertIsNotNone(letters[0]["redriven_at"])
        self.assertRegex(letters[0]["reason"], "topic.*could not be formed")
        self.assertEqual(redriven(rec.sync()), [])
        self.assertEqual(relay.terminate(), 0)

    def test_properties_and_content_type_survive(self):
        """A route's user properties and content type are stored with the dead letter and
        carried again by the re-driven message; so are its response topic, binary
        correlation data and message expiry."""
        db = self.new_database()
        db.execute("CREATE TABLE public.typed (id bigserial PRIMARY KEY, tenant text, kind text,"
                   " body text, reply_to text, corr bytea)")
        rec, relay = self.start(db, routes=[harness.default_route(), TYPED])
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.typed (tenant, kind, body, reply_to, corr) VALUES"
                        " ('acme', 'memo', 'first', 'replies/a', %s),"
                        " ('globex', 'note', 'second', NULL, NULL) RETURNING id", (CORRELATION,))
            ids = [str(r[0]) for r in cur.fetchall()]
        wait_until(lambda: len(dead_letters(db, self.name)) == 2, 30, "2 dead letters",
                   check=relay.check_running)
        letters = dead_letters(db, self.name)
        self.assertEqual(letters[0]["properties"].get("content_type"), "text/x-memo")
        self.assertEqual(letters[0]["properties"].get("user:tenant"), "acme")

        self.lift_deny("typed")
        rid = request_redrive(db, self.name)
        self.assertEqual(wait_request(db, rid, relay),
                         {"state": "done", "done": 2, "refused": 0, "error": None})
        again = redriven(rec.sync())
        self.assertEqual(content(again), [(ids[0], "typed/memo", "first"), (ids[1], "typed/note", "second")])
        for m, (tenant, kind) in zip(again, (("acme", "memo"), ("globex", "note"))):
            self.assertEqual(m.get("content_type"), "text/x-memo")
            props = user_properties(m)
            self.assertEqual([k for k, _ in props[:5]],
                             ["event-id", "lsn", "commit-time", "source", "origin"])
            self.assertEqual(props[3:5], [("source", "public.typed"), ("origin", "redrive")])
            self.assertEqual(sorted(props[5:]), sorted([("tenant", tenant), ("kind", kind)]))
            self.assertEqual(m.get("message_expiry"), 3600)
        self.assertEqual((again[0].get("response_topic"), again[0].get("correlation_data")),
                         ("replies/a", base64.b64encode(CORRELATION).decode()))
        self.assertEqual((again[1].get("response_topic"), again[1].get("correlation_data")),
                         (None, None))
        self.assertEqual({d["outcome"] for d in dead_letters(db, self.name)}, {"published"})

        # A dead letter written before correlation data was stored as hex: its text.
        old = db.scalar("INSERT INTO outbox_relay.dead_letter (slot_name, event_id, source, topic,"
                        " commit_lsn, reason, payload, properties) VALUES (%s, 'old-1',"
                        " 'public.typed', 'typed/old', '0/1', 'refused', 'old'::bytea,"
                        " '{\"qos\": 1, \"retain\": false, \"correlation_data\": \"corr-1\"}')"
                        " RETURNING id", (self.name,))
        rid = request_redrive(db, self.name, [old])
        self.assertEqual(wait_request(db, rid, relay)["done"], 1)
        [m] = [m for m in redriven(rec.sync()) if event_id(m) == "old-1"]
        self.assertEqual((m["topic"], m["payload"], m.get("correlation_data")),
                         ("typed/old", "old", base64.b64encode(b"corr-1").decode()))
        self.assertEqual(relay.terminate(), 0)


if __name__ == "__main__":
    harness.main()
