#include <check.h>
#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>

#include "refusal.h"

/* Messages as libpq 15 writes them for a failed connection (tests/integration shows them
 * against a real server). */
#define AT "connection to server at \"127.0.0.1\", port 5432 failed: "
#define DOWN AT "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"

START_TEST(connection_refusals_are_read_from_the_message)
{
	ck_assert_int_eq(
	        refusal_of_pg(NULL, AT "FATAL:  password authentication failed for user \"relay\"\n", false),
	        REFUSAL_PG_PASSWORD);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "fe_sendauth: no password supplied\n", false),
	                 REFUSAL_PG_NO_PASSWORD);
	ck_assert_int_eq(
	        refusal_of_pg(NULL,
	                      "connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed:"
	                      " FATAL:  Peer authentication failed for user \"relay\"\n",
	                      false),
	        REFUSAL_PG_AUTH_METHOD);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  database \"shop\" does not exist\n", false),
	                 REFUSAL_PG_DATABASE);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  role \"relay\" does not exist\n", false),
	                 REFUSAL_PG_ROLE);
	/* A role whose name says "database" is still a role. */
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  role \"database \"x\" does not exist\n", false),
	                 REFUSAL_PG_ROLE);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  role \"relay\" is not permitted to log in\n", false),
	                 REFUSAL_PG_ROLE);
	ck_assert_int_eq(refusal_of_pg(NULL,
	                               AT
	                               "FATAL:  pg_hba.conf rejects connection for host \"127.0.0.1\", user"
	                               " \"relay\", database \"shop\", no encryption\n",
	                               false),
	                 REFUSAL_PG_HBA);
	ck_assert_int_eq(refusal_of_pg(NULL,
	                               AT "FATAL:  no pg_hba.conf entry for replication connection from host"
	                                  " \"127.0.0.1\", user \"relay\", no encryption\n",
	                               false),
	                 REFUSAL_PG_HBA);
	ck_assert_int_eq(refusal_of_pg(NULL,
	                               AT
	                               "FATAL:  permission denied for database \"shop\"\nDETAIL:  User does"
	                               " not have CONNECT privilege.\n",
	                               false),
	                 REFUSAL_PG_CONNECT);
	ck_assert_int_eq(
	        refusal_of_pg(NULL, AT "FATAL:  must be superuser or replication role to start walsender\n",
	                      false),
	        REFUSAL_PG_REPLICATION);
	ck_assert_int_eq(refusal_of_pg(NULL,
	                               AT "FATAL:  permission denied to start WAL sender\nDETAIL:  Only roles"
	                                  " with the REPLICATION attribute may start a WAL sender process.\n",
	                               false),
	                 REFUSAL_PG_REPLICATION);
}
END_TEST

START_TEST(a_server_that_does_not_answer_is_not_a_refusal)
{
	ck_assert_int_eq(refusal_of_pg(NULL, DOWN, false), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  the database system is starting up\n", false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "FATAL:  sorry, too many clients already\n", false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg(NULL, AT "server closed the connection unexpectedly\n", false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg(NULL, "", false), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg(NULL, NULL, false), REFUSAL_NONE);
	/* Another language: not guessed. */
	ck_assert_int_eq(
	        refusal_of_pg(NULL, AT "FATAL:  Passwort-Authentifizierung für Benutzer \"relay\"\n", false),
	        REFUSAL_NONE);
}
END_TEST

START_TEST(one_host_that_refuses_is_enough)
{
	/* localhost as ::1 (nothing listens) then 127.0.0.1, or a multi-host conninfo. */
	ck_assert_int_eq(
	        refusal_of_pg(NULL, DOWN AT "FATAL:  password authentication failed for user \"r\"\n", false),
	        REFUSAL_PG_PASSWORD);
}
END_TEST

START_TEST(libpq_knowing_a_password_was_needed_decides)
{
	ck_assert_int_eq(refusal_of_pg(NULL, "anything", true), REFUSAL_PG_NO_PASSWORD);
}
END_TEST

START_TEST(sqlstates_decide_when_there_is_one)
{
	ck_assert_int_eq(refusal_of_pg("28P01", "password authentication failed", false),
	                 REFUSAL_PG_PASSWORD);
	ck_assert_int_eq(refusal_of_pg("28000", "something new", false), REFUSAL_PG_AUTH_METHOD);
	ck_assert_int_eq(refusal_of_pg("28000", "role \"x\" does not exist", false), REFUSAL_PG_ROLE);
	ck_assert_int_eq(refusal_of_pg("3D000", "database \"x\" does not exist", false), REFUSAL_PG_DATABASE);
	ck_assert_int_eq(
	        refusal_of_pg("42501",
	                      "ERROR:  must be superuser or replication role to use replication slots\n",
	                      false),
	        REFUSAL_PG_REPLICATION);
	ck_assert_int_eq(
	        refusal_of_pg("42501",
	                      "ERROR:  permission denied to create replication slot\nDETAIL:  Only roles"
	                      " with the REPLICATION attribute may use replication slots.\n",
	                      false),
	        REFUSAL_PG_REPLICATION);
	ck_assert_int_eq(refusal_of_pg("42501", "ERROR:  permission denied for table checkpoint\n", false),
	                 REFUSAL_PG_PRIVILEGE);
	ck_assert_int_eq(
	        refusal_of_pg("55000", "ERROR:  logical decoding requires wal_level >= logical\n", false),
	        REFUSAL_PG_WAL_LEVEL);
	/* 55000 says other things too; 55006 is the standby's business; 53100 is a full disk. */
	ck_assert_int_eq(refusal_of_pg("55000",
	                               "ERROR:  cannot use a logical replication slot for physical"
	                               " replication\n",
	                               false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg("55006", "replication slot \"s\" is active for PID 7", false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg("53100", "could not extend file: No space left on device", false),
	                 REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_pg("08006", "password authentication failed", false), REFUSAL_NONE);
}
END_TEST

START_TEST(connack_codes)
{
	ck_assert_int_eq(refusal_of_connack(false, CONNACK_REFUSED_BAD_USERNAME_PASSWORD),
	                 REFUSAL_MQTT_CREDENTIALS);
	ck_assert_int_eq(refusal_of_connack(false, CONNACK_REFUSED_NOT_AUTHORIZED), REFUSAL_MQTT_AUTHORIZED);
	ck_assert_int_eq(refusal_of_connack(false, CONNACK_REFUSED_IDENTIFIER_REJECTED),
	                 REFUSAL_MQTT_CLIENT_ID);
	ck_assert_int_eq(refusal_of_connack(false, CONNACK_REFUSED_PROTOCOL_VERSION), REFUSAL_MQTT_PROTOCOL);
	ck_assert_int_eq(refusal_of_connack(false, CONNACK_REFUSED_SERVER_UNAVAILABLE), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_BAD_USERNAME_OR_PASSWORD),
	                 REFUSAL_MQTT_CREDENTIALS);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_BAD_AUTHENTICATION_METHOD),
	                 REFUSAL_MQTT_CREDENTIALS);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_NOT_AUTHORIZED), REFUSAL_MQTT_AUTHORIZED);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_CLIENTID_NOT_VALID), REFUSAL_MQTT_CLIENT_ID);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION),
	                 REFUSAL_MQTT_PROTOCOL);
	/* The status topic's Will is retained QoS 1; a broker without either refuses CONNECT. */
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_RETAIN_NOT_SUPPORTED), REFUSAL_MQTT_WILL);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_QOS_NOT_SUPPORTED), REFUSAL_MQTT_WILL);
	/* Busy, unavailable, banned, over the connection rate: may pass. */
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_SERVER_BUSY), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_SERVER_UNAVAILABLE), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_BANNED), REFUSAL_NONE);
	ck_assert_int_eq(refusal_of_connack(true, MQTT_RC_CONNECTION_RATE_EXCEEDED), REFUSAL_NONE);
}
END_TEST

