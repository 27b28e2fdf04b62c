#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgframe.h"
#include "wire_builder.h"

/* ---- replication frames ------------------------------------------------------------ */

static void build_xlogdata(struct msg *m)
{
	put_u8(m, 'w');
	put_u64(m, UINT64_C(0x16B374D848));
	put_u64(m, UINT64_C(0x16B374D900));
	put_u64(m, UINT64_C(0x0002A5F1C2D3E4F5));
	put_bytes(m, "B\x01\x02", 3);
}

static void build_keepalive(struct msg *m, uint8_t reply)
{
	put_u8(m, 'k');
	put_u64(m, UINT64_C(0xFEDCBA9876543210));
	put_u64(m, UINT64_C(0x0002A5F1C2D3E4F5));
	put_u8(m, reply);
}

START_TEST(frame_xlogdata)
{
	struct msg m = { 0 };
	struct repl_frame f;
	char err[128] = "";
	build_xlogdata(&m);
	ck_assert_int_eq(repl_frame_parse(m.data, m.len, &f, err, sizeof err), 0);
	ck_assert_int_eq(f.kind, REPL_XLOGDATA);
	ck_assert_uint_eq(f.wal_start, UINT64_C(0x16B374D848));
	ck_assert_uint_eq(f.wal_end, UINT64_C(0x16B374D900));
	ck_assert_int_eq(f.send_time, INT64_C(0x0002A5F1C2D3E4F5));
	ck_assert_ptr_eq(f.data, m.data + 25);
	ck_assert_uint_eq(f.len, 3);
	ck_assert_int_eq(f.data[0], 'B');

	/* A header with no payload is a valid frame; the decoder rejects the empty message. */
	ck_assert_int_eq(repl_frame_parse(m.data, 25, &f, err, sizeof err), 0);
	ck_assert_uint_eq(f.len, 0);
	msg_free(&m);
}
END_TEST

START_TEST(frame_keepalive)
{
	static const uint8_t replies[] = { 0, 1, 2 };
	for (size_t i = 0; i < sizeof replies; i++) {
		struct msg m = { 0 };
		struct repl_frame f;
		char err[128] = "";
		build_keepalive(&m, replies[i]);
		ck_assert_int_eq(repl_frame_parse(m.data, m.len, &f, err, sizeof err), 0);
		ck_assert_int_eq(f.kind, REPL_KEEPALIVE);
		ck_assert_uint_eq(f.wal_end, UINT64_C(0xFEDCBA9876543210));
		ck_assert_int_eq(f.send_time, INT64_C(0x0002A5F1C2D3E4F5));
		ck_assert(f.reply_requested == (replies[i] != 0));
		msg_free(&m);
	}
}
END_TEST

static void assert_frame_prefixes_fail(const struct msg *m, size_t first_valid, const char *expect)
{
	for (size_t n = 0; n < first_valid; n++) {
		uint8_t *copy = xmalloc(n);
		struct repl_frame f;
		char err[128] = "";
		if (n)
			memcpy(copy, m->data, n);
		ck_assert_msg(repl_frame_parse(copy, n, &f, err, sizeof err) == -1, "%zu bytes parsed", n);
		if (n == 0)
			ck_assert_str_eq(err, "empty replication message");
		else
			ck_assert_msg(strstr(err, expect) != NULL, "\"%s\" lacks \"%s\"", err, expect);
		free(copy);
	}
}

START_TEST(frame_truncations)
{
	struct msg w = { 0 }, k = { 0 };
	build_xlogdata(&w);
	build_keepalive(&k, 1);
	assert_frame_prefixes_fail(&w, 25, "XLogData: truncated header (needs 25 bytes");
	assert_frame_prefixes_fail(&k, 18, "keepalive: truncated (needs 18 bytes");

	struct repl_frame f;
	char err[128];
	ck_assert_int_eq(repl_frame_parse(w.data, 24, &f, err, sizeof err), -1);
	ck_assert_str_eq(err, "XLogData: truncated header (needs 25 bytes, 24 given)");
	put_u8(&k, 0);
	ck_assert_int_eq(repl_frame_parse(k.data, k.len, &f, err, sizeof err), -1);
	ck_assert_str_eq(err, "keepalive: trailing garbage (19 bytes, expected 18)");
	msg_free(&w);
	msg_free(&k);
}
END_TEST

START_TEST(frame_unknown_kind)
{
	static const uint8_t kinds[] = { 'r', 'x', 0, 0xff };
	static const char *const errors[] = {
		"unknown replication message kind 'r'",
		"unknown replication message kind 'x'",
		"unknown replication message kind 0x00",
		"unknown replication message kind 0xff",
	};
	for (size_t i = 0; i < sizeof kinds; i++) {
		uint8_t buf[30] = { 0 };
		struct repl_frame f;
		char err[128];
		buf[0] = kinds[i];
		ck_assert_int_eq(repl_frame_parse(buf, sizeof buf, &f, err, sizeof err), -1);
		ck_assert_str_eq(err, errors[i]);
	}
}
END_TEST

START_TEST(frame_error_buffer_is_bounded)
{
	uint8_t buf[] = { 'x' };
	struct repl_frame f;
	char err[9];
	memset(err, '#', sizeof err);
	ck_assert_int_eq(repl_frame_parse(buf, sizeof buf, &f, err, 8), -1);
	ck_assert_str_eq(err, "unknown");
	ck_assert_int_eq(err[8], '#');
	ck_assert_int_eq(repl_frame_parse(buf, sizeof buf, &f, NULL, 0), -1);
}
END_TEST

START_TEST(status_update_bytes)
{
	static const uint8_t expected[REPL_STATUS_LEN] = {
		'r',  0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48, 0x00, 0x00, 0x00,
		0x16, 0xB3, 0x74, 0xD8, 0x48, 0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8,
		0x48, 0x00, 0x02, 0xA5, 0xF1, 0xC2, 0xD3, 0xE4, 0xF5, 0x01,
	};
	uint8_t out[REPL_STATUS_LEN + 1];
	memset(out, 0xAA, sizeof out);
	repl_status_build(out, UINT64_C(0x16B374D848), INT64_C(0x0002A5F1C2D3E4F5), true);
	ck_assert(memcmp(out, expected, REPL_STATUS_LEN) == 0);
	ck_assert_int_eq(out[REPL_STATUS_LEN], 0xAA);

	repl_status_build(out, UINT64_MAX, -1, false);
	ck_assert_int_eq(out[0], 'r');
	for (int i = 1; i < 33; i++)
		ck_assert_int_eq(out[i], 0xFF);
	ck_assert_int_eq(out[33], 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgframe");
	TCase *tc = tcase_create("frames");
	tcase_add_test(tc, frame_xlogdata);
	tcase_add_test(tc, frame_keepalive);
	tcase_add_test(tc, frame_truncations);
	tcase_add_test(tc, frame_unknown_kind);
	tcase_add_test(tc, frame_error_buffer_is_bounded);
	tcase_add_test(tc, status_update_bytes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
