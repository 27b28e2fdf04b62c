#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* A wall clock far from 0, in PostgreSQL's microseconds. */
#define WALL ((pg_time_t)800000000 * 1000000)

static struct stats_input input(int64_t now)
{
	struct stats_input in = { 0 };
	in.now = now;
	in.wall = WALL;
	return in;
}

static struct stats_view line(const struct stats *s, const struct stats_input *in)
{
	return stats_compute(s, &s->line, in);
}

/* ---- rate ---- */

START_TEST(rate_counts_this_process_only)
{
	struct stats s;
	stats_init(&s, 1000);
	s.published = 20000; /* the checkpoint's count: acknowledged by earlier processes */
	for (int i = 0; i < 5; i++)
		stats_acked(&s);
	struct stats_input in = input(3000);
	struct stats_view v = line(&s, &in);
	ck_assert_uint_eq(v.published, 20005);
	ck_assert_double_eq_tol(v.rate, 2.5, 1e-9); /* 5 over the 2 s since start */
	stats_sampled(&s, &s.line, 3000);
	for (int i = 0; i < 3; i++)
		stats_acked(&s);
	in = input(4000);
	ck_assert_double_eq_tol(line(&s, &in).rate, 3.0, 1e-9);
}
END_TEST

START_TEST(rate_after_a_restart_without_acknowledgements_is_zero)
{
	struct stats s;
	stats_init(&s, 1000);
	s.published = 20000;
	struct stats_input in = input(61000);
	struct stats_view v = line(&s, &in);
	ck_assert_uint_eq(v.published, 20000);
	ck_assert_double_eq(v.rate, 0.0);
}
END_TEST

START_TEST(line_and_status_have_their_own_intervals)
{
	struct stats s;
	stats_init(&s, 0);
	for (int i = 0; i < 10; i++)
		stats_acked(&s);
	stats_sampled(&s, &s.status, 5000); /* STATUS= took its share */
	stats_sampled(&s, &s.topic, 8000);  /* and so did the status topic */
	struct stats_input in = input(10000);
	ck_assert_double_eq_tol(line(&s, &in).rate, 1.0, 1e-9);
	ck_assert_double_eq(stats_compute(&s, &s.status, &in).rate, 0.0);
	ck_assert_double_eq(stats_compute(&s, &s.topic, &in).rate, 0.0);
}
END_TEST

START_TEST(rate_without_elapsed_time_is_zero)
{
	struct stats s;
	stats_init(&s, 1000);
	stats_acked(&s);
	struct stats_input in = input(1000);
	ck_assert_double_eq(line(&s, &in).rate, 0.0);
}
END_TEST

/* ---- lag_bytes ---- */

START_TEST(lag_bytes_is_server_minus_confirmed)
{
	struct stats s;
	stats_init(&s, 0);
	struct stats_input in = input(1000);
	in.confirmed = 0x5000;
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0); /* nothing known of the server */
	stats_wal_end(&s, 0x5000);
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0);
	stats_wal_end(&s, 0x5400);
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0x400);
	stats_server_wal(&s, 0x9000);
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0x4000);
	stats_server_wal(&s, 0x8000); /* an older answer moves nothing back */
	stats_wal_end(&s, 0);         /* a message without a position */
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0x4000);
	in.confirmed = 0x9100; /* confirmed past what was heard: never negative */
	ck_assert_uint_eq(line(&s, &in).lag_bytes, 0);
}
END_TEST

/* ---- when to ask the server ---- */

START_TEST(unsure_when_silent_or_stalled)
{
	struct stats s;
	stats_init(&s, 0);
	ck_assert(stats_wal_unsure(&s)); /* nothing heard yet */
	stats_reading(&s, true, 10);
	stats_wal_end(&s, 0x100);
	ck_assert(!stats_wal_unsure(&s)); /* the stream flows */
	stats_sampled(&s, &s.line, 20);
	ck_assert(stats_wal_unsure(&s)); /* silent since the sample */
	stats_wal_end(&s, 0);
	ck_assert(!stats_wal_unsure(&s));
	stats_reading(&s, false, 30);
	stats_reading(&s, true, 40);
	ck_assert(stats_wal_unsure(&s)); /* stopped reading for a while since the sample */
	stats_sampled(&s, &s.line, 50);
	stats_wal_end(&s, 0x200);
	ck_assert(!stats_wal_unsure(&s));
	stats_reading(&s, false, 60);
	stats_sampled(&s, &s.status, 70);
	stats_wal_end(&s, 0x200);
	ck_assert(stats_wal_unsure(&s)); /* still not reading after the sample */
}
END_TEST

