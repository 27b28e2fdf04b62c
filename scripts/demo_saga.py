#!/usr/bin/python3
"""outbox-relay demo of both halves: the saga example (examples/saga) under kill -9.

Run through `scripts/demo saga`, which installs and builds first. Starts a throwaway
PostgreSQL (databases orders and payments) and Mosquitto (tests/harness), each service's
relay and consumer, follows one order of each flow through its messages, then places
200 more orders while it kills the payment service's relay and the order service's
consumer with kill -9 and starts them again, and prints the final state of both databases.
"""

import json
import os
import random
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

import harness  # noqa: E402
from harness.saga import Saga  # noqa: E402
from harness.util import wait_until  # noqa: E402
from demo import run_in_workdir, say  # noqa: E402  (scripts/demo.py: the same frame)

CUSTOMERS = {"alice": 20000, "bob": 10000, "carol": 1500}
ORDERS = 200
TIMEOUT = 60


def start(workdir):
    pg = harness.Postgres(workdir)
    pg.init()
    pg.start()
    mqtt = harness.Mosquitto(workdir)
    mqtt.start()
    say(f"  PostgreSQL on 127.0.0.1:{pg.port}, Mosquitto on 127.0.0.1:{mqtt.port}")
    saga = Saga(pg, mqtt, workdir, CUSTOMERS)
    say("  database orders:   orders, outbox, outbox_relay.inbox")
    say("  database payments: accounts, payments, outbox, outbox_relay.inbox")
    say("  credit: " + ", ".join(f"{c} {v}" for c, v in CUSTOMERS.items()))
    saga.start()
    for name, service in saga.services.items():
        say(f"  {name} service consumer (pid {service.proc.pid}), MQTT client id"
            f" {name}-service, persistent session")
    for name, relay in saga.relays.items():
        say(f"  {name} relay: outbox-relay -c examples/saga/{name}-relay.yaml"
            f" (pid {relay.proc.pid})")
    return pg, mqtt, saga


def show(msg):
    props = dict(harness.user_properties(msg))
    extra = ""
    if msg.get("response_topic"):
        extra += f"  response_topic={msg['response_topic']}"
    if msg.get("correlation_data"):
        extra += f"  correlation_data={msg['correlation_data']}"
    say(f"    {msg['topic']}  event-id={props.get('event-id')}{extra}")
    say(f"      {json.dumps(json.loads(msg['payload']))}")


def follow_one_order_each(saga, recorder):
    say("One order by each flow, and its messages as a subscriber on saga/# sees them:")
    seen = 0
    for flow, customer, amount in (("choreography", "alice", 120), ("orchestration", "bob", 80)):
        order_id = saga.place(customer, amount, flow)
        wait_until(lambda: saga.orders.scalar("SELECT status FROM orders WHERE id = %s",
                                              (order_id,)) != "pending",
                   TIMEOUT, f"order {order_id} to be decided", check=saga.check_running)
        recorder.wait_for_count(seen + 2, timeout=TIMEOUT)   # the order's, the payment's
        messages = recorder.sync()[seen:]
        seen += len(messages)
        say(f"  {flow}: order {order_id}, {customer}, {amount}.00")
        for msg in messages:
            show(msg)
        status = saga.orders.scalar("SELECT status FROM orders WHERE id = %s", (order_id,))
        say(f"    -> order {order_id} {status}")
    say()


def place_with_faults(saga):
    say(f"Placing {ORDERS} orders, both flows, at random amounts; on the way:")
    rng = random.Random(1)
    faults = {50: ("kill", "relay", "payment"), 80: ("start", "relay", "payment"),
              110: ("kill", "service", "order"), 150: ("start", "service", "order")}
    for i in range(1, ORDERS + 1):
        fault = faults.get(i)
        if fault:
            action, kind, name = fault
            process = saga.relays[name] if kind == "relay" else saga.services[name]
            label = f"{name} service's {'relay' if kind == 'relay' else 'consumer'}"
            if action == "kill":
                pid = process.proc.pid
                process.kill()
                say(f"  after order {i - 1}: kill -9 of the {label} (pid {pid})")
            else:
                if kind == "relay":
                    saga.start_relay(name)
                else:
                    process.start()
                say(f"  after order {i - 1}: the {label} started again (pid {process.proc.pid})")
        saga.place(rng.choice(sorted(CUSTOMERS)), rng.randrange(20, 400),
                   rng.choice(("choreography", "orchestration")))
        time.sleep(0.01)
    say("  waiting for both services to handle everything")
    saga.wait_settled()
    say()


def run(workdir):
    say("Starting a throwaway PostgreSQL and Mosquitto, two services, two relays:")
    pg, mqtt, saga = start(workdir)
    recorder = harness.Recorder(mqtt, workdir, filters=("saga/#",)).start()
    say()
    follow_one_order_each(saga, recorder)
    recorder.stop()
    place_with_faults(saga)
    state = saga.state()
    say("Final state, read from the two databases:")
    for line in Saga.report(state):
        say(f"  {line}")
    problems = Saga.problems(state)
    say()
    if problems:
        for problem in problems:
            say(f"  PROBLEM: {problem}")
    else:
        say("Every order approved or cancelled exactly once; one payment per approved order,"
            " none twice, none without an order.")
    saga.stop()
    mqtt.stop()
    pg.stop()
    return 1 if problems else 0


def main():
    return run_in_workdir(run, "outbox-relay-demo-saga-", "Stopped everything and removed its files.")


if __name__ == "__main__":
    sys.exit(main())
