#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

void stats_init(struct stats *s, int64_t now)
{
	memset(s, 0, sizeof *s);
	s->complete_at = now;
	s->line.at = s->status.at = s->topic.at = now;
}

void stats_acked(struct stats *s)
{
	s->published++;
	s->acked++;
}

void stats_wal_end(struct stats *s, lsn_t wal_end)
{
	s->heard = true;
	if (wal_end > s->received_wal)
		s->received_wal = wal_end;
	if (wal_end > s->server_wal)
		s->server_wal = wal_end;
}

void stats_server_wal(struct stats *s, lsn_t lsn)
{
	if (lsn > s->server_wal)
		s->server_wal = lsn;
}

void stats_reading(struct stats *s, bool reading, int64_t now)
{
	if (!reading && s->reading)
		s->complete_at = now; /* it read until now */
	s->reading = reading;
	s->stalled |= !reading;
}

bool stats_wal_unsure(const struct stats *s)
{
	return s->stalled || !s->heard;
}

/* The oldest event held, or, while the relay does not read and the server has WAL it has
 * not received, the time since it last had everything: the larger. */
static int64_t lag_ms(const struct stats *s, const struct stats_input *in)
{
	bool held = in->pending && in->oldest_pending && in->wall > in->oldest_pending;
	int64_t held_ms = held ? (in->wall - in->oldest_pending) / 1000 : 0;
	bool unread = !s->reading && s->server_wal > s->received_wal && in->now > s->complete_at;
	int64_t unread_ms = unread ? in->now - s->complete_at : 0;
	return held_ms > unread_ms ? held_ms : unread_ms;
}

struct stats_view stats_compute(const struct stats *s, const struct stats_mark *since,
                                const struct stats_input *in)
{
	struct stats_view v = { 0 };
	double seconds = (double)(in->now - since->at) / 1000.0;
	v.published = s->published;
	v.rate = seconds > 0 ? (double)(s->acked - since->acked) / seconds : 0.0;
	v.dead_lettered = s->dead_lettered;
	v.pending = in->pending;
	v.lag_bytes = s->server_wal > in->confirmed ? s->server_wal - in->confirmed : 0;
	v.lag_ms = lag_ms(s, in);
	v.checkpoint_lsn = in->checkpoint_lsn;
	v.reconnects = in->reconnects;
	return v;
}

void stats_sampled(struct stats *s, struct stats_mark *mark, int64_t now)
{
	mark->acked = s->acked;
	mark->at = now;
	if (!s->reading && s->server_wal <= s->received_wal)
		s->complete_at = now;
	s->stalled = !s->reading;
	s->heard = false;
}

/* The line's numbers as text. */
struct stats_text {
	char published[24], rate[24], dead[24], pending[24], lag_bytes[24], lag_ms[24], reconnects[24];
};

static struct stats_text format_view(const struct stats_view *v)
{
	struct stats_text t;
	snprintf(t.published, sizeof t.published, "%" PRIu64, v->published);
	snprintf(t.rate, sizeof t.rate, "%.1f", v->rate);
	snprintf(t.dead, sizeof t.dead, "%" PRIu64, v->dead_lettered);
	snprintf(t.pending, sizeof t.pending, "%zu", v->pending);
	snprintf(t.lag_bytes, sizeof t.lag_bytes, "%" PRIu64, v->lag_bytes);
	snprintf(t.lag_ms, sizeof t.lag_ms, "%" PRId64, v->lag_ms);
	snprintf(t.reconnects, sizeof t.reconnects, "%" PRIu64, v->reconnects);
	return t;
}

void stats_log(const struct stats_view *v)
{
	struct stats_text t = format_view(v);
	char lsn[LSN_BUFLEN];
	log_info("stats", LOG_NUMBER("published"), t.published, LOG_NUMBER("rate"), t.rate,
	         LOG_NUMBER("dead_lettered"), t.dead, LOG_NUMBER("pending"), t.pending,
	         LOG_NUMBER("lag_bytes"), t.lag_bytes, LOG_NUMBER("lag_ms"), t.lag_ms, "checkpoint_lsn",
	         lsn_format(v->checkpoint_lsn, lsn), LOG_NUMBER("reconnects"), t.reconnects);
}

void stats_status_text(const struct stats_view *v, const struct stats_state *st, char *out, size_t outlen)
{
	struct stats_text t = format_view(v);
	int n = snprintf(
	        out, outlen,
	        "%s%s, broker %s; published %s, %s/s, dead-lettered %s, pending %s, lag %s ms, %s bytes",
	        st->stopping ? "stopping, " : "", st->session, st->broker_up ? "connected" : "disconnected",
	        t.published, t.rate, t.dead, t.pending, t.lag_ms, t.lag_bytes);
	/* What refused, or why a side cannot connect: an operator sees it without the log. */
	if (st->pg_trouble && n >= 0 && (size_t)n < outlen)
		n += snprintf(out + n, outlen - (size_t)n, "; PostgreSQL: %s", st->pg_trouble);
	if (st->broker_trouble && n >= 0 && (size_t)n < outlen)
		snprintf(out + n, outlen - (size_t)n, "; broker: %s", st->broker_trouble);
}

void stats_summary(const struct stats *s, size_t pending, lsn_t confirmed)
{
	char published[24], unacknowledged[24], lsn[LSN_BUFLEN];
	snprintf(published, sizeof published, "%" PRIu64, s->published);
	snprintf(unacknowledged, sizeof unacknowledged, "%zu", pending);
	log_info("stopped", LOG_NUMBER("published_total"), published, LOG_NUMBER("unacknowledged"),
	         unacknowledged, "confirmed_lsn", lsn_format(confirmed, lsn));
}
