/*
 * Walking a YAML mapping against a table of keys. A key's dotted path is matched one
 * level at a time: "source:" is a section because some path starts with "source.", and
 * the value under "source.reconnect.min" is converted by that key's type. What matches
 * nothing is an unknown key, with the closest known name at that level suggested.
 */
#include "config_walk.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_env.h"
#include "util.h"

#define KEY_NAME_MAX 64 /* longest key name at one level, for suggestions */
#define WHY_MAX 160

/* ---- Paths and nodes ---- */

char *cfg_join_path(const char *a, const char *b)
{
	if (!*a)
		return xstrdup(b);
	if (!*b)
		return xstrdup(a);
	size_t size = strlen(a) + strlen(b) + 2;
	char *s = xmalloc(size);
	snprintf(s, size, "%s.%s", a, b);
	return s;
}

/* The rest of path below the mapping rel ("" is the root), or NULL if not below it. */
static const char *path_below(const char *path, const char *rel)
{
	size_t len = strlen(rel);
	if (len == 0)
		return path;
	if (strncmp(path, rel, len) == 0 && path[len] == '.')
		return path + len + 1;
	return NULL;
}

/* A plain "", "~" or "null": what YAML writes for nothing, e.g. a section left empty. */
static bool is_null(const yaml_node_t *node)
{
	if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar_text(node);
	return !*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;
}

const char *cfg_node_kind(const yaml_node_t *node)
{
	if (node->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (node->type == YAML_SEQUENCE_NODE)
		return "a sequence";
	return is_null(node) ? "an empty value" : "a scalar";
}

/* ---- "Did you mean" ---- */

/* Levenshtein distance, or 3 as soon as the lengths alone say it exceeds 2. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t prev[KEY_NAME_MAX + 1], cur[KEY_NAME_MAX + 1];
	if (la > lb + 2 || lb > la + 2 || lb > KEY_NAME_MAX)
		return 3;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t replace = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t insert = cur[j - 1] + 1, erase = prev[j] + 1;
			size_t best = replace < insert ? replace : insert;
			cur[j] = best < erase ? best : erase;
		}
		memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
	}
	return prev[lb];
}

/* Lower is closer: an edit distance up to 2, then 3 for a prefix either way; else none. */
static size_t suggestion_score(const char *typed, const char *known)
{
	size_t distance = edit_distance(typed, known);
	if (distance <= 2)
		return distance;
	size_t lt = strlen(typed), lk = strlen(known);
	size_t shorter = lt < lk ? lt : lk;
	if (shorter >= 3 && strncmp(typed, known, shorter) == 0)
		return 3;
	return SIZE_MAX;
}

/* The known key name at level rel closest to name, into best; false if none is close. */
static bool find_suggestion(const struct keyset *ks, const char *rel, const char *name, char *best, size_t n)
{
	size_t best_score = SIZE_MAX;
	for (size_t i = 0; i < ks->nkeys; i++) {
		const char *rest = path_below(ks->keys[i].path, rel);
		size_t len = rest ? strcspn(rest, ".") : 0;
		char known[KEY_NAME_MAX + 1];
		if (!rest || len > KEY_NAME_MAX)
			continue;
		memcpy(known, rest, len);
		known[len] = '\0';
		size_t score = suggestion_score(name, known);
		if (score < best_score) {
			best_score = score;
			snprintf(best, n, "%s", known);
		}
	}
	return best_score != SIZE_MAX;
}

static void report_unknown(struct loader *ld, const struct keyset *ks, const char *rel,
                           const yaml_node_t *key, const char *shown)
{
	char best[KEY_NAME_MAX + 1];
	if (find_suggestion(ks, rel, scalar_text(key), best, sizeof best))
		cfg_report(ld, &key->start_mark, shown, "unknown key (did you mean \"%s\"?)", best);
	else
		cfg_report(ld, &key->start_mark, shown, "unknown key");
}

/* ---- Walking mappings against a key table ---- */

const struct key *cfg_find_key(const struct keyset *ks, const char *path)
{
	for (size_t i = 0; i < ks->nkeys; i++)
		if (strcmp(ks->keys[i].path, path) == 0)
			return &ks->keys[i];
	return NULL;
}

static bool is_section(const struct keyset *ks, const char *path)
{
	for (size_t i = 0; i < ks->nkeys; i++)
		if (path_below(ks->keys[i].path, path))
			return true;
	return false;
}

/* Does map (possibly an empty value) hold the key name[0..len)? */
static bool mapping_has_key(struct loader *ld, yaml_node_t *map, const char *name, size_t len)
{
	if (map->type != YAML_MAPPING_NODE)
		return false;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *key = cfg_node(ld, p->key);
		if (key->type == YAML_SCALAR_NODE && key->data.scalar.length == len &&
		    memcmp(key->data.scalar.value, name, len) == 0)
			return true;
	}
	return false;
}

