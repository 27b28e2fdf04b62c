#include "pgrepl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pgoutput.h"
#include "routed.h"
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

PGconn *pg_connect(const struct config *cfg, bool replication, const char *purpose)
{
	/* expand_dbname: the first "dbname" value may be a whole conninfo string or URI;
	 * later keywords override what it says. */
	/* Defaults first: what conninfo says (expanded at "dbname") overrides them. A server
	 * that accepts TCP but never answers must not hold the loop for ever. */
	const char *keys[6] = { "connect_timeout", "dbname", "fallback_application_name" };
	const char *values[6] = { PG_CONNECT_TIMEOUT_S, cfg->source.conninfo, "outbox-relay" };
	size_t n = 3;
	if (cfg->source.password.value) {
		keys[n] = "password";
		values[n++] = cfg->source.password.value;
	}
	if (replication) {
		keys[n] = "replication";
		values[n++] = "database";
	}
	PGconn *conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) != CONNECTION_OK) {
		char detail[512];
		log_warn("cannot connect to PostgreSQL", "purpose", purpose, "error",
		         chomp(detail, sizeof detail, PQerrorMessage(conn)));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, log_notice, NULL);
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

/* Runs a one-parameter-set query; *res holds the result on PG_OK. */
static int exec_query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
                      const char *what)
{
	return pg_result(conn, PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0), PGRES_TUPLES_OK,
	                 what, res);
}

static void append_identifier(struct buf *b, PGconn *conn, const char *name)
{
	char *quoted = PQescapeIdentifier(conn, name, strlen(name));
	buf_puts(b, quoted);
	PQfreemem(quoted);
}

static void append_table(struct buf *b, PGconn *conn, const struct route_config *rc)
{
	append_identifier(b, conn, rc->schema);
	buf_putc(b, '.');
	append_identifier(b, conn, rc->table);
}

static int publication_exists(PGconn *sql, const char *name, bool *exists)
{
	PGresult *res;
	const char *params[] = { name };
	int status = exec_query(sql, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, &res,
	                        "cannot look up the publication");
	if (status == PG_OK) {
		*exists = PQntuples(res) > 0;
		PQclear(res);
	}
	return status;
}

static int create_publication(PGconn *sql, const struct config *cfg)
{
	struct buf q = BUF_INIT;
	buf_puts(&q, "CREATE PUBLICATION ");
	append_identifier(&q, sql, cfg->source.publication);
	/* With message routes only, the publication stays empty: messages need none. */
	bool first = true;
	int status = PG_OK;
	for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++) {
		const struct route_config *rc = &cfg->routes[i];
		struct routed_state st;
		if (!rc->table)
			continue;
		/* A table the event trigger adds when it is created cannot be named yet. */
		status = routed_state(sql, cfg, rc, &st);
		if (status == PG_OK && !st.exists && routed_covered(&st)) {
			routed_note_missing(cfg, rc);
			continue;
		}
		buf_puts(&q, first ? " FOR TABLE " : ", ");
		append_table(&q, sql, rc);
		first = false;
	}
	buf_puts(&q, " WITH (publish = 'insert')");
	if (status == PG_OK)
		status = pg_exec(sql, q.data, "cannot create the publication");
	buf_finish(&q);
	if (status == PG_OK)
		log_info("publication created", "publication", cfg->source.publication);
	return status;
}

/* A routed table is not in the publication and nothing puts it back: its rows are lost. */
static void report_left_publication(const struct config *cfg, const struct route_config *rc, bool exists)
{
	const char *created_again =
	        "a routed table is not in the publication: created again while no event trigger kept it"
	        " there (or taken out of the publication), its rows are not decoded and cannot be"
	        " published; the relay stops so that this is seen. Starting it again adds the table"
	        " back when create_publication is true; the rows written to it before then are lost";
	const char *dropped =
	        "a routed table left the publication (dropped) and no event trigger puts it back when"
	        " it is created again: the rows written to it before the relay's next start would not"
	        " be decoded; the relay stops so that this is seen. A superuser installs the event"
	        " trigger with the SQL file (see outbox-relay(8), ROUTED TABLES)";
	log_error(exists ? created_again : dropped, "publication", cfg->source.publication, "schema",
	          rc->schema, "table", rc->table, "sql_file", ROUTED_TABLES_SQL_FILE);
}

