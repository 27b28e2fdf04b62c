#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

static const struct ledger_pos origin = { { 0, -1 }, 0 };

/* Checks the whole safe position at once, naming the caller's line on failure. */
#define ck_assert_pos(l, commit, idx, confirmed)                                                  \
	do {                                                                                      \
		struct ledger_pos p_ = ledger_safe(l);                                            \
		ck_assert_msg(p_.acked.commit_lsn == (commit) && p_.acked.index == (idx) &&       \
		                      p_.confirmed_lsn == (confirmed),                            \
		              "position (%llX, %d, %llX), expected (%llX, %d, %llX)",             \
		              (unsigned long long)p_.acked.commit_lsn, (int)p_.acked.index,       \
		              (unsigned long long)p_.confirmed_lsn, (unsigned long long)(commit), \
		              (int)(idx), (unsigned long long)(confirmed));                       \
	} while (0)

START_TEST(start_position_is_kept)
{
	struct ledger_pos start = { { 0x1000, 3 }, 0x1200 };
	struct ledger *l = ledger_new(8, start);
	ck_assert_pos(l, 0x1000, 3, 0x1200);
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ck_assert(ledger_has_room(l));
	ck_assert_int_eq(ledger_ack(l, 1), -1);
	ck_assert_pos(l, 0x1000, 3, 0x1200);
	ledger_free(l);
	ledger_free(NULL);
}
END_TEST

START_TEST(single_event_transaction)
{
	struct ledger *l = ledger_new(8, origin);
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert_uint_eq(ledger_inflight(l), 1);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x100, 0, 0x180);
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ledger_free(l);
}
END_TEST

START_TEST(ack_before_txn_end)
{
	/* The broker may acknowledge before the commit record has been read. */
	struct ledger *l = ledger_new(8, origin);
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x100, 0, 0);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_pos(l, 0x100, 0, 0x180);
	ledger_free(l);
}
END_TEST

START_TEST(later_acks_wait_for_the_first)
{
	struct ledger *l = ledger_new(8, origin);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ledger_add(l, 10 + i, 0x200, i), 0);
	ledger_txn_end(l, 0x200, 0x2A0);
	ck_assert_int_eq(ledger_ack(l, 13), 0);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_ack(l, 11), 0);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_ack(l, 12), 0);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_uint_eq(ledger_inflight(l), 1);
	ck_assert_int_eq(ledger_ack(l, 10), 0);
	ck_assert_pos(l, 0x200, 3, 0x2A0);
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ledger_free(l);
}
END_TEST

START_TEST(partial_prefix_moves_event_position_only)
{
	struct ledger *l = ledger_new(8, origin);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ledger_add(l, 1 + i, 0x300, i), 0);
	ledger_txn_end(l, 0x300, 0x340);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x300, 0, 0);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x300, 1, 0);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert_pos(l, 0x300, 2, 0x340);
	ledger_free(l);
}
END_TEST

START_TEST(interleaved_transactions)
{
	struct ledger_pos start = { { 0x50, 1 }, 0x60 };
	struct ledger *l = ledger_new(16, start);
	/* T1 at 0x100: mids 1,2; T2 at 0x200: mid 3; T3 at 0x300: mids 4,5,6. */
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x100, 1), 0);
	ledger_txn_end(l, 0x100, 0x110);
	ck_assert_int_eq(ledger_add(l, 3, 0x200, 0), 0);
	ledger_txn_end(l, 0x200, 0x210);
	ck_assert_int_eq(ledger_add(l, 4, 0x300, 0), 0);
	ck_assert_int_eq(ledger_add(l, 5, 0x300, 1), 0);
	ck_assert_int_eq(ledger_add(l, 6, 0x300, 2), 0);
	ledger_txn_end(l, 0x300, 0x310);
	ck_assert_uint_eq(ledger_inflight(l), 6);

	ck_assert_int_eq(ledger_ack(l, 5), 0);
	ck_assert_pos(l, 0x50, 1, 0x60);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert_pos(l, 0x50, 1, 0x60);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x50, 1, 0x60);
	ck_assert_int_eq(ledger_ack(l, 1), 0); /* T1, T2 done; T3 blocked on 4 */
	ck_assert_pos(l, 0x200, 0, 0x210);
	ck_assert_int_eq(ledger_ack(l, 6), 0);
	ck_assert_pos(l, 0x200, 0, 0x210);
	ck_assert_int_eq(ledger_ack(l, 4), 0);
	ck_assert_pos(l, 0x300, 2, 0x310);
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ledger_free(l);
}
END_TEST

