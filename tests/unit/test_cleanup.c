#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#define T_INT8 20
#define T_TEXT 25
#define T_JSONB 3802

/* public.outbox (id int8 primary key, payload jsonb) */
static struct pgo_column outbox_columns[] = {
	{ "id", T_INT8, -1, true },
	{ "payload", T_JSONB, -1, false },
};
static const struct pgo_relation outbox = { 20000, "public", "outbox", 'd', 2, outbox_columns, 1 };

/* Sales."Order ""Log""" (region text, body jsonb, seq int8, primary key (seq, region)):
 * pgoutput flags key columns in the table's column order. */
static struct pgo_column log_columns[] = {
	{ "region", T_TEXT, -1, true },
	{ "body", T_JSONB, -1, false },
	{ "seq", T_INT8, -1, true },
};
static const struct pgo_relation order_log = { 20001, "Sales", "Order \"Log\"", 'd', 3, log_columns, 1 };

static struct event_pos pos(unsigned lsn, int32_t index)
{
	return (struct event_pos){ (lsn_t)lsn, index };
}

/* Queues the key of public.outbox's row with this id, as of the event at p. */
static void add_outbox_row(struct cleanup *c, struct event_pos p, const char *id)
{
	struct pgo_value values[] = { { PGO_VALUE_TEXT, id, (uint32_t)strlen(id) },
		                      { PGO_VALUE_TEXT, "{}", 2 } };
	struct pgo_tuple row = { 2, values };
	struct buf key = BUF_INIT;
	ck_assert(cleanup_key_from_row(&key, &outbox, &row));
	cleanup_add(c, p, &key);
	buf_finish(&key);
}

static void add_log_row(struct cleanup *c, struct event_pos p, const char *region, const char *seq)
{
	struct pgo_value values[] = { { PGO_VALUE_TEXT, region, (uint32_t)strlen(region) },
		                      { PGO_VALUE_NULL, NULL, 0 },
		                      { PGO_VALUE_TEXT, seq, (uint32_t)strlen(seq) } };
	struct pgo_tuple row = { 3, values };
	struct buf key = BUF_INIT;
	ck_assert(cleanup_key_from_row(&key, &order_log, &row));
	cleanup_add(c, p, &key);
	buf_finish(&key);
}

/* The statement's parameters joined with "|", for comparing in one line. */
static const char *joined(struct cleanup_statement s)
{
	static char text[4096];
	size_t used = 0;
	text[0] = '\0';
	for (int i = 0; i < s.nparams && used < sizeof text; i++)
		used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", i ? "|" : "", s.params[i]);
	return text;
}

START_TEST(keys_at_or_before_the_position_make_one_statement)
{
	struct cleanup *c = cleanup_new();
	ck_assert_uint_eq(cleanup_build(c, pos(100, 5)), 0);
	add_outbox_row(c, pos(100, 0), "1");
	add_outbox_row(c, pos(100, 1), "2");
	add_outbox_row(c, pos(200, 0), "3");
	ck_assert_uint_eq(cleanup_pending(c), 3);
	ck_assert_uint_eq(cleanup_build(c, pos(100, 1)), 1);
	struct cleanup_statement s = cleanup_statement(c, 0);
	ck_assert_str_eq(s.sql, "DELETE FROM \"public\".\"outbox\" WHERE (\"id\") IN (($1), ($2))");
	ck_assert_int_eq(s.nparams, 2);
	ck_assert_str_eq(joined(s), "1|2");
	ck_assert_uint_eq(s.rows, 2);
	cleanup_drop(c, pos(100, 1));
	ck_assert_uint_eq(cleanup_pending(c), 1);
	/* A later checkpoint takes the rest; an earlier one nothing. */
	ck_assert_uint_eq(cleanup_build(c, pos(199, 7)), 0);
	ck_assert_uint_eq(cleanup_build(c, pos(200, 0)), 1);
	ck_assert_str_eq(cleanup_statement(c, 0).sql,
	                 "DELETE FROM \"public\".\"outbox\" WHERE (\"id\") IN (($1))");
	ck_assert_str_eq(joined(cleanup_statement(c, 0)), "3");
	cleanup_drop(c, pos(200, 0));
	ck_assert_uint_eq(cleanup_pending(c), 0);
	cleanup_free(c);
}
END_TEST

/* Acknowledgements come in any order; only what the checkpoint covers goes. */
START_TEST(keys_past_the_position_wait_whatever_their_order)
{
	struct cleanup *c = cleanup_new();
	add_outbox_row(c, pos(300, 2), "32");
	add_outbox_row(c, pos(300, 0), "30");
	add_outbox_row(c, pos(400, 0), "40");
	add_outbox_row(c, pos(300, 1), "31");
	ck_assert_uint_eq(cleanup_build(c, pos(300, 1)), 1);
	ck_assert_str_eq(joined(cleanup_statement(c, 0)), "30|31");
	cleanup_drop(c, pos(300, 1));
	ck_assert_uint_eq(cleanup_pending(c), 2);
	ck_assert_uint_eq(cleanup_build(c, pos(400, 0)), 1);
	ck_assert_str_eq(joined(cleanup_statement(c, 0)), "32|40");
	cleanup_free(c);
}
END_TEST

