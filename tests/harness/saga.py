"""The saga example (examples/saga) on the harness's servers: the order and payment
databases in one PostgreSQL cluster, each with its own relay, and the two services' consumers,
talking through one Mosquitto. Used by scripts/demo saga and tests/fault/test_saga.py."""

import os
import signal
import subprocess
import sys

from .relay import Relay
from .util import print_tail, register_cleanup, stop_process, unregister_cleanup, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "saga")
INBOX_SQL = os.path.join(REPO, "config", "inbox.sql")
PYTHON = "/usr/bin/python3"     # Debian's, with python3-paho-mqtt and python3-psycopg2
TIMEOUT = 120

sys.path.insert(0, EXAMPLE)
import order_service  # noqa: E402  (examples/saga)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class Service:
    """One service's consumer process; start() may be called again after it ended."""

    def __init__(self, workdir, name, argv):
        self.workdir = workdir
        self.name = name
        self.argv = argv
        self.proc = None
        self.runs = 0

    def _path(self, run, stream):
        return os.path.join(self.workdir, f"{self.name}.{run}.{stream}")

    def start(self, extra=()):
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.runs += 1
        with open(self._path(self.runs, "stdout"), "wb") as out, \
                open(self._path(self.runs, "stderr"), "wb") as err:
            self.proc = subprocess.Popen([PYTHON] + self.argv + list(extra), stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, cwd=EXAMPLE,
                                         env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        register_cleanup(self.kill)
        wait_until(lambda: "subscribed" in self.stdout(), TIMEOUT, f"{self.name} to subscribe",
                   check=self.check_running)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            self.print_log()
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}")

    def kill(self):
        """kill -9."""
        unregister_cleanup(self.kill)
        return stop_process(self.proc, signal.SIGKILL)

    def terminate(self):
        unregister_cleanup(self.kill)
        return stop_process(self.proc, signal.SIGTERM)

    def stdout(self, run=None):
        try:
            return _read(self._path(run or self.runs, "stdout"))
        except FileNotFoundError:
            return ""

    def all_stdout(self):
        return "".join(self.stdout(run) for run in range(1, self.runs + 1))

    def print_log(self, lines=30):
        print_tail(f"{self.name} run {self.runs} stderr", self._path(self.runs, "stderr"), lines)
        print_tail(f"{self.name} run {self.runs} stdout", self._path(self.runs, "stdout"), lines)


