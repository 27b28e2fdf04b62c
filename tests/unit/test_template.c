#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* A value from a C string literal (its length, not including the terminator). */
#define V(s) ((struct template_value){ (s), sizeof(s) - 1, false })
#define VNULL ((struct template_value){ NULL, 0, true })

static struct template *parse_ok(const char *src)
{
	char err[256] = "";
	struct template *t = template_parse(src, err, sizeof err);
	ck_assert_msg(t != NULL, "\"%s\" should parse, got: %s", src, err);
	return t;
}

static void expect_parse_error(const char *src, const char *message)
{
	char err[256] = "";
	struct template *t = template_parse(src, err, sizeof err);
	ck_assert_msg(t == NULL, "\"%s\" should be rejected", src);
	ck_assert_str_eq(err, message);
}

/* Expands src with values and checks the topic. */
static void expect_topic(const char *src, const struct template_value *values, const char *topic)
{
	struct template *t = parse_ok(src);
	struct buf out = BUF_INIT;
	char why[256] = "";
	ck_assert_msg(template_expand(t, values, &out, why, sizeof why) == 0, "\"%s\" should expand, got: %s",
	              src, why);
	ck_assert_uint_eq(out.len, strlen(topic));
	ck_assert_str_eq(out.data, topic);
	buf_finish(&out);
	template_free(t);
}

static void expect_rejection(const char *src, const struct template_value *values, const char *reason)
{
	struct template *t = parse_ok(src);
	struct buf out = BUF_INIT;
	char why[256] = "";
	ck_assert_int_eq(template_expand(t, values, &out, why, sizeof why), -1);
	ck_assert_str_eq(why, reason);
	ck_assert_uint_eq(out.len, 0);
	buf_finish(&out);
	template_free(t);
}

/* One field "{x}" holding a value of len bytes taken from data. */
static void expect_value_ok(const char *data, size_t len)
{
	struct template *t = parse_ok("a/{x}");
	struct buf out = BUF_INIT;
	char why[256] = "";
	struct template_value v = { data, len, false };
	ck_assert_msg(template_expand(t, &v, &out, why, sizeof why) == 0, "value should be accepted, got: %s",
	              why);
	ck_assert_uint_eq(out.len, len + 2);
	ck_assert_mem_eq(out.data + 2, data, len);
	buf_finish(&out);
	template_free(t);
}

static void expect_value_rejected(const char *data, size_t len, const char *reason)
{
	struct template_value v = { data, len, false };
	expect_rejection("a/{x}", &v, reason);
}

#define VALUE_OK(s) expect_value_ok((s), sizeof(s) - 1)
#define VALUE_REJECTED(s, reason) expect_value_rejected((s), sizeof(s) - 1, (reason))
#define NOT_UTF8 "field {x} is not valid UTF-8"

/* ---- Parsing ---- */

START_TEST(literal_only)
{
	struct template *t = parse_ok("shop/orders/created");
	ck_assert_uint_eq(template_nfields(t), 0);
	ck_assert_ptr_null(template_field(t, 0));
	template_free(t);
	expect_topic("shop/orders/created", NULL, "shop/orders/created");
	expect_topic("/leading/and/trailing/", NULL, "/leading/and/trailing/");
	expect_topic("$share-free/x", NULL, "$share-free/x");
	expect_topic("h\xC3\xA9llo/\xE2\x82\xAC/\xF0\x9F\x98\x80", NULL,
	             "h\xC3\xA9llo/\xE2\x82\xAC/\xF0\x9F\x98\x80");
}
END_TEST

START_TEST(fields_in_order_of_appearance)
{
	struct template *t = parse_ok("{a}/mid/{bb}/x{ccc}");
	ck_assert_uint_eq(template_nfields(t), 3);
	ck_assert_str_eq(template_field(t, 0), "a");
	ck_assert_str_eq(template_field(t, 1), "bb");
	ck_assert_str_eq(template_field(t, 2), "ccc");
	ck_assert_ptr_null(template_field(t, 3));
	template_free(t);
}
END_TEST

