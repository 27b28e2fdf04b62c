#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bytea.h"

#define HEX(lit) lit, sizeof(lit) - 1

START_TEST(hex_form_is_recognised)
{
	ck_assert(bytea_is_hex(HEX("\\x")));
	ck_assert(bytea_is_hex(HEX("\\x00fF")));
	ck_assert(!bytea_is_hex(HEX("\\x0")));  /* odd digit count */
	ck_assert(!bytea_is_hex(HEX("\\x0g"))); /* not a digit */
	ck_assert(!bytea_is_hex(HEX("x00")));   /* no backslash */
	ck_assert(!bytea_is_hex(HEX("\\000"))); /* escape format */
	ck_assert_uint_eq(bytea_length(2), 0);
	ck_assert_uint_eq(bytea_length(8), 3);
}
END_TEST

START_TEST(decodes_every_byte_value)
{
	static const char hex[] = "0123456789abcdef", HEX_UPPER[] = "0123456789ABCDEF";
	char text[2 + 512 + 1];
	unsigned char out[256];
	for (int upper = 0; upper < 2; upper++) {
		const char *digits = upper ? HEX_UPPER : hex;
		memcpy(text, "\\x", 2);
		for (int b = 0; b < 256; b++) {
			text[2 + 2 * b] = digits[b >> 4];
			text[3 + 2 * b] = digits[b & 15];
		}
		ck_assert(bytea_is_hex(text, 514));
		bytea_decode(text, 514, out);
		for (int b = 0; b < 256; b++)
			ck_assert_uint_eq(out[b], b);
	}
}
END_TEST

/* A huge value can be decoded over its own text: byte k lands before digit 2k + 2 is read. */
START_TEST(decodes_in_place)
{
	char text[] = "\\x48656c6c6f00ff";
	bytea_decode(text, strlen(text), (unsigned char *)text);
	ck_assert_mem_eq(text, "Hello\0\xff", 7);
}
END_TEST

START_TEST(empty_value)
{
	unsigned char out[1] = { 0x5a };
	bytea_decode(HEX("\\x"), out);
	ck_assert_uint_eq(out[0], 0x5a); /* nothing written */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bytea");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, hex_form_is_recognised);
	tcase_add_test(tc, decodes_every_byte_value);
	tcase_add_test(tc, decodes_in_place);
	tcase_add_test(tc, empty_value);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
