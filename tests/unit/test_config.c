#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config.h"

#ifndef FIXTURES_DIR
#error "FIXTURES_DIR must name tests/fixtures"
#endif

#define FIXTURE(name) FIXTURES_DIR "/config/" name
#define EXAMPLE FIXTURES_DIR "/../../config/outbox-relay.yaml"

/* Inline cases are written to cfg.yaml in a scratch directory that main() makes the
 * working directory, so that expected messages start with "cfg.yaml:". */
#define SCRATCH_FILE "cfg.yaml"

/* Valid pieces to build on, so that a case shows only the error it is about. */
#define SOURCE "source:\n  conninfo: dbname=shop\n"
#define ROUTES "routes:\n  - {table: outbox, topic: t, payload: p}\n"

static char scratch_dir[] = "/tmp/test_config.XXXXXX";

/* ${OUTBOX_FIXTURES}: a copy of tests/fixtures/config/files made by main(), since a
 * checkout leaves the password files readable by all, which the loader refuses. */
static char fixtures_copy[sizeof scratch_dir + 16];

/* The path of the copy of tests/fixtures/config/files/name (valid until the next call). */
static const char *fixture_file(const char *name)
{
	static char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/config/files/%s", fixtures_copy, name);
	return path;
}

static void write_scratch(const char *yaml)
{
	FILE *f = fopen(SCRATCH_FILE, "w");
	ck_assert_ptr_nonnull(f);
	fputs(yaml, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Loads path; returns the error count and, in *errs, everything written (caller frees). */
static int load_path(const char *path, struct config *cfg, char **errs)
{
	size_t size;
	FILE *f = open_memstream(errs, &size);
	ck_assert_ptr_nonnull(f);
	int n = config_load(path, cfg, f);
	fclose(f);
	return n;
}

/* A failed load leaves nothing behind to free. */
static void assert_released(const struct config *cfg)
{
	ck_assert_ptr_null(cfg->path);
	ck_assert_ptr_null(cfg->source.conninfo);
	ck_assert_ptr_null(cfg->source.slot);
	ck_assert_ptr_null(cfg->broker.host);
	ck_assert_ptr_null(cfg->routes);
	ck_assert_uint_eq(cfg->nroutes, 0);
}

static void expect_path_errors(const char *path, int count, const char *expected)
{
	struct config cfg;
	char *errs;
	int n = load_path(path, &cfg, &errs);
	ck_assert_str_eq(errs, expected);
	ck_assert_int_eq(n, count);
	assert_released(&cfg);
	free(errs);
}

static void expect_errors(const char *yaml, int count, const char *expected)
{
	write_scratch(yaml);
	expect_path_errors(SCRATCH_FILE, count, expected);
}

static void expect_error(const char *yaml, const char *expected)
{
	expect_errors(yaml, 1, expected);
}

/* Loads yaml that must be valid into *cfg. */
static void load_ok(const char *yaml, struct config *cfg)
{
	char *errs;
	write_scratch(yaml);
	int n = load_path(SCRATCH_FILE, cfg, &errs);
	ck_assert_str_eq(errs, "");
	ck_assert_int_eq(n, 0);
	free(errs);
}

static void load_fixture(const char *path, struct config *cfg)
{
	char *errs;
	int n = load_path(path, cfg, &errs);
	ck_assert_str_eq(errs, "");
	ck_assert_int_eq(n, 0);
	free(errs);
}

/* Prefixes each line of lines with path: fixture messages carry the absolute path. */
static char *with_path(const char *path, const char *lines)
{
	char *out;
	size_t size;
	FILE *f = open_memstream(&out, &size);
	for (const char *p = lines; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
		fprintf(f, "%s%.*s", path, (int)len, p);
		p += len;
	}
	fclose(f);
	return out;
}

static void expect_fixture_errors(const char *path, int count, const char *lines)
{
	char *expected = with_path(path, lines);
	expect_path_errors(path, count, expected);
	free(expected);
}

/* ---- Valid files ---- */

START_TEST(full_fixture_sets_every_field)
{
	struct config cfg;
	load_fixture(FIXTURE("full.yaml"), &cfg);
	ck_assert_str_eq(cfg.path, FIXTURE("full.yaml"));
	ck_assert_str_eq(cfg.source.conninfo, "host=db.example dbname=shop user=relay");
	ck_assert_str_eq(cfg.source.slot, "shop_slot");
	ck_assert_str_eq(cfg.source.publication, "shop_pub");
	ck_assert(!cfg.source.create_slot);
	ck_assert(!cfg.source.create_publication);
	ck_assert_str_eq(cfg.source.password.path, fixture_file("pg-password"));
	ck_assert_str_eq(cfg.source.password.value, "pg-secret");
	ck_assert_uint_eq(cfg.source.status_interval_ms, 5000);
	ck_assert_uint_eq(cfg.source.heartbeat_interval_ms, 30000);
	ck_assert_uint_eq(cfg.source.reconnect.min_ms, 250);
	ck_assert_uint_eq(cfg.source.reconnect.max_ms, 120000);
	ck_assert_uint_eq(cfg.broker.nhosts, 4);
	ck_assert_str_eq(cfg.broker.hosts[0].host, "mqtt-a.example");
	ck_assert_int_eq(cfg.broker.hosts[0].port, 8884);
	ck_assert_str_eq(cfg.broker.hosts[1].host, "mqtt-b.example");
	ck_assert_int_eq(cfg.broker.hosts[1].port, 8883);
	ck_assert_str_eq(cfg.broker.hosts[2].host, "::1");
	ck_assert_int_eq(cfg.broker.hosts[2].port, 1884);
	ck_assert_str_eq(cfg.broker.hosts[3].host, "fe80::1");
	ck_assert_int_eq(cfg.broker.hosts[3].port, 8883);
	ck_assert_int_eq(cfg.broker.port, 8883);
	ck_assert_str_eq(cfg.broker.username, "relay");
	ck_assert_str_eq(cfg.broker.password.value, "mqtt-secret");
	ck_assert(cfg.broker.tls.enabled);
	ck_assert_str_eq(cfg.broker.tls.ca_file, fixture_file("ca.pem"));
	ck_assert_str_eq(cfg.broker.tls.cert_file, fixture_file("client.pem"));
	ck_assert_str_eq(cfg.broker.tls.key_file, fixture_file("client.key"));
	ck_assert(!cfg.broker.tls.verify_hostname);
	ck_assert_int_eq(cfg.broker.protocol, BROKER_MQTT_V311);
	ck_assert_str_eq(cfg.broker.client_id, "relay-shop-with-a-client-id-longer-than-23");
	ck_assert_uint_eq(cfg.broker.keepalive_ms, 60000);
	ck_assert_int_eq(cfg.broker.max_inflight, 64);
	ck_assert_uint_eq(cfg.broker.reconnect.min_ms, 1000);
	ck_assert_uint_eq(cfg.broker.reconnect.max_ms, 3600000);
	ck_assert_str_eq(cfg.broker.status_topic, "relays/relay-shop-with-a-client-id-longer-than-23/status");
	ck_assert_uint_eq(cfg.nroutes, 2);
	ck_assert_str_eq(cfg.routes[0].schema, "sales");
	ck_assert_str_eq(cfg.routes[0].table, "outbox");
	ck_assert_str_eq(cfg.routes[0].topic, "shop/{aggregate_type}/{aggregate_id}");
	ck_assert_str_eq(cfg.routes[0].payload_column, "body");
	ck_assert_str_eq(cfg.routes[0].event_id_column, "id");
	ck_assert_int_eq(cfg.routes[0].qos, 2);
	ck_assert(cfg.routes[0].retain);
	ck_assert_str_eq(cfg.routes[0].content_type, "application/vnd.shop+json");
	ck_assert_uint_eq(cfg.routes[0].message_expiry_ms, 300000);
	ck_assert_str_eq(cfg.routes[0].response_topic_column, "reply_to");
	ck_assert_str_eq(cfg.routes[0].correlation_data_column, "correlation_id");
	ck_assert_uint_eq(cfg.routes[0].nproperties, 2);
	ck_assert_str_eq(cfg.routes[0].properties[0].name, "event-type");
	ck_assert_str_eq(cfg.routes[0].properties[0].column, "event_type");
	ck_assert_str_eq(cfg.routes[0].properties[1].name, "trace-id");
	ck_assert_str_eq(cfg.routes[0].properties[1].column, "trace_id");
	ck_assert_uint_eq(cfg.routes[1].nproperties, 0);
	ck_assert_ptr_null(cfg.routes[1].content_type);
	ck_assert_uint_eq(cfg.routes[1].message_expiry_ms, 0);
	ck_assert_int_eq(cfg.routes[0].line, 32);
	ck_assert_int_eq(cfg.routes[0].column, 5);
	ck_assert_str_eq(cfg.routes[1].schema, "public");
	ck_assert_str_eq(cfg.routes[1].table, "Audit_Log");
	ck_assert_str_eq(cfg.routes[1].topic, "audit");
	ck_assert_str_eq(cfg.routes[1].payload_column, "payload");
	ck_assert_ptr_null(cfg.routes[1].event_id_column);
	ck_assert_int_eq(cfg.routes[1].qos, 0);
	ck_assert(!cfg.routes[1].retain);
	ck_assert_int_eq(cfg.routes[0].cleanup, CLEANUP_NONE);
	ck_assert_int_eq(cfg.routes[1].cleanup, CLEANUP_DELETE);
	ck_assert_int_eq(cfg.routes[1].line, 45);
	ck_assert_int_eq(cfg.routes[1].column, 5);
	ck_assert_str_eq(cfg.delivery.bookkeeping_schema, "relay_books");
	ck_assert(!cfg.delivery.create_bookkeeping);
	ck_assert_uint_eq(cfg.delivery.checkpoint_interval_ms, 1000);
	ck_assert_uint_eq(cfg.delivery.drain_timeout_ms, 0);
	ck_assert_int_eq(cfg.delivery.on_reject, REJECT_STOP);
	ck_assert_uint_eq(cfg.delivery.dead_letter_retention_ms, 7ull * 86400000ull);
	ck_assert_int_eq(cfg.log.level, LOG_DEBUG);
	ck_assert_int_eq(cfg.log.format, LOG_FORMAT_JSON);
	ck_assert_uint_eq(cfg.log.stats_interval_ms, 0);
	config_finish(&cfg);
	assert_released(&cfg);
}
END_TEST

START_TEST(minimal_fixture_gets_every_default)
{
	struct config cfg;
	load_fixture(FIXTURE("minimal.yaml"), &cfg);
	ck_assert_str_eq(cfg.source.conninfo, "dbname=shop");
	ck_assert_str_eq(cfg.source.slot, "outbox_relay");
	ck_assert_str_eq(cfg.source.publication, "outbox_relay");
	ck_assert(cfg.source.create_slot);
	ck_assert(cfg.source.create_publication);
	ck_assert_ptr_null(cfg.source.password.path);
	ck_assert_ptr_null(cfg.source.password.value);
	ck_assert_uint_eq(cfg.source.status_interval_ms, 10000);
	ck_assert_uint_eq(cfg.source.heartbeat_interval_ms, 60000);
	ck_assert_uint_eq(cfg.source.reconnect.min_ms, 100);
	ck_assert_uint_eq(cfg.source.reconnect.max_ms, 30000);
	ck_assert_str_eq(cfg.broker.host, "127.0.0.1");
	ck_assert_int_eq(cfg.broker.port, 1883);
	ck_assert_uint_eq(cfg.broker.nhosts, 1);
	ck_assert_str_eq(cfg.broker.hosts[0].host, "127.0.0.1");
	ck_assert_int_eq(cfg.broker.hosts[0].port, 1883);
	ck_assert_ptr_null(cfg.broker.username);
	ck_assert_ptr_null(cfg.broker.password.value);
	ck_assert(!cfg.broker.tls.enabled);
	ck_assert_ptr_null(cfg.broker.tls.ca_file);
	ck_assert(cfg.broker.tls.verify_hostname);
	ck_assert_int_eq(cfg.broker.protocol, BROKER_MQTT_V5);
	ck_assert_str_eq(cfg.broker.client_id, "outbox-relay");
	ck_assert_uint_eq(cfg.broker.keepalive_ms, 30000);
	ck_assert_int_eq(cfg.broker.max_inflight, 1000);
	ck_assert_uint_eq(cfg.broker.reconnect.min_ms, 100);
	ck_assert_uint_eq(cfg.broker.reconnect.max_ms, 5000);
	ck_assert_ptr_null(cfg.broker.status_topic);
	ck_assert_uint_eq(cfg.nroutes, 1);
	ck_assert_str_eq(cfg.routes[0].schema, "public");
	ck_assert_str_eq(cfg.routes[0].table, "outbox");
	ck_assert_str_eq(cfg.routes[0].topic, "shop/events");
	ck_assert_str_eq(cfg.routes[0].payload_column, "payload");
	ck_assert_ptr_null(cfg.routes[0].event_id_column);
	ck_assert_int_eq(cfg.routes[0].qos, 1);
	ck_assert(!cfg.routes[0].retain);
	ck_assert_ptr_null(cfg.routes[0].content_type);
	ck_assert_uint_eq(cfg.routes[0].message_expiry_ms, 0);
	ck_assert_ptr_null(cfg.routes[0].response_topic_column);
	ck_assert_ptr_null(cfg.routes[0].correlation_data_column);
	ck_assert_uint_eq(cfg.routes[0].nproperties, 0);
	ck_assert_int_eq(cfg.routes[0].line, 4);
	ck_assert_int_eq(cfg.routes[0].column, 5);
	ck_assert_str_eq(cfg.delivery.bookkeeping_schema, "outbox_relay");
	ck_assert(cfg.delivery.create_bookkeeping);
	ck_assert_uint_eq(cfg.delivery.checkpoint_interval_ms, 200);
	ck_assert_uint_eq(cfg.delivery.drain_timeout_ms, 10000);
	ck_assert_int_eq(cfg.delivery.on_reject, REJECT_DEAD_LETTER);
	ck_assert_uint_eq(cfg.delivery.dead_letter_retention_ms, 30ull * 86400000ull);
	ck_assert_int_eq(cfg.routes[0].cleanup, CLEANUP_NONE);
	ck_assert_int_eq(cfg.log.level, LOG_INFO);
	ck_assert_int_eq(cfg.log.format, LOG_FORMAT_LOGFMT);
	ck_assert_uint_eq(cfg.log.stats_interval_ms, 60000);
	config_finish(&cfg);
}
END_TEST

/* The shipped example must load, and every value it shows must be the default. */
START_TEST(example_config_shows_the_defaults)
{
	struct config ex, def;
	load_fixture(EXAMPLE, &ex);
	load_fixture(FIXTURE("minimal.yaml"), &def);
	ck_assert_str_eq(ex.source.slot, def.source.slot);
	ck_assert_str_eq(ex.source.publication, def.source.publication);
	ck_assert_int_eq(ex.source.create_slot, def.source.create_slot);
	ck_assert_int_eq(ex.source.create_publication, def.source.create_publication);
	ck_assert_uint_eq(ex.source.status_interval_ms, def.source.status_interval_ms);
	ck_assert_uint_eq(ex.source.reconnect.min_ms, def.source.reconnect.min_ms);
	ck_assert_uint_eq(ex.source.reconnect.max_ms, def.source.reconnect.max_ms);
	ck_assert_str_eq(ex.broker.host, def.broker.host);
	ck_assert_int_eq(ex.broker.port, def.broker.port);
	ck_assert_int_eq(ex.broker.protocol, def.broker.protocol);
	ck_assert_str_eq(ex.broker.client_id, def.broker.client_id);
	ck_assert_uint_eq(ex.broker.keepalive_ms, def.broker.keepalive_ms);
	ck_assert_int_eq(ex.broker.max_inflight, def.broker.max_inflight);
	ck_assert_uint_eq(ex.broker.reconnect.min_ms, def.broker.reconnect.min_ms);
	ck_assert_uint_eq(ex.broker.reconnect.max_ms, def.broker.reconnect.max_ms);
	ck_assert_int_eq(ex.routes[0].qos, def.routes[0].qos);
	ck_assert_int_eq(ex.routes[0].retain, def.routes[0].retain);
	ck_assert_str_eq(ex.delivery.bookkeeping_schema, def.delivery.bookkeeping_schema);
	ck_assert_int_eq(ex.delivery.create_bookkeeping, def.delivery.create_bookkeeping);
	ck_assert_uint_eq(ex.delivery.checkpoint_interval_ms, def.delivery.checkpoint_interval_ms);
	ck_assert_uint_eq(ex.delivery.drain_timeout_ms, def.delivery.drain_timeout_ms);
	ck_assert_uint_eq(ex.source.heartbeat_interval_ms, def.source.heartbeat_interval_ms);
	ck_assert_int_eq(ex.broker.tls.verify_hostname, def.broker.tls.verify_hostname);
	ck_assert_int_eq(ex.delivery.on_reject, def.delivery.on_reject);
	ck_assert_uint_eq(ex.delivery.dead_letter_retention_ms, def.delivery.dead_letter_retention_ms);
	ck_assert_int_eq(ex.routes[0].cleanup, def.routes[0].cleanup);
	ck_assert_uint_eq(ex.routes[0].changes, def.routes[0].changes);
	ck_assert_int_eq(ex.log.level, def.log.level);
	ck_assert_int_eq(ex.log.format, def.log.format);
	ck_assert_uint_eq(ex.log.stats_interval_ms, def.log.stats_interval_ms);
	config_finish(&ex);
	config_finish(&def);
}
END_TEST

START_TEST(bools_accept_yaml_spellings)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = { { "true", true },   { "TRUE", true },   { "yes", true }, { "On", true },
		      { "false", false }, { "False", false }, { "no", false }, { "OFF", false } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char yaml[256];
		struct config cfg;
		snprintf(yaml, sizeof yaml, SOURCE "  create_slot: %s\n" ROUTES, cases[i].text);
		load_ok(yaml, &cfg);
		ck_assert_int_eq(cfg.source.create_slot, cases[i].value);
		config_finish(&cfg);
	}
}
END_TEST

START_TEST(durations_accept_every_unit_and_bound)
{
	struct config cfg;
	load_ok(SOURCE "  status_interval: 100ms\n"
	               "  reconnect: {min: 1ms, max: 4294967295ms}\n"
	               "broker:\n"
	               "  keepalive: 65535s\n"
	               "  reconnect: {min: 2m, max: 1193h}\n" ROUTES "delivery:\n"
	               "  checkpoint_interval: 10ms\n"
	               "  drain_timeout: 0s\n"
	               "log: {stats_interval: 49d}\n",
	        &cfg);
	ck_assert_uint_eq(cfg.source.status_interval_ms, 100);
	ck_assert_uint_eq(cfg.source.reconnect.min_ms, 1);
	ck_assert_uint_eq(cfg.source.reconnect.max_ms, UINT32_MAX);
	ck_assert_uint_eq(cfg.broker.keepalive_ms, 65535000);
	ck_assert_uint_eq(cfg.broker.reconnect.min_ms, 120000);
	ck_assert_uint_eq(cfg.broker.reconnect.max_ms, 1193u * 3600000u);
	ck_assert_uint_eq(cfg.delivery.checkpoint_interval_ms, 10);
	ck_assert_uint_eq(cfg.delivery.drain_timeout_ms, 0);
	ck_assert_uint_eq(cfg.log.stats_interval_ms, 49u * 86400000u);
	config_finish(&cfg);
}
END_TEST

START_TEST(ints_accept_their_bounds)
{
	struct config cfg;
	load_ok(SOURCE "broker: {port: 65535, max_inflight: 1}\n"
	               "routes:\n"
	               "  - {table: a, topic: t, payload: p, qos: 0}\n"
	               "  - {table: b, topic: t, payload: p, qos: 2}\n",
	        &cfg);
	ck_assert_int_eq(cfg.broker.port, 65535);
	ck_assert_int_eq(cfg.broker.max_inflight, 1);
	ck_assert_int_eq(cfg.routes[0].qos, 0);
	ck_assert_int_eq(cfg.routes[1].qos, 2);
	config_finish(&cfg);
}
END_TEST

START_TEST(table_names_keep_case_and_default_to_public)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n"
	               "- table: Shop.Outbox_1\n"
	               "  topic: t\n"
	               "  payload: p\n"
	               "- {table: events, topic: t, payload: p}\n",
	        &cfg);
	ck_assert_str_eq(cfg.routes[0].schema, "Shop");
	ck_assert_str_eq(cfg.routes[0].table, "Outbox_1");
	ck_assert_int_eq(cfg.routes[0].line, 4);
	ck_assert_int_eq(cfg.routes[0].column, 3);
	ck_assert_str_eq(cfg.routes[1].schema, "public");
	ck_assert_str_eq(cfg.routes[1].table, "events");
	ck_assert_int_eq(cfg.routes[1].line, 7);
	ck_assert_int_eq(cfg.routes[1].column, 3);
	config_finish(&cfg);
}
END_TEST

