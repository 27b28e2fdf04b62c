#include <check.h>
#include <stdlib.h>

#include "backoff.h"

START_TEST(first_delay_is_within_half_and_full_min)
{
	struct backoff b;
	backoff_init(&b, 100, 30000);
	ck_assert_uint_eq(backoff_next(&b, 0), 100); /* never below min */
	backoff_init(&b, 100, 30000);
	ck_assert_uint_eq(backoff_next(&b, 50), 100);
	backoff_init(&b, 200, 30000);
	ck_assert_uint_eq(backoff_next(&b, 0), 200);
	ck_assert_uint_eq(b.ceiling_ms, 400);
}
END_TEST

START_TEST(ceiling_doubles_up_to_max)
{
	struct backoff b;
	backoff_init(&b, 100, 1000);
	uint32_t expected[] = { 100, 200, 400, 800, 1000, 1000, 1000 };
	for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
		ck_assert_uint_eq(b.ceiling_ms, expected[i]);
		backoff_next(&b, 0);
	}
	ck_assert_uint_eq(b.attempts, 7);
}
END_TEST

START_TEST(jitter_stays_in_upper_half)
{
	struct backoff b;
	backoff_init(&b, 1000, 64000);
	for (int i = 0; i < 5; i++)
		backoff_next(&b, 0);
	ck_assert_uint_eq(b.ceiling_ms, 32000);
	/* Every random value lands in [ceiling/2, ceiling]. */
	for (uint32_t v = 0; v < 40000; v += 997) {
		struct backoff c = b;
		uint32_t d = backoff_next(&c, v);
		ck_assert_uint_ge(d, 16000);
		ck_assert_uint_le(d, 32000);
		ck_assert_uint_eq(d, 16000 + v % 16001);
	}
}
END_TEST

START_TEST(reset_returns_to_min)
{
	struct backoff b;
	backoff_init(&b, 100, 30000);
	backoff_next(&b, 0);
	backoff_next(&b, 0);
	backoff_reset(&b);
	ck_assert_uint_eq(b.ceiling_ms, 100);
	ck_assert_uint_eq(b.attempts, 0);
}
END_TEST

/* A session that never became healthy does not bring the delay back to min: a server that
 * accepts and then fails every session at once is retried ever more slowly. */
START_TEST(only_a_healthy_session_starts_afresh)
{
	struct backoff b;
	backoff_init(&b, 100, 5000);
	uint32_t expected[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
	for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
		ck_assert_uint_eq(b.ceiling_ms, expected[i]);
		backoff_after_session(&b, false, 0);
	}
	ck_assert_uint_eq(backoff_after_session(&b, true, 0), 100);
	ck_assert_uint_eq(b.ceiling_ms, 200);
}
END_TEST

START_TEST(degenerate_bounds)
{
	struct backoff b;
	backoff_init(&b, 0, 0); /* min 0 is lifted to 1 ms; max below min is lifted to min */
	ck_assert_uint_eq(b.min_ms, 1);
	ck_assert_uint_eq(b.max_ms, 1);
	ck_assert_uint_eq(backoff_next(&b, 12345), 1);
	backoff_init(&b, 30000, 30000);
	ck_assert_uint_eq(backoff_next(&b, 0), 30000);
	ck_assert_uint_eq(b.ceiling_ms, 30000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, first_delay_is_within_half_and_full_min);
	tcase_add_test(tc, ceiling_doubles_up_to_max);
	tcase_add_test(tc, jitter_stays_in_upper_half);
	tcase_add_test(tc, reset_returns_to_min);
	tcase_add_test(tc, only_a_healthy_session_starts_afresh);
	tcase_add_test(tc, degenerate_bounds);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
