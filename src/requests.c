#include "requests.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytea.h"
#include "log.h"
#include "pgconn.h"
#include "request_table.h"
#include "util.h"
#include "watermark.h"

enum phase {
	IDLE,       /* no request */
	READY,      /* the next chunk may be read */
	WAIT_MARKS, /* a chunk is read; the stream has not reached its high mark */
	PLACING,    /* the stream waits while the chunk's rows become events */
	FINISHING,  /* the last chunk is placed: the request ends once it is acknowledged */
};

/* A chunk whose rows are placed: done once the broker acknowledged its last event. */
struct placed {
	bool any;              /* it has events at all */
	struct event_pos last; /* its last event */
	lsn_t mark_lsn;        /* its high mark's commit LSN */
	struct buf positions;  /* the cursor after it */
	int npositions;
	int64_t rows;
	bool end; /* the last chunk of the request */
};

#define PLACED_MAX 8

struct requests {
	bool wake;
	enum phase phase;
	struct request_row req;
	struct table_shape shape; /* backfill */
	const char *where;        /* backfill: NULL for all rows */
	struct buf where_both;    /* backfill: the route's row filter and the request's condition */
	uint32_t chunk_rows;
	int64_t chunk_no; /* unique per process, so that markers of an earlier one never match */

	PGresult *chunk; /* read, waiting for its marks or being placed */
	int nrows;
	bool chunk_end;
	bool window_open;       /* low mark seen: the stream's changes of the table are noted */
	struct keyset *changed; /* keys the stream changed since the low mark */
	int row;                /* placing: the row found by requests_next_row */
	bool row_built;         /* and handed out as an event */
	struct event_pos last;
	bool any;
	lsn_t mark_lsn;
	int64_t skipped; /* rows of the request left to the stream by this process (logged) */

	/* The budget counts what the live stream waits for: the read, and the placing, which
	 * goes at the broker's pace once the window is full. */
	int64_t read_ms;
	int64_t placing_since;
	size_t chunk_bytes;

	struct placed placed[PLACED_MAX];
	int nplaced;

	/* The stream's relation bound to the shape's key columns. */
	const struct pgo_relation *bound_rel;
	uint32_t bound_generation;
	int *bound_keys;

	struct pgo_value *values; /* a chunk row as a tuple, reused */
	struct pgo_tuple tuple;
	int nvalues;
	struct buf key;             /* scratch */
	int64_t published, refused; /* re-drive outcomes */
};

static uint32_t shape_generation; /* bindings of outbox routes to shapes, never reused */

struct requests *requests_new(void)
{
	struct requests *q = xcalloc(1, sizeof *q);
	request_row_init(&q->req);
	table_shape_init(&q->shape);
	q->changed = keyset_new();
	q->chunk_no = (int64_t)time(NULL) * 1000;
	q->wake = true;
	return q;
}

static void drop_chunk(struct requests *q)
{
	PQclear(q->chunk);
	q->chunk = NULL;
	q->nrows = 0;
	q->window_open = false;
	keyset_clear(q->changed);
}

static void clear_placed(struct requests *q)
{
	for (int i = 0; i < PLACED_MAX; i++)
		buf_finish(&q->placed[i].positions);
	q->nplaced = 0;
}

static void end_request(struct requests *q)
{
	drop_chunk(q);
	clear_placed(q);
	table_shape_finish(&q->shape);
	buf_finish(&q->where_both);
	q->where = NULL;
	request_row_finish(&q->req);
	q->phase = IDLE;
	q->wake = true;
	q->bound_rel = NULL;
	free(q->bound_keys);
	q->bound_keys = NULL;
}

void requests_free(struct requests *q)
{
	if (!q)
		return;
	end_request(q);
	keyset_free(q->changed);
	free(q->values);
	buf_finish(&q->key);
	free(q);
}

void requests_wake(struct requests *q)
{
	q->wake = true;
}

bool requests_is_table(const struct config *cfg, const struct pgo_relation *rel)
{
	return strcmp(rel->name, "request") == 0 &&
	       strcmp(rel->schema, cfg->delivery.bookkeeping_schema) == 0;
}

/* ---- starting a request ---- */