/* The same reading for a table named anywhere else (the command line's --backfill ROUTE). */
START_TEST(table_name_splits_as_a_route_does)
{
	char *schema = NULL, *table = NULL;
	ck_assert(config_table_name("Shop.Outbox_1", &schema, &table));
	ck_assert_str_eq(schema, "Shop");
	ck_assert_str_eq(table, "Outbox_1");
	free(schema);
	free(table);
	ck_assert(config_table_name("outbox", &schema, &table));
	ck_assert_str_eq(schema, "public");
	ck_assert_str_eq(table, "outbox");
	free(schema);
	free(table);
	schema = table = NULL;
	const char *bad[] = { "", ".outbox", "public.", "a.b.c",
		              "t234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(!config_table_name(bad[i], &schema, &table), "%s", bad[i]);
		ck_assert_ptr_null(schema);
		ck_assert_ptr_null(table);
	}
}
END_TEST

START_TEST(empty_sections_take_defaults)
{
	struct config cfg;
	load_ok(SOURCE "broker: ~\n" ROUTES "delivery:\nlog:\n  # level: debug\n", &cfg);
	ck_assert_int_eq(cfg.broker.port, 1883);
	ck_assert_uint_eq(cfg.delivery.drain_timeout_ms, 10000);
	ck_assert_int_eq(cfg.log.level, LOG_INFO);
	config_finish(&cfg);
}
END_TEST

