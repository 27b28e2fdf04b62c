#include <check.h>
#include <stdlib.h>

#include "pgoutput.h"
#include "typemap.h"

/* Built-in type OIDs. */
#define T_BYTEA 17
#define T_INT4 23
#define T_TEXT 25
#define T_JSONB 3802

/* Domains as a database would number them. */
#define D_DOC 16500       /* CREATE DOMAIN doc AS jsonb */
#define D_ORDER_DOC 16510 /* CREATE DOMAIN order_doc AS doc */
#define D_QTY 16520       /* CREATE DOMAIN qty AS integer */
#define D_BLOB 16530      /* CREATE DOMAIN blob AS bytea */
#define E_MOOD 16600      /* CREATE TYPE mood AS ENUM (...): not a domain */

static struct typemap *t;

static void setup(void)
{
	t = typemap_new();
}

static void teardown(void)
{
	typemap_free(t);
}

/* Domains listed in any order, a nested one before the domain it is over. */
static void load_database_domains(void)
{
	static const struct typemap_domain domains[] = {
		{ D_ORDER_DOC, D_DOC },
		{ D_QTY, T_INT4 },
		{ D_DOC, T_JSONB },
		{ D_BLOB, T_BYTEA },
	};
	typemap_set_domains(t, domains, sizeof domains / sizeof domains[0]);
}

START_TEST(unknown_types_are_themselves)
{
	ck_assert_uint_eq(typemap_resolve(NULL, D_DOC), D_DOC);
	ck_assert_uint_eq(typemap_resolve(t, D_DOC), D_DOC);
	ck_assert_uint_eq(typemap_resolve(t, T_TEXT), T_TEXT);
}
END_TEST

START_TEST(domains_resolve_to_their_base_type)
{
	load_database_domains();
	ck_assert_uint_eq(typemap_resolve(t, D_DOC), T_JSONB);
	ck_assert_uint_eq(typemap_resolve(t, D_QTY), T_INT4);
	ck_assert_uint_eq(typemap_resolve(t, D_BLOB), T_BYTEA);
	ck_assert_uint_eq(typemap_resolve(t, T_JSONB), T_JSONB);
	ck_assert_uint_eq(typemap_resolve(t, E_MOOD), E_MOOD);
}
END_TEST

START_TEST(nested_domains_resolve_to_the_innermost_base)
{
	load_database_domains();
	ck_assert_uint_eq(typemap_resolve(t, D_ORDER_DOC), T_JSONB);
	/* Three deep, listed outermost first. */
	static const struct typemap_domain deep[] = { { 17003, 17002 }, { 17002, 17001 }, { 17001, T_TEXT } };
	typemap_set_domains(t, deep, 3);
	ck_assert_uint_eq(typemap_resolve(t, 17003), T_TEXT);
	ck_assert_uint_eq(typemap_resolve(t, D_ORDER_DOC), D_ORDER_DOC); /* replaced, not added */
}
END_TEST

/* PostgreSQL cannot make one, but the map must not loop on a table that says so. */
START_TEST(a_cycle_ends)
{
	static const struct typemap_domain cycle[] = { { 17001, 17002 }, { 17002, 17001 }, { 17001, 17003 } };
	typemap_set_domains(t, cycle, 3);
	uint32_t r = typemap_resolve(t, 17001);
	ck_assert(r == 17001 || r == 17002);
}
END_TEST

START_TEST(relations_with_unknown_types_ask_for_a_lookup)
{
	struct pgo_column builtin[] = { { "id", T_INT4, -1, true }, { "body", T_JSONB, -1, false } };
	struct pgo_column user[] = { { "id", T_INT4, -1, true },
		                     { "mood", E_MOOD, -1, false },
		                     { "doc", D_DOC, -1, false } };
	struct pgo_relation plain = { 20000, "public", "plain", 'd', 2, builtin, 1 };
	struct pgo_relation custom = { 20001, "public", "custom", 'd', 3, user, 2 };

	ck_assert(!typemap_needs_lookup(t, &plain)); /* built-in types are never domains */
	ck_assert(typemap_needs_lookup(t, &custom));
	load_database_domains();
	ck_assert(typemap_needs_lookup(t, &custom)); /* the enum is still unheard of */
	typemap_learn(t, &custom);
	ck_assert(!typemap_needs_lookup(t, &custom));
	ck_assert_uint_eq(typemap_resolve(t, E_MOOD), E_MOOD);
	ck_assert_uint_eq(typemap_resolve(t, D_DOC), T_JSONB);

	/* Reading the domains again keeps what was learned. */
	load_database_domains();
	ck_assert(!typemap_needs_lookup(t, &custom));
	ck_assert_uint_eq(typemap_resolve(t, D_DOC), T_JSONB);
}
END_TEST

/* A type learned before it was read as a domain (the lookup raced its creation) becomes
 * one when the domains are read again. */
START_TEST(a_learned_type_can_turn_out_to_be_a_domain)
{
	struct pgo_column cols[] = { { "q", D_QTY, -1, false } };
	struct pgo_relation rel = { 20002, "public", "r", 'd', 1, cols, 1 };
	typemap_learn(t, &rel);
	ck_assert_uint_eq(typemap_resolve(t, D_QTY), D_QTY);
	load_database_domains();
	ck_assert_uint_eq(typemap_resolve(t, D_QTY), T_INT4);
}
END_TEST

START_TEST(many_domains)
{
	enum { N = 5000 };
	struct typemap_domain *domains = malloc(N * sizeof *domains);
	for (uint32_t i = 0; i < N; i++) /* each over the next, the last over int4 */
		domains[i] = (struct typemap_domain){ 30000 + i, i + 1 < N ? 30000 + i + 1 : T_INT4 };
	typemap_set_domains(t, domains, N);
	free(domains);
	ck_assert_uint_eq(typemap_resolve(t, 30000), T_INT4);
	ck_assert_uint_eq(typemap_resolve(t, 30000 + N - 1), T_INT4);
	ck_assert_uint_eq(typemap_resolve(t, 30000 + N), 30000 + N);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("typemap");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unknown_types_are_themselves);
	tcase_add_test(tc, domains_resolve_to_their_base_type);
	tcase_add_test(tc, nested_domains_resolve_to_the_innermost_base);
	tcase_add_test(tc, a_cycle_ends);
	tcase_add_test(tc, relations_with_unknown_types_ask_for_a_lookup);
	tcase_add_test(tc, a_learned_type_can_turn_out_to_be_a_domain);
	tcase_add_test(tc, many_domains);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
