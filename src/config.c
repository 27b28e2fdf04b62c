/*
 * Configuration: the file read into struct config, and what callers ask of the result.
 *
 * The file is read whole and parsed by libyaml; its document is walked (config_walk.c)
 * against the key table (config_keys.c), each value converted by its key's type
 * (config_types.c; the routes and broker.hosts lists in config_routes.c and
 * config_brokers.c) after ${NAME} expansion (config_env.c). Then come the checks that no
 * single key can make. Errors are collected throughout (config_loader.c) and written at
 * the end in file order.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_keys.h"
#include "config_loader.h"
#include "config_types.h"
#include "config_walk.h"
#include "template.h"
#include "util.h"

#define FILE_SIZE_MAX ((size_t)1024 * 1024)

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

/* broker.status_topic: a topic template whose one placeholder is {client_id} ("{{" and "}}"
 * are braces), expanded here; an empty one is none. */
static void check_status_topic(struct loader *ld, const struct keyset *ks, struct config *cfg)
{
	static const char *const path = "broker.status_topic";
	const yaml_mark_t *mark = &state_of(ks, path)->mark;
	char **topic = &cfg->broker.status_topic;
	if (*topic && !**topic) {
		free(*topic);
		*topic = NULL;
	}
	if (!*topic || !cfg->broker.client_id)
		return;
	char why[256];
	struct template *t = template_parse(*topic, why, sizeof why);
	if (!t) {
		cfg_report(ld, mark, path, "expected a topic: %s", why);
		return;
	}
	struct template_value id = { cfg->broker.client_id, strlen(cfg->broker.client_id), false };
	size_t n = template_nfields(t);
	struct template_value *values = xcalloc(n + 1, sizeof *values);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		ok = strcmp(template_field(t, i), "client_id") == 0;
		if (!ok)
			cfg_report(ld, mark, path, "expected {client_id} as the only placeholder, got {%s}",
			           template_field(t, i));
		values[i] = id;
	}
	struct buf out = BUF_INIT;
	if (ok && template_expand(t, values, &out, why, sizeof why) < 0)
		cfg_report(ld, mark, path, "broker.client_id cannot go in a topic: %s", why);
	else if (ok && out.data[0] == '$')
		cfg_report(ld, mark, path, "expected a topic not starting with \"$\" (the broker's own)");
	else if (ok) {
		free(*topic);
		*topic = xstrdup(out.data);
	}
	buf_finish(&out);
	free(values);
	template_free(t);
}

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
	check_status_topic(ld, ks, cfg);
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
	struct keyset ks = { cfg_keys, cfg_key_count, NULL, cfg, "" };
	yaml_node_t *root = yaml_document_get_root_node(ld->doc);
	if (!root) {
		cfg_report(ld, &start, "", "expected a mapping, got an empty file");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		cfg_report(ld, &root->start_mark, "", "expected a mapping, got %s", cfg_node_kind(root));
		return;
	}
	ks.state = xcalloc(cfg_key_count, sizeof *ks.state);
	cfg_walk_mapping(ld, &ks, root, "");
	cfg_apply_defaults(&ks);
	for (size_t i = 0; i < cfg_ordered_key_count; i++)
		check_order(ld, &ks, &cfg_ordered_keys[i]);
	check_broker(ld, &ks, cfg, root);
	free(ks.state);
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
	cfg_release_keys(cfg_keys, cfg_key_count, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof *cfg);
}

/* ---- Reloading ---- */

void config_restart_changes(const struct config *running, const struct config *next,
                            void (*fn)(void *ctx, const char *path), void *ctx)
{
	for (size_t i = 0; i < cfg_key_count; i++) {
		const struct key *k = &cfg_keys[i];
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