static int fail_request(struct requests *q, PGconn *sql, const struct config *cfg, const char *why)
{
	char id[24];
	snprintf(id, sizeof id, "%" PRId64, q->req.id);
	log_warn("request failed", LOG_NUMBER("request"), id, "reason", why);
	int status = request_table_finish(sql, cfg, q->req.id, why);
	if (status == PG_OK)
		end_request(q);
	return status;
}

static const struct route_config *find_route(const struct config *cfg, const char *schema, const char *table)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		if (rc->table && strcmp(rc->table, table) == 0 && strcmp(rc->schema, schema) == 0)
			return rc;
	}
	return NULL;
}

/* "schema.table" or "table" (schema public) into its parts. */
static void split_route(const char *route, char *schema, size_t slen, char *table, size_t tlen)
{
	const char *dot = strchr(route, '.');
	if (!dot) {
		snprintf(schema, slen, "public");
		snprintf(table, tlen, "%s", route);
		return;
	}
	snprintf(schema, slen, "%.*s", (int)(dot - route), route);
	snprintf(table, tlen, "%s", dot + 1);
}

static int prepare_backfill(struct requests *q, PGconn *sql, const struct config *cfg, int64_t *total,
                            char *why, size_t whylen)
{
	char schema[128], table[128];
	split_route(q->req.route.len ? q->req.route.data : "", schema, sizeof schema, table, sizeof table);
	const struct route_config *rc = find_route(cfg, schema, table);
	if (!rc) {
		snprintf(why, whylen, "no table route for %s.%s in the configuration", schema, table);
		return REQUEST_BAD;
	}
	if (!rc->event_id_column) {
		snprintf(
		        why, whylen,
		        "route %s.%s has no event_id column: a backfilled row could not carry the id its live"
		        " event had (<commit-lsn>:<index>); set event_id",
		        schema, table);
		return REQUEST_BAD;
	}
	/* The rows and columns the publication lets through: a backfilled event has the shape
	 * of a live one, and no row the route's where leaves out is published. */
	int status = request_table_shape(sql, schema, table, (const char *const *)rc->columns, rc->ncolumns,
	                                 &q->shape, why, whylen);
	q->shape.rel.generation = ++shape_generation;
	q->where = q->req.has_where ? q->req.where.data : NULL;
	if (rc->row_filter) {
		buf_finish(&q->where_both);
		buf_printf(&q->where_both, "(%s)", rc->row_filter);
		if (q->where)
			buf_printf(&q->where_both, " AND (%s)", q->where);
		q->where = q->where_both.data;
	}
	if (status == PG_OK && q->where)
		status = request_table_check_where(sql, &q->shape, q->where, why, whylen);
	if (status == PG_OK)
		status = request_table_estimate(sql, &q->shape, q->where != NULL, total);
	return status;
}

static void log_request(const char *msg, const struct requests *q)
{
	char id[24], done[24], skipped[24];
	snprintf(id, sizeof id, "%" PRId64, q->req.id);
	snprintf(done, sizeof done, "%" PRId64, q->req.done);
	snprintf(skipped, sizeof skipped, "%" PRId64, q->skipped);
	log_info(msg, LOG_NUMBER("request"), id, "kind",
	         q->req.kind == REQUEST_BACKFILL ? "backfill" : "redrive", "route",
	         q->req.route.len ? q->req.route.data : "", LOG_NUMBER("done"), done,
	         LOG_NUMBER("left_to_the_stream"), skipped);
}

static int start_next(struct requests *q, PGconn *sql, const struct config *cfg)
{
	bool found;
	q->wake = false;
	int status = request_table_next(sql, cfg, &q->req, &found);
	if (status != PG_OK || !found)
		return status;
	char why[512];
	int64_t total = -1;
	if (q->req.kind == REQUEST_BACKFILL)
		status = prepare_backfill(q, sql, cfg, &total, why, sizeof why);
	if (status == REQUEST_BAD)
		return fail_request(q, sql, cfg, why);
	if (status == PG_OK)
		status = request_table_start(sql, cfg, q->req.id, total);
	if (status != PG_OK) {
		end_request(q);
		return status;
	}
	q->phase = READY;
	q->chunk_rows = CHUNK_ROWS_FIRST;
	q->published = q->req.done;
	q->skipped = 0;
	q->refused = q->req.refused;
	log_request(q->req.npositions ? "request resumed" : "request started", q);
	return PG_OK;
}