START_TEST(field_names_are_taken_verbatim)
{
	struct template *t = parse_ok("{Aggregate Type}/{x.y-z}/{+}/{#}/{\xC3\xA9}");
	ck_assert_uint_eq(template_nfields(t), 5);
	ck_assert_str_eq(template_field(t, 0), "Aggregate Type");
	ck_assert_str_eq(template_field(t, 1), "x.y-z");
	ck_assert_str_eq(template_field(t, 2), "+"); /* a column may be called that */
	ck_assert_str_eq(template_field(t, 3), "#");
	ck_assert_str_eq(template_field(t, 4), "\xC3\xA9");
	template_free(t);
}
END_TEST

START_TEST(field_at_start_middle_end)
{
	expect_topic("{a}/x/y", (struct template_value[]){ V("A") }, "A/x/y");
	expect_topic("x/{a}/y", (struct template_value[]){ V("A") }, "x/A/y");
	expect_topic("x/y/{a}", (struct template_value[]){ V("A") }, "x/y/A");
	expect_topic("{a}", (struct template_value[]){ V("only") }, "only");
	expect_topic("pre{a}post", (struct template_value[]){ V("-") }, "pre-post");
	expect_topic("shop/{aggregate_type}/{aggregate_id}", (struct template_value[]){ V("order"), V("42") },
	             "shop/order/42");
}
END_TEST

START_TEST(adjacent_fields)
{
	expect_topic("{a}{b}", (struct template_value[]){ V("x"), V("y") }, "xy");
	expect_topic("t/{a}{b}{c}/u", (struct template_value[]){ V("1"), V("22"), V("333") }, "t/122333/u");
	expect_topic("{a}{b}", (struct template_value[]){ V(""), V("y") }, "y");
}
END_TEST

START_TEST(repeated_field)
{
	struct template *t = parse_ok("{id}/{table}/{id}");
	ck_assert_uint_eq(template_nfields(t), 3);
	ck_assert_str_eq(template_field(t, 0), "id");
	ck_assert_str_eq(template_field(t, 2), "id");
	template_free(t);
	/* Each appearance is bound separately, in order. */
	expect_topic("{id}/{table}/{id}", (struct template_value[]){ V("7"), V("orders"), V("7") },
	             "7/orders/7");
}
END_TEST

START_TEST(escaped_braces)
{
	struct template *t = parse_ok("a{{b}}c");
	ck_assert_uint_eq(template_nfields(t), 0);
	template_free(t);
	expect_topic("a{{b}}c", NULL, "a{b}c");
	expect_topic("{{", NULL, "{");
	expect_topic("}}", NULL, "}");
	expect_topic("}}{{", NULL, "}{");
	expect_topic("{{{{", NULL, "{{");
	expect_topic("{{name}}", NULL, "{name}");
	expect_topic("{{{a}}}", (struct template_value[]){ V("v") }, "{v}");
	expect_topic("x/{{/{a}/}}", (struct template_value[]){ V("v") }, "x/{/v/}");
}
END_TEST

START_TEST(values_may_add_levels)
{
	expect_topic("t/{a}", (struct template_value[]){ V("x/y/z") }, "t/x/y/z");
	expect_topic("{a}", (struct template_value[]){ V("/") }, "/");
	expect_topic("t/{a}", (struct template_value[]){ V("") }, "t/");
	expect_topic("t/{a}", (struct template_value[]){ V("{b}") }, "t/{b}");
	expect_topic("t/{a}", (struct template_value[]){ V("$SYS") }, "t/$SYS");
}
END_TEST

START_TEST(parse_errors)
{
	expect_parse_error("shop/{abc", "unclosed \"{\" at offset 5");
	expect_parse_error("{", "unclosed \"{\" at offset 0");
	expect_parse_error("x/{{{", "unclosed \"{\" at offset 4");
	expect_parse_error("abc{}", "empty field name at offset 3");
	expect_parse_error("{}/x", "empty field name at offset 0");
	expect_parse_error("shop/x}", "\"}\" without \"{\" at offset 6"
	                              " (write \"}}\" for a literal brace)");
	expect_parse_error("}", "\"}\" without \"{\" at offset 0 (write \"}}\" for a literal brace)");
	expect_parse_error("{a}}", "\"}\" without \"{\" at offset 3"
	                           " (write \"}}\" for a literal brace)");
	expect_parse_error("}}}", "\"}\" without \"{\" at offset 2"
	                          " (write \"}}\" for a literal brace)");
	expect_parse_error("x/{a{b}}", "nested \"{\" at offset 4");
	expect_parse_error("{{a}", "\"}\" without \"{\" at offset 3"
	                           " (write \"}}\" for a literal brace)");
	expect_parse_error("{a{", "nested \"{\" at offset 2");
}
END_TEST