/* ---- lag_ms ---- */

START_TEST(idle_and_caught_up_is_zero)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, true, 1000);
	stats_wal_end(&s, 0x5000);
	stats_server_wal(&s, 0x5100); /* written since the last keepalive: on its way */
	struct stats_input in = input(600000);
	in.confirmed = 0x5000;
	struct stats_view v = line(&s, &in);
	ck_assert_int_eq(v.lag_ms, 0);
	ck_assert_uint_eq(v.lag_bytes, 0x100);
}
END_TEST

START_TEST(oldest_event_held)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, true, 0);
	struct stats_input in = input(1000);
	in.pending = 3;
	in.oldest_pending = WALL - 1500 * 1000;
	ck_assert_int_eq(line(&s, &in).lag_ms, 1500);
	in.oldest_pending = WALL + 2000 * 1000; /* the server's clock ahead of ours */
	ck_assert_int_eq(line(&s, &in).lag_ms, 0);
	in.pending = 0; /* everything acknowledged */
	in.oldest_pending = WALL - 1500 * 1000;
	ck_assert_int_eq(line(&s, &in).lag_ms, 0);
}
END_TEST

/* Stopped reading (the broker went away) with commits the stream has not delivered: they
 * wait since the relay stopped reading, and the wait grows. */
START_TEST(unread_wal_counts_from_when_reading_stopped)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, true, 1000);
	stats_wal_end(&s, 0x5000);
	stats_reading(&s, false, 2000);
	stats_reading(&s, false, 3000);
	stats_server_wal(&s, 0x9000);
	struct stats_input in = input(7000);
	in.confirmed = 0x5000;
	struct stats_view v = line(&s, &in);
	ck_assert_int_eq(v.lag_ms, 5000);
	ck_assert_uint_eq(v.lag_bytes, 0x4000);
	stats_sampled(&s, &s.line, 7000);
	stats_server_wal(&s, 0xA000);
	in = input(9000);
	in.confirmed = 0x5000;
	struct stats_view later = line(&s, &in);
	ck_assert_int_gt(later.lag_ms, v.lag_ms);
	ck_assert_uint_gt(later.lag_bytes, v.lag_bytes);

	/* Reading again: what the server has is on its way, and events received count by their
	 * commit time. */
	stats_reading(&s, true, 9500);
	in = input(10000);
	ck_assert_int_eq(line(&s, &in).lag_ms, 0);
}
END_TEST

/* Not reading, but a sample found nothing unread: later WAL counts from that sample, not
 * from when reading stopped. */
START_TEST(a_sample_with_nothing_unread_moves_the_start)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, true, 1000);
	stats_wal_end(&s, 0x5000);
	stats_reading(&s, false, 2000);
	stats_server_wal(&s, 0x5000);
	struct stats_input in = input(60000);
	ck_assert_int_eq(line(&s, &in).lag_ms, 0); /* broker away, nothing committed */
	stats_sampled(&s, &s.status, 60000);
	stats_server_wal(&s, 0x6000);
	in = input(65000);
	ck_assert_int_eq(line(&s, &in).lag_ms, 5000);
	stats_sampled(&s, &s.status, 65000); /* unread WAL: the start stays */
	in = input(70000);
	ck_assert_int_eq(line(&s, &in).lag_ms, 10000);
}
END_TEST

