#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "outbox.h"
#include "pgoutput.h"
#include "typemap.h"

#define T_INT8 20
#define T_BYTEA 17
#define T_JSONB 3802
#define D_DOC 16500       /* CREATE DOMAIN doc AS jsonb */
#define D_ORDER_DOC 16510 /* CREATE DOMAIN order_doc AS doc */
#define D_BLOB 16530      /* CREATE DOMAIN blob AS bytea */

static const struct typemap_domain domains[] = { { D_DOC, T_JSONB },
	                                         { D_ORDER_DOC, D_DOC },
	                                         { D_BLOB, T_BYTEA } };

/* public.events (id int8, doc order_doc, blob blob) and one row of it. */
static struct pgo_column columns[] = {
	{ "id", T_INT8, -1, true },
	{ "doc", D_ORDER_DOC, -1, false },
	{ "blob", D_BLOB, -1, false },
};
static const struct pgo_relation relation = { 20000, "public", "events", 'd', 3, columns, 1 };
static const struct pgo_value values[] = {
	{ PGO_VALUE_TEXT, "7", 1 },
	{ PGO_VALUE_TEXT, "{\"k\": 1}", 8 },
	{ PGO_VALUE_TEXT, "\\x00ff10", 8 },
};
static const struct pgo_tuple row = { 3, values };

struct fixture {
	struct route_config route;
	struct config cfg;
	struct outbox *outbox;
	struct typemap *types;
	struct event ev;
};

/* An outbox with one route on public.events; types: whether it knows the domains. */
static void fixture_init(struct fixture *f, const char *payload, bool types)
{
	memset(f, 0, sizeof *f);
	/* An id column: the default id would need the event's LSN text, which is the caller's. */
	f->route = (struct route_config){ .schema = "public",
		                          .table = "events",
		                          .topic = "t/{id}",
		                          .payload_column = (char *)payload,
		                          .event_id_column = "id",
		                          .qos = 1,
		                          .line = 1,
		                          .column = 1 };
	f->cfg.path = "cfg.yaml";
	f->cfg.routes = &f->route;
	f->cfg.nroutes = 1;
	f->outbox = outbox_new(&f->cfg, stderr);
	ck_assert_ptr_nonnull(f->outbox);
	if (types) {
		f->types = typemap_new();
		typemap_set_domains(f->types, domains, sizeof domains / sizeof domains[0]);
		outbox_use_types(f->outbox, f->types);
	}
	event_init(&f->ev);
}

static void build(struct fixture *f)
{
	char why[200] = "";
	struct outbox_route *r = outbox_route_table(f->outbox, &relation);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(outbox_build(r, &relation, &row, &f->ev, why, sizeof why) == 0, "%s", why);
	ck_assert_str_eq(f->ev.topic.data, "t/7");
	ck_assert_str_eq(f->ev.event_id.data, "7");
}

static void fixture_finish(struct fixture *f)
{
	event_finish(&f->ev);
	outbox_free(f->outbox);
	typemap_free(f->types);
}

START_TEST(bytea_domain_column_is_raw_bytes)
{
	struct fixture f;
	fixture_init(&f, "blob", true);
	build(&f);
	ck_assert_uint_eq(f.ev.payload.len, 3);
	ck_assert_mem_eq(f.ev.payload.data, "\x00\xff\x10", 3);
	ck_assert_ptr_null(f.ev.content_type);
	fixture_finish(&f);
}
END_TEST

START_TEST(json_domain_column_is_json)
{
	struct fixture f;
	fixture_init(&f, "doc", true);
	build(&f);
	ck_assert_str_eq(f.ev.payload.data, "{\"k\": 1}");
	ck_assert_str_eq(f.ev.content_type, "application/json");
	fixture_finish(&f);
}
END_TEST

/* What the relay did before it read the domains: their text, as for any unknown type. */
START_TEST(without_types_domains_are_text)
{
	struct fixture f;
	fixture_init(&f, "blob", false);
	build(&f);
	ck_assert_str_eq(f.ev.payload.data, "\\x00ff10");
	fixture_finish(&f);
	fixture_init(&f, "doc", false);
	build(&f);
	ck_assert_ptr_null(f.ev.content_type);
	fixture_finish(&f);
}
END_TEST

START_TEST(row_embeds_domains_as_their_base_types)
{
	struct fixture f;
	fixture_init(&f, "row", true);
	build(&f);
	ck_assert_str_eq(f.ev.payload.data, "{\"id\":7,\"doc\":{\"k\": 1},\"blob\":\"AP8Q\"}");
	ck_assert_str_eq(f.ev.content_type, "application/json");
	fixture_finish(&f);
}
END_TEST

