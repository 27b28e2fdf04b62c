/*
 * Connections to PostgreSQL, for ordinary SQL and for replication, and queries that never
 * wait longer than the answer timeout.
 *
 * Functions returning int use the pg_status values: PG_RETRY means the problem may pass
 * (connection lost, server starting or shutting down, slot in use) and the caller backs
 * off and tries again; PG_FATAL means retrying cannot help (invalidated slot, bad plugin);
 * PG_REFUSED means the server refuses the relay's configuration (refusal.h: authentication,
 * a missing database or privilege, wal_level). PG_RETRY and PG_FATAL have been logged with
 * their detail when returned. A refusal is recorded, not logged: whoever decides what follows
 * (stop, or retry) reports it once, with pg_report_refusal.
 */
#ifndef OUTBOX_PGCONN_H
#define OUTBOX_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "buf.h"
#include "config.h"
#include "log.h"

enum pg_status {
	PG_OK = 0,
	PG_RETRY = -1,
	PG_FATAL = -2,
	PG_CONFIG = -3,  /* the configuration does not match the database: exit 78 */
	PG_STANDBY = -4, /* the slot is streaming to another process: wait, then take over */
	PG_REFUSED = -5, /* the server refuses the configuration: exit 78 before the first start */
};

/* Connects for ordinary SQL (replication = false) or for streaming (replication=database).
 * Returns NULL with *status PG_RETRY after logging why, or PG_REFUSED (recorded). */
PGconn *pg_connect(const struct config *cfg, bool replication, const char *purpose, int *status);

/* Classifies a failed result or connection: PG_RETRY, PG_STANDBY (slot in use), PG_REFUSED
 * (recorded) or PG_FATAL. Logs msg with the detail, but for a refusal. */
int pg_failure(PGconn *conn, const PGresult *res, const char *msg);

/* Logs the last refusal (PG_REFUSED) once, as msg at level: what was refused, during what,
 * the server's words, the role, host and database, and the fix; then key=value when key is
 * not NULL. */
void pg_report_refusal(enum log_level level, const char *msg, const char *key, const char *value);

/* The last refusal in a few words with whom it concerns, for a status line
 * ("PostgreSQL refused: password authentication failed (role relay at 127.0.0.1:5432)"). */
const char *pg_refusal_summary(void);

/* How long a query may wait for the server's answer. A server that does not answer in
 * time (frozen, or a black-holed path) is treated as gone: the loop must not hang on it. */
void pg_set_answer_timeout(int timeout_ms);

/* The result of the query just sent with a PQsend* function (sent: its return value),
 * waiting no longer than the answer timeout. NULL, logged, when the server did not answer
 * in time or the connection broke: drop the connection then. */
PGresult *pg_await(PGconn *conn, int sent, const char *what);

/* pg_await, then checks that the query ended with status want (PGRES_COMMAND_OK,
 * PGRES_TUPLES_OK, PGRES_COPY_BOTH). PG_OK, with the result in *res when res is not NULL
 * (the caller clears it); else the failure's pg_status, logged with what. */
int pg_result(PGconn *conn, int sent, ExecStatusType want, const char *what, PGresult **res);

/* Runs SQL that returns no rows the caller needs. PG_OK, or the pg_failure() status
 * after logging what with the server's detail. */
int pg_exec(PGconn *conn, const char *sql, const char *what);

/* Runs one query with n text parameters that returns rows: PG_OK with them in *res (the
 * caller clears it), or the failure's pg_status, logged with what. */
int pg_query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
             const char *what);

/* Appends n strings as a text[] literal, {"a","b"}, each quoted. */
void pg_append_text_array(struct buf *b, const char *const *items, size_t n);

/* Appends name as a quoted SQL identifier. */
void pg_append_identifier(struct buf *b, PGconn *conn, const char *name);

#endif
