#include "backoff.h"

void backoff_init(struct backoff *b, uint32_t min_ms, uint32_t max_ms)
{
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	backoff_reset(b);
}

void backoff_reset(struct backoff *b)
{
	b->ceiling_ms = b->min_ms;
	b->attempts = 0;
}

uint32_t backoff_next(struct backoff *b, uint32_t random_value)
{
	uint32_t ceiling = b->ceiling_ms;
	uint32_t half = ceiling / 2;
	uint32_t delay = half + random_value % (ceiling - half + 1);

	if (delay < b->min_ms)
		delay = b->min_ms;
	b->attempts++;
	b->ceiling_ms = ceiling > b->max_ms / 2 ? b->max_ms : ceiling * 2;
	return delay;
}

uint32_t backoff_after_session(struct backoff *b, bool healthy, uint32_t random_value)
{
	if (healthy)
		backoff_reset(b);
	return backoff_next(b, random_value);
}
