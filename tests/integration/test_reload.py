#!/usr/bin/python3
"""doc/design.md §3 SIGHUP: a valid file's routes, log level and stats interval apply at once (a
newly routed table joins the publication); other changes are named as needing a restart;
an invalid file is reported line by line and the running configuration stays."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import default_route, insert_event  # noqa: E402
from harness.util import wait_until  # noqa: E402


class ReloadTest(harness.IntegrationCase):

    def sighup(self, relay, count):
        """Sends SIGHUP and waits for the count-th reload to finish (either way)."""
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: relay.stderr().count('msg="configuration reloaded"')
                   + relay.stderr().count('msg="configuration not reloaded: the running one stays"')
                   >= count, 30, "the reload", check=relay.check_running)

    def insert(self, db, aggregate_id):
        with db.transaction() as cur:
            return insert_event(cur, "order", aggregate_id, "placed", "{}")[0]

    def test_sighup_applies_routes_and_keeps_a_bad_file_out(self):
        db = self.new_database()
        db.execute("CREATE TABLE public.audit (id bigserial PRIMARY KEY, what text NOT NULL)")
        rec = self.start_recorder()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                      routes=[dict(default_route(), topic="a/{aggregate_id}")])
        relay = self.relay_with_config(config).start()
        relay.wait_for_slot(db, self.name)
        first = self.insert(db, "1")
        rec.wait_for_count(1)

        # New topic, a second table, debug logging, and one setting that needs a restart.
        config["routes"] = [dict(default_route(), topic="b/{aggregate_id}"),
                            {"table": "public.audit", "topic": "audit/{id}", "payload": "what"}]
        config["log"]["level"] = "debug"
        config["broker"]["keepalive"] = "45s"
        relay.write_config(config)
        self.sighup(relay, 1)
        self.assertIn('msg="changed setting not applied: it takes a restart" key=broker.keepalive',
                      relay.stderr())
        second = self.insert(db, "2")
        db.execute("INSERT INTO public.audit (what) VALUES ('checked')")
        rec.wait_for_count(3)
        # The client's packet log shows from the reload on, and not before it.
        before, _, after = relay.stderr().partition('msg="configuration reloaded"')
        self.assertNotIn("level=debug", before)
        self.assertIn("level=debug", after)

        # A broken file changes nothing, and says where it is broken.
        with open(relay.config_path, "a") as f:
            f.write("bogus_section: 1\n")
        self.sighup(relay, 2)
        self.assertRegex(relay.stderr(), r'msg="configuration error" error="[^"]*\.yaml:\d+:1: '
                                         r'bogus_section: unknown key')
        third = self.insert(db, "3")
        rec.wait_for_count(4)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([m["topic"] for m in rec.messages], ["a/1", "b/2", "audit/1", "b/3"])
        self.assertEqual([harness.event_id(m) for m in rec.messages if m["topic"] != "audit/1"],
                         [str(first), str(second), str(third)])
        self.assertIn("audit", db.scalar("SELECT string_agg(tablename, ',') FROM pg_publication_tables"
                                         " WHERE pubname = %s", (self.name,)))

    def test_reload_to_a_missing_column_is_refused(self):
        db = self.new_database()
        rec = self.start_recorder()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name)
        relay = self.relay_with_config(config).start()
        relay.wait_for_slot(db, self.name)
        config["routes"] = [dict(default_route(), topic="x/{no_such_column}")]
        relay.write_config(config)
        self.sighup(relay, 1)
        self.assertIn("routes[0].topic: column \\\"no_such_column\\\" does not exist", relay.stderr())
        self.assertIn('msg="configuration not reloaded: the running one stays"', relay.stderr())
        row = self.insert(db, "9")
        rec.wait_for_count(1)
        self.assertEqual(relay.terminate(), 0)
        self.assertEqual([(harness.event_id(m), m["topic"]) for m in rec.messages],
                         [(str(row), "shop/order/9")])


if __name__ == "__main__":
    harness.main()