START_TEST(env_variables_expand_in_any_scalar)
{
	struct config cfg;
	setenv("TEST_CFG_PORT", "8883", 1);
	setenv("TEST_CFG_HOST", "db.example", 1);
	setenv("TEST_CFG_EMPTY", "", 1);
	load_ok("source:\n"
	        "  conninfo: \"host=${TEST_CFG_HOST} password=${TEST_CFG_EMPTY}x$ $5 ${} ${1A} "
	        "${TEST_CFG_HOST\"\n"
	        "  create_slot: ${TEST_CFG_EMPTY}no\n"
	        "broker:\n"
	        "  port: ${TEST_CFG_PORT}\n"
	        "  host: $${TEST_CFG_HOST}\n"
	        "  client_id: ${TEST_CFG_HOST}${TEST_CFG_PORT}\n"
	        "routes:\n"
	        "  - {table: outbox, topic: \"a/${TEST_CFG_PORT}/{id}\", payload: p}\n",
	        &cfg);
	/* In conninfo, values are quoted (conninfo_references_are_values); other $ stay. */
	ck_assert_str_eq(cfg.source.conninfo, "host='db.example' password='x$' $5 ${} ${1A} ${TEST_CFG_HOST");
	ck_assert(!cfg.source.create_slot);
	ck_assert_int_eq(cfg.broker.port, 8883);
	ck_assert_str_eq(cfg.broker.host, "$db.example");
	ck_assert_str_eq(cfg.broker.client_id, "db.example8883");
	ck_assert_str_eq(cfg.routes[0].topic, "a/8883/{id}");
	config_finish(&cfg);
	unsetenv("TEST_CFG_PORT");
	unsetenv("TEST_CFG_HOST");
	unsetenv("TEST_CFG_EMPTY");
}
END_TEST

/* Loads a file whose conninfo is the YAML scalar conninfo (written as is). */
static void load_conninfo(const char *conninfo, struct config *cfg)
{
	char *yaml;
	size_t size;
	FILE *f = open_memstream(&yaml, &size);
	fprintf(f, "source:\n  conninfo: %s\n" ROUTES, conninfo);
	fclose(f);
	load_ok(yaml, cfg);
	free(yaml);
}

/* What libpq reads for keyword in conninfo: its value, or NULL when it is not set. */
static char *libpq_value(const char *conninfo, const char *keyword)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	ck_assert_msg(opts != NULL, "libpq refuses %s: %s", conninfo, err ? err : "");
	char *value = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val)
			value = strdup(o->val);
	PQconninfoFree(opts);
	return value;
}

static void expect_libpq(const char *conninfo, const char *keyword, const char *expected)
{
	char *value = libpq_value(conninfo, keyword);
	if (!expected)
		ck_assert_msg(value == NULL, "%s: %s is \"%s\", expected unset", conninfo, keyword, value);
	else
		ck_assert_msg(value && strcmp(value, expected) == 0, "%s: %s is \"%s\", expected \"%s\"",
		              conninfo, keyword, value ? value : "(unset)", expected);
	free(value);
}

/* A value from the environment is text in its place, never more settings. */
START_TEST(conninfo_references_are_values)
{
	static const struct {
		const char *yaml;    /* the conninfo scalar as written in the file */
		const char *written; /* what the relay hands to libpq */
		const char *keyword, *value;
	} cases[] = {
		/* The adversarial case: a database name that would set the port. */
		{ "\"host=h dbname=${CI_SHOP_PORT}\"", "host=h dbname='shop port=1'", "dbname",
		  "shop port=1" },
		{ "\"host=h dbname=${CI_SHOP_PORT}\"", "host=h dbname='shop port=1'", "port", NULL },
		/* After '=' with blanks around it, as libpq allows. */
		{ "\"dbname = ${CI_SHOP_PORT} user=u\"", "dbname = 'shop port=1' user=u", "user", "u" },
		/* Two references and literal text in one value make one value. */
		{ "\"dbname=${CI_QUOTE}${CI_BACKSLASH} port=5\"", "dbname='it\\'sa\\\\b' port=5", "dbname",
		  "it'sa\\b" },
		{ "\"dbname=pre_${CI_SHOP_PORT}_post\"", "dbname='pre_shop port=1_post'", "dbname",
		  "pre_shop port=1_post" },
		/* Literal parts keep libpq's meaning: an escaped blank, a quote inside an
		 * unquoted value. */
		{ "\"dbname=a\\\\ b'c${CI_QUOTE}\"", "dbname='a b\\'cit\\'s'", "dbname", "a b'cit's" },
		{ "\"dbname=${CI_QUOTE}x\\\\ y'z port=1\"", "dbname='it\\'sx\\ y\\'z' port=1", "dbname",
		  "it'sx y'z" },
		/* A backslash that ends the value escapes nothing. */
		{ "\"dbname=${CI_QUOTE}\\\\\"", "dbname='it\\'s'", "dbname", "it's" },
		/* Inside a value quoted in the file: only escaped. */
		{ "\"dbname='my ${CI_QUOTE} db' port=5\"", "dbname='my it\\'s db' port=5", "dbname",
		  "my it's db" },
		{ "\"dbname='${CI_BACKSLASH}'\"", "dbname='a\\\\b'", "dbname", "a\\b" },
		/* An empty value is still a value. */
		{ "\"password=${CI_EMPTY} dbname=d\"", "password='' dbname=d", "dbname", "d" },
		/* Where a keyword may start, the text is the operator's conninfo, as written... */
		{ "\"${CI_WHOLE}\"", "host=h port=7 dbname=d", "port", "7" },
		{ "\"${CI_WHOLE} user=${CI_SHOP_PORT}\"", "host=h port=7 dbname=d user='shop port=1'", "user",
		  "shop port=1" },
		/* ... and what it leaves open is a value like any other. */
		{ "\"${CI_DBNAME_IS}${CI_SHOP_PORT}\"", "dbname='shop port=1'", "port", NULL },
		{ "\"${CI_URI}\"", "postgresql://u@h:7/d", "port", "7" },
		/* A URI: percent-encoded, so it stays in its component. */
		{ "\"postgresql://${CI_USER}:${CI_PASSWORD}@h:5/"
		  "${CI_SHOP_PORT}?application_name=${CI_QUOTE}\"",
		  "postgresql://us%40r:%3A%2F%40%3F%26%3D%25x@h:5/shop%20port%3D1?application_name=it%27s",
		  "password", ":/@?&=%x" },
		{ "\"postgres://${CI_USER}@h/${CI_SHOP_PORT}\"", "postgres://us%40r@h/shop%20port%3D1",
		  "dbname", "shop port=1" },
		{ "\"postgres://${CI_USER}@h/${CI_SHOP_PORT}\"", "postgres://us%40r@h/shop%20port%3D1",
		  "user", "us@r" },
		{ "\"postgresql://h/d?port=${CI_PORT}\"", "postgresql://h/d?port=5433", "port", "5433" },
	};
	setenv("CI_SHOP_PORT", "shop port=1", 1);
	setenv("CI_QUOTE", "it's", 1);
	setenv("CI_BACKSLASH", "a\\b", 1);
	setenv("CI_EMPTY", "", 1);
	setenv("CI_WHOLE", "host=h port=7 dbname=d", 1);
	setenv("CI_DBNAME_IS", "dbname=", 1);
	setenv("CI_URI", "postgresql://u@h:7/d", 1);
	setenv("CI_USER", "us@r", 1);
	setenv("CI_PASSWORD", ":/@?&=%x", 1);
	setenv("CI_PORT", "5433", 1);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config cfg;
		load_conninfo(cases[i].yaml, &cfg);
		ck_assert_msg(strcmp(cfg.source.conninfo, cases[i].written) == 0, "%s gave %s, expected %s",
		              cases[i].yaml, cfg.source.conninfo, cases[i].written);
		expect_libpq(cfg.source.conninfo, cases[i].keyword, cases[i].value);
		config_finish(&cfg);
	}
}
END_TEST

/* Quoting is for conninfo only: other keys take the value as it is. */
START_TEST(only_conninfo_references_are_quoted)
{
	struct config cfg;
	setenv("CI_ODD", "a b'c\\d", 1);
	load_ok("source:\n  conninfo: dbname=x\n"
	        "broker:\n  client_id: ${CI_ODD}\n"
	        "routes:\n  - {table: outbox, topic: \"t/${CI_ODD}\", payload: p}\n",
	        &cfg);
	ck_assert_str_eq(cfg.broker.client_id, "a b'c\\d");
	ck_assert_str_eq(cfg.routes[0].topic, "t/a b'c\\d");
	config_finish(&cfg);
}
END_TEST

/* ---- The file itself ---- */

START_TEST(missing_file)
{
	expect_path_errors("no-such.yaml", 1, "no-such.yaml: cannot open: No such file or directory\n");
}
END_TEST

START_TEST(directory_instead_of_file)
{
	expect_path_errors(".", 1, ".: cannot read: Is a directory\n");
}
END_TEST

START_TEST(empty_file)
{
	expect_error("", "cfg.yaml:1:1: document: expected a mapping, got an empty file\n");
	expect_error("# nothing but a comment\n",
	             "cfg.yaml:1:1: document: expected a mapping, got an empty file\n");
}
END_TEST

START_TEST(top_level_not_a_mapping)
{
	expect_error("- source\n", "cfg.yaml:1:1: document: expected a mapping, got a sequence\n");
	expect_error("\n# leading comment\nhello\n",
	             "cfg.yaml:3:1: document: expected a mapping, got a scalar\n");
}
END_TEST

START_TEST(second_document)
{
	expect_error(SOURCE ROUTES "---\nlog: {level: debug}\n",
	             "cfg.yaml:5:1: document: expected a single YAML document\n");
}
END_TEST

START_TEST(yaml_syntax_error)
{
	expect_fixture_errors(FIXTURE("bad-syntax.yaml"), 1,
	                      ":4:7: yaml: did not find expected ',' or ']'\n");
	expect_error(SOURCE "\tslot: x\n" ROUTES,
	             "cfg.yaml:3:1: yaml: found a tab character that violates indentation\n");
	expect_error(SOURCE "  slot: *nowhere\n" ROUTES, "cfg.yaml:3:9: yaml: found undefined alias\n");
}
END_TEST

START_TEST(yaml_reader_error_has_a_position)
{
	expect_error(SOURCE "  slot: \"ab\xff\"\n" ROUTES,
	             "cfg.yaml:3:12: yaml: invalid leading UTF-8 octet\n");
}
END_TEST

START_TEST(syntax_error_in_second_document)
{
	expect_error(SOURCE ROUTES "---\n[a\n", "cfg.yaml:7:1: yaml: did not find expected ',' or ']'\n");
}
END_TEST

START_TEST(file_size)
{
	/* Longer than one read, but valid. */
	FILE *f = fopen(SCRATCH_FILE, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 500; i++)
		fputs("# a comment line to make the file longer than one read\n", f);
	fputs(SOURCE ROUTES, f);
	ck_assert_int_eq(fclose(f), 0);
	struct config cfg;
	char *errs;
	ck_assert_int_eq(load_path(SCRATCH_FILE, &cfg, &errs), 0);
	ck_assert_str_eq(errs, "");
	ck_assert_int_eq(cfg.routes[0].line, 504);
	config_finish(&cfg);
	free(errs);
	/* Absurdly large: refused before parsing. */
	f = fopen(SCRATCH_FILE, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 20000; i++)
		fputs("# a comment line to make the file larger than a megabyte\n", f);
	ck_assert_int_eq(fclose(f), 0);
	expect_path_errors(SCRATCH_FILE, 1, "cfg.yaml: cannot read: larger than 1048576 bytes\n");
}
END_TEST

/* ---- Keys ---- */

START_TEST(unknown_keys_with_and_without_suggestion)
{
	expect_fixture_errors(FIXTURE("bad-unknown-keys.yaml"), 4,
	                      ":3:3: source.slott: unknown key (did you mean \"slot\"?)\n"
	                      ":4:3: source.wal_level: unknown key\n"
	                      ":5:1: brokr: unknown key (did you mean \"broker\"?)\n"
	                      ":11:5: routes[0].qso: unknown key (did you mean \"qos\"?)\n");
}
END_TEST

