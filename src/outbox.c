#include "outbox.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "bytea.h"
#include "cleanup.h"
#include "json.h"
#include "template.h"
#include "typemap.h"
#include "util.h"

#define TYPE_BYTEA 17
#define TYPE_JSON 114
#define TYPE_JSONB 3802
#define RESERVED_PREFIX "outbox-relay."

/* Where a template field takes its value from. */
enum field_source {
	FIELD_COLUMN,
	FIELD_SCHEMA,
	FIELD_TABLE,
};

struct field_binding {
	enum field_source source;
	int column; /* FIELD_COLUMN: position in the relation */
};

/* doc/design.md §5 payload: a column's value, the whole row as JSON, or the row with metadata. */
enum payload_mode {
	PAYLOAD_COLUMN,
	PAYLOAD_ROW,
	PAYLOAD_ENVELOPE,
};

struct outbox_route {
	const struct route_config *cfg;
	const struct typemap *types; /* resolves domains to their base types; NULL: none known */
	enum payload_mode payload_mode;
	char *source; /* "schema.table" */
	struct template *topic;
	size_t nfields;
	struct template_value *values; /* reused per event */
	/* Binding to the relation currently describing the table (by OID and generation). */
	bool bound;
	uint32_t bound_oid;
	uint32_t bound_generation;
	struct field_binding *fields;
	int payload_column;
	int event_id_column;         /* -1: "<commit-lsn>:<index>" */
	int response_topic_column;   /* -1: none */
	int correlation_data_column; /* -1: none */
	int *property_columns;       /* one per configured user property */
	const char *content_type;    /* configured, or implied by a JSON payload */
	char bind_error[200];        /* non-empty: the relation lacks a configured column */
	bool update_warned;
	/* changes holds update or delete: every event carries op, an envelope op and old_key
	 * (doc/design.md §5). */
	bool carries_op;
	struct pgo_value *merged; /* outbox_update_row's copy of a row, nmerged values */
	int nmerged;
	struct pgo_tuple merged_row;
	struct buf old_topic, new_topic; /* outbox_update_moves's */
};

struct outbox {
	struct outbox_route *routes;
	size_t nroutes;
};

/* A message has no columns: its topic can only use the prefix. */
static int check_message_fields(const struct outbox_route *r, const struct config *cfg, size_t i, FILE *errs)
{
	for (size_t f = 0; f < r->nfields; f++) {
		if (strcmp(template_field(r->topic, f), "prefix") == 0)
			continue;
		fprintf(errs,
		        "%s:%d:%d: routes[%zu].topic: a message route can use only {prefix}, not {%s}\n",
		        cfg->path, r->cfg->line, r->cfg->column, i, template_field(r->topic, f));
		return -1;
	}
	return 0;
}

static int route_compile(struct outbox_route *r, const struct config *cfg, size_t i, FILE *errs)
{
	const struct route_config *rc = &cfg->routes[i];
	char err[200];

	r->cfg = rc;
	r->content_type = rc->content_type;
	r->carries_op = rc->table && (rc->changes & (ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE));
	r->payload_mode = PAYLOAD_COLUMN;
	if (rc->payload_column && strcmp(rc->payload_column, "row") == 0)
		r->payload_mode = PAYLOAD_ROW;
	else if (rc->payload_column && strcmp(rc->payload_column, "envelope") == 0)
		r->payload_mode = PAYLOAD_ENVELOPE;
	if (rc->table) {
		size_t len = strlen(rc->schema) + strlen(rc->table) + 2;
		r->source = xmalloc(len);
		snprintf(r->source, len, "%s.%s", rc->schema, rc->table);
	}
	r->topic = template_parse(rc->topic, err, sizeof err);
	if (!r->topic) {
		fprintf(errs, "%s:%d:%d: routes[%zu].topic: %s\n", cfg->path, rc->line, rc->column, i, err);
		return -1;
	}
	r->nfields = template_nfields(r->topic);
	r->values = xcalloc(r->nfields, sizeof *r->values);
	r->fields = xcalloc(r->nfields, sizeof *r->fields);
	r->property_columns = xcalloc(rc->nproperties ? rc->nproperties : 1, sizeof *r->property_columns);
	return rc->message_prefix ? check_message_fields(r, cfg, i, errs) : 0;
}

