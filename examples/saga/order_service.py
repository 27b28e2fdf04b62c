#!/usr/bin/python3
"""The order service of the saga example: places orders, then approves or cancels them.

    order_service.py place --db "dbname=orders" [--flow orchestration] CUSTOMER AMOUNT
    order_service.py consume --db "dbname=orders" [--mqtt-port 1883]

place: one transaction inserts the order (pending) and its outbox row:
- choreography: the event OrderCreated on saga/order/<id>/OrderCreated, which the payment
  service reacts to of its own accord;
- orchestration: the command AuthorizePayment on saga/payment/commands/AuthorizePayment,
  with the MQTT 5 Response Topic saga/order/replies and fresh random Correlation Data,
  kept in the order row (the relay takes both from the outbox row's columns).

consume: applies the payment service's answers, each once (the inbox), in the transaction
that records it: PaymentAuthorized approves the order, PaymentRejected cancels it (the
compensation of placing it). An event names its order; a reply is matched by its
Correlation Data alone.
"""

import argparse
import json
import os
import sys

import psycopg2

import inbox_consumer

REPLIES = "saga/order/replies"
SUBSCRIPTIONS = ["saga/payment/+/PaymentAuthorized", "saga/payment/+/PaymentRejected", REPLIES]


def place_order(conn, customer, amount, flow="choreography"):
    """One transaction: the order and the message that starts its saga. Returns its id."""
    correlation = os.urandom(16) if flow == "orchestration" else None
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO orders (customer, amount, flow, correlation_id)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
                    (customer, amount, flow, correlation))
        order_id = cur.fetchone()[0]
        order = {"order_id": order_id, "customer": customer, "amount": str(amount)}
        if flow == "choreography":
            cur.execute("INSERT INTO outbox (topic, payload) VALUES (%s, %s)",
                        (f"saga/order/{order_id}/OrderCreated",
                         json.dumps({"type": "OrderCreated", **order})))
        else:
            cur.execute("INSERT INTO outbox (topic, payload, reply_to, correlation_id)"
                        " VALUES (%s, %s, %s, %s)",
                        ("saga/payment/commands/AuthorizePayment",
                         json.dumps({"type": "AuthorizePayment", **order}), REPLIES, correlation))
    return order_id


def decide(cur, where, key, approved):
    status = "approved" if approved else "cancelled"
    cur.execute(f"UPDATE orders SET status = %s, decisions = decisions + 1 WHERE {where} = %s",
                (status, key))
    if cur.rowcount != 1:
        # The order's own transaction may not be visible yet (inbox_consumer.NotYet).
        raise inbox_consumer.NotYet(f"no order with {where} {key!r} yet")


def handle(cur, msg):
    answer = json.loads(msg.payload)
    approved = answer["type"] == "PaymentAuthorized"
    if msg.topic == REPLIES:
        decide(cur, "correlation_id", msg.properties.CorrelationData, approved)
    else:
        decide(cur, "id", answer["order_id"], approved)


def main():
    if sys.argv[1:2] == ["place"]:
        parser = argparse.ArgumentParser(prog="order_service.py place",
                                         description="places one order")
        parser.add_argument("--db", required=True, help="libpq connection string")
        parser.add_argument("--flow", choices=("choreography", "orchestration"),
                            default="choreography")
        parser.add_argument("customer")
        parser.add_argument("amount")
        args = parser.parse_args(sys.argv[2:])
        conn = psycopg2.connect(args.db)
        print(place_order(conn, args.customer, args.amount, args.flow))
        conn.close()
        return
    if sys.argv[1:2] == ["consume"]:
        del sys.argv[1]
    inbox_consumer.main(__doc__.splitlines()[0], "order-service", SUBSCRIPTIONS, handle)


if __name__ == "__main__":
    main()
