#!/usr/bin/python3
"""Fault 3: the broker away for a while in the middle of a stream (PostgreSQL restarts are
test_postgres_restart.py).

Mosquitto keeps its state on disk (persistence) and the subscriber has a persistent
session, so the only repeats are messages in flight when the broker went away (QoS 1
redelivery, same event-id and payload). Size: 3,000 events and an 8 s outage;
OUTBOX_FAULT_FULL=1 gives 20,000 events and 30 s.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.mosquitto import PERSISTENCE_CONFIG, prepare_persistence  # noqa: E402
from harness.delivery import DeliveryReport, full_size, wait_for_all  # noqa: E402

EVENTS, OUTAGE_S = (20000, 30) if full_size() else (3000, 8)
MAX_INFLIGHT = 200


class OutagesTest(harness.IntegrationCase):
    mosquitto_config = PERSISTENCE_CONFIG

    @classmethod
    def prepare_files(cls):
        prepare_persistence(cls.workdir)

    def stream(self, db, fault, max_duplicates):
        rec = self.start_recorder(client_id=f"rec-{self.name}"[:23], persistent=True)
        relay = self.new_relay(db, broker={"max_inflight": MAX_INFLIGHT}).start()
        relay.wait_for_slot(db, self.name)
        writer = harness.Writer(self.pg, db.name, max_rows_per_txn=5, rollback_every=9,
                                large_every=300, large_rows=300)
        self.addCleanup(writer.stop_after, 0)
        writer.stop_after(EVENTS)
        writer.start()
        rec.wait_for_count(EVENTS // 3, check=relay.check_running, timeout=300)
        fault(writer)
        writer.finish(timeout=600)
        wait_for_all(self, rec, writer.events, relay)
        self.assertEqual(relay.terminate(), 0)
        report = DeliveryReport(rec.sync(), writer.events, writer.rolled_back)
        report.check(self, max_duplicates=max_duplicates)
        return relay

    def test_broker_away_then_back(self):
        db = self.new_database()

        def outage(writer):
            self.mqtt.stop()
            time.sleep(OUTAGE_S)    # the writer goes on: the backlog grows in the WAL
            self.mqtt.start()
        # What the relay had in flight, and what the broker had in flight to the recorder.
        relay = self.stream(db, outage, max_duplicates=2 * MAX_INFLIGHT)
        self.assertIn("disconnected from broker", relay.stderr())

    def test_both_away_the_relay_sleeps(self):
        """With PostgreSQL away the broker is not reconnected, and the time of its next
        attempt does not keep the loop awake: the relay waits without spinning, and goes on
        once both are back."""
        db = self.new_database()
        relay = self.new_relay(db).start()
        relay.wait_for_slot(db, self.name)
        self.mqtt.stop()
        db.close()
        self.pg.stop()
        time.sleep(1.0)   # both losses seen, the first retries made
        before = cpu_seconds(relay.proc.pid)
        time.sleep(3.0)
        used = cpu_seconds(relay.proc.pid) - before
        self.pg.start()
        self.mqtt.start()
        db.reconnect()
        self.assertLess(used, 0.3, f"the relay used {used:.2f} s of CPU in 3 s with both servers away")
        rec = self.start_recorder()
        with db.transaction() as cur:
            insert_event(cur, "order", "1", "placed", '{"back": true}')
        rec.wait_for_count(1, check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)


def cpu_seconds(pid):
    """utime + stime of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    harness.main()