static void route_finish(struct outbox_route *r)
{
	free(r->source);
	template_free(r->topic);
	free(r->values);
	free(r->fields);
	free(r->property_columns);
	free(r->merged);
	buf_finish(&r->old_topic);
	buf_finish(&r->new_topic);
}

struct outbox *outbox_new(const struct config *cfg, FILE *errs)
{
	struct outbox *o = xcalloc(1, sizeof *o);
	int failed = 0;

	o->routes = xcalloc(cfg->nroutes, sizeof *o->routes);
	o->nroutes = cfg->nroutes;
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (route_compile(&o->routes[i], cfg, i, errs) < 0)
			failed = 1;
	if (failed) {
		outbox_free(o);
		return NULL;
	}
	return o;
}

void outbox_use_types(struct outbox *o, const struct typemap *types)
{
	for (size_t i = 0; i < o->nroutes; i++) {
		o->routes[i].types = types;
		o->routes[i].bound = false; /* the content type may depend on them */
	}
}

void outbox_free(struct outbox *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->nroutes; i++)
		route_finish(&o->routes[i]);
	free(o->routes);
	free(o);
}

static int column_index(const struct pgo_relation *rel, const char *name)
{
	for (int i = 0; i < rel->ncolumns; i++)
		if (strcmp(rel->columns[i].name, name) == 0)
			return i;
	return -1;
}

/* Resolves one configured column, recording the first one the relation lacks. */
static int bind_column(struct outbox_route *r, const struct pgo_relation *rel, const char *name,
                       const char *key)
{
	int col = column_index(rel, name);
	if (col < 0 && !r->bind_error[0])
		snprintf(r->bind_error, sizeof r->bind_error, "%s column \"%s\" does not exist in %s", key,
		         name, r->source);
	return col;
}

static int bind_optional(struct outbox_route *r, const struct pgo_relation *rel, const char *name,
                         const char *key)
{
	return name ? bind_column(r, rel, name, key) : -1;
}

/* The type a column's values are written as: a domain's base type. */
static uint32_t column_type(const struct outbox_route *r, const struct pgo_relation *rel, int column)
{
	return typemap_resolve(r->types, rel->columns[column].type_oid);
}

static bool payload_is_json(const struct outbox_route *r, const struct pgo_relation *rel)
{
	if (r->payload_mode != PAYLOAD_COLUMN)
		return true;
	if (r->payload_column < 0)
		return false;
	uint32_t type = column_type(r, rel, r->payload_column);
	return type == TYPE_JSON || type == TYPE_JSONB;
}

static void bind_field(struct outbox_route *r, const struct pgo_relation *rel, size_t i)
{
	const char *name = template_field(r->topic, i);
	if (strcmp(name, "schema") == 0) {
		r->fields[i].source = FIELD_SCHEMA;
	} else if (strcmp(name, "table") == 0) {
		r->fields[i].source = FIELD_TABLE;
	} else {
		r->fields[i].source = FIELD_COLUMN;
		r->fields[i].column = bind_column(r, rel, name, "topic");
	}
}

static void route_bind(struct outbox_route *r, const struct pgo_relation *rel)
{
	r->bind_error[0] = '\0';
	for (size_t i = 0; i < r->nfields; i++)
		bind_field(r, rel, i);
	r->payload_column = -1;
	if (r->payload_mode == PAYLOAD_COLUMN)
		r->payload_column = bind_column(r, rel, r->cfg->payload_column, "payload");
	r->event_id_column = bind_optional(r, rel, r->cfg->event_id_column, "event_id");
	r->response_topic_column = bind_optional(r, rel, r->cfg->response_topic_column, "response_topic");
	r->correlation_data_column =
	        bind_optional(r, rel, r->cfg->correlation_data_column, "correlation_data");
	for (size_t i = 0; i < r->cfg->nproperties; i++)
		r->property_columns[i] = bind_column(r, rel, r->cfg->properties[i].column, "properties");
	r->content_type = r->cfg->content_type;
	if (!r->content_type && payload_is_json(r, rel))
		r->content_type = "application/json";
	r->bound = true;
	r->bound_oid = rel->oid;
	r->bound_generation = rel->generation;
}

