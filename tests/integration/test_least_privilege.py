#!/usr/bin/python3
"""doc/design.md §6: the relay works as the least-privileged role config/least-privilege.sql makes,
every path included: slot creation, catalog check, bookkeeping, heartbeat, --drain."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402

SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config",
                   "least-privilege.sql")


class LeastPrivilegeTest(harness.IntegrationCase):

    def test_relay_runs_as_the_least_privileged_role(self):
        db = self.new_database()
        role = "relay_least"
        subprocess.run([os.path.join(self.pg.bindir, "psql"), "-X", "-q", "-h", "127.0.0.1",
                        "-p", str(self.pg.port), "-U", "postgres", "-d", db.name,
                        "-v", f"role={role}", "-v", "schema=outbox_relay",
                        "-v", f"publication={self.name}", "-v", "table_schemas=public",
                        "-v", "tables=public.outbox", "-f", SQL],
                       check=True, capture_output=True)
        self.assertFalse(db.scalar("SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles"
                                   " WHERE rolname = %s", (role,)))
        conninfo = f"host=127.0.0.1 port={self.pg.port} dbname={db.name} user={role}"
        rec = self.start_recorder()
        relay = self.new_relay(db, source={"conninfo": conninfo, "create_publication": False,
                                           "heartbeat_interval": "100ms"}).start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            events = [insert_event(cur, "order", str(i), "placed", json.dumps({"i": i}))
                      for i in range(5)]
        rec.wait_for_count(5)
        self.assertEqual(relay.terminate(), 0)
        with db.transaction() as cur:
            events += [insert_event(cur, "order", "late", "placed", "{}")]
        self.assertEqual(relay.run("--drain"), 0)
        rec.sync()
        self.assertEqual(harness.received(rec.messages), harness.expected(events))
        self.assertNotIn("level=error", relay.stderr())
        self.assertEqual(self.checkpoint(db)["published"], 6)


if __name__ == "__main__":
    harness.main()