int pgrepl_check_publication(PGconn *sql, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		struct routed_state st;
		if (!rc->table)
			continue;
		int status = routed_state(sql, cfg, rc, &st);
		if (status != PG_OK)
			return status;
		if (st.published) {
			routed_note_present(cfg, rc);
			continue;
		}
		/* Dropped, and the event trigger puts it back in the publication in the transaction
		 * that creates it again: no row written to it can be missed. */
		if (!st.exists && routed_covered(&st)) {
			routed_note_missing(cfg, rc);
			continue;
		}
		report_left_publication(cfg, rc, st.exists);
		return PG_FATAL;
	}
	return PG_OK;
}

static int extend_publication(PGconn *sql, const struct config *cfg, const struct route_config *rc)
{
	if (!cfg->source.create_publication) {
		log_error("the publication does not cover a routed table and create_publication is false",
		          "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table);
		return PG_FATAL;
	}
	struct buf q = BUF_INIT;
	buf_puts(&q, "ALTER PUBLICATION ");
	append_identifier(&q, sql, cfg->source.publication);
	buf_puts(&q, " ADD TABLE ");
	append_table(&q, sql, rc);
	const char *what = "cannot add a table to the publication";
	PGresult *res = pg_await(sql, PQsendQuery(sql, q.data), what);
	buf_finish(&q);
	if (!res)
		return PG_RETRY;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	int status = PG_OK;
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		log_info("table added to publication", "publication", cfg->source.publication, "schema",
		         rc->schema, "table", rc->table);
	else if (!state || strcmp(state, "42710") != 0) /* 42710: the event trigger was quicker */
		status = pg_failure(sql, res, what);
	PQclear(res);
	return status;
}

/* A routed table that is not in the publication, before the relay adds it. */
static int add_missing_table(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                             const struct routed_state *st)
{
	if (!st->exists && routed_covered(st)) {
		routed_note_missing(cfg, rc);
		return PG_OK; /* the event trigger adds it when it is created */
	}
	/* Listed: the relay published it before. It was dropped and created again while nothing
	 * kept it in the publication, and what was written to it since was not decoded. */
	if (st->exists && st->listed)
		log_warn("a routed table was created again while no event trigger kept it in the"
		         " publication: the rows written to it before it is added back are not decoded"
		         " and are not published",
		         "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table,
		         "sql_file", ROUTED_TABLES_SQL_FILE);
	return extend_publication(sql, cfg, rc);
}

int pgrepl_ensure_publication(PGconn *sql, const struct config *cfg)
{
	bool exists;
	int status = publication_exists(sql, cfg->source.publication, &exists);
	if (status != PG_OK)
		return status;
	if (exists) {
		/* The states as the list was (whether the relay routed a table before), then the
		 * list: from the moment it names a table, the event trigger puts the table in the
		 * publication whenever it is created. Then what is still missing. */
		struct routed_state *st = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *st);
		for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
			if (cfg->routes[i].table)
				status = routed_state(sql, cfg, &cfg->routes[i], &st[i]);
		if (status == PG_OK)
			status = routed_list_update(sql, cfg);
		for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
			if (cfg->routes[i].table && !st[i].published)
				status = add_missing_table(sql, cfg, &cfg->routes[i], &st[i]);
		free(st);
	} else if (cfg->source.create_publication) {
		/* The list after the publication: a row written before the publication exists
		 * breaks decoding for every slot created before it. */
		status = create_publication(sql, cfg);
		if (status == PG_OK)
			status = routed_list_update(sql, cfg);
	} else {
		log_error("the publication does not exist and create_publication is false", "publication",
		          cfg->source.publication);
		return PG_FATAL;
	}
	return status;
}

