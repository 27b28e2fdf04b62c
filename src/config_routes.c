/*
 * The routes sequence, each item a mapping walked against cfg_route_keys[] and then
 * checked for what its kind needs (a table route, or a message route); and a route's
 * properties, a mapping of MQTT 5 user property name to column.
 */
#include "config_routes.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"
#include "config_walk.h"
#include "util.h"

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
			snprintf(path, sizeof path, "%s.%s", shown,
			         cfg_route_keys[route_column_keys[i]].path);
			cfg_report(ld, &node->start_mark, path,
			           "a message route has no columns: its body is the message content and "
			           "its id <commit-lsn>:<index>");
			break;
		}
	}
}

/* A logical message leaves no row behind: there is nothing to delete. cleanup: none is
 * what a message route does anyway. */
static void check_cleanup(struct loader *ld, const struct route_config *route, const struct key_state *seen,
                          const char *shown)
{
	char path[64];
	if (!seen[ROUTE_KEY_MESSAGE_PREFIX].seen || seen[ROUTE_KEY_TABLE].seen ||
	    !seen[ROUTE_KEY_CLEANUP].valid || route->cleanup != CLEANUP_DELETE)
		return;
	snprintf(path, sizeof path, "%s.cleanup", shown);
	cfg_report(ld, &seen[ROUTE_KEY_CLEANUP].mark, path,
	           "a message route has no row to delete: cleanup applies to table routes");
}

/* A snapshot is a backfill: a table route whose events carry an id column (what a row read
 * later can be given; doc/design.md §22.1). */
static void check_snapshot(struct loader *ld, const struct route_config *route, const struct key_state *seen,
                           const char *shown)
{
	char path[64];
	if (!seen[ROUTE_KEY_SNAPSHOT].valid || route->snapshot != SNAPSHOT_INITIAL)
		return;
	snprintf(path, sizeof path, "%s.snapshot", shown);
	if (seen[ROUTE_KEY_MESSAGE_PREFIX].seen && !seen[ROUTE_KEY_TABLE].seen)
		cfg_report(ld, &seen[ROUTE_KEY_SNAPSHOT].mark, path,
		           "a message route has no rows to take a snapshot of: snapshot applies to table "
		           "routes");
	else if (!seen[ROUTE_KEY_EVENT_ID].seen)
		cfg_report(ld, &seen[ROUTE_KEY_SNAPSHOT].mark, path,
		           "snapshot: initial needs event_id: a row read from the table cannot know the"
		           " <commit-lsn>:<index> id its insert had");
}

/* changes: rows only a table has; cleanup: delete would have the relay publish its own
 * deletions; op is a property the relay sets on such a route's messages. */
static void check_changes(struct loader *ld, const struct route_config *route, const struct key_state *seen,
                          const char *shown)
{
	char path[96];
	const struct key_state *changes = &seen[ROUTE_KEY_CHANGES];
	if (changes->seen && seen[ROUTE_KEY_MESSAGE_PREFIX].seen && !seen[ROUTE_KEY_TABLE].seen) {
		snprintf(path, sizeof path, "%s.changes", shown);
		cfg_report(ld, &changes->mark, path,
		           "a message route has no rows: changes applies to table routes");
		return;
	}
	if (!changes->seen || !route->table)
		return;
	if ((route->changes & ROUTE_CHANGE_DELETE) && seen[ROUTE_KEY_CLEANUP].valid &&
	    route->cleanup == CLEANUP_DELETE) {
		snprintf(path, sizeof path, "%s.changes", shown);
		cfg_report(ld, &changes->mark, path,
		           "cleanup: delete deletes the rows whose events are published, and delete in"
		           " changes would publish those deletions too: leave out one of them");
	}
	if (!(route->changes & (ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE)))
		return;
	for (size_t i = 0; i < route->nproperties; i++) {
		if (strcmp(route->properties[i].name, "op") != 0)
			continue;
		snprintf(path, sizeof path, "%s.properties.op", shown);
		cfg_report(ld, &seen[ROUTE_KEY_PROPERTIES].mark, path,
		           "the relay sets op on every message of a route that publishes updates or"
		           " deletes; choose another name");
	}
}

