#include "request_table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "pgstream.h"
#include "util.h"
#include "watermark.h"

/* A request's reads may not hold the loop: a chunk that takes longer is cancelled and read
 * again smaller. Well below the answer timeout, so that a slow read is not taken for a
 * server gone. */
#define REQUEST_STATEMENT_TIMEOUT "2s"

void request_row_init(struct request_row *row)
{
	memset(row, 0, sizeof *row);
}

void request_row_finish(struct request_row *row)
{
	buf_finish(&row->route);
	buf_finish(&row->where);
	buf_finish(&row->ids);
	buf_finish(&row->created_at);
	buf_finish(&row->positions);
	request_row_init(row);
}

static void append_table_name(struct buf *q, PGconn *sql, const struct config *cfg, const char *table)
{
	pg_append_identifier(q, sql, cfg->delivery.bookkeeping_schema);
	buf_putc(q, '.');
	buf_puts(q, table);
}

/* Sends query and waits for its answer. PG_OK with *res (or NULL res: the result is
 * dropped); PG_RETRY when the connection broke (logged); REQUEST_BAD with the server's
 * words in why when it refused the query. */
static int request_query(PGconn *sql, const char *query, int n, const char *const *params, PGresult **res,
                         const char *what, char *why, size_t whylen)
{
	PGresult *r = pg_await(sql, PQsendQueryParams(sql, query, n, NULL, params, NULL, NULL, 0), what);
	if (!r)
		return PG_RETRY;
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (res)
			*res = r;
		else
			PQclear(r);
		return PG_OK;
	}
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	/* Class 08 (connection), 57P (shutdown), 53 (resources): the server's trouble, not the
	 * request's. */
	if (PQstatus(sql) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0 || strncmp(state, "53", 2) == 0) {
		int status = pg_failure(sql, r, what);
		PQclear(r);
		return status == PG_OK ? PG_RETRY : status;
	}
	const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(why, whylen, "%s (SQLSTATE %s)", primary ? primary : "query failed", state);
	PQclear(r);
	return REQUEST_BAD;
}

/* A query of the relay's own, which the server should never refuse: logged. */
static int own_query(PGconn *sql, const char *query, int n, const char *const *params, PGresult **res,
                     const char *what)
{
	char why[256];
	int status = request_query(sql, query, n, params, res, what, why, sizeof why);
	if (status == REQUEST_BAD) {
		log_error(what, "error", why);
		status = PG_FATAL;
	}
	return status;
}

/* ---- the request table ---- */

static void copy_value(struct buf *to, const PGresult *res, int row, int col)
{
	buf_reset(to);
	buf_puts(to, PQgetvalue(res, row, col));
}

static int read_positions(PGconn *sql, const struct config *cfg, struct request_row *row)
{
	struct buf q = BUF_INIT;
	char id[24];
	snprintf(id, sizeof id, "%" PRId64, row->id);
	buf_puts(&q, "SELECT p FROM ");
	append_table_name(&q, sql, cfg, "request");
	buf_puts(&q, " r, unnest(r.position) WITH ORDINALITY AS u(p, n) WHERE r.id = $1 ORDER BY n");
	const char *params[] = { id };
	PGresult *res;
	int status = own_query(sql, q.data, 1, params, &res, "cannot read a request's position");
	buf_finish(&q);
	if (status != PG_OK)
		return status;
	buf_reset(&row->positions);
	row->npositions = PQntuples(res);
	for (int i = 0; i < row->npositions; i++)
		buf_append(&row->positions, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0) + 1);
	PQclear(res);
	return PG_OK;
}

static void parse_request(const PGresult *res, struct request_row *row)
{
	row->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	row->kind = strcmp(PQgetvalue(res, 0, 1), "redrive") == 0 ? REQUEST_REDRIVE : REQUEST_BACKFILL;
	copy_value(&row->route, res, 0, 2);
	row->has_where = !PQgetisnull(res, 0, 3);
	copy_value(&row->where, res, 0, 3);
	row->has_ids = !PQgetisnull(res, 0, 4);
	copy_value(&row->ids, res, 0, 4);
	copy_value(&row->created_at, res, 0, 5);
	row->done = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	row->refused = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
}

