#!/usr/bin/python3
"""outbox-relay demo: orders and their outbox rows in PostgreSQL become MQTT events.

Run through scripts/demo, which installs and builds first. Starts a throwaway PostgreSQL
and Mosquitto (tests/harness), runs the relay with config/demo.yaml, writes a few orders
(one transaction rolled back), prints what an MQTT subscriber on shop/# receives, and
removes everything again.
"""

import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

import harness  # noqa: E402
from harness.util import install_signal_cleanup, run_cleanups  # noqa: E402

CONFIG = os.path.join(REPO, "config", "demo.yaml")
SLOT = "outbox_relay_demo"
TIMEOUT = 60

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    total numeric(10, 2) NOT NULL,
    status text NOT NULL DEFAULT 'placed'
);
CREATE TABLE shop.outbox (
    id bigserial PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL
);
"""


def say(text=""):
    print(text, flush=True)


def add_event(cur, order_id, event_type, payload):
    payload = {"type": event_type, **payload}
    cur.execute("INSERT INTO shop.outbox (aggregate_type, aggregate_id, event_type, payload)"
                " VALUES ('order', %s, %s, %s)", (str(order_id), event_type, json.dumps(payload)))


def place_order(db, customer, total, paid=False, commit=True):
    """One transaction: the order row and its outbox row(s)."""
    with db.transaction(commit) as cur:
        cur.execute("INSERT INTO shop.orders (customer, total) VALUES (%s, %s) RETURNING id",
                    (customer, total))
        order_id = cur.fetchone()[0]
        add_event(cur, order_id, "OrderPlaced",
                  {"order_id": order_id, "customer": customer, "total": total})
        events = ["OrderPlaced"]
        if paid:
            cur.execute("UPDATE shop.orders SET status = 'paid' WHERE id = %s", (order_id,))
            add_event(cur, order_id, "OrderPaid", {"order_id": order_id, "amount": total})
            events.append("OrderPaid")
    verb = "COMMIT  " if commit else "ROLLBACK"
    note = "" if commit else "   <- rolled back: must never be published"
    say(f"  {verb}  order {order_id} for {customer}: {', '.join(events)}{note}")
    return len(events) if commit else 0


def ship_order(db, order_id, carrier):
    with db.transaction() as cur:
        cur.execute("UPDATE shop.orders SET status = 'shipped' WHERE id = %s", (order_id,))
        add_event(cur, order_id, "OrderShipped", {"order_id": order_id, "carrier": carrier})
    say(f"  COMMIT    order {order_id} shipped: OrderShipped")
    return 1


def write_orders(db):
    say("Writing orders; each order and its outbox rows share one transaction:")
    count = place_order(db, "alice", 42.50)
    count += place_order(db, "bob", 19.99, paid=True)
    count += place_order(db, "carol", 250.00, commit=False)
    count += ship_order(db, 1, "parcelco")
    count += place_order(db, "dave", 7.25)
    return count


def show_message(number, msg):
    props = "  ".join(f"{k}={v}" for k, v in harness.user_properties(msg))
    say(f"  [{number}] {msg['topic']}   (qos {msg['qos']})")
    say(f"      {props}")
    try:
        body = json.dumps(json.loads(msg["payload"]), indent=2)
    except (KeyError, ValueError):
        body = msg.get("payload", "<binary payload>")
    for line in body.splitlines():
        say(f"      {line}")


def start_servers(workdir):
    pg = harness.Postgres(workdir)
    pg.init()
    pg.start()
    mqtt = harness.Mosquitto(workdir)
    mqtt.start()
    major = pg.bindir.rstrip("/").split("/")[-2]
    say(f"  PostgreSQL {major} on 127.0.0.1:{pg.port}, Mosquitto on 127.0.0.1:{mqtt.port}")
    say(f"  (temporary files in {workdir})")
    return pg, mqtt


def create_shop(pg):
    db = pg.create_database("shop")
    db.execute(SCHEMA)
    say("  database shop: tables shop.orders and shop.outbox")
    return db


def start_relay(pg, mqtt, db, workdir):
    env = {"DEMO_PG_PORT": str(pg.port), "DEMO_MQTT_PORT": str(mqtt.port)}
    relay = harness.Relay(workdir, "relay", env=env, config_file=CONFIG)
    relay.start()
    relay.wait_for_slot(db, SLOT, timeout=TIMEOUT)
    say(f"  outbox-relay -c config/demo.yaml   (pid {relay.proc.pid}, streaming from slot {SLOT})")
    return relay


def show_bookkeeping(db):
    row = db.query("SELECT c.commit_lsn::text, c.event_index, c.confirmed_lsn::text,"
                   " s.confirmed_flush_lsn::text FROM outbox_relay.checkpoint c"
                   " JOIN pg_replication_slots s USING (slot_name) WHERE slot_name = %s", (SLOT,))
    if not row:
        say("  (no checkpoint row found)")
        return
    commit_lsn, index, confirmed, slot_confirmed = row[0]
    say(f"  outbox_relay.checkpoint: last event {commit_lsn}:{index}, confirmed {confirmed}")
    say(f"  pg_replication_slots:    confirmed_flush_lsn {slot_confirmed}")


def run(workdir):
    say("Starting a throwaway PostgreSQL and Mosquitto:")
    pg, mqtt = start_servers(workdir)
    db = create_shop(pg)
    recorder = harness.Recorder(mqtt, workdir, filters=("shop/#",)).start()
    say("  MQTT subscriber on shop/#")
    relay = start_relay(pg, mqtt, db, workdir)
    say()
    expected = write_orders(db)
    recorder.wait_for_count(expected, timeout=TIMEOUT, check=relay.check_running)
    messages = recorder.sync()
    say()
    say(f"The subscriber received {len(messages)} events (the rolled-back order is not there):")
    for number, msg in enumerate(messages, 1):
        show_message(number, msg)
    say()
    status = relay.terminate()
    say(f"Stopped the relay with SIGTERM: exit status {status}")
    show_bookkeeping(db)
    db.close()
    recorder.stop()
    mqtt.stop()
    pg.stop()
    return 0 if status == 0 and len(messages) == expected else 1


def run_in_workdir(run, prefix, goodbye):
    """Runs run(workdir) in a new directory; on a failure shows the logs it holds. Removes
    everything afterwards and returns run's status (1 on a failure)."""
    install_signal_cleanup()
    workdir = harness.make_workdir(prefix)
    try:
        status = run(workdir)
    except Exception as e:
        say(f"\ndemo failed: {e}")
        for name in sorted(os.listdir(workdir)):
            if name.endswith((".stderr", ".log")):
                harness.util.print_tail(name, os.path.join(workdir, name), 30)
        status = 1
    finally:
        run_cleanups()
        shutil.rmtree(workdir, ignore_errors=True)
    say(goodbye if status == 0 else "Cleaned up.")
    return status


def main():
    return run_in_workdir(run, "outbox-relay-demo-",
                          "Stopped PostgreSQL and Mosquitto and removed their files.")


if __name__ == "__main__":
    sys.exit(main())