/* where and columns shape a table's rows in the publication: a message has none. */
static void check_filters(struct loader *ld, const struct route_config *route, const struct key_state *seen,
                          const char *shown)
{
	static const enum route_key keys[] = { ROUTE_KEY_WHERE, ROUTE_KEY_COLUMNS };
	char path[96];
	/* One expression: the event trigger writes it into a statement as a superuser. */
	if (route->row_filter && strchr(route->row_filter, ';')) {
		snprintf(path, sizeof path, "%s.where", shown);
		cfg_report(ld, &seen[ROUTE_KEY_WHERE].mark, path,
		           "expected one SQL expression, without ';' (write chr(59) for the character)");
	}
	if (!seen[ROUTE_KEY_MESSAGE_PREFIX].seen || seen[ROUTE_KEY_TABLE].seen)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (!seen[keys[i]].seen)
			continue;
		snprintf(path, sizeof path, "%s.%s", shown, cfg_route_keys[keys[i]].path);
		cfg_report(ld, &seen[keys[i]].mark, path,
		           "a message route has no rows: %s applies to table routes",
		           cfg_route_keys[keys[i]].path);
	}
}

static void load_route(struct loader *ld, struct route_config *route, yaml_node_t *node, const char *shown)
{
	struct key_state state[ARRAY_SIZE(cfg_route_keys)];
	struct keyset ks = { cfg_route_keys, ARRAY_SIZE(cfg_route_keys), state, route, shown };
	if (node->type != YAML_MAPPING_NODE) {
		cfg_report(ld, &node->start_mark, shown, "expected a mapping, got %s", cfg_node_kind(node));
		return;
	}
	memset(state, 0, sizeof state);
	route->line = (int)node->start_mark.line + 1;
	route->column = (int)node->start_mark.column + 1;
	cfg_walk_mapping(ld, &ks, node, "");
	check_route_kind(ld, state, node, shown);
	check_cleanup(ld, route, state, shown);
	check_snapshot(ld, route, state, shown);
	check_changes(ld, route, state, shown);
	check_filters(ld, route, state, shown);
	cfg_apply_defaults(&ks);
}

static bool same_columns(const struct route_config *a, const struct route_config *b)
{
	if (a->ncolumns != b->ncolumns)
		return false;
	for (size_t i = 0; i < a->ncolumns; i++)
		if (strcmp(a->columns[i], b->columns[i]) != 0)
			return false;
	return true;
}

/* The publication has one row filter and one column list per table: the routes of one
 * table must agree on them. */
static void check_same_filters(struct loader *ld, const struct config *cfg, const char *shown)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *b = &cfg->routes[i];
		for (size_t j = 0; b->table && b->schema && j < i; j++) {
			const struct route_config *a = &cfg->routes[j];
			if (!a->table || !a->schema || strcmp(a->schema, b->schema) != 0 ||
			    strcmp(a->table, b->table) != 0)
				continue;
			if (!strings_equal(a->row_filter, b->row_filter) || !same_columns(a, b)) {
				yaml_mark_t mark = { .line = (size_t)b->line - 1,
					             .column = (size_t)b->column - 1 };
				char path[96];
				snprintf(path, sizeof path, "%s[%zu].%s", shown, i,
				         strings_equal(a->row_filter, b->row_filter) ? "columns" : "where");
				cfg_report(
				        ld, &mark, path,
				        "routes[%zu] routes the same table with another where or columns: the"
				        " publication has one row filter and one column list per table; give"
				        " them the same",
				        j);
			}
			break;
		}
	}
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
	check_same_filters(ld, cfg, shown);
}

static void release_routes(const struct key *k, void *base)
{
	struct config *cfg = base;
	(void)k;
	for (size_t i = 0; i < cfg->nroutes; i++)
		cfg_release_keys(cfg_route_keys, ARRAY_SIZE(cfg_route_keys), &cfg->routes[i]);
	free(cfg->routes);
	cfg->routes = NULL;
	cfg->nroutes = 0;
}

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

/* ---- Route changes ---- */

static const struct enum_name change_names[] = {
	{ "insert", ROUTE_CHANGE_INSERT },
	{ "update", ROUTE_CHANGE_UPDATE },
	{ "delete", ROUTE_CHANGE_DELETE },
	{ NULL, 0 },
};

#define CHANGES_EXPECTED "expected a list of insert, update and delete, such as [insert, update, delete]"

