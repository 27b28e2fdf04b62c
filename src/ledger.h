/*
 * The in-flight ledger: which published events are still unacknowledged, and from that
 * the newest position that is safe to checkpoint and to confirm to the slot.
 *
 * Events are added in publish order (which is commit order, and row order within a
 * transaction), each under the MQTT message id it was published with. Transaction ends
 * are recorded as markers between events. Acknowledgements may arrive in any order; the
 * safe position only moves over a prefix in which every event is acknowledged.
 *
 * Capacity is fixed at creation (bounded memory): a full ledger refuses new events and the
 * caller stops reading WAL. Pure: no I/O.
 */
#ifndef OUTBOX_LEDGER_H
#define OUTBOX_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

/* Where an event stands in the stream: its transaction's commit LSN and its 0-based index
 * there (-1: before the transaction's first event). */
struct event_pos {
	lsn_t commit_lsn;
	int32_t index;
};

/* True if a comes after b: a later commit, or the same one and a later index. */
bool event_pos_after(struct event_pos a, struct event_pos b);

struct ledger_pos {
	struct event_pos acked; /* the last acknowledged event; index -1 if none yet */
	/* End LSN of the last transaction fully acknowledged and ended, or a later
	 * idle-advance position: what the slot may be confirmed at. */
	lsn_t confirmed_lsn;
};

struct ledger;

/* max_events: most events held at once (the in-flight window), 1..65535 (clamped). */
struct ledger *ledger_new(size_t max_events, struct ledger_pos start);
void ledger_free(struct ledger *l);

/* True if another event can be added now. An acknowledged event still counts while an
 * earlier one is unacknowledged: it is held until the prefix before it completes. */
bool ledger_has_room(const struct ledger *l);

/* Records an event published with MQTT message id mid (1..65535). Returns 0, or -1 if
 * the ledger is full or mid is already in flight (a caller bug). */
int ledger_add(struct ledger *l, int mid, lsn_t commit_lsn, int32_t event_index);

/* Records that the transaction committed at commit_lsn has ended at end_lsn: every event
 * of it has been added. Once everything before is acknowledged, confirmed_lsn = end_lsn. */
void ledger_txn_end(struct ledger *l, lsn_t commit_lsn, lsn_t end_lsn);

/* Marks mid acknowledged. Returns 0, or -1 if mid is not in flight (late duplicate ack). */
int ledger_ack(struct ledger *l, int mid);

/*
 * Publishing again. Events are numbered from 0 in the order they are added; the number
 * stays with the event when a lost MQTT session makes the caller publish it again under a
 * new message id, so it is what the caller keeps an event's content under.
 */

/* The number of the event in flight under mid, or -1. */
int64_t ledger_seq_of(const struct ledger *l, int mid);

/* Marks the event numbered seq acknowledged, whatever its mid (one set aside while it
 * awaited publishing again). Returns 0, or -1 if it is not in flight. */
int ledger_ack_seq(struct ledger *l, uint64_t seq);

/* Walks the unacknowledged events in publish order; *cursor starts at 0. Sets *seq, and *mid
 * (0 for an event awaiting publishing again). Returns false after the last. */
bool ledger_next_unacked(const struct ledger *l, size_t *cursor, uint64_t *seq, int *mid);

/* The event seq must be published again: its mid is forgotten (acks for it are late
 * repeats from now on). Returns 0, or -1 if seq is not in flight. */
int ledger_unbind(struct ledger *l, uint64_t seq);

/* The event seq, unbound, has been published again under mid. Returns 0, or -1 if seq is
 * not an unbound event in flight or mid is in use. */
int ledger_bind(struct ledger *l, uint64_t seq, int mid);

/* Idle advance: if nothing is in flight and no transaction with events is open (added,
 * not yet ended), moves confirmed_lsn to lsn (never backwards). Returns true if it
 * moved. Call it only between transactions: an open one without events is invisible. */
bool ledger_idle_advance(struct ledger *l, lsn_t lsn);

/* The safe position now. */
struct ledger_pos ledger_safe(const struct ledger *l);

/* Events added and not yet acknowledged. */
size_t ledger_inflight(const struct ledger *l);

/* The number of the oldest unacknowledged event in *seq; false when there is none. */
bool ledger_oldest_unacked(const struct ledger *l, uint64_t *seq);

#endif
