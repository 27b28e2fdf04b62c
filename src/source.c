#include "source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define STANDBY_RETRY_MS 1000     /* how often a standby asks for the slot */
#define STANDBY_REMINDER_MS 60000 /* how often a standby says it still waits */
/* Periodic status updates ask the server to answer; a server silent this many intervals
 * while the relay reads is taken for a frozen peer or a dead path, and dropped. */
#define SILENT_INTERVALS 3

struct source {
	const struct config *cfg;
	enum source_state state;
	PGconn *sql;
	struct pgstream *stream;
	struct backoff backoff;
	bool started;             /* the relay has started: refusals are retried */
	int64_t retry_at;         /* not streaming: the next attempt */
	int64_t streaming_since;  /* streaming: since when */
	lsn_t confirmed_at_start; /* streaming: what the slot had been told when it began */
	int64_t heard_at;         /* streaming: the stream's last data */
	int64_t status_at;        /* streaming: the next periodic status update */
	lsn_t confirmed;          /* what the slot was last told */
	int64_t standby_since;    /* standby: since when, and when it last said so */
	int64_t standby_said_at;
	uint64_t reconnects;
	char trouble[700]; /* not streaming: why, for source_trouble */
};

struct source *source_new(const struct config *cfg)
{
	struct source *s = xcalloc(1, sizeof *s);
	s->cfg = cfg;
	s->state = SOURCE_DOWN;
	backoff_init(&s->backoff, cfg->source.reconnect.min_ms, cfg->source.reconnect.max_ms);
	pg_set_answer_timeout((int)((int64_t)SILENT_INTERVALS * cfg->source.status_interval_ms > INT32_MAX
	                                    ? INT32_MAX
	                                    : (int64_t)SILENT_INTERVALS * cfg->source.status_interval_ms));
	return s;
}

static void close_connections(struct source *s)
{
	pgstream_free(s->stream);
	s->stream = NULL;
	PQfinish(s->sql);
	s->sql = NULL;
}

void source_free(struct source *s)
{
	if (!s)
		return;
	close_connections(s);
	free(s);
}

enum source_state source_state(const struct source *s)
{
	return s->state;
}

bool source_due(const struct source *s, int64_t now)
{
	return (s->state == SOURCE_DOWN || s->state == SOURCE_STANDBY) && now >= s->retry_at;
}

int source_connect(struct source *s)
{
	int status = PG_OK;
	if (!s->sql)
		s->sql = pg_connect(s->cfg, false, "bookkeeping", &status);
	return status;
}

PGconn *source_sql(const struct source *s)
{
	return s->sql;
}

int source_start(struct source *s, lsn_t start, int64_t now)
{
	int status;
	s->stream = pgstream_start(s->cfg, start, &status);
	if (status != PG_OK)
		return status;
	if (s->state == SOURCE_STANDBY)
		log_info("the slot is free: taking over", "slot", s->cfg->source.slot);
	s->state = SOURCE_STREAMING;
	s->trouble[0] = '\0';
	s->streaming_since = s->heard_at = now;
	s->status_at = now + s->cfg->source.status_interval_ms;
	if (s->confirmed < start)
		s->confirmed = start;
	s->confirmed_at_start = s->confirmed;
	return PG_OK;
}

struct pgstream *source_stream(const struct source *s)
{
	return s->state == SOURCE_STREAMING ? s->stream : NULL;
}

/* Healthy: the session told the slot something new, or streamed for a status interval. A
 * session that fails sooner, having only received (the same transaction again, say, whose
 * dead letter the database cannot write), is no evidence that the next one will do better. */
static bool was_healthy(const struct source *s, int64_t now)
{
	return s->state == SOURCE_STREAMING &&
	       (s->confirmed > s->confirmed_at_start ||
	        now - s->streaming_since >= (int64_t)s->cfg->source.status_interval_ms);
}

static void format_ms(char *text, size_t size, int64_t ms)
{
	snprintf(text, size, "%" PRId64 "ms", ms);
}

/* The slot streams to another process: asking again every second is the standby's life, said
 * once, then at most once a minute. The backoff starts afresh: the server is there. */
