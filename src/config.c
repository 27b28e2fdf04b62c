/*
 * Configuration: libyaml's document tree walked against a table of keys.
 *
 * Every key is one row of config_keys[]: its dotted path, its type (how text becomes the
 * field, how two values compare, how the field is freed), where the field lives, its
 * default written as it would be in the file, its bounds, and one line of help. Sections
 * and nested mappings ("source.reconnect") exist only as prefixes of those paths, so
 * adding a key is adding a row. The routes sequence is a row too; each of its items is
 * walked against route_keys[].
 *
 * Errors are collected during the walk and written at the end in file order.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "config_brokers.h"
#include "config_env.h"
#include "config_loader.h"
#include "config_types.h"
#include "config_walk.h"
#include "util.h"

#define FILE_SIZE_MAX ((size_t)1024 * 1024)

/* Two duration keys where the first must not exceed the second. */
struct ordered_keys {
	const char *lower;
	const char *upper;
};

/* ---- Small helpers ---- */

/* ---- Key types ---- */

static void load_routes(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                        const char *shown);
static void release_routes(const struct key *k, void *base);
static void load_properties(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                            const char *shown);
static void release_properties(const struct key *k, void *base);

static const struct key_type routes_type = {
	.load = load_routes,
	.release = release_routes,
	.doc_name = "list",
};
static const struct key_type properties_type = {
	.load = load_properties,
	.release = release_properties,
	.doc_name = "map",
};

/* ---- The tables ---- */

static const struct enum_name protocol_names[] = {
	{ "mqttv5", BROKER_MQTT_V5 },
	{ "mqttv311", BROKER_MQTT_V311 },
	{ NULL, 0 },
};

static const struct enum_name reject_names[] = {
	{ "dead_letter", REJECT_DEAD_LETTER },
	{ "stop", REJECT_STOP },
	{ NULL, 0 },
};

static const struct enum_name log_format_names[] = {
	{ "logfmt", LOG_FORMAT_LOGFMT },
	{ "json", LOG_FORMAT_JSON },
	{ NULL, 0 },
};

static const struct enum_name log_level_names[] = {
	{ "error", LOG_ERROR }, { "warn", LOG_WARN }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG }, { NULL, 0 },
};

#define CFG(member) offsetof(struct config, member)
#define ROUTE(member) offsetof(struct route_config, member)

