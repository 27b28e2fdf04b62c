#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

START_TEST(properties_come_back_in_order)
{
	struct event ev;
	event_init(&ev);
	size_t cursor = 0;
	const char *name, *value;
	ck_assert(!event_next_property(&ev, &cursor, &name, &value)); /* none yet */

	event_add_property(&ev, "event-type", "OrderCreated", strlen("OrderCreated"));
	event_add_property(&ev, "trace-id", "", 0);
	event_add_property(&ev, "tenant", "acme-corp", 4); /* only len bytes count */
	ck_assert(event_next_property(&ev, &cursor, &name, &value));
	ck_assert_str_eq(name, "event-type");
	ck_assert_str_eq(value, "OrderCreated");
	ck_assert(event_next_property(&ev, &cursor, &name, &value));
	ck_assert_str_eq(name, "trace-id");
	ck_assert_str_eq(value, "");
	ck_assert(event_next_property(&ev, &cursor, &name, &value));
	ck_assert_str_eq(name, "tenant");
	ck_assert_str_eq(value, "acme");
	ck_assert(!event_next_property(&ev, &cursor, &name, &value));

	event_clear_properties(&ev); /* the next event starts empty */
	cursor = 0;
	ck_assert(!event_next_property(&ev, &cursor, &name, &value));
	event_add_property(&ev, "a", "1", 1);
	ck_assert(event_next_property(&ev, &cursor, &name, &value));
	ck_assert_str_eq(name, "a");
	ck_assert_str_eq(value, "1");
	event_finish(&ev);
}
END_TEST

START_TEST(trim_frees_only_huge_buffers)
{
	struct event ev;
	event_init(&ev);
	size_t huge = EVENT_BUFFER_KEEP_MAX + 1;
	char *blob = calloc(1, huge);
	buf_append(&ev.payload, blob, huge);
	buf_puts(&ev.topic, "a/b");
	event_trim(&ev);
	ck_assert_ptr_null(ev.payload.data);
	ck_assert_uint_eq(ev.payload.cap, 0);
	ck_assert_str_eq(ev.topic.data, "a/b");
	free(blob);
	event_finish(&ev);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("event");
	tcase_add_test(tc, properties_come_back_in_order);
	tcase_add_test(tc, trim_frees_only_huge_buffers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
