#include "ledger.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* MQTT message ids are 16 bits and never 0, so no more can be unacknowledged at once. */
#define MID_MAX 65535
#define NO_SLOT UINT32_MAX

/*
 * The queue holds events and transaction-end markers in publish order. Two invariants
 * bound it: after every call the queue is empty or starts with an unacknowledged event
 * (acknowledged entries are popped from the head at once, and an end arriving on an
 * empty queue is applied, not queued), and no marker directly follows another (a later
 * end replaces an earlier one). So markers never outnumber events, and a ring of
 * 2 * max_events entries always has room.
 */
struct entry {
	lsn_t lsn;           /* event: its commit LSN; marker: the end LSN */
	int32_t event_index; /* event only */
	bool is_txn_end;
	bool acked;   /* event only; markers need no acknowledgement */
	int mid;      /* event only: its MQTT message id, 0 while it awaits publishing again */
	uint64_t seq; /* event only: its number, see ledger_seq_of() */
};

struct ledger {
	struct entry *ring;
	size_t cap;
	size_t head;   /* oldest entry */
	size_t count;  /* entries queued */
	size_t events; /* events queued, acknowledged or not: what fills the window */
	size_t unacked;
	size_t max_events;
	uint64_t next_seq; /* the number the next event added gets */
	bool txn_open;     /* an event was added and its transaction has not ended */
	struct ledger_pos pos;
	uint32_t slot_of_mid[MID_MAX + 1]; /* ring slot of each unacknowledged mid */
};

struct ledger *ledger_new(size_t max_events, struct ledger_pos start)
{
	struct ledger *l = xmalloc(sizeof *l);
	if (max_events < 1)
		max_events = 1;
	if (max_events > MID_MAX)
		max_events = MID_MAX;
	l->cap = 2 * max_events;
	l->ring = xcalloc(l->cap, sizeof *l->ring);
	l->head = l->count = l->events = l->unacked = 0;
	l->max_events = max_events;
	l->next_seq = 0;
	l->txn_open = false;
	l->pos = start;
	memset(l->slot_of_mid, 0xFF, sizeof l->slot_of_mid);
	return l;
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	free(l->ring);
	free(l);
}

bool ledger_has_room(const struct ledger *l)
{
	return l->events < l->max_events;
}

static size_t slot_at(const struct ledger *l, size_t i)
{
	return (l->head + i) % l->cap;
}

static void push(struct ledger *l, struct entry e)
{
	l->ring[slot_at(l, l->count)] = e;
	l->count++;
}

static bool valid_mid(int mid)
{
	return mid >= 1 && mid <= MID_MAX;
}

int ledger_add(struct ledger *l, int mid, lsn_t commit_lsn, int32_t event_index)
{
	if (!valid_mid(mid) || l->slot_of_mid[mid] != NO_SLOT)
		return -1;
	if (!ledger_has_room(l))
		return -1;
	l->slot_of_mid[mid] = (uint32_t)slot_at(l, l->count);
	push(l, (struct entry){ commit_lsn, event_index, false, false, mid, l->next_seq++ });
	l->events++;
	l->unacked++;
	l->txn_open = true;
	return 0;
}

static void confirm(struct ledger *l, lsn_t end_lsn)
{
	if (end_lsn > l->pos.confirmed_lsn)
		l->pos.confirmed_lsn = end_lsn;
}

bool event_pos_after(struct event_pos a, struct event_pos b)
{
	return a.commit_lsn > b.commit_lsn || (a.commit_lsn == b.commit_lsn && a.index > b.index);
}

void ledger_txn_end(struct ledger *l, lsn_t commit_lsn, lsn_t end_lsn)
{
	/* The commit LSN is already on the transaction's events; the end is what counts. */
	(void)commit_lsn;
	l->txn_open = false;
	if (l->count == 0) {
		confirm(l, end_lsn);
		return;
	}
	struct entry *tail = &l->ring[slot_at(l, l->count - 1)];
	if (tail->is_txn_end) {
		/* Nothing between the two ends: only the later one will ever matter. */
		if (end_lsn > tail->lsn)
			tail->lsn = end_lsn;
		return;
	}
	push(l, (struct entry){ end_lsn, 0, true, false, 0, 0 });
}

