-- The payment service's database (examples/saga): credit per customer, the payments taken,
-- its outbox, and (from config/inbox.sql) the inbox of the events it has handled.
CREATE TABLE accounts (
    customer text PRIMARY KEY,
    credit numeric(12, 2) NOT NULL CHECK (credit >= 0)
);

-- One row per payment taken. There is deliberately no UNIQUE (order_id): the inbox is what
-- keeps a repeated OrderCreated or AuthorizePayment from taking a payment twice, and this
-- table is where a failure to do so would show.
CREATE TABLE payments (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    customer text NOT NULL,
    amount numeric(10, 2) NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);

-- The same shape as the order service's outbox; payment-relay.yaml publishes it.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    topic text NOT NULL,
    payload jsonb NOT NULL,
    reply_to text,
    correlation_id bytea
);