/* ---- reading a chunk between its marks ---- */

static int emit_mark(struct requests *q, PGconn *sql, enum mark_kind kind)
{
	struct mark m = { kind, q->req.id, q->chunk_no };
	lsn_t lsn;
	mark_format(&m, &q->key);
	return request_table_mark(sql, q->key.data, &lsn);
}

static size_t result_bytes(const PGresult *res)
{
	size_t bytes = 0;
	for (int i = 0; i < PQntuples(res); i++)
		for (int c = 0; c < PQnfields(res); c++)
			bytes += (size_t)PQgetlength(res, i, c);
	return bytes;
}

static int read_rows(struct requests *q, PGconn *sql, const struct config *cfg, char *why, size_t whylen,
                     bool *timed_out)
{
	*timed_out = false;
	if (q->req.kind == REQUEST_REDRIVE)
		return request_table_read_dead_letters(sql, cfg, &q->req, q->chunk_rows, &q->chunk, why,
		                                       whylen);
	return request_table_read_chunk(sql, &q->shape, q->where, &q->req.positions, q->req.npositions,
	                                q->chunk_rows, &q->chunk, timed_out, why, whylen);
}

static void log_chunk(const char *msg, int rows, int64_t ms)
{
	char n[16], t[24];
	snprintf(n, sizeof n, "%d", rows);
	snprintf(t, sizeof t, "%" PRId64, ms);
	log_debug(msg, LOG_NUMBER("rows"), n, LOG_NUMBER("ms"), t);
}

static int read_chunk(struct requests *q, PGconn *sql, const struct config *cfg)
{
	char why[512];
	bool timed_out = false;
	q->chunk_no++;
	int status = emit_mark(q, sql, MARK_LOW);
	int64_t started = monotonic_ms();
	if (status == PG_OK)
		status = read_rows(q, sql, cfg, why, sizeof why, &timed_out);
	if (status == REQUEST_BAD && timed_out && q->chunk_rows > CHUNK_ROWS_MIN) {
		q->chunk_rows = q->chunk_rows / 4 > CHUNK_ROWS_MIN ? q->chunk_rows / 4 : CHUNK_ROWS_MIN;
		return PG_OK; /* read again, smaller */
	}
	if (status == REQUEST_BAD)
		return fail_request(q, sql, cfg, why);
	if (status != PG_OK)
		return status;
	q->nrows = PQntuples(q->chunk);
	q->chunk_end = (uint32_t)q->nrows < q->chunk_rows;
	q->read_ms = monotonic_ms() - started;
	q->chunk_bytes = result_bytes(q->chunk);
	log_chunk("chunk read", q->nrows, q->read_ms);
	q->window_open = false;
	keyset_clear(q->changed);
	q->phase = WAIT_MARKS;
	return emit_mark(q, sql, MARK_HIGH);
}

/* ---- progress ---- */

static bool placed_done(const struct placed *p, struct ledger_pos safe)
{
	return !p->any || !event_pos_after(p->last, safe.acked) || safe.confirmed_lsn > p->mark_lsn;
}

static int record_placed(struct requests *q, PGconn *sql, const struct config *cfg, struct ledger_pos safe)
{
	while (q->nplaced > 0 && placed_done(&q->placed[0], safe)) {
		struct placed *p = &q->placed[0];
		int64_t done = q->req.kind == REQUEST_BACKFILL ? q->req.done + p->rows : q->published;
		int status = request_table_progress(sql, cfg, q->req.id, &p->positions, p->npositions, done,
		                                    q->refused);
		if (status != PG_OK)
			return status;
		q->req.done = done;
		bool end = p->end;
		struct buf spare = p->positions;
		memmove(&q->placed[0], &q->placed[1], (size_t)(q->nplaced - 1) * sizeof *p);
		q->nplaced--;
		q->placed[q->nplaced].positions = spare;
		buf_reset(&spare);
		if (end) {
			status = request_table_finish(sql, cfg, q->req.id, NULL);
			if (status == PG_OK) {
				log_request("request done", q);
				end_request(q);
			}
			return status;
		}
	}
	return PG_OK;
}