/* One row per key. Bounds: value for ints, milliseconds for durations, bytes for strings. */
static const struct key config_keys[] = {
	{
	        .path = "source.conninfo",
	        .type = &cfg_string_type,
	        .offset = CFG(source.conninfo),
	        .min = 0,
	        .max = NO_LIMIT,
	        .required = true,
	        .secret = true,
	        .conninfo = true,
	        .help = "libpq connection string or URI of the database",
	},
	{
	        .path = "source.password_file",
	        .type = &cfg_secret_file_type,
	        .offset = CFG(source.password),
	        .help = "File holding the PostgreSQL password",
	},
	{
	        .path = "source.slot",
	        .type = &cfg_identifier_type,
	        .offset = CFG(source.slot),
	        .fallback = "outbox_relay",
	        .help = "Logical replication slot the relay streams from",
	},
	{
	        .path = "source.publication",
	        .type = &cfg_identifier_type,
	        .offset = CFG(source.publication),
	        .fallback = "outbox_relay",
	        .help = "Publication that names the routed tables",
	},
	{
	        .path = "source.create_slot",
	        .type = &cfg_bool_type,
	        .offset = CFG(source.create_slot),
	        .fallback = "true",
	        .help = "Create the slot when it does not exist",
	},
	{
	        .path = "source.create_publication",
	        .type = &cfg_bool_type,
	        .offset = CFG(source.create_publication),
	        .fallback = "true",
	        .help = "Create the publication, and add the routed tables it lacks",
	},
	{
	        .path = "source.status_interval",
	        .type = &cfg_duration_type,
	        .offset = CFG(source.status_interval_ms),
	        .fallback = "10s",
	        .min = 100,
	        .max = MS_MAX,
	        .help = "Longest time between two standby status updates to the server",
	},
	{
	        .path = "source.heartbeat_interval",
	        .type = &cfg_duration_type,
	        .offset = CFG(source.heartbeat_interval_ms),
	        .fallback = "0s",
	        .min = 0,
	        .max = MS_MAX,
	        .help = "How often a logical message keeps an idle slot moving; 0s: never",
	},
	{
	        .path = "source.reconnect.min",
	        .type = &cfg_duration_type,
	        .offset = CFG(source.reconnect.min_ms),
	        .fallback = "100ms",
	        .min = 1,
	        .max = MS_MAX,
	        .help = "First delay before connecting to PostgreSQL again",
	},
	{
	        .path = "source.reconnect.max",
	        .type = &cfg_duration_type,
	        .offset = CFG(source.reconnect.max_ms),
	        .fallback = "30s",
	        .min = 1,
	        .max = MS_MAX,
	        .help = "Longest delay between two attempts to connect to PostgreSQL",
	},

	{
	        .path = "broker.host",
	        .type = &cfg_string_type,
	        .offset = CFG(broker.host),
	        .fallback = "127.0.0.1",
	        .min = 1,
	        .max = NO_LIMIT,
	        .help = "Host name or IP address of the broker",
	},
	{
	        .path = "broker.hosts",
	        .type = &cfg_hosts_type,
	        .offset = CFG(broker.hosts),
	        .help = "Brokers tried in turn, each host, host:port or [address]:port",
	},
	{
	        .path = "broker.port",
	        .type = &cfg_int_type,
	        .offset = CFG(broker.port),
	        .fallback = "1883",
	        .min = 1,
	        .max = 65535,
	        .help = "TCP port of the broker",
	},
	{
	        .path = "broker.protocol",
	        .type = &cfg_enum_type,
	        .offset = CFG(broker.protocol),
	        .fallback = "mqttv5",
	        .names = protocol_names,
	        .help = "MQTT version: mqttv5 or mqttv311",
	},
	{
	        .path = "broker.client_id",
	        .type = &cfg_string_type,
	        .offset = CFG(broker.client_id),
	        .fallback = "outbox-relay",
	        .min = 1,
	        .max = NO_LIMIT,
	        .help = "MQTT client identifier, unique on the broker",
	},
	{
	        .path = "broker.keepalive",
	        .type = &cfg_duration_type,
	        .offset = CFG(broker.keepalive_ms),
	        .fallback = "30s",
	        .min = SECONDS(5),
	        .max = SECONDS(65535),
	        .help = "MQTT keepalive interval",
	},
	{
	        .path = "broker.username",
	        .type = &cfg_string_type,
	        .offset = CFG(broker.username),
	        .min = 1,
	        .max = NO_LIMIT,
	        .help = "User name given to the broker",
	},
	{
	        .path = "broker.password_file",
	        .type = &cfg_secret_file_type,
	        .offset = CFG(broker.password),
	        .help = "File holding the broker password",
	},
	{
	        .path = "broker.tls.ca_file",
	        .type = &cfg_path_type,
	        .offset = CFG(broker.tls.ca_file),
	        .help = "Certificate authorities (PEM) that may sign the broker's certificate",
	},
	{
	        .path = "broker.tls.cert_file",
	        .type = &cfg_path_type,
	        .offset = CFG(broker.tls.cert_file),
	        .help = "Client certificate (PEM) for brokers that ask for one",
	},
	{
	        .path = "broker.tls.key_file",
	        .type = &cfg_path_type,
	        .offset = CFG(broker.tls.key_file),
	        .help = "Private key (PEM, not encrypted) of the client certificate",
	},
	{
	        .path = "broker.tls.verify_hostname",
	        .type = &cfg_bool_type,
	        .offset = CFG(broker.tls.verify_hostname),
	        .fallback = "true",
	        .help = "Check that the broker's certificate names the host connected to",
	},
	{
	        .path = "broker.max_inflight",
	        .type = &cfg_int_type,
	        .offset = CFG(broker.max_inflight),
	        .min = 1,
	        .max = 65535,
	        .help = "Most messages published and not yet acknowledged at once",
	},
	{
	        .path = "broker.session_expiry",
	        .type = &cfg_duration_type,
	        .offset = CFG(broker.session_expiry_ms),
	        .fallback = "1h",
	        .min = 0,
	        .max = SECONDS(UINT32_MAX / 1000),
	        .help = "How long the broker keeps the session after a disconnection; 0s: none",
	},
	{
	        .path = "broker.reconnect.min",
	        .type = &cfg_duration_type,
	        .offset = CFG(broker.reconnect.min_ms),
	        .fallback = "100ms",
	        .min = 1,
	        .max = MS_MAX,
	        .help = "First delay before connecting to the broker again",
	},
	{
	        .path = "broker.reconnect.max",
	        .type = &cfg_duration_type,
	        .offset = CFG(broker.reconnect.max_ms),
	        .fallback = "30s",
	        .min = 1,
	        .max = MS_MAX,
	        .help = "Longest delay between two attempts to connect to the broker",
	},

	{
	        .path = "routes",
	        .type = &routes_type,
	        .offset = CFG(routes),
	        .required = true,
	        .reloadable = true,
	        .help = "Which changes are published, and how: at least one route",
	},

	{
	        .path = "delivery.bookkeeping_schema",
	        .type = &cfg_identifier_type,
	        .offset = CFG(delivery.bookkeeping_schema),
	        .fallback = "outbox_relay",
	        .help = "Schema of the relay's checkpoint and dead_letter tables",
	},
	{
	        .path = "delivery.create_bookkeeping",
	        .type = &cfg_bool_type,
	        .offset = CFG(delivery.create_bookkeeping),
	        .fallback = "true",
	        .help = "Create the bookkeeping schema and tables when missing",
	},
	{
	        .path = "delivery.checkpoint_interval",
	        .type = &cfg_duration_type,
	        .offset = CFG(delivery.checkpoint_interval_ms),
	        .fallback = "200ms",
	        .min = 10,
	        .max = SECONDS(3600),
	        .help = "How often acknowledged progress is checkpointed",
	},
	{
	        .path = "delivery.drain_timeout",
	        .type = &cfg_duration_type,
	        .offset = CFG(delivery.drain_timeout_ms),
	        .fallback = "10s",
	        .min = 0,
	        .max = MS_MAX,
	        .help = "How long a stop waits for messages in flight to be acknowledged",
	},
	{
	        .path = "delivery.on_reject",
	        .type = &cfg_enum_type,
	        .offset = CFG(delivery.on_reject),
	        .fallback = "dead_letter",
	        .names = reject_names,
	        .help = "What to do with an event that can never be published",
	},

	{
	        .path = "log.level",
	        .type = &cfg_enum_type,
	        .offset = CFG(log.level),
	        .fallback = "info",
	        .names = log_level_names,
	        .reloadable = true,
	        .help = "Least severe records logged: error, warn, info or debug",
	},
	{
	        .path = "log.format",
	        .type = &cfg_enum_type,
	        .offset = CFG(log.format),
	        .fallback = "logfmt",
	        .names = log_format_names,
	        .help = "Log line format: logfmt or json",
	},
	{
	        .path = "log.stats_interval",
	        .type = &cfg_duration_type,
	        .offset = CFG(log.stats_interval_ms),
	        .fallback = "60s",
	        .min = 0,
	        .max = MS_MAX,
	        .reloadable = true,
	        .help = "How often a stats line is logged; 0s: never",
	},
};

