#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker_limits.h"

/* Two routes as a file would give them: orders at QoS 2, a retained state route. */
struct fixture {
	struct route_config routes[2];
	struct config cfg;
};

static void setup(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	f->routes[0] = (struct route_config){ .table = "orders", .qos = 2, .line = 12, .column = 5 };
	f->routes[1] = (struct route_config){
		.table = "devices", .qos = 1, .retain = true, .line = 20, .column = 5
	};
	f->cfg.path = "relay.yaml";
	f->cfg.routes = f->routes;
	f->cfg.nroutes = 2;
}

START_TEST(a_broker_that_says_nothing_takes_everything)
{
	struct fixture f;
	setup(&f);
	struct broker_limits l = broker_limits_unsaid();
	struct broker_misfit misfit;
	ck_assert(!broker_limits_said(&l));
	ck_assert(broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_int_eq(broker_limits_qos(&l, 2), 2);
	ck_assert(broker_limits_retain(&l, true));
}
END_TEST

START_TEST(a_lower_maximum_qos_names_the_route_and_the_fix)
{
	struct fixture f;
	setup(&f);
	struct broker_limits l = broker_limits_unsaid();
	l.max_qos = 1;
	struct broker_misfit misfit;
	ck_assert(broker_limits_said(&l));
	ck_assert(!broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_str_eq(misfit.key, "relay.yaml:12:5: routes[0].qos");
	ck_assert_str_eq(misfit.broker, "Maximum QoS 1");
	ck_assert_ptr_nonnull(strstr(misfit.fix, "set qos: 1 on routes[0], or downgrade: true"));
}
END_TEST

START_TEST(downgrade_allows_qos_1_and_never_qos_0)
{
	struct fixture f;
	setup(&f);
	f.routes[0].downgrade = true;
	struct broker_limits l = broker_limits_unsaid();
	l.max_qos = 1;
	struct broker_misfit misfit;
	ck_assert(broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_int_eq(broker_limits_qos(&l, 2), 1);
	ck_assert_int_eq(broker_limits_qos(&l, 0), 0);

	/* QoS 0 has no acknowledgement: the relay would not know what the broker lost. */
	l.max_qos = 0;
	ck_assert(!broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_str_eq(misfit.key, "relay.yaml:12:5: routes[0].qos");
	ck_assert_ptr_nonnull(strstr(misfit.fix, "takes QoS 1"));
}
END_TEST

START_TEST(retain_unavailable)
{
	struct fixture f;
	setup(&f);
	f.routes[0].qos = 1;
	struct broker_limits l = broker_limits_unsaid();
	l.retain_available = false;
	struct broker_misfit misfit;
	ck_assert(!broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_str_eq(misfit.key, "relay.yaml:20:5: routes[1].retain");
	ck_assert_str_eq(misfit.broker, "Retain Available 0");
	ck_assert_ptr_nonnull(strstr(misfit.fix, "retain: false on routes[1]"));

	f.routes[1].downgrade = true;
	ck_assert(broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert(!broker_limits_retain(&l, true));
	ck_assert(!broker_limits_retain(&l, false));
}
END_TEST

START_TEST(the_status_topic_needs_retained_qos_1)
{
	struct fixture f;
	setup(&f);
	f.cfg.nroutes = 0;
	f.cfg.broker.status_topic = "relays/shop";
	struct broker_limits l = broker_limits_unsaid();
	struct broker_misfit misfit;
	ck_assert(broker_limits_fit(&f.cfg, &l, &misfit));
	l.retain_available = false;
	ck_assert(!broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_str_eq(misfit.key, "relay.yaml: broker.status_topic");
	l = broker_limits_unsaid();
	l.max_qos = 0;
	ck_assert(!broker_limits_fit(&f.cfg, &l, &misfit));
	ck_assert_str_eq(misfit.broker, "Maximum QoS 0");
}
END_TEST

/* Packet size and Receive Maximum bind no route: the client refuses a message too large
 * (a dead letter), and sends no more than the broker lets it have in flight. */
START_TEST(packet_size_and_receive_maximum_are_only_said)
{
	struct fixture f;
	setup(&f);
	struct broker_limits l = broker_limits_unsaid();
	l.max_packet_size = 4096;
	l.receive_maximum = 10;
	struct broker_misfit misfit;
	ck_assert(broker_limits_said(&l));
	ck_assert(broker_limits_fit(&f.cfg, &l, &misfit));
	struct broker_limits unsaid = broker_limits_unsaid();
	ck_assert(!broker_limits_same(&l, &unsaid));
	ck_assert(broker_limits_same(&l, &l));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker_limits");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, a_broker_that_says_nothing_takes_everything);
	tcase_add_test(tc, a_lower_maximum_qos_names_the_route_and_the_fix);
	tcase_add_test(tc, downgrade_allows_qos_1_and_never_qos_0);
	tcase_add_test(tc, retain_unavailable);
	tcase_add_test(tc, the_status_topic_needs_retained_qos_1);
	tcase_add_test(tc, packet_size_and_receive_maximum_are_only_said);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
