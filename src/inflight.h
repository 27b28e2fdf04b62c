/*
 * The content of events published and not yet acknowledged, kept so that one the broker
 * refuses (MQTT 5 reason code >= 0x80) can be dead-lettered with its topic, payload and
 * properties, and so that every one can be published again when the broker did not keep
 * the MQTT session (doc/design.md §2.4).
 *
 * Events are kept under the ledger's sequence number (ledger_seq_of), which, unlike the
 * MQTT message id, stays the same when an event is published again.
 *
 * Keeping costs no copy: the event's buffers move into a ring slot and the slot's old
 * buffers come back to be filled by the next event. The ring is as large as the in-flight
 * window, and the ledger never lets more events than that be outstanding, so a kept event
 * is not overwritten before its acknowledgement. Pure: no I/O.
 */
#ifndef OUTBOX_INFLIGHT_H
#define OUTBOX_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct inflight;

/* capacity: the in-flight window (broker.max_inflight). */
struct inflight *inflight_new(size_t capacity);
void inflight_free(struct inflight *f);

/* Keeps *ev as event number seq: ev's buffers move to the ring and *ev receives the
 * buffers of the slot it replaces, to be reused. */
void inflight_keep(struct inflight *f, uint64_t seq, struct event *ev);

/* The event kept as seq, or NULL. Valid until seq is forgotten or its slot reused. */
struct event *inflight_find(struct inflight *f, uint64_t seq);

/* seq is acknowledged: forget it, and free its buffers if one huge event grew them. */
void inflight_forget(struct inflight *f, uint64_t seq);

#endif
