#include "stats.h"

#include <inttypes.h>
#include <stdio.h>

#include "log.h"
#include "notify.h"

void stats_acked(struct stats *s, pg_time_t commit_time)
{
	s->published++;
	s->last_acked_commit_time = commit_time;
}

void stats_wal_end(struct stats *s, lsn_t wal_end)
{
	if (wal_end > s->server_wal_end)
		s->server_wal_end = wal_end;
}

struct stats_view stats_compute(const struct stats *s, int64_t now, pg_time_t pg_now_us, size_t inflight,
                                lsn_t confirmed, lsn_t checkpoint_lsn, uint64_t reconnects)
{
	struct stats_view v = { 0 };
	double seconds = s->line_at ? (double)(now - s->line_at) / 1000.0 : 0.0;
	int64_t lag = s->last_acked_commit_time ? (pg_now_us - s->last_acked_commit_time) / 1000 : 0;
	v.published = s->published;
	v.rate = seconds > 0 ? (double)(s->published - s->line_published) / seconds : 0.0;
	v.dead_lettered = s->dead_lettered;
	v.inflight = inflight;
	v.lag_bytes = s->server_wal_end > confirmed ? s->server_wal_end - confirmed : 0;
	v.lag_ms = lag > 0 ? lag : 0;
	v.checkpoint_lsn = checkpoint_lsn;
	v.reconnects = reconnects;
	return v;
}

void stats_report(struct stats *s, const struct stats_view *v, int64_t now)
{
	char published[24], rate[24], dead[24], inflight[24], lag_bytes[24], lag_ms[24], lsn[LSN_BUFLEN],
	        reconnects[24], status[256];
	snprintf(published, sizeof published, "%" PRIu64, v->published);
	snprintf(rate, sizeof rate, "%.1f", v->rate);
	snprintf(dead, sizeof dead, "%" PRIu64, v->dead_lettered);
	snprintf(inflight, sizeof inflight, "%zu", v->inflight);
	snprintf(lag_bytes, sizeof lag_bytes, "%" PRIu64, v->lag_bytes);
	snprintf(lag_ms, sizeof lag_ms, "%" PRId64, v->lag_ms);
	snprintf(reconnects, sizeof reconnects, "%" PRIu64, v->reconnects);
	snprintf(status, sizeof status, "published %s, %s/s, dead-lettered %s, in flight %s, lag %s ms",
	         published, rate, dead, inflight, lag_ms);
	notify_status(status);
	log_info("stats", LOG_NUMBER("published"), published, LOG_NUMBER("rate"), rate,
	         LOG_NUMBER("dead_lettered"), dead, LOG_NUMBER("inflight"), inflight, LOG_NUMBER("lag_bytes"),
	         lag_bytes, LOG_NUMBER("lag_ms"), lag_ms, "checkpoint_lsn",
	         lsn_format(v->checkpoint_lsn, lsn), LOG_NUMBER("reconnects"), reconnects);
	s->line_published = s->published;
	s->line_at = now;
}

void stats_summary(const struct stats *s, size_t inflight, lsn_t confirmed)
{
	char published[24], unacknowledged[24], lsn[LSN_BUFLEN];
	snprintf(published, sizeof published, "%" PRIu64, s->published);
	snprintf(unacknowledged, sizeof unacknowledged, "%zu", inflight);
	log_info("stopped", LOG_NUMBER("published_total"), published, LOG_NUMBER("unacknowledged"),
	         unacknowledged, "confirmed_lsn", lsn_format(confirmed, lsn));
}