int requests_step(struct requests *q, PGconn *sql, const struct config *cfg, struct ledger_pos safe)
{
	int status = record_placed(q, sql, cfg, safe);
	if (status == PG_OK && q->phase == IDLE && q->wake)
		status = start_next(q, sql, cfg);
	if (status == PG_OK && q->phase == READY && q->nplaced < PLACED_MAX - 1)
		status = read_chunk(q, sql, cfg);
	return status;
}

/* ---- the stream's side ---- */

static void key_of_chunk_row(struct requests *q, int row, const int *columns, int n)
{
	buf_reset(&q->key);
	for (int k = 0; k < n; k++)
		key_append_column(&q->key, PQgetvalue(q->chunk, row, columns[k]),
		                  (size_t)PQgetlength(q->chunk, row, columns[k]),
		                  PQgetisnull(q->chunk, row, columns[k]));
}

/* The row's key as the cursor: NUL-terminated values in the key's order. */
static void cursor_of_row(struct requests *q, int row, struct buf *out, int *n)
{
	buf_reset(out);
	if (q->req.kind == REQUEST_REDRIVE) {
		buf_append(out, PQgetvalue(q->chunk, row, DL_ID),
		           (size_t)PQgetlength(q->chunk, row, DL_ID) + 1);
		*n = 1;
		return;
	}
	for (int k = 0; k < q->shape.nkeys; k++) {
		int c = q->shape.key_columns[k];
		buf_append(out, PQgetvalue(q->chunk, row, c), (size_t)PQgetlength(q->chunk, row, c) + 1);
	}
	*n = q->shape.nkeys;
}

/* The chunk is placed up to row count: what is left of it is read again. */
static void close_placement(struct requests *q, int count, bool end)
{
	if (q->phase == PLACING)
		log_chunk("chunk placed", count, monotonic_ms() - q->placing_since);
	if (q->phase == PLACING && count == q->nrows)
		q->chunk_rows =
		        chunk_rows_next(q->chunk_rows, (uint32_t)q->nrows,
		                        q->read_ms + monotonic_ms() - q->placing_since, q->chunk_bytes);
	/* A record of what it placed, for the progress once acknowledged; a chunk with no row
	 * left records only the end. */
	if ((count > 0 || end) && q->nplaced < PLACED_MAX) {
		struct placed *p = &q->placed[q->nplaced++];
		p->any = count > 0 && q->any;
		p->last = q->last;
		p->mark_lsn = q->mark_lsn;
		p->rows = count;
		p->end = end;
		if (count > 0) {
			cursor_of_row(q, count - 1, &p->positions, &p->npositions);
			/* The next chunk reads after it. */
			buf_reset(&q->req.positions);
			buf_append(&q->req.positions, p->positions.data, p->positions.len);
			q->req.npositions = p->npositions;
		} else {
			buf_reset(&p->positions);
			buf_append(&p->positions, q->req.positions.data, q->req.positions.len);
			p->npositions = q->req.npositions;
		}
	}
	drop_chunk(q);
	q->phase = end ? FINISHING : READY;
}

void requests_session_lost(struct requests *q, bool row_unsent)
{
	if (q->phase == WAIT_MARKS) {
		drop_chunk(q);
		q->phase = READY;
	} else if (q->phase == PLACING) {
		/* Placed up to the current row, which counts when it was built and went out. */
		int count = q->row < 0 ? 0 : q->row + (q->row_built && !row_unsent ? 1 : 0);
		close_placement(q, count, false);
	}
}

int requests_record_progress(struct requests *q, PGconn *sql, const struct config *cfg,
                             struct ledger_pos safe)
{
	return record_placed(q, sql, cfg, safe);
}

void requests_mark(struct requests *q, const uint8_t *content, uint32_t len, lsn_t commit_lsn)
{
	struct mark m;
	if (q->phase != WAIT_MARKS || mark_parse(content, len, &m) < 0 || m.request != q->req.id ||
	    m.chunk != q->chunk_no)
		return; /* an earlier chunk's or process's: its rows are not in memory */
	if (m.kind == MARK_LOW) {
		q->window_open = true;
		keyset_clear(q->changed);
		return;
	}
	if (!q->window_open) {
		/* The stream began after the low mark: which rows changed meanwhile is unknown. */
		drop_chunk(q);
		q->phase = READY;
		return;
	}
	log_debug("chunk reached its high mark");
	q->phase = PLACING;
	q->placing_since = monotonic_ms();
	q->row = -1;
	q->row_built = false;
	q->any = false;
	q->mark_lsn = commit_lsn;
	if (q->nrows == 0)
		close_placement(q, 0, q->chunk_end);
}