static struct outbox_route *route_for(struct outbox *o, const struct pgo_relation *rel)
{
	for (size_t i = 0; i < o->nroutes; i++) {
		struct outbox_route *r = &o->routes[i];
		if (r->bound && r->bound_oid == rel->oid && r->bound_generation == rel->generation)
			return r;
	}
	for (size_t i = 0; i < o->nroutes; i++) {
		struct outbox_route *r = &o->routes[i];
		if (r->cfg->table && strcmp(r->cfg->table, rel->name) == 0 &&
		    strcmp(r->cfg->schema, rel->schema) == 0) {
			route_bind(r, rel);
			return r;
		}
	}
	return NULL;
}

struct outbox_route *outbox_route_table(struct outbox *o, const struct pgo_relation *rel)
{
	return route_for(o, rel);
}

struct outbox_route *outbox_route_message(struct outbox *o, const char *prefix)
{
	if (strncmp(prefix, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0)
		return NULL;
	for (size_t i = 0; i < o->nroutes; i++) {
		struct outbox_route *r = &o->routes[i];
		if (r->cfg->message_prefix && fnmatch(r->cfg->message_prefix, prefix, 0) == 0)
			return r;
	}
	return NULL;
}

/* What every event of a route shares, whatever its kind. */
static void apply_route(const struct outbox_route *r, struct event *ev)
{
	ev->qos = r->cfg->qos;
	ev->retain = r->cfg->retain;
	ev->content_type = r->content_type;
	/* MQTT counts expiry in whole seconds; a configured sub-second expiry still expires. */
	ev->message_expiry_s = (r->cfg->message_expiry_ms + 999) / 1000;
	buf_reset(&ev->cleanup_key); /* reused buffers: only outbox_build sets one */
	ev->op = NULL;               /* the builders of rows set it */
}

/* "<commit-lsn>:<index>", from the LSN text formatted once per transaction. */
static void default_event_id(struct event *ev)
{
	buf_reset(&ev->event_id);
	buf_printf(&ev->event_id, "%s:%d", ev->lsn_text, ev->index);
}

int outbox_build_message(struct outbox_route *r, const char *prefix, const uint8_t *content, uint32_t len,
                         struct event *ev, char *why, size_t whylen)
{
	buf_reset(&ev->message_source);
	buf_printf(&ev->message_source, "message:%s", prefix);
	ev->source = ev->message_source.data;
	apply_route(r, ev);
	ev->has_response_topic = ev->has_correlation_data = false;
	event_clear_properties(ev);
	for (size_t i = 0; i < r->nfields; i++)
		r->values[i] = (struct template_value){ prefix, strlen(prefix), false };
	if (template_expand(r->topic, r->values, &ev->topic, why, whylen) < 0)
		return -1;
	default_event_id(ev);
	buf_reset(&ev->payload);
	buf_append(&ev->payload, content, len);
	return 0;
}

static bool is_template_metadata(const char *field)
{
	return strcmp(field, "schema") == 0 || strcmp(field, "table") == 0;
}

void outbox_route_columns(const struct outbox *o, size_t i, outbox_column_fn fn, void *ctx)
{
	const struct outbox_route *r = &o->routes[i];
	const struct route_config *rc = r->cfg;
	char key[96];
	if (!rc->table)
		return;
	for (size_t f = 0; f < r->nfields; f++)
		if (!is_template_metadata(template_field(r->topic, f)))
			fn(ctx, "topic", template_field(r->topic, f));
	if (r->payload_mode == PAYLOAD_COLUMN)
		fn(ctx, "payload", rc->payload_column);
	if (rc->event_id_column)
		fn(ctx, "event_id", rc->event_id_column);
	for (size_t p = 0; p < rc->nproperties; p++) {
		snprintf(key, sizeof key, "properties.%s", rc->properties[p].name);
		fn(ctx, key, rc->properties[p].column);
	}
	if (rc->response_topic_column)
		fn(ctx, "response_topic", rc->response_topic_column);
	if (rc->correlation_data_column)
		fn(ctx, "correlation_data", rc->correlation_data_column);
}

bool outbox_update_is_new(struct outbox *o, const struct pgo_relation *rel)
{
	struct outbox_route *r = route_for(o, rel);
	if (!r || r->update_warned)
		return false;
	r->update_warned = true;
	return true;
}

static void fill_values(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	for (size_t i = 0; i < r->nfields; i++) {
		struct template_value *v = &r->values[i];
		const char *text = NULL;
		if (r->fields[i].source == FIELD_SCHEMA)
			text = rel->schema;
		else if (r->fields[i].source == FIELD_TABLE)
			text = rel->name;
		if (text) {
			*v = (struct template_value){ text, strlen(text), false };
			continue;
		}
		const struct pgo_value *cell = &row->values[r->fields[i].column];
		*v = (struct template_value){ cell->data, cell->len, cell->kind != PGO_VALUE_TEXT };
	}
}

/* bytea arrives in its hex text form "\x0a1b..."; the payload is the raw bytes. */
static int decode_bytea(struct buf *out, const char *text, size_t len)
{
	if (!bytea_is_hex(text, len))
		return -1;
	/* Sized once: a huge value must not be copied through every smaller capacity. */
	bytea_decode(text, len, (unsigned char *)buf_extend(out, bytea_length(len)));
	return 0;
}

/* A property column's value as bytes: bytea decoded, other types as their text. */
static bool column_bytes(const struct outbox_route *r, const struct pgo_relation *rel,
                         const struct pgo_tuple *row, int column, struct buf *out)
{
	buf_reset(out);
	if (column < 0 || row->values[column].kind != PGO_VALUE_TEXT)
		return false;
	const struct pgo_value *cell = &row->values[column];
	if (column_type(r, rel, column) != TYPE_BYTEA || decode_bytea(out, cell->data, cell->len) < 0)
		buf_append(out, cell->data, cell->len);
	return true;
}

/* User properties are UTF-8 strings: every column as its text (bytea in hex form). */
static void set_user_properties(const struct outbox_route *r, const struct pgo_tuple *row, struct event *ev)
{
	event_clear_properties(ev);
	for (size_t i = 0; i < r->cfg->nproperties; i++) {
		const struct pgo_value *cell = &row->values[r->property_columns[i]];
		if (cell->kind == PGO_VALUE_TEXT) /* NULL: the message simply has no such property */
			event_add_property(ev, r->cfg->properties[i].name, cell->data, cell->len);
	}
}

static void set_column_properties(const struct outbox_route *r, const struct pgo_relation *rel,
                                  const struct pgo_tuple *row, struct event *ev)
{
	ev->has_response_topic = column_bytes(r, rel, row, r->response_topic_column, &ev->response_topic);
	ev->has_correlation_data =
	        column_bytes(r, rel, row, r->correlation_data_column, &ev->correlation_data);
	set_user_properties(r, row, ev);
}

/* The columns of the replica identity (those rel flags) as a JSON object, from t. */
static void append_key(struct buf *out, const struct outbox_route *r, const struct pgo_relation *rel,
                       const struct pgo_tuple *t)
{
	bool first = true;
	buf_putc(out, '{');
	for (int c = 0; c < rel->ncolumns && c < t->ncolumns; c++) {
		if (!rel->columns[c].key)
			continue;
		if (!first)
			buf_putc(out, ',');
		first = false;
		json_append_string(out, rel->columns[c].name, strlen(rel->columns[c].name));
		buf_putc(out, ':');
		json_append_value(out, column_type(r, rel, c), &t->values[c]);
	}
	buf_putc(out, '}');
}

/* {"event_id", "source", "lsn", "commit_time", "row"}: the metadata MQTT 3.1.1 cannot
 * carry as properties. An event with an op also has "op" and "old_key" (key_row's key, or
 * null), and a deletion has "row" null. */
static void build_envelope(const struct outbox_route *r, const struct pgo_relation *rel,
                           const struct pgo_tuple *row, const struct pgo_tuple *key_row, struct event *ev)
{
	struct buf *out = &ev->payload;
	buf_puts(out, "{\"event_id\":");
	json_append_string(out, ev->event_id.data, ev->event_id.len);
	buf_puts(out, ",\"source\":");
	json_append_string(out, ev->source, strlen(ev->source));
	buf_puts(out, ",\"lsn\":");
	json_append_string(out, ev->lsn_text, strlen(ev->lsn_text));
	buf_puts(out, ",\"commit_time\":");
	json_append_string(out, ev->commit_time_text, strlen(ev->commit_time_text));
	if (ev->origin) {
		buf_puts(out, ",\"origin\":");
		json_append_string(out, ev->origin, strlen(ev->origin));
	}
	if (ev->op) {
		buf_puts(out, ",\"op\":");
		json_append_string(out, ev->op, strlen(ev->op));
		buf_puts(out, ",\"old_key\":");
		if (key_row)
			append_key(out, r, rel, key_row);
		else
			buf_puts(out, "null");
	}
	buf_puts(out, ",\"row\":");
	if (row)
		json_append_row(out, r->types, rel, row);
	else
		buf_puts(out, "null");
	buf_putc(out, '}');
}

/* key_row: where the envelope of an event with an op takes old_key from; NULL: none. */
static int build_payload(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *row,
                         const struct pgo_tuple *key_row, struct event *ev, char *why, size_t whylen)
{
	buf_reset(&ev->payload);
	if (r->payload_mode == PAYLOAD_ROW) {
		json_append_row(&ev->payload, r->types, rel, row);
		return 0;
	}
	if (r->payload_mode == PAYLOAD_ENVELOPE) {
		build_envelope(r, rel, row, key_row, ev);
		return 0;
	}
	const struct pgo_value *cell = &row->values[r->payload_column];
	if (cell->kind != PGO_VALUE_TEXT)
		return 0; /* NULL gives an empty payload */
	if (column_type(r, rel, r->payload_column) != TYPE_BYTEA) {
		buf_append(&ev->payload, cell->data, cell->len);
		return 0;
	}
	if (decode_bytea(&ev->payload, cell->data, cell->len) < 0) {
		snprintf(why, whylen, "payload column \"%s\" is not in bytea hex form",
		         r->cfg->payload_column);
		return -1;
	}
	return 0;
}

static int build_event_id(struct outbox_route *r, const struct pgo_tuple *row, struct event *ev, char *why,
                          size_t whylen)
{
	if (r->event_id_column < 0) {
		default_event_id(ev);
		return 0;
	}
	buf_reset(&ev->event_id);
	const struct pgo_value *cell = &row->values[r->event_id_column];
	if (cell->kind != PGO_VALUE_TEXT) {
		snprintf(why, whylen, "event_id column \"%s\" is NULL", r->cfg->event_id_column);
		return -1;
	}
	buf_append(&ev->event_id, cell->data, cell->len);
	return 0;
}

/* doc/design.md §22.3: the row goes once its event is acknowledged and checkpointed. A
 * dead-lettered event's row stays, so only an event that can be published gets a key. */
static void set_cleanup_key(const struct outbox_route *r, const struct pgo_relation *rel,
                            const struct pgo_tuple *row, struct event *ev)
{
	if (r->cfg->cleanup == CLEANUP_DELETE)
		cleanup_key_from_row(&ev->cleanup_key, rel, row);
}

int outbox_build(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *row,
                 struct event *ev, char *why, size_t whylen)
{
	ev->source = r->source;
	apply_route(r, ev);
	if (r->carries_op)
		ev->op = EVENT_OP_INSERT;
	buf_reset(&ev->topic);
	buf_reset(&ev->payload);
	buf_reset(&ev->event_id);
	if (r->bind_error[0]) {
		/* The dead letter still gets what can be had: the id and the payload (what
		 * they say about their own trouble is replaced by the binding's). */
		if (r->event_id_column >= 0 || !r->cfg->event_id_column)
			build_event_id(r, row, ev, why, whylen);
		if (r->payload_mode != PAYLOAD_COLUMN || r->payload_column >= 0)
			build_payload(r, rel, row, NULL, ev, why, whylen);
		snprintf(why, whylen, "%s", r->bind_error);
		return -1;
	}
	set_column_properties(r, rel, row, ev);
	if (ev->correlation_data.len > UINT16_MAX) {
		snprintf(why, whylen, "correlation_data is %zu bytes, more than MQTT's 65535",
		         ev->correlation_data.len);
		return -1;
	}
	/* Id and payload first: an event rejected for its topic is dead-lettered with them. */
	buf_reset(&ev->topic);
	if (build_event_id(r, row, ev, why, whylen) < 0 ||
	    build_payload(r, rel, row, NULL, ev, why, whylen) < 0)
		return -1;
	fill_values(r, rel, row);
	if (template_expand(r->topic, r->values, &ev->topic, why, whylen) < 0)
		return -1;
	set_cleanup_key(r, rel, row, ev);
	return 0;
}

/* ---- updates and deletes (doc/design.md §5) ---- */

bool outbox_route_publishes(const struct outbox_route *r, enum route_change change)
{
	return r->cfg->table && (r->cfg->changes & change);
}

/* Whether old carries column c: a column of the replica identity with a value. */
static bool carried(const struct pgo_relation *rel, const struct pgo_tuple *old, int c)
{
	return old && c < old->ncolumns && c < rel->ncolumns && rel->columns[c].key &&
	       old->values[c].kind != PGO_VALUE_UNCHANGED;
}

const struct pgo_tuple *outbox_update_row(struct outbox_route *r, const struct pgo_relation *rel,
                                          const struct pgo_tuple *old, const struct pgo_tuple *row)
{
	bool unchanged = false;
	for (int c = 0; c < row->ncolumns && !unchanged; c++)
		unchanged = row->values[c].kind == PGO_VALUE_UNCHANGED && carried(rel, old, c);
	if (!unchanged)
		return row;
	if (r->nmerged < row->ncolumns) {
		r->merged = xrealloc(r->merged, (size_t)row->ncolumns * sizeof *r->merged);
		r->nmerged = row->ncolumns;
	}
	for (int c = 0; c < row->ncolumns; c++) {
		bool take_old = row->values[c].kind == PGO_VALUE_UNCHANGED && carried(rel, old, c);
		r->merged[c] = take_old ? old->values[c] : row->values[c];
	}
	r->merged_row = (struct pgo_tuple){ row->ncolumns, r->merged };
	return &r->merged_row;
}

/* The first topic column outside the replica identity, which an old row carries only with
 * REPLICA IDENTITY FULL; or -1. */
static int topic_column_not_carried(const struct outbox_route *r, const struct pgo_relation *rel)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (r->fields[i].source == FIELD_COLUMN && !rel->columns[r->fields[i].column].key)
			return r->fields[i].column;
	return -1;
}