static int create_slot(PGconn *sql, const char *slot, lsn_t *confirmed)
{
	PGresult *res;
	const char *params[] = { slot };
	int status = exec_query(sql, "SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')", 1,
	                        params, &res, "cannot create the replication slot");
	if (status == PG_OK) {
		log_info("replication slot created", "slot", slot, "lsn", PQgetvalue(res, 0, 0));
		if (lsn_parse(PQgetvalue(res, 0, 0), confirmed) < 0)
			*confirmed = LSN_INVALID;
		PQclear(res);
	}
	return status;
}

static int check_slot_row(const PGresult *res, const char *slot, lsn_t *confirmed)
{
	const char *plugin = PQgetvalue(res, 0, 0);
	const char *wal_status = PQgetvalue(res, 0, 1);
	if (strcmp(plugin, "pgoutput") != 0) {
		log_error("the replication slot does not use pgoutput", "slot", slot, "plugin", plugin);
		return PG_FATAL;
	}
	if (strcmp(wal_status, "lost") == 0) {
		log_error("the replication slot is invalidated: the WAL it needed was removed and events are "
		          "lost;"
		          " drop the slot (SELECT pg_drop_replication_slot(...)) and the checkpoint row to "
		          "start afresh",
		          "slot", slot, "wal_status", wal_status);
		return PG_FATAL;
	}
	if (lsn_parse(PQgetvalue(res, 0, 2), confirmed) < 0)
		*confirmed = LSN_INVALID;
	return PG_OK;
}

/* The slot is gone but the checkpoint says it was used: whatever was committed after the
 * checkpoint and before a new slot would be created is lost. Say so with the way out. */
static void report_lost_slot(const struct config *cfg, lsn_t checkpoint_lsn)
{
	/* Both names are plain identifiers (the configuration accepts nothing else), so the SQL
	 * needs no quoting and can be pasted as it is. */
	char lsn[LSN_BUFLEN], accept[256];
	snprintf(accept, sizeof accept, "DELETE FROM %s.checkpoint WHERE slot_name = '%s'",
	         cfg->delivery.bookkeeping_schema, cfg->source.slot);
	log_error("the replication slot is missing but the checkpoint shows it was in use: events committed"
	          " after the checkpoint may be lost, so the relay does not create a new slot; to accept the "
	          "gap,"
	          " run the SQL given and start again",
	          "slot", cfg->source.slot, "checkpoint_lsn", lsn_format(checkpoint_lsn, lsn), "sql", accept);
}

static int ensure_slot(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *confirmed)
{
	PGresult *res;
	const char *slot = cfg->source.slot;
	const char *params[] = { slot };
	int status = exec_query(
	        sql,
	        "SELECT plugin, coalesce(wal_status, ''), coalesce(confirmed_flush_lsn, '0/0')::text"
	        " FROM pg_replication_slots"
	        " WHERE slot_name = $1 AND slot_type = 'logical' AND database = current_database()",
	        1, params, &res, "cannot look up the replication slot");
	if (status != PG_OK)
		return status;
	bool exists = PQntuples(res) > 0;
	if (exists)
		status = check_slot_row(res, slot, confirmed);
	PQclear(res);
	if (exists)
		return status;
	if (checkpoint_lsn != LSN_INVALID) {
		report_lost_slot(cfg, checkpoint_lsn);
		return PG_FATAL;
	}
	if (!cfg->source.create_slot) {
		log_error("the replication slot does not exist and create_slot is false", "slot", slot);
		return PG_FATAL;
	}
	return create_slot(sql, slot, confirmed);
}

int pgrepl_prepare(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *slot_confirmed)
{
	/* The publication first: pgoutput reads it through the snapshot of the WAL being
	 * decoded, so a slot older than its publication cannot decode. */
	int status = routed_prepare(sql, cfg);
	if (status == PG_OK)
		status = pgrepl_ensure_publication(sql, cfg);
	if (status != PG_OK)
		return status;
	*slot_confirmed = LSN_INVALID;
	return ensure_slot(sql, cfg, checkpoint_lsn, slot_confirmed);
}

/* ---- routed tables against the catalog ---- */

struct route_check {
	const struct config *cfg;
	size_t route;
	const char *table; /* "schema.table" as written in errors */
	PGresult *columns; /* attname of every live column */
	int missing;
};