/* The keys of a route, by name: code about one of them (check_route_kind) says which. */
enum route_key {
	ROUTE_KEY_TABLE,
	ROUTE_KEY_MESSAGE_PREFIX,
	ROUTE_KEY_TOPIC,
	ROUTE_KEY_PAYLOAD,
	ROUTE_KEY_EVENT_ID,
	ROUTE_KEY_QOS,
	ROUTE_KEY_RETAIN,
	ROUTE_KEY_CONTENT_TYPE,
	ROUTE_KEY_MESSAGE_EXPIRY,
	ROUTE_KEY_PROPERTIES,
	ROUTE_KEY_RESPONSE_TOPIC,
	ROUTE_KEY_CORRELATION_DATA,
	ROUTE_KEY_COUNT
};

/* Each row at its enum's index, so that neither can drift from the other; a row left out
 * is a hole with no path, which the unit tests find through config_key_doc.
 * Column names: PostgreSQL keeps at most 63 bytes, so a longer one can never match. */
static const struct key route_keys[] = {
	[ROUTE_KEY_TABLE] = {
		.path = "table",
		.type = &cfg_table_name_type,
		.offset = ROUTE(table),
		.help = "Routed table, as schema.table, or table in the schema public",
	},
	[ROUTE_KEY_MESSAGE_PREFIX] = {
		.path = "message_prefix",
		.type = &cfg_string_type,
		.offset = ROUTE(message_prefix),
		.min = 1,
		.max = NO_LIMIT,
		.help = "Pattern (fnmatch) on the prefix of transactional logical messages",
	},
	[ROUTE_KEY_TOPIC] = {
		.path = "topic",
		.type = &cfg_string_type,
		.offset = ROUTE(topic),
		.min = 1,
		.max = NO_LIMIT,
		.required = true,
		.help = "Topic template: {column}, {schema}, {table}, {prefix}",
	},
	[ROUTE_KEY_PAYLOAD] = {
		.path = "payload",
		.type = &cfg_string_type,
		.offset = ROUTE(payload_column),
		.min = 1,
		.max = PG_NAME_MAX,
		.help = "Message body: a column, row or envelope",
	},
	[ROUTE_KEY_EVENT_ID] = {
		.path = "event_id",
		.type = &cfg_string_type,
		.offset = ROUTE(event_id_column),
		.min = 1,
		.max = PG_NAME_MAX,
		.help = "Column holding the event id; unset: <commit-lsn>:<index>",
	},
	[ROUTE_KEY_QOS] = {
		.path = "qos",
		.type = &cfg_int_type,
		.offset = ROUTE(qos),
		.fallback = "1",
		.min = 0,
		.max = 2,
		.help = "MQTT QoS: 0, 1 or 2",
	},
	[ROUTE_KEY_RETAIN] = {
		.path = "retain",
		.type = &cfg_bool_type,
		.offset = ROUTE(retain),
		.fallback = "false",
		.help = "Publish with the retain flag",
	},
	[ROUTE_KEY_CONTENT_TYPE] = {
		.path = "content_type",
		.type = &cfg_string_type,
		.offset = ROUTE(content_type),
		.min = 1,
		.max = NO_LIMIT,
		.help = "MQTT 5 Content Type property",
	},
	[ROUTE_KEY_MESSAGE_EXPIRY] = {
		.path = "message_expiry",
		.type = &cfg_duration_type,
		.offset = ROUTE(message_expiry_ms),
		.fallback = "0s",
		.min = 0,
		.max = MS_MAX,
		.help = "MQTT 5 Message Expiry Interval; 0s: none",
	},
	[ROUTE_KEY_PROPERTIES] = {
		.path = "properties",
		.type = &properties_type,
		.offset = ROUTE(properties),
		.help = "MQTT 5 user properties taken from columns, as name: column",
	},
	[ROUTE_KEY_RESPONSE_TOPIC] = {
		.path = "response_topic",
		.type = &cfg_string_type,
		.offset = ROUTE(response_topic_column),
		.min = 1,
		.max = PG_NAME_MAX,
		.help = "MQTT 5: column holding the Response Topic",
	},
	[ROUTE_KEY_CORRELATION_DATA] = {
		.path = "correlation_data",
		.type = &cfg_string_type,
		.offset = ROUTE(correlation_data_column),
		.min = 1,
		.max = PG_NAME_MAX,
		.help = "MQTT 5: column holding the Correlation Data",
	},
};

