-- The order service's database (examples/saga): its orders, its outbox, and (from
-- config/inbox.sql) the inbox of the events it has handled.
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(10, 2) NOT NULL CHECK (amount > 0),
    flow text NOT NULL CHECK (flow IN ('choreography', 'orchestration')),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'cancelled')),
    -- how many times a payment outcome was applied to the order: 1 once it is decided.
    -- Nothing but the inbox keeps it from counting a repeated message twice, which is
    -- what the example shows.
    decisions integer NOT NULL DEFAULT 0,
    -- orchestration: the Correlation Data of the AuthorizePayment command; its reply
    -- carries the same bytes and is matched by them alone
    correlation_id bytea UNIQUE
);

-- One row per message, inserted in the transaction that changes the orders; the service's
-- own outbox-relay (order-relay.yaml) publishes it. event_id is a UUID rather than the
-- bigserial, so that it is unique across both services' databases: a consumer drops
-- repeats by it.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    topic text NOT NULL,
    payload jsonb NOT NULL,
    reply_to text,          -- MQTT 5 Response Topic of a command
    correlation_id bytea    -- MQTT 5 Correlation Data of a command or a reply
);
