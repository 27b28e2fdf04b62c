#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* stderr goes to a temporary file; each test reads back the one line it wrote. */
static FILE *captured;

static void capture_setup(void)
{
	captured = tmpfile();
	ck_assert_ptr_nonnull(captured);
	fflush(stderr);
	ck_assert_int_ne(dup2(fileno(captured), STDERR_FILENO), -1);
	log_set_level(LOG_INFO);
}

static void capture_teardown(void)
{
	fclose(captured);
	log_set_format(LOG_FORMAT_LOGFMT);
}

/* The line written since the last call, from its "level" field on (ts varies). */
static char *last_line(const char *from)
{
	static char line[1024];
	fflush(stderr);
	rewind(captured);
	line[0] = '\0';
	while (fgets(line, sizeof line, captured)) {
	}
	ck_assert_int_eq(ftruncate(fileno(captured), 0), 0);
	rewind(captured);
	char *start = strstr(line, from);
	ck_assert_msg(start != NULL, "no %s in %s", from, line);
	return start;
}

START_TEST(json_numbers_are_bare)
{
	log_set_format(LOG_FORMAT_JSON);
	log_info("connected", "host", "127.0.0.1", LOG_NUMBER("port"), "1883", LOG_NUMBER("rate"), "12.5",
	         LOG_NUMBER("lag_ms"), "-3", LOG_NUMBER("big"), "1.5E+10", LOG_NUMBER("zero"), "0");
	ck_assert_str_eq(last_line("\"level\""),
	                 "\"level\":\"info\",\"msg\":\"connected\",\"host\":\"127.0.0.1\",\"port\":1883,"
	                 "\"rate\":12.5,\"lag_ms\":-3,\"big\":1.5E+10,\"zero\":0}\n");
}
END_TEST

/* A value that is no JSON number literal is a string: the line stays valid JSON. */
START_TEST(json_not_a_number_stays_a_string)
{
	static const char *const bad[] = { "",   "012", "12abc", "nan", "inf", "1.",   ".5",  "-",
		                           "1e", "1e+", "+1",    " 1",  "1 ",  "0x10", "--1", "1.2.3" };
	log_set_format(LOG_FORMAT_JSON);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char want[64];
		snprintf(want, sizeof want, "\"n\":\"%s\"}\n", bad[i]);
		log_info("m", LOG_NUMBER("n"), bad[i]);
		ck_assert_str_eq(last_line("\"n\""), want);
	}
	log_info("m", LOG_NUMBER("n"), (const char *)NULL);
	ck_assert_str_eq(last_line("\"n\""), "\"n\":\"\"}\n");
}
END_TEST

START_TEST(json_booleans_are_bare)
{
	log_set_format(LOG_FORMAT_JSON);
	log_info("m", LOG_BOOL("a"), "true", LOG_BOOL("b"), "false", LOG_BOOL("c"), "yes", LOG_BOOL("d"),
	         "1");
	ck_assert_str_eq(last_line("\"a\""), "\"a\":true,\"b\":false,\"c\":\"yes\",\"d\":\"1\"}\n");
}
END_TEST

/* The type is the key's: a value that looks like a number under a plain key is a string. */
START_TEST(json_plain_keys_are_strings)
{
	log_set_format(LOG_FORMAT_JSON);
	log_info("m", "sqlstate", "40001", "ok", "true");
	ck_assert_str_eq(last_line("\"sqlstate\""), "\"sqlstate\":\"40001\",\"ok\":\"true\"}\n");
}
END_TEST

START_TEST(logfmt_is_unchanged)
{
	log_set_format(LOG_FORMAT_LOGFMT);
	log_info("connected", "host", "127.0.0.1", LOG_NUMBER("port"), "1883", LOG_BOOL("ok"), "true",
	         LOG_NUMBER("bad"), "a b");
	ck_assert_str_eq(last_line("level="),
	                 "level=info msg=connected host=127.0.0.1 port=1883 ok=true bad=\"a b\"\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("fields");
	tcase_add_checked_fixture(tc, capture_setup, capture_teardown);
	tcase_add_test(tc, json_numbers_are_bare);
	tcase_add_test(tc, json_not_a_number_stays_a_string);
	tcase_add_test(tc, json_booleans_are_bare);
	tcase_add_test(tc, json_plain_keys_are_strings);
	tcase_add_test(tc, logfmt_is_unchanged);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
