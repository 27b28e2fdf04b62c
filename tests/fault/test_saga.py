#!/usr/bin/python3
"""The saga example (examples/saga) under kill -9 of both relays and both consumers.

doc/design.md §27: a consumer that records the event-id in an inbox in the transaction of
its own writes, and acknowledges after COMMIT, applies every event once although MQTT and the
relay repeat messages. Checked from the databases themselves: every order approved or
cancelled, each exactly once; one payment per approved order and none for any other order;
every customer's credit equal to its initial credit less its payments. The repeats the
inboxes dropped are counted and printed (and there must be some: the test would prove
nothing without them).

The second case runs the payment service acknowledging on receipt and committing in batches
(--ack-before-commit), and kills it while it holds acknowledged, uncommitted work: orders
are then left undecided, which shows the test sees what the recipe prevents.

Sizes: 1,000 orders and 3 kills of each of the four processes, 200 orders and 2 kills of
the unsafe consumer; OUTBOX_FAULT_FULL=1: 5,000 orders and 8 kills of each.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import seeded_random, size  # noqa: E402
import harness  # noqa: E402
from harness.util import wait_until  # noqa: E402

try:
    from harness.saga import Saga  # the services need python3-paho-mqtt
    MISSING = None
except ImportError as e:
    MISSING = f"{e} (Debian: python3-paho-mqtt)"

ORDERS = size(1000, 5000)
KILLS_EACH = size(3, 8)
UNSAFE_ORDERS = 200
UNSAFE_KILLS = 2
# The unsafe consumer commits every UNSAFE_BATCH messages and when stopped: more than the
# test sends, so that it cannot commit between the moment the test sees it holding
# UNSAFE_PENDING acknowledged, uncommitted messages and the kill, however late the kill.
UNSAFE_BATCH = 1000
UNSAFE_PENDING = 20
CUSTOMERS = {f"customer{n}": 10000 for n in range(10)}
TIMEOUT = 30


def log(text):
    sys.stderr.write(text + "\n")


class SagaCase(harness.IntegrationCase):

    @classmethod
    def setUpClass(cls):
        if MISSING:
            raise unittest.SkipTest(MISSING)
        super().setUpClass()

    def new_saga(self):
        saga = Saga(self.pg, self.mqtt, self.workdir, CUSTOMERS)
        self.addCleanup(saga.stop)
        self.addCleanup(lambda: None if self._passed() else self._print_logs(saga))
        return saga

    @staticmethod
    def _print_logs(saga):
        for relay in saga.relays.values():
            relay.print_log(20)
        for service in saga.services.values():
            service.print_log(20)

    def place(self, saga, rng):
        """One order of a random customer and amount, by either flow."""
        flow = rng.choice(("choreography", "orchestration"))
        return saga.place(rng.choice(sorted(CUSTOMERS)), rng.randrange(1, 300), flow)


class SagaKill9Test(SagaCase):

    def test_every_order_decided_once_under_kill9(self):
        rng = seeded_random(self.id())
        saga = self.new_saga()
        saga.start()
        # Round robin over the four processes; each is down while the next orders are
        # placed, then started again.
        victims = [("relay", "order"), ("service", "payment"), ("relay", "payment"),
                   ("service", "order")] * KILLS_EACH
        every = ORDERS // (len(victims) + 1)
        down = None
        kills = []
        for i in range(ORDERS):
            if down and i >= down[2]:
                self.restart(saga, *down[:2])
                down = None
            if victims and i and i % every == 0:
                kind, name = victims.pop(0)
                self.kill(saga, kind, name)
                kills.append(f"{name} {kind} at order {i}")
                down = (kind, name, i + rng.randrange(every // 4, every // 2))
            self.place(saga, rng)
            if down is None:
                saga.check_running()
        if down:
            self.restart(saga, *down[:2])
        log(f"kills: {len(kills)}: " + "; ".join(kills))

        saga.wait_settled()
        state = saga.state()
        for line in Saga.report(state):
            log(line)
        retries = saga.services["order"].all_stdout().count("trying again")
        log(f"answers that found their order not yet visible, and were tried again: {retries}")
        self.assertEqual(Saga.problems(state), [])
        self.assertEqual(state["orders"], ORDERS)
        self.assertEqual(state["approved"] + state["cancelled"], ORDERS)
        self.assertEqual(state["payments"], state["approved"])
        self.assertGreater(state["cancelled"], 0, "the credit rule rejects some payments")
        self.assertEqual(state["payment_inbox"][0], ORDERS)
        repeats = state["payment_inbox"][1] + state["order_inbox"][1]
        self.assertGreater(repeats, 0, "kill -9 of relays and consumers repeats messages")

    def kill(self, saga, kind, name):
        if kind == "relay":
            saga.relays[name].kill()
        else:
            saga.services[name].kill()

    def restart(self, saga, kind, name):
        if kind == "relay":
            saga.start_relay(name)
        else:
            saga.services[name].start()


class SagaAckBeforeCommitTest(SagaCase):

    def test_ack_before_commit_loses_effects(self):
        rng = seeded_random(self.id())
        saga = self.new_saga()
        unsafe = ["--ack-before-commit", str(UNSAFE_BATCH)]
        saga.start(payment_args=unsafe)
        payment = saga.services["payment"]
        placed = 0
        for _ in range(UNSAFE_KILLS):
            # Orders until the consumer holds UNSAFE_PENDING acknowledged, uncommitted
            # messages, then the kill.
            while self.uncommitted(payment) < UNSAFE_PENDING:
                self.place(saga, rng)
                placed += 1
                saga.check_running()
                self.assertLess(placed, UNSAFE_ORDERS, "the unsafe consumer never held"
                                f" {UNSAFE_PENDING} uncommitted messages")
            log(f"kill -9 of the payment service holding {self.uncommitted(payment)}"
                " acknowledged, uncommitted messages")
            payment.kill()
            payment.start(unsafe)
        while placed < UNSAFE_ORDERS:
            self.place(saga, rng)
            placed += 1

        # Every order's message acknowledged by some run; then a clean stop commits the
        # last batch, and the order service handles every answer written.
        wanted = {str(row[0]) for row in saga.orders.query("SELECT event_id FROM outbox")}
        wait_until(lambda: wanted <= self.acknowledged(payment), TIMEOUT,
                   "the payment service to acknowledge every order's message",
                   check=saga.check_running)
        self.assertEqual(payment.terminate(), 0)
        handled = saga.inbox(saga.payments, "payment-service")[0]
        saga.wait_settled(expected_payment_events=handled, check=saga.relays["order"].check_running)
        state = saga.state()
        for line in Saga.report(state):
            log(line)
        lost = UNSAFE_ORDERS - handled
        log(f"orders whose message was acknowledged and never acted on: {lost}")
        self.assertGreaterEqual(lost, UNSAFE_KILLS * UNSAFE_PENDING)
        self.assertEqual(state["pending"], lost)
        # Lost, but nothing applied twice or without its order.
        problems = [p for p in Saga.problems(state) if "neither approved nor cancelled" not in p]
        self.assertEqual(problems, [])

    @staticmethod
    def uncommitted(service):
        found = re.findall(r"not committed: (\d+)$", service.stdout(), re.M)
        return int(found[-1]) if found else 0

    @staticmethod
    def acknowledged(service):
        return set(re.findall(r"^\S+: acknowledged (\S+)$", service.all_stdout(), re.M))


if __name__ == "__main__":
    harness.main()
