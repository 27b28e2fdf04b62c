/*
 * The logical replication stream: START_REPLICATION in COPY BOTH mode on a replication
 * connection, driven without blocking from the relay's loop. It hands the caller parsed
 * frames (pgframe.h) and sends the standby status updates; the relay's own markers in the
 * stream are emitted here too. Functions return pg_status values (pgconn.h), failures
 * logged.
 */
#ifndef OUTBOX_PGSTREAM_H
#define OUTBOX_PGSTREAM_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lsn.h"
#include "pgconn.h"
#include "pgframe.h"

/* Emits a logical message with prefix (one of the relay's own, below, or the watermarks of
 * watermark.h) and content over the SQL connection; *lsn is its position. Never published.
 * Non-transactional (the --drain marker, doc/design.md §18): it arrives on its own, after
 * everything committed before the call. Transactional (the heartbeat, §17): it commits in a
 * transaction of its own, which takes a transaction id, and arrives as Begin, Message,
 * Commit. */
int pg_emit_marker(PGconn *sql, bool transactional, const char *prefix, const char *content, lsn_t *lsn);
#define DRAIN_MARKER_PREFIX "outbox-relay.drain"
#define HEARTBEAT_PREFIX "outbox-relay.heartbeat"

struct pgstream;

/* Connects with replication=database and starts streaming from start. NULL on failure,
 * with *status set to its pg_status (PG_RETRY, PG_STANDBY, PG_REFUSED, PG_FATAL). */
struct pgstream *pgstream_start(const struct config *cfg, lsn_t start, int *status);

/* Sends a last status update confirming lsn, ends COPY in order and closes. */
void pgstream_stop(struct pgstream *s, lsn_t confirmed);

/* Closes at once (after an error). */
void pgstream_free(struct pgstream *s);

int pgstream_socket(const struct pgstream *s);

/* Reads what the socket has into libpq's buffer. PG_OK or PG_RETRY (connection lost). */
int pgstream_consume(struct pgstream *s);

/* The next frame without blocking: PG_OK with *got set when one was read into *frame (its
 * data valid until the next call, pgstream_release or pgstream_free), PG_OK with *got
 * false when nothing is buffered; PG_RETRY or PG_FATAL when the stream ended, failed, or
 * sent something malformed. */
int pgstream_next(struct pgstream *s, struct repl_frame *frame, bool *got);

/* Frees the message pgstream_next read last, which the next call would otherwise free: a
 * huge message need not stay in memory while the event built from it is published. */
void pgstream_release(struct pgstream *s);

/* Queues a standby status update confirming lsn and tries to send it. */
int pgstream_send_status(struct pgstream *s, lsn_t lsn, bool reply_requested);

/* Sends queued output: PG_OK (*pending when some remains: poll for POLLOUT), or PG_RETRY. */
int pgstream_flush(struct pgstream *s, bool *pending);

#endif
