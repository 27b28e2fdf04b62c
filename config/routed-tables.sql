-- outbox-relay: keeps every routed table in the relay's publication from the moment it
-- exists, so that a routed table dropped and created again loses no row.
--
-- The publication names its tables (FOR TABLE ...), and DROP TABLE takes a table out of it.
-- pgoutput decides with the catalog as it was at each change whether a row belongs to the
-- publication, so the rows written to a table created again are never decoded until the
-- table is back in it. This installs, in the relay's bookkeeping schema:
--
--   routed_table         the tables the relay routes, per publication, with the route's
--                        column list and row filter (PostgreSQL 15); the relay keeps it
--                        up to date when it starts and when it reloads its configuration;
--   add_routed_tables()  a SECURITY DEFINER function that adds every listed table that
--                        exists and is not in its publication, with its column list and
--                        row filter, so that it is never published unfiltered;
--   an event trigger     (SCHEMA_add_routed_tables) that runs the function at the end of
--                        CREATE TABLE, CREATE TABLE AS, SELECT INTO, ALTER TABLE (RENAME,
--                        SET SCHEMA), CREATE SCHEMA and ALTER SCHEMA (RENAME), inside the
--                        transaction of the command: the table and its membership commit
--                        together, and every row written after that command is decoded,
--                        in the same transaction too. Rows written by the creating command
--                        itself (CREATE TABLE AS, SELECT INTO) come before it and are not.
--
-- Creating an event trigger takes a superuser. The relay runs this file itself when its role
-- is a superuser and delivery.create_bookkeeping is true; otherwise a superuser runs it in
-- the relay's database (least-privilege.sql does), naming the bookkeeping schema:
--
--   psql -d shop -c "SET outbox_relay.bookkeeping_schema = 'outbox_relay'" -f routed-tables.sql
--
-- The schema must exist. When its owner is not a superuser (the relay's own role, as
-- least-privilege.sql makes it), that role may read and change the list. Running this again
-- is harmless: it changes only what differs, and leaves a disabled trigger disabled.
-- Plain SQL, no psql commands: the relay runs the same text.

DO $install$
DECLARE
    bk text := pg_catalog.current_setting('outbox_relay.bookkeeping_schema', true);
    bk_owner oid;
    list text;
    list_oid oid;
    fn text;
    fn_oid oid;
    body text;
    trigger_name text;
    tags text[] := ARRAY['CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
                         'CREATE SCHEMA', 'ALTER SCHEMA'];
    enabled "char";
    same boolean;
BEGIN
    -- Names below are qualified or found in pg_catalog only: nothing another role put in a
    -- schema of the search path runs here with a superuser's rights.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF coalesce(bk, '') = '' THEN
        RAISE EXCEPTION 'outbox-relay: set outbox_relay.bookkeeping_schema to the relay''s bookkeeping schema first';
    END IF;
    SELECT n.nspowner INTO bk_owner FROM pg_catalog.pg_namespace n WHERE n.nspname = bk;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox-relay: the bookkeeping schema "%" does not exist', bk;
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'outbox-relay: only a superuser can install the event trigger';
    END IF;
    -- Two relays may start at once.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('outbox-relay routed tables'));

    -- The list. The function reads only a plain table owned by a superuser: the schema's
    -- owner can drop what is in the schema and put something of its own in its place.
    list := pg_catalog.format('%I.routed_table', bk);
    list_oid := pg_catalog.to_regclass(list);
    IF list_oid IS NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE TABLE %s (publication text NOT NULL, schema_name text NOT NULL,'
            ' table_name text NOT NULL, column_list text[], row_filter text,'
            ' PRIMARY KEY (publication, schema_name, table_name))', list);
        list_oid := pg_catalog.to_regclass(list);
    ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                      WHERE c.oid = list_oid AND c.relkind = 'r' AND r.rolsuper) THEN
        RAISE EXCEPTION 'outbox-relay: % is not a table owned by a superuser', list
            USING HINT = 'Drop it and run this again; the relay lists its tables again when it starts.';
    END IF;
    -- A list made before routes had a column list and a row filter (PostgreSQL 15).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = list_oid AND a.attname = 'row_filter' AND NOT a.attisdropped) THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS column_list text[],'
                                  ' ADD COLUMN IF NOT EXISTS row_filter text', list);
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = bk_owner)
       AND NOT (pg_catalog.has_table_privilege(bk_owner, list_oid, 'SELECT')
                AND pg_catalog.has_table_privilege(bk_owner, list_oid, 'INSERT')
                AND pg_catalog.has_table_privilege(bk_owner, list_oid, 'UPDATE')
                AND pg_catalog.has_table_privilege(bk_owner, list_oid, 'DELETE')) THEN
        EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', list,
                                  pg_catalog.pg_get_userbyid(bk_owner));
    END IF;

    -- The function. format() fills in the list's name; %% is a single % in the function.
    body := pg_catalog.format($body$
DECLARE
    t record;
    spec text;
    detail text;
BEGIN
    -- Locked first, so that the list stays the table checked here until the end.
    BEGIN
        LOCK TABLE %1$s IN ACCESS SHARE MODE;
    EXCEPTION WHEN undefined_table THEN
        RETURN;
    END;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                   WHERE c.oid = pg_catalog.to_regclass(%2$L) AND c.relkind = 'r' AND r.rolsuper) THEN
        RAISE WARNING 'outbox-relay: %% is not a table owned by a superuser: routed tables are not added to their publication', %2$L;
        RETURN;
    END IF;
    FOR t IN
        SELECT p.pubname, n.nspname, c.relname, l.column_list, l.row_filter
        FROM %1$s l
        JOIN pg_catalog.pg_publication p ON p.pubname = l.publication
        JOIN pg_catalog.pg_namespace n ON n.nspname = l.schema_name
        JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = l.table_name
        WHERE c.relkind IN ('r', 'p') AND NOT p.puballtables
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_publication_rel pr
                          WHERE pr.prpubid = p.oid AND pr.prrelid = c.oid)
        ORDER BY 1, 2, 3
    LOOP
        -- With the route's column list and row filter: never published unfiltered. The
        -- filter is one expression, and a ';' could end the statement and start another.
        spec := pg_catalog.format('%%I.%%I', t.nspname, t.relname);
        IF t.column_list IS NOT NULL THEN
            spec := spec || ' (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(col), ', ' ORDER BY i)
                                     FROM pg_catalog.unnest(t.column_list) WITH ORDINALITY AS u (col, i)) || ')';
        END IF;
        IF t.row_filter IS NOT NULL THEN
            IF pg_catalog.strpos(t.row_filter, ';') > 0 THEN
                RAISE EXCEPTION 'outbox-relay: the row filter listed for routed table %%.%% holds a '';''', t.nspname, t.relname
                    USING HINT = 'outbox-relay publishes this table filtered and would publish rows it must not.';
            END IF;
            spec := spec || ' WHERE (' || t.row_filter || ')';
        END IF;
        BEGIN
            EXECUTE pg_catalog.format('ALTER PUBLICATION %%I ADD TABLE %%s', t.pubname, spec);
            RAISE NOTICE 'outbox-relay: routed table %%.%% added to publication %%', t.nspname, t.relname, t.pubname;
        EXCEPTION
            WHEN duplicate_object THEN
                NULL; -- in the publication already
            WHEN OTHERS THEN
                -- A routed table outside the publication would lose its rows: refuse the command.
                GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
                RAISE EXCEPTION USING ERRCODE = SQLSTATE,
                    MESSAGE = pg_catalog.format('outbox-relay: cannot add routed table %%I.%%I to publication %%I: %%s',
                                                t.nspname, t.relname, t.pubname, SQLERRM),
                    DETAIL = detail,
                    HINT = 'outbox-relay publishes the rows of this table and would lose them.'
                           ' To go ahead anyway, disable the event trigger that called this function.';
        END;
    END LOOP;