/* Types given after a route was bound take effect: the binding is made again. */
START_TEST(types_given_later_rebind)
{
	struct fixture f;
	fixture_init(&f, "doc", false);
	build(&f);
	ck_assert_ptr_null(f.ev.content_type);
	f.types = typemap_new();
	typemap_set_domains(f.types, domains, sizeof domains / sizeof domains[0]);
	outbox_use_types(f.outbox, f.types);
	build(&f);
	ck_assert_str_eq(f.ev.content_type, "application/json");
	fixture_finish(&f);
}
END_TEST

/* The relay's own messages (the heartbeat is transactional, doc/design.md §17) are never
 * routed, even by a route whose glob matches every prefix. */
START_TEST(reserved_prefix_is_never_routed)
{
	struct route_config route = {
		.message_prefix = "*", .topic = "m/{prefix}", .qos = 1, .line = 1, .column = 1
	};
	struct config cfg = { .path = "cfg.yaml", .routes = &route, .nroutes = 1 };
	struct outbox *o = outbox_new(&cfg, stderr);
	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_nonnull(outbox_route_message(o, "shop.order"));
	ck_assert_ptr_nonnull(outbox_route_message(o, "outbox-relay"));
	ck_assert_ptr_null(outbox_route_message(o, "outbox-relay.heartbeat"));
	ck_assert_ptr_null(outbox_route_message(o, "outbox-relay.drain"));
	outbox_free(o);
}
END_TEST

/* doc/design.md §22.3: an event of a cleanup: delete route carries its row's key; any other
 * event, built into the same reused buffers, carries none. */
START_TEST(cleanup_routes_carry_the_row_key)
{
	struct fixture f;
	fixture_init(&f, "doc", true);
	f.route.cleanup = CLEANUP_DELETE;
	build(&f);
	const char key[] = "public\0events\0id\0\0007";
	ck_assert_uint_eq(f.ev.cleanup_key.len, sizeof key);
	ck_assert_mem_eq(f.ev.cleanup_key.data, key, sizeof key);

	/* A row that cannot be published (NULL topic value) is dead-lettered, and stays. */
	struct pgo_value null_id[] = { { PGO_VALUE_NULL, NULL, 0 }, values[1], values[2] };
	struct pgo_tuple bad = { 3, null_id };
	char why[200];
	struct outbox_route *r = outbox_route_table(f.outbox, &relation);
	ck_assert_int_eq(outbox_build(r, &relation, &bad, &f.ev, why, sizeof why), -1);
	ck_assert_uint_eq(f.ev.cleanup_key.len, 0);

	build(&f);
	ck_assert_uint_gt(f.ev.cleanup_key.len, 0);
	f.route.cleanup = CLEANUP_NONE;
	build(&f);
	ck_assert_uint_eq(f.ev.cleanup_key.len, 0);
	fixture_finish(&f);
}
END_TEST

/* ---- routes that publish updates and deletes (doc/design.md §5) ---- */

#define ALL_CHANGES (ROUTE_CHANGE_INSERT | ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE)

/* The same table with REPLICA IDENTITY FULL: every column is in the identity. */
static struct pgo_column full_columns[] = {
	{ "id", T_INT8, -1, true },
	{ "doc", D_ORDER_DOC, -1, true },
	{ "blob", D_BLOB, -1, true },
};
static const struct pgo_relation full_relation = { 20001, "public", "events", 'f', 3, full_columns, 1 };

/* The old key of row 6 as a DELETE (or a key-changing UPDATE) carries it by default. */
static const struct pgo_value key6_values[] = {
	{ PGO_VALUE_TEXT, "6", 1 },
	{ PGO_VALUE_NULL, NULL, 0 },
	{ PGO_VALUE_NULL, NULL, 0 },
};
static const struct pgo_tuple key6 = { 3, key6_values };

static void state_init(struct fixture *f, const char *payload, const char *topic, bool retain)
{
	fixture_init(f, payload, true);
	outbox_free(f->outbox);
	f->route.topic = (char *)topic;
	f->route.changes = ALL_CHANGES;
	f->route.retain = retain;
	f->outbox = outbox_new(&f->cfg, stderr);
	ck_assert_ptr_nonnull(f->outbox);
	outbox_use_types(f->outbox, f->types);
	snprintf(f->ev.lsn_text, sizeof f->ev.lsn_text, "0/10");
	f->ev.index = 2;
}

static struct outbox_route *state_route(struct fixture *f, const struct pgo_relation *rel)
{
	struct outbox_route *r = outbox_route_table(f->outbox, rel);
	ck_assert_ptr_nonnull(r);
	return r;
}

