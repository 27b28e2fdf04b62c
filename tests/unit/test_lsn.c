#include <check.h>
#include <stdlib.h>

#include "lsn.h"

static lsn_t parse_ok(const char *text)
{
	lsn_t v = 0;
	ck_assert_msg(lsn_parse(text, &v) == 0, "\"%s\" should parse", text);
	return v;
}

START_TEST(parses_extremes)
{
	ck_assert_uint_eq(parse_ok("0/0"), 0);
	ck_assert_uint_eq(parse_ok("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
	ck_assert_uint_eq(parse_ok("0/1"), 1);
	ck_assert_uint_eq(parse_ok("1/0"), (lsn_t)1 << 32);
	ck_assert_uint_eq(parse_ok("00000000/00000000"), 0);
}
END_TEST

START_TEST(parses_either_case)
{
	ck_assert_uint_eq(parse_ok("16/B374D848"), 0x16B374D848ULL);
	ck_assert_uint_eq(parse_ok("16/b374d848"), 0x16B374D848ULL);
	ck_assert_uint_eq(parse_ok("aBcDeF01/23456789"), 0xABCDEF0123456789ULL);
	ck_assert_uint_eq(parse_ok("ffffffff/ffffffff"), UINT64_MAX);
}
END_TEST

START_TEST(formats_uppercase_without_padding)
{
	char buf[LSN_BUFLEN];
	ck_assert_str_eq(lsn_format(0, buf), "0/0");
	ck_assert_str_eq(lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
	ck_assert_str_eq(lsn_format(0x16B374D848ULL, buf), "16/B374D848");
	ck_assert_str_eq(lsn_format((lsn_t)1 << 32, buf), "1/0");
	ck_assert_ptr_eq(lsn_format(1, buf), buf);
}
END_TEST

START_TEST(round_trips)
{
	static const lsn_t values[] = {
		0,
		1,
		0xF,
		0x10,
		0xFFFFFFFFULL,
		0x100000000ULL,
		0x16B374D848ULL,
		0x8000000000000000ULL,
		0x0123456789ABCDEFULL,
		UINT64_MAX - 1,
		UINT64_MAX,
	};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		char buf[LSN_BUFLEN];
		ck_assert_uint_eq(parse_ok(lsn_format(values[i], buf)), values[i]);
	}
	/* A spread of values with every nibble position exercised. */
	lsn_t v = 0x9E3779B97F4A7C15ULL;
	for (int i = 0; i < 1000; i++) {
		char buf[LSN_BUFLEN];
		v = v * 6364136223846793005ULL + 1442695040888963407ULL;
		ck_assert_uint_eq(parse_ok(lsn_format(v, buf)), v);
	}
}
END_TEST

START_TEST(text_round_trips)
{
	static const char *const texts[] = { "0/0", "1/2", "16/B374D848", "FFFFFFFF/FFFFFFFF" };
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		char buf[LSN_BUFLEN];
		ck_assert_str_eq(lsn_format(parse_ok(texts[i]), buf), texts[i]);
	}
}
END_TEST

START_TEST(rejects_malformed)
{
	static const char *const bad[] = {
		"",     "/",    "1/",   "/1",   "G/0", "0/G",   "123456789/0", "0/123456789", "1/2/3",
		" 1/2", "1/2 ", "1 /2", "1/ 2", "12",  "0x1/2", "-1/2",        "+1/2",        "1//2",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lsn_t v = 42;
		ck_assert_msg(lsn_parse(bad[i], &v) == -1, "\"%s\" should be rejected", bad[i]);
		ck_assert_msg(v == 42, "\"%s\" wrote the output on failure", bad[i]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lsn");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, parses_extremes);
	tcase_add_test(tc, parses_either_case);
	tcase_add_test(tc, formats_uppercase_without_padding);
	tcase_add_test(tc, round_trips);
	tcase_add_test(tc, text_round_trips);
	tcase_add_test(tc, rejects_malformed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