static void wait_as_standby(struct source *s, int64_t now)
{
	if (s->state != SOURCE_STANDBY) {
		log_info("the slot is in use by another process: waiting as a standby until it is free",
		         "slot", s->cfg->source.slot);
		s->standby_since = s->standby_said_at = now;
	} else if (now - s->standby_said_at >= STANDBY_REMINDER_MS) {
		char waited[24];
		format_ms(waited, sizeof waited, now - s->standby_since);
		log_info("still waiting as a standby: the slot is in use by another process", "slot",
		         s->cfg->source.slot, "waiting_for", waited);
		s->standby_said_at = now;
	}
	s->state = SOURCE_STANDBY;
	snprintf(s->trouble, sizeof s->trouble, "standby: slot %s is in use by another process",
	         s->cfg->source.slot);
	backoff_reset(&s->backoff);
	s->retry_at = now + STANDBY_RETRY_MS;
}

void source_close(struct source *s, int status, int64_t now)
{
	bool healthy = was_healthy(s, now);
	close_connections(s);
	s->reconnects++;
	if (status == PG_STANDBY) {
		wait_as_standby(s, now);
		return;
	}
	if (status == PG_REFUSED && !s->started) {
		pg_report_refusal(LOG_ERROR, "PostgreSQL refused the relay before its first start; stopping",
		                  NULL, NULL);
		s->state = SOURCE_REFUSED;
		snprintf(s->trouble, sizeof s->trouble, "%s", pg_refusal_summary());
		return;
	}
	s->state = SOURCE_DOWN;
	uint32_t delay = backoff_after_session(&s->backoff, healthy, (uint32_t)random());
	s->retry_at = now + delay;
	char in[16];
	format_ms(in, sizeof in, delay);
	if (status == PG_REFUSED) {
		/* Never "unavailable": the server answered, and said no. */
		pg_report_refusal(LOG_ERROR, "PostgreSQL refused the relay; retrying", "in", in);
		snprintf(s->trouble, sizeof s->trouble, "%s", pg_refusal_summary());
	} else {
		log_info("PostgreSQL unavailable, retrying", "in", in);
		snprintf(s->trouble, sizeof s->trouble, "PostgreSQL unavailable");
	}
}

void source_mark_started(struct source *s)
{
	s->started = true;
}

const char *source_trouble(const struct source *s)
{
	if (s->state == SOURCE_STREAMING)
		return NULL;
	return s->trouble[0] ? s->trouble : "PostgreSQL not connected yet";
}

void source_heard(struct source *s, int64_t now)
{
	s->heard_at = now;
}

static int send_status(struct source *s, bool reply_requested)
{
	if (pgstream_send_status(s->stream, s->confirmed, reply_requested) == PG_OK)
		return PG_OK;
	return PG_RETRY;
}

int source_confirm(struct source *s, lsn_t lsn)
{
	if (s->state != SOURCE_STREAMING || lsn <= s->confirmed)
		return PG_OK;
	s->confirmed = lsn;
	return send_status(s, false);
}

int source_answer(struct source *s)
{
	return s->state == SOURCE_STREAMING ? send_status(s, false) : PG_OK;
}

lsn_t source_confirmed(const struct source *s)
{
	return s->confirmed;
}

static int64_t silence_limit(const struct source *s)
{
	return (int64_t)SILENT_INTERVALS * s->cfg->source.status_interval_ms;
}

int source_tick(struct source *s, int64_t now, bool listening)
{
	if (s->state != SOURCE_STREAMING)
		return PG_OK;
	/* Silence only counts while the relay listens: back-pressure is not the server's fault. */
	if (!listening)
		s->heard_at = now;
	if (now - s->heard_at > silence_limit(s)) {
		char silent[24];
		snprintf(silent, sizeof silent, "%" PRId64 "ms", now - s->heard_at);
		log_warn("PostgreSQL stopped answering on the replication connection; reconnecting",
		         "silent_for", silent);
		return PG_RETRY;
	}
	if (now < s->status_at)
		return PG_OK;
	s->status_at = now + s->cfg->source.status_interval_ms;
	return send_status(s, true);
}

int64_t source_deadline(const struct source *s)
{
	if (s->state == SOURCE_REFUSED)
		return 0; /* nothing more to do */
	if (s->state != SOURCE_STREAMING)
		return s->retry_at;
	int64_t silent_at = s->heard_at + silence_limit(s) + 1;
	return s->status_at < silent_at ? s->status_at : silent_at;
}

uint64_t source_reconnects(const struct source *s)
{
	return s->reconnects;
}

void source_stop(struct source *s, lsn_t lsn)
{
	if (s->state == SOURCE_STREAMING && lsn > s->confirmed)
		s->confirmed = lsn;
	if (s->stream)
		pgstream_stop(s->stream, s->confirmed);
	s->stream = NULL;
	close_connections(s);
	s->state = SOURCE_DOWN;
}