START_TEST(parse_rejects_wildcards_in_literals)
{
	expect_parse_error("shop/+/x", "\"+\" is an MQTT wildcard and cannot appear in a topic");
	expect_parse_error("shop/#", "\"#\" is an MQTT wildcard and cannot appear in a topic");
	expect_parse_error("{a}+", "\"+\" is an MQTT wildcard and cannot appear in a topic");
	expect_parse_error("a#{b}", "\"#\" is an MQTT wildcard and cannot appear in a topic");
}
END_TEST

START_TEST(parse_rejects_what_mqtt_refuses)
{
	expect_parse_error("a/\tb", "control character U+0009 at offset 2 cannot appear in a topic");
	expect_parse_error("{x}\x7f", "control character U+007F at offset 3 cannot appear in a topic");
	expect_parse_error("a\xC2\x85", "control character U+0085 at offset 1 cannot appear in a topic");
	expect_parse_error("ab\xEF\xBF\xBE", "noncharacter U+FFFE at offset 2 cannot appear in a topic");
	expect_parse_error("a/\xC3", "invalid UTF-8 at offset 2");
	expect_parse_error("{x}/\xED\xA0\x80", "invalid UTF-8 at offset 4");
}
END_TEST

START_TEST(error_message_truncates_safely)
{
	char err[8];
	memset(err, 'x', sizeof err);
	ck_assert_ptr_null(template_parse("abc{}", err, sizeof err));
	ck_assert_str_eq(err, "empty f");
	ck_assert_ptr_null(template_parse("abc{}", NULL, 0));
	ck_assert_ptr_null(template_parse("abc{}", err, 0)); /* nothing written */
	ck_assert_str_eq(err, "empty f");
}
END_TEST

START_TEST(empty_template_parses_but_cannot_expand)
{
	struct template *t = parse_ok("");
	ck_assert_uint_eq(template_nfields(t), 0);
	template_free(t);
	expect_rejection("", NULL, "topic is empty");
	template_free(NULL);
}
END_TEST

/* ---- Value checks ---- */

START_TEST(rejects_null)
{
	expect_rejection("t/{aggregate_id}", (struct template_value[]){ VNULL },
	                 "field {aggregate_id} is NULL");
	/* The first bad value in template order is the one reported. */
	expect_rejection("{a}/{b}", (struct template_value[]){ V("ok"), VNULL }, "field {b} is NULL");
	expect_rejection("{a}/{b}", (struct template_value[]){ V("+"), VNULL }, "field {a} contains \"+\"");
}
END_TEST

START_TEST(rejects_wildcards_and_nul)
{
	expect_rejection("t/{id}", (struct template_value[]){ V("a+b") }, "field {id} contains \"+\"");
	expect_rejection("t/{id}", (struct template_value[]){ V("#") }, "field {id} contains \"#\"");
	expect_rejection("t/{id}", (struct template_value[]){ V("a\0b") }, "field {id} contains NUL");
	expect_rejection("t/{id}", (struct template_value[]){ V("\0") }, "field {id} contains NUL");
	/* The first flaw in the value is the one reported. */
	expect_rejection("t/{id}", (struct template_value[]){ V("#+") }, "field {id} contains \"#\"");
	expect_rejection("t/{id}", (struct template_value[]){ V("\xFF+") }, "field {id} is not valid UTF-8");
}
END_TEST