static void report_route_problem(const struct route_check *c, const char *key, const char *problem)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	char where[512];
	snprintf(where, sizeof where, "%s:%d:%d: routes[%zu].%s: %s", c->cfg->path, rc->line, rc->column,
	         c->route, key, problem);
	log_error("the configuration does not match the database", "error", where);
}

static void check_column(void *ctx, const char *key, const char *column)
{
	struct route_check *c = ctx;
	for (int i = 0; i < PQntuples(c->columns); i++)
		if (strcmp(PQgetvalue(c->columns, i, 0), column) == 0)
			return;
	char problem[256];
	snprintf(problem, sizeof problem, "column \"%s\" does not exist in %s", column, c->table);
	report_route_problem(c, key, problem);
	c->missing++;
}

static int check_route(PGconn *sql, const struct config *cfg, const struct outbox *o, size_t i, int *missing)
{
	const struct route_config *rc = &cfg->routes[i];
	const char *params[] = { rc->schema, rc->table };
	char table[2 * 64 + 2];
	struct route_check c = { cfg, i, table, NULL, 0 };
	snprintf(table, sizeof table, "%s.%s", rc->schema, rc->table);
	int status = exec_query(sql,
	                        "SELECT a.attname FROM pg_catalog.pg_attribute a"
	                        " JOIN pg_catalog.pg_class t ON t.oid = a.attrelid"
	                        " JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace"
	                        " WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p')"
	                        " AND a.attnum > 0 AND NOT a.attisdropped",
	                        2, params, &c.columns, "cannot read the routed table's columns");
	if (status != PG_OK)
		return status;
	struct routed_state st = { 0 };
	if (PQntuples(c.columns) == 0)
		status = routed_state(sql, cfg, rc, &st);
	if (status != PG_OK) {
		PQclear(c.columns);
		return status;
	}
	if (PQntuples(c.columns) == 0 && !st.exists && routed_covered(&st)) {
		/* Dropped, perhaps for a moment: the event trigger puts it back in the publication
		 * when it is created again. */
		routed_note_missing(cfg, rc);
	} else if (PQntuples(c.columns) == 0) {
		char problem[256];
		snprintf(problem, sizeof problem, "table %s does not exist (or is not a table)", table);
		report_route_problem(&c, "table", problem);
		c.missing++;
	} else {
		outbox_route_columns(o, i, check_column, &c);
	}
	PQclear(c.columns);
	*missing += c.missing;
	return PG_OK;
}

int pgrepl_check_routes(PGconn *sql, const struct config *cfg, const struct outbox *o)
{
	int missing = 0;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (!cfg->routes[i].table)
			continue;
		int status = check_route(sql, cfg, o, i, &missing);
		if (status != PG_OK)
			return status;
	}
	return missing ? PG_CONFIG : PG_OK;
}

int pg_emit_marker(PGconn *sql, const char *prefix, const char *slot, lsn_t *lsn)
{
	PGresult *res;
	const char *params[] = { prefix, slot };
	int status = exec_query(sql, "SELECT pg_logical_emit_message(false, $1, $2)::text", 2, params, &res,
	                        "cannot emit a logical message");
	if (status != PG_OK)
		return status;
	if (lsn_parse(PQgetvalue(res, 0, 0), lsn) < 0) {
		log_error("unexpected LSN from pg_logical_emit_message", "value", PQgetvalue(res, 0, 0));
		status = PG_FATAL;
	}
	PQclear(res);
	return status;
}

struct pgrepl {
	PGconn *conn;
	char *copybuf; /* last PQgetCopyData buffer, freed on the next call */
};

static int start_streaming(struct pgrepl *r, const struct config *cfg, lsn_t start)
{
	struct buf q = BUF_INIT;
	char lsn[LSN_BUFLEN];
	buf_puts(&q, "START_REPLICATION SLOT ");
	append_identifier(&q, r->conn, cfg->source.slot);
	/* Identifiers are validated by the configuration ([a-z0-9_]), so they need no
	 * escaping inside the option's string literal. */
	buf_printf(&q, " LOGICAL %s (proto_version '1', publication_names '\"%s\"', messages 'true')",
	           lsn_format(start, lsn), cfg->source.publication);
	int status = pg_result(r->conn, PQsendQuery(r->conn, q.data), PGRES_COPY_BOTH,
	                       "cannot start replication", NULL);
	buf_finish(&q);
	return status;
}

