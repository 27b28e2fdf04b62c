#!/usr/bin/python3
"""The command line's thin client of the request table: --backfill, --redrive, --requests and
--wait insert or read rows of outbox_relay.request (doc/design.md §22).

No relay runs here: the test plays its part with UPDATEs of the request's row.
"""

import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.relay import relay_binary  # noqa: E402

EXIT_OK, EXIT_FATAL, EXIT_USAGE = 0, 1, 64
QUEUED = re.compile(r"request (\d+) queued: (.*)")
COLUMNS = ["ID", "KIND", "TARGET", "STATE", "DONE/TOTAL", "REFUSED", "CREATED", "FINISHED", "ERROR"]


class RequestsCliTest(harness.IntegrationCase):

    def client(self, db=None, **overrides):
        """A relay configuration for the test's database and slot; PGTZ fixes the time zone
        the listing's times are written in."""
        db = db or self.new_database()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name, **overrides)
        return db, self.relay_with_config(config, env={"PGTZ": "UTC"})

    def queue(self, relay, *args):
        """Runs a command that queues a request; returns the id it printed."""
        self.assertEqual(relay.run(*args, timeout=60), EXIT_OK, relay.stderr())
        found = QUEUED.fullmatch(relay.stdout().strip())
        self.assertIsNotNone(found, relay.stdout())
        return int(found.group(1))

    def row(self, db, request_id):
        rows = db.query("SELECT slot_name, kind, route, where_clause, dead_letter_ids, state, done,"
                        " total, refused, error FROM outbox_relay.request WHERE id = %s",
                        (request_id,))
        self.assertEqual(len(rows), 1)
        return dict(zip(("slot_name", "kind", "route", "where_clause", "dead_letter_ids", "state",
                         "done", "total", "refused", "error"), rows[0]))

    def update(self, db, request_id, **columns):
        sets = ", ".join(f"{name} = %s" for name in columns)
        db.execute(f"UPDATE outbox_relay.request SET {sets}, updated_at = now() WHERE id = %s",
                   (*columns.values(), request_id))

    def wait_for_output(self, relay, text, timeout=30):
        harness.wait_until(lambda: text in relay.stdout(), timeout, repr(text))

    def latest_request(self, db):
        """The id of the slot's newest request; None before the client made the table."""
        if not db.scalar("SELECT to_regclass('outbox_relay.request') IS NOT NULL"):
            return None
        return db.scalar("SELECT max(id) FROM outbox_relay.request WHERE slot_name = %s",
                         (self.name,))

    def wait_for_request(self, db, relay):
        """The id of the request the client running in the background queued."""
        return harness.wait_until(lambda: self.latest_request(db), 30, "the request to be queued",
                                  check=relay.check_running)

    # --- queueing ----------------------------------------------------------------

    def test_backfill_of_a_bare_table_is_queued_as_schema_table(self):
        db, relay = self.client()
        request_id = self.queue(relay, "--backfill", "outbox", "--where", "id > 5")
        self.assertEqual(relay.stdout(), f"request {request_id} queued: backfill of public.outbox\n")
        self.assertEqual(relay.stderr(), "", "a routed table: no warning")
        self.assertEqual(self.row(db, request_id), {
            "slot_name": self.name, "kind": "backfill", "route": "public.outbox",
            "where_clause": "id > 5", "dead_letter_ids": None, "state": "pending", "done": 0,
            "total": None, "refused": 0, "error": None})

        second = self.queue(relay, "--backfill", "public.outbox")
        self.assertGreater(second, request_id)
        self.assertEqual(self.row(db, second)["route"], "public.outbox")
        self.assertIsNone(self.row(db, second)["where_clause"])

    def test_backfill_of_an_unknown_route_is_queued_with_a_warning(self):
        """The relay checks the route and fails the request with the reason in its row."""
        db, relay = self.client()
        request_id = self.queue(relay, "--backfill", "shop.nope")
        self.assertIn("warning", relay.stderr())
        self.assertIn("shop.nope is not a table route", relay.stderr())
        self.assertEqual(self.row(db, request_id)["route"], "shop.nope")
        self.assertEqual(self.row(db, request_id)["state"], "pending")

        odd = self.queue(relay, "--backfill", "a.b.c")
        self.assertIn("a.b.c is not a table route", relay.stderr())
        self.assertEqual(self.row(db, odd)["route"], "a.b.c", "kept as given")

    def test_redrive_with_ids_and_without(self):
        db, relay = self.client()
        some = self.queue(relay, "--redrive", "--id", "3", "--id", "5,7")
        self.assertEqual(relay.stdout(), f"request {some} queued: redrive of dead letters 3,5,7\n")
        row = self.row(db, some)
        self.assertEqual((row["slot_name"], row["kind"], row["route"], row["where_clause"],
                          row["dead_letter_ids"], row["state"]),
                         (self.name, "redrive", None, None, [3, 5, 7], "pending"))

        every = self.queue(relay, "--redrive")
        self.assertEqual(relay.stdout(), f"request {every} queued: redrive of all dead letters\n")
        row = self.row(db, every)
        self.assertEqual((row["kind"], row["dead_letter_ids"]), ("redrive", None))

    # --- listing -----------------------------------------------------------------

    def test_requests_lists_the_slots_requests_oldest_first(self):
        db, relay = self.client()
        self.assertEqual(relay.run("--requests", timeout=60), EXIT_OK, relay.stderr())
        self.assertEqual(relay.stdout(), f"no requests for slot {self.name}\n")

        backfill = self.queue(relay, "--backfill", "outbox", "--where", "id > 5")
        every = self.queue(relay, "--redrive")
        some = self.queue(relay, "--redrive", "--id", "1,2,3,4,5,6,7")
        db.execute("INSERT INTO outbox_relay.request (slot_name, kind, route)"
                   " VALUES ('another_slot', 'backfill', 'public.elsewhere')")
        self.update(db, backfill, state="done", done=100, total=100,
                    created_at="2026-01-02 03:04:05+00", finished_at="2026-01-02 03:05:00+00")
        self.update(db, every, state="failed", done=2, total=None, refused=1,
                    error="the broker refused\nagain", created_at="2026-01-02 04:00:00+00",
                    finished_at="2026-01-02 04:00:01+00")
        self.update(db, some, state="running", done=3, total=7, created_at="2026-01-02 05:00:00+00")

        self.assertEqual(relay.run("--requests", timeout=60), EXIT_OK, relay.stderr())
        lines = relay.stdout().splitlines()
        self.assertEqual(lines[0].split(), COLUMNS)
        self.assertEqual([re.split(r" {2,}", line.strip()) for line in lines[1:]], [
            [str(backfill), "backfill", "public.outbox", "done", "100/100", "-",
             "2026-01-02 03:04:05+00", "2026-01-02 03:05:00+00"],
            [str(every), "redrive", "dead letters: all", "failed", "2/?", "1",
             "2026-01-02 04:00:00+00", "2026-01-02 04:00:01+00", "the broker refused again"],
            [str(some), "redrive", "ids 1,2,3,4,5 and 2 more", "running", "3/7", "0",
             "2026-01-02 05:00:00+00", "-"],
        ])
        # Aligned: every left-aligned column starts where its heading does.
        for heading in ("KIND", "TARGET", "STATE", "CREATED", "FINISHED"):
            at = lines[0].index(heading)
            for line in lines[1:]:
                self.assertEqual(line[at - 2:at], "  ", (heading, line))
                self.assertNotEqual(line[at], " ", (heading, line))
        for line in lines:
            self.assertEqual(line, line.rstrip(), "no trailing blanks")

    # --- waiting -----------------------------------------------------------------

    def test_wait_reports_progress_and_exits_0_when_done(self):
        """Not on a terminal: a line when the numbers change, at most every 2 s."""
        db, relay = self.client()
        relay.start("--backfill", "outbox", "--wait")
        request_id = self.wait_for_request(db, relay)
        prefix = f"request {request_id} backfill public.outbox: "
        self.wait_for_output(relay, prefix + "pending\n")
        self.update(db, request_id, state="running", started_at="now", done=10, total=100)
        self.wait_for_output(relay, prefix + "running 10/100 (10%)\n")
        self.update(db, request_id, done=50)
        self.wait_for_output(relay, prefix + "running 50/100 (50%)\n")
        self.update(db, request_id, state="done", done=100, finished_at="now")
        self.assertEqual(relay.wait(60), EXIT_OK, relay.stderr())
        self.assertEqual(relay.stdout().splitlines(), [
            f"request {request_id} queued: backfill of public.outbox",
            prefix + "pending",
            prefix + "running 10/100 (10%)",
            prefix + "running 50/100 (50%)",
            prefix + "done 100/100 (100%)",
        ])

    def test_wait_exits_1_when_the_request_fails(self):
        db, relay = self.client()
        relay.start("--redrive", "--id", "4", "--wait")
        request_id = self.wait_for_request(db, relay)
        prefix = f"request {request_id} redrive dead letters 4: "
        self.wait_for_output(relay, prefix + "pending\n")
        self.update(db, request_id, state="running", done=0, total=1)
        self.wait_for_output(relay, prefix + "running 0/1 (0%)\n")
        self.update(db, request_id, state="failed", refused=1, error="dead letter 4 does not exist",
                    finished_at="now")
        self.assertEqual(relay.wait(60), EXIT_FATAL, relay.stderr())
        self.assertEqual(relay.stdout().splitlines()[-1],
                         prefix + "failed 0/1 (0%), 1 refused: dead letter 4 does not exist")

    def test_wait_connects_again_when_its_connection_is_lost(self):
        """The request lives on in the table: a lost session is no reason to stop following."""
        db, relay = self.client()
        relay.start("--backfill", "outbox", "--wait")
        request_id = self.wait_for_request(db, relay)
        prefix = f"request {request_id} backfill public.outbox: "
        self.wait_for_output(relay, prefix + "pending\n")
        terminate = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                     " WHERE datname = %s AND application_name = 'outbox-relay'"
                     " AND pid <> pg_backend_pid()")
        self.assertEqual(db.scalar(terminate, (db.name,)), 1)
        harness.wait_until(lambda: "connected to PostgreSQL again" in relay.stderr(), 30,
                           "the client to connect again", check=relay.check_running)
        self.update(db, request_id, state="done", done=5, total=5, finished_at="now")
        self.assertEqual(relay.wait(60), EXIT_OK, relay.stderr())
        self.assertEqual(relay.stdout().splitlines()[-1], prefix + "done 5/5 (100%)")

    def test_wait_on_a_terminal_draws_one_line(self):
        db, relay = self.client()
        master, slave = os.openpty()
        proc = subprocess.Popen([relay_binary(), "-c", relay.config_path, "--backfill", "outbox",
                                 "--wait"], stdout=slave, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=relay.env)
        os.close(slave)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        output = bytearray()

        def read():
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the other side closed
                    return
                if not data:
                    return
                output.extend(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        request_id = harness.wait_until(lambda: self.latest_request(db), 30, "the request")
        prefix = f"request {request_id} backfill public.outbox: "
        harness.wait_until(lambda: (prefix + "pending").encode() in output, 30, "pending")
        self.update(db, request_id, state="running", done=5, total=50)
        harness.wait_until(lambda: b"running 5/50 (10%)" in output, 30, "running")
        self.update(db, request_id, state="done", done=50, finished_at="now")
        _, errors = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, EXIT_OK, errors)
        reader.join(10)
        os.close(master)
        text = output.decode()
        self.assertEqual(text.count("\n"), 2, repr(text))  # the queued line, then the last
        self.assertIn("\r" + prefix + "running 5/50 (10%)", text)
        self.assertRegex(text, re.escape("\r" + prefix + "done 50/50 (100%)") + r" *\r\n$")

    # --- errors ------------------------------------------------------------------

    def test_usage_errors_exit_64(self):
        db, relay = self.client()
        for args in (["--where", "id > 1"], ["--id", "3"], ["--backfill", "outbox", "--redrive"],
                     ["--requests", "--redrive"], ["--wait"], ["--requests", "--wait"],
                     ["--backfill", "outbox", "--id", "1"], ["--redrive", "--where", "true"],
                     ["--redrive", "--id", "0"], ["--redrive", "--id", "-2"],
                     ["--redrive", "--id", "x"], ["--redrive", "--id", "1,,2"],
                     ["--redrive", "--id", "99999999999999999999"], ["--backfill", ""],
                     ["--backfill", "outbox", "--where", " "], ["--requests", "--check"],
                     ["--redrive", "--drain"]):
            self.assertEqual(relay.run(*args, timeout=30), EXIT_USAGE, args)
            self.assertRegex(relay.stderr(), r"^outbox-relay: ", args)
            self.assertEqual(relay.stdout(), "", args)
        self.assertIsNone(db.scalar("SELECT to_regnamespace('outbox_relay')"),
                          "a usage error connects nowhere")

    def test_unreachable_database_exits_1(self):
        port = harness.free_port()
        _, relay = self.client(source={
            "conninfo": f"host=127.0.0.1 port={port} dbname=x user=postgres password=not-to-be-shown"})
        self.assertEqual(relay.run("--backfill", "outbox", timeout=60), EXIT_FATAL)
        self.assertIn("outbox-relay: no request queued: cannot connect to PostgreSQL", relay.stderr())
        self.assertIn(str(port), relay.stderr(), "says where it tried")
        self.assertNotIn("not-to-be-shown", relay.stderr())
        self.assertEqual(relay.stdout(), "")

    def test_refused_connection_exits_1_naming_the_role(self):
        db = self.new_database()
        _, relay = self.client(db, source={"conninfo": self.pg.conninfo(db.name).replace(
            "user=postgres", "user=nobody_here")})
        self.assertEqual(relay.run("--requests", timeout=60), EXIT_FATAL)
        self.assertIn("outbox-relay: cannot list the requests: PostgreSQL refused", relay.stderr())
        self.assertIn("nobody_here", relay.stderr())

    def test_missing_bookkeeping_without_create_bookkeeping_exits_1(self):
        _, relay = self.client(delivery={"create_bookkeeping": False})
        self.assertEqual(relay.run("--redrive", timeout=60), EXIT_FATAL)
        self.assertIn("outbox-relay: no request queued: the bookkeeping tables are not usable",
                      relay.stderr())

    def test_configuration_error_exits_78(self):
        _, relay = self.client(source={"slot": "Not-A-Slot"})
        self.assertEqual(relay.run("--requests", timeout=30), 78)


if __name__ == "__main__":
    harness.main()
