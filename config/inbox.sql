-- outbox-relay: the consumer's half of transactional messaging, an inbox (doc/design.md §27).
--
-- MQTT at QoS 1 or 2 may deliver a message more than once (the relay publishes again what the
-- broker had not acknowledged when it stopped; the broker sends again what a consumer had not
-- acknowledged when its connection ended). Every message of the relay carries an event-id
-- (the MQTT 5 user property `event-id`, or the field `event_id` of a `payload: envelope`
-- body on MQTT 3.1.1). A consumer that records the event-ids it has handled, in the same
-- transaction as the handler's own writes, applies each event once:
--
--   BEGIN;
--   SELECT outbox_relay.inbox_receive('payment-service', '<event-id>');
--   -- true: first time; do the work (UPDATE, INSERT, the consumer's own outbox rows...)
--   -- false: a repeat; do nothing
--   COMMIT;
--   -- and only now let the MQTT client acknowledge the message
--
-- The handler's writes and the inbox row commit together or not at all: a consumer killed
-- before COMMIT has recorded nothing and handles the message again when the broker repeats
-- it; one killed after COMMIT, before acknowledging, gets a repeat that inbox_receive answers
-- with false. A second delivery handled concurrently waits for the first transaction and
-- then gets false (READ COMMITTED; under REPEATABLE READ or SERIALIZABLE it fails with a
-- serialization error, to be retried).
--
-- This installs, in the relay's bookkeeping schema (delivery.bookkeeping_schema, default
-- outbox_relay; created if missing):
--
--   inbox                 one row per (consumer, event_id) handled, when it was first
--                         received, and how many repeats were dropped since;
--   inbox_receive(consumer, event_id)   true the first time, false for a repeat;
--   inbox_prune(keep, batch_size)       a procedure deleting the rows older than keep, in
--                         batches of batch_size (default 10,000), committing after each.
--
-- Run it in the consumer's database, as the role that owns the bookkeeping schema or a
-- superuser; for another schema, set it first (the same setting routed-tables.sql reads):
--
--   psql -d payments -f inbox.sql
--   psql -d payments -c "SET outbox_relay.bookkeeping_schema = 'my_schema'" -f inbox.sql
--
-- The consumer's role needs:
--
--   GRANT USAGE ON SCHEMA outbox_relay TO payment_service;
--   GRANT SELECT, INSERT, UPDATE ON outbox_relay.inbox TO payment_service;
--   -- and for whoever runs the retention: DELETE ON outbox_relay.inbox
--
-- Retention. A row must outlive every repeat of its event: keep rows longer than a message
-- can wait at the broker (the consumer's session expiry) plus the longest a relay may be
-- stopped and then publish again what it had not checkpointed. Days are usual; a week is
-- safe. Schedule the deletion outside any transaction block, for instance with a systemd
-- timer or cron:
--
--   psql -d payments -c "CALL outbox_relay.inbox_prune('7 days')"
--
-- Each batch is its own transaction, so a large backlog neither holds long locks nor makes
-- one huge transaction. Running this file again is harmless: it keeps the table's rows and
-- replaces the function and the procedure.

BEGIN;

-- The schema named by outbox_relay.bookkeeping_schema (default outbox_relay) becomes the
-- first on the search path for this transaction: the table goes there, and the function
-- keeps that path (SET search_path FROM CURRENT).
DO $install$
DECLARE
    bk text := coalesce(nullif(pg_catalog.current_setting('outbox_relay.bookkeeping_schema', true), ''),
                        'outbox_relay');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = bk) THEN
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', bk);
    END IF;
    PERFORM pg_catalog.set_config('search_path', pg_catalog.quote_ident(bk), true);
END
$install$;

CREATE TABLE IF NOT EXISTS inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    duplicates integer NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);

COMMENT ON TABLE inbox IS
    'outbox-relay inbox: the events each consumer has handled, written in the handler''s transaction';
COMMENT ON COLUMN inbox.duplicates IS 'repeats of the event dropped since it was handled';

-- True the first time (consumer, event_id) is seen, false for a repeat. Call it inside the
-- transaction that does the handler's work: the row it inserts commits with that work.
CREATE OR REPLACE FUNCTION inbox_receive(consumer text, event_id text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    INSERT INTO inbox AS i (consumer, event_id)
    VALUES (inbox_receive.consumer, inbox_receive.event_id)
    ON CONFLICT ON CONSTRAINT inbox_pkey DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    UPDATE inbox AS i SET duplicates = i.duplicates + 1
    WHERE i.consumer = inbox_receive.consumer AND i.event_id = inbox_receive.event_id;
    RETURN false;
END
$fn$;

-- A procedure with transaction control may not carry SET search_path: its statements name
-- the schema, written in when it is created.
DO $install$
DECLARE
    bk text := (pg_catalog.current_schemas(false))[1];
BEGIN
    EXECUTE pg_catalog.format($sql$
CREATE OR REPLACE PROCEDURE %1$I.inbox_prune(keep interval, batch_size integer DEFAULT 10000)
LANGUAGE plpgsql
AS $body$
DECLARE
    cutoff timestamptz := pg_catalog.now() - keep;
    deleted bigint;
BEGIN
    IF batch_size < 1 THEN
        RAISE EXCEPTION 'inbox_prune: batch_size must be at least 1';
    END IF;
    LOOP
        DELETE FROM %1$I.inbox
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM %1$I.inbox
                                WHERE received_at < cutoff LIMIT batch_size));
        GET DIAGNOSTICS deleted = ROW_COUNT;
        COMMIT;
        EXIT WHEN deleted < batch_size;
    END LOOP;
END
$body$
$sql$, bk);
END
$install$;

COMMIT;
