-- The outbox table of the example configuration: your service inserts one row per event,
-- in the transaction that changes its own rows; the relay publishes it to
-- shop/{aggregate_type}/{aggregate_id} with the payload as the message body.
CREATE TABLE public.outbox (
    id bigserial PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL
);