/* The bit of one word (len bytes), or 0. */
static unsigned change_bit(const char *word, size_t len)
{
	for (const struct enum_name *e = change_names; e->name; e++)
		if (strlen(e->name) == len && memcmp(word, e->name, len) == 0)
			return (unsigned)e->value;
	return 0;
}

static void load_changes(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                         const char *shown)
{
	unsigned *changes = key_field(k, base);
	*changes = 0;
	if (node->type != YAML_SEQUENCE_NODE) {
		cfg_report(ld, &node->start_mark, shown, CHANGES_EXPECTED ", got %s", cfg_node_kind(node));
		return;
	}
	yaml_node_item_t *items = node->data.sequence.items.start;
	size_t n = (size_t)(node->data.sequence.items.top - items);
	if (n == 0)
		cfg_report(ld, &node->start_mark, shown,
		           "expected at least one of insert, update and delete");
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = cfg_node(ld, items[i]);
		char *word = cfg_scalar_value(ld, item, shown);
		if (!word)
			continue;
		unsigned bit = change_bit(word, strlen(word));
		if (!bit)
			cfg_report_got(ld, &item->start_mark, shown, "expected insert, update or delete",
			               word, false);
		else if (*changes & bit)
			cfg_report(ld, &item->start_mark, shown, "%s is listed twice", word);
		*changes |= bit;
		free(word);
	}
}

/* The default, written as in the file: "[insert]", "[insert, update]". */
static bool convert_changes(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	unsigned *changes = key_field(k, base);
	size_t len = strlen(text);
	*changes = 0;
	if (len < 2 || text[0] != '[' || text[len - 1] != ']') {
		snprintf(why, n, CHANGES_EXPECTED);
		return false;
	}
	for (const char *p = text + 1; p < text + len - 1;) {
		size_t word = strcspn(p, ", ]");
		unsigned bit = word ? change_bit(p, word) : 0;
		if (word && !bit) {
			snprintf(why, n, CHANGES_EXPECTED);
			return false;
		}
		*changes |= bit;
		p += word ? word : 1;
	}
	return *changes != 0;
}

/* ---- Route columns ---- */

static void load_columns(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                         const char *shown)
{
	struct route_config *route = base;
	(void)k;
	if (node->type != YAML_SEQUENCE_NODE) {
		cfg_report(ld, &node->start_mark, shown, "expected a list of column names, got %s",
		           cfg_node_kind(node));
		return;
	}
	yaml_node_item_t *items = node->data.sequence.items.start;
	size_t n = (size_t)(node->data.sequence.items.top - items);
	if (n == 0) {
		cfg_report(ld, &node->start_mark, shown, "expected at least one column");
		return;
	}
	route->columns = xcalloc(n, sizeof *route->columns);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = cfg_node(ld, items[i]);
		char *name = cfg_scalar_value(ld, item, shown);
		bool twice = false;
		for (size_t j = 0; name && j < route->ncolumns; j++)
			twice = twice || strcmp(route->columns[j], name) == 0;
		if (!name)
			continue;
		if (!*name || strlen(name) > PG_NAME_MAX)
			cfg_report_got(ld, &item->start_mark, shown,
			               "expected a column name of 1 to 63 bytes", name, false);
		else if (twice)
			cfg_report(ld, &item->start_mark, shown, "column \"%s\" is listed twice", name);
		else {
			route->columns[route->ncolumns++] = name;
			continue;
		}
		free(name);
	}
}

static void release_columns(const struct key *k, void *base)
{
	struct route_config *route = base;
	(void)k;
	for (size_t i = 0; i < route->ncolumns; i++)
		free(route->columns[i]);
	free(route->columns);
	route->columns = NULL;
	route->ncolumns = 0;
}

const struct key_type cfg_columns_type = {
	.load = load_columns,
	.release = release_columns,
	.doc_name = "list",
};

const struct key_type cfg_changes_type = {
	.load = load_changes,
	.convert = convert_changes,
	.doc_name = "list",
};

const struct key_type cfg_routes_type = {
	.load = load_routes,
	.release = release_routes,
	.doc_name = "list",
};
const struct key_type cfg_properties_type = {
	.load = load_properties,
	.release = release_properties,
	.doc_name = "map",
};
