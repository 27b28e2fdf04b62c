#include <check.h>
#include <stdlib.h>
#include <time.h>

#include "pgtime.h"

START_TEST(now_is_since_2000)
{
	struct timespec before, after;
	clock_gettime(CLOCK_REALTIME, &before);
	pg_time_t now = pg_now();
	clock_gettime(CLOCK_REALTIME, &after);
	int64_t lo = (before.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + before.tv_nsec / 1000;
	int64_t hi = (after.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + after.tv_nsec / 1000;
	ck_assert_int_ge(now, lo);
	ck_assert_int_le(now, hi);
	/* 2020-01-01 is 631152000 s after the PostgreSQL epoch. */
	ck_assert_int_gt(now, INT64_C(631152000) * 1000000);
}
END_TEST

START_TEST(time_format_rfc3339)
{
	char text[40];
	pg_time_format(0, text, sizeof text);
	ck_assert_str_eq(text, "2000-01-01T00:00:00.000000Z");
	/* 2026-11-25T06:21:52.940434Z */
	pg_time_format(INT64_C(848902912940434), text, sizeof text);
	ck_assert_str_eq(text, "2026-11-25T06:21:52.940434Z");
	/* One microsecond before the epoch: floor, not truncation toward zero. */
	pg_time_format(-1, text, sizeof text);
	ck_assert_str_eq(text, "1999-12-31T23:59:59.999999Z");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgtime");
	TCase *tc = tcase_create("time");
	tcase_add_test(tc, now_is_since_2000);
	tcase_add_test(tc, time_format_rfc3339);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
