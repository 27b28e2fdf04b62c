#include <check.h>
#include <stdlib.h>

#include "txn.h"

START_TEST(events_are_numbered_in_row_order)
{
	struct txn t;
	struct event ev;
	event_init(&ev);
	struct event_pos nothing = { 0, -1 };
	/* 2026-11-25T06:21:52.940434Z */
	txn_begin(&t, UINT64_C(0x16B374D848), INT64_C(848902912940434));
	ck_assert(t.open);
	for (int32_t i = 0; i < 3; i++) {
		ck_assert(txn_next_event(&t, nothing, &ev));
		ck_assert_int_eq(ev.index, i);
		ck_assert_uint_eq(ev.commit_lsn, UINT64_C(0x16B374D848));
		ck_assert_str_eq(ev.lsn_text, "16/B374D848");
		ck_assert_str_eq(ev.commit_time_text, "2026-11-25T06:21:52.940434Z");
		ck_assert_int_eq(ev.commit_time, INT64_C(848902912940434));
	}
	txn_end(&t);
	ck_assert(!t.open);
	txn_begin(&t, UINT64_C(0x16B374D900), 0); /* the next transaction starts at 0 again */
	ck_assert(txn_next_event(&t, nothing, &ev));
	ck_assert_int_eq(ev.index, 0);
	event_finish(&ev);
}
END_TEST

/* After a restart PostgreSQL may send again what was handled: up to and including it,
 * events are skipped, and numbering goes on so the next one gets its own index. */
START_TEST(a_replay_is_skipped_up_to_what_was_handled)
{
	struct txn t;
	struct event ev;
	event_init(&ev);
	ev.index = 99;
	struct event_pos handled = { 0x500, 1 };
	txn_begin(&t, 0x400, 0); /* an earlier transaction: all of it */
	ck_assert(!txn_next_event(&t, handled, &ev));
	ck_assert_int_eq(ev.index, 99); /* left alone */
	txn_begin(&t, 0x500, 0);        /* the same one: events 0 and 1 were handled */
	ck_assert(!txn_next_event(&t, handled, &ev));
	ck_assert(!txn_next_event(&t, handled, &ev));
	ck_assert(txn_next_event(&t, handled, &ev));
	ck_assert_int_eq(ev.index, 2);
	txn_begin(&t, 0x600, 0); /* a later one: all of it */
	ck_assert(txn_next_event(&t, handled, &ev));
	ck_assert_int_eq(ev.index, 0);
	event_finish(&ev);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("txn");
	TCase *tc = tcase_create("txn");
	tcase_add_test(tc, events_are_numbered_in_row_order);
	tcase_add_test(tc, a_replay_is_skipped_up_to_what_was_handled);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
