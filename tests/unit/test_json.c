#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "pgoutput.h"
#include "typemap.h"

/* Type OIDs as the server sends them. */
#define T_BOOL 16
#define T_BYTEA 17
#define T_INT8 20
#define T_INT2 21
#define T_INT4 23
#define T_TEXT 25
#define T_OID 26
#define T_JSON 114
#define T_FLOAT4 700
#define T_FLOAT8 701
#define T_VARCHAR 1043
#define T_DATE 1082
#define T_TIMESTAMPTZ 1184
#define T_NUMERIC 1700
#define T_UUID 2950
#define T_JSONB 3802
#define T_INT4ARRAY 1007

static struct buf out = BUF_INIT;

static void teardown(void)
{
	buf_finish(&out);
}

/* Text of len bytes (may hold NULs) encoded as a string; compares the whole output. */
static void check_string(const char *s, size_t len, const char *want)
{
	buf_reset(&out);
	json_append_string(&out, s, len);
	ck_assert_str_eq(out.data, want);
	ck_assert_uint_eq(out.len, strlen(want));
}

#define STR(lit, want) check_string(lit, sizeof(lit) - 1, want)

static void check_value(uint32_t oid, const char *text, const char *want)
{
	struct pgo_value v = { PGO_VALUE_TEXT, text, (uint32_t)strlen(text) };
	buf_reset(&out);
	json_append_value(&out, oid, &v);
	ck_assert_str_eq(out.data, want);
	ck_assert_uint_eq(out.len, strlen(want));
}

START_TEST(integers_are_numbers)
{
	check_value(T_INT2, "-32768", "-32768");
	check_value(T_INT4, "42", "42");
	check_value(T_INT4, "0", "0");
	check_value(T_INT8, "-9223372036854775808", "-9223372036854775808");
	check_value(T_OID, "4294967295", "4294967295");
}
END_TEST

START_TEST(floats_are_numbers_or_special_strings)
{
	check_value(T_FLOAT4, "1.5", "1.5");
	check_value(T_FLOAT4, "-3.25", "-3.25");
	check_value(T_FLOAT4, "1e-05", "1e-05");
	check_value(T_FLOAT8, "-1.2345678901234567e+300", "-1.2345678901234567e+300");
	check_value(T_FLOAT8, "1e+100", "1e+100");
	check_value(T_FLOAT8, "-0", "-0");
	check_value(T_FLOAT4, "NaN", "\"NaN\"");
	check_value(T_FLOAT4, "Infinity", "\"Infinity\"");
	check_value(T_FLOAT4, "-Infinity", "\"-Infinity\"");
	check_value(T_FLOAT8, "NaN", "\"NaN\"");
	check_value(T_FLOAT8, "Infinity", "\"Infinity\"");
	check_value(T_FLOAT8, "-Infinity", "\"-Infinity\"");
}
END_TEST

START_TEST(numeric_keeps_its_literal)
{
	check_value(T_NUMERIC, "-0.000100", "-0.000100");
	check_value(T_NUMERIC, "123456789012345678901234567890.000000001",
	            "123456789012345678901234567890.000000001");
	check_value(T_NUMERIC, "0", "0");
	check_value(T_NUMERIC, "NaN", "\"NaN\"");
	check_value(T_NUMERIC, "Infinity", "\"Infinity\"");
	check_value(T_NUMERIC, "-Infinity", "\"-Infinity\"");
}
END_TEST

START_TEST(non_json_numbers_become_strings)
{
	/* Valid for PostgreSQL input, or plain garbage, but not RFC 8259 numbers. */
	check_value(T_INT4, "", "\"\"");
	check_value(T_INT4, "+1", "\"+1\"");
	check_value(T_INT4, "007", "\"007\"");
	check_value(T_INT4, "1 ", "\"1 \"");
	check_value(T_INT8, "-", "\"-\"");
	check_value(T_FLOAT8, ".5", "\".5\"");
	check_value(T_FLOAT8, "5.", "\"5.\"");
	check_value(T_FLOAT8, "1e", "\"1e\"");
	check_value(T_FLOAT8, "1e+", "\"1e+\"");
	check_value(T_NUMERIC, "1,5", "\"1,5\"");
	check_value(T_NUMERIC, "\"1\"", "\"\\\"1\\\"\"");
}
END_TEST

START_TEST(bools)
{
	check_value(T_BOOL, "t", "true");
	check_value(T_BOOL, "f", "false");
	check_value(T_BOOL, "x", "\"x\"");
	check_value(T_BOOL, "true", "\"true\"");
}
END_TEST

