-- A role for outbox-relay with only what it needs (doc/design.md §6): REPLICATION to stream from
-- its slot and emit its own logical messages, SELECT on the routed tables, and a
-- bookkeeping schema of its own. The publication is created here by an owner of the
-- tables, so the relay runs with create_publication: false (it may not alter a
-- publication it does not own; add new routed tables here first).
--
-- Run as a superuser in the database that holds the outbox tables:
--   psql -d shop -v role=outbox_relay -v schema=outbox_relay -v publication=outbox_relay \
--        -v table_schemas=public -v tables=public.outbox -f least-privilege.sql
-- tables: comma-separated schema-qualified tables; table_schemas: their schemas.
-- Then give the role a password (ALTER ROLE ... PASSWORD) or another pg_hba.conf method.
--
-- A route with cleanup: delete has the relay delete the rows it has published, which takes
-- DELETE on that table as well (without it the relay refuses to start, naming the table):
--   GRANT DELETE ON public.outbox TO outbox_relay;
-- The table needs a primary key, by which the relay tells its rows apart. Dead letters
-- past delivery.dead_letter_retention are deleted from the bookkeeping schema, which the
-- role owns.
--
-- It also installs, from routed-tables.sql next to this file, the event trigger that puts a
-- routed table dropped and created again back in the publication in the transaction that
-- creates it (creating an event trigger takes a superuser; the relay cannot do it as this
-- role). The role maintains the list of routed tables the trigger reads. A table created
-- again does not have the old one's grants; the relay's decoding does not need them.

\set ON_ERROR_STOP on

CREATE ROLE :"role" LOGIN REPLICATION;
GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";
GRANT USAGE ON SCHEMA :table_schemas TO :"role";
GRANT SELECT ON :tables TO :"role";
CREATE SCHEMA :"schema" AUTHORIZATION :"role";
-- Routes that publish updates and deletes (routes[].changes) need
-- WITH (publish = 'insert, update, delete') instead.
CREATE PUBLICATION :"publication" FOR TABLE :tables WITH (publish = 'insert');

SET outbox_relay.bookkeeping_schema = :'schema';
\ir routed-tables.sql
