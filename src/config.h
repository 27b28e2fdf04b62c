/*
 * Configuration: the YAML file of SPEC §4 read into a struct config.
 *
 * Keys are described by a typed table (type, default, bounds), not by a chain of string
 * compares. Loading collects every error before failing; each is one line
 * "FILE:LINE:COLUMN: key.path: message" (LINE and COLUMN 1-based, from the YAML node the
 * problem is about). Pure apart from reading the file.
 */
#ifndef OUTBOX_CONFIG_H
#define OUTBOX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_DEFAULT_PATH "/etc/outbox-relay/outbox-relay.yaml"

struct backoff_config {
	uint32_t min_ms;
	uint32_t max_ms;
};

enum mqtt_protocol {
	BROKER_MQTT_V5,		/* names differ from libmosquitto's MQTT_PROTOCOL_* macros */
	BROKER_MQTT_V311,
};

/* A table route (table set) publishes INSERTs; a message route (message_prefix set)
 * publishes transactional logical messages whose prefix matches the glob. */
struct route_config {
	char *schema;		/* "public" when the table is not qualified; NULL for message routes */
	char *table;
	char *message_prefix;	/* glob (fnmatch) on the logical message prefix */
	char *topic;		/* template source, see template.h */
	char *payload_column;	/* payload: COLUMN (table routes) */
	char *event_id_column;	/* NULL: "<commit-lsn>:<index>" */
	int qos;		/* 0, 1, 2; default 1 */
	bool retain;		/* default false */
	/* MQTT 5 only: */
	char *content_type;		/* NULL: application/json for JSON payloads, else none */
	uint32_t message_expiry_ms;	/* 0: none; whole seconds on the wire */
	char *response_topic_column;	/* column holding the response topic */
	char *correlation_data_column;	/* column holding correlation data */
	int line;		/* where the route starts in the file, for later messages */
	int column;
};

struct config {
	char *path;
	struct {
		char *conninfo;			/* required */
		char *slot;			/* default "outbox_relay" */
		char *publication;		/* default "outbox_relay" */
		bool create_slot;		/* default true */
		bool create_publication;	/* default true */
		uint32_t status_interval_ms;	/* default 10s */
		struct backoff_config reconnect;	/* default 100ms .. 30s */
	} source;
	struct {
		char *host;			/* default "127.0.0.1" */
		int port;			/* default 1883, 1..65535 */
		enum mqtt_protocol protocol;	/* default mqttv5 */
		char *client_id;		/* default "outbox-relay" */
		uint32_t keepalive_ms;		/* default 30s, 5s..65535s */
		int max_inflight;		/* default 1000, 1..65535 */
		struct backoff_config reconnect;	/* default 100ms .. 30s */
	} broker;
	struct route_config *routes;		/* at least one */
	size_t nroutes;
	struct {
		char *bookkeeping_schema;	/* default "outbox_relay" */
		bool create_bookkeeping;	/* default true */
		uint32_t checkpoint_interval_ms;	/* default 200ms */
		uint32_t drain_timeout_ms;	/* default 10s */
	} delivery;
	struct {
		enum log_level level;		/* default info */
	} log;
};

/*
 * Reads and validates path into *out. Every error found is written to errs as one line.
 * Returns the number of errors: 0 means *out is complete and must be released with
 * config_finish(); otherwise *out holds nothing to release.
 */
int config_load(const char *path, struct config *out, FILE *errs);

void config_finish(struct config *cfg);

#endif