_Static_assert(ARRAY_SIZE(route_keys) == ROUTE_KEY_COUNT, "route_keys[] needs one row per enum route_key");

static const struct ordered_keys ordered_config_keys[] = {
	{ "source.reconnect.min", "source.reconnect.max" },
	{ "broker.reconnect.min", "broker.reconnect.max" },
};

/* ---- Environment expansion ---- */

/* ---- Routes ---- */

/* The route keys that name columns, which a message does not have. */
static const enum route_key route_column_keys[] = { ROUTE_KEY_PAYLOAD, ROUTE_KEY_EVENT_ID,
	                                            ROUTE_KEY_PROPERTIES, ROUTE_KEY_RESPONSE_TOPIC,
	                                            ROUTE_KEY_CORRELATION_DATA };

/* Which keys a route needs depends on its kind, which the key table cannot say. A key
 * written with a bad value counts as present: its own error says what is wrong. */
static void check_route_kind(struct loader *ld, const struct key_state *seen, yaml_node_t *node,
                             const char *shown)
{
	char path[64];
	bool table = seen[ROUTE_KEY_TABLE].seen, prefix = seen[ROUTE_KEY_MESSAGE_PREFIX].seen;
	if (table && prefix) {
		cfg_report(ld, &node->start_mark, shown, "expected either table or message_prefix, not both");
	} else if (!table && !prefix) {
		snprintf(path, sizeof path, "%s.table", shown);
		cfg_report(ld, &node->start_mark, path, "required key is missing");
	} else if (table && !seen[ROUTE_KEY_PAYLOAD].seen) {
		snprintf(path, sizeof path, "%s.payload", shown);
		cfg_report(ld, &node->start_mark, path, "required key is missing");
	} else if (prefix) {
		for (size_t i = 0; i < ARRAY_SIZE(route_column_keys); i++) {
			if (!seen[route_column_keys[i]].seen)
				continue;
			snprintf(path, sizeof path, "%s.%s", shown, route_keys[route_column_keys[i]].path);
			cfg_report(
			        ld, &node->start_mark, path,
			        "a message route has no columns: its body is the message content and its id"
			        " <commit-lsn>:<index>");
			break;
		}
	}
}