static void bind_stream_relation(struct requests *q, const struct pgo_relation *rel)
{
	if (q->bound_rel == rel && q->bound_generation == rel->generation)
		return;
	free(q->bound_keys);
	q->bound_keys = xcalloc((size_t)q->shape.nkeys, sizeof *q->bound_keys);
	for (int k = 0; k < q->shape.nkeys; k++) {
		const char *name = q->shape.rel.columns[q->shape.key_columns[k]].name;
		q->bound_keys[k] = -1;
		for (int c = 0; c < rel->ncolumns; c++)
			if (strcmp(rel->columns[c].name, name) == 0)
				q->bound_keys[k] = c;
	}
	q->bound_rel = rel;
	q->bound_generation = rel->generation;
}

void requests_note_change(struct requests *q, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	if (!q->window_open || q->req.kind != REQUEST_BACKFILL || rel->oid != q->shape.table_oid)
		return;
	bind_stream_relation(q, rel);
	buf_reset(&q->key);
	for (int k = 0; k < q->shape.nkeys; k++) {
		int c = q->bound_keys[k];
		const struct pgo_value *v = c >= 0 && c < row->ncolumns ? &row->values[c] : NULL;
		key_append_column(&q->key, v ? v->data : NULL, v ? v->len : 0,
		                  !v || v->kind != PGO_VALUE_TEXT);
	}
	keyset_add(q->changed, q->key.data, q->key.len);
}

bool requests_placing(const struct requests *q)
{
	return q->phase == PLACING;
}

bool requests_next_row(struct requests *q)
{
	if (q->phase != PLACING)
		return false;
	q->row_built = false;
	while (++q->row < q->nrows) {
		if (q->req.kind == REQUEST_REDRIVE)
			return true;
		key_of_chunk_row(q, q->row, q->shape.key_columns, q->shape.nkeys);
		if (!keyset_has(q->changed, q->key.data, q->key.len))
			return true;
		q->skipped++; /* the stream carried a version as new or newer */
	}
	close_placement(q, q->nrows, q->chunk_end);
	return false;
}

static const struct pgo_tuple *chunk_tuple(struct requests *q)
{
	int n = PQnfields(q->chunk);
	if (n > q->nvalues) {
		free(q->values);
		q->values = xcalloc((size_t)n, sizeof *q->values);
		q->nvalues = n;
	}
	for (int c = 0; c < n; c++) {
		bool null = PQgetisnull(q->chunk, q->row, c);
		q->values[c] = (struct pgo_value){ null ? PGO_VALUE_NULL : PGO_VALUE_TEXT,
			                           PQgetvalue(q->chunk, q->row, c),
			                           (uint32_t)PQgetlength(q->chunk, q->row, c) };
	}
	q->tuple = (struct pgo_tuple){ n, q->values };
	return &q->tuple;
}

static int build_backfill(struct requests *q, struct outbox *o, struct event *ev, char *why, size_t whylen)
{
	struct outbox_route *route = outbox_route_table(o, &q->shape.rel);
	if (!route) {
		snprintf(why, whylen, "the route of %s is no longer configured", q->shape.name.data);
		return -1;
	}
	return outbox_build(route, &q->shape.rel, chunk_tuple(q), ev, why, whylen);
}

/* <len>:<name><len>:<value>..., octet lengths, as request_table reads them. */
static int parse_user_properties(const char *p, struct event *ev)
{
	while (*p) {
		const char *part[2];
		size_t len[2];
		for (int i = 0; i < 2; i++) {
			char *end;
			len[i] = strtoul(p, &end, 10);
			if (*end != ':' || strlen(end + 1) < len[i])
				return -1;
			part[i] = end + 1;
			p = end + 1 + len[i];
		}
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)len[0], part[0]);
		event_add_property(ev, name, part[1], len[1]);
	}
	return 0;
}

