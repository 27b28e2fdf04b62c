#!/usr/bin/python3
"""The bad-input catalogue, environment side (README "Bad input"): servers that are away,
misconfigured or hostile at start, and what the relay says about each. Waiting cases end
with the trouble fixed and every event delivered.

doc/design.md §3 and §20: before the relay's first start (READY), a server that refuses its
configuration (authentication, a missing database or privilege, wal_level, the broker's
credentials or protocol) ends it with status 78 and one error line naming the cause and the
fix; after it, the same refusals are retried with the growing backoff, at error level. Retry
storms are counted over a window against what the backoff allows
(harness.util.backoff_attempts_bound)."""

import datetime
import json
import os
import re
import sys
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.mqtt_publish import Publisher  # noqa: E402
from harness.mosquitto import Mosquitto  # noqa: E402
from harness.fake_server import CONNACK_BAD_PROTOCOL, FakeServer  # noqa: E402
from harness.postgres import Postgres  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.util import backoff_attempts_bound, count_in_window, free_port, wait_until  # noqa: E402

PASSWORD = "right-for-tests"
STORM_WINDOW = 6    # seconds over which retries are counted (a storm at 100 ms would be 60)


def error_lines(text):
    return [line for line in text.splitlines() if "level=error" in line]


def parse_ts(line):
    """The relay's own timestamp of a logfmt line, in seconds."""
    stamp = re.search(r"^ts=(\S+)", line).group(1)
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class BadEnvironmentTest(harness.IntegrationCase):

    def insert(self, db, n):
        with db.transaction() as cur:
            return [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i})) for i in range(n)]

    def secret_file(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
        return path

    def password_role(self, db, role, *attributes):
        """A role that must give PASSWORD over TCP (scram-sha-256 in pg_hba.conf)."""
        db.execute(f"CREATE ROLE {role} LOGIN {' '.join(attributes)} PASSWORD '{PASSWORD}'")
        self.pg.prepend_hba(f"host all {role} 127.0.0.1/32 scram-sha-256\n"
                            f"host replication {role} 127.0.0.1/32 scram-sha-256\n")
        wait_until(lambda: self.login_fails(db, role), 30, "pg_hba.conf to be reloaded")
        return f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user={role}"

    def login_fails(self, db, role):
        try:
            psycopg2.connect(host="127.0.0.1", port=self.pg.port, dbname=db.name, user=role,
                             password="not-it", connect_timeout=5).close()
            return False
        except psycopg2.OperationalError:
            return True

    def refused_at_start(self, relay, cause, *names):
        """The relay ends with 78 and says why in exactly one error line, which names the
        cause and every one of names (role, database, host...)."""
        self.assertEqual(relay.run(), 78)
        errors = error_lines(relay.stderr())
        self.assertEqual(len(errors), 1, relay.stderr())
        self.assertIn(f'cause="{cause}"', errors[0])
        self.assertIn("fix=", errors[0])
        for name in names:
            self.assertIn(name, errors[0])
        self.assertNotIn("unavailable", relay.stderr())
        self.assertNotIn(PASSWORD, relay.stderr())
        return errors[0]

    def terminate_backends(self, db, role):
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                   (role,))

    def assert_storm_bounded(self, times, low, high, what):
        """At least three attempts, and no more over STORM_WINDOW than the backoff allows."""
        wait_until(lambda: len(times()) >= 3 and times()[-1] - times()[0] >= STORM_WINDOW, 60,
                   f"{what} over {STORM_WINDOW}s")
        count, span = count_in_window(times(), STORM_WINDOW)
        bound = backoff_attempts_bound(span, low, high) + 1   # + 1: the window's edge
        sys.stderr.write(f"{what}: {count} attempts in {span:.1f}s (backoff allows {bound})\n")
        self.assertLessEqual(count, bound, f"{what}: {count} attempts in {span:.1f}s")
        return count

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

    def test_wrong_password_before_the_first_start(self):
        db = self.new_database()
        conninfo = self.password_role(db, "pw_wrong", "SUPERUSER")
        for name, source in (("wrong", {"password_file": self.secret_file("wrong-pw", "guess")}),
                             ("missing", {})):
            with self.subTest(name):
                relay = self.new_relay(db, name=f"{self.name}_{name}",
                                       source=dict(source, conninfo=conninfo))
                line = self.refused_at_start(
                    relay, "password authentication failed" if name == "wrong"
                    else "the server asks for a password and none was given",
                    "role=pw_wrong", f"database={db.name}", "host=127.0.0.1", "source.password_file")
                self.assertNotIn("guess", relay.stderr())
                self.assertIn('during="connecting (bookkeeping)"', line)

    def test_peer_authentication_refused(self):
        """pg_hba.conf says peer for this role over the socket: the relay does not run as an
        operating-system user of that name."""
        db = self.new_database()
        db.execute("CREATE ROLE peer_relay LOGIN SUPERUSER")
        self.pg.prepend_hba("local all peer_relay peer\nlocal replication peer_relay peer\n")
        conninfo = f"host={self.pg.dir} port={self.pg.port} dbname={db.name} user=peer_relay"
        relay = self.new_relay(db, source={"conninfo": conninfo})
        line = self.refused_at_start(relay, "authentication failed", "role=peer_relay", "peer")
        self.assertIn("Peer authentication failed", line)

    def test_missing_database(self):
        db = self.new_database()
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname=no_such_db user=postgres"
        relay = self.new_relay(db, source={"conninfo": conninfo})
        self.refused_at_start(relay, "the database does not exist", "database=no_such_db",
                              'create database \\"no_such_db\\"')

    def test_role_without_replication(self):
        db = self.new_database()
        db.execute("CREATE ROLE no_repl LOGIN")
        db.execute("GRANT SELECT ON public.outbox TO no_repl")
        db.execute("GRANT CREATE ON DATABASE " + db.name + " TO no_repl")
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user=no_repl"
        relay = self.new_relay(db, source={"conninfo": conninfo, "create_publication": False})
        db.execute(f"CREATE PUBLICATION {self.name} FOR TABLE public.outbox")
        # The slot is missing: creating it is refused.
        line = self.refused_at_start(relay, "the role lacks the REPLICATION attribute",
                                     "role=no_repl", 'ALTER ROLE \\"no_repl\\" REPLICATION')
        self.assertIn('during="cannot create the replication slot"', line)
        # The slot exists (made by someone allowed to): the replication connection is refused.
        db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.name,))
        self.addCleanup(db.execute, "SELECT pg_drop_replication_slot(%s)", (self.name,))
        line = self.refused_at_start(relay, "the role lacks the REPLICATION attribute", "role=no_repl")
        self.assertIn('during="connecting (replication)"', line)

    def test_refusals_after_the_first_start_are_retried(self):
        """Started once, the relay retries what would have stopped it at start, at error
        level, naming what refused, with a growing backoff: a password changed under it, then
        REPLICATION taken away. Fixed, it carries on with nothing lost."""
        db = self.new_database()
        conninfo = self.password_role(db, "pw_later", "SUPERUSER")
        rec = self.start_recorder()
        low, high = 0.1, 2.0
        relay = self.new_relay(db, source={
            "conninfo": conninfo, "password_file": self.secret_file("later-pw", PASSWORD),
            "reconnect": {"min": "100ms", "max": "2s"}}).start()
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to start", check=relay.check_running)
        events = self.insert(db, 2)
        rec.wait_for_count(2)

        for name, breaks, cause, fixes in (
                ("password", "ALTER ROLE pw_later PASSWORD 'changed'", "password authentication failed",
                 f"ALTER ROLE pw_later PASSWORD '{PASSWORD}'"),
                ("replication", "ALTER ROLE pw_later NOSUPERUSER NOREPLICATION",
                 "the role lacks the REPLICATION attribute", "ALTER ROLE pw_later SUPERUSER REPLICATION")):
            with self.subTest(name):
                before = len(relay.stderr())
                db.execute(breaks)
                self.terminate_backends(db, "pw_later")
                retried = 'msg="PostgreSQL refused the relay; retrying"'

                def times():
                    # One line per attempt, stamped by the relay.
                    return [parse_ts(line) for line in relay.stderr()[before:].splitlines()
                            if retried in line]
                self.assert_storm_bounded(times, low, high, f"PostgreSQL refusal ({name})")
                relay.check_running()
                tail = relay.stderr()[before:]
                for line in tail.splitlines():
                    if retried in line:
                        self.assertIn("level=error", line)
                        self.assertIn(f'cause="{cause}"', line)
                        self.assertIn("role=pw_later", line)
                        self.assertIn("host=127.0.0.1", line)
                # The server's ending the session is transient; every refusal after it is not.
                self.assertNotIn("unavailable", tail[tail.index(retried):])
                events += self.insert(db, 2)      # committed while refused
                db.execute(fixes)
                rec.wait_for_count(len(events), check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.sync()), harness.expected(events))

    def test_dead_letter_on_a_full_disk_backs_off(self):
        """The dead_letter table cannot take a row (a full tablespace, SQLSTATE 53100, here
        from a trigger): each session decodes the transaction again and fails on it; the
        delays grow instead of looping at the shortest one."""
        db = self.new_database()
        rec = self.start_recorder()
        relay = self.new_relay(db, source={"reconnect": {"min": "100ms", "max": "2s"}}).start()
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to start", check=relay.check_running)
        db.execute("CREATE FUNCTION public.disk_full() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'"
                   " USING ERRCODE = 'disk_full'; END$$")
        db.execute("CREATE TRIGGER disk_full BEFORE INSERT ON outbox_relay.dead_letter"
                   " FOR EACH ROW EXECUTE FUNCTION public.disk_full()")
        before = len(relay.stderr())
        with db.transaction() as cur:
            insert_event(cur, "order", "not+a+topic", "placed", "{}")   # '+': dead-lettered

        def times():
            return [parse_ts(line) for line in relay.stderr()[before:].splitlines()
                    if 'msg="replication started"' in line]
        self.assert_storm_bounded(times, 0.1, 2.0, "dead letter on a full disk")
        self.assertIn("sqlstate=53100", relay.stderr()[before:])
        db.execute("DROP TRIGGER disk_full ON outbox_relay.dead_letter")
        wait_until(lambda: db.scalar("SELECT count(*) FROM outbox_relay.dead_letter") == 1, 60,
                   "the dead letter", check=relay.check_running)
        events = self.insert(db, 2)
        rec.wait_for_count(2, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual(harness.received(rec.sync()), harness.expected(events))

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
        self.refused_at_start(relay, "wal_level is below logical", "wal_level = logical",
                              "sqlstate=55000")

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
        """A broker that admits only some client ids refuses the relay's before its first
        start: status 78, naming the client id and the broker."""
        strict = Mosquitto(self.workdir, extra_config="clientid_prefixes allowed-\n", name="strict")
        strict.start()
        self.addCleanup(strict.stop)
        db = self.new_database()
        relay = self.new_relay(db, broker={"port": strict.port, "client_id": "not-allowed"})
        self.refused_at_start(relay, "the broker does not authorize the client",
                              'reason="Not authorized"', "client_id=not-allowed",
                              f"port={strict.port}", "username=")

    def test_broker_port_leads_to_something_else(self):
        """broker.port leads to a server that accepts TCP and answers something that is not
        MQTT (here HTTP; PostgreSQL's port does the same): a transient failure, retried with
        the default broker backoff (100ms to 5s), which grows."""
        db = self.new_database()
        http = FakeServer()
        self.addCleanup(http.close)
        relay = self.new_relay(db, broker={"port": http.port}).start()
        self.assert_storm_bounded(lambda: list(http.accepted), 0.1, 5.0, "broker port speaking HTTP")
        relay.check_running()
        self.assertIn(f"port={http.port}", relay.stderr())
        self.assertEqual(relay.terminate(), 0)

    def test_broker_not_speaking_the_protocol(self):
        """CONNACK "unacceptable protocol version" (0x84 to an MQTT 5 client): status 78 before
        the first start, for either protocol setting."""
        db = self.new_database()
        old = FakeServer(CONNACK_BAD_PROTOCOL, wait_for_request=True)
        self.addCleanup(old.close)
        for protocol in ("mqttv5", "mqttv311"):
            with self.subTest(protocol):
                relay = self.new_relay(db, name=f"{self.name}_{protocol}",
                                       broker={"port": old.port, "protocol": protocol})
                self.refused_at_start(relay, "the broker does not speak the configured MQTT version",
                                      f"port={old.port}", "broker.protocol")

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
