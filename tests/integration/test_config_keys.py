#!/usr/bin/python3
"""doc/design.md §4: the keys whose effect is not a message's shape — each one observed working.

source.password_file, source.heartbeat_interval, broker.hosts, routes[].properties,
log.format, log.stats_interval, and the start-up check of routed tables and columns.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import default_route, insert_event, user_properties  # noqa: E402
from harness.util import free_port, wait_until  # noqa: E402

PASSWORD = "correct horse battery staple"


class ConfigKeysTest(harness.IntegrationCase):

    def write_file(self, name, text, mode=0o600):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def insert(self, db, n, aggregate="order"):
        with db.transaction() as cur:
            return [insert_event(cur, aggregate, str(i), "placed", json.dumps({"n": i}))
                    for i in range(n)]

    def test_user_properties_come_from_columns(self):
        db = self.new_database()
        db.execute("ALTER TABLE public.outbox ADD COLUMN trace_id text")
        route = dict(default_route(), properties={"event-type": "event_type", "trace-id": "trace_id"})
        rec = self.start_recorder()
        relay = self.new_relay(db, routes=[route]).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            cur.execute("INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload,"
                        " trace_id) VALUES ('order', '1', 'placed', '{}', 'abc'),"
                        " ('order', '2', 'paid', '{}', NULL)")
        rec.wait_for_count(2)
        first, second = rec.messages
        self.assertEqual(user_properties(first)[4:], [("event-type", "placed"), ("trace-id", "abc")])
        # A NULL column leaves its property out rather than sending an empty one.
        self.assertEqual(user_properties(second)[4:], [("event-type", "paid")])

    def test_postgres_password_file(self):
        """A role that must give a password connects with the one from the file."""
        db = self.new_database()
        db.execute(f"CREATE ROLE relay_pw LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}'")
        self.require_password_for("relay_pw")
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user=relay_pw"
        # Before the first start a wrong password is a configuration error (doc/design.md §3).
        wrong = self.new_relay(db, name="wrong", source={
            "conninfo": conninfo, "password_file": self.write_file("wrong-pw", "nope\n")})
        self.assertEqual(wrong.run(), 78)
        self.assertIn("password authentication failed", wrong.stderr())
        self.assertNotIn("nope", wrong.stderr())

        rec = self.start_recorder()
        relay = self.new_relay(db, source={
            "conninfo": conninfo, "password_file": self.write_file("pg-pw", PASSWORD + "\n")}).start()
        relay.wait_for_slot(db, self.name)
        events = self.insert(db, 3)
        rec.wait_for_count(3)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.messages), harness.expected(events))
        self.assertNotIn(PASSWORD, relay.stderr())

    def require_password_for(self, role):
        """Puts a scram-sha-256 line for role ahead of the harness's trust lines."""
        hba = os.path.join(self.pg.datadir, "pg_hba.conf")
        with open(hba) as f:
            original = f.read()
        lines = (f"host all {role} 127.0.0.1/32 scram-sha-256\n"
                 f"host replication {role} 127.0.0.1/32 scram-sha-256\n")
        with open(hba, "w") as f:
            f.write(lines + original)
        self.pg.connect().cursor().execute("SELECT pg_reload_conf()")

        def restore():
            with open(hba, "w") as f:
                f.write(original)
            self.pg.connect().cursor().execute("SELECT pg_reload_conf()")
        self.addCleanup(restore)

    def test_broker_hosts_are_tried_in_turn(self):
        db = self.new_database()
        rec = self.start_recorder()
        dead = free_port()   # nothing listens there
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name, broker={
            "hosts": [f"127.0.0.1:{dead}", f"127.0.0.1:{self.mqtt.port}"],
            "reconnect": {"min": "50ms", "max": "200ms"}})
        del config["broker"]["host"]
        relay = self.relay_with_config(config).start()
        relay.wait_for_slot(db, self.name)
        events = self.insert(db, 5)
        rec.wait_for_count(5)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.messages), harness.expected(events))
        self.assertIn(f"port={dead}", relay.stderr())
        self.assertRegex(relay.stderr(),
                         rf"msg=\"connected to broker\" host=127.0.0.1 port={self.mqtt.port}")

    def test_heartbeat_messages_are_emitted_and_never_published(self):
        db = self.new_database()
        # test_decoding shows each message with its transactional flag, inside its transaction.
        db.execute("SELECT pg_create_logical_replication_slot('probe', 'test_decoding')")
        self.addCleanup(db.execute, "SELECT pg_drop_replication_slot('probe')")
        rec = self.start_recorder()
        # A message route matching every prefix: the reserved one still never matches.
        routes = [default_route(), {"message_prefix": "*", "topic": "messages/{prefix}", "qos": 1}]
        relay = self.new_relay(db, routes=routes, source={"heartbeat_interval": "100ms"}).start()
        relay.wait_for_slot(db, self.name)

        def heartbeats():
            rows = db.query("SELECT data FROM pg_logical_slot_peek_changes('probe', NULL, NULL)")
            return [data for (data,) in rows if "outbox-relay.heartbeat" in data]
        wait_until(lambda: len(heartbeats()) >= 3, 30, "three heartbeat messages",
                   check=relay.check_running)
        # Transactional (doc/design.md §17): each one in a transaction of its own.
        for data in heartbeats():
            self.assertRegex(data, r"^message: transactional: 1 prefix: outbox-relay\.heartbeat, sz: ")
        # The relay's slot moves to them although nothing routed was written.
        start = harness.parse_lsn(self.slot_confirmed(db))
        wait_until(lambda: harness.parse_lsn(self.slot_confirmed(db)) > start, 30,
                   "the idle slot to advance", check=relay.check_running)
        # Events after heartbeats are numbered and published as ever.
        db.execute("SELECT pg_logical_emit_message(true, 'shop.after', 'x')")
        events = self.insert(db, 2)
        rec.wait_for_count(3)
        self.assertEqual(relay.terminate(), 0)
        rec.sync()
        self.assertEqual([m["topic"] for m in rec.messages],
                         ["messages/shop.after"] + [topic for _, topic, _ in events])

    def test_json_log_format_and_stats_line(self):
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, log={"format": "json", "stats_interval": "200ms"}).start()
        relay.wait_for_slot(db, self.name)
        self.insert(db, 4)
        rec.wait_for_count(4)
        wait_until(lambda: self.stats_lines(relay, lambda s: s["published"] == 4), 30,
                   "a stats line counting the four events", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        records = [json.loads(line) for line in relay.stderr().splitlines()]
        self.assertTrue(all({"ts", "level", "msg"} <= set(r) for r in records))
        stats = self.stats_lines(relay, lambda s: True)[-1]
        self.assertEqual(set(stats) - {"ts", "level", "msg"},
                         {"published", "rate", "dead_lettered", "pending", "lag_bytes", "lag_ms",
                          "checkpoint_lsn", "reconnects"})
        # Counts are JSON numbers, positions strings (doc/design.md §8).
        self.assertEqual(stats["dead_lettered"], 0)
        for key in ("published", "dead_lettered", "pending", "lag_bytes", "lag_ms", "reconnects"):
            self.assertIs(type(stats[key]), int, key)
        self.assertIn(type(stats["rate"]), (int, float))
        self.assertIsInstance(stats["checkpoint_lsn"], str)
        connected = [r for r in records if r["msg"] == "connected to broker"]
        self.assertEqual(connected[0]["port"], self.mqtt.port)
        stopped = [r for r in records if r["msg"] == "stopped"][-1]
        self.assertEqual((stopped["published_total"], stopped["unacknowledged"]), (4, 0))

    def stats_lines(self, relay, predicate):
        found = []
        for line in relay.stderr().splitlines():
            record = json.loads(line)
            if record["msg"] == "stats" and predicate(record):
                found.append(record)
        return found

    def test_stats_line_on_sigusr1_only_when_interval_is_zero(self):
        db = self.new_database()
        relay = self.new_relay(db, log={"stats_interval": "0s"}).start()
        relay.wait_for_slot(db, self.name)
        time.sleep(0.5)
        self.assertNotIn('msg=stats', relay.stderr())
        relay.proc.send_signal(10)   # SIGUSR1
        wait_until(lambda: "msg=stats" in relay.stderr(), 30, "the stats line",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)

    def test_warns_when_a_file_with_a_password_is_readable_by_others(self):
        db = self.new_database()
        conninfo = self.pg.conninfo(db.name) + " password=not-needed-with-trust"
        relay = self.new_relay(db, source={"conninfo": conninfo})
        os.chmod(relay.config_path, 0o644)
        relay.start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertIn("holds a password and is readable by others", relay.stderr())
        self.assertNotIn("not-needed-with-trust", relay.stderr())
        os.chmod(relay.config_path, 0o600)
        relay.start()
        relay.wait_for_slot(db, self.name)
        self.assertEqual(relay.terminate(), 0)
        self.assertNotIn("readable by others", relay.stderr())

    def test_routed_columns_are_checked_at_start(self):
        db = self.new_database()
        routes = [dict(default_route(), topic="shop/{aggregate_type}/{region}",
                       properties={"trace-id": "trace_id"}),
                  {"table": "public.missing", "topic": "m", "payload": "row"}]
        relay = self.new_relay(db, routes=routes)
        self.assertEqual(relay.run(), 78)
        errors = re.findall(r'error="([^"]*)"', relay.stderr().replace('\\"', "'"))
        path = relay.config_path
        self.assertEqual(errors, [
            f"{path}:19:5: routes[0].topic: column 'region' does not exist in public.outbox",
            f"{path}:19:5: routes[0].properties.trace-id: column 'trace_id' does not exist in"
            " public.outbox",
            f"{path}:26:5: routes[1].table: table public.missing does not exist (or is not a table)",
        ])
        # Nothing was created for a configuration that cannot work.
        self.assertIsNone(db.scalar("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s",
                                    (self.name,)))

    def test_environment_values_in_conninfo_are_values_not_settings(self):
        """${NAME} in source.conninfo is quoted: "NAME port=1" names a database, it does not
        set the port (key=value form and URI alike)."""
        db = self.new_database()
        forms = {
            "keyword": f"host=127.0.0.1 port={self.pg.port} user=postgres dbname=${{TEST_DBNAME}}",
            "uri": f"postgresql://postgres@127.0.0.1:{self.pg.port}/${{TEST_DBNAME}}",
        }
        for form, conninfo in forms.items():
            with self.subTest(form=form):
                config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                              source={"conninfo": conninfo})
                hostile = self.relay_with_config(config, f"hostile-{form}",
                                                 env={"TEST_DBNAME": f"{db.name} port=1"})
                hostile.start()
                wait_until(lambda: "does not exist" in hostile.stderr(), 60,
                           "the relay to report the missing database")
                # Retried, or exit 78 where a missing database counts as a configuration error.
                self.assertIn(hostile.terminate(), (0, 78))
                self.assertIn(f'database \\"{db.name} port=1\\" does not exist', hostile.stderr())
                self.assertNotIn("port 1 failed", hostile.stderr())

                rec = self.start_recorder()
                relay = self.relay_with_config(config, f"plain-{form}",
                                               env={"TEST_DBNAME": db.name}).start()
                relay.wait_for_slot(db, self.name)
                events = self.insert(db, 1, aggregate=form)
                rec.wait_for_count(1)
                self.assertEqual(relay.terminate(), 0)
                rec.stop()
                self.assertEqual(harness.received(rec.messages), harness.expected(events))


if __name__ == "__main__":
    harness.main()
