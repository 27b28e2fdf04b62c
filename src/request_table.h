/*
 * The request table and what requests read (doc/design.md §22): the next request of this
 * slot and its progress, the shape of a table to backfill, its chunks, the dead letters to
 * re-drive and what became of them, and the watermark markers. Functions return pg_status
 * values (pgconn.h); REQUEST_BAD means the request itself cannot be done, with the reason in
 * why (nothing logged: the caller fails the request).
 */
#ifndef OUTBOX_REQUEST_TABLE_H
#define OUTBOX_REQUEST_TABLE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "lsn.h"
#include "pgoutput.h"

#define REQUEST_BAD (-100)

enum request_kind {
	REQUEST_BACKFILL,
	REQUEST_REDRIVE,
};

struct request_row {
	int64_t id;
	enum request_kind kind;
	struct buf route; /* backfill: as written in the row */
	bool has_where;
	struct buf where; /* backfill: the condition */
	bool has_ids;
	struct buf ids;        /* re-drive: the bigint[] literal, as PostgreSQL writes it */
	struct buf created_at; /* text, for "dead letters up to the request" */
	int npositions;        /* 0: from the start */
	struct buf positions;  /* npositions NUL-terminated strings, one after the other */
	int64_t done;
	int64_t refused;
};

void request_row_init(struct request_row *row);
void request_row_finish(struct request_row *row);

/* The oldest pending or running request of the slot into row; *found false when none.
 * A missing request table (an older bookkeeping schema) reads as none. */
int request_table_next(PGconn *sql, const struct config *cfg, struct request_row *row, bool *found);

/* The first start (no checkpoint yet): a backfill request for every route with snapshot:
 * initial that has none yet, queued before the slot is made so that no row falls between
 * the two. */
int request_table_seed(PGconn *sql, const struct config *cfg);

/* state running, started_at and the total estimate (-1: unknown). */
int request_table_start(PGconn *sql, const struct config *cfg, int64_t id, int64_t total);

/* Progress: the cursor (npositions strings in positions), done and refused. */
int request_table_progress(PGconn *sql, const struct config *cfg, int64_t id, const struct buf *positions,
                           int npositions, int64_t done, int64_t refused);

/* The end: done, or failed with why. */
int request_table_finish(PGconn *sql, const struct config *cfg, int64_t id, const char *error);

/* ---- backfill ---- */

/* A routed table as its rows are read: its columns as pgoutput would send them (generated
 * columns left out), and its primary key. */
struct table_shape {
	struct pgo_relation rel; /* oid 0: never mistaken for the stream's own relation */
	uint32_t table_oid;
	struct buf name; /* quoted schema.table */
	int nkeys;
	int *key_columns; /* per key column, in the index's order: its place in rel */
	char **key_types; /* per key column: format_type() text */
};

void table_shape_init(struct table_shape *t);
void table_shape_finish(struct table_shape *t);

/* Reads the shape of schema.table: with ncolumns, only those columns (a route's column list,
 * which must hold the primary key). REQUEST_BAD when it does not exist, has no primary key
 * or the columns leave out a column of it. */
int request_table_shape(PGconn *sql, const char *schema, const char *table, const char *const *columns,
                        size_t ncolumns, struct table_shape *t, char *why, size_t whylen);

/* Estimates the rows to do: the planner's count for the whole table, -1 with a condition. */
int request_table_estimate(PGconn *sql, const struct table_shape *t, bool has_where, int64_t *total);

/* Checks that the condition is valid SQL over the table: REQUEST_BAD with the server's
 * words when not. */
int request_table_check_where(PGconn *sql, const struct table_shape *t, const char *where, char *why,
                              size_t whylen);

/* Reads up to limit rows after positions (npositions 0: from the start) matching where
 * (NULL: all), in key order, into *res. REQUEST_BAD with why when the server refuses the
 * query; *timed_out when it was cancelled by the statement timeout (try a smaller chunk). */
int request_table_read_chunk(PGconn *sql, const struct table_shape *t, const char *where,
                             const struct buf *positions, int npositions, uint32_t limit, PGresult **res,
                             bool *timed_out, char *why, size_t whylen);

/* ---- re-drive ---- */

/* Columns of a re-drive chunk, in this order. */
enum dead_letter_column {
	DL_ID,
	DL_EVENT_ID,
	DL_SOURCE,
	DL_TOPIC,
	DL_COMMIT_LSN,
	DL_PAYLOAD, /* bytea hex text */
	DL_QOS,
	DL_RETAIN, /* "t" / "f" */
	DL_CONTENT_TYPE,
	DL_MESSAGE_EXPIRY,
	DL_RESPONSE_TOPIC,
	DL_CORRELATION_DATA, /* bytea hex text */
	DL_USER_PROPERTIES,  /* <len>:<name><len>:<value>... (octet lengths), or NULL */
	DL_OP,               /* insert, update, delete, or NULL (doc/design.md §5) */
};

/* Dead letters of the request after the id at positions[0], up to limit. */
int request_table_read_dead_letters(PGconn *sql, const struct config *cfg, const struct request_row *req,
                                    uint32_t limit, PGresult **res, char *why, size_t whylen);

/* What a re-drive did with dead letter id: published (reason NULL), or refused again. */
int request_table_redriven(PGconn *sql, const struct config *cfg, int64_t id, const char *reason);

/* ---- markers ---- */

/* Emits and commits a transactional watermark marker with content text. */
int request_table_mark(PGconn *sql, const char *text, lsn_t *lsn);

#endif