/* Moves the safe position over the acknowledged prefix. */
static void pop_acknowledged(struct ledger *l)
{
	while (l->count > 0) {
		struct entry *e = &l->ring[l->head];
		if (e->is_txn_end) {
			confirm(l, e->lsn);
		} else if (e->acked) {
			struct event_pos pos = { e->lsn, e->event_index };
			if (event_pos_after(pos, l->pos.acked))
				l->pos.acked = pos;
			l->events--;
		} else {
			return;
		}
		l->head = (l->head + 1) % l->cap;
		l->count--;
	}
}

/* The event's mid is no longer its own: acknowledged, or to be published again. */
static void unbind(struct ledger *l, struct entry *e)
{
	if (e->mid)
		l->slot_of_mid[e->mid] = NO_SLOT;
	e->mid = 0;
}

static void settle(struct ledger *l, struct entry *e)
{
	unbind(l, e);
	e->acked = true;
	l->unacked--;
	pop_acknowledged(l);
}

int ledger_ack(struct ledger *l, int mid)
{
	if (!valid_mid(mid) || l->slot_of_mid[mid] == NO_SLOT)
		return -1;
	settle(l, &l->ring[l->slot_of_mid[mid]]);
	return 0;
}

int64_t ledger_seq_of(const struct ledger *l, int mid)
{
	if (!valid_mid(mid) || l->slot_of_mid[mid] == NO_SLOT)
		return -1;
	return (int64_t)l->ring[l->slot_of_mid[mid]].seq;
}

/* The queued, unacknowledged event numbered seq, or NULL. Republishing is rare (once per lost
 * session), so a walk over the window is cheap enough. */
static struct entry *find_unacked(struct ledger *l, uint64_t seq)
{
	for (size_t i = 0; i < l->count; i++) {
		struct entry *e = &l->ring[slot_at(l, i)];
		if (!e->is_txn_end && !e->acked && e->seq == seq)
			return e;
	}
	return NULL;
}

int ledger_ack_seq(struct ledger *l, uint64_t seq)
{
	struct entry *e = find_unacked(l, seq);
	if (!e)
		return -1;
	settle(l, e);
	return 0;
}

bool ledger_next_unacked(const struct ledger *l, size_t *cursor, uint64_t *seq, int *mid)
{
	while (*cursor < l->count) {
		const struct entry *e = &l->ring[slot_at(l, (*cursor)++)];
		if (e->is_txn_end || e->acked)
			continue;
		*seq = e->seq;
		*mid = e->mid;
		return true;
	}
	return false;
}

int ledger_unbind(struct ledger *l, uint64_t seq)
{
	struct entry *e = find_unacked(l, seq);
	if (!e)
		return -1;
	unbind(l, e);
	return 0;
}

int ledger_bind(struct ledger *l, uint64_t seq, int mid)
{
	if (!valid_mid(mid) || l->slot_of_mid[mid] != NO_SLOT)
		return -1;
	struct entry *e = find_unacked(l, seq);
	if (!e || e->mid)
		return -1;
	e->mid = mid;
	l->slot_of_mid[mid] = (uint32_t)(e - l->ring);
	return 0;
}

/*
 * A keepalive's position can lie past the end of a transaction still being received.
 * While one with events is open its end is not confirmed yet, even if every event so
 * far is acknowledged: moving past it would let a restart skip its remaining rows.
 */
bool ledger_idle_advance(struct ledger *l, lsn_t lsn)
{
	if (l->count > 0 || l->txn_open || lsn <= l->pos.confirmed_lsn)
		return false;
	l->pos.confirmed_lsn = lsn;
	return true;
}

struct ledger_pos ledger_safe(const struct ledger *l)
{
	return l->pos;
}

size_t ledger_inflight(const struct ledger *l)
{
	return l->unacked;
}

/* The head: the queue is empty or starts with an unacknowledged event (see struct entry). */
bool ledger_oldest_unacked(const struct ledger *l, uint64_t *seq)
{
	if (l->count == 0)
		return false;
	*seq = l->ring[l->head].seq;
	return true;
}