START_TEST(interleaved_transactions_stepwise)
{
	struct ledger *l = ledger_new(16, origin);
	ck_assert_int_eq(ledger_add(l, 7, 0x100, 0), 0);
	ledger_txn_end(l, 0x100, 0x108);
	ck_assert_int_eq(ledger_add(l, 8, 0x200, 0), 0);
	ck_assert_int_eq(ledger_add(l, 9, 0x200, 1), 0);
	ledger_txn_end(l, 0x200, 0x208);
	ck_assert_int_eq(ledger_add(l, 10, 0x300, 0), 0);
	/* T3 has not ended yet. */
	ck_assert_int_eq(ledger_ack(l, 7), 0);
	ck_assert_pos(l, 0x100, 0, 0x108);
	ck_assert_int_eq(ledger_ack(l, 10), 0);
	ck_assert_pos(l, 0x100, 0, 0x108);
	ck_assert_int_eq(ledger_ack(l, 8), 0);
	ck_assert_pos(l, 0x200, 0, 0x108);
	ck_assert_int_eq(ledger_ack(l, 9), 0); /* T3's event already acked */
	ck_assert_pos(l, 0x300, 0, 0x208);
	ledger_txn_end(l, 0x300, 0x308); /* queue empty: applies at once */
	ck_assert_pos(l, 0x300, 0, 0x308);
	ledger_free(l);
}
END_TEST

START_TEST(empty_transaction_with_nothing_in_flight)
{
	struct ledger *l = ledger_new(4, (struct ledger_pos){ { 0x10, 0 }, 0x20 });
	ledger_txn_end(l, 0x100, 0x140);
	ck_assert_pos(l, 0x10, 0, 0x140);
	ledger_txn_end(l, 0x200, 0x240);
	ck_assert_pos(l, 0x10, 0, 0x240);
	/* An older end (a replay) never moves it back. */
	ledger_txn_end(l, 0x50, 0x60);
	ck_assert_pos(l, 0x10, 0, 0x240);
	ledger_free(l);
}
END_TEST

START_TEST(empty_transaction_behind_inflight)
{
	struct ledger *l = ledger_new(4, origin);
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ledger_txn_end(l, 0x100, 0x110);
	ledger_txn_end(l, 0x200, 0x210); /* nothing routed in this one */
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x300, 0), 0);
	ledger_txn_end(l, 0x300, 0x310);
	ledger_txn_end(l, 0x400, 0x410); /* another empty one */
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x100, 0, 0x210);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x300, 0, 0x410);
	ledger_free(l);
}
END_TEST

START_TEST(consecutive_ends_coalesce)
{
	/* One event and thousands of empty transactions behind it fit in the smallest
	 * ledger: consecutive markers collapse into one. */
	struct ledger *l = ledger_new(1, origin);
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert(!ledger_has_room(l));
	for (lsn_t lsn = 0x110; lsn < 0x110 + 10000 * 0x10; lsn += 0x10)
		ledger_txn_end(l, lsn, lsn + 8);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x100, 0, 0x110 + 9999 * 0x10 + 8);
	ck_assert(ledger_has_room(l));

	/* A stale end behind a newer queued one does not replace it. */
	ck_assert_int_eq(ledger_add(l, 2, 0x200000, 0), 0);
	ledger_txn_end(l, 0x200000, 0x200080);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x200000, 0, 0x200080);
	ledger_free(l);
}
END_TEST

START_TEST(markers_between_every_event_fit)
{
	/* The worst case for the ring: event, end, event, end ... all blocked on the first. */
	enum { N = 5 };
	struct ledger *l = ledger_new(N, origin);
	for (int round = 0; round < 3; round++) {
		lsn_t base = 0x1000 * (lsn_t)(round + 1);
		for (int i = 0; i < N; i++) {
			ck_assert_int_eq(ledger_add(l, 1 + i, base + 0x10 * (lsn_t)i, 0), 0);
			ledger_txn_end(l, base + 0x10 * (lsn_t)i, base + 0x10 * (lsn_t)i + 8);
			ledger_txn_end(l, base + 0x10 * (lsn_t)i + 9, base + 0x10 * (lsn_t)i + 0xA);
		}
		ck_assert(!ledger_has_room(l));
		for (int i = N - 1; i >= 1; i--)
			ck_assert_int_eq(ledger_ack(l, 1 + i), 0);
		ck_assert_uint_eq(ledger_inflight(l), 1);
		ck_assert_int_eq(ledger_ack(l, 1), 0);
		ck_assert_pos(l, base + 0x10 * (N - 1), 0, base + 0x10 * (N - 1) + 0xA);
	}
	ledger_free(l);
}
END_TEST

