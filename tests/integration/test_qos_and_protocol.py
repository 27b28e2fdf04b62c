#!/usr/bin/python3
"""Per-route QoS 0, 1 and 2 reach the subscriber as such, each route in order; protocol mqttv311 publishes
without properties, so the envelope carries the metadata."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import payload_bytes, user_properties  # noqa: E402


def route(table, qos, **extra):
    r = {"table": f"public.{table}", "topic": f"{table}/{{aggregate_id}}", "payload": "payload",
         "event_id": "id", "qos": qos}
    r.update(extra)
    return r


class QosAndProtocolTest(harness.IntegrationCase):

    def tables(self, db, names):
        for name in names:
            db.execute(f"CREATE TABLE public.{name} (LIKE public.outbox INCLUDING ALL)")

    def insert(self, cur, table, aggregate_id):
        cur.execute(f"INSERT INTO public.{table} (aggregate_type, aggregate_id, event_type, payload)"
                    " VALUES ('t', %s, 'e', '{}') RETURNING id", (aggregate_id,))
        return cur.fetchone()[0]

    def test_each_route_publishes_with_its_qos(self):
        db = self.new_database()
        self.tables(db, ["q0", "q1", "q2"])
        rec = self.start_recorder(qos=2)
        relay = self.new_relay(db, routes=[route("q0", 0), route("q1", 1), route("q2", 2)]).start()
        relay.wait_for_slot(db, self.name)
        expected = []
        for n in range(30):
            with db.transaction() as cur:
                table = f"q{n % 3}"
                expected.append((f"{table}/{n}", n % 3, str(self.insert(cur, table, str(n)))))
        rec.wait_for_count(len(expected), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        got = [(m["topic"], m["qos"], harness.event_id(m)) for m in messages]
        self.assertEqual(sorted(got), sorted(expected), "exactly the committed events")
        # Order holds per topic tree, not across QoS levels: Mosquitto forwards a QoS 2
        # message only once PUBREL arrives, so later QoS 0/1 events can overtake it.
        for qos in (0, 1, 2):
            self.assertEqual([e for e in got if e[1] == qos], [e for e in expected if e[1] == qos])
        checkpoint = self.checkpoint(db)
        self.assertEqual(checkpoint["published"], len(expected), "every QoS is acknowledged")

    def test_mqttv311_has_no_properties_and_envelope_carries_metadata(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[route("outbox", 1, payload="envelope")],
                               broker={"protocol": "mqttv311"}).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            ids = [self.insert(cur, "outbox", str(n)) for n in range(3)]
        rec.wait_for_count(3, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        messages = rec.sync()
        self.assertEqual([m["topic"] for m in messages], ["outbox/0", "outbox/1", "outbox/2"])
        for msg, row_id in zip(messages, ids):
            self.assertEqual(user_properties(msg), [], "MQTT 3.1.1 carries no properties")
            envelope = json.loads(payload_bytes(msg))
            self.assertEqual(envelope["event_id"], str(row_id))
            self.assertEqual(envelope["source"], "public.outbox")
            self.assertEqual(envelope["row"]["id"], row_id)
        lsns = {json.loads(payload_bytes(m))["lsn"] for m in messages}
        self.assertEqual(len(lsns), 1, "one transaction, one commit LSN")


if __name__ == "__main__":
    harness.main()
