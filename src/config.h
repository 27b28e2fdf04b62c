/*
 * Configuration: the YAML file of doc/design.md §4 read into a struct config.
 *
 * Keys are described by a typed table (type, default, bounds, help), not by a chain of
 * string compares. Loading collects every error before failing; each is one line
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

/* A password read from a file at load time: one trailing newline stripped. value is a
 * secret: never logged, wiped when released. */
struct secret_file {
	char *path; /* NULL: not configured */
	char *value;
};

/* One broker to try; port 0 until loading ends, then broker.port when not given. */
struct broker_address {
	char *host;
	int port;
};

/* An MQTT 5 user property taken from a column of the row. */
struct route_property {
	char *name;
	char *column;
};

enum reject_action {
	REJECT_DEAD_LETTER, /* record in the dead_letter table and go on */
	REJECT_STOP,        /* exit 1 without checkpointing past the event */
};

enum mqtt_protocol {
	BROKER_MQTT_V5, /* names differ from libmosquitto's MQTT_PROTOCOL_* macros */
	BROKER_MQTT_V311,
};

/* What becomes of a routed row once its event is acknowledged and checkpointed
 * (doc/design.md §22.3). */
enum route_cleanup {
	CLEANUP_NONE,   /* the row stays: the application deletes it, or keeps it */
	CLEANUP_DELETE, /* the relay deletes it, in the checkpoint's transaction */
};

/* Whether a table route's rows that are already there are published when the relay first
 * starts (doc/design.md §22.1, a backfill request queued before the slot is made). */
enum route_snapshot {
	SNAPSHOT_NEVER,   /* only what is committed once the slot exists */
	SNAPSHOT_INITIAL, /* and, at the first start, every row already in the table */
};

/* Which changes of a table route's rows are published (routes[].changes, doc/design.md §5):
 * bits. */
enum route_change {
	ROUTE_CHANGE_INSERT = 1,
	ROUTE_CHANGE_UPDATE = 2,
	ROUTE_CHANGE_DELETE = 4,
};

/* A table route (table set) publishes INSERTs, and UPDATEs and DELETEs if its changes say
 * so; a message route (message_prefix set) publishes transactional logical messages whose
 * prefix matches the glob. */
struct route_config {
	char *schema; /* "public" when the table is not qualified; NULL for message routes */
	char *table;
	char *message_prefix;  /* glob (fnmatch) on the logical message prefix */
	char *topic;           /* template source, see template.h */
	char *payload_column;  /* payload: COLUMN (table routes) */
	char *event_id_column; /* NULL: "<commit-lsn>:<index>" */
	int qos;               /* 0, 1, 2; default 1 */
	bool retain;           /* default false */
	/* An MQTT 5 broker whose CONNACK takes less than qos or retain ask (Maximum QoS 1,
	 * Retain Available 0): publish at QoS 1 / without retain rather than refuse to start;
	 * default false (doc/design.md §24). */
	bool downgrade;
	/* MQTT 5 only: */
	char *content_type;                /* NULL: application/json for JSON payloads, else none */
	uint32_t message_expiry_ms;        /* 0: none; whole seconds on the wire */
	char *response_topic_column;       /* column holding the response topic */
	char *correlation_data_column;     /* column holding correlation data */
	struct route_property *properties; /* user properties, in file order */
	size_t nproperties;
	/* Table routes only; default none. */
	enum route_cleanup cleanup;
	enum route_snapshot snapshot;
	/* Table routes only: ROUTE_CHANGE_* bits; default insert. */
	unsigned changes;
	/* Table routes only, PostgreSQL 15: the publication's row filter (an SQL boolean
	 * expression over the table's columns) and column list; NULL / 0: none. */
	char *row_filter;
	char **columns;
	size_t ncolumns;
	int line; /* where the route starts in the file, for later messages */
	int column;
};

