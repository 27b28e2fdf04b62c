#include "bookkeeping.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "pgconn.h"

#define SAVE_STATEMENT "outbox_relay_checkpoint_save"
#define LOAD_STATEMENT "outbox_relay_checkpoint_load"
#define DEAD_LETTER_STATEMENT "outbox_relay_dead_letter"

static int prepare(PGconn *sql, const char *name, const struct buf *query, int nparams)
{
	return pg_result(sql, PQsendPrepare(sql, name, query->data, nparams, NULL), PGRES_COMMAND_OK,
	                 "cannot prepare a checkpoint statement", NULL);
}

static int prepare_statements(PGconn *sql, const char *schema)
{
	struct buf save = BUF_INIT, load = BUF_INIT, dead = BUF_INIT;
	buf_printf(&save,
	           "INSERT INTO %s.checkpoint AS c (slot_name, commit_lsn, event_index, confirmed_lsn,"
	           " published, updated_at) VALUES ($1, $2::pg_lsn, $3::int, $4::pg_lsn, $5::bigint, now())"
	           " ON CONFLICT (slot_name) DO UPDATE SET commit_lsn = excluded.commit_lsn,"
	           " event_index = excluded.event_index, confirmed_lsn = excluded.confirmed_lsn,"
	           " published = excluded.published, updated_at = excluded.updated_at",
	           schema);
	buf_printf(&load,
	           "SELECT commit_lsn::text, event_index, confirmed_lsn::text, published"
	           " FROM %s.checkpoint WHERE slot_name = $1",
	           schema);
	/* A replay after a crash meets the same event again: record it once. */
	buf_printf(
	        &dead,
	        "INSERT INTO %s.dead_letter (slot_name, event_id, source, topic, commit_lsn, reason, payload,"
	        " properties) SELECT $1, $2, $3, $4, $5::pg_lsn, $6, $7::bytea, $8::jsonb"
	        " WHERE NOT EXISTS (SELECT 1 FROM %s.dead_letter"
	        " WHERE slot_name = $1 AND commit_lsn = $5::pg_lsn AND event_id = $2)",
	        schema, schema);
	int status = prepare(sql, SAVE_STATEMENT, &save, 5);
	if (status == PG_OK)
		status = prepare(sql, LOAD_STATEMENT, &load, 1);
	if (status == PG_OK)
		status = prepare(sql, DEAD_LETTER_STATEMENT, &dead, 8);
	buf_finish(&save);
	buf_finish(&load);
	buf_finish(&dead);
	return status;
}

int bookkeeping_prepare(PGconn *sql, const struct config *cfg)
{
	/* The checkpoint must be durable on this server before the slot is confirmed past
	 * it, whatever the database's default; waiting for a synchronous standby is not
	 * needed for that. */
	int status = pg_exec(sql, "SET synchronous_commit = local", "cannot set synchronous_commit");
	const char *name = cfg->delivery.bookkeeping_schema;
	char *schema = PQescapeIdentifier(sql, name, strlen(name));
	if (status == PG_OK)
		status = prepare_statements(sql, schema);
	PQfreemem(schema);
	return status;
}

static int parse_row(const PGresult *res, struct checkpoint_row *row)
{
	if (lsn_parse(PQgetvalue(res, 0, 0), &row->pos.acked.commit_lsn) < 0 ||
	    lsn_parse(PQgetvalue(res, 0, 2), &row->pos.confirmed_lsn) < 0) {
		log_error("the checkpoint row holds an invalid LSN");
		return PG_FATAL;
	}
	row->pos.acked.index = (int32_t)strtol(PQgetvalue(res, 0, 1), NULL, 10);
	row->published = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
	return PG_OK;
}