static const char *cell(const struct requests *q, int column)
{
	return PQgetisnull(q->chunk, q->row, column) ? NULL : PQgetvalue(q->chunk, q->row, column);
}

static void set_buf(struct buf *b, const char *text)
{
	buf_reset(b);
	if (text)
		buf_puts(b, text);
}

static int build_redrive(struct requests *q, struct event *ev, char *why, size_t whylen)
{
	ev->redrive_of = strtoll(cell(q, DL_ID), NULL, 10);
	set_buf(&ev->message_source, cell(q, DL_SOURCE) ? cell(q, DL_SOURCE) : "");
	ev->source = ev->message_source.data;
	set_buf(&ev->event_id, cell(q, DL_EVENT_ID));
	if (cell(q, DL_COMMIT_LSN))
		snprintf(ev->lsn_text, sizeof ev->lsn_text, "%s", cell(q, DL_COMMIT_LSN));
	ev->qos = (int)strtol(cell(q, DL_QOS), NULL, 10);
	ev->retain = strcmp(cell(q, DL_RETAIN), "t") == 0;
	set_buf(&ev->stored_content_type, cell(q, DL_CONTENT_TYPE));
	ev->content_type = cell(q, DL_CONTENT_TYPE) ? ev->stored_content_type.data : NULL;
	ev->message_expiry_s = (uint32_t)strtoul(cell(q, DL_MESSAGE_EXPIRY), NULL, 10);
	ev->has_response_topic = cell(q, DL_RESPONSE_TOPIC) != NULL;
	set_buf(&ev->response_topic, cell(q, DL_RESPONSE_TOPIC));
	const char *correlation = cell(q, DL_CORRELATION_DATA);
	size_t clen = correlation ? strlen(correlation) : 0;
	ev->has_correlation_data = correlation != NULL;
	buf_reset(&ev->correlation_data);
	if (correlation && bytea_is_hex(correlation, clen))
		bytea_decode(correlation, clen,
		             (unsigned char *)buf_extend(&ev->correlation_data, bytea_length(clen)));
	event_clear_properties(ev);
	buf_reset(&ev->payload);
	const char *payload = cell(q, DL_PAYLOAD);
	size_t plen = payload ? strlen(payload) : 0;
	if (payload && bytea_is_hex(payload, plen)) {
		char *to = buf_extend(&ev->payload, bytea_length(plen));
		bytea_decode(payload, plen, (unsigned char *)to);
	}
	set_buf(&ev->topic, cell(q, DL_TOPIC));
	const char *op = cell(q, DL_OP);
	ev->op = op ? event_op_named(op, strlen(op)) : NULL;
	if (cell(q, DL_USER_PROPERTIES) && parse_user_properties(cell(q, DL_USER_PROPERTIES), ev) < 0) {
		snprintf(why, whylen, "the dead letter's user properties cannot be read back");
		return -1;
	}
	if (!cell(q, DL_TOPIC)) {
		snprintf(why, whylen, "no topic: it could not be formed when the event was dead-lettered");
		return -1;
	}
	return 0;
}

int requests_build(struct requests *q, struct outbox *o, struct event *ev, char *why, size_t whylen)
{
	q->row_built = true;
	q->any = true;
	q->last = (struct event_pos){ ev->commit_lsn, ev->index };
	if (q->req.kind == REQUEST_REDRIVE) {
		ev->origin = EVENT_ORIGIN_REDRIVE;
		return build_redrive(q, ev, why, whylen);
	}
	ev->origin = EVENT_ORIGIN_BACKFILL;
	return build_backfill(q, o, ev, why, whylen);
}

int requests_settled(struct requests *q, PGconn *sql, const struct config *cfg, const struct event *ev,
                     const char *reason)
{
	if (!ev->redrive_of)
		return PG_OK;
	if (!sql)
		return PG_RETRY;
	int status = request_table_redriven(sql, cfg, ev->redrive_of, reason);
	if (status == PG_OK && reason) {
		q->refused++;
		char id[24];
		snprintf(id, sizeof id, "%" PRId64, ev->redrive_of);
		log_warn("re-driven dead letter refused again", LOG_NUMBER("dead_letter"), id, "reason",
		         reason);
	} else if (status == PG_OK) {
		q->published++;
	}
	return status;
}