START_TEST(capacity)
{
	struct ledger *l = ledger_new(3, origin);
	ck_assert(ledger_has_room(l));
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x100, 1), 0);
	ck_assert(ledger_has_room(l));
	ck_assert_int_eq(ledger_add(l, 3, 0x100, 2), 0);
	ck_assert(!ledger_has_room(l));
	ck_assert_int_eq(ledger_add(l, 4, 0x100, 3), -1);
	ck_assert_uint_eq(ledger_inflight(l), 3);
	ck_assert_int_eq(ledger_ack(l, 4), -1); /* the refused event is not tracked */

	/* An acknowledged event behind an unacknowledged one still takes its place:
	 * memory stays bounded however long the head is delayed. */
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert_uint_eq(ledger_inflight(l), 2);
	ck_assert(!ledger_has_room(l));
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert(ledger_has_room(l));
	ck_assert_int_eq(ledger_add(l, 4, 0x100, 3), 0);
	ck_assert(!ledger_has_room(l));
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_int_eq(ledger_ack(l, 4), 0);
	ck_assert(ledger_has_room(l));
	ck_assert_pos(l, 0x100, 3, 0);
	ledger_free(l);
}
END_TEST

START_TEST(degenerate_sizes)
{
	struct ledger *l = ledger_new(0, origin); /* lifted to one */
	ck_assert(ledger_has_room(l));
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert(!ledger_has_room(l));
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x100, 0, 0);
	ledger_free(l);

	/* More events than message ids cannot be in flight. */
	l = ledger_new(1000000, origin);
	for (int mid = 1; mid <= 65535; mid++)
		ck_assert_int_eq(ledger_add(l, mid, 0x100, mid - 1), 0);
	ck_assert(!ledger_has_room(l));
	ck_assert_uint_eq(ledger_inflight(l), 65535);
	for (int mid = 1; mid <= 65535; mid++)
		ck_assert_int_eq(ledger_ack(l, mid), 0);
	ck_assert_pos(l, 0x100, 65534, 0);
	ledger_free(l);
}
END_TEST

START_TEST(mid_wraparound)
{
	/* Window of 100; mids run 65400..65535 then 1.. like libmosquitto's counter. */
	struct ledger *l = ledger_new(100, origin);
	int mid = 65400;
	int first_unacked = mid;
	int32_t added = 0, acked = 0;
	for (int round = 0; round < 2000; round++) {
		while (ledger_has_room(l)) {
			ck_assert_int_eq(ledger_add(l, mid, 0x1000, added++), 0);
			mid = mid == 65535 ? 1 : mid + 1;
		}
		for (int k = 0; k < 37; k++) {
			ck_assert_int_eq(ledger_ack(l, first_unacked), 0);
			first_unacked = first_unacked == 65535 ? 1 : first_unacked + 1;
			acked++;
		}
		ck_assert_pos(l, 0x1000, acked - 1, 0);
	}
	ck_assert_int_gt(added, 70000); /* the counter wrapped at least once */
	ledger_free(l);
}
END_TEST

START_TEST(unknown_and_duplicate_mids)
{
	struct ledger *l = ledger_new(8, origin);
	ck_assert_int_eq(ledger_add(l, 5, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 5, 0x100, 1), -1); /* already in flight */
	ck_assert_int_eq(ledger_add(l, 0, 0x100, 1), -1); /* not a valid mid */
	ck_assert_int_eq(ledger_add(l, 65536, 0x100, 1), -1);
	ck_assert_int_eq(ledger_add(l, -1, 0x100, 1), -1);
	ck_assert_uint_eq(ledger_inflight(l), 1);

	ck_assert_int_eq(ledger_ack(l, 6), -1);
	ck_assert_int_eq(ledger_ack(l, 0), -1);
	ck_assert_int_eq(ledger_ack(l, 65536), -1);
	ck_assert_int_eq(ledger_ack(l, -7), -1);
	ck_assert_uint_eq(ledger_inflight(l), 1);
	ck_assert_pos(l, 0, -1, 0);

	ck_assert_int_eq(ledger_ack(l, 5), 0);
	ck_assert_pos(l, 0x100, 0, 0);
	ck_assert_int_eq(ledger_ack(l, 5), -1); /* late duplicate */
	ck_assert_pos(l, 0x100, 0, 0);

	/* A duplicate ack of an acked event still waiting behind the head changes nothing. */
	ck_assert_int_eq(ledger_add(l, 1, 0x200, 0), 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x200, 1), 0);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_int_eq(ledger_ack(l, 2), -1);
	ck_assert_uint_eq(ledger_inflight(l), 1);
	ck_assert_pos(l, 0x100, 0, 0);
	/* Its mid is free again, and may be reused at once. */
	ck_assert_int_eq(ledger_add(l, 2, 0x200, 2), 0);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x200, 1, 0);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x200, 2, 0);
	ledger_free(l);
}
END_TEST

