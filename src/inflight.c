#include "inflight.h"

#include <stdint.h>
#include <stdlib.h>

#include "util.h"

#define MID_COUNT 65536 /* MQTT message ids are 16 bits */

struct inflight {
	struct event *ring;
	int *mid_of; /* per slot: the mid kept there, 0 if none */
	size_t capacity, next;
	int32_t *slot_of_mid; /* MID_COUNT entries; -1: not kept */
};

struct inflight *inflight_new(size_t capacity)
{
	struct inflight *f = xcalloc(1, sizeof *f);
	f->capacity = capacity ? capacity : 1;
	f->ring = xcalloc(f->capacity, sizeof *f->ring);
	f->mid_of = xcalloc(f->capacity, sizeof *f->mid_of);
	for (size_t i = 0; i < f->capacity; i++)
		event_init(&f->ring[i]);
	f->slot_of_mid = xmalloc(MID_COUNT * sizeof *f->slot_of_mid);
	for (size_t i = 0; i < MID_COUNT; i++)
		f->slot_of_mid[i] = -1;
	return f;
}

void inflight_free(struct inflight *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->capacity; i++)
		event_finish(&f->ring[i]);
	free(f->ring);
	free(f->mid_of);
	free(f->slot_of_mid);
	free(f);
}

static bool valid_mid(int mid)
{
	return mid > 0 && mid < MID_COUNT;
}

void inflight_keep(struct inflight *f, int mid, struct event *ev)
{
	if (!valid_mid(mid))
		return;
	size_t slot = f->next;
	int old = f->mid_of[slot];
	if (old && f->slot_of_mid[old] == (int32_t)slot)
		f->slot_of_mid[old] = -1;
	struct event spare = f->ring[slot];
	f->ring[slot] = *ev;
	*ev = spare;
	f->mid_of[slot] = mid;
	f->slot_of_mid[mid] = (int32_t)slot;
	f->next = (slot + 1) % f->capacity;
}

struct event *inflight_find(struct inflight *f, int mid)
{
	if (!valid_mid(mid) || f->slot_of_mid[mid] < 0)
		return NULL;
	return &f->ring[f->slot_of_mid[mid]];
}

void inflight_forget(struct inflight *f, int mid)
{
	struct event *ev = inflight_find(f, mid);
	if (!ev)
		return;
	size_t slot = (size_t)f->slot_of_mid[mid];
	f->slot_of_mid[mid] = -1;
	f->mid_of[slot] = 0;
	event_trim(ev);
}