static void load_route(struct loader *ld, struct route_config *route, yaml_node_t *node, const char *shown)
{
	struct key_state state[ARRAY_SIZE(route_keys)];
	struct keyset ks = { route_keys, ARRAY_SIZE(route_keys), state, route, shown };
	if (node->type != YAML_MAPPING_NODE) {
		cfg_report(ld, &node->start_mark, shown, "expected a mapping, got %s", cfg_node_kind(node));
		return;
	}
	memset(state, 0, sizeof state);
	route->line = (int)node->start_mark.line + 1;
	route->column = (int)node->start_mark.column + 1;
	cfg_walk_mapping(ld, &ks, node, "");
	check_route_kind(ld, state, node, shown);
	cfg_apply_defaults(&ks);
}

static void load_routes(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                        const char *shown)
{
	struct config *cfg = base;
	(void)k;
	if (node->type != YAML_SEQUENCE_NODE) {
		cfg_report(ld, &node->start_mark, shown, "expected a sequence, got %s", cfg_node_kind(node));
		return;
	}
	yaml_node_item_t *items = node->data.sequence.items.start;
	size_t n = (size_t)(node->data.sequence.items.top - items);
	if (n == 0) {
		cfg_report(ld, &node->start_mark, shown, "expected at least one route");
		return;
	}
	cfg->routes = xcalloc(n, sizeof *cfg->routes);
	cfg->nroutes = n;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(shown) + 24;
		char *item = xmalloc(len);
		snprintf(item, len, "%s[%zu]", shown, i);
		load_route(ld, &cfg->routes[i], cfg_node(ld, items[i]), item);
		free(item);
	}
}

static void release_routes(const struct key *k, void *base)
{
	struct config *cfg = base;
	(void)k;
	for (size_t i = 0; i < cfg->nroutes; i++)
		cfg_release_keys(route_keys, ARRAY_SIZE(route_keys), &cfg->routes[i]);
	free(cfg->routes);
	cfg->routes = NULL;
	cfg->nroutes = 0;
}

/* ---- Broker list ---- */

/* ---- Route properties ---- */

/* Set by the relay on every message: a route cannot take them over. */
static const char *const reserved_properties[] = { "event-id", "lsn", "commit-time", "source" };

static bool is_reserved_property(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(reserved_properties); i++)
		if (strcmp(name, reserved_properties[i]) == 0)
			return true;
	return false;
}

