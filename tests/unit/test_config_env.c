#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_env.h"

/* The names cfg_expand_env reported unset, space-separated. */
struct unset_names {
	char text[256];
};

static void note_unset(void *ctx, const char *name)
{
	struct unset_names *u = ctx;
	size_t used = strlen(u->text);
	snprintf(u->text + used, sizeof u->text - used, "%s%s", used ? " " : "", name);
}

static void expect(const char *value, bool conninfo, const char *expected)
{
	struct unset_names unset = { "" };
	char *got = cfg_expand_env(value, conninfo, note_unset, &unset);
	ck_assert_msg(got != NULL, "%s: unset %s", value, unset.text);
	ck_assert_msg(strcmp(got, expected) == 0, "%s gave %s, expected %s", value, got, expected);
	ck_assert_str_eq(unset.text, "");
	free(got);
}

static void expect_unset(const char *value, bool conninfo, const char *names)
{
	struct unset_names unset = { "" };
	char *got = cfg_expand_env(value, conninfo, note_unset, &unset);
	ck_assert_msg(got == NULL, "%s gave %s, expected NULL", value, got);
	ck_assert_str_eq(unset.text, names);
}

static void setup(void)
{
	setenv("ENV_HOST", "db.example", 1);
	setenv("ENV_EMPTY", "", 1);
	setenv("ENV_ODD", "a b'c\\d=e ", 1);
	setenv("ENV_BRACES", "${ENV_HOST}", 1);
	setenv("ENV_WHOLE", "host=h dbname=", 1);
	unsetenv("ENV_UNSET");
	unsetenv("ENV_UNSET2");
}

START_TEST(references_become_values)
{
	expect("", false, "");
	expect("no references", false, "no references");
	expect("${ENV_HOST}", false, "db.example");
	expect("a${ENV_EMPTY}b/${ENV_HOST}:${ENV_HOST}", false, "ab/db.example:db.example");
	expect("${ENV_ODD}", false, "a b'c\\d=e ");
}
END_TEST

/* Only ${NAME} with NAME a letter or underscore then letters, digits, underscores. */
START_TEST(anything_else_is_literal)
{
	expect("$ENV_HOST $ ${} ${1A} ${ENV-HOST} ${ENV_HOST $", false,
	       "$ENV_HOST $ ${} ${1A} ${ENV-HOST} ${ENV_HOST $");
	expect("$${ENV_HOST}", false, "$db.example");
}
END_TEST

START_TEST(values_are_not_expanded_again)
{
	expect("${ENV_BRACES}", false, "${ENV_HOST}");
}
END_TEST

START_TEST(every_unset_variable_is_reported_in_order)
{
	expect_unset("${ENV_UNSET}", false, "ENV_UNSET");
	expect_unset("${ENV_UNSET2}x${ENV_HOST}${ENV_UNSET}${ENV_UNSET2}", false,
	             "ENV_UNSET2 ENV_UNSET ENV_UNSET2");
	expect_unset("dbname=${ENV_UNSET}", true, "ENV_UNSET");
	expect_unset("postgresql://h/${ENV_UNSET}", true, "ENV_UNSET");
}
END_TEST

/* Key=value conninfo: a reference is one value, whatever it holds. */
START_TEST(conninfo_values_are_quoted)
{
	expect("dbname=${ENV_ODD}", true, "dbname='a b\\'c\\\\d=e '");
	expect("host=x dbname=a${ENV_ODD}b", true, "host=x dbname='aa b\\'c\\\\d=e b'");
	expect("dbname = ${ENV_ODD}${ENV_EMPTY}", true, "dbname = 'a b\\'c\\\\d=e '");
	expect("password=${ENV_EMPTY} dbname=d", true, "password='' dbname=d");
	/* Quoted in the file: escaped only. */
	expect("dbname='q${ENV_ODD}'", true, "dbname='qa b\\'c\\\\d=e '");
	/* Literal parts of a value the relay quotes keep libpq's meaning. */
	expect("dbname=a\\${ENV_ODD} user=\\\\", true, "dbname='aa b\\'c\\\\d=e ' user=\\\\");
	expect("dbname=${ENV_HOST}\\", true, "dbname='db.example'");
	expect("a=b\\ ${ENV_ODD}", true, "a='b a b\\'c\\\\d=e '");
	/* No reference: the text as written. */
	expect("dbname=x\\", true, "dbname=x\\");
}
END_TEST

/* Where a keyword may start, a reference is conninfo text, followed like the file's. */
START_TEST(conninfo_references_at_a_keyword_are_text)
{
	expect("${ENV_ODD}", true, "a b'c\\d=e ");
	expect("${ENV_WHOLE}${ENV_ODD}", true, "host=h dbname='a b\\'c\\\\d=e '");
	expect("${ENV_BRACES} dbname=${ENV_BRACES}", true, "${ENV_HOST} dbname='${ENV_HOST}'");
}
END_TEST

/* A URI: every byte but the unreserved ones percent-encoded, literal text as written. */
START_TEST(conninfo_uri_values_are_percent_encoded)
{
	expect("postgresql://u@h/${ENV_ODD}?x=${ENV_HOST}", true,
	       "postgresql://u@h/a%20b%27c%5Cd%3De%20?x=db.example");
	expect("postgres://${ENV_HOST}/d ${ENV_EMPTY}", true, "postgres://db.example/d ");
	expect("postgres://u:p@h/d", true, "postgres://u:p@h/d");
	/* Not a URI scheme libpq knows: key=value rules. */
	expect("pg://${ENV_ODD}", true, "pg://a b'c\\d=e ");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_env");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, references_become_values);
	tcase_add_test(tc, anything_else_is_literal);
	tcase_add_test(tc, values_are_not_expanded_again);
	tcase_add_test(tc, every_unset_variable_is_reported_in_order);
	tcase_add_test(tc, conninfo_values_are_quoted);
	tcase_add_test(tc, conninfo_references_at_a_keyword_are_text);
	tcase_add_test(tc, conninfo_uri_values_are_percent_encoded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
