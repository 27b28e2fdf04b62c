/*
 * What the relay has done and how far behind it is, for the stats line, STATUS= and the
 * shutdown summary (doc/design.md §8). The loop reports what happens (acknowledgements,
 * positions the stream or the server gave, whether it reads the stream); stats_compute
 * turns that into a line's numbers. Pure: every time comes from the caller, so the
 * arithmetic is tested without a clock.
 *
 * lag_ms is the age of the oldest committed event not yet acknowledged. The relay knows the
 * commit times of the events it holds; while it does not read the stream (back-pressure, a
 * broker outage, PostgreSQL away) and the server's WAL is past what the stream delivered,
 * what it has not read counts from the last moment it had read everything the server had:
 * when it stopped reading, or a later line that found nothing unread.
 */
#ifndef OUTBOX_STATS_H
#define OUTBOX_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "pgtime.h"

/* Where a rate interval begins: this process's acknowledgements then, and when. */
struct stats_mark {
	uint64_t acked;
	int64_t at; /* monotonic ms */
};

struct stats {
	uint64_t published;       /* acknowledged over the slot's life: the checkpoint's count, then ours */
	uint64_t acked;           /* acknowledged by this process */
	uint64_t dead_lettered;   /* by this process */
	lsn_t received_wal;       /* the newest WAL position the stream delivered */
	lsn_t server_wal;         /* the newest the server is known to have: delivered or asked */
	bool reading;             /* the loop takes from the stream now */
	bool stalled;             /* it stopped reading at some time since the last sample */
	bool heard;               /* the stream delivered a position since the last sample */
	int64_t complete_at;      /* when, as far as the relay knows, it had read all the server had */
	struct stats_mark line;   /* the stats line's rate interval */
	struct stats_mark status; /* STATUS='s */
	struct stats_mark topic;  /* the status topic's (broker.status_topic) */
};

/* What the rest of the relay knows at the moment of a sample. */
struct stats_input {
	int64_t now;              /* monotonic ms */
	pg_time_t wall;           /* the wall clock, as PostgreSQL counts time */
	size_t pending;           /* events received and not yet acknowledged */
	pg_time_t oldest_pending; /* the oldest one's commit time; 0: none known */
	lsn_t confirmed;          /* the position the slot was told */
	lsn_t checkpoint_lsn;     /* the checkpoint's commit LSN */
	uint64_t reconnects;      /* sessions lost on either side */
};

/* What one line says. */
struct stats_view {
	uint64_t published;
	double rate; /* this process's acknowledgements a second over the interval */
	uint64_t dead_lettered;
	size_t pending;
	uint64_t lag_bytes; /* the server's WAL position minus the slot's confirmed one */
	int64_t lag_ms;     /* 0 when everything committed is acknowledged */
	lsn_t checkpoint_lsn;
	uint64_t reconnects;
};

/* A process starting at now (monotonic ms): both rate intervals begin here. */
void stats_init(struct stats *s, int64_t now);

/* An event the broker acknowledged. */
void stats_acked(struct stats *s);

/* A WAL position the stream delivered (a keepalive's, a Commit's end; 0 is ignored). */
void stats_wal_end(struct stats *s, lsn_t wal_end);

/* The server's WAL position, asked over SQL. */
void stats_server_wal(struct stats *s, lsn_t lsn);

/* Whether the loop takes from the stream now; once a turn of the loop. */
void stats_reading(struct stats *s, bool reading, int64_t now);

/* True when the stream cannot tell how far the server is: the relay stopped reading, or
 * nothing came, since the last sample. Then ask the server (stats_server_wal) before
 * computing. */
bool stats_wal_unsure(const struct stats *s);

/* The numbers at in->now, the rate over the interval since *since. */
struct stats_view stats_compute(const struct stats *s, const struct stats_mark *since,
                                const struct stats_input *in);

/* A sample was taken at now for *mark (&s->line, &s->status or &s->topic): its next interval
 * begins, and a stalled relay that found nothing unread knows it had everything at now. */
void stats_sampled(struct stats *s, struct stats_mark *mark, int64_t now);

/* Logs the stats line. */
void stats_log(const struct stats_view *v);

/* What the relay is doing, for STATUS=. */
struct stats_state {
	const char *session; /* the PostgreSQL side in a few words */
	bool broker_up;
	bool stopping;
	/* Why a side is not up (what refused, or why it cannot connect), or NULL. Not part of
	 * the state: the renewal every 5 s shows a new reason. */
	const char *pg_trouble, *broker_trouble;
};

/* The one-line summary STATUS= shows. */
void stats_status_text(const struct stats_view *v, const struct stats_state *st, char *out, size_t outlen);

/* The shutdown summary: published in all, still unacknowledged, what the slot was told. */
void stats_summary(const struct stats *s, size_t pending, lsn_t confirmed);

#endif