struct pgrepl *pgrepl_start(const struct config *cfg, lsn_t start, int *status)
{
	struct pgrepl *r = xcalloc(1, sizeof *r);
	r->conn = pg_connect(cfg, true, "replication");
	if (!r->conn) {
		*status = PG_RETRY;
		free(r);
		return NULL;
	}
	*status = start_streaming(r, cfg, start);
	if (*status == PG_OK && PQsetnonblocking(r->conn, 1) != 0)
		*status = pg_failure(r->conn, NULL, "cannot make the replication connection non-blocking");
	if (*status != PG_OK) {
		pgrepl_free(r);
		return NULL;
	}
	char lsn[LSN_BUFLEN];
	log_info("replication started", "slot", cfg->source.slot, "from", lsn_format(start, lsn));
	return r;
}

void pgrepl_free(struct pgrepl *r)
{
	if (!r)
		return;
	if (r->copybuf)
		PQfreemem(r->copybuf);
	PQfinish(r->conn);
	free(r);
}

int pgrepl_socket(const struct pgrepl *r)
{
	return PQsocket(r->conn);
}

int pgrepl_consume(struct pgrepl *r)
{
	if (PQconsumeInput(r->conn))
		return PG_OK;
	pg_failure(r->conn, NULL, "replication connection lost");
	return PG_RETRY;
}

/* The stream is over: collect the server's final word so the log says why, and whether
 * trying again can help (a lost connection) or not (the publication is gone). */
static int stream_ended(struct pgrepl *r)
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

void pgrepl_release(struct pgrepl *r)
{
	if (r->copybuf) {
		PQfreemem(r->copybuf);
		r->copybuf = NULL;
	}
}

int pgrepl_next(struct pgrepl *r, const uint8_t **data)
{
	pgrepl_release(r);
	int len = PQgetCopyData(r->conn, &r->copybuf, 1);
	if (len > 0) {
		*data = (const uint8_t *)r->copybuf;
		return len;
	}
	if (len == 0)
		return 0;
	return stream_ended(r);
}

int pgrepl_flush(struct pgrepl *r)
{
	int rc = PQflush(r->conn);
	if (rc == 0)
		return PG_OK;
	if (rc == 1)
		return 1;
	pg_failure(r->conn, NULL, "cannot send to the replication connection");
	return PG_RETRY;
}

int pgrepl_send_status(struct pgrepl *r, lsn_t lsn, bool reply_requested)
{
	uint8_t msg[REPL_STATUS_LEN];
	repl_status_build(msg, lsn, pg_now(), reply_requested);
	if (PQputCopyData(r->conn, (const char *)msg, sizeof msg) != 1) {
		pg_failure(r->conn, NULL, "cannot queue a standby status update");
		return PG_RETRY;
	}
	int rc = pgrepl_flush(r);
	return rc == 1 ? PG_OK : rc;
}

/* Waits (bounded) until the socket is ready for the given events. */
static bool wait_socket(struct pgrepl *r, short events, int64_t deadline)
{
	int64_t left = deadline - monotonic_ms();
	if (left <= 0)
		return false;
	struct pollfd p = { .fd = PQsocket(r->conn), .events = events };
	return poll(&p, 1, (int)left) > 0;
}

/* Flushes everything queued, waiting at most until deadline. */
static bool flush_until(struct pgrepl *r, int64_t deadline)
{
	int rc;
	while ((rc = PQflush(r->conn)) == 1)
		if (!wait_socket(r, POLLOUT | POLLIN, deadline))
			return false;
	return rc == 0;
}

/* Reads until the server has answered CopyDone and the command is complete. */
static bool drain_copy_until(struct pgrepl *r, int64_t deadline)
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

void pgrepl_stop(struct pgrepl *r, lsn_t confirmed)
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
	pgrepl_free(r);
}