/* One "name: column" pair; the name is the user property's, the value a column. */
static void load_property(struct loader *ld, struct route_config *route, yaml_node_t *map,
                          yaml_node_pair_t *pair, const char *shown)
{
	yaml_node_t *key = cfg_node(ld, pair->key);
	char *name = cfg_scalar_value(ld, key, shown);
	if (!name)
		return;
	char *path = cfg_join_path(shown, name);
	yaml_node_pair_t *first = cfg_earlier_pair(ld, map, pair);
	char *column = NULL;
	if (!*name)
		cfg_report(ld, &key->start_mark, shown, "expected a non-empty property name");
	else if (is_reserved_property(name))
		cfg_report(ld, &key->start_mark, path,
		           "the relay sets this property on every message; choose another name");
	else if (first)
		cfg_report(ld, &key->start_mark, path, "duplicate key, first set at line %zu",
		           cfg_node(ld, first->key)->start_mark.line + 1);
	else if ((column = cfg_scalar_value(ld, cfg_node(ld, pair->value), path)) &&
	         (!*column || strlen(column) > PG_NAME_MAX))
		cfg_report_got(ld, &cfg_node(ld, pair->value)->start_mark, path,
		               "expected a column name of 1 to 63 bytes", column, false);
	else if (column) {
		struct route_property *p = &route->properties[route->nproperties++];
		p->name = name;
		p->column = column;
		name = column = NULL;
	}
	free(column);
	free(name);
	free(path);
}

static void load_properties(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                            const char *shown)
{
	struct route_config *route = base;
	(void)k;
	if (node->type != YAML_MAPPING_NODE) {
		cfg_report(ld, &node->start_mark, shown,
		           "expected a mapping of property name to column, got %s", cfg_node_kind(node));
		return;
	}
	yaml_node_pair_t *pairs = node->data.mapping.pairs.start;
	size_t n = (size_t)(node->data.mapping.pairs.top - pairs);
	route->properties = xcalloc(n ? n : 1, sizeof *route->properties);
	for (size_t i = 0; i < n; i++)
		load_property(ld, route, node, &pairs[i], shown);
}

static void release_properties(const struct key *k, void *base)
{
	struct route_config *route = base;
	(void)k;
	for (size_t i = 0; i < route->nproperties; i++) {
		free(route->properties[i].name);
		free(route->properties[i].column);
	}
	free(route->properties);
	route->properties = NULL;
	route->nproperties = 0;
}

/* ---- Checks across keys ---- */

static void check_order(struct loader *ld, const struct keyset *ks, const struct ordered_keys *o)
{
	const struct key *lo = cfg_find_key(ks, o->lower), *hi = cfg_find_key(ks, o->upper);
	const struct key_state *lo_state = &ks->state[lo - ks->keys];
	const struct key_state *hi_state = &ks->state[hi - ks->keys];
	uint32_t lo_ms = *(const uint32_t *)key_field(lo, ks->base);
	uint32_t hi_ms = *(const uint32_t *)key_field(hi, ks->base);
	char text[32];
	if (!lo_state->valid || !hi_state->valid || lo_ms <= hi_ms)
		return;
	/* Blame the key the file wrote; if it wrote both, the lower one. */
	if (lo_state->seen)
		cfg_report(ld, &lo_state->mark, lo->path, "expected a duration no longer than %s (%s)",
		           hi->path, cfg_format_ms(hi_ms, text, sizeof text));
	else
		cfg_report(ld, &hi_state->mark, hi->path, "expected a duration no shorter than %s (%s)",
		           lo->path, cfg_format_ms(lo_ms, text, sizeof text));
}

static const struct key_state *state_of(const struct keyset *ks, const char *path)
{
	const struct key *k = cfg_find_key(ks, path);
	if (!k)
		abort(); /* a path missing from the table: a bug the tests catch */
	return &ks->state[k - ks->keys];
}

/* The value under name in map, or NULL. */
static yaml_node_t *child_node(struct loader *ld, yaml_node_t *map, const char *name)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *key = cfg_node(ld, p->key);
		if (key->type == YAML_SCALAR_NODE && strcmp(scalar_text(key), name) == 0)
			return cfg_node(ld, p->value);
	}
	return NULL;
}

/* broker.hosts, or broker.host and broker.port, become the list the client tries. */
static void resolve_hosts(struct loader *ld, const struct keyset *ks, struct config *cfg)
{
	const struct key_state *host = state_of(ks, "broker.host"), *hosts = state_of(ks, "broker.hosts");
	if (host->seen && hosts->seen) {
		cfg_report(ld, &hosts->mark, "broker.hosts",
		           "expected either broker.host or broker.hosts, not both");
		return;
	}
	if (!hosts->seen && cfg->broker.host) {
		cfg->broker.hosts = xcalloc(1, sizeof *cfg->broker.hosts);
		cfg->broker.hosts[0].host = xstrdup(cfg->broker.host);
		cfg->broker.nhosts = 1;
	}
	for (size_t i = 0; i < cfg->broker.nhosts; i++)
		if (cfg->broker.hosts[i].port == 0)
			cfg->broker.hosts[i].port = cfg->broker.port;
}

