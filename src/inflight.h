/*
 * The content of events published at QoS 1 or 2 and not yet acknowledged, kept so that
 * one the broker refuses (MQTT 5 reason code >= 0x80) can be dead-lettered with its
 * topic, payload and properties (SPEC §7).
 *
 * Keeping costs no copy: the event's buffers move into a ring slot and the slot's old
 * buffers come back to be filled by the next event. The ring is as large as the in-flight
 * window, and the ledger never lets more events than that be outstanding, so a kept event
 * is not overwritten before its acknowledgement. Pure: no I/O.
 */
#ifndef OUTBOX_INFLIGHT_H
#define OUTBOX_INFLIGHT_H

#include <stddef.h>

#include "outbox.h"

struct inflight;

/* capacity: the in-flight window (broker.max_inflight). */
struct inflight *inflight_new(size_t capacity);
void inflight_free(struct inflight *f);

/* Keeps *ev under MQTT message id mid (1..65535): ev's buffers move to the ring and *ev
 * receives the buffers of the slot it replaces, to be reused. */
void inflight_keep(struct inflight *f, int mid, struct event *ev);

/* The event kept under mid, or NULL. Valid until mid is forgotten or its slot reused. */
struct event *inflight_find(struct inflight *f, int mid);

/* mid is acknowledged: forget it, and free its buffers if one huge event grew them. */
void inflight_forget(struct inflight *f, int mid);

#endif
