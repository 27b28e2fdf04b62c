-- The table of config/state-mirror.yaml: one row per device, mirrored by the relay to one
-- retained MQTT topic per row (devices/<id>/state). Its primary key is what a DELETE
-- carries (replica identity default), and the topic is made of it alone, so a deleted
-- row's topic can be cleared. Every column is of a fixed length: an UPDATE carries every
-- value (a value that may be TOASTed would need REPLICA IDENTITY FULL; see
-- outbox-relay.yaml(5), routes[].changes).
CREATE TABLE public.device (
    id bigint PRIMARY KEY,
    online boolean NOT NULL DEFAULT false,
    firmware integer NOT NULL,
    battery_pct smallint,
    seen_at timestamptz NOT NULL DEFAULT now()
);