/* MQTT 3.1.1 has no Receive Maximum: a broker over its in-flight limit acknowledges QoS 2
 * messages and drops them. Unset, the window is Mosquitto's default limit there; MQTT 5
 * brokers say their limit, and the client keeps to it. */
#define MAX_INFLIGHT_MQTTV5 1000
#define MAX_INFLIGHT_MQTTV311 20

static void check_broker(struct loader *ld, const struct keyset *ks, struct config *cfg, yaml_node_t *root)
{
	resolve_hosts(ld, ks, cfg);
	if (!state_of(ks, "broker.max_inflight")->seen)
		cfg->broker.max_inflight =
		        cfg->broker.protocol == BROKER_MQTT_V5 ? MAX_INFLIGHT_MQTTV5 : MAX_INFLIGHT_MQTTV311;
	const struct key_state *expiry = state_of(ks, "broker.session_expiry");
	if (cfg->broker.session_expiry_ms % 1000)
		cfg_report(ld, &expiry->mark, "broker.session_expiry", "expected whole seconds");
	const struct key_state *password = state_of(ks, "broker.password_file");
	if (password->seen && !state_of(ks, "broker.username")->seen)
		cfg_report(ld, &password->mark, "broker.password_file",
		           "a password needs broker.username as well");
	/* "tls:" alone (or "tls: {}") turns TLS on with the system's trust store. */
	cfg->broker.tls.enabled = child_node(ld, child_node(ld, root, "broker"), "tls") != NULL;
	const struct key_state *cert = state_of(ks, "broker.tls.cert_file");
	const struct key_state *key = state_of(ks, "broker.tls.key_file");
	if (cert->seen && !key->seen)
		cfg_report(ld, &cert->mark, "broker.tls.cert_file",
		           "a client certificate needs broker.tls.key_file");
	else if (key->seen && !cert->seen)
		cfg_report(ld, &key->mark, "broker.tls.key_file", "a client key needs broker.tls.cert_file");
}

/* ---- File and document ---- */

/* The whole file into *text (NUL-terminated). Returns 0, or -1 after reporting. */
static int read_file(struct loader *ld, char **text, size_t *len)
{
	FILE *f = fopen(ld->file, "r");
	if (!f) {
		cfg_report_file(ld, "cannot open", strerror(errno));
		return -1;
	}
	size_t n = 0, cap = 4096;
	char *buf = xmalloc(cap);
	while (n <= FILE_SIZE_MAX && !feof(f) && !ferror(f)) {
		if (cap - n < 2)
			buf = xrealloc(buf, cap *= 2);
		n += fread(buf + n, 1, cap - n - 1, f);
	}
	int read_errno = errno;
	bool failed = ferror(f);
	fclose(f);
	if (failed || n > FILE_SIZE_MAX) {
		cfg_report_file(ld, "cannot read",
		                failed ? strerror(read_errno) : "larger than 1048576 bytes");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

/* libyaml gives reader errors (bad UTF-8, control characters) as a byte offset only. */
static yaml_mark_t mark_at_offset(const char *text, size_t offset)
{
	yaml_mark_t mark = { offset, 0, 0 };
	for (size_t i = 0; i < offset && text[i]; i++) {
		if (text[i] == '\n') {
			mark.line++;
			mark.column = 0;
		} else {
			mark.column++;
		}
	}
	return mark;
}

static void report_yaml_error(struct loader *ld, const yaml_parser_t *parser, const char *text)
{
	if (parser->error == YAML_MEMORY_ERROR) {
		fprintf(stderr, "level=error msg=\"out of memory\" where=libyaml\n");
		abort();
	}
	yaml_mark_t mark = parser->problem_mark;
	if (parser->error == YAML_READER_ERROR)
		mark = mark_at_offset(text, parser->problem_offset);
	cfg_report(ld, &mark, "yaml", "%s", parser->problem ? parser->problem : "cannot parse");
}

static void walk_document(struct loader *ld, struct config *cfg)
{
	static const yaml_mark_t start = { 0, 0, 0 };
	struct key_state state[ARRAY_SIZE(config_keys)];
	struct keyset ks = { config_keys, ARRAY_SIZE(config_keys), state, cfg, "" };
	yaml_node_t *root = yaml_document_get_root_node(ld->doc);
	if (!root) {
		cfg_report(ld, &start, "", "expected a mapping, got an empty file");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		cfg_report(ld, &root->start_mark, "", "expected a mapping, got %s", cfg_node_kind(root));
		return;
	}
	memset(state, 0, sizeof state);
	cfg_walk_mapping(ld, &ks, root, "");
	cfg_apply_defaults(&ks);
	for (size_t i = 0; i < ARRAY_SIZE(ordered_config_keys); i++)
		check_order(ld, &ks, &ordered_config_keys[i]);
	check_broker(ld, &ks, cfg, root);
}

/* A second document would be ignored silently; say so instead. */
static void check_single_document(struct loader *ld, yaml_parser_t *parser, const char *text)
{
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next)) {
		report_yaml_error(ld, parser, text);
		return;
	}
	if (yaml_document_get_root_node(&next))
		cfg_report(ld, &next.start_mark, "", "expected a single YAML document");
	yaml_document_delete(&next);
}