int request_table_next(PGconn *sql, const struct config *cfg, struct request_row *row, bool *found)
{
	struct buf q = BUF_INIT;
	buf_puts(&q, "SELECT id, kind, route, where_clause, dead_letter_ids::text, created_at::text, done,"
	             " refused FROM ");
	append_table_name(&q, sql, cfg, "request");
	buf_puts(&q, " WHERE slot_name = $1 AND state IN ('pending', 'running') ORDER BY id LIMIT 1");
	const char *params[] = { cfg->source.slot };
	PGresult *res = NULL;
	char why[256];
	int status =
	        request_query(sql, q.data, 1, params, &res, "cannot read the request table", why, sizeof why);
	buf_finish(&q);
	*found = false;
	if (status == REQUEST_BAD) {
		/* Made by a release before requests: there is nothing to do until it exists. */
		log_debug("no request table", "error", why);
		return PG_OK;
	}
	if (status != PG_OK)
		return status;
	*found = PQntuples(res) > 0;
	if (*found)
		parse_request(res, row);
	PQclear(res);
	return *found ? read_positions(sql, cfg, row) : PG_OK;
}

static int seed_route(PGconn *sql, const struct config *cfg, const struct route_config *rc)
{
	struct buf q = BUF_INIT, route = BUF_INIT;
	buf_printf(&route, "%s.%s", rc->schema, rc->table);
	buf_puts(&q, "INSERT INTO ");
	append_table_name(&q, sql, cfg, "request");
	buf_puts(&q, " (slot_name, kind, route) SELECT $1, 'backfill', $2 WHERE NOT EXISTS (SELECT 1 FROM ");
	append_table_name(&q, sql, cfg, "request");
	buf_puts(&q, " WHERE slot_name = $1 AND kind = 'backfill' AND route = $2 AND where_clause IS NULL)");
	const char *params[] = { cfg->source.slot, route.data };
	PGresult *res;
	int status = own_query(sql, q.data, 2, params, &res, "cannot queue a snapshot");
	if (status == PG_OK && strcmp(PQcmdTuples(res), "1") == 0)
		log_info("snapshot queued: the rows already in the table are published by a backfill",
		         "route", route.data);
	if (status == PG_OK)
		PQclear(res);
	buf_finish(&q);
	buf_finish(&route);
	return status;
}

int request_table_seed(PGconn *sql, const struct config *cfg)
{
	int status = PG_OK;
	for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
		if (cfg->routes[i].table && cfg->routes[i].snapshot == SNAPSHOT_INITIAL)
			status = seed_route(sql, cfg, &cfg->routes[i]);
	return status;
}

static int update_request(PGconn *sql, const struct config *cfg, const char *set, int n,
                          const char *const *params)
{
	struct buf q = BUF_INIT;
	buf_puts(&q, "UPDATE ");
	append_table_name(&q, sql, cfg, "request");
	buf_printf(&q, " SET %s, updated_at = now() WHERE id = $1", set);
	int status = own_query(sql, q.data, n, params, NULL, "cannot update a request");
	buf_finish(&q);
	return status;
}

int request_table_start(PGconn *sql, const struct config *cfg, int64_t id, int64_t total)
{
	char idtext[24], totaltext[24];
	snprintf(idtext, sizeof idtext, "%" PRId64, id);
	snprintf(totaltext, sizeof totaltext, "%" PRId64, total);
	const char *params[] = { idtext, total >= 0 ? totaltext : NULL };
	return update_request(sql, cfg,
	                      "state = 'running', started_at = coalesce(started_at, now()),"
	                      " total = $2::bigint",
	                      2, params);
}

/* positions as an array literal's elements, each quoted. */
static void append_array(struct buf *out, const struct buf *positions, int n)
{
	const char **items = xcalloc((size_t)n + 1, sizeof *items);
	const char *p = positions->data;
	for (int i = 0; i < n; i++, p += strlen(p) + 1)
		items[i] = p;
	pg_append_text_array(out, items, (size_t)n);
	free(items);
}

int request_table_progress(PGconn *sql, const struct config *cfg, int64_t id, const struct buf *positions,
                           int npositions, int64_t done, int64_t refused)
{
	char idtext[24], donetext[24], refusedtext[24];
	struct buf array = BUF_INIT;
	snprintf(idtext, sizeof idtext, "%" PRId64, id);
	snprintf(donetext, sizeof donetext, "%" PRId64, done);
	snprintf(refusedtext, sizeof refusedtext, "%" PRId64, refused);
	append_array(&array, positions, npositions);
	const char *params[] = { idtext, array.data, donetext, refusedtext };
	int status = update_request(
	        sql, cfg, "position = $2::text[], done = $3::bigint, refused = $4::bigint", 4, params);
	buf_finish(&array);
	return status;
}