START_TEST(unknown_key_suggestions_by_prefix_and_level)
{
	expect_errors(SOURCE "  pub: x\n"
	                     "  reconnect: {minimum: 1s, Max: 2s, jitter: 1s}\n"
	                     "broker:\n"
	                     "  sasl: {}\n" ROUTES "Log: {level: info}\n",
	              6,
	              "cfg.yaml:3:3: source.pub: unknown key (did you mean \"publication\"?)\n"
	              "cfg.yaml:4:15: source.reconnect.minimum: unknown key (did you mean \"min\"?)\n"
	              "cfg.yaml:4:28: source.reconnect.Max: unknown key (did you mean \"max\"?)\n"
	              "cfg.yaml:4:37: source.reconnect.jitter: unknown key\n"
	              "cfg.yaml:6:3: broker.sasl: unknown key\n"
	              "cfg.yaml:9:1: Log: unknown key (did you mean \"log\"?)\n");
}
END_TEST

/* Dotted keys would reach into sections past the duplicate check: they are unknown. */
START_TEST(dotted_and_empty_keys)
{
	expect_errors(SOURCE "source.slot: x\n\"\": 1\nbroker:\n  \"\": 2\n  reconnect.min: 1s\n" ROUTES, 4,
	              "cfg.yaml:3:1: source.slot: unknown key (did you mean \"source\"?)\n"
	              "cfg.yaml:4:1: document: expected a non-empty key\n"
	              "cfg.yaml:6:3: broker: expected a non-empty key\n"
	              "cfg.yaml:7:3: broker.reconnect.min: unknown key (did you mean \"reconnect\"?)\n");
}
END_TEST

START_TEST(duplicate_keys)
{
	expect_errors(SOURCE "  slot: a\n"
	                     "  slot: b\n" ROUTES "source:\n"
	                     "  conninfo: dbname=other\n",
	              2,
	              "cfg.yaml:4:3: source.slot: duplicate key, first set at line 3\n"
	              "cfg.yaml:7:1: source: duplicate key, first set at line 1\n");
}
END_TEST

START_TEST(missing_required_keys)
{
	/* Pointing at the mapping that lacks the key: the root, or the section. */
	expect_errors("log: {level: info}\n", 2,
	              "cfg.yaml:1:1: source.conninfo: required key is missing\n"
	              "cfg.yaml:1:1: routes: required key is missing\n");
	expect_error("routes:\n  - {table: t, topic: t, payload: p}\nsource:\n  slot: x\n",
	             "cfg.yaml:4:3: source.conninfo: required key is missing\n");
	expect_errors(SOURCE "routes:\n  - qos: 1\n  - {table: t, topic: t, payload: p}\n  - {topic: t}\n", 3,
	              "cfg.yaml:4:5: routes[0].topic: required key is missing\n"
	              "cfg.yaml:4:5: routes[0].table: required key is missing\n"
	              "cfg.yaml:6:5: routes[2].table: required key is missing\n");
	/* A table route needs its payload column. */
	expect_error(SOURCE "routes:\n  - {table: t, topic: t}\n",
	             "cfg.yaml:4:5: routes[0].payload: required key is missing\n");
}
END_TEST

/* A route is a table route or a message route, and a message route names no columns. */
START_TEST(message_routes)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n  - {message_prefix: \"shop.*\", topic: \"m/{prefix}\", qos: 2}\n"
	               "  - {table: t, topic: t, payload: p}\n",
	        &cfg);
	ck_assert_str_eq(cfg.routes[0].message_prefix, "shop.*");
	ck_assert_ptr_null(cfg.routes[0].table);
	ck_assert_ptr_null(cfg.routes[0].payload_column);
	ck_assert_int_eq(cfg.routes[0].qos, 2);
	ck_assert_ptr_null(cfg.routes[1].message_prefix);
	ck_assert_str_eq(cfg.routes[1].table, "t");
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {table: t, message_prefix: m, topic: t, payload: p}\n",
	             "cfg.yaml:4:5: routes[0]: expected either table or message_prefix, not both\n");
	expect_error(
	        SOURCE "routes:\n  - {message_prefix: m, topic: t, payload: p}\n",
	        "cfg.yaml:4:5: routes[0].payload: a message route has no columns: its body is the message"
	        " content and its id <commit-lsn>:<index>\n");
	expect_error(
	        SOURCE "routes:\n  - {message_prefix: m, topic: t, correlation_data: c}\n",
	        "cfg.yaml:4:5: routes[0].correlation_data: a message route has no columns: its body is the"
	        " message content and its id <commit-lsn>:<index>\n");
	expect_error(
	        SOURCE "routes:\n  - {message_prefix: m, topic: t, event_id: id}\n",
	        "cfg.yaml:4:5: routes[0].event_id: a message route has no columns: its body is the message"
	        " content and its id <commit-lsn>:<index>\n");
}
END_TEST

/* changes: which of a table's changes a route publishes (doc/design.md §5). */
START_TEST(changes_lists_the_published_changes)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n  - {table: t, topic: t, payload: p}\n"
	               "  - {table: u, topic: t, payload: p, changes: [insert, update, delete]}\n"
	               "  - {table: v, topic: t, payload: p, changes: [delete]}\n",
	        &cfg);
	ck_assert_uint_eq(cfg.routes[0].changes, ROUTE_CHANGE_INSERT);
	ck_assert_uint_eq(cfg.routes[1].changes,
	                  ROUTE_CHANGE_INSERT | ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE);
	ck_assert_uint_eq(cfg.routes[2].changes, ROUTE_CHANGE_DELETE);
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, changes: [insert, upsert]}\n",
	             "cfg.yaml:4:56: routes[0].changes: expected insert, update or delete, got \"upsert\"\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, changes: [update, update]}\n",
	             "cfg.yaml:4:56: routes[0].changes: update is listed twice\n");
	expect_error(
	        SOURCE "routes:\n  - {table: t, topic: t, payload: p, changes: []}\n",
	        "cfg.yaml:4:47: routes[0].changes: expected at least one of insert, update and delete\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, changes: update}\n",
	             "cfg.yaml:4:47: routes[0].changes: expected a list of insert, update and delete, such as"
	             " [insert, update, delete], got a scalar\n");
	expect_error(SOURCE "routes:\n  - {message_prefix: m, topic: t, changes: [insert]}\n",
	             "cfg.yaml:4:44: routes[0].changes: a message route has no rows: changes applies to"
	             " table routes\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, cleanup: delete,\n"
	                    "     changes: [insert, delete]}\n",
	             "cfg.yaml:5:15: routes[0].changes: cleanup: delete deletes the rows whose events are"
	             " published, and delete in changes would publish those deletions too: leave out one"
	             " of them\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, changes: [update],\n"
	                    "     properties: {op: o}}\n",
	             "cfg.yaml:5:18: routes[0].properties.op: the relay sets op on every message of a route"
	             " that publishes updates or deletes; choose another name\n");
	load_ok(SOURCE "routes:\n  - {table: t, topic: t, payload: p, properties: {op: o}}\n", &cfg);
	config_finish(&cfg);
}
END_TEST

/* where and columns: the publication's row filter and column list (PostgreSQL 15). */
START_TEST(where_and_columns_filter_table_routes)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n  - {table: t, topic: t, payload: row, where: \"kind = 'a'\","
	               " columns: [id, kind, body]}\n"
	               "  - {table: u, topic: t, payload: p}\n",
	        &cfg);
	ck_assert_str_eq(cfg.routes[0].row_filter, "kind = 'a'");
	ck_assert_uint_eq(cfg.routes[0].ncolumns, 3);
	ck_assert_str_eq(cfg.routes[0].columns[0], "id");
	ck_assert_str_eq(cfg.routes[0].columns[2], "body");
	ck_assert_ptr_null(cfg.routes[1].row_filter);
	ck_assert_uint_eq(cfg.routes[1].ncolumns, 0);
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, columns: []}\n",
	             "cfg.yaml:4:47: routes[0].columns: expected at least one column\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, columns: [id, p, id]}\n",
	             "cfg.yaml:4:55: routes[0].columns: column \"id\" is listed twice\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, columns: id}\n",
	             "cfg.yaml:4:47: routes[0].columns: expected a list of column names, got a scalar\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, where: \"\"}\n",
	             "cfg.yaml:4:45: routes[0].where: expected a non-empty string, got \"\"\n");
	expect_error(SOURCE "routes:\n  - {message_prefix: m, topic: t, where: \"a = 1\"}\n",
	             "cfg.yaml:4:42: routes[0].where: a message route has no rows: where applies to"
	             " table routes\n");
	load_ok(SOURCE "routes:\n  - {table: t, topic: a, payload: p, where: \"a = 1\", columns: [p]}\n"
	               "  - {table: public.t, topic: b, payload: p, where: \"a = 1\", columns: [p]}\n",
	        &cfg);
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {table: t, topic: a, payload: p, where: \"a = 1\"}\n"
	                    "  - {table: public.t, topic: b, payload: p}\n",
	             "cfg.yaml:5:5: routes[1].where: routes[0] routes the same table with another where or"
	             " columns: the publication has one row filter and one column list per table; give"
	             " them the same\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, where: \"a = 1; b\"}\n",
	             "cfg.yaml:4:45: routes[0].where: expected one SQL expression, without ';' (write"
	             " chr(59) for the character)\n");
	expect_error(SOURCE "routes:\n  - {message_prefix: m, topic: t, columns: [a]}\n",
	             "cfg.yaml:4:44: routes[0].columns: a message route has no rows: columns applies to"
	             " table routes\n");
}
END_TEST

/* cleanup: delete deletes the rows of a table route; a message leaves none. */
START_TEST(cleanup_applies_to_table_routes)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n  - {table: t, topic: t, payload: p, cleanup: delete}\n"
	               "  - {table: u, topic: t, payload: p, cleanup: none}\n"
	               "  - {message_prefix: m, topic: t, cleanup: none}\n",
	        &cfg);
	ck_assert_int_eq(cfg.routes[0].cleanup, CLEANUP_DELETE);
	ck_assert_int_eq(cfg.routes[1].cleanup, CLEANUP_NONE);
	ck_assert_int_eq(cfg.routes[2].cleanup, CLEANUP_NONE);
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {message_prefix: m, topic: t,\n     cleanup: delete}\n",
	             "cfg.yaml:5:15: routes[0].cleanup: a message route has no row to delete: cleanup"
	             " applies to table routes\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, cleanup: truncate}\n",
	             "cfg.yaml:4:47: routes[0].cleanup: expected one of none, delete, got \"truncate\"\n");
}
END_TEST

/* snapshot: initial is a backfill: a table route whose events carry an id column. */
START_TEST(snapshot_needs_a_table_route_with_an_event_id)
{
	struct config cfg;
	load_ok(SOURCE "routes:\n  - {table: t, topic: t, payload: p, event_id: id, snapshot: initial}\n"
	               "  - {table: u, topic: t, payload: p}\n",
	        &cfg);
	ck_assert_int_eq(cfg.routes[0].snapshot, SNAPSHOT_INITIAL);
	ck_assert_int_eq(cfg.routes[1].snapshot, SNAPSHOT_NEVER);
	config_finish(&cfg);
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, snapshot: initial}\n",
	             "cfg.yaml:4:48: routes[0].snapshot: snapshot: initial needs event_id: a row read from"
	             " the table cannot know the <commit-lsn>:<index> id its insert had\n");
	expect_error(SOURCE "routes:\n  - {message_prefix: m, topic: t, snapshot: initial}\n",
	             "cfg.yaml:4:45: routes[0].snapshot: a message route has no rows to take a snapshot of:"
	             " snapshot applies to table routes\n");
}
END_TEST