START_TEST(rejects_what_libmosquitto_refuses)
{
	VALUE_REJECTED("a\nb", "field {x} contains control character U+000A");
	VALUE_REJECTED("\x01", "field {x} contains control character U+0001");
	VALUE_REJECTED("\x1F", "field {x} contains control character U+001F");
	VALUE_REJECTED("\x7F", "field {x} contains control character U+007F");
	VALUE_REJECTED("\xC2\x80", "field {x} contains control character U+0080");
	VALUE_REJECTED("\xC2\x9F", "field {x} contains control character U+009F");
	VALUE_REJECTED("\xEF\xB7\x90", "field {x} contains noncharacter U+FDD0");
	VALUE_REJECTED("\xEF\xB7\xAF", "field {x} contains noncharacter U+FDEF");
	VALUE_REJECTED("\xEF\xBF\xBE", "field {x} contains noncharacter U+FFFE");
	VALUE_REJECTED("\xEF\xBF\xBF", "field {x} contains noncharacter U+FFFF");
	VALUE_REJECTED("\xF0\x9F\xBF\xBE", "field {x} contains noncharacter U+1FFFE");
	VALUE_REJECTED("\xF4\x8F\xBF\xBF", "field {x} contains noncharacter U+10FFFF");
	/* Neighbours that are fine. */
	VALUE_OK(" ~");
	VALUE_OK("\xC2\xA0");     /* U+00A0 */
	VALUE_OK("\xEF\xB7\x8F"); /* U+FDCF */
	VALUE_OK("\xEF\xB7\xB0"); /* U+FDF0 */
	VALUE_OK("\xEF\xBF\xBD"); /* U+FFFD */
}
END_TEST

START_TEST(accepts_valid_utf8)
{
	VALUE_OK("plain ascii");
	VALUE_OK("\xC2\xA9");         /* U+00A9, 2 bytes */
	VALUE_OK("\xDF\xBF");         /* U+07FF, largest 2-byte */
	VALUE_OK("\xE0\xA0\x80");     /* U+0800, smallest 3-byte */
	VALUE_OK("\xE2\x82\xAC");     /* U+20AC */
	VALUE_OK("\xED\x9F\xBF");     /* U+D7FF, just below the surrogates */
	VALUE_OK("\xEE\x80\x80");     /* U+E000, just above them */
	VALUE_OK("\xF0\x90\x80\x80"); /* U+10000, smallest 4-byte */
	VALUE_OK("\xF0\x9F\x98\x80"); /* U+1F600 */
	VALUE_OK("\xF4\x8F\xBF\xBD"); /* U+10FFFD, last character */
	VALUE_OK("mixed \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 text");
}
END_TEST

START_TEST(rejects_overlong)
{
	VALUE_REJECTED("\xC0\x80", NOT_UTF8); /* NUL in 2 bytes */
	VALUE_REJECTED("\xC0\xAF", NOT_UTF8); /* "/" in 2 bytes */
	VALUE_REJECTED("\xC1\xBF", NOT_UTF8);
	VALUE_REJECTED("\xE0\x80\xAF", NOT_UTF8);     /* "/" in 3 bytes */
	VALUE_REJECTED("\xE0\x9F\xBF", NOT_UTF8);     /* U+07FF in 3 bytes */
	VALUE_REJECTED("\xF0\x80\x80\xAF", NOT_UTF8); /* "/" in 4 bytes */
	VALUE_REJECTED("\xF0\x8F\xBF\xBF", NOT_UTF8); /* U+FFFF in 4 bytes */
}
END_TEST

START_TEST(rejects_surrogates)
{
	VALUE_REJECTED("\xED\xA0\x80", NOT_UTF8);             /* U+D800 */
	VALUE_REJECTED("\xED\xAD\xBF", NOT_UTF8);             /* U+DB7F */
	VALUE_REJECTED("\xED\xB0\x80", NOT_UTF8);             /* U+DC00 */
	VALUE_REJECTED("\xED\xBF\xBF", NOT_UTF8);             /* U+DFFF */
	VALUE_REJECTED("\xED\xA0\xBD\xED\xB8\x80", NOT_UTF8); /* CESU-8 pair */
}
END_TEST

START_TEST(rejects_beyond_unicode)
{
	VALUE_REJECTED("\xF4\x90\x80\x80", NOT_UTF8); /* U+110000 */
	VALUE_REJECTED("\xF5\x80\x80\x80", NOT_UTF8);
	VALUE_REJECTED("\xF7\xBF\xBF\xBF", NOT_UTF8);
	VALUE_REJECTED("\xF8\x88\x80\x80\x80", NOT_UTF8);     /* old 5-byte form */
	VALUE_REJECTED("\xFC\x84\x80\x80\x80\x80", NOT_UTF8); /* old 6-byte form */
	VALUE_REJECTED("\xFE", NOT_UTF8);
	VALUE_REJECTED("\xFF", NOT_UTF8);
}
END_TEST