/* The earlier pair of map with the same key as pair, if any. */
yaml_node_pair_t *cfg_earlier_pair(struct loader *ld, yaml_node_t *map, yaml_node_pair_t *pair)
{
	const char *name = scalar_text(cfg_node(ld, pair->key));
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
		yaml_node_t *key = cfg_node(ld, p->key);
		if (key->type == YAML_SCALAR_NODE && strcmp(scalar_text(key), name) == 0)
			return p;
	}
	return NULL;
}

/* Reports an unset variable at the value that names it. */
struct unset_report {
	struct loader *ld;
	const yaml_mark_t *mark;
	const char *shown;
};

static void report_unset(void *ctx, const char *name)
{
	const struct unset_report *r = ctx;
	cfg_report(r->ld, r->mark, r->shown, "environment variable %s is not set", name);
}

/* The value with every ${NAME} replaced, or NULL after reporting each unset variable.
 * conninfo: the value is source.conninfo (see config_env.h). */
static char *expand_env(struct loader *ld, const char *value, bool conninfo, const yaml_mark_t *mark,
                        const char *shown)
{
	struct unset_report r = { ld, mark, shown };
	return cfg_expand_env(value, conninfo, report_unset, &r);
}

/* The text of a scalar node with ${NAME} expanded (caller frees), or NULL after reporting.
 * conninfo: the node is source.conninfo, whose references are quoted. */
static char *scalar_value_as(struct loader *ld, yaml_node_t *node, const char *shown, bool conninfo)
{
	if (node->type != YAML_SCALAR_NODE) {
		cfg_report(ld, &node->start_mark, shown, "expected a scalar, got %s", cfg_node_kind(node));
		return NULL;
	}
	/* A NUL would silently cut the C string: refuse rather than use half a value. */
	if (strlen(scalar_text(node)) != node->data.scalar.length) {
		cfg_report(ld, &node->start_mark, shown, "expected text without NUL characters");
		return NULL;
	}
	return expand_env(ld, scalar_text(node), conninfo, &node->start_mark, shown);
}

char *cfg_scalar_value(struct loader *ld, yaml_node_t *node, const char *shown)
{
	return scalar_value_as(ld, node, shown, false);
}

/* Records that the file writes key k at node, rightly or not; returns the key's state. */
static struct key_state *note_seen(struct keyset *ks, const struct key *k, const yaml_node_t *node)
{
	struct key_state *state = &ks->state[k - ks->keys];
	state->seen = true;
	state->mark = node->start_mark;
	return state;
}

static void load_scalar(struct loader *ld, struct keyset *ks, const struct key *k, yaml_node_t *node,
                        const char *shown)
{
	struct key_state *state = note_seen(ks, k, node);
	char why[WHY_MAX];
	char *text = scalar_value_as(ld, node, shown, k->conninfo);
	if (!text)
		return;
	if (k->type->convert(k, text, ks->base, why, sizeof why))
		state->valid = true;
	else
		cfg_report_got(ld, &node->start_mark, shown, why, text, k->secret);
	free(text);
}

/* A section may be left empty ("log:" with its keys commented out): all defaults. */
static void load_section(struct loader *ld, struct keyset *ks, const char *rel, yaml_node_t *node,
                         const char *shown)
{
	if (node->type != YAML_MAPPING_NODE && !is_null(node)) {
		cfg_report(ld, &node->start_mark, shown, "expected a mapping, got %s", cfg_node_kind(node));
		return;
	}
	cfg_walk_mapping(ld, ks, node, rel);
}