/* A failed transaction drops nothing: the next checkpoint deletes the same rows and more. */
START_TEST(keys_stay_until_dropped)
{
	struct cleanup *c = cleanup_new();
	add_outbox_row(c, pos(100, 0), "1");
	ck_assert_uint_eq(cleanup_build(c, pos(100, 0)), 1);
	add_outbox_row(c, pos(100, 1), "2");
	ck_assert_uint_eq(cleanup_build(c, pos(100, 1)), 1);
	ck_assert_str_eq(joined(cleanup_statement(c, 0)), "1|2");
	ck_assert_uint_eq(cleanup_pending(c), 2);
	cleanup_drop(c, pos(100, 1));
	ck_assert_uint_eq(cleanup_pending(c), 0);
	cleanup_free(c);
}
END_TEST

/* One statement per table; names quoted; a key of several columns in the table's order. */
START_TEST(tables_and_composite_keys)
{
	struct cleanup *c = cleanup_new();
	add_log_row(c, pos(100, 0), "eu", "7");
	add_outbox_row(c, pos(100, 1), "1");
	add_log_row(c, pos(100, 2), "", "8"); /* an empty text value is a value */
	ck_assert_uint_eq(cleanup_build(c, pos(100, 2)), 2);
	struct cleanup_statement log = cleanup_statement(c, 0), out = cleanup_statement(c, 1);
	ck_assert_str_eq(log.sql, "DELETE FROM \"Sales\".\"Order \"\"Log\"\"\" WHERE (\"region\", \"seq\")"
	                          " IN (($1, $2), ($3, $4))");
	ck_assert_str_eq(joined(log), "eu|7||8");
	ck_assert_uint_eq(log.rows, 2);
	ck_assert_str_eq(out.sql, "DELETE FROM \"public\".\"outbox\" WHERE (\"id\") IN (($1))");
	ck_assert_str_eq(joined(out), "1");
	cleanup_free(c);
}
END_TEST

/* A large checkpoint is deleted in statements of bounded size. */
START_TEST(batches_of_bounded_size)
{
	struct cleanup *c = cleanup_new();
	size_t total = 2 * CLEANUP_BATCH_ROWS + 17;
	for (size_t i = 0; i < total; i++) {
		char id[24];
		snprintf(id, sizeof id, "%zu", i);
		add_outbox_row(c, pos(100, (int32_t)i), id);
	}
	ck_assert_uint_eq(cleanup_build(c, pos(100, (int32_t)total)), 3);
	ck_assert_uint_eq(cleanup_statement(c, 0).rows, CLEANUP_BATCH_ROWS);
	ck_assert_uint_eq(cleanup_statement(c, 1).rows, CLEANUP_BATCH_ROWS);
	ck_assert_uint_eq(cleanup_statement(c, 2).rows, 17);
	struct cleanup_statement last = cleanup_statement(c, 2);
	ck_assert_int_eq(last.nparams, 17);
	ck_assert_str_eq(last.params[0], "2000");
	ck_assert_str_eq(last.params[16], "2016");
	ck_assert_ptr_nonnull(strstr(last.sql, "($17))"));
	cleanup_drop(c, pos(100, (int32_t)total));
	ck_assert_uint_eq(cleanup_pending(c), 0);
	/* The queue is usable again after giving its memory back. */
	add_outbox_row(c, pos(200, 0), "x");
	ck_assert_uint_eq(cleanup_build(c, pos(200, 0)), 1);
	ck_assert_str_eq(joined(cleanup_statement(c, 0)), "x");
	cleanup_free(c);
}
END_TEST

/* Only a replica identity that names a unique, NOT NULL key can tell rows apart. */
START_TEST(rows_without_a_usable_key)
{
	struct buf key = BUF_INIT;
	struct pgo_value values[] = { { PGO_VALUE_TEXT, "1", 1 }, { PGO_VALUE_TEXT, "{}", 2 } };
	struct pgo_tuple row = { 2, values };
	struct pgo_relation rel = outbox;

	rel.replica_identity = 'i'; /* USING INDEX: its columns are flagged */
	ck_assert(cleanup_key_from_row(&key, &rel, &row));
	rel.replica_identity = 'f'; /* FULL: every column, jsonb and NULLs included */
	ck_assert(!cleanup_key_from_row(&key, &rel, &row));
	ck_assert_uint_eq(key.len, 0);
	rel.replica_identity = 'n';
	ck_assert(!cleanup_key_from_row(&key, &rel, &row));

	struct pgo_column unkeyed[] = { { "id", T_INT8, -1, false }, { "payload", T_JSONB, -1, false } };
	rel = (struct pgo_relation){ 20002, "public", "heap", 'd', 2, unkeyed, 1 }; /* no primary key */
	ck_assert(!cleanup_key_from_row(&key, &rel, &row));
	ck_assert_uint_eq(key.len, 0);

	struct pgo_value null_key[] = { { PGO_VALUE_NULL, NULL, 0 }, { PGO_VALUE_TEXT, "{}", 2 } };
	row.values = null_key;
	ck_assert(!cleanup_key_from_row(&key, &outbox, &row));
	ck_assert_uint_eq(key.len, 0);

	struct cleanup *c = cleanup_new();
	cleanup_add(c, pos(1, 0), &key); /* an empty key is no key */
	ck_assert_uint_eq(cleanup_pending(c), 0);
	cleanup_free(c);
	buf_finish(&key);
}
END_TEST

static Suite *cleanup_suite(void)
{
	Suite *s = suite_create("cleanup");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, keys_at_or_before_the_position_make_one_statement);
	tcase_add_test(tc, keys_past_the_position_wait_whatever_their_order);
	tcase_add_test(tc, keys_stay_until_dropped);
	tcase_add_test(tc, tables_and_composite_keys);
	tcase_add_test(tc, batches_of_bounded_size);
	tcase_add_test(tc, rows_without_a_usable_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cleanup_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