/* Dead letters are kept for days: the key holds more than the 49 days of the others. */
START_TEST(dead_letter_retention_bounds)
{
	struct config cfg;
	load_ok(SOURCE ROUTES "delivery: {dead_letter_retention: 3650d}\n", &cfg);
	ck_assert_uint_eq(cfg.delivery.dead_letter_retention_ms, 3650ull * 86400000ull);
	config_finish(&cfg);
	load_ok(SOURCE ROUTES "delivery: {dead_letter_retention: 0s}\n", &cfg);
	ck_assert_uint_eq(cfg.delivery.dead_letter_retention_ms, 0);
	config_finish(&cfg);
	load_ok(SOURCE ROUTES "delivery: {dead_letter_retention: 90m}\n", &cfg);
	ck_assert_uint_eq(cfg.delivery.dead_letter_retention_ms, 90ull * 60000ull);
	config_finish(&cfg);
	expect_error(SOURCE ROUTES "delivery: {dead_letter_retention: 3651d}\n",
	             "cfg.yaml:5:35: delivery.dead_letter_retention: expected a duration from 0s to 3650d,"
	             " got \"3651d\"\n");
	expect_error(SOURCE ROUTES "delivery: {dead_letter_retention: 99999999999999999999d}\n",
	             "cfg.yaml:5:35: delivery.dead_letter_retention: expected a duration from 0s to 3650d,"
	             " got \"99999999999999999999d\"\n");
	expect_error(SOURCE ROUTES "delivery: {dead_letter_retention: 30}\n",
	             "cfg.yaml:5:35: delivery.dead_letter_retention: expected a duration with a unit, e.g."
	             " 250ms, 30s, 5m, got \"30\"\n");
	expect_error(SOURCE ROUTES "delivery: {dead_letter_retention: 1y}\n",
	             "cfg.yaml:5:35: delivery.dead_letter_retention: expected a duration: a whole number"
	             " followed by ms, s, m, h or d, got \"1y\"\n");
}
END_TEST

/* An empty section stands for an empty mapping, so what it must hold is still missing. */
START_TEST(empty_section_still_needs_required_keys)
{
	expect_error("source:\n" ROUTES, "cfg.yaml:1:8: source.conninfo: required key is missing\n");
	expect_error("source: ~\n" ROUTES, "cfg.yaml:1:9: source.conninfo: required key is missing\n");
}
END_TEST

/* A wrongly typed section is one error, not one per required key inside it. */
START_TEST(wrong_node_types)
{
	expect_error("source: dbname=shop\n" ROUTES,
	             "cfg.yaml:1:9: source: expected a mapping, got a scalar\n");
	expect_error(SOURCE "  reconnect: [1s, 2s]\n" ROUTES,
	             "cfg.yaml:3:14: source.reconnect: expected a mapping, got a sequence\n");
	expect_error(SOURCE "broker:\n  port: {value: 1}\n" ROUTES,
	             "cfg.yaml:4:9: broker.port: expected a scalar, got a mapping\n");
	expect_error(SOURCE "broker:\n  host: [a, b]\n" ROUTES,
	             "cfg.yaml:4:9: broker.host: expected a scalar, got a sequence\n");
	expect_error(SOURCE "? [a, b]\n: 1\n" ROUTES,
	             "cfg.yaml:3:3: document: expected a scalar key, got a sequence\n");
	expect_error(SOURCE "broker:\n  ? {a: 1}\n  : 2\n" ROUTES,
	             "cfg.yaml:4:5: broker: expected a scalar key, got a mapping\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, [q]: 1}\n",
	             "cfg.yaml:4:38: routes[0]: expected a scalar key, got a sequence\n");
}
END_TEST

START_TEST(routes_must_be_a_non_empty_sequence_of_mappings)
{
	expect_error(SOURCE "routes: []\n", "cfg.yaml:3:9: routes: expected at least one route\n");
	expect_error(SOURCE "routes:\n", "cfg.yaml:3:8: routes: expected a sequence, got an empty value\n");
	expect_error(SOURCE "routes:\n  table: outbox\n",
	             "cfg.yaml:4:3: routes: expected a sequence, got a mapping\n");
	expect_errors(SOURCE "routes:\n  - outbox\n  - [a]\n", 2,
	              "cfg.yaml:4:5: routes[0]: expected a mapping, got a scalar\n"
	              "cfg.yaml:5:5: routes[1]: expected a mapping, got a sequence\n");
}
END_TEST

/* ---- Values, one type at a time ---- */

START_TEST(bad_strings)
{
	expect_error(SOURCE "broker:\n  host: \"\"\n" ROUTES,
	             "cfg.yaml:4:9: broker.host: expected a non-empty string, got \"\"\n");
	expect_error(SOURCE "broker:\n  client_id:\n" ROUTES,
	             "cfg.yaml:4:13: broker.client_id: expected a non-empty string, got \"\"\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: "
	                    "a234567890123456789012345678901234567890123456789012345678901234}\n",
	             "cfg.yaml:4:35: routes[0].payload: expected a string of 1 to 63 bytes, got "
	             "\"a234567890123456789012345678901234567890123456789012345678901234\"\n");
	expect_error(SOURCE "routes:\n  - {table: t, topic: t, payload: p, event_id: ''}\n",
	             "cfg.yaml:4:48: routes[0].event_id: expected a string of 1 to 63 bytes, got \"\"\n");
}
END_TEST

START_TEST(bad_identifiers)
{
	static const char *const names[] = {
		"Outbox",
		"1slot",
		"my-slot",
		"\"\"",
		"a234567890123456789012345678901234567890123456789012345678901234",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char yaml[256], expected[512];
		snprintf(yaml, sizeof yaml, SOURCE "  slot: %s\n" ROUTES, names[i]);
		snprintf(expected, sizeof expected,
		         "cfg.yaml:3:9: source.slot: expected a name of 1 to 63 lower-case letters, "
		         "digits and underscores, not starting with a digit, got \"%s\"\n",
		         names[i][0] == '"' ? "" : names[i]);
		expect_error(yaml, expected);
	}
	expect_error(SOURCE ROUTES "delivery: {bookkeeping_schema: relay.books}\n",
	             "cfg.yaml:5:32: delivery.bookkeeping_schema: expected a name of 1 to 63 lower-case "
	             "letters, digits and underscores, not starting with a digit, got \"relay.books\"\n");
	/* 63 bytes is the limit, not an error. */
	struct config cfg;
	load_ok(SOURCE
	        "  publication: a23456789012345678901234567890123456789012345678901234567890123\n" ROUTES,
	        &cfg);
	ck_assert_uint_eq(strlen(cfg.source.publication), 63);
	config_finish(&cfg);
}
END_TEST

START_TEST(bad_table_names)
{
	static const char *const names[] = { "a.b.c", ".outbox", "public.", "\"\"" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char yaml[256], expected[512];
		snprintf(yaml, sizeof yaml, SOURCE "routes:\n  - table: %s\n    topic: t\n    payload: p\n",
		         names[i]);
		snprintf(expected, sizeof expected,
		         "cfg.yaml:4:12: routes[0].table: expected \"table\" or \"schema.table\", each "
		         "name 1 to 63 bytes, got \"%s\"\n",
		         names[i][0] == '"' ? "" : names[i]);
		expect_error(yaml, expected);
	}
}
END_TEST

START_TEST(bad_bool)
{
	expect_error(SOURCE "  create_slot: maybe\n" ROUTES,
	             "cfg.yaml:3:16: source.create_slot: expected true or false, got \"maybe\"\n");
	expect_error(SOURCE "  create_publication: 1\n" ROUTES,
	             "cfg.yaml:3:23: source.create_publication: expected true or false, got \"1\"\n");
}
END_TEST

START_TEST(bad_ints)
{
	static const char *const ports[] = {
		"70000", "0", "-1", "abc", "12.5", "0x10", "+80", "", "99999999999999999999", "1883 "
	};
	for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
		char yaml[256], expected[256];
		snprintf(yaml, sizeof yaml, SOURCE "broker:\n  port: \"%s\"\n" ROUTES, ports[i]);
		snprintf(expected, sizeof expected,
		         "cfg.yaml:4:9: broker.port: expected an integer from 1 to 65535, got \"%s\"\n",
		         ports[i]);
		expect_error(yaml, expected);
	}
	expect_errors(
	        SOURCE "broker: {max_inflight: 65536}\n"
	               "routes:\n  - {table: t, topic: t, payload: p, qos: 3}\n",
	        2,
	        "cfg.yaml:3:24: broker.max_inflight: expected an integer from 1 to 65535, got \"65536\"\n"
	        "cfg.yaml:5:43: routes[0].qos: expected an integer from 0 to 2, got \"3\"\n");
}
END_TEST

START_TEST(bad_durations)
{
	expect_errors(SOURCE "  status_interval: 10\n"
	                     "  reconnect: {min: 5w, max: 1.5s}\n"
	                     "broker:\n"
	                     "  reconnect: {min: -1s, max: ms}\n" ROUTES
	                     "delivery: {drain_timeout: 10 s, checkpoint_interval: 10S}\n",
	              7,
	              "cfg.yaml:3:20: source.status_interval: expected a duration with a unit, e.g. "
	              "250ms, 30s, 5m, got \"10\"\n"
	              "cfg.yaml:4:20: source.reconnect.min: expected a duration: a whole number "
	              "followed by ms, s, m, h or d, got \"5w\"\n"
	              "cfg.yaml:4:29: source.reconnect.max: expected a duration: a whole number "
	              "followed by ms, s, m, h or d, got \"1.5s\"\n"
	              "cfg.yaml:6:20: broker.reconnect.min: expected a duration: a whole number "
	              "followed by ms, s, m, h or d, got \"-1s\"\n"
	              "cfg.yaml:6:30: broker.reconnect.max: expected a duration: a whole number "
	              "followed by ms, s, m, h or d, got \"ms\"\n"
	              "cfg.yaml:9:27: delivery.drain_timeout: expected a duration: a whole number "
	              "followed by ms, s, m, h or d, got \"10 s\"\n"
	              "cfg.yaml:9:54: delivery.checkpoint_interval: expected a duration: a whole "
	              "number followed by ms, s, m, h or d, got \"10S\"\n");
}
END_TEST

START_TEST(durations_out_of_range)
{
	expect_errors(
	        SOURCE "  status_interval: 99ms\n"
	               "  reconnect: {min: 0ms, max: 4294967296ms}\n"
	               "broker:\n"
	               "  keepalive: 4s\n"
	               "  reconnect: {min: 1ms, max: 99999999999999999999h}\n" ROUTES
	               "delivery: {checkpoint_interval: 61m, drain_timeout: 1194h}\n"
	               "log: {stats_interval: 50d}\n",
	        8,
	        "cfg.yaml:3:20: source.status_interval: expected a duration of at least 100ms, "
	        "got \"99ms\"\n"
	        "cfg.yaml:4:20: source.reconnect.min: expected a duration of at least 1ms, got \"0ms\"\n"
	        "cfg.yaml:4:30: source.reconnect.max: expected a duration of at most 4294967295ms, "
	        "got \"4294967296ms\"\n"
	        "cfg.yaml:6:14: broker.keepalive: expected a duration from 5s to 65535s, got \"4s\"\n"
	        "cfg.yaml:7:30: broker.reconnect.max: expected a duration of at most 4294967295ms, "
	        "got \"99999999999999999999h\"\n"
	        "cfg.yaml:10:33: delivery.checkpoint_interval: expected a duration from 10ms to 1h, "
	        "got \"61m\"\n"
	        "cfg.yaml:10:53: delivery.drain_timeout: expected a duration of at most 4294967295ms, "
	        "got \"1194h\"\n"
	        "cfg.yaml:11:23: log.stats_interval: expected a duration of at most 4294967295ms, "
	        "got \"50d\"\n");
}
END_TEST

