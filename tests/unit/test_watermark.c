#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watermark.h"

static int parse(const char *text, struct mark *m)
{
	return mark_parse((const uint8_t *)text, strlen(text), m);
}

START_TEST(marks_round_trip)
{
	struct buf b = BUF_INIT;
	struct mark in = { MARK_HIGH, 42, 1795922545000 }, out;
	mark_format(&in, &b);
	ck_assert_str_eq(b.data, "high:42:1795922545000");
	ck_assert_int_eq(parse(b.data, &out), 0);
	ck_assert_int_eq(out.kind, MARK_HIGH);
	ck_assert_int_eq(out.request, 42);
	ck_assert_int_eq(out.chunk, 1795922545000);
	in.kind = MARK_LOW;
	mark_format(&in, &b);
	ck_assert_int_eq(parse(b.data, &out), 0);
	ck_assert_int_eq(out.kind, MARK_LOW);
	buf_finish(&b);
}
END_TEST

START_TEST(marks_reject_anything_else)
{
	struct mark m;
	const char *bad[] = { "",
		              "low",
		              "low:",
		              "low:1",
		              "low:1:",
		              "low::2",
		              "mid:1:2",
		              "low:1:2:3",
		              "low:-1:2",
		              "high:1:2x",
		              "low:99999999999999999999:1",
		              "LOW:1:2" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(parse(bad[i], &m) == -1, "\"%s\" should not parse", bad[i]);
	/* Not NUL-terminated: the length decides. */
	ck_assert_int_eq(mark_parse((const uint8_t *)"low:1:23", 7, &m), 0);
	ck_assert_int_eq(m.chunk, 2);
}
END_TEST

START_TEST(keys_of_different_rows_differ)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	/* ("1:2", "3") and ("1", "2:3") must not encode alike, nor NULL and "-". */
	key_append_column(&a, "1:2", 3, false);
	key_append_column(&a, "3", 1, false);
	key_append_column(&b, "1", 1, false);
	key_append_column(&b, "2:3", 3, false);
	ck_assert(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
	buf_reset(&a);
	buf_reset(&b);
	key_append_column(&a, NULL, 0, true);
	key_append_column(&b, "-", 1, false);
	ck_assert(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
	buf_finish(&a);
	buf_finish(&b);
}
END_TEST

START_TEST(keyset_holds_what_was_added_until_cleared)
{
	struct keyset *s = keyset_new();
	char key[32];
	for (int i = 0; i < 10000; i++) {
		int n = snprintf(key, sizeof key, "k%d", i * 2);
		keyset_add(s, key, (size_t)n);
	}
	keyset_add(s, "k0", 2); /* again: still one */
	ck_assert_uint_eq(keyset_count(s), 10000);
	for (int i = 0; i < 20000; i++) {
		int n = snprintf(key, sizeof key, "k%d", i);
		ck_assert_msg(keyset_has(s, key, (size_t)n) == (i % 2 == 0), "key %s", key);
	}
	keyset_add(s, "", 0);
	ck_assert(keyset_has(s, "", 0));
	keyset_clear(s);
	ck_assert_uint_eq(keyset_count(s), 0);
	ck_assert(!keyset_has(s, "k0", 2));
	keyset_free(s);
}
END_TEST

START_TEST(chunk_size_follows_the_budget)
{
	/* Quick reads grow it, at most doubling. */
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, 1, 1000), 2000);
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, 25, 1000), 2000);
	/* Slow ones shrink it, at most halving. */
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, 100, 1000), 500);
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, 10000, 1000), 500);
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, CHUNK_BUDGET_MS, 1000), 1000);
	/* Within the bounds. */
	ck_assert_uint_eq(chunk_rows_next(CHUNK_ROWS_MIN, CHUNK_ROWS_MIN, 10000, 10), CHUNK_ROWS_MIN);
	ck_assert_uint_eq(chunk_rows_next(CHUNK_ROWS_MAX, CHUNK_ROWS_MAX, 1, 10), CHUNK_ROWS_MAX);
	/* The table's end says nothing about speed. */
	ck_assert_uint_eq(chunk_rows_next(1000, 10, 1, 100), 1000);
	/* Big rows: the chunk's bytes stay within half the bound whatever the speed. */
	ck_assert_uint_eq(chunk_rows_next(1000, 1000, 1, CHUNK_BYTES_MAX), 500);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("watermark");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, marks_round_trip);
	tcase_add_test(tc, marks_reject_anything_else);
	tcase_add_test(tc, keys_of_different_rows_differ);
	tcase_add_test(tc, keyset_holds_what_was_added_until_cleared);
	tcase_add_test(tc, chunk_size_follows_the_budget);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