static void log_loaded(const struct checkpoint_row *row, enum log_level level)
{
	char commit[LSN_BUFLEN], confirmed[LSN_BUFLEN], index[16];
	snprintf(index, sizeof index, "%" PRId32, row->pos.acked.index);
	log_write(level, "checkpoint loaded", "commit_lsn", lsn_format(row->pos.acked.commit_lsn, commit),
	          LOG_NUMBER("event_index"), index, "confirmed_lsn",
	          lsn_format(row->pos.confirmed_lsn, confirmed), (const char *)NULL);
}

int bookkeeping_load_checkpoint(PGconn *sql, const char *slot, struct checkpoint_row *row,
                                enum log_level level)
{
	memset(row, 0, sizeof *row);
	row->pos.acked.index = -1;

	const char *params[] = { slot };
	PGresult *res;
	int status = pg_result(sql, PQsendQueryPrepared(sql, LOAD_STATEMENT, 1, params, NULL, NULL, 0),
	                       PGRES_TUPLES_OK, "cannot read the checkpoint", &res);
	if (status != PG_OK)
		return status;
	if (PQntuples(res) > 0)
		status = parse_row(res, row);
	if (PQntuples(res) > 0 && status == PG_OK)
		log_loaded(row, level);
	PQclear(res);
	return status;
}

int bookkeeping_save_checkpoint(PGconn *sql, const char *slot, const struct checkpoint_row *row)
{
	char commit[LSN_BUFLEN], confirmed[LSN_BUFLEN], index[16], published[24];
	snprintf(index, sizeof index, "%" PRId32, row->pos.acked.index);
	snprintf(published, sizeof published, "%" PRIu64, row->published);
	const char *params[] = { slot, lsn_format(row->pos.acked.commit_lsn, commit), index,
		                 lsn_format(row->pos.confirmed_lsn, confirmed), published };
	return pg_result(sql, PQsendQueryPrepared(sql, SAVE_STATEMENT, 5, params, NULL, NULL, 0),
	                 PGRES_COMMAND_OK, "cannot write the checkpoint", NULL);
}

/* ---- cleanup: delete (doc/design.md §22.3) ---- */

