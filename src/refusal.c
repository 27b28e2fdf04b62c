#include "refusal.h"

#include <mqtt_protocol.h>
#include <stdio.h>
#include <string.h>

/* Connection failures: PostgreSQL's words, as libpq passes them on (the server's FATAL) or
 * writes them itself (fe_sendauth). Order matters: the first match wins. */
static const struct {
	const char *text;
	enum refusal refusal;
} connection_words[] = {
	{ "password authentication failed for user", REFUSAL_PG_PASSWORD },
	{ "fe_sendauth: no password supplied", REFUSAL_PG_NO_PASSWORD },
	/* peer, ident, cert, LDAP, RADIUS, GSSAPI, SSPI */
	{ "authentication failed for user", REFUSAL_PG_AUTH_METHOD },
	{ "no pg_hba.conf entry for", REFUSAL_PG_HBA },
	{ "pg_hba.conf rejects", REFUSAL_PG_HBA },
	{ "is not permitted to log in", REFUSAL_PG_ROLE },
	/* PostgreSQL up to 15, then 16 and later */
	{ "must be superuser or replication role", REFUSAL_PG_REPLICATION },
	{ "permission denied to start WAL sender", REFUSAL_PG_REPLICATION },
	{ "permission denied for database", REFUSAL_PG_CONNECT },
};

/* `WORD "name" does not exist`, as PostgreSQL says of a role or a database. */
static bool names_missing(const char *text, const char *word)
{
	char prefix[16];
	snprintf(prefix, sizeof prefix, "%s \"", word);
	const char *at = strstr(text, prefix);
	return at && strstr(at + strlen(prefix), "\" does not exist") != NULL;
}

static enum refusal connection_refusal(const char *text)
{
	for (size_t i = 0; i < sizeof connection_words / sizeof connection_words[0]; i++)
		if (strstr(text, connection_words[i].text))
			return connection_words[i].refusal;
	/* The role first: its name may end in "database". */
	if (names_missing(text, "role"))
		return REFUSAL_PG_ROLE;
	if (names_missing(text, "database"))
		return REFUSAL_PG_DATABASE;
	return REFUSAL_NONE;
}

/* 42501 on a replication command or function names the attribute the role lacks. */
static bool about_replication(const char *text)
{
	return strstr(text, "replication role") || strstr(text, "REPLICATION attribute") ||
	       strstr(text, "WAL sender") || strstr(text, "replication slots");
}

enum refusal refusal_of_pg(const char *sqlstate, const char *message, bool password_needed)
{
	const char *text = message ? message : "";
	if (!sqlstate || !*sqlstate) {
		/* libpq tells every host and address it tried ("connection to server at ...
		 * failed: ..."): one that answered with a refusal is enough. Where the others
		 * did not answer, they are the same cluster or a replica of it, with the same
		 * roles and databases. */
		if (password_needed)
			return REFUSAL_PG_NO_PASSWORD;
		return connection_refusal(text);
	}
	if (strcmp(sqlstate, "28P01") == 0)
		return REFUSAL_PG_PASSWORD;
	if (strcmp(sqlstate, "28000") == 0) {
		enum refusal r = connection_refusal(text);
		return r == REFUSAL_NONE ? REFUSAL_PG_AUTH_METHOD : r;
	}
	if (strcmp(sqlstate, "3D000") == 0)
		return REFUSAL_PG_DATABASE;
	if (strcmp(sqlstate, "42501") == 0) {
		if (about_replication(text))
			return REFUSAL_PG_REPLICATION;
		return strstr(text, "permission denied for database") ? REFUSAL_PG_CONNECT
		                                                      : REFUSAL_PG_PRIVILEGE;
	}
	/* 55000, object not in prerequisite state, says many things; this one is a setting. */
	if (strcmp(sqlstate, "55000") == 0 && strstr(text, "wal_level"))
		return REFUSAL_PG_WAL_LEVEL;
	return REFUSAL_NONE;
}

enum refusal refusal_of_connack(bool mqtt5, int code)
{
	if (mqtt5) {
		switch (code) {
		case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
		case MQTT_RC_BAD_AUTHENTICATION_METHOD: return REFUSAL_MQTT_CREDENTIALS;
		case MQTT_RC_NOT_AUTHORIZED: return REFUSAL_MQTT_AUTHORIZED;
		case MQTT_RC_CLIENTID_NOT_VALID: return REFUSAL_MQTT_CLIENT_ID;
		case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION: return REFUSAL_MQTT_PROTOCOL;
		/* Only the Will (broker.status_topic) has a retain flag and a QoS in CONNECT. */
		case MQTT_RC_RETAIN_NOT_SUPPORTED:
		case MQTT_RC_QOS_NOT_SUPPORTED: return REFUSAL_MQTT_WILL;
		default: return REFUSAL_NONE;
		}
	}
	switch (code) {
	case CONNACK_REFUSED_BAD_USERNAME_PASSWORD: return REFUSAL_MQTT_CREDENTIALS;
	case CONNACK_REFUSED_NOT_AUTHORIZED: return REFUSAL_MQTT_AUTHORIZED;
	case CONNACK_REFUSED_IDENTIFIER_REJECTED: return REFUSAL_MQTT_CLIENT_ID;
	case CONNACK_REFUSED_PROTOCOL_VERSION: return REFUSAL_MQTT_PROTOCOL;
	default: return REFUSAL_NONE; /* server unavailable, or a code not in 3.1.1 */
	}
}

