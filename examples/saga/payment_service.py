#!/usr/bin/python3
"""The payment service of the saga example: takes payments out of customers' credit.

It hears an order in two ways, and answers each in one transaction together with the inbox
record and the payment itself:

- choreography: the event OrderCreated (saga/order/<id>/OrderCreated) is answered with the
  event PaymentAuthorized or PaymentRejected on saga/payment/<id>/<event>;
- orchestration: the command AuthorizePayment (saga/payment/commands/AuthorizePayment) is
  answered on the command's MQTT 5 Response Topic, carrying its Correlation Data back.

Its answers go through its own outbox table and its own outbox-relay (payment-relay.yaml).

    payment_service.py --db "dbname=payments" [--mqtt-port 1883] [--ack-before-commit N]
"""

import json

from inbox_consumer import main

SUBSCRIPTIONS = ["saga/order/+/OrderCreated", "saga/payment/commands/AuthorizePayment"]


def authorize(cur, order):
    """Takes the amount from the customer's credit if it covers it; True if it did."""
    cur.execute("UPDATE accounts SET credit = credit - %(amount)s"
                " WHERE customer = %(customer)s AND credit >= %(amount)s", order)
    if cur.rowcount == 0:
        return False
    cur.execute("INSERT INTO payments (order_id, customer, amount)"
                " VALUES (%(order_id)s, %(customer)s, %(amount)s)", order)
    return True


def handle(cur, msg):
    order = json.loads(msg.payload)
    authorized = authorize(cur, order)
    outcome = "PaymentAuthorized" if authorized else "PaymentRejected"
    answer = {"type": outcome}
    if not authorized:
        answer["reason"] = "insufficient credit"
    if msg.topic.endswith("/AuthorizePayment"):
        # The reply goes where the command asked, with its Correlation Data; the order
        # service matches it by that alone (the reply does not name the order).
        props = msg.properties
        cur.execute("INSERT INTO outbox (topic, payload, correlation_id) VALUES (%s, %s, %s)",
                    (props.ResponseTopic, json.dumps(answer), props.CorrelationData))
    else:
        answer["order_id"] = order["order_id"]
        cur.execute("INSERT INTO outbox (topic, payload) VALUES (%s, %s)",
                    (f"saga/payment/{order['order_id']}/{outcome}", json.dumps(answer)))


if __name__ == "__main__":
    main(__doc__.splitlines()[0], "payment-service", SUBSCRIPTIONS, handle)
