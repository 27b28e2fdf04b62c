#!/usr/bin/python3
"""The bad-input catalogue, environment side (README "Bad input"): servers that are away,
misconfigured or hostile at start, and what the relay says about each. Waiting cases end
with the trouble fixed and every event delivered."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.mqtt_publish import Publisher  # noqa: E402
from harness.mosquitto import Mosquitto  # noqa: E402
from harness.postgres import Postgres  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.util import free_port, wait_until  # noqa: E402


class BadEnvironmentTest(harness.IntegrationCase):

    def insert(self, db, n):
        with db.transaction() as cur:
            return [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i})) for i in range(n)]

    # --- PostgreSQL -----------------------------------------------------------------

    def test_postgres_unreachable_at_start_is_waited_out_with_backoff(self):
        db = self.new_database()
        conninfo = f"host=127.0.0.1 port={free_port()} dbname={db.name} user=postgres"
        relay = self.new_relay(db, source={"conninfo": conninfo,
                                           "reconnect": {"min": "100ms", "max": "800ms"}}).start()
        wait_until(lambda: relay.stderr().count("cannot connect to PostgreSQL") >= 5, 30,
                   "five attempts", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        delays = [int(d) for d in re.findall(r'PostgreSQL unavailable, retrying" in=(\d+)ms',
                                            relay.stderr())]
        # One line per attempt, and the delays grow (with jitter) up to the maximum.
        self.assertEqual(len(delays), relay.stderr().count("cannot connect to PostgreSQL"))
        self.assertTrue(all(50 <= d <= 800 for d in delays), delays)
        self.assertGreater(max(delays[3:]), min(delays[:2]))

    def test_role_without_replication(self):
        db = self.new_database()
        db.execute("CREATE ROLE no_repl LOGIN")
        db.execute("GRANT SELECT ON public.outbox TO no_repl")
        db.execute("GRANT CREATE ON DATABASE " + db.name + " TO no_repl")
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user=no_repl"
        relay = self.new_relay(db, source={"conninfo": conninfo, "create_publication": False})
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.outbox")
        self.assertEqual(relay.run(), 1)
        self.assertRegex(relay.stderr(), r"level=error .*(REPLICATION|replication)")

    def test_max_replication_slots_exhausted_is_waited_out(self):
        db = self.new_database()
        free = db.scalar("SELECT current_setting('max_replication_slots')::int"
                         " - (SELECT count(*) FROM pg_replication_slots)")
        fillers = [f"filler_{i}" for i in range(free)]
        for slot in fillers:
            db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        self.addCleanup(lambda: [db.execute("SELECT pg_drop_replication_slot(slot_name) FROM"
                                            " pg_replication_slots WHERE slot_name = %s", (s,))
                                 for s in fillers])
        rec = self.start_recorder()
        relay = self.new_relay(db).start()
        wait_until(lambda: "all replication slots are in use" in relay.stderr(), 30,
                   "the relay to report the full slots", check=relay.check_running)
        self.assertIn("max_replication_slots", relay.stderr())   # the server's hint, kept
        db.execute("SELECT pg_drop_replication_slot(%s)", (fillers.pop(),))
        relay.wait_for_slot(db, self.name, timeout=60)
        events = self.insert(db, 3)
        rec.wait_for_count(3)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.messages), harness.expected(events))

    def test_wal_level_not_logical(self):
        other = Postgres(os.path.join(self.workdir, "replica-level"))
        os.makedirs(os.path.dirname(other.dir), exist_ok=True)
        os.chmod(os.path.dirname(other.dir), 0o711)
        other.init()
        other._write_server_file("postgresql.conf", "wal_level = replica\n", "a")
        other.start()
        self.addCleanup(other.stop)
        db = other.create_database(self.name)
        self.addCleanup(db.close)
        db.execute(harness.OUTBOX_DDL)
        config = harness.relay_config(other, self.mqtt, db.name, self.name)
        relay = self.relay_with_config(config, name="replica_level")
        self.assertEqual(relay.run(), 1)
        self.assertIn("wal_level", relay.stderr())

    # --- broker -----------------------------------------------------------------------

    def test_broker_unreachable_at_start_is_waited_out(self):
        """The broker's address answers nothing at first (a proxy to a closed port), then
        leads to the broker: the events committed meanwhile all arrive."""
        db = self.new_database()
        rec = self.start_recorder()
        proxy = Proxy(free_port())
        self.addCleanup(proxy.close)
        relay = self.new_relay(db, broker={"port": proxy.port,
                                           "reconnect": {"min": "100ms", "max": "500ms"}}).start()
        relay.wait_for_slot(db, self.name)
        events = self.insert(db, 5)     # committed while the broker cannot be reached
        wait_until(lambda: relay.stderr().count("disconnected from broker")
                   + relay.stderr().count("cannot connect to broker") >= 3, 30,
                   "attempts to reach the broker", check=relay.check_running)
        self.assertEqual(rec.sync(), [])
        proxy.target_port = self.mqtt.port
        rec.wait_for_count(5, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.sync()), harness.expected(events))

    def test_client_id_refused_by_the_broker(self):
        """A broker that admits only some client ids refuses the relay's: it says so and
        keeps trying (the broker's configuration may change), never exits on its own."""
        strict = Mosquitto(self.workdir, extra_config="clientid_prefixes allowed-\n", name="strict")
        strict.start()
        self.addCleanup(strict.stop)
        db = self.new_database()
        relay = self.new_relay(db, broker={"port": strict.port, "client_id": "not-allowed",
                                           "reconnect": {"min": "100ms", "max": "300ms"}}).start()
        wait_until(lambda: relay.stderr().count("broker refused the connection") >= 2, 30,
                   "the refusals", check=relay.check_running)
        self.assertIn('reason="Not authorized"', relay.stderr())
        self.assertEqual(relay.terminate(), 0)

    def test_session_taken_over_by_another_client(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, broker={"client_id": f"outbox-relay-{self.name}"[:60]}).start()
        relay.wait_for_slot(db, self.name)
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to be ready")
        events = self.insert(db, 3)
        rec.wait_for_count(3)
        # Someone else connects with the relay's client id: the broker drops the relay.
        with Publisher(self.mqtt.port, client_id=f"outbox-relay-{self.name}"[:60]):
            wait_until(lambda: "disconnected from broker" in relay.stderr(), 30,
                       "the relay to be taken over", check=relay.check_running)
        time.sleep(0.2)
        events += self.insert(db, 3)
        wait_until(lambda: len(rec.messages) >= 6, 60, "the relay to come back",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        with open(self.mqtt.log_path) as f:
            self.assertIn("already connected, closing old connection", f.read())
        self.assertEqual(harness.received(rec.sync()), harness.expected(events))


if __name__ == "__main__":
    harness.main()
