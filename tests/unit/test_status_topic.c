#include <check.h>
#include <stdlib.h>

#include "status_topic.h"

/* 2026-11-25T06:21:52.940434Z, in PostgreSQL's microseconds since 2000. */
#define TIME ((pg_time_t)848902912940434)

static const struct status_topic_who who = { "outbox-relay-shop", "outbox_relay", "0.1.0" };

START_TEST(online_carries_the_stats_line)
{
	struct buf out = BUF_INIT;
	struct stats_view v = {
		.published = 20005,
		.rate = 2.5,
		.dead_lettered = 1,
		.pending = 3,
		.lag_bytes = 16384,
		.lag_ms = 250,
		.checkpoint_lsn = ((lsn_t)0x1 << 32) | 0x6B3740,
		.reconnects = 2,
	};
	status_topic_report(&out, "online", &who, TIME, &v);
	ck_assert_str_eq(out.data, "{\"state\":\"online\",\"client_id\":\"outbox-relay-shop\","
	                           "\"slot\":\"outbox_relay\",\"version\":\"0.1.0\","
	                           "\"time\":\"2026-11-25T06:21:52.940434Z\",\"published\":20005,"
	                           "\"rate\":2.5,\"dead_lettered\":1,\"pending\":3,\"lag_bytes\":16384,"
	                           "\"lag_ms\":250,\"checkpoint_lsn\":\"1/6B3740\",\"reconnects\":2}");
	buf_finish(&out);
}
END_TEST

/* Before anything is acknowledged, and with counts past 32 bits. */
START_TEST(stopped_with_zeros_and_large_counts)
{
	struct buf out = BUF_INIT;
	struct stats_view v = { .published = UINT64_MAX, .lag_bytes = (uint64_t)1 << 40 };
	status_topic_report(&out, "stopped", &who, 0, &v);
	ck_assert_str_eq(out.data, "{\"state\":\"stopped\",\"client_id\":\"outbox-relay-shop\","
	                           "\"slot\":\"outbox_relay\",\"version\":\"0.1.0\","
	                           "\"time\":\"2000-01-01T00:00:00.000000Z\","
	                           "\"published\":18446744073709551615,\"rate\":0.0,\"dead_lettered\":0,"
	                           "\"pending\":0,\"lag_bytes\":1099511627776,\"lag_ms\":0,"
	                           "\"checkpoint_lsn\":\"0/0\",\"reconnects\":0}");
	buf_finish(&out);
}
END_TEST

START_TEST(offline_names_the_client)
{
	struct buf out = BUF_INIT;
	status_topic_offline(&out, "outbox-relay-shop");
	ck_assert_str_eq(out.data, "{\"state\":\"offline\",\"client_id\":\"outbox-relay-shop\"}");
	buf_finish(&out);
}
END_TEST

/* A client id is any text: the JSON stays valid. */
START_TEST(strings_are_escaped)
{
	struct buf out = BUF_INIT;
	status_topic_offline(&out, "a\"b\\c\n");
	ck_assert_str_eq(out.data, "{\"state\":\"offline\",\"client_id\":\"a\\\"b\\\\c\\n\"}");
	struct stats_view v = { 0 };
	struct status_topic_who odd = { "x", "s\"", "1\\" };
	status_topic_report(&out, "online", &odd, 0, &v);
	ck_assert_str_eq(out.data, "{\"state\":\"online\",\"client_id\":\"x\",\"slot\":\"s\\\"\","
	                           "\"version\":\"1\\\\\",\"time\":\"2000-01-01T00:00:00.000000Z\","
	                           "\"published\":0,\"rate\":0.0,\"dead_lettered\":0,\"pending\":0,"
	                           "\"lag_bytes\":0,\"lag_ms\":0,\"checkpoint_lsn\":\"0/0\","
	                           "\"reconnects\":0}");
	buf_finish(&out);
}
END_TEST

/* The buffer is reused: each message replaces the previous one. */
START_TEST(each_message_starts_afresh)
{
	struct buf out = BUF_INIT;
	struct stats_view v = { .published = 7 };
	status_topic_report(&out, "online", &who, TIME, &v);
	status_topic_offline(&out, "c");
	ck_assert_str_eq(out.data, "{\"state\":\"offline\",\"client_id\":\"c\"}");
	buf_finish(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status_topic");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, online_carries_the_stats_line);
	tcase_add_test(tc, stopped_with_zeros_and_large_counts);
	tcase_add_test(tc, offline_names_the_client);
	tcase_add_test(tc, strings_are_escaped);
	tcase_add_test(tc, each_message_starts_afresh);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