START_TEST(the_larger_of_held_and_unread)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, true, 1000);
	stats_wal_end(&s, 0x5000);
	stats_reading(&s, false, 2000);
	stats_server_wal(&s, 0x6000);
	struct stats_input in = input(4000);
	in.pending = 1;
	in.oldest_pending = WALL - 9000 * 1000;
	ck_assert_int_eq(line(&s, &in).lag_ms, 9000);
	in.oldest_pending = WALL - 1000 * 1000;
	ck_assert_int_eq(line(&s, &in).lag_ms, 2000);
}
END_TEST

/* Never read yet (connecting, standby): nothing is known to be unread. */
START_TEST(before_the_stream_nothing_is_late)
{
	struct stats s;
	stats_init(&s, 0);
	stats_reading(&s, false, 1000);
	struct stats_input in = input(90000);
	struct stats_view v = line(&s, &in);
	ck_assert_int_eq(v.lag_ms, 0);
	ck_assert_uint_eq(v.lag_bytes, 0);
}
END_TEST

/* ---- text ---- */

START_TEST(status_text)
{
	struct stats s;
	stats_init(&s, 0);
	stats_acked(&s);
	stats_acked(&s);
	struct stats_input in = input(1000);
	in.pending = 4;
	in.oldest_pending = WALL - 250 * 1000;
	struct stats_view v = line(&s, &in);
	struct stats_state st = { .session = "streaming", .broker_up = true };
	char text[256];
	stats_status_text(&v, &st, text, sizeof text);
	ck_assert_str_eq(text, "streaming, broker connected; published 2, 2.0/s, dead-lettered 0, pending 4, "
	                       "lag 250 ms, 0 bytes");
	st = (struct stats_state){ .session = "PostgreSQL disconnected", .stopping = true };
	stats_status_text(&v, &st, text, sizeof text);
	ck_assert_str_eq(text, "stopping, PostgreSQL disconnected, broker disconnected; published 2, 2.0/s, "
	                       "dead-lettered 0, pending 4, lag 250 ms, 0 bytes");
	/* What refused is said after the numbers, each side on its own. */
	st = (struct stats_state){ .session = "PostgreSQL refused the relay",
		                   .pg_trouble = "PostgreSQL refused: password authentication failed",
		                   .broker_trouble =
		                           "cannot connect to broker: Connection refused (h:1883)" };
	stats_status_text(&v, &st, text, sizeof text);
	ck_assert_str_eq(text, "PostgreSQL refused the relay, broker disconnected; published 2, 2.0/s, "
	                       "dead-lettered 0, pending 4, lag 250 ms, 0 bytes; PostgreSQL: PostgreSQL "
	                       "refused: password authentication failed; broker: cannot connect to broker: "
	                       "Connection refused (h:1883)");
	/* A summary longer than the buffer is cut, not overrun. */
	char small[40];
	stats_status_text(&v, &st, small, sizeof small);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stats");
	TCase *tc_rate = tcase_create("rate");
	tcase_add_test(tc_rate, rate_counts_this_process_only);
	tcase_add_test(tc_rate, rate_after_a_restart_without_acknowledgements_is_zero);
	tcase_add_test(tc_rate, line_and_status_have_their_own_intervals);
	tcase_add_test(tc_rate, rate_without_elapsed_time_is_zero);
	suite_add_tcase(s, tc_rate);

	TCase *tc_lag = tcase_create("lag");
	tcase_add_test(tc_lag, lag_bytes_is_server_minus_confirmed);
	tcase_add_test(tc_lag, unsure_when_silent_or_stalled);
	tcase_add_test(tc_lag, idle_and_caught_up_is_zero);
	tcase_add_test(tc_lag, oldest_event_held);
	tcase_add_test(tc_lag, unread_wal_counts_from_when_reading_stopped);
	tcase_add_test(tc_lag, a_sample_with_nothing_unread_moves_the_start);
	tcase_add_test(tc_lag, the_larger_of_held_and_unread);
	tcase_add_test(tc_lag, before_the_stream_nothing_is_late);
	suite_add_tcase(s, tc_lag);

	TCase *tc_text = tcase_create("text");
	tcase_add_test(tc_text, status_text);
	suite_add_tcase(s, tc_text);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
