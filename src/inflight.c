#include "inflight.h"

#include <stdlib.h>

#include "util.h"

#define NOT_KEPT UINT64_MAX

/* Event seq lives in slot seq % capacity: numbers are consecutive and at most capacity of
 * them are outstanding, so two live events never share a slot. */
struct inflight {
	struct event *ring;
	uint64_t *seq_of; /* per slot: the event number kept there, NOT_KEPT if none */
	size_t capacity;
};

struct inflight *inflight_new(size_t capacity)
{
	struct inflight *f = xcalloc(1, sizeof *f);
	f->capacity = capacity ? capacity : 1;
	f->ring = xcalloc(f->capacity, sizeof *f->ring);
	f->seq_of = xmalloc(f->capacity * sizeof *f->seq_of);
	for (size_t i = 0; i < f->capacity; i++) {
		event_init(&f->ring[i]);
		f->seq_of[i] = NOT_KEPT;
	}
	return f;
}

void inflight_free(struct inflight *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->capacity; i++)
		event_finish(&f->ring[i]);
	free(f->ring);
	free(f->seq_of);
	free(f);
}

void inflight_keep(struct inflight *f, uint64_t seq, struct event *ev)
{
	size_t slot = (size_t)(seq % f->capacity);
	struct event spare = f->ring[slot];
	f->ring[slot] = *ev;
	*ev = spare;
	f->seq_of[slot] = seq;
}

struct event *inflight_find(struct inflight *f, uint64_t seq)
{
	size_t slot = (size_t)(seq % f->capacity);
	return seq != NOT_KEPT && f->seq_of[slot] == seq ? &f->ring[slot] : NULL;
}

void inflight_forget(struct inflight *f, uint64_t seq)
{
	struct event *ev = inflight_find(f, seq);
	if (!ev)
		return;
	f->seq_of[seq % f->capacity] = NOT_KEPT;
	event_trim(ev);
}