class Saga:
    """Both services of examples/saga with their databases and relays."""

    def __init__(self, pg, mqtt, workdir, customers):
        """customers: {name: credit} for the payment service's accounts."""
        self.pg, self.mqtt, self.workdir = pg, mqtt, workdir
        self.orders = self._database("orders", "orders.sql")
        self.payments = self._database("payments", "payments.sql")
        self.customers = dict(customers)
        with self.payments.transaction() as cur:
            for name, credit in customers.items():
                cur.execute("INSERT INTO accounts VALUES (%s, %s)", (name, credit))
        env = {"SAGA_PG_PORT": str(pg.port), "SAGA_MQTT_PORT": str(mqtt.port)}
        self.relays = {
            name: Relay(workdir, f"{name}-relay", env=env,
                        config_file=os.path.join(EXAMPLE, f"{name}-relay.yaml"))
            for name in ("order", "payment")}
        mqtt_args = ["--mqtt-port", str(mqtt.port)]
        self.services = {
            "order": Service(workdir, "order-service", ["order_service.py", "consume", "--db",
                             pg.conninfo("orders")] + mqtt_args),
            "payment": Service(workdir, "payment-service", ["payment_service.py", "--db",
                               pg.conninfo("payments")] + mqtt_args),
        }
        self.conn = pg.connect("orders")
        self.conn.autocommit = False

    def _database(self, name, schema):
        db = self.pg.create_database(name)
        db.execute(_read(os.path.join(EXAMPLE, schema)))
        db.execute(_read(INBOX_SQL))
        return db

    def start_relay(self, name):
        relay = self.relays[name]
        relay.start()
        db = self.orders if name == "order" else self.payments
        relay.wait_for_slot(db, f"saga_{db.name}", timeout=TIMEOUT)

    def start(self, payment_args=()):
        """Both consumers first (their sessions must exist before anything is published),
        then both relays."""
        self.services["order"].start()
        self.services["payment"].start(payment_args)
        for name in self.relays:
            self.start_relay(name)

    def check_running(self):
        for relay in self.relays.values():
            relay.check_running()
        for service in self.services.values():
            service.check_running()

    def place(self, customer, amount, flow):
        return order_service.place_order(self.conn, customer, amount, flow)

    def stop(self):
        for service in self.services.values():
            service.terminate()
        for relay in self.relays.values():
            if relay.running():
                relay.terminate()
        self.conn.close()
        self.orders.close()
        self.payments.close()

    # --- what the databases say ------------------------------------------------------

    def inbox(self, db, consumer):
        """(events handled, repeats dropped) of a consumer's inbox."""
        count, dups = db.query("SELECT count(*), coalesce(sum(duplicates), 0)"
                               " FROM outbox_relay.inbox WHERE consumer = %s", (consumer,))[0]
        return count, int(dups)

    def wait_settled(self, expected_payment_events=None, check=None):
        """Until the payment service has handled every order (or expected_payment_events)
        and the order service every answer the payment service wrote."""
        placed = self.orders.scalar("SELECT count(*) FROM orders")
        want = placed if expected_payment_events is None else expected_payment_events
        check = check or self.check_running
        wait_until(lambda: self.inbox(self.payments, "payment-service")[0] >= want, TIMEOUT,
                   f"the payment service to handle {want} orders", check=check)
        answers = self.payments.scalar("SELECT count(*) FROM outbox")
        wait_until(lambda: self.inbox(self.orders, "order-service")[0] >= answers, TIMEOUT,
                   f"the order service to handle {answers} answers", check=check)

    def state(self):
        """The final state, from both databases."""
        orders = {row[0]: row[1:] for row in self.orders.query(
            "SELECT id, status, decisions, amount, customer FROM orders")}
        payments = self.payments.query("SELECT order_id, amount, customer FROM payments")
        credit = dict(self.payments.query("SELECT customer, credit FROM accounts"))
        paid = {}
        for order_id, _, _ in payments:
            paid[order_id] = paid.get(order_id, 0) + 1
        spent = {}
        for _, amount, customer in payments:
            spent[customer] = spent.get(customer, 0) + amount
        count = {s: sum(1 for o in orders.values() if o[0] == s)
                 for s in ("approved", "cancelled", "pending")}
        approved = {i for i, o in orders.items() if o[0] == "approved"}
        return {
            "orders": len(orders),
            **count,
            "decided_more_than_once": sorted(i for i, o in orders.items() if o[1] > 1),
            "decided_but_pending": sorted(i for i, o in orders.items()
                                          if o[0] == "pending" and o[1] > 0),
            "payments": len(payments),
            "paid_twice": sorted(i for i, n in paid.items() if n > 1),
            "paid_without_order": sorted(set(paid) - set(orders)),
            "paid_not_approved": sorted(set(paid) - approved),
            "approved_not_paid": sorted(approved - set(paid)),
            "credit_mismatch": sorted(c for c, initial in self.customers.items()
                                      if credit[c] != initial - spent.get(c, 0)),
            "payment_inbox": self.inbox(self.payments, "payment-service"),
            "order_inbox": self.inbox(self.orders, "order-service"),
        }

    @staticmethod
    def problems(state):
        """What is wrong in state (a list of sentences; empty when all is well)."""
        found = []
        for key, what in (("decided_more_than_once", "orders decided more than once"),
                          ("decided_but_pending", "orders decided but still pending"),
                          ("paid_twice", "orders paid more than once"),
                          ("paid_without_order", "payments without an order"),
                          ("paid_not_approved", "payments of orders not approved"),
                          ("approved_not_paid", "approved orders without a payment"),
                          ("credit_mismatch", "customers whose credit is not initial - payments")):
            if state[key]:
                found.append(f"{len(state[key])} {what}: {state[key][:10]}")
        if state["pending"]:
            found.append(f"{state['pending']} orders neither approved nor cancelled")
        return found

    @staticmethod
    def report(state):
        lines = [
            f"orders placed:  {state['orders']}: {state['approved']} approved,"
            f" {state['cancelled']} cancelled, {state['pending']} pending",
            f"decided more than once: {len(state['decided_more_than_once'])}",
            f"payments taken: {state['payments']} (approved orders: {state['approved']});"
            f" paid twice: {len(state['paid_twice'])}, without an order:"
            f" {len(state['paid_without_order'])}, of an order not approved:"
            f" {len(state['paid_not_approved'])}",
            f"credit: every customer's = initial - payments:"
            f" {'yes' if not state['credit_mismatch'] else 'NO'}",
            f"repeats dropped by the inboxes: payment service {state['payment_inbox'][1]},"
            f" order service {state['order_inbox'][1]}",
        ]
        return lines