static int delete_rows(PGconn *sql, struct cleanup_statement st, uint64_t *deleted)
{
	PGresult *res;
	int status =
	        pg_result(sql, PQsendQueryParams(sql, st.sql, st.nparams, NULL, st.params, NULL, NULL, 0),
	                  PGRES_COMMAND_OK, "cannot delete acknowledged rows (cleanup: delete)", &res);
	if (status == PG_OK) {
		*deleted += strtoull(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	}
	return status;
}

/* A failed statement leaves the transaction open: end it, if the connection is still up,
 * so that it holds no lock while the caller decides what becomes of the connection. */
static void abandon_transaction(PGconn *sql)
{
	if (PQstatus(sql) == CONNECTION_OK && PQtransactionStatus(sql) != PQTRANS_IDLE)
		PQclear(pg_await(sql, PQsendQuery(sql, "ROLLBACK"), "cannot roll back the checkpoint"));
}

static void log_deleted(uint64_t deleted, size_t keys)
{
	char rows[24], acknowledged[24];
	snprintf(rows, sizeof rows, "%" PRIu64, deleted);
	snprintf(acknowledged, sizeof acknowledged, "%zu", keys);
	log_debug("acknowledged rows deleted with the checkpoint", LOG_NUMBER("rows"), rows,
	          LOG_NUMBER("keys"), acknowledged);
}

int bookkeeping_save_checkpoint_and_cleanup(PGconn *sql, const char *slot, const struct checkpoint_row *row,
                                            struct cleanup *c)
{
	size_t n = cleanup_build(c, row->pos.acked);
	if (!n)
		return bookkeeping_save_checkpoint(sql, slot, row);
	/* One transaction: the rows go exactly when the checkpoint says their events are done. */
	int status = pg_exec(sql, "BEGIN", "cannot begin the checkpoint's transaction");
	if (status == PG_OK)
		status = bookkeeping_save_checkpoint(sql, slot, row);
	uint64_t deleted = 0;
	size_t keys = 0;
	for (size_t i = 0; i < n && status == PG_OK; i++) {
		keys += cleanup_statement(c, i).rows;
		status = delete_rows(sql, cleanup_statement(c, i), &deleted);
	}
	if (status == PG_OK)
		status = pg_exec(sql, "COMMIT", "cannot commit the checkpoint");
	if (status != PG_OK) {
		abandon_transaction(sql);
		return status; /* the keys stay for the next checkpoint */
	}
	cleanup_drop(c, row->pos.acked);
	log_deleted(deleted, keys);
	return PG_OK;
}

/* ---- dead-letter retention (doc/design.md §22.3) ---- */

static int expire_batch(PGconn *sql, const struct config *cfg, const char *schema, uint64_t *deleted)
{
	char retention[24], limit[24];
	snprintf(retention, sizeof retention, "%" PRIu64, cfg->delivery.dead_letter_retention_ms);
	snprintf(limit, sizeof limit, "%d", DEAD_LETTER_BATCH);
	struct buf q = BUF_INIT;
	/* By id, LIMIT in a subquery: DELETE has no LIMIT of its own. */
	buf_printf(&q,
	           "DELETE FROM %s.dead_letter WHERE id IN (SELECT id FROM %s.dead_letter"
	           " WHERE slot_name = $1 AND created_at < now() - $2::bigint * interval '1 millisecond'"
	           " LIMIT $3::int)",
	           schema, schema);
	const char *params[] = { cfg->source.slot, retention, limit };
	PGresult *res;
	int status = pg_result(sql, PQsendQueryParams(sql, q.data, 3, NULL, params, NULL, NULL, 0),
	                       PGRES_COMMAND_OK, "cannot delete old dead letters", &res);
	buf_finish(&q);
	*deleted = 0;
	if (status == PG_OK) {
		*deleted = strtoull(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	}
	return status;
}

int bookkeeping_expire_dead_letters(PGconn *sql, const struct config *cfg, int batches, uint64_t *deleted,
                                    bool *more)
{
	const char *name = cfg->delivery.bookkeeping_schema;
	char *schema = PQescapeIdentifier(sql, name, strlen(name));
	int status = PG_OK;
	uint64_t batch = DEAD_LETTER_BATCH;
	*deleted = 0;
	/* Each batch its own transaction: short, and what is done stays done. */
	for (int i = 0; i < batches && batch == DEAD_LETTER_BATCH && status == PG_OK; i++) {
		status = expire_batch(sql, cfg, schema, &batch);
		*deleted += batch;
	}
	*more = status == PG_OK && batch == DEAD_LETTER_BATCH;
	PQfreemem(schema);
	return status;
}

static void append_json_field(struct buf *out, const char *name, const char *value, size_t len)
{
	buf_putc(out, out->len > 1 ? ',' : '{');
	json_append_string(out, name, strlen(name));
	buf_putc(out, ':');
	json_append_string(out, value, len);
}

/* Bytes as hex digits: correlation data is binary, which a JSON string cannot carry (jsonb
 * refuses a NUL byte, and bytes that are not UTF-8 would be replaced). */
static void append_hex_field(struct buf *out, const char *name, const char *value, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	buf_putc(out, out->len > 1 ? ',' : '{');
	json_append_string(out, name, strlen(name));
	buf_puts(out, ":\"");
	for (size_t i = 0; i < len; i++) {
		buf_putc(out, digits[(unsigned char)value[i] >> 4]);
		buf_putc(out, digits[(unsigned char)value[i] & 15]);
	}
	buf_putc(out, '"');
}

/* What the message would have carried besides topic and payload, as one JSON object. */
static void describe_properties(const struct event *ev, struct buf *out)
{
	char number[24];
	buf_reset(out);
	buf_putc(out, '{');
	snprintf(number, sizeof number, "%d", ev->qos);
	buf_printf(out, "\"qos\":%s,\"retain\":%s", number, ev->retain ? "true" : "false");
	if (ev->content_type)
		append_json_field(out, "content_type", ev->content_type, strlen(ev->content_type));
	if (ev->origin)
		append_json_field(out, "origin", ev->origin, strlen(ev->origin));
	if (ev->op)
		append_json_field(out, "op", ev->op, strlen(ev->op));
	if (ev->message_expiry_s)
		buf_printf(out, ",\"message_expiry\":%u", (unsigned)ev->message_expiry_s);
	if (ev->has_response_topic)
		append_json_field(out, "response_topic", ev->response_topic.data, ev->response_topic.len);
	if (ev->has_correlation_data)
		append_hex_field(out, "correlation_data_hex", ev->correlation_data.data,
		                 ev->correlation_data.len);
	size_t cursor = 0;
	const char *property, *value;
	while (event_next_property(ev, &cursor, &property, &value)) {
		char name[300];
		snprintf(name, sizeof name, "user:%s", property);
		append_json_field(out, name, value, strlen(value));
	}
	buf_putc(out, '}');
}

int bookkeeping_dead_letter(PGconn *sql, const char *slot, const struct event *ev, const char *reason)
{
	struct buf properties = BUF_INIT;
	char lsn[LSN_BUFLEN];
	describe_properties(ev, &properties);
	const char *params[] = { slot,
		                 ev->event_id.len ? ev->event_id.data : NULL,
		                 ev->source,
		                 ev->topic.len ? ev->topic.data : NULL,
		                 lsn_format(ev->commit_lsn, lsn),
		                 reason,
		                 ev->payload.data ? ev->payload.data : "",
		                 properties.data };
	/* The payload goes as binary: it may hold any bytes. */
	int lengths[8] = { 0, 0, 0, 0, 0, 0, (int)ev->payload.len, 0 };
	int formats[8] = { 0, 0, 0, 0, 0, 0, 1, 0 };
	int status = pg_result(
	        sql, PQsendQueryPrepared(sql, DEAD_LETTER_STATEMENT, 8, params, lengths, formats, 0),
	        PGRES_COMMAND_OK, "cannot write to the dead_letter table", NULL);
	buf_finish(&properties);
	return status;
}

static void log_event(enum log_level level, const char *msg, const struct event *ev, const char *why)
{
	char lsn[LSN_BUFLEN], index[16];
	snprintf(index, sizeof index, "%" PRId32, ev->index);
	log_write(level, msg, "reason", why, "event_id", ev->event_id.len ? ev->event_id.data : "", "source",
	          ev->source ? ev->source : "", "commit_lsn", lsn_format(ev->commit_lsn, lsn),
	          LOG_NUMBER("event_index"), index, (const char *)NULL);
}

int bookkeeping_reject(PGconn *sql, const struct config *cfg, const struct event *ev, const char *why)
{
	if (cfg->delivery.on_reject == REJECT_STOP) {
		log_event(LOG_ERROR, "event cannot be published; stopping (delivery.on_reject: stop)", ev,
		          why);
		return PG_FATAL;
	}
	int status = sql ? bookkeeping_dead_letter(sql, cfg->source.slot, ev, why) : PG_RETRY;
	if (status == PG_REFUSED) {
		/* A privilege the table lacks, which no retry grants (doc/design.md §7). */
		pg_report_refusal(LOG_ERROR, "event cannot be dead-lettered; stopping", "event_id",
		                  ev->event_id.len ? ev->event_id.data : "");
		status = PG_FATAL;
	} else if (status == PG_FATAL) {
		/* The table refuses the row (a constraint): retrying cannot help. */
		log_event(LOG_ERROR, "event cannot be dead-lettered; stopping", ev, why);
	} else if (status == PG_OK) {
		log_event(LOG_WARN, "event dead-lettered", ev, why);
	}
	return status;
}