START_TEST(rejects_truncated_and_stray_bytes)
{
	VALUE_REJECTED("\xC3", NOT_UTF8);
	VALUE_REJECTED("\xE2\x82", NOT_UTF8);
	VALUE_REJECTED("\xF0\x9F\x98", NOT_UTF8);
	VALUE_REJECTED("\xE2\x82x", NOT_UTF8); /* cut short by an ASCII byte */
	VALUE_REJECTED("\xF0\x9F\x98/", NOT_UTF8);
	VALUE_REJECTED("\xC3\xC3\xA9", NOT_UTF8); /* cut short by another lead */
	VALUE_REJECTED("\x80", NOT_UTF8);         /* lone continuation bytes */
	VALUE_REJECTED("\xBF", NOT_UTF8);
	VALUE_REJECTED("a\xC3\xA9\xA9", NOT_UTF8); /* one continuation too many */
	/* A sequence cut by the value's length, though the bytes after it are in memory. */
	expect_value_rejected("\xC3\xA9", 1, NOT_UTF8);
	expect_value_rejected("\xF0\x9F\x98\x80", 3, NOT_UTF8);
}
END_TEST

/* ---- Whole topic ---- */

START_TEST(rejects_empty_topic)
{
	expect_rejection("{a}", (struct template_value[]){ V("") }, "topic is empty");
	expect_rejection("{a}{b}", (struct template_value[]){ V(""), V("") }, "topic is empty");
	expect_rejection("{a}", (struct template_value[]){ { NULL, 0, false } }, "topic is empty");
}
END_TEST

START_TEST(length_limit)
{
	struct template *t = parse_ok("t/{a}");
	char *big = malloc(TOPIC_MAX_LEN + 1);
	memset(big, 'x', TOPIC_MAX_LEN + 1);
	struct buf out = BUF_INIT;
	char why[256] = "";
	struct template_value v = { big, TOPIC_MAX_LEN - 2, false };
	ck_assert_int_eq(template_expand(t, &v, &out, why, sizeof why), 0);
	ck_assert_uint_eq(out.len, 65535);
	ck_assert_mem_eq(out.data, "t/xxx", 5);
	ck_assert_int_eq(out.data[out.len - 1], 'x');

	v.len = TOPIC_MAX_LEN - 1;
	ck_assert_int_eq(template_expand(t, &v, &out, why, sizeof why), -1);
	ck_assert_str_eq(why, "topic is 65536 bytes, longer than MQTT's 65535");
	ck_assert_uint_eq(out.len, 0);
	buf_finish(&out);
	template_free(t);
	free(big);
}
END_TEST

START_TEST(oversized_value_does_not_grow_buffer)
{
	struct template *t = parse_ok("{a}");
	size_t n = 1 << 20;
	char *huge = malloc(n);
	memset(huge, 'x', n);
	struct buf out = BUF_INIT;
	char why[256] = "";
	ck_assert_int_eq(
	        template_expand(t, &(struct template_value){ "warm", 4, false }, &out, why, sizeof why), 0);
	size_t cap = out.cap;
	ck_assert_int_eq(
	        template_expand(t, &(struct template_value){ huge, n, false }, &out, why, sizeof why), -1);
	ck_assert_str_eq(why, "topic is 1048576 bytes, longer than MQTT's 65535");
	ck_assert_uint_eq(out.cap, cap);
	/* A repeated field counts every time it appears. */
	struct template *t2 = parse_ok("{a}{a}");
	struct template_value half = { huge, 32768, false };
	ck_assert_int_eq(template_expand(t2, (struct template_value[]){ half, half }, &out, why, sizeof why),
	                 -1);
	ck_assert_str_eq(why, "topic is 65536 bytes, longer than MQTT's 65535");
	buf_finish(&out);
	template_free(t2);
	template_free(t);
	free(huge);
}
END_TEST

