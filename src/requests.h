/*
 * The request being carried out (doc/design.md §22): a backfill's chunks read between
 * watermarks and placed in the stream at their high mark, or a re-drive's dead letters; the
 * progress written once the broker has acknowledged a chunk; one request at a time, in order.
 *
 * The loop drives it from two sides: requests_step does the SQL work between stream reads
 * (find a request, read a chunk, record progress), and the stream hands it the markers, the
 * changes of the table being backfilled, and takes the placed rows as events.
 */
#ifndef OUTBOX_REQUESTS_H
#define OUTBOX_REQUESTS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "ledger.h"
#include "outbox.h"
#include "pgoutput.h"

struct requests;

struct requests *requests_new(void);
void requests_free(struct requests *q);

/* Look for a request at the next step: at the start of a session, and now and then. */
void requests_wake(struct requests *q);

/* True for the request table itself: its inserts are new requests. */
bool requests_is_table(const struct config *cfg, const struct pgo_relation *rel);

/* The SQL work due now, between stream reads; safe is what the broker has acknowledged.
 * Returns a pg_status (pgconn.h): anything but PG_OK ends the PostgreSQL session. */
int requests_step(struct requests *q, PGconn *sql, const struct config *cfg, struct ledger_pos safe);

/* The PostgreSQL session was lost: a chunk read and not placed is read again; one being
 * placed ends at the rows already placed (row_unsent: the last one built was dropped
 * before it went out). */
void requests_session_lost(struct requests *q, bool row_unsent);

/* Records what the broker acknowledged of placed chunks (requests_step does it too): at a
 * clean stop, so that a restart does not read those chunks again. */
int requests_record_progress(struct requests *q, PGconn *sql, const struct config *cfg,
                             struct ledger_pos safe);

/* ---- the stream's side ---- */

/* A watermark marker in the transaction with commit LSN commit_lsn. */
void requests_mark(struct requests *q, const uint8_t *content, uint32_t len, lsn_t commit_lsn);

/* A change of rel: noted when it is the table being backfilled and a chunk is open. */
void requests_note_change(struct requests *q, const struct pgo_relation *rel, const struct pgo_tuple *row);

/* True while a chunk's rows are being placed: the stream waits. */
bool requests_placing(const struct requests *q);

/* Moves to the next row to place; false when the chunk is all placed (the stream goes on). */
bool requests_next_row(struct requests *q);

/* Builds the row requests_next_row found into ev, which the caller numbered in the marker's
 * transaction. Returns 0, or -1 with why when it can never be published (dead-letter it). */
int requests_build(struct requests *q, struct outbox *o, struct event *ev, char *why, size_t whylen);

/* A re-driven event is done with: acknowledged (reason NULL) or refused again. Records it in
 * its dead letter; a pg_status. Events that are not re-driven are left alone. */
int requests_settled(struct requests *q, PGconn *sql, const struct config *cfg, const struct event *ev,
                     const char *reason);

#endif