bool outbox_update_moves(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *old,
                         const struct pgo_tuple *row)
{
	char why[200];
	/* Without the old values of the topic's columns the old topic is unknown: a route that
	 * needs them is refused at start (catalog.c), unless the replica identity is FULL. */
	if (!old || r->bind_error[0] || topic_column_not_carried(r, rel) >= 0)
		return false;
	fill_values(r, rel, old);
	if (template_expand(r->topic, r->values, &r->old_topic, why, sizeof why) < 0)
		return false; /* nothing was published there */
	fill_values(r, rel, row);
	if (template_expand(r->topic, r->values, &r->new_topic, why, sizeof why) < 0)
		return true;
	return r->old_topic.len != r->new_topic.len ||
	       memcmp(r->old_topic.data, r->new_topic.data, r->new_topic.len) != 0;
}

/* Whether the route reads column c for a message other than the whole row. */
static bool reads_column(const struct outbox_route *r, int c)
{
	if (c == r->payload_column || c == r->response_topic_column || c == r->correlation_data_column)
		return true;
	for (size_t i = 0; i < r->nfields; i++)
		if (r->fields[i].source == FIELD_COLUMN && r->fields[i].column == c)
			return true;
	for (size_t i = 0; i < r->cfg->nproperties; i++)
		if (r->property_columns[i] == c)
			return true;
	return false;
}

