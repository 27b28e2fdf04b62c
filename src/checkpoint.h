/*
 * The checkpoint row in the bookkeeping schema (SPEC §6): how far the broker has
 * acknowledged, written before the same position is confirmed to the slot, and read on
 * start to skip events that PostgreSQL replays. Functions return pg_status values.
 */
#ifndef OUTBOX_CHECKPOINT_H
#define OUTBOX_CHECKPOINT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ledger.h"
#include "outbox.h"

struct checkpoint_row {
	struct ledger_pos pos;
	uint64_t published; /* events acknowledged over the slot's life */
};

/* Creates the schema and tables when allowed, or checks they exist; prepares statements
 * on this connection. */
int checkpoint_prepare(PGconn *sql, const struct config *cfg);

/* Reads the slot's row; *found false (and row zeroed, event_index -1) if there is none. */
int checkpoint_load(PGconn *sql, const char *slot, struct checkpoint_row *row, bool *found);

/* Writes the row durably (synchronous commit on this server). */
int checkpoint_save(PGconn *sql, const char *slot, const struct checkpoint_row *row);

/* Records an event that can never be published, with why (SPEC §7), durably and once per
 * (slot, commit LSN, event id). An event without a topic or id is recorded with NULL. */
int checkpoint_dead_letter(PGconn *sql, const char *slot, const struct event *ev, const char *reason);

#endif