struct config {
	char *path;
	struct {
		char *conninfo;                  /* required */
		struct secret_file password;     /* optional */
		char *slot;                      /* default "outbox_relay" */
		char *publication;               /* default "outbox_relay" */
		bool create_slot;                /* default true */
		bool create_publication;         /* default true */
		uint32_t status_interval_ms;     /* default 10s */
		uint32_t heartbeat_interval_ms;  /* default 1m; 0: no heartbeat */
		struct backoff_config reconnect; /* default 100ms .. 30s */
	} source;
	struct {
		char *host; /* default "127.0.0.1" */
		int port;   /* default 1883, 1..65535 */
		/* broker.hosts, or the one broker.host:broker.port: never empty once loaded. */
		struct broker_address *hosts;
		size_t nhosts;
		enum mqtt_protocol protocol; /* default mqttv5 */
		char *client_id;             /* default "outbox-relay" */
		uint32_t keepalive_ms;       /* default 30s, 5s..65535s */
		char *username;              /* optional */
		struct secret_file password; /* optional; needs username */
		struct {
			bool enabled;    /* the broker.tls mapping is present */
			char *ca_file;   /* NULL: the system's trust store */
			char *cert_file; /* client certificate: both or neither */
			char *key_file;
			bool verify_hostname; /* default true */
		} tls;
		int max_inflight;                /* 1..65535; unset: 1000 (mqttv5), 20 (mqttv311) */
		uint32_t session_expiry_ms;      /* default 1h; 0: no persistent session */
		struct backoff_config reconnect; /* default 100ms .. 30s */
		/* The status topic, {client_id} put in once loaded; NULL: none (unset or ""). */
		char *status_topic;
	} broker;
	struct route_config *routes; /* at least one */
	size_t nroutes;
	struct {
		char *bookkeeping_schema;        /* default "outbox_relay" */
		bool create_bookkeeping;         /* default true */
		uint32_t checkpoint_interval_ms; /* default 200ms */
		uint32_t drain_timeout_ms;       /* default 10s */
		enum reject_action on_reject;    /* default dead_letter */
		/* Default 30d; 0: dead letters are kept. */
		uint64_t dead_letter_retention_ms;
	} delivery;
	struct {
		enum log_level level;       /* default info */
		enum log_format format;     /* default logfmt */
		uint32_t stats_interval_ms; /* default 60s; 0: no stats line */
	} log;
};

/*
 * Reads and validates path into *out. Every error found is written to errs as one line.
 * Returns the number of errors: 0 means *out is complete and must be released with
 * config_finish(); otherwise *out holds nothing to release.
 */
int config_load(const char *path, struct config *out, FILE *errs);

void config_finish(struct config *cfg);

/* Whether the file itself holds a password (in source.conninfo), so that it must not be
 * readable by others. Password files are the alternative. */
bool config_holds_password(const struct config *cfg);

/* A routed table as the file names it, "schema.table" or "table" (schema public), into its
 * two names, which the caller frees. Names keep their case: they are compared with what
 * pgoutput reports, not folded like SQL. False, with nothing allocated, when a name is empty,
 * longer than 63 bytes, or holds a dot. */
bool config_table_name(const char *text, char **schema, char **table);

/* Calls fn with the path of every key that differs between the running configuration and
 * a newly loaded one but is not reloadable (it takes a restart to apply). */
void config_restart_changes(const struct config *running, const struct config *next,
                            void (*fn)(void *ctx, const char *path), void *ctx);

/* One key of the file as documentation describes it (the man page is checked against
 * these). Route keys have section "routes[]", the others "". */
struct config_key_doc {
	const char *section;
	const char *path;
	const char *type;     /* string, name, path, boolean, integer, duration, keyword, list, map */
	const char *fallback; /* default as written in the file; NULL: none */
	bool required;
	bool reloadable;  /* applied by SIGHUP without a restart */
	const char *help; /* one line: what the key is for */
};

/* The i-th key, in table order. Returns false past the last. */
bool config_key_doc(size_t i, struct config_key_doc *out);

#endif