START_TEST(idle_advance)
{
	struct ledger *l = ledger_new(4, (struct ledger_pos){ { 0x100, 2 }, 0x180 });
	ck_assert(ledger_idle_advance(l, 0x200));
	ck_assert_pos(l, 0x100, 2, 0x200);
	ck_assert(!ledger_idle_advance(l, 0x200)); /* not a move */
	ck_assert(!ledger_idle_advance(l, 0x1F0)); /* never backwards */
	ck_assert_pos(l, 0x100, 2, 0x200);

	ck_assert_int_eq(ledger_add(l, 1, 0x300, 0), 0);
	ck_assert(!ledger_idle_advance(l, 0x400)); /* something in flight */
	ck_assert_pos(l, 0x100, 2, 0x200);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0x300, 0, 0x200);
	/* Every event so far acknowledged but the transaction not ended: more rows of it
	 * may follow, so a keepalive position past its end must not be confirmed. */
	ck_assert(!ledger_idle_advance(l, 0x500));
	ck_assert_pos(l, 0x300, 0, 0x200);
	ledger_txn_end(l, 0x300, 0x380);
	ck_assert_pos(l, 0x300, 0, 0x380);
	ck_assert(ledger_idle_advance(l, 0x500));
	ledger_txn_end(l, 0x300, 0x380); /* a late repeat never moves it back */
	ck_assert_pos(l, 0x300, 0, 0x500);

	/* Held back while an acknowledged event waits behind an unacknowledged one. */
	ck_assert_int_eq(ledger_add(l, 2, 0x600, 0), 0);
	ck_assert_int_eq(ledger_add(l, 3, 0x600, 1), 0);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert(!ledger_idle_advance(l, 0x700));
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert(!ledger_idle_advance(l, 0x700)); /* still open */
	ledger_txn_end(l, 0x600, 0x680);
	ck_assert(ledger_idle_advance(l, 0x700));
	ck_assert_pos(l, 0x600, 1, 0x700);
	ledger_free(l);
}
END_TEST

START_TEST(never_moves_backwards)
{
	/* Events at or before the start position (a replay the caller did not skip) must
	 * not pull the position back. */
	struct ledger *l = ledger_new(4, (struct ledger_pos){ { 0x500, 3 }, 0x580 });
	ck_assert_int_eq(ledger_add(l, 1, 0x500, 1), 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x400, 7), 0);
	ledger_txn_end(l, 0x400, 0x480);
	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert_pos(l, 0x500, 3, 0x580);
	ck_assert_int_eq(ledger_add(l, 3, 0x500, 4), 0);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert_pos(l, 0x500, 4, 0x580);
	ledger_free(l);
}
END_TEST

START_TEST(ring_wraps_many_times)
{
	struct ledger *l = ledger_new(3, origin);
	lsn_t commit = 0x1000;
	int mid = 1;
	for (int txn = 0; txn < 5000; txn++, commit += 0x100) {
		int n = txn % 4; /* 0..3 events */
		int first = mid;
		for (int i = 0; i < n; i++) {
			ck_assert_int_eq(ledger_add(l, mid, commit, i), 0);
			mid = mid % 65535 + 1;
		}
		ledger_txn_end(l, commit, commit + 0x80);
		for (int i = n - 1; i >= 0; i--) {
			int m = (first - 1 + i) % 65535 + 1;
			ck_assert_int_eq(ledger_ack(l, m), 0);
		}
		ck_assert_uint_eq(ledger_safe(l).confirmed_lsn, commit + 0x80);
		ck_assert(ledger_has_room(l));
	}
	/* The last transaction (4999 % 4 = 3 events) is the latest one. */
	ck_assert_pos(l, commit - 0x100, 2, commit - 0x100 + 0x80);
	ledger_free(l);
}
END_TEST

/* ---- A reference model: the whole history in an array, rescanned after every step ---- */

enum { MODEL_MAX = 30000 };

struct model_entry {
	bool is_txn_end;
	bool acked;
	int mid;
	lsn_t lsn;
	int32_t event_index;
	uint64_t seq;
};

