#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "pgrepl.h"

#define SAVE_STATEMENT "outbox_relay_checkpoint_save"
#define LOAD_STATEMENT "outbox_relay_checkpoint_load"
#define DEAD_LETTER_STATEMENT "outbox_relay_dead_letter"

static char *quoted_schema(PGconn *sql, const struct config *cfg)
{
	const char *s = cfg->delivery.bookkeeping_schema;
	return PQescapeIdentifier(sql, s, strlen(s));
}

/* CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists:
 * a least-privileged role with a schema made for it must not be asked for that. */
static int schema_exists(PGconn *sql, const struct config *cfg, bool *exists)
{
	const char *params[] = { cfg->delivery.bookkeeping_schema };
	PGresult *res;
	int status =
	        pg_result(sql,
	                  PQsendQueryParams(sql, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
	                                    1, NULL, params, NULL, NULL, 0),
	                  PGRES_TUPLES_OK, "cannot look up the bookkeeping schema", &res);
	if (status == PG_OK) {
		*exists = PQntuples(res) > 0;
		PQclear(res);
	}
	return status;
}

static int create_tables(PGconn *sql, const struct config *cfg, const char *schema)
{
	bool exists = false;
	int status = schema_exists(sql, cfg, &exists);
	if (status != PG_OK)
		return status;
	struct buf q = BUF_INIT;
	if (!exists)
		buf_printf(&q, "CREATE SCHEMA %s;", schema);
	buf_printf(
	        &q,
	        "CREATE TABLE IF NOT EXISTS %s.checkpoint ("
	        " slot_name text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, event_index int NOT NULL,"
	        " confirmed_lsn pg_lsn NOT NULL, published bigint NOT NULL, updated_at timestamptz NOT NULL);"
	        "CREATE TABLE IF NOT EXISTS %s.dead_letter ("
	        " id bigserial PRIMARY KEY, slot_name text, event_id text, source text, topic text,"
	        " commit_lsn pg_lsn, reason text, payload bytea, properties jsonb,"
	        " created_at timestamptz NOT NULL DEFAULT now())",
	        schema, schema);
	status = pg_exec(sql, q.data, "cannot create the bookkeeping tables");
	buf_finish(&q);
	return status;
}

static int check_tables(PGconn *sql, const char *schema)
{
	struct buf q = BUF_INIT;
	buf_printf(&q, "SELECT 1 FROM %s.checkpoint LIMIT 0", schema);
	int status = pg_exec(
	        sql, q.data,
	        "the bookkeeping table is missing or unreadable (create_bookkeeping is false; create it"
	        " with the SQL in config/ or set create_bookkeeping: true)");
	buf_finish(&q);
	return status;
}

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

int checkpoint_prepare(PGconn *sql, const struct config *cfg)
{
	/* The checkpoint must be durable on this server before the slot is confirmed past
	 * it, whatever the database's default; waiting for a synchronous standby is not
	 * needed for that. */
	int status = pg_exec(sql, "SET synchronous_commit = local", "cannot set synchronous_commit");
	char *schema = quoted_schema(sql, cfg);
	if (status == PG_OK)
		status = cfg->delivery.create_bookkeeping ? create_tables(sql, cfg, schema)
		                                          : check_tables(sql, schema);
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

int checkpoint_load(PGconn *sql, const char *slot, struct checkpoint_row *row, bool *found)
{
	memset(row, 0, sizeof *row);
	row->pos.acked.index = -1;
	*found = false;

	const char *params[] = { slot };
	PGresult *res;
	int status = pg_result(sql, PQsendQueryPrepared(sql, LOAD_STATEMENT, 1, params, NULL, NULL, 0),
	                       PGRES_TUPLES_OK, "cannot read the checkpoint", &res);
	if (status != PG_OK)
		return status;
	if (PQntuples(res) > 0) {
		*found = true;
		status = parse_row(res, row);
	}
	PQclear(res);
	return status;
}

int checkpoint_save(PGconn *sql, const char *slot, const struct checkpoint_row *row)
{
	char commit[LSN_BUFLEN], confirmed[LSN_BUFLEN], index[16], published[24];
	snprintf(index, sizeof index, "%" PRId32, row->pos.acked.index);
	snprintf(published, sizeof published, "%" PRIu64, row->published);
	const char *params[] = { slot, lsn_format(row->pos.acked.commit_lsn, commit), index,
		                 lsn_format(row->pos.confirmed_lsn, confirmed), published };
	return pg_result(sql, PQsendQueryPrepared(sql, SAVE_STATEMENT, 5, params, NULL, NULL, 0),
	                 PGRES_COMMAND_OK, "cannot write the checkpoint", NULL);
}

static void append_json_field(struct buf *out, const char *name, const char *value, size_t len)
{
	buf_putc(out, out->len > 1 ? ',' : '{');
	json_append_string(out, name, strlen(name));
	buf_putc(out, ':');
	json_append_string(out, value, len);
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
	if (ev->message_expiry_s)
		buf_printf(out, ",\"message_expiry\":%u", (unsigned)ev->message_expiry_s);
	if (ev->has_response_topic)
		append_json_field(out, "response_topic", ev->response_topic.data, ev->response_topic.len);
	if (ev->has_correlation_data)
		append_json_field(out, "correlation_data", ev->correlation_data.data,
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

int checkpoint_dead_letter(PGconn *sql, const char *slot, const struct event *ev, const char *reason)
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