START_TEST(inserts_carry_op_only_on_routes_with_changes)
{
	struct fixture f;
	fixture_init(&f, "doc", true);
	f.route.changes = ROUTE_CHANGE_INSERT;
	build(&f);
	ck_assert_ptr_null(f.ev.op);
	fixture_finish(&f);

	state_init(&f, "envelope", "t/{id}", true);
	char why[200] = "";
	struct outbox_route *r = state_route(&f, &relation);
	ck_assert(outbox_route_publishes(r, ROUTE_CHANGE_UPDATE));
	ck_assert_int_eq(outbox_build(r, &relation, &row, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.op, EVENT_OP_INSERT);
	ck_assert_str_eq(f.ev.event_id.data, "7"); /* an insert keeps its id column */
	ck_assert_ptr_nonnull(strstr(f.ev.payload.data, "\"op\":\"insert\",\"old_key\":null,\"row\":{"));
	fixture_finish(&f);
}
END_TEST

START_TEST(update_publishes_the_new_row_with_its_own_id)
{
	struct fixture f;
	state_init(&f, "row", "t/{id}", true);
	char why[200] = "";
	struct outbox_route *r = state_route(&f, &relation);
	ck_assert(!outbox_update_moves(r, &relation, NULL, &row));
	ck_assert_ptr_eq(outbox_update_row(r, &relation, NULL, &row), &row);
	ck_assert_int_eq(outbox_build_update(r, &relation, NULL, &row, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.op, EVENT_OP_UPDATE);
	ck_assert_str_eq(f.ev.topic.data, "t/7");
	ck_assert_str_eq(f.ev.event_id.data, "0/10:2");
	ck_assert_str_eq(f.ev.payload.data, "{\"id\":7,\"doc\":{\"k\": 1},\"blob\":\"AP8Q\"}");
	ck_assert(f.ev.retain);
	fixture_finish(&f);
}
END_TEST

START_TEST(delete_with_retain_clears_the_topic)
{
	struct fixture f;
	state_init(&f, "row", "t/{id}", true);
	char why[200] = "";
	struct outbox_route *r = state_route(&f, &relation);
	ck_assert_int_eq(outbox_build_delete(r, &relation, &key6, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.op, EVENT_OP_DELETE);
	ck_assert_str_eq(f.ev.topic.data, "t/6");
	ck_assert_uint_eq(f.ev.payload.len, 0);
	ck_assert_ptr_null(f.ev.content_type);
	ck_assert(f.ev.retain);
	ck_assert_int_eq(f.ev.qos, 1);
	ck_assert_str_eq(f.ev.event_id.data, "0/10:2");
	fixture_finish(&f);
}
END_TEST

START_TEST(delete_without_retain_publishes_the_old_key)
{
	struct fixture f;
	char why[200] = "";
	state_init(&f, "blob", "t/{id}", false);
	ck_assert_int_eq(
	        outbox_build_delete(state_route(&f, &relation), &relation, &key6, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.payload.data, "{\"id\":6}");
	ck_assert_str_eq(f.ev.content_type, "application/json");
	fixture_finish(&f);

	state_init(&f, "envelope", "t/{id}", false);
	ck_assert_int_eq(
	        outbox_build_delete(state_route(&f, &relation), &relation, &key6, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.payload.data,
	                 "{\"event_id\":\"0/10:2\",\"source\":\"public.events\",\"lsn\":\"0/10\","
	                 "\"commit_time\":\"\",\"op\":\"delete\",\"old_key\":{\"id\":6},"
	                 "\"row\":null}");
	fixture_finish(&f);
}
END_TEST

/* doc/design.md §5: an UPDATE that changes the topic clears the old one, then publishes. */
START_TEST(update_of_the_key_moves_the_row)
{
	struct fixture f;
	state_init(&f, "envelope", "t/{id}", true);
	char why[200] = "";
	struct outbox_route *r = state_route(&f, &relation);
	ck_assert(outbox_update_moves(r, &relation, &key6, &row));
	ck_assert_int_eq(outbox_build_delete(r, &relation, &key6, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.topic.data, "t/6");
	ck_assert_uint_eq(f.ev.payload.len, 0);
	ck_assert_int_eq(outbox_build_update(r, &relation, &key6, &row, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.topic.data, "t/7");
	ck_assert_ptr_nonnull(
	        strstr(f.ev.payload.data, "\"op\":\"update\",\"old_key\":{\"id\":6},\"row\":{\"id\":7"));
	/* The same key in the old row: it stays where it is. */
	const struct pgo_value same[] = { values[0],
		                          { PGO_VALUE_NULL, NULL, 0 },
		                          { PGO_VALUE_NULL, NULL, 0 } };
	const struct pgo_tuple same_key = { 3, same };
	ck_assert(!outbox_update_moves(r, &relation, &same_key, &row));
	fixture_finish(&f);
}
END_TEST

/* A topic column outside the key: only REPLICA IDENTITY FULL tells where the row was. */
START_TEST(topic_from_a_column_outside_the_key)
{
	struct fixture f;
	state_init(&f, "id", "t/{blob}", true);
	char why[200] = "";
	struct outbox_route *r = state_route(&f, &relation);
	ck_assert(!outbox_update_moves(r, &relation, &key6, &row));
	ck_assert_int_eq(outbox_build_delete(r, &relation, &key6, &f.ev, why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "topic column \"blob\""));

	const struct pgo_value old_values[] = { values[0], values[1], { PGO_VALUE_TEXT, "\\x01", 4 } };
	const struct pgo_tuple old = { 3, old_values };
	r = state_route(&f, &full_relation);
	ck_assert(outbox_update_moves(r, &full_relation, &old, &row));
	ck_assert_int_eq(outbox_build_delete(r, &full_relation, &old, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.topic.data, "t/\\x01");
	ck_assert(!outbox_update_moves(r, &full_relation, &row, &row));
	fixture_finish(&f);
}
END_TEST

/* An unchanged TOASTed value: from the old row with REPLICA IDENTITY FULL, else the event
 * cannot be built. */
START_TEST(unchanged_toast_comes_from_the_old_row)
{
	struct fixture f;
	state_init(&f, "row", "t/{id}", true);
	char why[200] = "";
	const struct pgo_value new_values[] = { values[0], values[1], { PGO_VALUE_UNCHANGED, NULL, 0 } };
	const struct pgo_tuple new_row = { 3, new_values };

	struct outbox_route *r = state_route(&f, &full_relation);
	const struct pgo_tuple *merged = outbox_update_row(r, &full_relation, &row, &new_row);
	ck_assert_ptr_ne(merged, &new_row);
	ck_assert_int_eq(merged->values[2].kind, PGO_VALUE_TEXT);
	ck_assert_int_eq(outbox_build_update(r, &full_relation, &row, merged, &f.ev, why, sizeof why), 0);
	ck_assert_str_eq(f.ev.payload.data, "{\"id\":7,\"doc\":{\"k\": 1},\"blob\":\"AP8Q\"}");

	r = state_route(&f, &relation);
	merged = outbox_update_row(r, &relation, NULL, &new_row);
	ck_assert_ptr_eq(merged, &new_row);
	ck_assert_int_eq(outbox_build_update(r, &relation, NULL, merged, &f.ev, why, sizeof why), -1);
	ck_assert_ptr_nonnull(strstr(why, "column \"blob\""));
	fixture_finish(&f);

	/* A route that does not read the column does not need it. */
	state_init(&f, "doc", "t/{id}", true);
	r = state_route(&f, &relation);
	ck_assert_int_eq(outbox_build_update(r, &relation, NULL, &new_row, &f.ev, why, sizeof why), 0);
	fixture_finish(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("domains");
	tcase_add_test(tc, bytea_domain_column_is_raw_bytes);
	tcase_add_test(tc, json_domain_column_is_json);
	tcase_add_test(tc, without_types_domains_are_text);
	tcase_add_test(tc, row_embeds_domains_as_their_base_types);
	tcase_add_test(tc, types_given_later_rebind);
	suite_add_tcase(s, tc);
	TCase *messages = tcase_create("messages");
	tcase_add_test(messages, reserved_prefix_is_never_routed);
	suite_add_tcase(s, messages);
	TCase *cleanup = tcase_create("cleanup");
	tcase_add_test(cleanup, cleanup_routes_carry_the_row_key);
	suite_add_tcase(s, cleanup);
	TCase *changes = tcase_create("changes");
	tcase_add_test(changes, inserts_carry_op_only_on_routes_with_changes);
	tcase_add_test(changes, update_publishes_the_new_row_with_its_own_id);
	tcase_add_test(changes, delete_with_retain_clears_the_topic);
	tcase_add_test(changes, delete_without_retain_publishes_the_old_key);
	tcase_add_test(changes, update_of_the_key_moves_the_row);
	tcase_add_test(changes, topic_from_a_column_outside_the_key);
	tcase_add_test(changes, unchanged_toast_comes_from_the_old_row);
	suite_add_tcase(s, changes);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