struct model {
	struct model_entry e[MODEL_MAX];
	size_t n;
	size_t max_events;
	struct ledger_pos start;
	lsn_t idle_floor; /* highest accepted idle advance */
};

static bool model_is_pending(const struct model_entry *e)
{
	return !e->is_txn_end && !e->acked;
}

/* Index of the first unacknowledged event, or n. */
static size_t model_first_pending(const struct model *m)
{
	size_t i = 0;
	while (i < m->n && !model_is_pending(&m->e[i]))
		i++;
	return i;
}

static struct ledger_pos model_safe(const struct model *m)
{
	struct ledger_pos pos = m->start;
	size_t end = model_first_pending(m);
	for (size_t i = 0; i < end; i++) {
		const struct model_entry *e = &m->e[i];
		if (e->is_txn_end) {
			if (e->lsn > pos.confirmed_lsn)
				pos.confirmed_lsn = e->lsn;
		} else if (e->lsn > pos.acked.commit_lsn ||
		           (e->lsn == pos.acked.commit_lsn && e->event_index > pos.acked.index)) {
			pos.acked.commit_lsn = e->lsn;
			pos.acked.index = e->event_index;
		}
	}
	if (m->idle_floor > pos.confirmed_lsn)
		pos.confirmed_lsn = m->idle_floor;
	return pos;
}

/* The last thing recorded is an event: its transaction has not ended. */
static bool model_txn_open(const struct model *m)
{
	return m->n > 0 && !m->e[m->n - 1].is_txn_end;
}

static size_t model_unacked(const struct model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		n += model_is_pending(&m->e[i]);
	return n;
}

/* Events from the first unacknowledged one on, acknowledged or not. */
static size_t model_held(const struct model *m)
{
	size_t n = 0;
	for (size_t i = model_first_pending(m); i < m->n; i++)
		n += !m->e[i].is_txn_end;
	return n;
}

static bool model_has_room(const struct model *m)
{
	return model_held(m) < m->max_events;
}

static struct model_entry *model_find_pending(struct model *m, int mid)
{
	for (size_t i = 0; i < m->n; i++)
		if (model_is_pending(&m->e[i]) && m->e[i].mid == mid)
			return &m->e[i];
	return NULL;
}

/* The nth unacknowledged event, oldest first. */
static struct model_entry *model_nth_pending(struct model *m, size_t nth)
{
	for (size_t i = 0; i < m->n; i++)
		if (model_is_pending(&m->e[i]) && nth-- == 0)
			return &m->e[i];
	return NULL;
}

static uint64_t rng_state;

static uint32_t rng(uint32_t bound)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % bound);
}

/* The stream being replayed: the open transaction and the next message id. */
struct stream {
	lsn_t commit_lsn;
	int32_t next_index;
	int next_mid;
	uint64_t next_seq;
	size_t steps;
	/* How often the interesting cases came up, so a change of seed cannot quietly
	 * stop exercising them. */
	size_t refused, idle_moves, wraps, republished;
};

static void compare(const struct ledger *l, const struct model *m, const struct stream *s)
{
	struct ledger_pos want = model_safe(m), got = ledger_safe(l);
	ck_assert_msg(got.acked.commit_lsn == want.acked.commit_lsn && got.acked.index == want.acked.index &&
	                      got.confirmed_lsn == want.confirmed_lsn,
	              "step %zu: (%llX, %d, %llX), model (%llX, %d, %llX)", s->steps,
	              (unsigned long long)got.acked.commit_lsn, (int)got.acked.index,
	              (unsigned long long)got.confirmed_lsn, (unsigned long long)want.acked.commit_lsn,
	              (int)want.acked.index, (unsigned long long)want.confirmed_lsn);
	ck_assert_uint_eq(ledger_inflight(l), model_unacked(m));
	ck_assert_int_eq(ledger_has_room(l), model_has_room(m));
	uint64_t seq = UINT64_MAX;
	size_t first = model_first_pending(m);
	ck_assert_int_eq(ledger_oldest_unacked(l, &seq), first < m->n);
	if (first < m->n)
		ck_assert_uint_eq(seq, m->e[first].seq);
}

/* libmosquitto's counter: wraps past 65535 to 1, skipping nothing. */
static void advance_mid(struct stream *s)
{
	s->wraps += s->next_mid == 65535;
	s->next_mid = s->next_mid == 65535 ? 1 : s->next_mid + 1;
}