int request_table_finish(PGconn *sql, const struct config *cfg, int64_t id, const char *error)
{
	char idtext[24];
	snprintf(idtext, sizeof idtext, "%" PRId64, id);
	const char *params[] = { idtext, error };
	return update_request(sql, cfg,
	                      "state = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' END,"
	                      " error = $2::text, finished_at = now()",
	                      2, params);
}

/* ---- backfill ---- */

void table_shape_init(struct table_shape *t)
{
	memset(t, 0, sizeof *t);
}

void table_shape_finish(struct table_shape *t)
{
	for (int i = 0; i < t->rel.ncolumns; i++)
		free(t->rel.columns[i].name);
	free(t->rel.columns);
	free(t->rel.schema);
	free(t->rel.name);
	for (int i = 0; i < t->nkeys; i++)
		free(t->key_types[i]);
	free(t->key_columns);
	free(t->key_types);
	buf_finish(&t->name);
	table_shape_init(t);
}

/* The rows of the columns in the route's column list (all when it has none). */
static void fill_shape(struct table_shape *t, const PGresult *res, const char *schema, const char *table)
{
	int n = 0;
	for (int r = 0; r < PQntuples(res); r++)
		n += PQgetvalue(res, r, 6)[0] == 't';
	t->table_oid = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	t->rel.oid = 0;
	t->rel.schema = xstrdup(schema);
	t->rel.name = xstrdup(table);
	t->rel.replica_identity = 'd';
	t->rel.ncolumns = n;
	t->rel.columns = xcalloc(n ? (size_t)n : 1, sizeof *t->rel.columns);
	t->key_columns = xcalloc(n ? (size_t)n : 1, sizeof *t->key_columns);
	t->key_types = xcalloc(n ? (size_t)n : 1, sizeof *t->key_types);
	for (int r = 0, i = 0; r < PQntuples(res); r++) {
		if (PQgetvalue(res, r, 6)[0] != 't')
			continue;
		struct pgo_column *c = &t->rel.columns[i];
		c->name = xstrdup(PQgetvalue(res, r, 1));
		c->type_oid = (uint32_t)strtoul(PQgetvalue(res, r, 2), NULL, 10);
		c->typmod = (int32_t)strtol(PQgetvalue(res, r, 3), NULL, 10);
		c->key = !PQgetisnull(res, r, 5);
		if (c->key) {
			int k = (int)strtol(PQgetvalue(res, r, 5), NULL, 10);
			if (k >= 0 && k < n) {
				t->key_columns[k] = i;
				t->key_types[k] = xstrdup(PQgetvalue(res, r, 4));
				t->nkeys++;
			}
		}
		i++;
	}
}

/* A key column the column list leaves out: the first, or NULL. */
static const char *key_left_out(const PGresult *res)
{
	for (int i = 0; i < PQntuples(res); i++)
		if (!PQgetisnull(res, i, 5) && PQgetvalue(res, i, 6)[0] != 't')
			return PQgetvalue(res, i, 1);
	return NULL;
}

