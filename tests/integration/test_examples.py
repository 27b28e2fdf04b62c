#!/usr/bin/python3
"""The worked example config/state-mirror.yaml (doc/design.md §23, §22.1, §8) run as shipped,
pointed at the harness's servers: rows already in the table are seeded, inserts, updates and
deletes keep one retained topic per row, and a fresh subscriber's view equals SELECT of the
table; the relay's status topic says online, then stopped."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import parse_lsn, wait_until  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def example(name):
    with open(os.path.join(REPO, "config", name)) as f:
        return f.read()


class StateMirrorExampleTest(harness.IntegrationCase):

    def config_for(self, db):
        """The example with the harness's addresses: the rest as shipped."""
        text = example("state-mirror.yaml")
        text = text.replace('"host=/var/run/postgresql dbname=fleet user=outbox_relay"',
                            f'"{self.pg.conninfo(db.name)}"')
        text = text.replace("  port: 1883\n", f"  port: {self.mqtt.port}\n")
        self.assertIn(str(self.mqtt.port), text)
        return text

    def retained(self, filters):
        rec = self.start_recorder(filters=filters)
        messages = rec.sync()
        rec.stop()
        self.assertTrue(all(m["retain"] for m in messages), "live messages in a fresh view")
        return {m["topic"]: json.loads(harness.payload_bytes(m)) for m in messages}

    def expected(self, db):
        rows = db.query("SELECT id, online, firmware, battery_pct FROM public.device")
        return {f"devices/{i}/state": (online, firmware, battery) for i, online, firmware, battery in rows}

    def test_the_state_mirror_example_mirrors_the_table(self):
        db = self.new_database(outbox=False)
        db.execute(example("state-mirror.sql"))
        db.execute("INSERT INTO public.device (id, firmware, battery_pct)"
                   " SELECT g, 100, (g % 100)::smallint FROM generate_series(1, 500) g")
        relay = self.relay_with_config(self.config_for(db))
        relay.start()
        relay.wait_for_slot(db, "device_mirror")
        wait_until(lambda: db.scalar("SELECT state FROM outbox_relay.request") == "done", 120,
                   "the snapshot", check=relay.check_running, interval=0.1)
        db.execute("UPDATE public.device SET online = true, firmware = 101 WHERE id % 3 = 0")
        db.execute("DELETE FROM public.device WHERE id % 5 = 0")
        db.execute("INSERT INTO public.device (id, firmware) VALUES (1000, 7), (1001, 8)")
        target = parse_lsn(db.scalar("SELECT pg_current_wal_insert_lsn()::text"))
        wait_until(lambda: parse_lsn(self.slot_confirmed(db, "device_mirror") or "0/0") >= target,
                   120, "the relay to confirm every change", check=relay.check_running)

        view = self.retained(("devices/#",))
        got = {t: (r["online"], r["firmware"], r["battery_pct"]) for t, r in view.items()}
        self.assertEqual(got, self.expected(db))
        status = self.retained(("outbox-relay/#",))
        self.assertEqual(status["outbox-relay/device-mirror/status"]["state"], "online")
        self.assertEqual(relay.terminate(), 0)
        status = self.retained(("outbox-relay/#",))
        self.assertEqual(status["outbox-relay/device-mirror/status"]["state"], "stopped")


if __name__ == "__main__":
    harness.main()
