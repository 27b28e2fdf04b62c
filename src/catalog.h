/*
 * What the relay makes sure of in the database's catalog, over the ordinary SQL connection:
 * the bookkeeping schema and its tables, the publication (covering every routed table), the
 * event trigger that keeps re-created routed tables in it (routed.h), the slot (always after
 * the publication), the routed tables and columns, and the domains the encoders resolve;
 * and, for the stats, how far the server's WAL is.
 * Functions return pg_status values (pgconn.h), failures logged.
 */
#ifndef OUTBOX_CATALOG_H
#define OUTBOX_CATALOG_H

#include <libpq-fe.h>

#include "config.h"
#include "lsn.h"
#include "outbox.h"
#include "pgconn.h"
#include "typemap.h"

/* Creates the bookkeeping schema and its tables (checkpoint, dead letter) when
 * create_bookkeeping is true, or checks they are there. */
int catalog_ensure_bookkeeping(PGconn *sql, const struct config *cfg);

/* Installs or checks the event trigger that keeps re-created routed tables in the
 * publication, makes sure the publication covers every routed table (creating or extending
 * it when allowed), then that the slot exists (creating it when allowed, always after the
 * publication). checkpoint_lsn: the confirmed position of the slot's checkpoint row, or
 * LSN_INVALID if it has none; with a row, a missing slot means lost events and is fatal.
 * *slot_confirmed: the slot's confirmed position (everything committed before it was handled
 * in an earlier run). */
int catalog_prepare(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *slot_confirmed);

/* The publication part of catalog_prepare: also run when a reload adds routed tables.
 * Updates the list of routed tables the event trigger reads; a routed table that does not
 * exist is left out when the trigger adds it on creation. */
int catalog_ensure_publication(PGconn *sql, const struct config *cfg);

/* Checks, while streaming, that every routed table is still in the publication: a table
 * dropped (and perhaps created again) leaves it silently. A dropped table that the event
 * trigger puts back when it is created again is a warning (once); otherwise PG_FATAL,
 * logged, if one left: its rows would not be decoded. */
int catalog_check_publication(PGconn *sql, const struct config *cfg);

/* Checks that every routed table exists and has every column its route reads, and that a
 * table with cleanup: delete has a key to tell rows apart and may be deleted from (a
 * refusal otherwise). PG_OK, PG_RETRY, PG_REFUSED, or PG_CONFIG after logging each missing
 * table, column or key with its place in the file. A table that the relay routed before and that the event trigger puts back in the
 * publication when it is created again may be missing (a warning): dropped for a moment, it
 * costs no row. */
int catalog_check_routes(PGconn *sql, const struct config *cfg, const struct outbox *o);

/* Reads every domain of the database (pg_type, typtype 'd') into t. */
int catalog_load_domains(PGconn *sql, struct typemap *t);

/* The server's WAL position in *lsn: flushed WAL (what a walsender can send, as its
 * keepalives report), or on a standby the WAL replayed; LSN_INVALID if it has none. */
int catalog_wal_position(PGconn *sql, lsn_t *lsn);

#endif
