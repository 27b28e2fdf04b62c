/*
 * The relay's loop state, shared by the two halves of the loop and nothing else: relay.c
 * (the loop: sessions, bookkeeping, periodic jobs, stopping) and dispatch.c (what flows
 * through it: changes to events, events to the broker, acknowledgements back), with the
 * rules every change of that state follows. Not a public face: relay.h is the loop's.
 */
#ifndef OUTBOX_LOOP_H
#define OUTBOX_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bookkeeping.h"
#include "cleanup.h"
#include "config.h"
#include "delivery.h"
#include "event.h"
#include "ledger.h"
#include "mqtt.h"
#include "outbox.h"
#include "pgoutput.h"
#include "pgtime.h"
#include "exit_status.h"
#include "relay.h"
#include "reload.h"
#include "requests.h"
#include "source.h"
#include "stats.h"
#include "txn.h"
#include "typemap.h"
#include "util.h"

enum stop_reason {
	RUNNING,
	STOP_SIGNAL,  /* SIGTERM/SIGINT: wait for acks up to drain_timeout */
	STOP_DRAINED, /* --drain reached the marker and everything is acknowledged */
	STOP_FATAL,   /* exit_status says which: 1, or 78 for a configuration the servers refuse */
};

/* Periodic work is a table further down, walked by the step and the poll timeout: a new
 * periodic task is one row and one function. */
#define JOBS_MAX 8

struct relay {
	const struct config *cfg; /* reloads change it in place */
	struct outbox **outbox;   /* the caller's; reloads replace it */
	const struct relay_options *opts;
	struct reload *reload;
	struct source *pg;
	struct mqtt *mqtt;
	struct pgo_decoder *decoder;
	struct typemap *types;
	struct delivery *delivery; /* NULL until the checkpoint is read */
	struct requests *requests; /* backfill and re-drive (doc/design.md §22) */

	struct txn txn;  /* the transaction being received */
	struct event ev; /* decoded, not yet taken by the MQTT client */
	bool ev_pending;
	/* A second event of the same change, published after ev: an UPDATE that moves a row to
	 * another topic clears the old one first (doc/design.md §5). Only while ev_pending;
	 * ev_next_why non-empty: it cannot be published, and is dead-lettered in its turn. */
	struct event ev_next;
	bool ev_next_pending;
	char ev_next_why[256];
	/* Newest event published or set aside: a replay skips everything up to here. */
	struct event_pos handled;
	struct checkpoint_row saved; /* what the checkpoint table holds */
	int64_t checkpoint_at;       /* the earliest next write */
	/* Rows of cleanup: delete routes whose events are acknowledged, deleted with the
	 * checkpoint that covers them (cleanup.h). */
	struct cleanup *cleanup;
	/* delivery.dead_letter_retention */
	struct {
		bool caught_up; /* the last run left no dead letter past the retention */
		bool off;       /* the table refused: no more runs in this process */
	} retention;

	struct {
		lsn_t target; /* the marker emitted at start */
		bool reached;
	} drain; /* --drain */
	struct {
		enum stop_reason reason;
		int exit_status; /* with STOP_FATAL */
		int64_t deadline;
	} stop;
	/* READY=1 told to the service manager: the relay has started. Before, a refusal by
	 * either server ends the process with status 78; after, it is retried. */
	bool ready_sent;

	struct stats stats;
	struct stats_state shown;  /* what STATUS= last said */
	bool ask_wal;              /* the server answers for its WAL position */
	int64_t job_at[JOBS_MAX];  /* per job: when it runs next; 0: not armed */
	int64_t requests_again_at; /* relay_requests_soon: look again then; 0: no */
	int sigfd;
};

/* ---- the state's own rules, shared by both files ---- */

/* Stops the loop with exit 1. */
static inline void relay_fail(struct relay *r)
{
	r->stop.reason = STOP_FATAL;
	r->stop.exit_status = EXIT_FATAL;
}

/* Stops the loop with exit 78: the configuration does not fit what the servers have or
 * allow (logged). */
static inline void relay_fail_config(struct relay *r)
{
	r->stop.reason = STOP_FATAL;
	r->stop.exit_status = EXIT_CONFIG;
}

/* True while the replication stream is up. */
static inline bool relay_streaming(const struct relay *r)
{
	return source_state(r->pg) == SOURCE_STREAMING;
}

/* The PostgreSQL session failed with status: what was received but not published is
 * received again. A refusal before the first start ends the process (source_close
 * reported it). */
static inline void relay_pg_lost(struct relay *r, int status)
{
	source_close(r->pg, status, monotonic_ms());
	txn_end(&r->txn);
	requests_session_lost(r->requests, r->ev_pending);
	r->ev_pending = false;
	r->ev_next_pending = false;
	if (source_state(r->pg) == SOURCE_REFUSED)
		relay_fail_config(r);
}

/* The stream brought a request: look for it now, and again shortly, since the walsender can
 * send a commit before the inserting session has made it visible (relay.c looks again at
 * requests_again_at). */
#define REQUEST_RECHECK_MS 100
static inline void relay_requests_soon(struct relay *r)
{
	requests_wake(r->requests);
	r->requests_again_at = monotonic_ms() + REQUEST_RECHECK_MS;
}

/* What a query's status means for the session: go on, stop for good, or reconnect.
 * Returns true on PG_OK. */
static inline bool relay_query_done(struct relay *r, int status)
{
	if (status == PG_FATAL)
		relay_fail(r);
	else if (status != PG_OK)
		relay_pg_lost(r, status);
	return status == PG_OK;
}

#endif
