#include "pgconn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "refusal.h"
#include "util.h"

/* SQLSTATEs worth waiting out rather than dying on. */
static bool sqlstate_is_transient(const char *state)
{
	if (!state)
		return true;                    /* no server answer at all: the connection broke */
	return strncmp(state, "08", 2) == 0     /* connection exception */
	       || strncmp(state, "57P", 3) == 0 /* shutting down, cannot connect now */
	       || strncmp(state, "53", 2) == 0  /* insufficient resources */
	       || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
}

/* libpq messages end with a newline; log lines must not. */
static const char *chomp(char *text, size_t size, const char *msg)
{
	snprintf(text, size, "%s", msg ? msg : "");
	size_t len = strlen(text);
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	return text;
}

/* ---- refusals ---- */

/* The last refusal seen, until the caller reports it. */
static struct {
	enum refusal refusal;
	char during[128];
	char error[512];
	char sqlstate[6];
	char user[64], host[256], port[16], database[64];
	char summary[640];
} refused;

static void copy_text(char *to, size_t size, const char *from)
{
	snprintf(to, size, "%s", from ? from : "");
}

static void record_refusal(PGconn *conn, enum refusal r, const char *during, const char *state,
                           const char *error)
{
	refused.refusal = r;
	copy_text(refused.during, sizeof refused.during, during);
	chomp(refused.error, sizeof refused.error, error);
	copy_text(refused.sqlstate, sizeof refused.sqlstate, state);
	copy_text(refused.user, sizeof refused.user, PQuser(conn));
	copy_text(refused.host, sizeof refused.host, PQhost(conn));
	copy_text(refused.port, sizeof refused.port, PQport(conn));
	copy_text(refused.database, sizeof refused.database, PQdb(conn));
	snprintf(refused.summary, sizeof refused.summary,
	         "PostgreSQL refused: %s (role %s at %s:%s, database %s)", refusal_cause(r), refused.user,
	         refused.host, refused.port, refused.database);
}

void pg_report_refusal(enum log_level level, const char *msg, const char *key, const char *value)
{
	char fix[512];
	struct refusal_who who = { refused.user, refused.database, NULL, false };
	refusal_fix(refused.refusal, &who, fix, sizeof fix);
	/* A failed connection has no SQLSTATE: the field is left out rather than empty. */
	const char *state_key = refused.sqlstate[0] ? "sqlstate" : key;
	const char *state_value = refused.sqlstate[0] ? refused.sqlstate : value;
	log_write(level, msg, "cause", refusal_cause(refused.refusal), "role", refused.user, "host",
	          refused.host, LOG_NUMBER("port"), refused.port, "database", refused.database, "fix", fix,
	          "during", refused.during, "error", refused.error, state_key, state_value,
	          refused.sqlstate[0] ? key : NULL, value, (const char *)NULL);
}

const char *pg_refusal_summary(void)
{
	return refused.summary;
}

int pg_failure(PGconn *conn, const PGresult *res, const char *msg)
{
	char detail[512];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *text =
	        res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	bool transient = PQstatus(conn) != CONNECTION_OK || sqlstate_is_transient(state);

	chomp(detail, sizeof detail, text);
	/* Object in use: another relay streams from the slot. Waiting is the normal life of a
	 * standby, which the caller reports once. */
	if (state && strcmp(state, "55006") == 0) {
		log_debug(msg, "error", detail, "sqlstate", state);
		return PG_STANDBY;
	}
	/* Only a server's answer is a refusal: a connection that broke has no SQLSTATE. */
	enum refusal r = state && !transient ? refusal_of_pg(state, text, false) : REFUSAL_NONE;
	if (r != REFUSAL_NONE) {
		log_debug(msg, "error", detail, "sqlstate", state);
		record_refusal(conn, r, msg, state, text);
		return PG_REFUSED;
	}
	log_write(transient ? LOG_WARN : LOG_ERROR, msg, "error", detail, "sqlstate", state ? state : "",
	          (const char *)NULL);
	return transient ? PG_RETRY : PG_FATAL;
}

/* Server notices ("schema already exists, skipping") are routine: debug level, one line. */
static void log_notice(void *arg, const char *message)
{
	char text[512];
	(void)arg;
	log_debug("PostgreSQL notice", "detail", chomp(text, sizeof text, message));
}

#define PG_CONNECT_TIMEOUT_S "10"

/* The output formats the relay parses, whatever the role, the database or the server set
 * as defaults: bytea in hex (bytea.h decodes only that), dates and times in ISO form,
 * intervals in PostgreSQL's own, floats with every digit. The walsender formats pgoutput's
 * text values with its session's settings, so both connections need them. */
#define SESSION_OPTIONS \
	"-c bytea_output=hex -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3"

/* The "options" to connect with: the user's own first (conninfo's, else libpq's default
 * from PGOPTIONS), then the relay's. The server applies them in order, so for the settings
 * above the relay's win, and the user's others are kept. Options a service file holds are
 * replaced, as an explicit keyword replaces them. The caller frees the result. */
static char *session_options(const char *conninfo)
{
	const char *user = NULL;
	PQconninfoOption *parsed = conninfo && *conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
	for (PQconninfoOption *o = parsed; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val && *o->val)
			user = o->val;
	if (!user) /* a bare database name parses as nothing: no options in it either */
		user = getenv("PGOPTIONS");
	struct buf b = BUF_INIT;
	if (user && *user)
		buf_printf(&b, "%s ", user);
	buf_puts(&b, SESSION_OPTIONS);
	PQconninfoFree(parsed);
	return b.data;
}