static void step_add(struct ledger *l, struct model *m, struct stream *s)
{
	int mid = s->next_mid;
	bool room = model_has_room(m);
	ck_assert_int_eq(ledger_add(l, mid, s->commit_lsn, s->next_index), room ? 0 : -1);
	if (!room) {
		s->refused++;
		return;
	}
	m->e[m->n++] = (struct model_entry){ false, false, mid, s->commit_lsn, s->next_index, s->next_seq++ };
	ck_assert_int_eq(ledger_seq_of(l, mid), (int64_t)m->e[m->n - 1].seq);
	s->next_index++;
	advance_mid(s);
}

/* A lost session: every unacknowledged event is published again, in order, under the next
 * message ids (which may be ones the old session used). */
static void step_republish(struct ledger *l, struct model *m, struct stream *s)
{
	for (size_t i = 0; i < m->n; i++)
		if (model_is_pending(&m->e[i]))
			ck_assert_int_eq(ledger_unbind(l, m->e[i].seq), 0);
	size_t cursor = 0;
	uint64_t seq;
	int mid;
	for (size_t i = 0; i < m->n; i++) {
		struct model_entry *e = &m->e[i];
		if (!model_is_pending(e))
			continue;
		ck_assert(ledger_next_unacked(l, &cursor, &seq, &mid));
		ck_assert_uint_eq(seq, e->seq);
		ck_assert_int_eq(mid, 0);
		ck_assert_int_eq(ledger_bind(l, seq, s->next_mid), 0);
		e->mid = s->next_mid;
		advance_mid(s);
		s->republished++;
	}
	ck_assert(!ledger_next_unacked(l, &cursor, &seq, &mid));
}

static void step_txn_end(struct ledger *l, struct model *m, struct stream *s)
{
	lsn_t end = s->commit_lsn + 1 + rng(0x40);
	ledger_txn_end(l, s->commit_lsn, end);
	m->e[m->n++] = (struct model_entry){ true, true, 0, end, 0, 0 };
	s->commit_lsn = end + 1 + rng(0x100);
	s->next_index = 0;
}

static void step_ack(struct ledger *l, struct model *m, bool head_first)
{
	size_t pending = model_unacked(m);
	if (pending == 0)
		return;
	/* Often in order, as a broker tends to answer; otherwise any pending one. */
	size_t nth = head_first && rng(2) ? 0 : rng((uint32_t)pending);
	struct model_entry *e = model_nth_pending(m, nth);
	ck_assert_int_eq(ledger_ack(l, e->mid), 0);
	e->acked = true;
}

static void step_bad_ack(struct ledger *l, struct model *m)
{
	int mid = 1 + (int)rng(65535);
	if (model_find_pending(m, mid))
		return;
	ck_assert_int_eq(ledger_ack(l, mid), -1);
}

static void step_duplicate_add(struct ledger *l, struct model *m, struct stream *s)
{
	size_t pending = model_unacked(m);
	if (pending == 0)
		return;
	struct model_entry *e = model_nth_pending(m, rng((uint32_t)pending));
	ck_assert_int_eq(ledger_add(l, e->mid, s->commit_lsn, s->next_index), -1);
}

static void step_idle(struct ledger *l, struct model *m, struct stream *s)
{
	lsn_t now = model_safe(m).confirmed_lsn;
	lsn_t lsn = now + rng(0x200);
	lsn = lsn > 0x100 ? lsn - 0x100 : 0; /* sometimes behind: must not move */
	bool movable = model_unacked(m) == 0 && !model_txn_open(m) && lsn > now;
	ck_assert_int_eq(ledger_idle_advance(l, lsn), movable);
	if (movable)
		m->idle_floor = lsn;
	s->idle_moves += movable;
}

static void run_against_model(size_t max_events, uint64_t seed, size_t steps)
{
	static struct model m;
	memset(&m, 0, sizeof m);
	m.max_events = max_events;
	m.start = (struct ledger_pos){ { 0x5000, 2 }, 0x5080 };
	struct ledger *l = ledger_new(max_events, m.start);
	struct stream s = { 0x6000, 0, 65000, 0, 0, 0, 0, 0, 0 };
	rng_state = seed;
	for (s.steps = 0; s.steps < steps && m.n < MODEL_MAX - 1; s.steps++) {
		/* Alternate phases that fill the window and drain it, so both a full ledger
		 * and an empty one come up at every window size. */
		bool draining = (s.steps / (250 + 5 * max_events)) % 2;
		uint32_t r = rng(100);
		if (r < (draining ? 10 : 40))
			step_add(l, &m, &s);
		else if (r < 55)
			step_txn_end(l, &m, &s);
		else if (r < 90)
			step_ack(l, &m, draining);
		else if (r < 93)
			step_bad_ack(l, &m);
		else if (r < 94)
			step_republish(l, &m, &s);
		else if (r < 97)
			step_duplicate_add(l, &m, &s);
		else
			step_idle(l, &m, &s);
		compare(l, &m, &s);
	}
	/* Drain: everything acknowledged, the position is at the last end. */
	while (model_unacked(&m) > 0) {
		step_ack(l, &m, true);
		compare(l, &m, &s);
	}
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ck_assert_uint_gt(s.refused, 0);
	ck_assert_uint_gt(s.idle_moves, 0);
	ck_assert_uint_gt(s.wraps, 0);
	ck_assert_uint_gt(s.republished, 0);
	ledger_free(l);
}

