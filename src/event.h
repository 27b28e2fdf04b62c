/*
 * One event: an MQTT message to publish, built from a routed row or logical message, with
 * the position it came from. Events are reused: their buffers stay allocated from one event
 * to the next (event_trim frees the huge ones). Pure: no I/O.
 */
#ifndef OUTBOX_EVENT_H
#define OUTBOX_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lsn.h"
#include "pgtime.h"

struct event {
	lsn_t commit_lsn;
	int32_t index; /* 0-based position among routed events of its transaction */
	int qos;
	bool retain;
	/* Set by the caller from its transaction. Copies, not pointers: a kept event may be
	 * published again long after its transaction was read. */
	char lsn_text[LSN_BUFLEN];                  /* commit LSN as X/Y */
	char commit_time_text[PG_TIME_TEXT_BUFLEN]; /* RFC 3339 UTC with microseconds */
	pg_time_t commit_time;                      /* the same, as PostgreSQL sent it */
	struct buf topic;
	struct buf payload;
	struct buf event_id;
	const char *source;        /* "schema.table" (owned by the route) or "message:PREFIX" */
	struct buf message_source; /* backs source for message events */
	/* MQTT 5 properties from the route (NULL / 0 / not has_*: none). */
	const char *content_type;
	uint32_t message_expiry_s;
	bool has_response_topic;
	struct buf response_topic;
	bool has_correlation_data;
	struct buf correlation_data;
	/* The route's user properties, in order: see event_add_property / event_next_property. */
	struct buf user_properties;
	/* doc/design.md §22: NULL for the live stream, else EVENT_ORIGIN_* (the user property
	 * origin); a re-driven event's dead letter id (0: none) and the content type it stored. */
	const char *origin;
	int64_t redrive_of;
	/* doc/design.md §5: EVENT_OP_* (the user property op) on the events of a route that
	 * publishes updates or deletes; NULL on every other event. */
	const char *op;
	struct buf stored_content_type;
	/* cleanup: delete routes: the row's key (cleanup.h), to delete the row once the
	 * checkpoint covers the event. Empty for other events. */
	struct buf cleanup_key;
};

#define EVENT_ORIGIN_BACKFILL "backfill"
#define EVENT_ORIGIN_REDRIVE "redrive"

#define EVENT_OP_INSERT "insert"
#define EVENT_OP_UPDATE "update"
#define EVENT_OP_DELETE "delete"

/* The EVENT_OP_* constant spelt name (len bytes), or NULL. */
const char *event_op_named(const char *name, size_t len);

void event_init(struct event *ev);
void event_finish(struct event *ev);

/* Buffers are reused from event to event, but one huge payload must not keep its memory
 * for the life of the process: frees those grown past EVENT_BUFFER_KEEP_MAX. */
#define EVENT_BUFFER_KEEP_MAX ((size_t)1024 * 1024)
void event_trim(struct event *ev);

/* User properties: cleared, then added one by one (value: len bytes, no NUL in them). */
void event_clear_properties(struct event *ev);
void event_add_property(struct event *ev, const char *name, const char *value, size_t len);

/* Walks the user properties in the order they were added; *cursor starts at 0. Returns
 * false after the last. */
bool event_next_property(const struct event *ev, size_t *cursor, const char **name, const char **value);

#endif
