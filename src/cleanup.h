/*
 * Rows to delete once the checkpoint covers them (doc/design.md §22.3). For a route with
 * cleanup: delete, the key of each acknowledged event's row waits here with the event's
 * position; the checkpoint written at or past that position deletes the row in its own
 * transaction, so that a row never goes before its event is both acknowledged and recorded.
 * If that transaction fails, the keys stay for the next one.
 *
 * A key carries its table and key columns with the values: it outlives a reload that
 * changes the routes, and rows of several tables are told apart without the routes. The
 * queue holds the keys acknowledged and not yet checkpointed: at most the in-flight window
 * plus what is acknowledged in one checkpoint interval. Pure: keys in, DELETE statements out.
 */
#ifndef OUTBOX_CLEANUP_H
#define OUTBOX_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ledger.h"
#include "pgoutput.h"

/* Rows deleted by one statement at most: a checkpoint's keys go in a few statements of
 * bounded size (and well within the protocol's 65535 parameters, 32 key columns at most). */
#define CLEANUP_BATCH_ROWS 1000

/* Writes into key the identity of row in rel: the replica identity's columns and their
 * text values (the primary key, or the index of REPLICA IDENTITY USING INDEX). False,
 * with key empty, when the row cannot be told apart by it: no such columns (no primary
 * key), REPLICA IDENTITY FULL or NOTHING, or a key value that is NULL. */
bool cleanup_key_from_row(struct buf *key, const struct pgo_relation *rel, const struct pgo_tuple *row);

struct cleanup;

struct cleanup *cleanup_new(void);
void cleanup_free(struct cleanup *c);

/* Queues a key from cleanup_key_from_row, of the event at pos, acknowledged. An empty key
 * is ignored. Positions may come in any order (acknowledgements do). */
void cleanup_add(struct cleanup *c, struct event_pos pos, const struct buf *key);

/* Keys queued. */
size_t cleanup_pending(const struct cleanup *c);

/* One DELETE for up to CLEANUP_BATCH_ROWS rows of one table:
 * DELETE FROM "schema"."table" WHERE ("k1", "k2") IN (($1, $2), ...), with the values as
 * text parameters (the server takes their types from the columns). */
struct cleanup_statement {
	const char *sql;
	int nparams;
	const char *const *params;
	size_t rows;
};

/* Builds the statements that delete the rows of every key at or before upto, and returns
 * how many. The keys stay queued: cleanup_drop, once the statements are committed, forgets
 * them. Calling it again builds the same statements anew. */
size_t cleanup_build(struct cleanup *c, struct event_pos upto);

/* The i-th statement built, valid until the next cleanup_build, cleanup_add or cleanup_drop. */
struct cleanup_statement cleanup_statement(const struct cleanup *c, size_t i);

/* The rows of every key at or before upto are deleted: forgets those keys. */
void cleanup_drop(struct cleanup *c, struct event_pos upto);

#endif