START_TEST(json_is_embedded_verbatim)
{
	check_value(T_JSON, "{\"a\": [1, 2.5, \"x\"], \"b\": null}", "{\"a\": [1, 2.5, \"x\"], \"b\": null}");
	check_value(T_JSONB, "{\"a\": {\"b\": true}}", "{\"a\": {\"b\": true}}");
	check_value(T_JSONB, "\"é\"", "\"é\"");
	check_value(T_JSONB, "3", "3");
	check_value(T_JSON, "", "null");
}
END_TEST

START_TEST(bytea_is_base64)
{
	check_value(T_BYTEA, "\\x", "\"\"");
	check_value(T_BYTEA, "\\x00ff10", "\"AP8Q\"");
	check_value(T_BYTEA, "\\x00FF10", "\"AP8Q\"");
	check_value(T_BYTEA, "\\x66", "\"Zg==\"");
	check_value(T_BYTEA, "\\x666f", "\"Zm8=\"");
	check_value(T_BYTEA, "\\x666f6f", "\"Zm9v\"");
	check_value(T_BYTEA, "\\x666f6f62", "\"Zm9vYg==\"");
	check_value(T_BYTEA, "\\x666f6f6261", "\"Zm9vYmE=\"");
	check_value(T_BYTEA, "\\xfbff", "\"+/8=\"");
}
END_TEST

START_TEST(bytea_long_crosses_chunks)
{
	/* 300 bytes: the encoder flushes its stack chunk more than once. */
	static char text[2 + 600 + 1];
	struct buf want = BUF_INIT;
	memcpy(text, "\\x", 2);
	for (int i = 0; i < 300; i++)
		memcpy(text + 2 + 2 * i, "ff", 2);
	text[602] = '\0';
	buf_putc(&want, '"');
	for (int i = 0; i < 100; i++)
		buf_puts(&want, "////");
	buf_putc(&want, '"');
	check_value(T_BYTEA, text, want.data);
	buf_finish(&want);
}
END_TEST

START_TEST(bytea_malformed_is_text)
{
	check_value(T_BYTEA, "\\x0", "\"\\\\x0\""); /* odd digit count */
	check_value(T_BYTEA, "\\x0g", "\"\\\\x0g\"");
	check_value(T_BYTEA, "abc\\000", "\"abc\\\\000\""); /* bytea_output = escape */
	check_value(T_BYTEA, "", "\"\"");
	check_value(T_BYTEA, "\\", "\"\\\\\"");
}
END_TEST

START_TEST(other_types_are_strings)
{
	check_value(T_TEXT, "hello", "\"hello\"");
	check_value(T_VARCHAR, "", "\"\"");
	check_value(T_UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"");
	check_value(T_TIMESTAMPTZ, "2024-01-02 03:04:05.123456+00", "\"2024-01-02 03:04:05.123456+00\"");
	check_value(T_DATE, "2024-02-29", "\"2024-02-29\"");
	check_value(T_INT4ARRAY, "{1,2,NULL}", "\"{1,2,NULL}\"");
	check_value(99999, "whatever", "\"whatever\"");
}
END_TEST

START_TEST(null_and_unchanged_are_null)
{
	struct pgo_value null = { PGO_VALUE_NULL, NULL, 0 };
	struct pgo_value unchanged = { PGO_VALUE_UNCHANGED, NULL, 0 };
	uint32_t oids[] = { T_INT4, T_TEXT, T_BOOL, T_JSONB, T_BYTEA, T_NUMERIC };
	for (size_t i = 0; i < sizeof oids / sizeof oids[0]; i++) {
		buf_reset(&out);
		json_append_value(&out, oids[i], &null);
		ck_assert_str_eq(out.data, "null");
		buf_reset(&out);
		json_append_value(&out, oids[i], &unchanged);
		ck_assert_str_eq(out.data, "null");
	}
}
END_TEST

START_TEST(string_escapes)
{
	STR("", "\"\"");
	STR("say \"hi\"", "\"say \\\"hi\\\"\"");
	STR("a\\b", "\"a\\\\b\"");
	STR("l1\nl2", "\"l1\\nl2\"");
	STR("a\tb", "\"a\\tb\"");
	STR("\r\b\f", "\"\\r\\b\\f\"");
	STR("\x01", "\"\\u0001\"");
	STR("\x1f", "\"\\u001f\"");
	STR("\x7f", "\"\x7f\""); /* DEL is legal raw in JSON */
	STR("/", "\"/\"");
}
END_TEST

