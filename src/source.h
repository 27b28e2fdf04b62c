/*
 * The PostgreSQL session: the SQL connection (catalog, bookkeeping, dead letters,
 * heartbeats) and the replication stream, as one state machine with its retry backoff and
 * its timers (doc/design.md §19, §20).
 *
 *   SOURCE_DOWN       no connection; the next attempt when the backoff has passed
 *   SOURCE_STANDBY    another process streams from the slot; asking again every second
 *   SOURCE_STREAMING  both connections up, the stream started
 *   SOURCE_REFUSED    PostgreSQL refused the configuration before the relay's first start:
 *                     no retry; the caller stops with status 78
 *
 * Each change of state is logged once; a standby that keeps waiting says so again at most
 * once a minute. Opening is the caller's sequence, since it needs what the caller holds
 * (routes, checkpoint, slot): source_connect, the caller's steps on source_sql(), then
 * source_start; any failure on the way goes to source_close.
 *
 * Backoff (doc/design.md §20): a session is healthy once it has confirmed a new position to
 * the slot or streamed for one status interval. A failure after a healthy session retries
 * after the shortest delay; every other failure, on either connection (a dead letter or a
 * checkpoint the database refuses to write included), makes the delay grow.
 */
#ifndef OUTBOX_SOURCE_H
#define OUTBOX_SOURCE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lsn.h"
#include "pgstream.h"

enum source_state {
	SOURCE_DOWN,
	SOURCE_STANDBY,
	SOURCE_STREAMING,
	SOURCE_REFUSED,
	SOURCE_STATE_COUNT /* not a state: how many there are */
};

struct source;

struct source *source_new(const struct config *cfg);
void source_free(struct source *s);

enum source_state source_state(const struct source *s);

/* True when not streaming and the time for the next attempt has come. */
bool source_due(const struct source *s, int64_t now);

/* Opens the SQL connection. PG_OK, PG_RETRY (logged) or PG_REFUSED (recorded: pass it to
 * source_close). */
int source_connect(struct source *s);

/* The SQL connection, or NULL when there is none. */
PGconn *source_sql(const struct source *s);

/* Starts the replication stream from start: the state is then SOURCE_STREAMING. Returns a
 * pg_status (logged). */
int source_start(struct source *s, lsn_t start, int64_t now);

/* The replication stream, or NULL unless streaming. */
struct pgstream *source_stream(const struct source *s);

/* Ends the session (or the attempt) after a failure with status (a pg_status): closes both
 * connections, then waits as a standby (PG_STANDBY) or out a backoff (any other status).
 * A refusal (PG_REFUSED) is reported here, once: before source_mark_started it makes the
 * state SOURCE_REFUSED, after it is retried like the rest, at error level. */
void source_close(struct source *s, int status, int64_t now);

/* The relay has started (READY: both sides up, the checkpoint loaded). From now on refusals
 * are retried. */
void source_mark_started(struct source *s);

/* What keeps PostgreSQL from streaming, in one line for a status ("PostgreSQL refused:
 * password authentication failed (role relay at db1:5432, database shop)"), or NULL when
 * streaming. */
const char *source_trouble(const struct source *s);

/* The stream delivered data at now: the server is alive. */
void source_heard(struct source *s, int64_t now);

/* Tells the slot lsn at once if it is past what it was told. PG_OK or PG_RETRY (lost). */
int source_confirm(struct source *s, lsn_t lsn);

/* Answers a keepalive that asks for a reply. PG_OK or PG_RETRY (lost). */
int source_answer(struct source *s);

/* What the slot was last told. */
lsn_t source_confirmed(const struct source *s);

/* Periodic work while streaming: a status update every status interval (asking for an
 * answer, which proves the server is there), and a check that a server the relay listens
 * to has not been silent for three intervals. PG_OK, or PG_RETRY when the session is lost
 * (logged): call source_close then. */
int source_tick(struct source *s, int64_t now, bool listening);

/* When source_due or source_tick next has something to do (monotonic ms). */
int64_t source_deadline(const struct source *s);

/* Sessions lost or refused so far. */
uint64_t source_reconnects(const struct source *s);

/* Ends the stream in order after confirming lsn (a clean stop), and closes. */
void source_stop(struct source *s, lsn_t lsn);

#endif