START_TEST(bad_enums)
{
	expect_errors(SOURCE "broker: {protocol: mqtt5}\n" ROUTES "log:\n  level: INFO\n", 2,
	              "cfg.yaml:3:20: broker.protocol: expected one of mqttv5, mqttv311, got \"mqtt5\"\n"
	              "cfg.yaml:7:10: log.level: expected one of error, warn, info, debug, got \"INFO\"\n");
}
END_TEST

START_TEST(reconnect_min_above_max)
{
	expect_error(SOURCE "  reconnect: {min: 2s, max: 1s}\n" ROUTES,
	             "cfg.yaml:3:20: source.reconnect.min: expected a duration no longer than "
	             "source.reconnect.max (1s)\n");
	/* Only max written: the default min is not the file's fault, max is. */
	expect_error(SOURCE "broker:\n  reconnect:\n    max: 50ms\n" ROUTES,
	             "cfg.yaml:5:10: broker.reconnect.max: expected a duration no shorter than "
	             "broker.reconnect.min (100ms)\n");
	expect_error(SOURCE "  reconnect: {min: 3m, max: 2m}\n" ROUTES,
	             "cfg.yaml:3:20: source.reconnect.min: expected a duration no longer than "
	             "source.reconnect.max (2m)\n");
	expect_error(SOURCE "broker:\n  reconnect:\n    min: 1m\n" ROUTES,
	             "cfg.yaml:5:10: broker.reconnect.min: expected a duration no longer than "
	             "broker.reconnect.max (5s)\n");
	/* Whole days are written as days. */
	expect_error(SOURCE "  reconnect: {min: 2d, max: 24h}\n" ROUTES,
	             "cfg.yaml:3:20: source.reconnect.min: expected a duration no longer than "
	             "source.reconnect.max (1d)\n");
	/* Equal is fine. */
	struct config cfg;
	load_ok(SOURCE "  reconnect: {min: 1s, max: 1000ms}\n" ROUTES, &cfg);
	config_finish(&cfg);
}
END_TEST

START_TEST(unset_env_variables)
{
	unsetenv("TEST_CFG_UNSET_A");
	unsetenv("TEST_CFG_UNSET_B");
	expect_errors(SOURCE "broker:\n"
	                     "  port: ${TEST_CFG_UNSET_A}\n"
	                     "  host: ${TEST_CFG_UNSET_A}-${TEST_CFG_UNSET_B}\n" ROUTES,
	              3,
	              "cfg.yaml:4:9: broker.port: environment variable TEST_CFG_UNSET_A is not set\n"
	              "cfg.yaml:5:9: broker.host: environment variable TEST_CFG_UNSET_A is not set\n"
	              "cfg.yaml:5:9: broker.host: environment variable TEST_CFG_UNSET_B is not set\n");
}
END_TEST

START_TEST(env_value_is_checked_after_expansion)
{
	setenv("TEST_CFG_BAD_PORT", "http", 1);
	expect_error(SOURCE "broker: {port: \"${TEST_CFG_BAD_PORT}\"}\n" ROUTES,
	             "cfg.yaml:3:16: broker.port: expected an integer from 1 to 65535, got \"http\"\n");
	unsetenv("TEST_CFG_BAD_PORT");
}
END_TEST

/* ---- Output hygiene ---- */

START_TEST(conninfo_is_never_echoed)
{
	char *errs;
	struct config cfg;
	write_scratch("source:\n  conninfo: \"password=s3cret\\0 host=x\"\n" ROUTES);
	ck_assert_int_eq(load_path(SCRATCH_FILE, &cfg, &errs), 1);
	ck_assert_str_eq(errs, "cfg.yaml:2:13: source.conninfo: expected text without NUL characters\n");
	ck_assert_ptr_null(strstr(errs, "s3cret"));
	free(errs);
	expect_error("source:\n  conninfo: {password: s3cret}\n" ROUTES,
	             "cfg.yaml:2:13: source.conninfo: expected a scalar, got a mapping\n");
}
END_TEST

START_TEST(values_are_escaped_to_one_line)
{
	expect_error(SOURCE "  slot: \"a\\nb\\t\\\"c\\\\\\x01\"\n" ROUTES,
	             "cfg.yaml:3:9: source.slot: expected a name of 1 to 63 lower-case letters, digits "
	             "and underscores, not starting with a digit, got \"a\\nb\\t\\\"c\\\\\\x01\"\n");
	expect_error(SOURCE "  slot: |\n    line one\n    line two\n" ROUTES,
	             "cfg.yaml:3:9: source.slot: expected a name of 1 to 63 lower-case letters, digits "
	             "and underscores, not starting with a digit, got \"line one\\nline two\\n\"\n");
}
END_TEST

START_TEST(long_values_are_cut)
{
	expect_error(
	        SOURCE
	        "broker:\n  port: "
	        "1234567890123456789012345678901234567890123456789012345678901234567890123456789é9\n" ROUTES,
	        "cfg.yaml:4:9: broker.port: expected an integer from 1 to 65535, got "
	        "\"1234567890123456789012345678901234567890123456789012345678901234567890123456789...\"\n");
}
END_TEST

START_TEST(several_errors_reported_in_file_order)
{
	expect_fixture_errors(
	        FIXTURE("bad-several.yaml"), 12,
	        ":2:3: source.conninfo: required key is missing\n"
	        ":2:9: source.slot: expected a name of 1 to 63 lower-case letters, digits and "
	        "underscores, not starting with a digit, got \"Outbox\"\n"
	        ":3:20: source.status_interval: expected a duration with a unit, e.g. 250ms, 30s, 5m, "
	        "got \"10\"\n"
	        ":5:9: broker.port: expected an integer from 1 to 65535, got \"70000\"\n"
	        ":6:13: broker.protocol: expected one of mqttv5, mqttv311, got \"mqtt5\"\n"
	        ":7:14: broker.keepalive: expected a duration: a whole number followed by ms, s, m, h "
	        "or d, got \"30x\"\n"
	        ":9:5: routes[0].payload: required key is missing\n"
	        ":11:5: routes[1].topic: required key is missing\n"
	        ":11:12: routes[1].table: expected \"table\" or \"schema.table\", each name 1 to 63 "
	        "bytes, got \"a.b.c\"\n"
	        ":13:10: routes[1].qos: expected an integer from 0 to 2, got \"3\"\n"
	        ":15:24: delivery.checkpoint_interval: expected a duration from 10ms to 1h, got \"2h\"\n"
	        ":17:10: log.level: expected one of error, warn, info, debug, got \"verbose\"\n");
}
END_TEST

/* ---- Keys added with files, lists and maps ---- */

#define FILES "${OUTBOX_FIXTURES}/config/files/"

START_TEST(password_files)
{
	struct config cfg;
	load_ok("source:\n  conninfo: dbname=shop\n  password_file: " FILES "pg-password\n" ROUTES, &cfg);
	ck_assert_str_eq(cfg.source.password.value, "pg-secret");
	config_finish(&cfg);
	expect_error(
	        SOURCE "  password_file: /nonexistent/pw\n" ROUTES,
	        "cfg.yaml:3:18: source.password_file: expected a readable file (No such file or directory),"
	        " got \"/nonexistent/pw\"\n");
	char expected[PATH_MAX + 200];
	snprintf(expected, sizeof expected,
	         "cfg.yaml:3:18: source.password_file: expected a file holding a password, not an empty"
	         " file, got \"%s\"\n",
	         fixture_file("empty"));
	expect_error(SOURCE "  password_file: " FILES "empty\n" ROUTES, expected);
	expect_error(SOURCE "broker:\n  password_file: " FILES "mqtt-password\n" ROUTES,
	             "cfg.yaml:4:18: broker.password_file: a password needs broker.username as well\n");
}
END_TEST

/* The file is made anew: an earlier case may have left it read-only (0400), which only root
 * could open for writing. */