const char *refusal_cause(enum refusal r)
{
	switch (r) {
	case REFUSAL_NONE: break;
	case REFUSAL_PG_PASSWORD: return "password authentication failed";
	case REFUSAL_PG_NO_PASSWORD: return "the server asks for a password and none was given";
	case REFUSAL_PG_AUTH_METHOD: return "authentication failed";
	case REFUSAL_PG_HBA: return "no pg_hba.conf line admits the connection";
	case REFUSAL_PG_ROLE: return "the role does not exist or may not log in";
	case REFUSAL_PG_DATABASE: return "the database does not exist";
	case REFUSAL_PG_CONNECT: return "the role may not connect to the database";
	case REFUSAL_PG_REPLICATION: return "the role lacks the REPLICATION attribute";
	case REFUSAL_PG_PRIVILEGE: return "a privilege is missing";
	case REFUSAL_PG_WAL_LEVEL: return "wal_level is below logical";
	case REFUSAL_MQTT_CREDENTIALS: return "the broker refuses the credentials";
	case REFUSAL_MQTT_AUTHORIZED: return "the broker does not authorize the client";
	case REFUSAL_MQTT_CLIENT_ID: return "the broker refuses the client id";
	case REFUSAL_MQTT_PROTOCOL: return "the broker does not speak the configured MQTT version";
	case REFUSAL_MQTT_WILL: return "the broker does not take the status topic's retained QoS 1 Will";
	}
	return "not a refusal";
}

static const char *or_unset(const char *name)
{
	return name && *name ? name : NULL;
}

void refusal_fix(enum refusal r, const struct refusal_who *who, char *buf, size_t size)
{
	const char *user = or_unset(who->user) ? who->user : "(none)";
	const char *db = or_unset(who->database) ? who->database : "(default)";
	const char *client_id = or_unset(who->client_id) ? who->client_id : "(none)";
	bool has_user = or_unset(who->user) != NULL;

	switch (r) {
	case REFUSAL_NONE: snprintf(buf, size, "none needed"); break;
	case REFUSAL_PG_PASSWORD:
		snprintf(buf, size,
		         "give the right password of role \"%s\": source.password_file, password= in"
		         " source.conninfo, or a PGPASSFILE/.pgpass entry",
		         user);
		break;
	case REFUSAL_PG_NO_PASSWORD:
		snprintf(buf, size,
		         "set source.password_file (or a PGPASSFILE/.pgpass entry) with the password of"
		         " role \"%s\"",
		         user);
		break;
	case REFUSAL_PG_AUTH_METHOD:
		snprintf(buf, size,
		         "the method pg_hba.conf chooses for role \"%s\" and database \"%s\" does not accept"
		         " the relay: for peer, run the relay as the operating-system user \"%s\", or connect"
		         " over TCP (host= in source.conninfo) with a password",
		         user, db, user);
		break;
	case REFUSAL_PG_HBA:
		snprintf(buf, size,
		         "add pg_hba.conf lines admitting role \"%s\" to database \"%s\" and to replication"
		         " from this host, then SELECT pg_reload_conf()",
		         user, db);
		break;
	case REFUSAL_PG_ROLE:
		snprintf(buf, size,
		         "create role \"%s\" WITH LOGIN (config/least-privilege.sql), or name another in"
		         " user= of source.conninfo",
		         user);
		break;
	case REFUSAL_PG_DATABASE:
		snprintf(buf, size, "create database \"%s\", or name another in dbname= of source.conninfo",
		         db);
		break;
	case REFUSAL_PG_CONNECT:
		snprintf(buf, size, "GRANT CONNECT ON DATABASE \"%s\" TO \"%s\"", db, user);
		break;
	case REFUSAL_PG_REPLICATION:
		snprintf(buf, size,
		         "ALTER ROLE \"%s\" REPLICATION (config/least-privilege.sql makes such a role)",
		         user);
		break;
	case REFUSAL_PG_PRIVILEGE:
		snprintf(buf, size,
		         "grant role \"%s\" what the error names in database \"%s\"; "
		         "config/least-privilege.sql"
		         " lists everything the relay needs",
		         user, db);
		break;
	case REFUSAL_PG_WAL_LEVEL:
		snprintf(buf, size, "set wal_level = logical in postgresql.conf and restart PostgreSQL");
		break;
	case REFUSAL_MQTT_CREDENTIALS:
		if (has_user)
			snprintf(buf, size,
			         "check broker.password_file: the broker does not accept it for user \"%s\"",
			         user);
		else
			snprintf(
			        buf, size,
			        "the broker wants credentials: set broker.username and broker.password_file");
		break;
	case REFUSAL_MQTT_AUTHORIZED:
		if (has_user)
			snprintf(buf, size,
			         "check broker.password_file for user \"%s\", and that the broker admits "
			         "client id"
			         " \"%s\"",
			         user, client_id);
		else
			snprintf(buf, size,
			         "the broker admits no anonymous client \"%s\": set broker.username and"
			         " broker.password_file, or allow the client id on the broker",
			         client_id);
		break;
	case REFUSAL_MQTT_CLIENT_ID:
		snprintf(buf, size, "choose a broker.client_id the broker accepts (not \"%s\")", client_id);
		break;
	case REFUSAL_MQTT_PROTOCOL:
		if (who->mqtt5)
			snprintf(buf, size,
			         "the broker does not support MQTT 5: set broker.protocol: mqttv311");
		else
			snprintf(buf, size,
			         "the broker does not support MQTT 3.1.1: set broker.protocol: mqttv5, or "
			         "check"
			         " that broker.host and broker.port lead to an MQTT broker");
		break;
	case REFUSAL_MQTT_WILL:
		snprintf(buf, size,
		         "allow retained QoS 1 messages on the broker, or remove broker.status_topic");
		break;
	}
}
