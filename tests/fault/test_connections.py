#!/usr/bin/python3
"""Fault 5: both TCP paths cut (reset) and frozen (black-holed) in the middle of a stream,
through a proxy in front of each server. Nothing is lost; a frozen peer is noticed within
the relay's settings: the broker's keepalive (1.5 x broker.keepalive, libmosquitto's rule)
and three source.status_interval for PostgreSQL, whose periodic status update asks for an
answer, and every query waits at most as long. Size: 3,000 events; OUTBOX_FAULT_FULL=1 gives 20,000.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.delivery import DeliveryReport, full_size, wait_for_all  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.util import wait_until  # noqa: E402

EVENTS = 20000 if full_size() else 3000
KEEPALIVE_S = 5
STATUS_S = 1
MAX_INFLIGHT = 200
# Margins for slow (sanitizer) runs; what is asserted is that the freeze is noticed at all
# while it lasts, which a relay without these checks never does.
NOTICE_SLACK_S = 10


class ConnectionsTest(harness.IntegrationCase):

    def start(self, db):
        pg_proxy, mqtt_proxy = Proxy(self.pg.port), Proxy(self.mqtt.port)
        self.addCleanup(pg_proxy.close)
        self.addCleanup(mqtt_proxy.close)
        rec = self.start_recorder()
        conninfo = f"host=127.0.0.1 port={pg_proxy.port} dbname={db.name} user=postgres"
        relay = self.new_relay(db, source={"conninfo": conninfo, "status_interval": f"{STATUS_S}s"},
                               broker={"port": mqtt_proxy.port, "keepalive": f"{KEEPALIVE_S}s",
                                       "max_inflight": MAX_INFLIGHT}).start()
        relay.wait_for_slot(db, self.name)
        writer = harness.Writer(self.pg, db.name, max_rows_per_txn=5, rollback_every=8)
        self.addCleanup(writer.stop_after, 0)
        writer.stop_after(EVENTS)
        writer.start()
        return pg_proxy, mqtt_proxy, rec, relay, writer

    def finish(self, rec, relay, writer, max_duplicates):
        writer.finish(timeout=600)
        wait_for_all(self, rec, writer.events, relay)
        self.assertEqual(relay.terminate(), 0)
        DeliveryReport(rec.sync(), writer.events, writer.rolled_back).check(
            self, max_duplicates=max_duplicates)

    def test_both_paths_cut(self):
        db = self.new_database()
        pg_proxy, mqtt_proxy, rec, relay, writer = self.start(db)
        for part in (1, 2):
            rec.wait_for_count(EVENTS * part // 3, check=relay.check_running, timeout=300)
            pg_proxy.drop()
            mqtt_proxy.drop()
        # A cut broker path may lose the acknowledgements of what was in flight.
        self.finish(rec, relay, writer, max_duplicates=2 * MAX_INFLIGHT)
        self.assertIn("replication connection lost", relay.stderr() + relay.stderr())

    def test_frozen_broker_is_noticed(self):
        db = self.new_database()
        pg_proxy, mqtt_proxy, rec, relay, writer = self.start(db)
        rec.wait_for_count(EVENTS // 3, check=relay.check_running, timeout=300)
        before = relay.stderr().count("disconnected from broker")
        mqtt_proxy.freeze()
        started = time.monotonic()
        wait_until(lambda: relay.stderr().count("disconnected from broker") > before,
                   KEEPALIVE_S * 1.5 + NOTICE_SLACK_S, "the relay to give up the frozen broker",
                   check=relay.check_running)
        print(f"frozen broker noticed after {time.monotonic() - started:.1f} s")
        mqtt_proxy.drop()   # the old connection's bytes must not arrive late
        mqtt_proxy.thaw()
        self.finish(rec, relay, writer, max_duplicates=2 * MAX_INFLIGHT)

    def test_frozen_postgres_is_noticed(self):
        db = self.new_database()
        pg_proxy, mqtt_proxy, rec, relay, writer = self.start(db)
        rec.wait_for_count(EVENTS // 3, check=relay.check_running, timeout=300)
        pg_proxy.freeze()
        started = time.monotonic()
        # Noticed by whichever waits on the server first: the stream's silence, or a
        # checkpoint write that gets no answer.
        wait_until(lambda: "PostgreSQL stopped answering" in relay.stderr()
                   or "PostgreSQL did not answer in time" in relay.stderr(),
                   3 * STATUS_S + NOTICE_SLACK_S, "the relay to give up the frozen server",
                   check=relay.check_running)
        print(f"frozen PostgreSQL noticed after {time.monotonic() - started:.1f} s")
        pg_proxy.drop()
        pg_proxy.thaw()
        self.finish(rec, relay, writer, max_duplicates=0)


if __name__ == "__main__":
    harness.main()
