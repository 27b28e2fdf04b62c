/*
 * What the relay has done, for the stats line, STATUS= and the shutdown summary
 * (doc/design.md §8): counters the loop bumps, and the rate and lag arithmetic, which is
 * pure (stats_compute) so that it is tested without a clock.
 */
#ifndef OUTBOX_STATS_H
#define OUTBOX_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "pgtime.h"

struct stats {
	uint64_t published;     /* acknowledged over the slot's life (the checkpoint keeps it) */
	uint64_t dead_lettered; /* by this process */
	lsn_t server_wal_end;   /* the newest WAL end the server reported */
	pg_time_t last_acked_commit_time;
	/* The rate is over the time since the last line. */
	uint64_t line_published;
	int64_t line_at; /* monotonic ms; 0: no line yet */
};

/* What one line says. */
struct stats_view {
	uint64_t published;
	double rate; /* acknowledgements a second since the last line */
	uint64_t dead_lettered;
	size_t inflight;
	uint64_t lag_bytes;
	int64_t lag_ms;
	lsn_t checkpoint_lsn;
	uint64_t reconnects;
};

/* An event the broker acknowledged (commit_time: its transaction's). */
void stats_acked(struct stats *s, pg_time_t commit_time);

/* A replication message's WAL end. */
void stats_wal_end(struct stats *s, lsn_t wal_end);

/* The numbers of a line at now (monotonic ms) and pg_now (the wall clock), given what the
 * others know: events in flight, the position confirmed to the slot, the checkpoint's, and
 * connections lost. Pure. */
struct stats_view stats_compute(const struct stats *s, int64_t now, pg_time_t pg_now_us, size_t inflight,
                                lsn_t confirmed, lsn_t checkpoint_lsn, uint64_t reconnects);

/* Logs the line, tells STATUS= to the service manager, and starts the next rate interval. */
void stats_report(struct stats *s, const struct stats_view *v, int64_t now);

/* The shutdown summary: published in all, still unacknowledged, what the slot was told. */
void stats_summary(const struct stats *s, size_t inflight, lsn_t confirmed);

#endif