START_TEST(matches_model_window_1)
{
	run_against_model(1, 0x2545F4914F6CDD1DULL, 5000);
}
END_TEST

START_TEST(matches_model_window_3)
{
	run_against_model(3, 0x9E3779B97F4A7C15ULL, 6000);
}
END_TEST

START_TEST(matches_model_window_16)
{
	run_against_model(16, 0xD1B54A32D192ED03ULL, 8000);
}
END_TEST

START_TEST(matches_model_window_200)
{
	run_against_model(200, 0x8CB92BA72F3D8DD7ULL, 12000);
}
END_TEST

/* ---- publishing again after a lost session ---- */

/* Collects the unacknowledged events as "seq:mid" pairs, in order. */
static void unacked_text(const struct ledger *l, char *out, size_t size)
{
	size_t cursor = 0, used = 0;
	uint64_t seq;
	int mid;
	out[0] = '\0';
	while (ledger_next_unacked(l, &cursor, &seq, &mid))
		used += (size_t)snprintf(out + used, size - used, "%s%llu:%d", used ? " " : "",
		                         (unsigned long long)seq, mid);
}

START_TEST(events_are_numbered_in_order)
{
	struct ledger *l = ledger_new(8, origin);
	ck_assert_int_eq(ledger_add(l, 7, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 9, 0x100, 1), 0);
	ck_assert_int_eq(ledger_seq_of(l, 7), 0);
	ck_assert_int_eq(ledger_seq_of(l, 9), 1);
	ck_assert_int_eq(ledger_seq_of(l, 8), -1);
	ck_assert_int_eq(ledger_seq_of(l, 0), -1);
	ck_assert_int_eq(ledger_ack(l, 7), 0);
	ck_assert_int_eq(ledger_seq_of(l, 7), -1);
	ck_assert_int_eq(ledger_add(l, 7, 0x200, 0), 0); /* a mid used again: a new number */
	ck_assert_int_eq(ledger_seq_of(l, 7), 2);
	ledger_free(l);
}
END_TEST

/* A new session: every unacknowledged event is published again, and the new message ids
 * may be ones the old session used for other events. */
START_TEST(republish_under_new_mids)
{
	char text[128];
	struct ledger *l = ledger_new(8, origin);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ledger_add(l, 1 + i, 0x100, i), 0);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	unacked_text(l, text, sizeof text);
	ck_assert_str_eq(text, "0:1 2:3");

	ck_assert_int_eq(ledger_unbind(l, 0), 0);
	ck_assert_int_eq(ledger_unbind(l, 2), 0);
	ck_assert_int_eq(ledger_unbind(l, 1), -1); /* acknowledged already */
	unacked_text(l, text, sizeof text);
	ck_assert_str_eq(text, "0:0 2:0");
	ck_assert_int_eq(ledger_ack(l, 1), -1); /* a late ack for the old session */
	ck_assert_int_eq(ledger_ack(l, 3), -1);
	ck_assert_uint_eq(ledger_inflight(l), 2);
	ck_assert_pos(l, 0, -1, 0);

	ck_assert_int_eq(ledger_bind(l, 0, 3), 0);  /* the old mid of event 2 */
	ck_assert_int_eq(ledger_bind(l, 2, 3), -1); /* in use now */
	ck_assert_int_eq(ledger_bind(l, 0, 4), -1); /* bound already */
	ck_assert_int_eq(ledger_bind(l, 2, 1), 0);
	ck_assert_int_eq(ledger_bind(l, 1, 5), -1); /* not in flight */
	ck_assert_int_eq(ledger_seq_of(l, 3), 0);
	ck_assert_int_eq(ledger_seq_of(l, 1), 2);

	ck_assert_int_eq(ledger_ack(l, 1), 0);
	ck_assert_pos(l, 0, -1, 0);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert_pos(l, 0x100, 2, 0x180);
	ck_assert_uint_eq(ledger_inflight(l), 0);
	ledger_free(l);
}
END_TEST