START_TEST(embedded_nul)
{
	STR("a\0b", "\"a\\u0000b\"");
	STR("\0", "\"\\u0000\"");
}
END_TEST

START_TEST(utf8_kept)
{
	STR("caf\xc3\xa9", "\"caf\xc3\xa9\"");           /* é */
	STR("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");     /* € */
	STR("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""); /* 😀 */
	STR("\xc2\x80", "\"\xc2\x80\"");                 /* lowest 2-byte */
	STR("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");         /* U+FFFF */
	STR("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
}
END_TEST

START_TEST(utf8_invalid_replaced)
{
	/* One \ufffd per maximal ill-formed subpart (Unicode 3.9, U+FFFD substitution). */
	STR("\xff", "\"\\ufffd\"");
	STR("a\xffz", "\"a\\ufffdz\"");
	STR("\xe2\x82", "\"\\ufffd\"");                              /* truncated € at the end */
	STR("\xe2\x82z", "\"\\ufffdz\"");                            /* truncated € mid-string */
	STR("\xf0\x9f\x98", "\"\\ufffd\"");                          /* truncated 😀 */
	STR("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
	STR("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, 3 bytes */
	STR("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+D800 */
	STR("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	STR("\x80", "\"\\ufffd\"");                                  /* lone continuation */
	STR("\xc3", "\"\\ufffd\"");                                  /* lead byte at the end */
	STR("\xc3\xa9\xff\xc3\xa9", "\"\xc3\xa9\\ufffd\xc3\xa9\"");
}
END_TEST

START_TEST(invalid_utf8_in_text_value)
{
	check_value(T_TEXT, "x\xed\xa0\x80\"", "\"x\\ufffd\\ufffd\\ufffd\\\"\"");
	check_value(T_NUMERIC, "\xff", "\"\\ufffd\"");
}
END_TEST

START_TEST(row_mixed_columns)
{
	struct pgo_column cols[] = {
		{ "id", T_INT8, -1, true },        { "name", T_TEXT, -1, false },
		{ "price", T_NUMERIC, -1, false }, { "ok", T_BOOL, -1, false },
		{ "meta", T_JSONB, -1, false },    { "blob", T_BYTEA, -1, false },
		{ "big", T_TEXT, -1, false },      { "gone", T_TIMESTAMPTZ, -1, false },
		{ "ratio", T_FLOAT8, -1, false },  { "we\"ird", T_TEXT, -1, false },
	};
	struct pgo_value vals[] = {
		{ PGO_VALUE_TEXT, "7", 1 },
		{ PGO_VALUE_TEXT, "Zo\xc3\xab \"Q\"", 8 },
		{ PGO_VALUE_TEXT, "19.90", 5 },
		{ PGO_VALUE_TEXT, "t", 1 },
		{ PGO_VALUE_TEXT, "{\"k\": [1]}", 10 },
		{ PGO_VALUE_TEXT, "\\x00ff10", 8 },
		{ PGO_VALUE_UNCHANGED, NULL, 0 },
		{ PGO_VALUE_NULL, NULL, 0 },
		{ PGO_VALUE_TEXT, "NaN", 3 },
		{ PGO_VALUE_TEXT, "a\nb", 3 },
	};
	struct pgo_relation rel = { 16384, "public", "t", 'd', 10, cols, 1 };
	struct pgo_tuple row = { 10, vals };

	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &row);
	ck_assert_str_eq(out.data, "{\"id\":7,\"name\":\"Zo\xc3\xab \\\"Q\\\"\",\"price\":19.90,\"ok\":true,"
	                           "\"meta\":{\"k\": [1]},\"blob\":\"AP8Q\",\"big\":null,\"gone\":null,"
	                           "\"ratio\":\"NaN\",\"we\\\"ird\":\"a\\nb\"}");
}
END_TEST

START_TEST(row_empty_relation)
{
	struct pgo_relation rel = { 1, "public", "empty", 'd', 0, NULL, 1 };
	struct pgo_tuple row = { 0, NULL };
	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &row);
	ck_assert_str_eq(out.data, "{}");
}
END_TEST

START_TEST(row_short_tuple_pads_null)
{
	struct pgo_column cols[] = { { "a", T_INT4, -1, true }, { "b", T_TEXT, -1, false } };
	struct pgo_value vals[] = { { PGO_VALUE_TEXT, "1", 1 } };
	struct pgo_relation rel = { 1, "public", "t", 'd', 2, cols, 1 };
	struct pgo_tuple row = { 1, vals };
	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &row);
	ck_assert_str_eq(out.data, "{\"a\":1,\"b\":null}");
}
END_TEST

/* A domain's values are written as its base type's: embedded JSON, numbers, base64. */
START_TEST(row_domains_as_their_base_types)
{
	enum { D_DOC = 16500, D_ORDER_DOC = 16510, D_QTY = 16520, D_BLOB = 16530, E_MOOD = 16600 };
	static const struct typemap_domain domains[] = {
		{ D_DOC, T_JSONB }, { D_ORDER_DOC, D_DOC }, { D_QTY, T_INT4 }, { D_BLOB, T_BYTEA }
	};
	struct pgo_column cols[] = {
		{ "doc", D_DOC, -1, false },   { "nested", D_ORDER_DOC, -1, false },
		{ "qty", D_QTY, -1, false },   { "blob", D_BLOB, -1, false },
		{ "mood", E_MOOD, -1, false },
	};
	struct pgo_value vals[] = {
		{ PGO_VALUE_TEXT, "{\"a\": 1}", 8 }, { PGO_VALUE_TEXT, "[true]", 6 },
		{ PGO_VALUE_TEXT, "42", 2 },         { PGO_VALUE_TEXT, "\\x00ff10", 8 },
		{ PGO_VALUE_TEXT, "happy", 5 },
	};
	struct pgo_relation rel = { 20000, "public", "t", 'd', 5, cols, 1 };
	struct pgo_tuple row = { 5, vals };
	struct typemap *types = typemap_new();
	typemap_set_domains(types, domains, sizeof domains / sizeof domains[0]);

	buf_reset(&out);
	json_append_row(&out, types, &rel, &row);
	ck_assert_str_eq(out.data, "{\"doc\":{\"a\": 1},\"nested\":[true],\"qty\":42,\"blob\":\"AP8Q\","
	                           "\"mood\":\"happy\"}");
	/* Without the map every one of them is a string of its text form. */
	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &row);
	ck_assert_str_eq(out.data, "{\"doc\":\"{\\\"a\\\": 1}\",\"nested\":\"[true]\",\"qty\":\"42\","
	                           "\"blob\":\"\\\\x00ff10\",\"mood\":\"happy\"}");
	typemap_free(types);
}
END_TEST

START_TEST(buffer_reuse)
{
	struct pgo_column cols[] = { { "n", T_INT4, -1, true } };
	struct pgo_value v1[] = { { PGO_VALUE_TEXT, "123456", 6 } };
	struct pgo_value v2[] = { { PGO_VALUE_TEXT, "9", 1 } };
	struct pgo_relation rel = { 1, "public", "t", 'd', 1, cols, 1 };
	struct pgo_tuple r1 = { 1, v1 }, r2 = { 1, v2 };

	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &r1);
	ck_assert_str_eq(out.data, "{\"n\":123456}");
	char *before = out.data;
	buf_reset(&out);
	json_append_row(&out, NULL, &rel, &r2);
	ck_assert_str_eq(out.data, "{\"n\":9}"); /* no stale tail from the longer row */
	ck_assert_uint_eq(out.len, 7);
	ck_assert_ptr_eq(out.data, before); /* the allocation was kept */

	/* Appends accumulate until reset. */
	json_append_string(&out, "x", 1);
	ck_assert_str_eq(out.data, "{\"n\":9}\"x\"");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, integers_are_numbers);
	tcase_add_test(tc, floats_are_numbers_or_special_strings);
	tcase_add_test(tc, numeric_keeps_its_literal);
	tcase_add_test(tc, non_json_numbers_become_strings);
	tcase_add_test(tc, bools);
	tcase_add_test(tc, json_is_embedded_verbatim);
	tcase_add_test(tc, bytea_is_base64);
	tcase_add_test(tc, bytea_long_crosses_chunks);
	tcase_add_test(tc, bytea_malformed_is_text);
	tcase_add_test(tc, other_types_are_strings);
	tcase_add_test(tc, null_and_unchanged_are_null);
	tcase_add_test(tc, string_escapes);
	tcase_add_test(tc, embedded_nul);
	tcase_add_test(tc, utf8_kept);
	tcase_add_test(tc, utf8_invalid_replaced);
	tcase_add_test(tc, invalid_utf8_in_text_value);
	tcase_add_test(tc, row_mixed_columns);
	tcase_add_test(tc, row_empty_relation);
	tcase_add_test(tc, row_short_tuple_pads_null);
	tcase_add_test(tc, row_domains_as_their_base_types);
	tcase_add_test(tc, buffer_reuse);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