PGconn *pg_connect(const struct config *cfg, bool replication, const char *purpose, int *status)
{
	/* expand_dbname: the first "dbname" value may be a whole conninfo string or URI;
	 * later keywords override what it says. */
	/* Defaults first: what conninfo says (expanded at "dbname") overrides them. A server
	 * that accepts TCP but never answers must not hold the loop for ever. After it what
	 * the relay insists on: the session's formats (the user's options merged in) and
	 * UTF-8, which every text value of the stream is converted to. */
	char *options = session_options(cfg->source.conninfo);
	const char *keys[8] = { "connect_timeout", "dbname", "fallback_application_name", "options",
		                "client_encoding" };
	const char *values[8] = { PG_CONNECT_TIMEOUT_S, cfg->source.conninfo, "outbox-relay", options,
		                  "UTF8" };
	size_t n = 5;
	if (cfg->source.password.value) {
		keys[n] = "password";
		values[n++] = cfg->source.password.value;
	}
	if (replication) {
		keys[n] = "replication";
		values[n++] = "database";
	}
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	free(options);
	if (PQstatus(conn) != CONNECTION_OK) {
		/* libpq gives no SQLSTATE here: its words, and whether a password was wanted. */
		enum refusal r = refusal_of_pg(NULL, PQerrorMessage(conn), PQconnectionNeedsPassword(conn));
		char detail[512], during[64];
		if (r != REFUSAL_NONE) {
			snprintf(during, sizeof during, "connecting (%s)", purpose);
			record_refusal(conn, r, during, NULL, PQerrorMessage(conn));
			*status = PG_REFUSED;
		} else {
			log_warn("cannot connect to PostgreSQL", "purpose", purpose, "error",
			         chomp(detail, sizeof detail, PQerrorMessage(conn)));
			*status = PG_RETRY;
		}
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, log_notice, NULL);
	/* A SQL_ASCII database defines no conversion: UTF-8 would only be checked, and a value
	 * that is not UTF-8 would end the stream instead of being set aside (doc/design.md §5).
	 * Its bytes are taken as stored, as before. */
	const char *server = PQparameterStatus(conn, "server_encoding");
	*status = server && strcmp(server, "SQL_ASCII") == 0
	                  ? pg_exec(conn, "SET client_encoding TO 'SQL_ASCII'",
	                            "cannot set the client encoding")
	                  : PG_OK;
	if (*status != PG_OK) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* ---- queries with a deadline ---- */

static int answer_timeout_ms = 30000;

void pg_set_answer_timeout(int timeout_ms)
{
	answer_timeout_ms = timeout_ms;
}

/* Reads until a result is complete. False (logged) when the server does not answer by the
 * deadline or the connection broke. */
static bool wait_not_busy(PGconn *conn, int64_t deadline, const char *what)
{
	while (PQisBusy(conn)) {
		int64_t left = deadline - monotonic_ms();
		struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };
		int n = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			char timeout[24];
			snprintf(timeout, sizeof timeout, "%dms", answer_timeout_ms);
			log_warn("PostgreSQL did not answer in time; dropping the connection", "query", what,
			         "timeout", timeout);
			return false;
		}
		if (n < 0 || !PQconsumeInput(conn)) {
			pg_failure(conn, NULL, what);
			return false;
		}
	}
	return true;
}

static bool is_failure(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
}

PGresult *pg_await(PGconn *conn, int sent, const char *what)
{
	if (!sent) {
		pg_failure(conn, NULL, what);
		return NULL;
	}
	int64_t deadline = monotonic_ms() + answer_timeout_ms;
	PGresult *kept = NULL;
	for (;;) {
		if (!wait_not_busy(conn, deadline, what)) {
			PQclear(kept);
			return NULL;
		}
		PGresult *res = PQgetResult(conn);
		if (!res)
			return kept;
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_COPY_BOTH || st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
			PQclear(kept);
			return res; /* the connection is in COPY mode now: nothing more to collect */
		}
		/* Several statements: keep the first failure, else the last result. */
		if (kept && is_failure(kept)) {
			PQclear(res);
		} else {
			PQclear(kept);
			kept = res;
		}
	}
}

int pg_result(PGconn *conn, int sent, ExecStatusType want, const char *what, PGresult **res)
{
	PGresult *r = pg_await(conn, sent, what);
	if (!r)
		return PG_RETRY;
	int status = PQresultStatus(r) == want ? PG_OK : pg_failure(conn, r, what);
	if (status == PG_OK && res)
		*res = r;
	else
		PQclear(r);
	return status;
}

int pg_exec(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = pg_await(conn, PQsendQuery(conn, sql), what);
	if (!res)
		return PG_RETRY;
	int status = is_failure(res) ? pg_failure(conn, res, what) : PG_OK;
	PQclear(res);
	return status;
}

int pg_query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
             const char *what)
{
	return pg_result(conn, PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0), PGRES_TUPLES_OK,
	                 what, res);
}

void pg_append_identifier(struct buf *b, PGconn *conn, const char *name)
{
	char *quoted = PQescapeIdentifier(conn, name, strlen(name));
	buf_puts(b, quoted);
	PQfreemem(quoted);
}

void pg_append_text_array(struct buf *b, const char *const *items, size_t n)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < n; i++) {
		buf_puts(b, i ? ",\"" : "\"");
		for (const char *p = items[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(b, '\\');
			buf_putc(b, *p);
		}
		buf_putc(b, '"');
	}
	buf_putc(b, '}');
}