static void walk_value(struct loader *ld, struct keyset *ks, const char *rel, yaml_node_t *key,
                       yaml_node_t *value)
{
	char *child = cfg_join_path(rel, scalar_text(key));
	char *shown = cfg_join_path(ks->prefix, child);
	/* A dotted key would reach into a section ("source.slot:" at the top) behind the
	 * duplicate check's back: it is just unknown. */
	bool dotted = strchr(scalar_text(key), '.') != NULL;
	const struct key *k = dotted ? NULL : cfg_find_key(ks, child);
	if (k && k->type->load) {
		note_seen(ks, k, value);
		k->type->load(ld, k, value, ks->base, shown);
	} else if (k) {
		load_scalar(ld, ks, k, value, shown);
	} else if (!dotted && is_section(ks, child)) {
		load_section(ld, ks, child, value, shown);
	} else {
		report_unknown(ld, ks, rel, key, shown);
	}
	free(shown);
	free(child);
}

static void walk_pair(struct loader *ld, struct keyset *ks, yaml_node_t *map, yaml_node_pair_t *pair,
                      const char *rel)
{
	yaml_node_t *key = cfg_node(ld, pair->key);
	if (key->type != YAML_SCALAR_NODE || !*scalar_text(key)) {
		char *shown = cfg_join_path(ks->prefix, rel);
		if (key->type == YAML_SCALAR_NODE)
			cfg_report(ld, &key->start_mark, shown, "expected a non-empty key");
		else
			cfg_report(ld, &key->start_mark, shown, "expected a scalar key, got %s",
			           cfg_node_kind(key));
		free(shown);
		return;
	}
	yaml_node_pair_t *first = cfg_earlier_pair(ld, map, pair);
	if (!first) {
		walk_value(ld, ks, rel, key, cfg_node(ld, pair->value));
		return;
	}
	char *path = cfg_join_path(rel, scalar_text(key));
	char *shown = cfg_join_path(ks->prefix, path);
	cfg_report(ld, &key->start_mark, shown, "duplicate key, first set at line %zu",
	           cfg_node(ld, first->key)->start_mark.line + 1);
	free(shown);
	free(path);
}

/* Required keys below rel whose next step is absent from map. A step that is present but
 * wrong (a section given as a scalar) has been reported already. */
static void report_missing(struct loader *ld, const struct keyset *ks, yaml_node_t *map, const char *rel)
{
	for (size_t i = 0; i < ks->nkeys; i++) {
		const char *rest = path_below(ks->keys[i].path, rel);
		if (!ks->keys[i].required || !rest || mapping_has_key(ld, map, rest, strcspn(rest, ".")))
			continue;
		char *shown = cfg_join_path(ks->prefix, ks->keys[i].path);
		cfg_report(ld, &map->start_mark, shown, "required key is missing");
		free(shown);
	}
}

/* map is a mapping, or an empty value standing for one. */
void cfg_walk_mapping(struct loader *ld, struct keyset *ks, yaml_node_t *map, const char *rel)
{
	if (map->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
		     p++)
			walk_pair(ld, ks, map, p, rel);
	}
	report_missing(ld, ks, map, rel);
}

void cfg_apply_defaults(struct keyset *ks)
{
	char why[WHY_MAX];
	for (size_t i = 0; i < ks->nkeys; i++) {
		const struct key *k = &ks->keys[i];
		if (ks->state[i].seen || !k->fallback)
			continue;
		/* A default that does not convert is a bug in the table; the tests load it. */
		if (!k->type->convert(k, k->fallback, ks->base, why, sizeof why))
			abort();
		ks->state[i].valid = true;
	}
}

void cfg_release_keys(const struct key *keys, size_t nkeys, void *base)
{
	for (size_t i = 0; i < nkeys; i++)
		if (keys[i].type->release)
			keys[i].type->release(&keys[i], base);
}
