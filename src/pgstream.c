#include "pgstream.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "util.h"

int pg_emit_marker(PGconn *sql, bool transactional, const char *prefix, const char *content, lsn_t *lsn)
{
	PGresult *res;
	const char *params[] = { transactional ? "true" : "false", prefix, content };
	int status = pg_query(sql, "SELECT pg_logical_emit_message($1::boolean, $2, $3)::text", 3, params,
	                      &res, "cannot emit a logical message");
	if (status != PG_OK)
		return status;
	if (lsn_parse(PQgetvalue(res, 0, 0), lsn) < 0) {
		log_error("unexpected LSN from pg_logical_emit_message", "value", PQgetvalue(res, 0, 0));
		status = PG_FATAL;
	}
	PQclear(res);
	return status;
}

struct pgstream {
	PGconn *conn;
	char *copybuf; /* last PQgetCopyData buffer, freed on the next call */
};

static int start_streaming(struct pgstream *r, const struct config *cfg, lsn_t start)
{
	struct buf q = BUF_INIT;
	char lsn[LSN_BUFLEN];
	buf_puts(&q, "START_REPLICATION SLOT ");
	pg_append_identifier(&q, r->conn, cfg->source.slot);
	/* Identifiers are validated by the configuration ([a-z0-9_]), so they need no
	 * escaping inside the option's string literal. */
	buf_printf(&q, " LOGICAL %s (proto_version '1', publication_names '\"%s\"', messages 'true')",
	           lsn_format(start, lsn), cfg->source.publication);
	int status = pg_result(r->conn, PQsendQuery(r->conn, q.data), PGRES_COPY_BOTH,
	                       "cannot start replication", NULL);
	buf_finish(&q);
	return status;
}

struct pgstream *pgstream_start(const struct config *cfg, lsn_t start, int *status)
{
	struct pgstream *r = xcalloc(1, sizeof *r);
	r->conn = pg_connect(cfg, true, "replication", status);
	if (!r->conn) {
		free(r);
		return NULL;
	}
	*status = start_streaming(r, cfg, start);
	if (*status == PG_OK && PQsetnonblocking(r->conn, 1) != 0)
		*status = pg_failure(r->conn, NULL, "cannot make the replication connection non-blocking");
	if (*status != PG_OK) {
		pgstream_free(r);
		return NULL;
	}
	char lsn[LSN_BUFLEN];
	log_info("replication started", "slot", cfg->source.slot, "from", lsn_format(start, lsn));
	return r;
}

void pgstream_free(struct pgstream *r)
{
	if (!r)
		return;
	if (r->copybuf)
		PQfreemem(r->copybuf);
	PQfinish(r->conn);
	free(r);
}

int pgstream_socket(const struct pgstream *r)
{
	return PQsocket(r->conn);
}

int pgstream_consume(struct pgstream *r)
{
	if (PQconsumeInput(r->conn))
		return PG_OK;
	pg_failure(r->conn, NULL, "replication connection lost");
	return PG_RETRY;
}

/* The stream is over: collect the server's final word so the log says why, and whether
 * trying again can help (a lost connection) or not (the publication is gone). */
static int stream_ended(struct pgstream *r)
{
	PGresult *res = PQgetResult(r->conn);
	int status = PG_RETRY;
	if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
		log_warn("replication stream ended by the server");
	} else {
		status = pg_failure(r->conn, res, "replication stream failed");
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (state && strcmp(state, "42704") == 0)
			log_error("the slot cannot decode past a change of its publication: a publication "
			          "dropped"
			          " (or recreated) after the slot's position is unknown to the WAL before "
			          "it; recreate"
			          " the slot, accepting that events committed meanwhile are not published");
	}
	PQclear(res);
	return status;
}

void pgstream_release(struct pgstream *r)
{
	if (r->copybuf) {
		PQfreemem(r->copybuf);
		r->copybuf = NULL;
	}
}

int pgstream_next(struct pgstream *r, struct repl_frame *frame, bool *got)
{
	char err[200];
	pgstream_release(r);
	*got = false;
	int len = PQgetCopyData(r->conn, &r->copybuf, 1);
	if (len == 0)
		return PG_OK;
	if (len < 0)
		return stream_ended(r);
	if (repl_frame_parse((const uint8_t *)r->copybuf, (size_t)len, frame, err, sizeof err) < 0) {
		log_error("malformed replication message", "error", err);
		return PG_RETRY;
	}
	*got = true;
	return PG_OK;
}

int pgstream_flush(struct pgstream *r, bool *pending)
{
	int rc = PQflush(r->conn);
	*pending = rc == 1;
	if (rc != -1)
		return PG_OK;
	pg_failure(r->conn, NULL, "cannot send to the replication connection");
	return PG_RETRY;
}

int pgstream_send_status(struct pgstream *r, lsn_t lsn, bool reply_requested)
{
	uint8_t msg[REPL_STATUS_LEN];
	repl_status_build(msg, lsn, pg_now(), reply_requested);
	if (PQputCopyData(r->conn, (const char *)msg, sizeof msg) != 1) {
		pg_failure(r->conn, NULL, "cannot queue a standby status update");
		return PG_RETRY;
	}
	bool pending;
	return pgstream_flush(r, &pending);
}

/* Waits (bounded) until the socket is ready for the given events. */
static bool wait_socket(struct pgstream *r, short events, int64_t deadline)
{
	int64_t left = deadline - monotonic_ms();
	if (left <= 0)
		return false;
	struct pollfd p = { .fd = PQsocket(r->conn), .events = events };
	return poll(&p, 1, (int)left) > 0;
}

/* Flushes everything queued, waiting at most until deadline. */
static bool flush_until(struct pgstream *r, int64_t deadline)
{
	int rc;
	while ((rc = PQflush(r->conn)) == 1)
		if (!wait_socket(r, POLLOUT | POLLIN, deadline))
			return false;
	return rc == 0;
}

/* Reads until the server has answered CopyDone and the command is complete. */
static bool drain_copy_until(struct pgstream *r, int64_t deadline)
{
	for (;;) {
		char *data = NULL;
		int len = PQgetCopyData(r->conn, &data, 1);
		if (data)
			PQfreemem(data);
		if (len == -1)
			break;
		if (len == -2 ||
		    (len == 0 && (!wait_socket(r, POLLIN, deadline) || !PQconsumeInput(r->conn))))
			return false;
	}
	PGresult *res;
	while ((res = PQgetResult(r->conn)) != NULL)
		PQclear(res);
	return true;
}

void pgstream_stop(struct pgstream *r, lsn_t confirmed)
{
	/* The last status update must reach the walsender before the socket closes: closing
	 * with unread data makes the kernel reset the connection and the update is lost. */
	int64_t deadline = monotonic_ms() + 5000;
	if (r->copybuf) {
		PQfreemem(r->copybuf);
		r->copybuf = NULL;
	}
	uint8_t msg[REPL_STATUS_LEN];
	repl_status_build(msg, confirmed, pg_now(), false);
	bool ok = PQputCopyData(r->conn, (const char *)msg, sizeof msg) == 1 &&
	          PQputCopyEnd(r->conn, NULL) == 1 && flush_until(r, deadline) &&
	          drain_copy_until(r, deadline);
	if (!ok)
		log_warn("replication did not end cleanly; the server may resend some events, which the "
		         "checkpoint skips");
	pgstream_free(r);
}