static void parse_text(struct loader *ld, struct config *cfg, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser)) {
		fprintf(stderr, "level=error msg=\"out of memory\" where=libyaml\n");
		abort();
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (yaml_parser_load(&parser, &doc)) {
		ld->doc = &doc;
		walk_document(ld, cfg);
		check_single_document(ld, &parser, text);
		yaml_document_delete(&doc);
		ld->doc = NULL;
	} else {
		report_yaml_error(ld, &parser, text);
	}
	yaml_parser_delete(&parser);
}

int config_load(const char *path, struct config *out, FILE *errs)
{
	struct loader ld = { .file = path, .errs = errs };
	char *text;
	size_t len;
	memset(out, 0, sizeof *out);
	out->path = xstrdup(path);
	if (read_file(&ld, &text, &len) == 0) {
		parse_text(&ld, out, text, len);
		free(text);
	}
	cfg_flush_errors(&ld);
	if (ld.nerrors)
		config_finish(out);
	return ld.nerrors;
}

void config_finish(struct config *cfg)
{
	cfg_release_keys(config_keys, ARRAY_SIZE(config_keys), cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof *cfg);
}

bool config_key_doc(size_t i, struct config_key_doc *out)
{
	const struct key *k;
	bool route = i >= ARRAY_SIZE(config_keys);
	if (route && i - ARRAY_SIZE(config_keys) >= ARRAY_SIZE(route_keys))
		return false;
	k = route ? &route_keys[i - ARRAY_SIZE(config_keys)] : &config_keys[i];
	out->section = route ? "routes[]" : "";
	out->path = k->path;
	out->type = k->type->doc_name;
	out->fallback = k->fallback;
	out->required = k->required;
	out->help = k->help;
	/* Routes are reloaded as a whole, every key of them with it. */
	out->reloadable = route || k->reloadable;
	return true;
}

/* ---- Reloading ---- */

void config_restart_changes(const struct config *running, const struct config *next,
                            void (*fn)(void *ctx, const char *path), void *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct key *k = &config_keys[i];
		if (!k->reloadable && !k->type->equal(k, running, next))
			fn(ctx, k->path);
	}
	/* Not a key of the table: the mapping's presence alone turns TLS on. */
	if (running->broker.tls.enabled != next->broker.tls.enabled)
		fn(ctx, "broker.tls");
}

/* "password=" in a keyword/value string, or "scheme://user:password@" in a URI. */
bool config_holds_password(const struct config *cfg)
{
	const char *c = cfg->source.conninfo;
	if (!c)
		return false;
	if (strcasestr(c, "password"))
		return true;
	const char *scheme = strstr(c, "://");
	if (!scheme)
		return false;
	size_t userinfo = strcspn(scheme + 3, "@/?");
	return scheme[3 + userinfo] == '@' && memchr(scheme + 3, ':', userinfo) != NULL;
}
