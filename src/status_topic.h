/*
 * The relay's status topic (broker.status_topic, doc/design.md §8): the JSON of its messages.
 * "online" while the relay runs and "stopped" after a clean stop carry the stats line's
 * figures; "offline" is the Will, which the broker publishes for a relay that went away
 * without a word. Pure: the time and the figures come from the caller.
 */
#ifndef OUTBOX_STATUS_TOPIC_H
#define OUTBOX_STATUS_TOPIC_H

#include "buf.h"
#include "pgtime.h"
#include "stats.h"

/* The relay a message is about. */
struct status_topic_who {
	const char *client_id;
	const char *slot;
	const char *version;
};

/* Into out (reset first): {"state": state, "client_id", "slot", "version", "time" (RFC 3339
 * UTC), then the stats line's "published", "rate", "dead_lettered", "pending", "lag_bytes",
 * "lag_ms", "checkpoint_lsn" (X/Y) and "reconnects"}, numbers as JSON numbers. */
void status_topic_report(struct buf *out, const char *state, const struct status_topic_who *who,
                         pg_time_t time, const struct stats_view *v);

/* Into out (reset first): {"state":"offline","client_id": client_id}. */
void status_topic_offline(struct buf *out, const char *client_id);

#endif