/* The oldest unacknowledged event is the head, whatever was acknowledged after it. */
START_TEST(oldest_unacked)
{
	uint64_t seq = UINT64_MAX;
	struct ledger *l = ledger_new(8, origin);
	ck_assert(!ledger_oldest_unacked(l, &seq));
	ck_assert_int_eq(ledger_add(l, 1, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 2, 0x100, 1), 0);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_int_eq(ledger_add(l, 3, 0x200, 0), 0);
	ck_assert(ledger_oldest_unacked(l, &seq));
	ck_assert_uint_eq(seq, 0);
	ck_assert_int_eq(ledger_ack(l, 2), 0);
	ck_assert(ledger_oldest_unacked(l, &seq));
	ck_assert_uint_eq(seq, 0);
	ck_assert_int_eq(ledger_ack(l, 1), 0); /* past the acknowledged one and the marker */
	ck_assert(ledger_oldest_unacked(l, &seq));
	ck_assert_uint_eq(seq, 2);
	ck_assert_int_eq(ledger_ack(l, 3), 0);
	ck_assert(!ledger_oldest_unacked(l, &seq));
	ledger_free(l);
}
END_TEST

/* An event refused while it awaited publishing again is settled by its number. */
START_TEST(settle_an_unbound_event)
{
	struct ledger *l = ledger_new(4, origin);
	ck_assert_int_eq(ledger_add(l, 10, 0x100, 0), 0);
	ck_assert_int_eq(ledger_add(l, 11, 0x100, 1), 0);
	ledger_txn_end(l, 0x100, 0x180);
	ck_assert_int_eq(ledger_unbind(l, 0), 0);
	ck_assert_int_eq(ledger_ack_seq(l, 0), 0);
	ck_assert_int_eq(ledger_ack_seq(l, 0), -1);
	ck_assert_pos(l, 0x100, 0, 0);
	ck_assert_int_eq(ledger_ack_seq(l, 1), 0); /* bound: its mid goes too */
	ck_assert_int_eq(ledger_ack(l, 11), -1);
	ck_assert_pos(l, 0x100, 1, 0x180);
	ck_assert_int_eq(ledger_ack_seq(l, 7), -1);
	ck_assert_int_eq(ledger_unbind(l, 7), -1);
	ledger_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ledger");

	TCase *tc_order = tcase_create("order");
	tcase_add_test(tc_order, start_position_is_kept);
	tcase_add_test(tc_order, single_event_transaction);
	tcase_add_test(tc_order, ack_before_txn_end);
	tcase_add_test(tc_order, later_acks_wait_for_the_first);
	tcase_add_test(tc_order, partial_prefix_moves_event_position_only);
	tcase_add_test(tc_order, interleaved_transactions);
	tcase_add_test(tc_order, interleaved_transactions_stepwise);
	tcase_add_test(tc_order, never_moves_backwards);
	tcase_add_test(tc_order, oldest_unacked);
	suite_add_tcase(s, tc_order);

	TCase *tc_ends = tcase_create("txn_end");
	tcase_add_test(tc_ends, empty_transaction_with_nothing_in_flight);
	tcase_add_test(tc_ends, empty_transaction_behind_inflight);
	tcase_add_test(tc_ends, consecutive_ends_coalesce);
	tcase_add_test(tc_ends, markers_between_every_event_fit);
	tcase_add_test(tc_ends, idle_advance);
	suite_add_tcase(s, tc_ends);

	TCase *tc_limits = tcase_create("limits");
	tcase_add_test(tc_limits, capacity);
	tcase_add_test(tc_limits, degenerate_sizes);
	tcase_add_test(tc_limits, mid_wraparound);
	tcase_add_test(tc_limits, unknown_and_duplicate_mids);
	tcase_add_test(tc_limits, ring_wraps_many_times);
	suite_add_tcase(s, tc_limits);

	TCase *tc_again = tcase_create("republish");
	tcase_add_test(tc_again, events_are_numbered_in_order);
	tcase_add_test(tc_again, republish_under_new_mids);
	tcase_add_test(tc_again, settle_an_unbound_event);
	suite_add_tcase(s, tc_again);

	TCase *tc_model = tcase_create("model");
	tcase_set_timeout(tc_model, 120);
	tcase_add_test(tc_model, matches_model_window_1);
	tcase_add_test(tc_model, matches_model_window_3);
	tcase_add_test(tc_model, matches_model_window_16);
	tcase_add_test(tc_model, matches_model_window_200);
	suite_add_tcase(s, tc_model);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
