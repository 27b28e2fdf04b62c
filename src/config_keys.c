/*
 * The keys of the configuration file, one row each: dotted path, type, field, default as
 * written in the file, bounds, and one line of help. Sections and nested mappings
 * ("source.reconnect") exist only as prefixes of paths, so adding a key is adding a row.
 * The man page (outbox-relay.yaml(5)) is checked against these rows by the unit tests,
 * through config_key_doc.
 */
#include "config_keys.h"

#include <stddef.h>

#include "config.h"
#include "config_brokers.h"
#include "config_routes.h"
#include "log.h"

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

static const struct enum_name cleanup_names[] = {
	{ "none", CLEANUP_NONE },
	{ "delete", CLEANUP_DELETE },
	{ NULL, 0 },
};

static const struct enum_name snapshot_names[] = {
	{ "never", SNAPSHOT_NEVER },
	{ "initial", SNAPSHOT_INITIAL },
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
const struct key cfg_keys[] = {
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
	        .fallback = "1m",
	        .min = 0,
	        .max = MS_MAX,
	        .help = "How often a transactional heartbeat lets an idle slot release WAL; 0s: never",
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
	        .fallback = "5s",
	        .min = 1,
	        .max = MS_MAX,
	        .help = "Longest delay between two attempts to connect to the broker",
	},
	{
	        .path = "broker.status_topic",
	        .type = &cfg_string_type,
	        .offset = CFG(broker.status_topic),
	        .min = 0,
	        .max = NO_LIMIT,
	        .help = "Topic of the relay's retained status and Will; {client_id} is put in",
	},

	{
	        .path = "routes",
	        .type = &cfg_routes_type,
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
	        .path = "delivery.dead_letter_retention",
	        .type = &cfg_long_duration_type,
	        .offset = CFG(delivery.dead_letter_retention_ms),
	        .fallback = "30d",
	        .min = 0,
	        .max = DAYS(3650),
	        .help = "How long dead letters are kept; 0s: for ever",
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

const size_t cfg_key_count = ARRAY_SIZE(cfg_keys);

/* Each row at its enum's index, so that neither can drift from the other; a row left out
 * is a hole with no path, which the unit tests find through config_key_doc.
 * Column names: PostgreSQL keeps at most 63 bytes, so a longer one can never match. */
const struct key cfg_route_keys[] = {
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
	[ROUTE_KEY_DOWNGRADE] = {
		.path = "downgrade",
		.type = &cfg_bool_type,
		.offset = ROUTE(downgrade),
		.fallback = "false",
		.help = "On an MQTT 5 broker that takes less: QoS 2 as QoS 1, retain dropped",
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
		.type = &cfg_properties_type,
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
	[ROUTE_KEY_CLEANUP] = {
		.path = "cleanup",
		.type = &cfg_enum_type,
		.offset = ROUTE(cleanup),
		.fallback = "none",
		.names = cleanup_names,
		.help = "What becomes of a row once its event is acknowledged: none or delete",
	},
	[ROUTE_KEY_SNAPSHOT] = {
		.path = "snapshot",
		.type = &cfg_enum_type,
		.offset = ROUTE(snapshot),
		.fallback = "never",
		.names = snapshot_names,
		.help = "initial: at the first start, publish the rows already in the table (a backfill)",
	},
	[ROUTE_KEY_CHANGES] = {
		.path = "changes",
		.type = &cfg_changes_type,
		.offset = ROUTE(changes),
		.fallback = "[insert]",
		.help = "Which changes of the table are published: insert, update, delete",
	},
	[ROUTE_KEY_WHERE] = {
		.path = "where",
		.type = &cfg_string_type,
		.offset = ROUTE(row_filter),
		.min = 1,
		.max = NO_LIMIT,
		.help = "PostgreSQL 15 row filter: rows for which it is not true never leave the database",
	},
	[ROUTE_KEY_COLUMNS] = {
		.path = "columns",
		.type = &cfg_columns_type,
		.offset = ROUTE(columns),
		.help = "PostgreSQL 15 column list: the only columns that leave the database",
	},
};

_Static_assert(ARRAY_SIZE(cfg_route_keys) == ROUTE_KEY_COUNT,
               "cfg_route_keys[] needs one row per enum route_key");

const struct ordered_keys cfg_ordered_keys[] = {
	{ "source.reconnect.min", "source.reconnect.max" },
	{ "broker.reconnect.min", "broker.reconnect.max" },
};

const size_t cfg_ordered_key_count = ARRAY_SIZE(cfg_ordered_keys);

bool config_key_doc(size_t i, struct config_key_doc *out)
{
	const struct key *k;
	bool route = i >= ARRAY_SIZE(cfg_keys);
	if (route && i - ARRAY_SIZE(cfg_keys) >= ARRAY_SIZE(cfg_route_keys))
		return false;
	k = route ? &cfg_route_keys[i - ARRAY_SIZE(cfg_keys)] : &cfg_keys[i];
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
