/*
 * The PostgreSQL side: connections, publication and slot setup, and the logical
 * replication stream (START_REPLICATION in COPY BOTH mode, driven non-blocking).
 *
 * Functions returning int use the pg_status values: PG_RETRY means the problem may pass
 * (connection lost, server starting or shutting down, slot in use) and the caller backs
 * off and tries again; PG_FATAL means retrying cannot help (permissions, invalidated
 * slot, misconfiguration). Both have been logged with their detail when returned.
 */
#ifndef OUTBOX_PGREPL_H
#define OUTBOX_PGREPL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lsn.h"
#include "outbox.h"

enum pg_status {
	PG_OK = 0,
	PG_RETRY = -1,
	PG_FATAL = -2,
	PG_CONFIG = -3,  /* the configuration does not match the database: exit 78 */
	PG_STANDBY = -4, /* the slot is streaming to another process: wait, then take over */
};

/* Connects for ordinary SQL (replication = false) or for streaming (replication=database).
 * Returns NULL after logging why. */
PGconn *pg_connect(const struct config *cfg, bool replication, const char *purpose);

/* Classifies a failed result or connection: PG_RETRY or PG_FATAL. Logs msg with detail. */
int pg_failure(PGconn *conn, const PGresult *res, const char *msg);

/* How long a query may wait for the server's answer. A server that does not answer in
 * time (frozen, or a black-holed path) is treated as gone: the loop must not hang on it. */
void pg_set_answer_timeout(int timeout_ms);

/* The result of the query just sent with a PQsend* function (sent: its return value),
 * waiting no longer than the answer timeout. NULL, logged, when the server did not answer
 * in time or the connection broke: drop the connection then. */
PGresult *pg_await(PGconn *conn, int sent, const char *what);

/* pg_await, then checks that the query ended with status want (PGRES_COMMAND_OK,
 * PGRES_TUPLES_OK, PGRES_COPY_BOTH). PG_OK, with the result in *res when res is not NULL (the caller
 * clears it); else the failure's pg_status, logged with what. */
int pg_result(PGconn *conn, int sent, ExecStatusType want, const char *what, PGresult **res);

/* Runs SQL that returns no rows the caller needs. PG_OK, or the pg_failure() status
 * after logging what with the server's detail. */
int pg_exec(PGconn *conn, const char *sql, const char *what);

/* Installs or checks the event trigger that keeps re-created routed tables in the
 * publication (routed.h), makes sure the publication covers every routed table (creating or
 * extending it when allowed), then that the slot exists (creating it when allowed, always
 * after the publication). checkpoint_lsn: the confirmed position of the slot's checkpoint row, or
 * LSN_INVALID if it has none; with a row, a missing slot means lost events and is fatal. *slot_confirmed: the slot's confirmed
 * position (everything committed before it was handled in an earlier run). */
int pgrepl_prepare(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *slot_confirmed);

/* The publication part of pgrepl_prepare: also run when a reload adds routed tables. Updates
 * the list of routed tables the event trigger reads; a routed table that does not exist is
 * left out when the trigger adds it on creation. */
int pgrepl_ensure_publication(PGconn *sql, const struct config *cfg);

/* Checks, while streaming, that every routed table is still in the publication: a table
 * dropped (and perhaps created again) leaves it silently. A dropped table that the event
 * trigger puts back when it is created again is a warning (once); otherwise PG_FATAL,
 * logged, if one left: its rows would not be decoded. */
int pgrepl_check_publication(PGconn *sql, const struct config *cfg);

/* Checks that every routed table exists and has every column its route reads. PG_OK,
 * PG_RETRY, or PG_CONFIG after logging each missing table or column with its place in the
 * file. A table that the relay routed before and that the event trigger puts back in the
 * publication when it is created again may be missing (a warning): dropped for a moment, it
 * costs no row. */
int pgrepl_check_routes(PGconn *sql, const struct config *cfg, const struct outbox *o);

/* Emits a non-transactional logical message with prefix (one of the relay's own, below);
 * *lsn is its position. Everything committed before the call is decoded before this
 * message arrives, and it is never published. */
int pg_emit_marker(PGconn *sql, const char *prefix, const char *slot, lsn_t *lsn);
#define DRAIN_MARKER_PREFIX "outbox-relay.drain"
#define HEARTBEAT_PREFIX "outbox-relay.heartbeat"

struct pgrepl;

/* Connects with replication=database and starts streaming from start. NULL on failure,
 * with *status set to PG_RETRY or PG_FATAL. */
struct pgrepl *pgrepl_start(const struct config *cfg, lsn_t start, int *status);

/* Sends a last status update, ends COPY in order and closes the connection. */
void pgrepl_stop(struct pgrepl *r, lsn_t confirmed);

/* Closes at once (after an error). */
void pgrepl_free(struct pgrepl *r);

int pgrepl_socket(const struct pgrepl *r);

/* Reads what the socket has into libpq's buffer. PG_OK or PG_RETRY (connection lost). */
int pgrepl_consume(struct pgrepl *r);

/*
 * Next CopyData message without blocking. Returns its length (> 0) and sets *data (valid
 * until the next call or pgrepl_free); 0 if nothing is buffered; PG_RETRY if the stream
 * ended or failed.
 */
int pgrepl_next(struct pgrepl *r, const uint8_t **data);

/* Frees the message pgrepl_next returned last, which the next call would otherwise free:
 * a huge message need not stay in memory while the event built from it is published. */
void pgrepl_release(struct pgrepl *r);

/* Queues a standby status update confirming lsn and tries to send it. */
int pgrepl_send_status(struct pgrepl *r, lsn_t lsn, bool reply_requested);

/* Sends queued output. Returns PG_OK, 1 if output remains (poll for POLLOUT), or PG_RETRY. */
int pgrepl_flush(struct pgrepl *r);

#endif
