/*
 * Configuration, private to its files: a key of the file (struct key, one row of the
 * tables in config_keys.c) and its type (struct key_type). The types of scalar keys are
 * here (config_types.c); the routes list, route properties and broker.hosts walk their
 * own nodes (config_routes.h, config_brokers.h).
 */
#ifndef OUTBOX_CONFIG_TYPES_H
#define OUTBOX_CONFIG_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Bounds of struct key: */
#define NO_LIMIT INT64_MAX           /* string keys: no upper bound on the length */
#define MS_MAX ((int64_t)UINT32_MAX) /* duration keys: no bound but the field's width */
#define SECONDS(n) ((int64_t)(n)*1000)
#define DAYS(n) (SECONDS(n) * 86400)
#define PG_NAME_MAX 63 /* PostgreSQL truncates longer identifiers */

struct loader;
struct key;

struct key_type {
	/* Scalar keys: text to field. Returns false after writing what was expected to why. */
	bool (*convert)(const struct key *k, const char *text, void *base, char *why, size_t n);
	/* Keys whose value is not a scalar (the routes sequence) walk the node themselves. */
	void (*load)(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
	             const char *shown);
	/* Frees what convert or load allocated; NULL when the field holds no pointer. */
	void (*release)(const struct key *k, void *base);
	/* Whether the key holds the same value in two loaded configurations: what a reload
	 * compares to tell which settings take a restart. NULL for the types only routes use
	 * (the list, a table name, properties): a reload replaces routes whole, uncompared. */
	bool (*equal)(const struct key *k, const void *a, const void *b);
	const char *doc_name; /* the type as the man page names it */
};

struct enum_name {
	const char *name;
	int value;
};

struct key {
	const char *path; /* dotted, relative to its table's mapping */
	const struct key_type *type;
	size_t offset;                 /* of the field in struct config or struct route_config */
	const char *fallback;          /* default as written in the file; NULL: none */
	int64_t min, max;              /* int: value; duration: milliseconds; string: bytes */
	const struct enum_name *names; /* enum keys: accepted names, NULL-terminated */
	bool required;
	bool reloadable;  /* SIGHUP applies a new value without a restart */
	bool secret;      /* never echo the value: conninfo may hold a password */
	bool conninfo;    /* ${NAME} values are quoted as libpq conninfo values */
	const char *help; /* one line: what the key is for; the man page says the rest */
};

/* The field key k describes in base (a struct config or a struct route_config). */
static inline void *key_field(const struct key *k, void *base)
{
	return (char *)base + k->offset;
}

static inline const void *key_field_const(const struct key *k, const void *base)
{
	return (const char *)base + k->offset;
}

/* Two strings, either possibly NULL (not configured). */
static inline bool strings_equal(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Scalar key types. string: bytes within min..max. identifier: a lower-case SQL name.
 * path: a file readable now. secret_file: a password file only its owner may access, read
 * now. bool, int (min..max), duration (milliseconds, min..max, in a uint32_t; long_duration
 * in a uint64_t), enum (one of names).
 * table_name: a route's table, into its schema and table fields. */
extern const struct key_type cfg_string_type;
extern const struct key_type cfg_identifier_type;
extern const struct key_type cfg_path_type;
extern const struct key_type cfg_secret_file_type;
extern const struct key_type cfg_bool_type;
extern const struct key_type cfg_int_type;
extern const struct key_type cfg_duration_type;
extern const struct key_type cfg_long_duration_type; /* a uint64_t field, bounded by the key */
extern const struct key_type cfg_enum_type;
extern const struct key_type cfg_table_name_type;

/* Decimal only, optional minus sign, at most 18 digits. Returns false for anything else. */
bool cfg_parse_int(const char *text, int64_t *out);

/* ms as the file would write it, in the largest unit that divides it ("0s", "90s", "1h",
 * "2d", "250ms"). Returns buf. */
char *cfg_format_ms(uint64_t ms, char *buf, size_t n);

#endif