START_TEST(fixes_name_who)
{
	char fix[512];
	struct refusal_who pg = { "relay", "shop", NULL, false };
	refusal_fix(REFUSAL_PG_REPLICATION, &pg, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "ALTER ROLE \"relay\" REPLICATION"));
	refusal_fix(REFUSAL_PG_DATABASE, &pg, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "\"shop\""));
	refusal_fix(REFUSAL_PG_PASSWORD, &pg, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "\"relay\""));
	ck_assert_ptr_nonnull(strstr(fix, "source.password_file"));

	/* A missing user name and a wrong password read differently. */
	struct refusal_who anonymous = { NULL, NULL, "relay-1", false },
	                   named = { "relay", NULL, "relay-1", false };
	refusal_fix(REFUSAL_MQTT_AUTHORIZED, &anonymous, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "set broker.username"));
	ck_assert_ptr_nonnull(strstr(fix, "\"relay-1\""));
	refusal_fix(REFUSAL_MQTT_AUTHORIZED, &named, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "check broker.password_file for user \"relay\""));
	refusal_fix(REFUSAL_MQTT_CREDENTIALS, &anonymous, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "wants credentials"));

	/* The version refused is named, with the setting that changes it. */
	struct refusal_who v5 = { NULL, NULL, "relay-1", true };
	refusal_fix(REFUSAL_MQTT_PROTOCOL, &v5, fix, sizeof fix);
	ck_assert_str_eq(fix, "the broker does not support MQTT 5: set broker.protocol: mqttv311");
	refusal_fix(REFUSAL_MQTT_PROTOCOL, &anonymous, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "does not support MQTT 3.1.1: set broker.protocol: mqttv5"));
	refusal_fix(REFUSAL_MQTT_WILL, &anonymous, fix, sizeof fix);
	ck_assert_ptr_nonnull(strstr(fix, "broker.status_topic"));

	/* Every cause has words and a fix that fit a log line. */
	for (int r = REFUSAL_PG_PASSWORD; r <= REFUSAL_MQTT_WILL; r++) {
		ck_assert_str_ne(refusal_cause((enum refusal)r), "not a refusal");
		refusal_fix((enum refusal)r, &pg, fix, sizeof fix);
		ck_assert_uint_gt(strlen(fix), 10);
		ck_assert_uint_lt(strlen(fix), sizeof fix - 1);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("refusal");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, connection_refusals_are_read_from_the_message);
	tcase_add_test(tc, a_server_that_does_not_answer_is_not_a_refusal);
	tcase_add_test(tc, one_host_that_refuses_is_enough);
	tcase_add_test(tc, libpq_knowing_a_password_was_needed_decides);
	tcase_add_test(tc, sqlstates_decide_when_there_is_one);
	tcase_add_test(tc, connack_codes);
	tcase_add_test(tc, fixes_name_who);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
