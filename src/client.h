/*
 * The command line's thin client of the request table (doc/design.md §22): --backfill and
 * --redrive queue a request, --requests lists the slot's requests, --wait follows the one
 * just queued to its end. It connects as the relay's SQL session does (pg_connect) and needs
 * no running relay: the relay carries the request out when the row reaches it.
 */
#ifndef OUTBOX_CLIENT_H
#define OUTBOX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum client_command {
	CLIENT_NONE,     /* no client command: run the relay */
	CLIENT_BACKFILL, /* --backfill ROUTE */
	CLIENT_REDRIVE,  /* --redrive */
	CLIENT_REQUESTS, /* --requests */
};

/* The client's part of the command line, filled by main's option parsing. */
struct client_options {
	enum client_command command; /* the last one given */
	unsigned ncommands;          /* how many of --backfill, --redrive, --requests were given */
	const char *route;           /* --backfill's ROUTE, as given */
	const char *where;           /* --where SQL; NULL: none */
	bool ids_given;              /* --id at least once */
	int64_t *ids;                /* every --id, in the order given */
	size_t nids;
	bool wait; /* --wait */
};

/* Adds the argument of one --id to o: N or N,N,... Returns -1, having said why on stderr,
 * unless each is a positive integer (a dead letter's id). */
int client_add_ids(struct client_options *o, const char *text);

/* Whether the options given go together: one command at most, --where with --backfill only,
 * --id with --redrive only, --wait with --backfill or --redrive. Returns -1, having said why
 * on stderr, for a usage error. */
int client_check_options(const struct client_options *o);

/* Runs o's command against the database of cfg's source: queues the request and prints its
 * id (following it with --wait), or lists the slot's requests. Returns the exit status:
 * EXIT_CLEAN, or EXIT_FATAL when the database could not be used or the request waited for
 * failed. */
int client_run(const struct config *cfg, const struct client_options *o);

void client_options_finish(struct client_options *o);

#endif