int request_table_shape(PGconn *sql, const char *schema, const char *table, const char *const *columns,
                        size_t ncolumns, struct table_shape *t, char *why, size_t whylen)
{
	static const char query[] =
	        "SELECT c.oid, a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),"
	        /* int2vector counts from 0: the column's place in the key, from 0 */
	        " array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1),"
	        /* in the column list ($3, a text[]; NULL: every column) */
	        " $3::text[] IS NULL OR a.attname = ANY ($3::text[])"
	        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
	        " AND a.attgenerated = ''"
	        " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
	        " WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum";
	struct buf list = BUF_INIT;
	for (size_t i = 0; i < ncolumns; i++) {
		buf_puts(&list, i ? ",\"" : "{\"");
		for (const char *p = columns[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(&list, '\\');
			buf_putc(&list, *p);
		}
		buf_puts(&list, i + 1 == ncolumns ? "\"}" : "\"");
	}
	const char *params[] = { schema, table, ncolumns ? list.data : NULL };
	PGresult *res;
	int status = own_query(sql, query, 3, params, &res, "cannot read a table's columns");
	buf_finish(&list);
	if (status != PG_OK)
		return status;
	table_shape_finish(t);
	if (PQntuples(res) == 0) {
		snprintf(why, whylen, "table %s.%s does not exist", schema, table);
		status = REQUEST_BAD;
	} else {
		const char *left_out = ncolumns ? key_left_out(res) : NULL;
		if (!left_out)
			fill_shape(t, res, schema, table);
		if (left_out) {
			snprintf(why, whylen,
			         "the route's columns leave out primary key column %s of %s.%s: a backfill"
			         " reads rows in key order; add it to columns",
			         left_out, schema, table);
			status = REQUEST_BAD;
		} else if (t->nkeys == 0) {
			snprintf(why, whylen,
			         "table %s.%s has no primary key: its rows cannot be read in chunks", schema,
			         table);
			status = REQUEST_BAD;
		}
	}
	PQclear(res);
	pg_append_identifier(&t->name, sql, schema);
	buf_putc(&t->name, '.');
	pg_append_identifier(&t->name, sql, table);
	return status;
}

int request_table_estimate(PGconn *sql, const struct table_shape *t, bool has_where, int64_t *total)
{
	*total = -1;
	if (has_where)
		return PG_OK;
	char oid[16];
	snprintf(oid, sizeof oid, "%u", t->table_oid);
	const char *params[] = { oid };
	PGresult *res;
	int status = own_query(sql, "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::oid",
	                       1, params, &res, "cannot estimate a table's rows");
	if (status != PG_OK)
		return status;
	if (PQntuples(res) == 1)
		*total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return PG_OK;
}

/* Reads run in their own read-only transaction, so that a condition cannot write. */
static int begin_read(PGconn *sql)
{
	int status = own_query(sql, "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", 0, NULL, NULL,
	                       "cannot begin a read");
	if (status == PG_OK)
		status = own_query(sql, "SET LOCAL statement_timeout = '" REQUEST_STATEMENT_TIMEOUT "'", 0,
		                   NULL, NULL, "cannot begin a read");
	return status;
}

static int end_read(PGconn *sql, int status)
{
	int end = own_query(sql, status == PG_OK ? "COMMIT" : "ROLLBACK", 0, NULL, NULL, "cannot end a read");
	return status != PG_OK ? status : end;
}

int request_table_check_where(PGconn *sql, const struct table_shape *t, const char *where, char *why,
                              size_t whylen)
{
	struct buf q = BUF_INIT;
	buf_printf(&q, "SELECT 1 FROM %s WHERE (%s) LIMIT 0", t->name.data, where);
	int status = begin_read(sql);
	if (status == PG_OK)
		status = end_read(sql, request_query(sql, q.data, 0, NULL, NULL, "cannot check a condition",
		                                     why, whylen));
	buf_finish(&q);
	return status;
}

static void append_key_list(struct buf *q, PGconn *sql, const struct table_shape *t, bool params)
{
	buf_putc(q, '(');
	for (int k = 0; k < t->nkeys; k++) {
		if (k)
			buf_puts(q, ", ");
		if (params)
			buf_printf(q, "$%d::%s", k + 1, t->key_types[k]);
		else
			pg_append_identifier(q, sql, t->rel.columns[t->key_columns[k]].name);
	}
	buf_putc(q, ')');
}

static void chunk_query(struct buf *q, PGconn *sql, const struct table_shape *t, const char *where,
                        bool after, uint32_t limit)
{
	buf_puts(q, "SELECT ");
	for (int i = 0; i < t->rel.ncolumns; i++) {
		if (i)
			buf_puts(q, ", ");
		pg_append_identifier(q, sql, t->rel.columns[i].name);
	}
	buf_printf(q, " FROM %s WHERE true", t->name.data);
	if (after) {
		buf_puts(q, " AND ");
		append_key_list(q, sql, t, false);
		buf_puts(q, " > ");
		append_key_list(q, sql, t, true);
	}
	if (where)
		buf_printf(q, " AND (%s)", where);
	buf_puts(q, " ORDER BY ");
	for (int k = 0; k < t->nkeys; k++) {
		if (k)
			buf_puts(q, ", ");
		pg_append_identifier(q, sql, t->rel.columns[t->key_columns[k]].name);
	}
	buf_printf(q, " LIMIT %" PRIu32, limit);
}

int request_table_read_chunk(PGconn *sql, const struct table_shape *t, const char *where,
                             const struct buf *positions, int npositions, uint32_t limit, PGresult **res,
                             bool *timed_out, char *why, size_t whylen)
{
	struct buf q = BUF_INIT;
	const char **params = xcalloc((size_t)t->nkeys + 1, sizeof *params);
	bool after = npositions == t->nkeys && npositions > 0;
	const char *p = positions->data;
	for (int k = 0; after && k < t->nkeys; k++, p += strlen(p) + 1)
		params[k] = p;
	chunk_query(&q, sql, t, where, after, limit);
	*timed_out = false;
	*res = NULL;
	int status = begin_read(sql);
	if (status == PG_OK) {
		status = request_query(sql, q.data, after ? t->nkeys : 0, params, res, "cannot read a chunk",
		                       why, whylen);
		status = end_read(sql, status);
		if (status != PG_OK && *res) {
			PQclear(*res);
			*res = NULL;
		}
	}
	if (status == REQUEST_BAD && strstr(why, "SQLSTATE 57014"))
		*timed_out = true;
	free(params);
	buf_finish(&q);
	return status;
}

/* ---- re-drive ---- */

int request_table_read_dead_letters(PGconn *sql, const struct config *cfg, const struct request_row *req,
                                    uint32_t limit, PGresult **res, char *why, size_t whylen)
{
	struct buf q = BUF_INIT;
	buf_puts(&q,
	         "SELECT id, event_id, source, topic, commit_lsn::text, payload,"
	         " coalesce((properties->>'qos')::int, 1), coalesce((properties->>'retain')::bool, false),"
	         " properties->>'content_type', coalesce((properties->>'message_expiry')::bigint, 0),"
	         " properties->>'response_topic',"
	         /* hex since dead letters could hold a NUL byte; text before */
	         " coalesce(decode(properties->>'correlation_data_hex', 'hex'),"
	         " convert_to(properties->>'correlation_data', 'UTF8')),"
	         " (SELECT string_agg(octet_length(substr(key, 6)) || ':' || substr(key, 6) ||"
	         " octet_length(value) || ':' || value, '' ORDER BY key)"
	         " FROM jsonb_each_text(properties) WHERE key LIKE 'user:%'),"
	         " properties->>'op'"
	         " FROM ");
	append_table_name(&q, sql, cfg, "dead_letter");
	buf_printf(&q,
	           " WHERE slot_name = $1 AND id > $2::bigint AND created_at <= $3::timestamptz"
	           " AND CASE WHEN $4::bigint[] IS NULL THEN redrive_outcome IS DISTINCT FROM 'published'"
	           " ELSE id = ANY($4::bigint[]) END ORDER BY id LIMIT %" PRIu32,
	           limit);
	const char *after = req->npositions > 0 ? req->positions.data : "0";
	const char *params[] = { cfg->source.slot, after, req->created_at.data,
		                 req->has_ids ? req->ids.data : NULL };
	int status = begin_read(sql);
	*res = NULL;
	if (status == PG_OK) {
		status = end_read(sql, request_query(sql, q.data, 4, params, res, "cannot read dead letters",
		                                     why, whylen));
		if (status != PG_OK && *res) {
			PQclear(*res);
			*res = NULL;
		}
	}
	buf_finish(&q);
	return status;
}

int request_table_redriven(PGconn *sql, const struct config *cfg, int64_t id, const char *reason)
{
	struct buf q = BUF_INIT;
	char idtext[24];
	snprintf(idtext, sizeof idtext, "%" PRId64, id);
	buf_puts(&q, "UPDATE ");
	append_table_name(&q, sql, cfg, "dead_letter");
	buf_puts(&q, " SET redriven_at = now(), redrive_outcome = CASE WHEN $2::text IS NULL THEN 'published'"
	             " ELSE 'refused' END, reason = coalesce($2::text, reason) WHERE id = $1::bigint");
	const char *params[] = { idtext, reason };
	int status = own_query(sql, q.data, 2, params, NULL, "cannot record a re-driven dead letter");
	buf_finish(&q);
	return status;
}

/* ---- markers ---- */

int request_table_mark(PGconn *sql, const char *text, lsn_t *lsn)
{
	return pg_emit_marker(sql, true, WATERMARK_PREFIX, text, lsn);
}
