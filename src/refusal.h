/*
 * Refusals: a server that answers, and says no to the relay's configuration (doc/design.md
 * §3, §20). Retrying cannot change its mind: before the process's first start such an answer
 * ends the process with status 78; afterwards it is retried with the growing backoff and
 * logged at error level. Everything else a failing connection says (no answer, shutting
 * down, too many connections, a TLS handshake that failed) is transient. Pure.
 *
 * PostgreSQL gives a SQLSTATE for a failed query, but libpq gives none for a failed
 * connection: there the message is read, host by host, in PostgreSQL's own (English)
 * words. A message the relay does not recognise, a server set to another language, or a
 * multi-host conninfo where one host merely did not answer, is transient: a refusal is
 * never guessed.
 */
#ifndef OUTBOX_REFUSAL_H
#define OUTBOX_REFUSAL_H

#include <stdbool.h>
#include <stddef.h>

enum refusal {
	REFUSAL_NONE, /* not a refusal */
	/* PostgreSQL */
	REFUSAL_PG_PASSWORD,    /* 28P01: password authentication failed */
	REFUSAL_PG_NO_PASSWORD, /* the server asks for a password and the relay has none */
	REFUSAL_PG_AUTH_METHOD, /* 28000: peer, ident, cert... authentication failed */
	REFUSAL_PG_HBA,         /* 28000: no pg_hba.conf line admits the connection */
	REFUSAL_PG_ROLE,        /* 28000: the role does not exist, or may not log in */
	REFUSAL_PG_DATABASE,    /* 3D000: the database does not exist */
	REFUSAL_PG_CONNECT,     /* 42501: no CONNECT privilege on the database */
	REFUSAL_PG_REPLICATION, /* 42501: the role lacks the REPLICATION attribute */
	REFUSAL_PG_PRIVILEGE,   /* 42501: any other privilege */
	REFUSAL_PG_WAL_LEVEL,   /* 55000: wal_level is below logical */
	/* MQTT CONNACK */
	REFUSAL_MQTT_CREDENTIALS, /* bad user name or password, bad authentication method */
	REFUSAL_MQTT_AUTHORIZED,  /* not authorized */
	REFUSAL_MQTT_CLIENT_ID,   /* identifier rejected / client identifier not valid */
	REFUSAL_MQTT_PROTOCOL,    /* unacceptable / unsupported protocol version */
	REFUSAL_MQTT_WILL,        /* MQTT 5: the Will's retain flag or QoS is not supported */
};

/* A PostgreSQL failure: sqlstate (NULL when there is none, as for a failed connection), the
 * error message, and whether libpq found that the server wanted a password it did not have
 * (PQconnectionNeedsPassword). */
enum refusal refusal_of_pg(const char *sqlstate, const char *message, bool password_needed);

/* A CONNACK that refused the connection: the MQTT 3.1.1 return code, or the MQTT 5 reason
 * code (mqtt5). */
enum refusal refusal_of_connack(bool mqtt5, int code);

/* What was refused, in a few words: "password authentication failed". */
const char *refusal_cause(enum refusal r);

/* Who asked: the names the fix is written with. NULL or "" when not known or not set. */
struct refusal_who {
	const char *user;      /* PostgreSQL role, or MQTT user name */
	const char *database;  /* PostgreSQL only */
	const char *client_id; /* MQTT only */
	bool mqtt5;            /* MQTT only: the version asked for is 5 */
};

/* What to change, naming the role, database or client id: written to buf. */
void refusal_fix(enum refusal r, const struct refusal_who *who, char *buf, size_t size);

#endif