START_TEST(buffer_is_reused)
{
	struct template *t = parse_ok("shop/{type}/{id}");
	struct buf out = BUF_INIT;
	char why[256] = "";
	ck_assert_int_eq(template_expand(t, (struct template_value[]){ V("invoice"), V("123456") }, &out, why,
	                                 sizeof why),
	                 0);
	ck_assert_str_eq(out.data, "shop/invoice/123456");
	char *data = out.data;
	size_t cap = out.cap;

	ck_assert_int_eq(
	        template_expand(t, (struct template_value[]){ V("o"), V("7") }, &out, why, sizeof why), 0);
	ck_assert_str_eq(out.data, "shop/o/7");
	ck_assert_uint_eq(out.len, 8);
	ck_assert_ptr_eq(out.data, data); /* warm: no new allocation */
	ck_assert_uint_eq(out.cap, cap);

	/* A failed expansion leaves the buffer empty, and the next one still works. */
	ck_assert_int_eq(
	        template_expand(t, (struct template_value[]){ V("o"), VNULL }, &out, why, sizeof why), -1);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_str_eq(out.data, "");
	ck_assert_int_eq(
	        template_expand(t, (struct template_value[]){ V("ab"), V("c") }, &out, why, sizeof why), 0);
	ck_assert_str_eq(out.data, "shop/ab/c");
	ck_assert_ptr_eq(out.data, data);
	buf_finish(&out);
	template_free(t);
}
END_TEST

START_TEST(values_need_no_terminator)
{
	/* The backing strings go on past len; only len bytes may be used. */
	const char *row = "orders+#\0/42####";
	struct template_value values[] = { { row, 6, false }, { row + 10, 2, false } };
	expect_topic("shop/{type}/{id}", values, "shop/orders/42");
	struct template_value empty_prefix = { "+", 0, false };
	expect_topic("x/{a}", &empty_prefix, "x/");
}
END_TEST

START_TEST(why_may_be_null)
{
	struct template *t = parse_ok("{a}");
	struct buf out = BUF_INIT;
	ck_assert_int_eq(template_expand(t, (struct template_value[]){ VNULL }, &out, NULL, 0), -1);
	char why[4];
	ck_assert_int_eq(template_expand(t, (struct template_value[]){ VNULL }, &out, why, sizeof why), -1);
	ck_assert_str_eq(why, "fie");
	buf_finish(&out);
	template_free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("template");

	TCase *tc_parse = tcase_create("parse");
	tcase_add_test(tc_parse, literal_only);
	tcase_add_test(tc_parse, fields_in_order_of_appearance);
	tcase_add_test(tc_parse, field_names_are_taken_verbatim);
	tcase_add_test(tc_parse, field_at_start_middle_end);
	tcase_add_test(tc_parse, adjacent_fields);
	tcase_add_test(tc_parse, repeated_field);
	tcase_add_test(tc_parse, escaped_braces);
	tcase_add_test(tc_parse, values_may_add_levels);
	tcase_add_test(tc_parse, parse_errors);
	tcase_add_test(tc_parse, parse_rejects_wildcards_in_literals);
	tcase_add_test(tc_parse, parse_rejects_what_mqtt_refuses);
	tcase_add_test(tc_parse, error_message_truncates_safely);
	tcase_add_test(tc_parse, empty_template_parses_but_cannot_expand);
	suite_add_tcase(s, tc_parse);

	TCase *tc_values = tcase_create("values");
	tcase_add_test(tc_values, rejects_null);
	tcase_add_test(tc_values, rejects_wildcards_and_nul);
	tcase_add_test(tc_values, rejects_what_libmosquitto_refuses);
	tcase_add_test(tc_values, accepts_valid_utf8);
	tcase_add_test(tc_values, rejects_overlong);
	tcase_add_test(tc_values, rejects_surrogates);
	tcase_add_test(tc_values, rejects_beyond_unicode);
	tcase_add_test(tc_values, rejects_truncated_and_stray_bytes);
	suite_add_tcase(s, tc_values);

	TCase *tc_topic = tcase_create("topic");
	tcase_add_test(tc_topic, rejects_empty_topic);
	tcase_add_test(tc_topic, length_limit);
	tcase_add_test(tc_topic, oversized_value_does_not_grow_buffer);
	tcase_add_test(tc_topic, buffer_is_reused);
	tcase_add_test(tc_topic, values_need_no_terminator);
	tcase_add_test(tc_topic, why_may_be_null);
	suite_add_tcase(s, tc_topic);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