static void write_private(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* A password file its group or others may access is refused, as ssh refuses such a key:
 * the error names the key, the file, its mode and the fix. Only the owner's bits count. */
START_TEST(password_files_must_be_private)
{
	static const struct {
		mode_t mode;
		const char *error; /* NULL: accepted */
	} cases[] = {
		{ 0600, NULL },
		{ 0400, NULL },
		{ 0700, NULL },
		{ 0644, "mode 0644 lets its group and others in" },
		{ 0640, "mode 0640 lets its group in" },
		{ 0604, "mode 0604 lets others in" },
		{ 0620, "mode 0620 lets its group in" },
		{ 0602, "mode 0602 lets others in" },
		{ 0601, "mode 0601 lets others in" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_private("pw", "hunter2\n", cases[i].mode);
		char yaml[256], want[512];
		snprintf(yaml, sizeof yaml,
		         SOURCE "  password_file: pw\nbroker:\n  username: u\n"
		                "  password_file: pw\n" ROUTES);
		if (!cases[i].error) {
			struct config cfg;
			load_ok(yaml, &cfg);
			ck_assert_str_eq(cfg.source.password.value, "hunter2");
			ck_assert_str_eq(cfg.broker.password.value, "hunter2");
			config_finish(&cfg);
			continue;
		}
		snprintf(want, sizeof want,
		         "cfg.yaml:3:18: source.password_file: expected a file only its owner may access, as "
		         "for an"
		         " ssh key: %s; chmod 600 it, got \"pw\"\n"
		         "cfg.yaml:6:18: broker.password_file: expected a file only its owner may access, as "
		         "for an"
		         " ssh key: %s; chmod 600 it, got \"pw\"\n",
		         cases[i].error, cases[i].error);
		expect_errors(yaml, 2, want);
	}
	unlink("pw");
}
END_TEST

/* The password itself never reaches an error message, whatever goes wrong. */
START_TEST(password_is_never_echoed)
{
	FILE *f = fopen("two-lines", "w");
	ck_assert_ptr_nonnull(f);
	fputs("hunter2\nhunter3\n", f);
	fclose(f);
	struct config cfg;
	char *errs;
	write_scratch(SOURCE "  password_file: two-lines\n" ROUTES);
	ck_assert_int_eq(load_path(SCRATCH_FILE, &cfg, &errs), 1);
	ck_assert_str_eq(errs, "cfg.yaml:3:18: source.password_file: expected a password file of one line"
	                       " without NUL characters, got \"two-lines\"\n");
	ck_assert_ptr_null(strstr(errs, "hunter"));
	free(errs);
	unlink("two-lines");
}
END_TEST

START_TEST(broker_hosts)
{
	struct config cfg;
	load_ok(SOURCE "broker:\n  port: 1999\n  hosts: [a, \"b:2\", \"[::1]\"]\n" ROUTES, &cfg);
	ck_assert_uint_eq(cfg.broker.nhosts, 3);
	ck_assert_str_eq(cfg.broker.hosts[0].host, "a");
	ck_assert_int_eq(cfg.broker.hosts[0].port, 1999);
	ck_assert_int_eq(cfg.broker.hosts[1].port, 2);
	ck_assert_str_eq(cfg.broker.hosts[2].host, "::1");
	ck_assert_int_eq(cfg.broker.hosts[2].port, 1999);
	config_finish(&cfg);
	expect_error(SOURCE "broker:\n  host: a\n  hosts: [b]\n" ROUTES,
	             "cfg.yaml:5:10: broker.hosts: expected either broker.host or broker.hosts, not both\n");
	expect_error(
	        SOURCE "broker:\n  hosts: []\n" ROUTES,
	        "cfg.yaml:4:10: broker.hosts: expected a non-empty sequence of \"host\" or \"host:port\","
	        " got an empty sequence\n");
	expect_errors(SOURCE "broker:\n  hosts: [\"a:0\", \"b:x\", \"[::1\", \":1\", {c: 1}]\n" ROUTES, 5,
	              "cfg.yaml:4:11: broker.hosts[0]: expected \"host\", \"host:port\" or \"[address]:port\""
	              " with a port from 1 to 65535, got \"a:0\"\n"
	              "cfg.yaml:4:18: broker.hosts[1]: expected \"host\", \"host:port\" or \"[address]:port\""
	              " with a port from 1 to 65535, got \"b:x\"\n"
	              "cfg.yaml:4:25: broker.hosts[2]: expected \"host\", \"host:port\" or \"[address]:port\""
	              " with a port from 1 to 65535, got \"[::1\"\n"
	              "cfg.yaml:4:33: broker.hosts[3]: expected \"host\", \"host:port\" or \"[address]:port\""
	              " with a port from 1 to 65535, got \":1\"\n"
	              "cfg.yaml:4:39: broker.hosts[4]: expected a scalar, got a mapping\n");
}
END_TEST

START_TEST(tls_keys)
{
	struct config cfg;
	load_ok(SOURCE "broker:\n  tls: {}\n" ROUTES, &cfg);
	ck_assert(cfg.broker.tls.enabled);
	ck_assert_ptr_null(cfg.broker.tls.ca_file);
	ck_assert(cfg.broker.tls.verify_hostname);
	config_finish(&cfg);
	load_ok(SOURCE "broker:\n  tls:\n" ROUTES, &cfg);
	ck_assert(cfg.broker.tls.enabled);
	config_finish(&cfg);
	expect_error(
	        SOURCE "broker:\n  tls: {ca_file: /nonexistent/ca.pem}\n" ROUTES,
	        "cfg.yaml:4:18: broker.tls.ca_file: expected a readable file (No such file or directory),"
	        " got \"/nonexistent/ca.pem\"\n");
	expect_error(SOURCE "broker:\n  tls:\n    cert_file: " FILES "client.pem\n" ROUTES,
	             "cfg.yaml:5:16: broker.tls.cert_file: a client certificate needs broker.tls.key_file\n");
	expect_error(SOURCE "broker:\n  tls:\n    key_file: " FILES "client.key\n" ROUTES,
	             "cfg.yaml:5:15: broker.tls.key_file: a client key needs broker.tls.cert_file\n");
}
END_TEST

/* {client_id} is the one placeholder; the topic is stored with it put in, and must be one. */
START_TEST(status_topic)
{
	struct config cfg;
	load_ok(SOURCE
	        "broker:\n  client_id: relay-1\n  status_topic: \"outbox-relay/{client_id}/status\"\n" ROUTES,
	        &cfg);
	ck_assert_str_eq(cfg.broker.status_topic, "outbox-relay/relay-1/status");
	config_finish(&cfg);
	load_ok(SOURCE "broker:\n  status_topic: \"relay/{{x}}/{client_id}{client_id}\"\n" ROUTES, &cfg);
	ck_assert_str_eq(cfg.broker.status_topic, "relay/{x}/outbox-relayoutbox-relay");
	config_finish(&cfg);
	load_ok(SOURCE "broker:\n  status_topic: \"\"\n" ROUTES, &cfg);
	ck_assert_ptr_null(cfg.broker.status_topic);
	config_finish(&cfg);
	expect_error(SOURCE "broker:\n  status_topic: \"relay/{slot}/status\"\n" ROUTES,
	             "cfg.yaml:4:17: broker.status_topic: expected {client_id} as the only placeholder, got"
	             " {slot}\n");
	expect_error(SOURCE "broker:\n  status_topic: relay/+/status\n" ROUTES,
	             "cfg.yaml:4:17: broker.status_topic: expected a topic: \"+\" is an MQTT wildcard and"
	             " cannot appear in a topic\n");
	expect_error(SOURCE "broker:\n  status_topic: \"relay/#\"\n" ROUTES,
	             "cfg.yaml:4:17: broker.status_topic: expected a topic: \"#\" is an MQTT wildcard and"
	             " cannot appear in a topic\n");
	expect_error(SOURCE "broker:\n  status_topic: \"relay/{client_id\"\n" ROUTES,
	             "cfg.yaml:4:17: broker.status_topic: expected a topic: unclosed \"{\" at offset 6\n");
	expect_error(SOURCE "broker:\n  client_id: a+b\n  status_topic: \"s/{client_id}\"\n" ROUTES,
	             "cfg.yaml:5:17: broker.status_topic: broker.client_id cannot go in a topic: field"
	             " {client_id} contains \"+\"\n");
	expect_error(SOURCE "broker:\n  status_topic: $SYS/relay\n" ROUTES,
	             "cfg.yaml:4:17: broker.status_topic: expected a topic not starting with \"$\" (the"
	             " broker's own)\n");
	/* Without the placeholder, a client id no topic can hold does not matter. */
	load_ok(SOURCE "broker:\n  client_id: a#b\n  status_topic: relay/status\n" ROUTES, &cfg);
	ck_assert_str_eq(cfg.broker.status_topic, "relay/status");
	config_finish(&cfg);
}
END_TEST

START_TEST(route_properties)
{
	struct config cfg;
	load_ok(SOURCE
	        "routes:\n  - {table: t, topic: t, payload: p, properties: {a: x, \"${PROP_NAME}\": y}}\n",
	        &cfg);
	ck_assert_uint_eq(cfg.routes[0].nproperties, 2);
	ck_assert_str_eq(cfg.routes[0].properties[1].name, "expanded-name");
	ck_assert_str_eq(cfg.routes[0].properties[1].column, "y");
	config_finish(&cfg);
	expect_errors(SOURCE "routes:\n  - table: t\n    topic: t\n    payload: p\n    properties:\n"
	                     "      event-id: id\n      a: x\n      a: y\n      b: [c]\n      c: \"\"\n",
	              4,
	              "cfg.yaml:8:7: routes[0].properties.event-id: the relay sets this property on every"
	              " message; choose another name\n"
	              "cfg.yaml:10:7: routes[0].properties.a: duplicate key, first set at line 9\n"
	              "cfg.yaml:11:10: routes[0].properties.b: expected a scalar, got a sequence\n"
	              "cfg.yaml:12:10: routes[0].properties.c: expected a column name of 1 to 63 bytes, got "
	              "\"\"\n");
	expect_error(
	        SOURCE "routes:\n  - {table: t, topic: t, payload: p, properties: [a]}\n",
	        "cfg.yaml:4:50: routes[0].properties: expected a mapping of property name to column, got a"
	        " sequence\n");
	expect_error(
	        SOURCE "routes:\n  - {message_prefix: m, topic: t, properties: {a: b}}\n",
	        "cfg.yaml:4:5: routes[0].properties: a message route has no columns: its body is the message"
	        " content and its id <commit-lsn>:<index>\n");
}
END_TEST

START_TEST(password_in_conninfo_is_noticed)
{
	static const struct {
		const char *conninfo;
		bool holds;
	} cases[] = {
		{ "dbname=shop user=relay", false },     { "dbname=shop password=x", true },
		{ "dbname=shop PASSWORD = 'x'", true },  { "postgresql://relay:secret@db/shop", true },
		{ "postgresql://relay@db/shop", false }, { "postgresql://db/shop?sslmode=require", false },
		{ "postgresql://db:5432/shop", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config cfg = { 0 };
		cfg.source.conninfo = (char *)cases[i].conninfo;
		ck_assert_msg(config_holds_password(&cfg) == cases[i].holds, "%s", cases[i].conninfo);
	}
}
END_TEST

START_TEST(new_enums)
{
	expect_error(SOURCE ROUTES "delivery:\n  on_reject: drop\n",
	             "cfg.yaml:6:14: delivery.on_reject: expected one of dead_letter, stop, got \"drop\"\n");
	expect_error(SOURCE ROUTES "log:\n  format: text\n",
	             "cfg.yaml:6:11: log.format: expected one of logfmt, json, got \"text\"\n");
}
END_TEST

/* ---- Reloading ---- */

#define RESTART_PATHS_MAX 512

/* Appends each key config_restart_changes names to a string, each followed by a space. */
static void note_restart(void *ctx, const char *path)
{
	char *paths = ctx;
	size_t len = strlen(paths);
	snprintf(paths + len, RESTART_PATHS_MAX - len, "%s ", path);
}

/* The keys that take a restart from running to next, two valid files. */
static void expect_restart(const char *running_yaml, const char *next_yaml, const char *expected)
{
	struct config running, next;
	char paths[RESTART_PATHS_MAX] = "";
	load_ok(running_yaml, &running);
	load_ok(next_yaml, &next);
	config_restart_changes(&running, &next, note_restart, paths);
	ck_assert_str_eq(paths, expected);
	config_finish(&running);
	config_finish(&next);
}

static void write_file(const char *path, const char *text)
{
	unlink(path); /* see write_private */
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(same_file_needs_no_restart)
{
	struct config a, b;
	char paths[RESTART_PATHS_MAX] = "";
	load_fixture(FIXTURE("full.yaml"), &a);
	load_fixture(FIXTURE("full.yaml"), &b);
	config_restart_changes(&a, &b, note_restart, paths);
	ck_assert_str_eq(paths, "");
	config_finish(&a);
	config_finish(&b);
}
END_TEST

/* Routes, log.level and log.stats_interval apply on SIGHUP. */
START_TEST(reloadable_keys_need_no_restart)
{
	expect_restart(SOURCE ROUTES,
	               SOURCE "routes:\n  - {table: s.other, topic: u, payload: q, qos: 2}\n"
	                      "  - {message_prefix: m, topic: v}\n"
	                      "log:\n  level: debug\n  stats_interval: 0s\n",
	               "");
}
END_TEST

/* One key of each type changed; keys derived from others are named too. */
START_TEST(changed_keys_need_a_restart)
{
	expect_restart(SOURCE ROUTES,
	               "source:\n  conninfo: dbname=other\n  slot: other\n  create_slot: false\n"
	               "  status_interval: 5s\n" ROUTES,
	               "source.conninfo source.slot source.create_slot source.status_interval ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "broker:\n  port: 1884\n  client_id: other\n",
	               "broker.hosts broker.port broker.client_id ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "broker:\n  host: other\n", "broker.host broker.hosts ");
	expect_restart(SOURCE ROUTES "broker:\n  hosts: [a, b]\n",
	               SOURCE ROUTES "broker:\n  hosts: [a, \"b:1884\"]\n", "broker.hosts ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "broker:\n  protocol: mqttv311\n",
	               "broker.protocol broker.max_inflight ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "broker:\n  tls: {}\n", "broker.tls ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "broker:\n  status_topic: s\n", "broker.status_topic ");
	expect_restart(SOURCE ROUTES "broker:\n  tls: {}\n",
	               SOURCE ROUTES "broker:\n  tls:\n    ca_file: " FILES "ca.pem\n",
	               "broker.tls.ca_file ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "delivery:\n  on_reject: stop\n", "delivery.on_reject ");
	expect_restart(SOURCE ROUTES, SOURCE ROUTES "delivery:\n  dead_letter_retention: 31d\n",
	               "delivery.dead_letter_retention ");
}
END_TEST

/* A password file is compared by what it holds, not only by its name. */
START_TEST(changed_password_needs_a_restart)
{
	struct config running, next;
	char paths[RESTART_PATHS_MAX] = "";
	write_file("pw", "one\n");
	load_ok(SOURCE "  password_file: pw\n" ROUTES, &running);
	write_file("pw", "two\n");
	load_ok(SOURCE "  password_file: pw\n" ROUTES, &next);
	config_restart_changes(&running, &next, note_restart, paths);
	ck_assert_str_eq(paths, "source.password_file ");
	config_finish(&running);
	config_finish(&next);
	unlink("pw");
}
END_TEST

/* ---- The man page against the key table ---- */

#define MAN_PAGE FIXTURES_DIR "/../../man/outbox-relay.yaml.5"
#define MAN_KEYS_MAX 128

struct man_key {
	char path[96];
	char type[16];
	char fallback[64]; /* "" with no default */
	bool required, reloadable;
};

static char *trim_line(char *line)
{
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* Reads one entry that starts after ".It Ic PATH": the lines ".Vt TYPE ,", then
 * "default" + ".Ql VALUE ,", "required," or "no default,", then "[not ]reloadable.". */
static void read_man_entry(FILE *f, struct man_key *k)
{
	char line[256];
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_msg(sscanf(trim_line(line), ".Vt %15s ,", k->type) == 1, "%s: type line: %s", k->path,
	              line);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	trim_line(line);
	if (strcmp(line, "default") == 0) {
		ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
		trim_line(line);
		size_t len = strlen(line);
		ck_assert_msg(strncmp(line, ".Ql ", 4) == 0 && len > 6 && strcmp(line + len - 2, " ,") == 0,
		              "%s: default line: %s", k->path, line);
		snprintf(k->fallback, sizeof k->fallback, "%.*s", (int)(len - 6 > 63 ? 63 : len - 6),
		         line + 4);
	} else if (strcmp(line, "required,") == 0) {
		k->required = true;
	} else {
		ck_assert_msg(strcmp(line, "no default,") == 0, "%s: default line: %s", k->path, line);
	}
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	trim_line(line);
	ck_assert_msg(strcmp(line, "reloadable.") == 0 || strcmp(line, "not reloadable.") == 0,
	              "%s: reloadable line: %s", k->path, line);
	k->reloadable = line[0] == 'r';
}

static size_t read_man_keys(struct man_key *keys)
{
	FILE *f = fopen(MAN_PAGE, "r");
	ck_assert_msg(f != NULL, "cannot open " MAN_PAGE);
	char line[256];
	size_t n = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, ".It Ic ", 7) != 0)
			continue;
		ck_assert_uint_lt(n, MAN_KEYS_MAX);
		memset(&keys[n], 0, sizeof keys[n]);
		snprintf(keys[n].path, sizeof keys[n].path, "%.95s", trim_line(line + 7));
		read_man_entry(f, &keys[n]);
		n++;
	}
	fclose(f);
	return n;
}

/* Every key the loader accepts is documented as it behaves, and nothing else is. */
START_TEST(man_page_documents_every_key)
{
	static struct man_key man[MAN_KEYS_MAX];
	size_t nman = read_man_keys(man), ntable = 0;
	struct config_key_doc doc;
	for (size_t i = 0; config_key_doc(i, &doc); i++, ntable++) {
		char path[96];
		snprintf(path, sizeof path, "%s%s%s", doc.section, *doc.section ? "." : "", doc.path);
		const struct man_key *k = NULL;
		for (size_t j = 0; j < nman && !k; j++)
			if (strcmp(man[j].path, path) == 0)
				k = &man[j];
		ck_assert_msg(k != NULL, "%s is not in the man page", path);
		ck_assert_msg(strcmp(k->type, doc.type) == 0, "%s: man page says %s, table %s", path, k->type,
		              doc.type);
		ck_assert_msg(strcmp(k->fallback, doc.fallback ? doc.fallback : "") == 0,
		              "%s: man page default \"%s\", table \"%s\"", path, k->fallback,
		              doc.fallback ? doc.fallback : "");
		ck_assert_msg(k->required == doc.required, "%s: required differs", path);
		ck_assert_msg(k->reloadable == doc.reloadable, "%s: reloadable differs", path);
	}
	ck_assert_msg(nman == ntable, "the man page lists %zu keys, the table %zu", nman, ntable);
}
END_TEST

#define HELP_MAX 80

/* Every key, route keys included, says in one short line what it is for. */
START_TEST(every_key_has_one_line_of_help)
{
	struct config_key_doc doc;
	size_t n = 0;
	for (size_t i = 0; config_key_doc(i, &doc); i++, n++) {
		ck_assert_msg(doc.path != NULL, "key %zu has no path", i);
		ck_assert_msg(doc.help != NULL && *doc.help, "%s has no help", doc.path);
		ck_assert_msg(strchr(doc.help, '\n') == NULL, "%s: help is more than one line", doc.path);
		ck_assert_msg(strlen(doc.help) <= HELP_MAX, "%s: help is longer than %d bytes", doc.path,
		              HELP_MAX);
	}
	ck_assert_uint_gt(n, 0);
}
END_TEST

START_TEST(finish_twice_is_harmless)
{
	struct config cfg;
	load_fixture(FIXTURE("full.yaml"), &cfg);
	config_finish(&cfg);
	config_finish(&cfg);
	assert_released(&cfg);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *good = tcase_create("valid");
	tcase_add_test(good, full_fixture_sets_every_field);
	tcase_add_test(good, minimal_fixture_gets_every_default);
	tcase_add_test(good, example_config_shows_the_defaults);
	tcase_add_test(good, bools_accept_yaml_spellings);
	tcase_add_test(good, durations_accept_every_unit_and_bound);
	tcase_add_test(good, ints_accept_their_bounds);
	tcase_add_test(good, table_names_keep_case_and_default_to_public);
	tcase_add_test(good, table_name_splits_as_a_route_does);
	tcase_add_test(good, empty_sections_take_defaults);
	tcase_add_test(good, env_variables_expand_in_any_scalar);
	tcase_add_test(good, finish_twice_is_harmless);
	suite_add_tcase(s, good);

	TCase *file = tcase_create("file");
	tcase_add_test(file, missing_file);
	tcase_add_test(file, directory_instead_of_file);
	tcase_add_test(file, empty_file);
	tcase_add_test(file, top_level_not_a_mapping);
	tcase_add_test(file, second_document);
	tcase_add_test(file, yaml_syntax_error);
	tcase_add_test(file, yaml_reader_error_has_a_position);
	tcase_add_test(file, syntax_error_in_second_document);
	tcase_add_test(file, file_size);
	suite_add_tcase(s, file);

	TCase *keys = tcase_create("keys");
	tcase_add_test(keys, unknown_keys_with_and_without_suggestion);
	tcase_add_test(keys, unknown_key_suggestions_by_prefix_and_level);
	tcase_add_test(keys, dotted_and_empty_keys);
	tcase_add_test(keys, duplicate_keys);
	tcase_add_test(keys, missing_required_keys);
	tcase_add_test(keys, message_routes);
	tcase_add_test(keys, cleanup_applies_to_table_routes);
	tcase_add_test(keys, snapshot_needs_a_table_route_with_an_event_id);
	tcase_add_test(keys, changes_lists_the_published_changes);
	tcase_add_test(keys, where_and_columns_filter_table_routes);
	tcase_add_test(keys, empty_section_still_needs_required_keys);
	tcase_add_test(keys, wrong_node_types);
	tcase_add_test(keys, routes_must_be_a_non_empty_sequence_of_mappings);
	suite_add_tcase(s, keys);

	TCase *values = tcase_create("values");
	tcase_add_test(values, bad_strings);
	tcase_add_test(values, bad_identifiers);
	tcase_add_test(values, bad_table_names);
	tcase_add_test(values, bad_bool);
	tcase_add_test(values, bad_ints);
	tcase_add_test(values, bad_durations);
	tcase_add_test(values, durations_out_of_range);
	tcase_add_test(values, dead_letter_retention_bounds);
	tcase_add_test(values, bad_enums);
	tcase_add_test(values, reconnect_min_above_max);
	tcase_add_test(values, unset_env_variables);
	tcase_add_test(values, env_value_is_checked_after_expansion);
	tcase_add_test(values, conninfo_references_are_values);
	tcase_add_test(values, only_conninfo_references_are_quoted);
	tcase_add_test(values, password_files);
	tcase_add_test(values, password_files_must_be_private);
	tcase_add_test(values, password_is_never_echoed);
	tcase_add_test(values, broker_hosts);
	tcase_add_test(values, tls_keys);
	tcase_add_test(values, status_topic);
	tcase_add_test(values, route_properties);
	tcase_add_test(values, new_enums);
	tcase_add_test(values, password_in_conninfo_is_noticed);
	suite_add_tcase(s, values);

	TCase *output = tcase_create("output");
	tcase_add_test(output, conninfo_is_never_echoed);
	tcase_add_test(output, values_are_escaped_to_one_line);
	tcase_add_test(output, long_values_are_cut);
	tcase_add_test(output, several_errors_reported_in_file_order);
	suite_add_tcase(s, output);

	TCase *reload = tcase_create("reload");
	tcase_add_test(reload, same_file_needs_no_restart);
	tcase_add_test(reload, reloadable_keys_need_no_restart);
	tcase_add_test(reload, changed_keys_need_a_restart);
	tcase_add_test(reload, changed_password_needs_a_restart);
	suite_add_tcase(s, reload);

	TCase *docs = tcase_create("docs");
	tcase_add_test(docs, man_page_documents_every_key);
	tcase_add_test(docs, every_key_has_one_line_of_help);
	suite_add_tcase(s, docs);
	return s;
}

/* Copies tests/fixtures/config/files into the scratch directory: created under umask 077,
 * the copies are private to their owner, as password files must be. */
static int copy_fixture_files(void)
{
	char dir[PATH_MAX];
	snprintf(fixtures_copy, sizeof fixtures_copy, "%s/fixtures", scratch_dir);
	snprintf(dir, sizeof dir, "%s/config", fixtures_copy);
	if (mkdir(fixtures_copy, 0700) != 0 || mkdir(dir, 0700) != 0 || mkdir(fixture_file(""), 0700) != 0)
		return -1;
	DIR *d = opendir(FIXTURES_DIR "/config/files");
	if (!d)
		return -1;
	int status = 0;
	struct dirent *e;
	while (status == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char from[PATH_MAX], data[4096];
		snprintf(from, sizeof from, FIXTURES_DIR "/config/files/%s", e->d_name);
		FILE *in = fopen(from, "rb"), *out = fopen(fixture_file(e->d_name), "wb");
		size_t n = in ? fread(data, 1, sizeof data, in) : 0;
		if (!in || !out || ferror(in) || !feof(in) || fwrite(data, 1, n, out) != n)
			status = -1;
		if (in)
			fclose(in);
		if (out && fclose(out) != 0)
			status = -1;
	}
	closedir(d);
	return status;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	umask(077);
	setenv("PROP_NAME", "expanded-name", 1);
	if (!mkdtemp(scratch_dir) || chdir(scratch_dir) != 0 || copy_fixture_files() != 0) {
		perror("scratch directory");
		return EXIT_FAILURE;
	}
	setenv("OUTBOX_FIXTURES", fixtures_copy, 1);
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (chdir("/") != 0 || nftw(scratch_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
		perror("removing scratch directory");
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
