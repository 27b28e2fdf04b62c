/*
 * The mapping from decoded changes to MQTT messages: which relations are routed, and for
 * a routed INSERT, the topic, payload, event id and QoS of its event (doc/design.md §5);
 * for the UPDATEs and DELETEs of routes whose changes ask for them, theirs (§23).
 *
 * Routes are compiled once from the configuration. Column names are bound to column
 * positions per relation and re-bound when the relation is redefined (schema change).
 * No I/O: the event's buffers are owned by the caller and reused from event to event.
 */
#ifndef OUTBOX_OUTBOX_H
#define OUTBOX_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "event.h"
#include "lsn.h"
#include "pgoutput.h"

struct outbox;

/*
 * Compiles the routes of cfg. Returns NULL after writing every problem to errs as
 * "FILE:LINE:COLUMN: routes[N].topic: message".
 */
struct outbox *outbox_new(const struct config *cfg, FILE *errs);
void outbox_free(struct outbox *o);

struct typemap;

/* The map that resolves column types (a domain's values are written as its base type's:
 * a domain over jsonb is JSON, over bytea raw bytes). Owned by the caller, who keeps it
 * filled (typemap.h); NULL, the default, takes declared types as they are. */
void outbox_use_types(struct outbox *o, const struct typemap *types);

/* A compiled route. Look it up once per change and hand it to the builder. */
struct outbox_route;

/* The route for INSERTs into rel, or NULL if rel is not routed. */
struct outbox_route *outbox_route_table(struct outbox *o, const struct pgo_relation *rel);

/* The route for transactional logical messages with this prefix, or NULL. Prefixes
 * starting with "outbox-relay." are the relay's own (heartbeat, drain) and never routed. */
struct outbox_route *outbox_route_message(struct outbox *o, const char *prefix);

/*
 * Builds the event for a routed INSERT into ev (ev->commit_lsn, ->index,
 * ->lsn_text and ->commit_time_text must be set by the caller). Returns 0, or -1 with the
 * reason in why when the row cannot form a message (e.g. a topic field is NULL, a column
 * is missing). For a route with cleanup: delete, ev->cleanup_key gets the row's key
 * (cleanup.h); every other event has it empty.
 */
int outbox_build(struct outbox_route *route, const struct pgo_relation *rel, const struct pgo_tuple *row,
                 struct event *ev, char *why, size_t whylen);

/* Builds the event for a routed transactional message (caller fields as for rows):
 * body = content, id = "<commit-lsn>:<index>". */
int outbox_build_message(struct outbox_route *route, const char *prefix, const uint8_t *content, uint32_t len,
                         struct event *ev, char *why, size_t whylen);

/* Calls fn for every column route i reads from its table, with the route key that names
 * it ("topic", "payload", "properties.NAME"...). Message routes read none. */
typedef void (*outbox_column_fn)(void *ctx, const char *key, const char *column);
void outbox_route_columns(const struct outbox *o, size_t i, outbox_column_fn fn, void *ctx);

/* True the first time an UPDATE of rel is seen (outbox rows are not meant to change:
 * doc/design.md §5 warns once per table and publishes nothing). Routes whose changes
 * hold update publish them instead. */
bool outbox_update_is_new(struct outbox *o, const struct pgo_relation *rel);

/* Whether route publishes this kind of change of its table (routes[].changes). */
bool outbox_route_publishes(const struct outbox_route *route, enum route_change change);

/*
 * UPDATEs and DELETEs of a route whose changes hold them (doc/design.md §5). old is the old
 * row as the stream carries it: the columns of the replica identity, which rel flags (every
 * column with REPLICA IDENTITY FULL, else the key, the others NULL); NULL when an UPDATE
 * carries none (its key did not change). Caller fields of ev as for outbox_build; the id
 * is always <commit-lsn>:<index> (doc/design.md §2.5).
 */

/* The new row of an UPDATE as its events see it: a value the UPDATE left unchanged and
 * stored out of line (PGO_VALUE_UNCHANGED) taken from old when old carries it. row itself
 * when it holds none; else a copy owned by the route, valid until the next call and while
 * row and old are. */
const struct pgo_tuple *outbox_update_row(struct outbox_route *route, const struct pgo_relation *rel,
                                          const struct pgo_tuple *old, const struct pgo_tuple *row);

/* Whether an UPDATE takes the row off the topic its old version was published on: the old
 * topic can be formed from old and the new one differs from it, or cannot be formed. Such
 * an UPDATE makes two events: the old topic cleared (outbox_build_delete with old), then
 * the new row (outbox_build_update). row: from outbox_update_row. */
bool outbox_update_moves(struct outbox_route *route, const struct pgo_relation *rel,
                         const struct pgo_tuple *old, const struct pgo_tuple *row);

/* The event of an UPDATE (op update): the new row (from outbox_update_row) on its topic.
 * The envelope's old_key is taken from old, or from row when old is NULL. Returns 0, or -1
 * with the reason in why (as outbox_build; also for a value the UPDATE did not carry). */
int outbox_build_update(struct outbox_route *route, const struct pgo_relation *rel,
                        const struct pgo_tuple *old, const struct pgo_tuple *row, struct event *ev, char *why,
                        size_t whylen);

/* The event of a DELETE, or of clearing an updated row's old topic (op delete), on the
 * topic formed from old: with retain, a zero-length message, which clears the topic's
 * retained message; otherwise old's key as a JSON object (an envelope with it as old_key
 * and row null). Returns 0, or -1 with the reason in why. */
int outbox_build_delete(struct outbox_route *route, const struct pgo_relation *rel,
                        const struct pgo_tuple *old, struct event *ev, char *why, size_t whylen);

#endif
