#include "source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "backoff.h"
#include "log.h"
#include "util.h"

#define STANDBY_RETRY_MS 1000 /* how often a standby asks for the slot */
/* Periodic status updates ask the server to answer; a server silent this many intervals
 * while the relay reads is taken for a frozen peer or a dead path, and dropped. */
#define SILENT_INTERVALS 3

struct source {
	const struct config *cfg;
	enum source_state state;
	PGconn *sql;
	struct pgstream *stream;
	struct backoff backoff;
	bool backoff_pending_reset; /* reset it once the stream carries changes */
	int64_t retry_at;           /* not streaming: the next attempt */
	int64_t heard_at;           /* streaming: the stream's last data */
	int64_t status_at;          /* streaming: the next periodic status update */
	lsn_t confirmed;            /* what the slot was last told */
	uint64_t reconnects;
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
	return s->state != SOURCE_STREAMING && now >= s->retry_at;
}

int source_connect(struct source *s)
{
	if (!s->sql)
		s->sql = pg_connect(s->cfg, false, "bookkeeping");
	return s->sql ? PG_OK : PG_RETRY;
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
	/* Not yet: a stream that fails at once (say, on its first change) must not be retried
	 * at the shortest delay for ever. */
	s->backoff_pending_reset = true;
	s->heard_at = now;
	s->status_at = now + s->cfg->source.status_interval_ms;
	if (s->confirmed < start)
		s->confirmed = start;
	return PG_OK;
}

struct pgstream *source_stream(const struct source *s)
{
	return s->state == SOURCE_STREAMING ? s->stream : NULL;
}

static void schedule_retry(struct source *s, int64_t now)
{
	uint32_t delay = backoff_next(&s->backoff, (uint32_t)random());
	if (s->state == SOURCE_STANDBY && delay > STANDBY_RETRY_MS)
		delay = STANDBY_RETRY_MS; /* take over soon after the slot is freed */
	char text[16];
	snprintf(text, sizeof text, "%" PRIu32 "ms", delay);
	log_write(s->state == SOURCE_STANDBY ? LOG_DEBUG : LOG_INFO, "PostgreSQL unavailable, retrying", "in",
	          text, (const char *)NULL);
	s->retry_at = now + delay;
}

void source_close(struct source *s, int status, int64_t now)
{
	close_connections(s);
	s->reconnects++;
	if (status == PG_STANDBY && s->state != SOURCE_STANDBY)
		log_info("the slot is in use by another process: waiting as a standby until it is free",
		         "slot", s->cfg->source.slot);
	s->state = status == PG_STANDBY ? SOURCE_STANDBY : SOURCE_DOWN;
	schedule_retry(s, now);
}

void source_heard(struct source *s, int64_t now, bool carried_changes)
{
	s->heard_at = now;
	if (carried_changes && s->backoff_pending_reset) {
		backoff_reset(&s->backoff);
		s->backoff_pending_reset = false;
	}
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
