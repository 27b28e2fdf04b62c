/*
 * Configuration, private to its files: the key tables (config_keys.c). cfg_keys[] holds
 * every key of the file but those of a route; the routes row is walked item by item
 * against cfg_route_keys[]. config_key_doc (config.h) lists both, in this order.
 */
#ifndef OUTBOX_CONFIG_KEYS_H
#define OUTBOX_CONFIG_KEYS_H

#include <stddef.h>

#include "config_types.h"

/* Rows of struct config, in the order config_key_doc gives them. */
extern const struct key cfg_keys[];
extern const size_t cfg_key_count;

/* The keys of a route, by name: code about one of them (check_route_kind) says which. */
enum route_key {
	ROUTE_KEY_TABLE,
	ROUTE_KEY_MESSAGE_PREFIX,
	ROUTE_KEY_TOPIC,
	ROUTE_KEY_PAYLOAD,
	ROUTE_KEY_EVENT_ID,
	ROUTE_KEY_QOS,
	ROUTE_KEY_RETAIN,
	ROUTE_KEY_DOWNGRADE,
	ROUTE_KEY_CONTENT_TYPE,
	ROUTE_KEY_MESSAGE_EXPIRY,
	ROUTE_KEY_PROPERTIES,
	ROUTE_KEY_RESPONSE_TOPIC,
	ROUTE_KEY_CORRELATION_DATA,
	ROUTE_KEY_CLEANUP,
	ROUTE_KEY_SNAPSHOT,
	ROUTE_KEY_CHANGES,
	ROUTE_KEY_WHERE,
	ROUTE_KEY_COLUMNS,
	ROUTE_KEY_COUNT
};

/* Rows of struct route_config, each at its enum route_key's index. */
extern const struct key cfg_route_keys[ROUTE_KEY_COUNT];

/* Two duration keys of cfg_keys[] where the first must not exceed the second. */
struct ordered_keys {
	const char *lower;
	const char *upper;
};

extern const struct ordered_keys cfg_ordered_keys[];
extern const size_t cfg_ordered_key_count;

#endif