/* The first column the event of an UPDATE needs and row does not carry, or -1. */
static int missing_unchanged(const struct outbox_route *r, const struct pgo_tuple *row)
{
	for (int c = 0; c < row->ncolumns; c++)
		if (row->values[c].kind == PGO_VALUE_UNCHANGED &&
		    (r->payload_mode != PAYLOAD_COLUMN || reads_column(r, c)))
			return c;
	return -1;
}

/* What the events of an UPDATE and a DELETE share: the route, op, the id (always
 * <commit-lsn>:<index>: the row's id column names its insert, doc/design.md §2.5) and
 * properties from t. Returns -1 with the reason in why. */
static int begin_change(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *t,
                        const char *op, struct event *ev, char *why, size_t whylen)
{
	ev->source = r->source;
	apply_route(r, ev);
	ev->op = op;
	buf_reset(&ev->topic);
	buf_reset(&ev->payload);
	default_event_id(ev);
	event_clear_properties(ev);
	ev->has_response_topic = ev->has_correlation_data = false;
	if (r->bind_error[0]) {
		snprintf(why, whylen, "%s", r->bind_error);
		return -1;
	}
	set_column_properties(r, rel, t, ev);
	if (ev->correlation_data.len > UINT16_MAX) {
		snprintf(why, whylen, "correlation_data is %zu bytes, more than MQTT's 65535",
		         ev->correlation_data.len);
		return -1;
	}
	return 0;
}

