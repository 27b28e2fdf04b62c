#include <check.h>
#include <stdlib.h>

#include "qos2_watch.h"

static struct qos2_watch w;

static void setup(void)
{
	w = (struct qos2_watch){ 0 };
}

/* RabbitMQ: the PUBACK of a QoS 2 message is logged, then the protocol error ends it. */
START_TEST(a_puback_for_a_qos_2_message_is_certain_at_once)
{
	qos2_watch_connected(&w);
	qos2_watch_hold(&w, 7);
	qos2_watch_log_line(&w, "Client outbox-relay sending PUBLISH (d0, q2, r0, m7, 'a/b', ... (2 bytes))");
	qos2_watch_log_line(&w, "Client outbox-relay received PUBACK (Mid: 7, RC:0)");
	ck_assert(qos2_watch_seen(&w));
	ck_assert(qos2_watch_refused(&w));
}
END_TEST

/* A PUBACK for a QoS 1 message is just that; PUBREC and PUBCOMP say nothing. */
START_TEST(other_acknowledgements_are_not_it)
{
	qos2_watch_connected(&w);
	qos2_watch_hold(&w, 8);
	qos2_watch_log_line(&w, "Client outbox-relay received PUBACK (Mid: 9, RC:0)");
	qos2_watch_log_line(&w, "Client outbox-relay received PUBREC (Mid: 8)");
	qos2_watch_log_line(&w, "Client outbox-relay received PUBCOMP (Mid: 8, RC:0)");
	ck_assert(!qos2_watch_seen(&w));
	/* One protocol error alone is not enough to stop on. */
	ck_assert(!qos2_watch_refused(&w));
}
END_TEST

/* Without the log line (another library version), the second connection in a row that ends
 * with a protocol error, holding QoS 2 messages and completing none, is enough. */
START_TEST(inferred_from_two_connections_in_a_row)
{
	qos2_watch_hold(&w, 1);
	qos2_watch_connected(&w);
	ck_assert(!qos2_watch_refused(&w));
	qos2_watch_connected(&w);
	ck_assert(qos2_watch_refused(&w));
	ck_assert(!qos2_watch_seen(&w));
}
END_TEST

/* A connection that completed a QoS 2 message shows the broker supports QoS 2. */
START_TEST(a_completed_qos_2_message_clears_suspicion)
{
	qos2_watch_hold(&w, 1);
	qos2_watch_hold(&w, 2);
	qos2_watch_connected(&w);
	ck_assert(!qos2_watch_refused(&w));
	qos2_watch_connected(&w);
	ck_assert(qos2_watch_release(&w, 1));
	ck_assert(!qos2_watch_refused(&w));
	qos2_watch_connected(&w);
	ck_assert_msg(!qos2_watch_refused(&w), "the count starts again");
	ck_assert_msg(!qos2_watch_release(&w, 1), "released once");
	ck_assert_msg(!qos2_watch_release(&w, 3), "never held");
}
END_TEST

/* Nothing held, nothing to blame: a protocol error for another reason. */
START_TEST(nothing_held_is_never_it)
{
	qos2_watch_hold(&w, 65535);
	qos2_watch_forget(&w);
	for (int i = 0; i < 3; i++) {
		qos2_watch_connected(&w);
		ck_assert(!qos2_watch_refused(&w));
	}
	qos2_watch_log_line(&w, "Client x received PUBACK (Mid: 65535, RC:0)");
	ck_assert(!qos2_watch_seen(&w));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("qos2_watch");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, a_puback_for_a_qos_2_message_is_certain_at_once);
	tcase_add_test(tc, other_acknowledgements_are_not_it);
	tcase_add_test(tc, inferred_from_two_connections_in_a_row);
	tcase_add_test(tc, a_completed_qos_2_message_clears_suspicion);
	tcase_add_test(tc, nothing_held_is_never_it);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
