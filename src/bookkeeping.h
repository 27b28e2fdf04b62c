/*
 * The bookkeeping tables' rows (doc/design.md §6): the checkpoint, how far the broker has
 * acknowledged, written before the same position is confirmed to the slot and read on
 * start to skip events that PostgreSQL replays; and the dead letters, events that can never
 * be published. The tables themselves are made by catalog.h. Functions return pg_status
 * values (pgconn.h), failures logged.
 */
#ifndef OUTBOX_BOOKKEEPING_H
#define OUTBOX_BOOKKEEPING_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"
#include "config.h"
#include "event.h"
#include "ledger.h"
#include "log.h"

struct checkpoint_row {
	struct ledger_pos pos;
	uint64_t published; /* events acknowledged over the slot's life */
};

/* Prepares the statements on this connection, and makes its commits durable on this
 * server before they return. */
int bookkeeping_prepare(PGconn *sql, const struct config *cfg);

/* Reads the slot's row (logged at level), or zeroes row (index -1) if there is none. */
int bookkeeping_load_checkpoint(PGconn *sql, const char *slot, struct checkpoint_row *row,
                                enum log_level level);

/* Writes the row durably. */
int bookkeeping_save_checkpoint(PGconn *sql, const char *slot, const struct checkpoint_row *row);

/* Writes the row durably and, in the same transaction, deletes the rows of the keys of c
 * that it covers (doc/design.md §22.3), forgetting those keys once committed. On failure
 * the keys stay queued for the next write (a row deleted twice is gone once). */
int bookkeeping_save_checkpoint_and_cleanup(PGconn *sql, const char *slot, const struct checkpoint_row *row,
                                            struct cleanup *c);

/* Dead letters deleted by one statement at most. */
#define DEAD_LETTER_BATCH 10000

/* Deletes the slot's dead letters older than delivery.dead_letter_retention (not 0), in up
 * to batches statements of DEAD_LETTER_BATCH rows: *deleted says how many went, *more
 * whether the last batch was full (some may be left). */
int bookkeeping_expire_dead_letters(PGconn *sql, const struct config *cfg, int batches, uint64_t *deleted,
                                    bool *more);

/* Records an event that can never be published, with why (doc/design.md §7), durably and
 * once per (slot, commit LSN, event id). An event without a topic or id is recorded with
 * NULL. */
int bookkeeping_dead_letter(PGconn *sql, const char *slot, const struct event *ev, const char *reason);

/*
 * An event that can never be published: dead-lettered (and logged once), or, with
 * on_reject: stop, logged as the reason to stop. Returns PG_OK when the stream may go past
 * the event; PG_RETRY when PostgreSQL is away or was lost (sql NULL, or the insert failed on
 * the connection); PG_FATAL when the relay must stop (on_reject: stop, or the table refuses
 * the row). Either way, nothing may checkpoint past an event that is neither published nor
 * dead-lettered.
 */
int bookkeeping_reject(PGconn *sql, const struct config *cfg, const struct event *ev, const char *why);

#endif