int outbox_build_update(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *old,
                        const struct pgo_tuple *row, struct event *ev, char *why, size_t whylen)
{
	int status = begin_change(r, rel, row, EVENT_OP_UPDATE, ev, why, whylen);
	/* The payload first: a dead letter keeps what can be had. */
	if ((r->payload_mode != PAYLOAD_COLUMN || r->payload_column >= 0) &&
	    build_payload(r, rel, row, old ? old : row, ev, why, whylen) < 0)
		return -1;
	if (status < 0)
		return -1;
	int missing = missing_unchanged(r, row);
	if (missing >= 0) {
		snprintf(why, whylen,
		         "the UPDATE does not carry column \"%s\", unchanged and stored out of line"
		         " (TOAST): %s needs REPLICA IDENTITY FULL for its value",
		         rel->columns[missing].name, r->source);
		return -1;
	}
	fill_values(r, rel, row);
	return template_expand(r->topic, r->values, &ev->topic, why, whylen);
}

int outbox_build_delete(struct outbox_route *r, const struct pgo_relation *rel, const struct pgo_tuple *old,
                        struct event *ev, char *why, size_t whylen)
{
	int status = begin_change(r, rel, old, EVENT_OP_DELETE, ev, why, whylen);
	if (r->cfg->retain) {
		ev->content_type = NULL; /* a zero-length retained message clears the topic */
	} else if (r->payload_mode == PAYLOAD_ENVELOPE) {
		build_envelope(r, rel, NULL, old, ev);
	} else {
		append_key(&ev->payload, r, rel, old);
		ev->content_type = "application/json";
	}
	if (status < 0)
		return -1;
	int column = topic_column_not_carried(r, rel);
	if (column >= 0) {
		snprintf(why, whylen,
		         "the old row does not carry topic column \"%s\": it is not in the replica"
		         " identity of %s (REPLICA IDENTITY FULL would carry it)",
		         rel->columns[column].name, r->source);
		return -1;
	}
	fill_values(r, rel, old);
	return template_expand(r->topic, r->values, &ev->topic, why, whylen);
}
