/*
 * Routed tables dropped and created again. The publication names its tables, and DROP TABLE
 * takes a table out of it; pgoutput decides with the catalog as it was at each change whether
 * a row belongs to the publication, so rows written to a table created again are never
 * decoded before the table is back in it. An event trigger (config/routed-tables.sql, the
 * one definition, which the relay runs as it is) adds every listed table to its publication
 * in the transaction that creates or renames it. The relay keeps the list (routed_table in
 * the bookkeeping schema) and asks whether the trigger is in place before it lets a routed
 * table be missing. Functions return pg_status values.
 */
#ifndef OUTBOX_ROUTED_H
#define OUTBOX_ROUTED_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "build_config.h"
#include "config.h"

/* Where the event trigger's SQL is installed, for messages. */
#define ROUTED_TABLES_SQL_FILE OUTBOX_RELAY_DATADIR "/routed-tables.sql"

/* What the database says about the table of one route. */
struct routed_state {
	bool exists;    /* a table or partitioned table of that name */
	bool published; /* it is in the publication */
	/* The next two are looked up only when the table is not in the publication. */
	bool listed;  /* routed_table lists it for the publication: the relay routed it before */
	bool trigger; /* the event trigger is in place: enabled, and can read the list */
};

/* A table that is not there but will join the publication in the transaction that creates
 * it: nothing written to it can be missed. */
static inline bool routed_covered(const struct routed_state *st)
{
	return st->listed && st->trigger;
}

/* At start, once the bookkeeping schema exists: installs or updates the event trigger when
 * create_bookkeeping is true and the role is a superuser, then warns (once a process) when
 * no trigger is in place, saying what that costs and how to install it. */
int routed_prepare(PGconn *sql, const struct config *cfg);

/* Makes the list hold exactly the configuration's routed tables for its publication, when
 * the list exists. Writes nothing when it does already. */
int routed_list_update(PGconn *sql, const struct config *cfg);

/* Looks up the state of the table of route rc. */
int routed_state(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                 struct routed_state *st);

/* A covered routed table is missing: warns once, until it is seen again. */
void routed_note_missing(const struct config *cfg, const struct route_config *rc);

/* A routed table is in the publication: says so once if it was missing. */
void routed_note_present(const struct config *cfg, const struct route_config *rc);

#endif
