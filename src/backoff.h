/* Exponential backoff with jitter for reconnecting (doc/design.md §4 reconnect: {min, max}). Pure. */
#ifndef OUTBOX_BACKOFF_H
#define OUTBOX_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

struct backoff {
	uint32_t min_ms;
	uint32_t max_ms;
	uint32_t ceiling_ms; /* grows x2 per failure from min to max */
	uint32_t attempts;   /* failures since the last success */
};

void backoff_init(struct backoff *b, uint32_t min_ms, uint32_t max_ms);

/* After a failure: the delay before the next try, drawn uniformly from [ceiling/2, ceiling]
 * ("equal jitter", so many relays restarting together do not retry in step) using the
 * caller's random value; then the ceiling doubles, up to max. */
uint32_t backoff_next(struct backoff *b, uint32_t random_value);

/* After a success. */
void backoff_reset(struct backoff *b);

/* After a session that failed: one that was healthy (it carried data, or lasted long enough,
 * as its owner defines) starts again from min; any other failure, a connection refused or a
 * session that ended before it was healthy, makes the delay grow. Returns the delay. */
uint32_t backoff_after_session(struct backoff *b, bool healthy, uint32_t random_value);

#endif