END
$body$, list, list);
    fn := pg_catalog.format('%I.add_routed_tables()', bk);
    fn_oid := pg_catalog.to_regprocedure(fn);
    IF fn_oid IS NOT NULL AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
            WHERE p.oid = fn_oid AND r.rolsuper) THEN
        -- Someone else's function of that name: it would run with its owner's rights.
        EXECUTE pg_catalog.format('DROP FUNCTION %s CASCADE', fn);
        fn_oid := NULL;
    END IF;
    IF fn_oid IS NULL OR NOT EXISTS (
            SELECT FROM pg_catalog.pg_proc p
            WHERE p.oid = fn_oid AND p.prosrc = body AND p.prosecdef
              AND p.prorettype = 'pg_catalog.event_trigger'::pg_catalog.regtype
              AND p.proconfig = ARRAY['search_path=pg_catalog, pg_temp']) THEN
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE FUNCTION %s RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER'
            ' SET search_path = pg_catalog, pg_temp AS %L', fn, body);
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        fn_oid := pg_catalog.to_regprocedure(fn);
    END IF;

    -- The event trigger. Names are database-wide: the schema's name is in it.
    trigger_name := bk || '_add_routed_tables';
    IF pg_catalog.octet_length(trigger_name) > 63 THEN
        trigger_name := 'outbox_relay_' || pg_catalog.md5(bk);
    END IF;
    SELECT e.evtenabled, e.evtfoid = fn_oid AND e.evtevent = 'ddl_command_end' AND e.evttags = tags
        INTO enabled, same
        FROM pg_catalog.pg_event_trigger e WHERE e.evtname = trigger_name;
    IF FOUND AND enabled = 'D' THEN
        RAISE NOTICE 'outbox-relay: event trigger % is disabled; left as it is', trigger_name;
    ELSIF NOT FOUND OR NOT same OR enabled <> 'A' THEN
        EXECUTE pg_catalog.format('DROP EVENT TRIGGER IF EXISTS %I', trigger_name);
        EXECUTE pg_catalog.format('CREATE EVENT TRIGGER %I ON ddl_command_end WHEN TAG IN (%s)'
                                  ' EXECUTE FUNCTION %s', trigger_name,
                                  (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(tag), ', ')
                                   FROM pg_catalog.unnest(tags) AS tag), fn);
        -- Also in sessions with session_replication_role = replica.
        EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I ENABLE ALWAYS', trigger_name);
        RAISE NOTICE 'outbox-relay: event trigger % installed', trigger_name;
    END IF;
END
$install$;
