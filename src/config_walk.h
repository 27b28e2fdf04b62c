/*
 * Configuration, private to its files: walking a YAML mapping against a table of keys
 * (struct keyset), each value converted by its key's type, every problem reported through
 * the loader: unknown keys (with a suggestion), duplicates, wrong node types, values the
 * type refuses, required keys missing. Plus the small YAML helpers the key types that walk
 * their own nodes (routes, route properties, broker.hosts) share.
 */
#ifndef OUTBOX_CONFIG_WALK_H
#define OUTBOX_CONFIG_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config_loader.h"
#include "config_types.h"

/* What the walk found for one key. */
struct key_state {
	bool seen;        /* written in the file, rightly or not */
	bool valid;       /* the field holds a value, converted or defaulted */
	yaml_mark_t mark; /* of the value node */
};

/* One table being filled: the whole configuration, or one route. */
struct keyset {
	const struct key *keys;
	size_t nkeys;
	struct key_state *state;
	void *base;
	const char *prefix; /* shown before key paths: "" or "routes[2]" */
};

/*
 * Walks map (a mapping, or an empty value standing for one) whose keys are the paths of
 * ks below rel ("" for the table's root), converting each value into ks->base and
 * recording it in ks->state; then reports the required keys below rel that map lacks.
 */
void cfg_walk_mapping(struct loader *ld, struct keyset *ks, yaml_node_t *map, const char *rel);

/* Converts the default of every key the file did not write. */
void cfg_apply_defaults(struct keyset *ks);

/* Frees what every key of the table holds in base. */
void cfg_release_keys(const struct key *keys, size_t nkeys, void *base);

/* The key of ks with this path, or NULL. */
const struct key *cfg_find_key(const struct keyset *ks, const char *path);

/* The text of a scalar node with ${NAME} expanded (caller frees), or NULL after reporting
 * at shown that the node is not a scalar, holds a NUL or names an unset variable. */
char *cfg_scalar_value(struct loader *ld, yaml_node_t *node, const char *shown);

/* The earlier pair of map with the same key as pair, if any. */
yaml_node_pair_t *cfg_earlier_pair(struct loader *ld, yaml_node_t *map, yaml_node_pair_t *pair);

/* "a mapping", "a sequence", "an empty value" or "a scalar": what was found instead. */
const char *cfg_node_kind(const yaml_node_t *node);

/* "a.b" from "a" and "b"; either may be "" (caller frees). */
char *cfg_join_path(const char *a, const char *b);

static inline const char *scalar_text(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

#endif
