#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "inflight.h"

static void fill(struct event *ev, const char *topic, int32_t index)
{
	buf_reset(&ev->topic);
	buf_puts(&ev->topic, topic);
	ev->index = index;
}

START_TEST(kept_events_are_found_by_number_until_forgotten)
{
	struct inflight *f = inflight_new(4);
	struct event ev;
	event_init(&ev);
	fill(&ev, "a/1", 0);
	inflight_keep(f, 7, &ev);
	fill(&ev, "a/2", 1);
	inflight_keep(f, 8, &ev);
	ck_assert_str_eq(inflight_find(f, 7)->topic.data, "a/1");
	ck_assert_str_eq(inflight_find(f, 8)->topic.data, "a/2");
	ck_assert_ptr_null(inflight_find(f, 9));
	inflight_forget(f, 7);
	ck_assert_ptr_null(inflight_find(f, 7));
	ck_assert_str_eq(inflight_find(f, 8)->topic.data, "a/2");
	inflight_forget(f, 7); /* twice: harmless */
	event_finish(&ev);
	inflight_free(f);
}
END_TEST

/* Keeping swaps buffers: the caller gets the replaced slot's back, nothing is copied. */
START_TEST(keeping_swaps_buffers)
{
	struct inflight *f = inflight_new(1);
	struct event ev;
	event_init(&ev);
	fill(&ev, "first", 0);
	char *first_data = ev.topic.data;
	inflight_keep(f, 1, &ev);
	ck_assert_ptr_eq(inflight_find(f, 1)->topic.data, first_data);
	ck_assert_ptr_null(ev.topic.data); /* an empty slot's buffers */
	fill(&ev, "second", 1);
	char *second_data = ev.topic.data;
	inflight_keep(f, 2, &ev); /* a ring of one: replaces number 1 */
	ck_assert_ptr_eq(ev.topic.data, first_data);
	ck_assert_ptr_null(inflight_find(f, 1));
	ck_assert_ptr_eq(inflight_find(f, 2)->topic.data, second_data);
	event_finish(&ev);
	inflight_free(f);
}
END_TEST

/* A slot is reused by the number capacity later: the older one is gone from then on. */
START_TEST(a_reused_slot_answers_for_its_newest_number_only)
{
	struct inflight *f = inflight_new(3);
	struct event ev;
	event_init(&ev);
	fill(&ev, "old", 0);
	inflight_keep(f, 5, &ev);
	fill(&ev, "new", 1);
	inflight_keep(f, 8, &ev);
	ck_assert_str_eq(inflight_find(f, 8)->topic.data, "new");
	ck_assert_ptr_null(inflight_find(f, 5));
	ck_assert_ptr_null(inflight_find(f, 2));
	ck_assert_ptr_null(inflight_find(f, UINT64_MAX));
	inflight_forget(f, 5); /* not kept any more: leaves 8 alone */
	ck_assert_ptr_nonnull(inflight_find(f, 8));
	event_finish(&ev);
	inflight_free(f);
}
END_TEST

START_TEST(forgetting_frees_huge_buffers)
{
	struct inflight *f = inflight_new(2);
	struct event ev;
	event_init(&ev);
	size_t huge = EVENT_BUFFER_KEEP_MAX + 1;
	char *blob = malloc(huge);
	memset(blob, 'x', huge);
	buf_append(&ev.payload, blob, huge);
	fill(&ev, "big", 0);
	inflight_keep(f, 3, &ev);
	struct event *kept = inflight_find(f, 3);
	inflight_forget(f, 3);
	ck_assert_ptr_null(kept->payload.data);
	ck_assert_uint_eq(kept->payload.cap, 0);
	ck_assert_ptr_nonnull(kept->topic.data); /* small ones stay for reuse */
	free(blob);
	event_finish(&ev);
	inflight_free(f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inflight");
	TCase *tc = tcase_create("ring");
	tcase_add_test(tc, kept_events_are_found_by_number_until_forgotten);
	tcase_add_test(tc, keeping_swaps_buffers);
	tcase_add_test(tc, a_reused_slot_answers_for_its_newest_number_only);
	tcase_add_test(tc, forgetting_frees_huge_buffers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
