#include "relay.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "bookkeeping.h"
#include "delivery.h"
#include "log.h"
#include "mqtt.h"
#include "notify.h"
#include "pgoutput.h"
#include "pgstream.h"
#include "reload.h"
#include "request_table.h"
#include "signals.h"
#include "source.h"
#include "stats.h"
#include "status_topic.h"
#include "txn.h"
#include "typemap.h"
#include "util.h"
#include "dispatch.h"
#include "loop.h"
#include "build_config.h"

/* Quietly while waiting as a standby: it is read again on every attempt, since the active
 * relay moves it on. */
static int load_checkpoint(struct relay *r)
{
	enum log_level level = source_state(r->pg) == SOURCE_STANDBY ? LOG_DEBUG : LOG_INFO;
	int status = bookkeeping_load_checkpoint(source_sql(r->pg), r->cfg->source.slot, &r->saved, level);
	if (status != PG_OK)
		return status;
	r->handled = r->saved.pos.acked;
	r->stats.published = r->saved.published;
	r->delivery = delivery_new((size_t)r->cfg->broker.max_inflight, r->saved.pos);
	return PG_OK;
}

/* Routes, domains, bookkeeping, checkpoint, publication and slot, in that order, then the
 * stream from the newest confirmed position. */
static int open_session(struct relay *r, int64_t now)
{
	const struct config *cfg = r->cfg;
	int status = source_connect(r->pg);
	PGconn *sql = source_sql(r->pg);
	if (status == PG_OK)
		status = catalog_check_routes(sql, cfg, *r->outbox);
	if (status == PG_OK)
		status = catalog_load_domains(sql, r->types);
	if (status == PG_OK)
		status = catalog_ensure_bookkeeping(sql, cfg);
	if (status == PG_OK)
		status = bookkeeping_prepare(sql, cfg);
	if (status == PG_OK && !r->delivery)
		status = load_checkpoint(r);
	/* Before the slot: the snapshot's reads then cover every row the stream will not. */
	if (status == PG_OK && r->saved.pos.confirmed_lsn == LSN_INVALID)
		status = request_table_seed(sql, cfg);
	lsn_t slot_confirmed = LSN_INVALID;
	if (status == PG_OK)
		status = catalog_prepare(sql, cfg, r->saved.pos.confirmed_lsn, &slot_confirmed);
	if (status == PG_OK && r->opts->drain && r->drain.target == LSN_INVALID)
		status = pg_emit_marker(sql, false, DRAIN_MARKER_PREFIX, cfg->source.slot, &r->drain.target);
	if (status != PG_OK)
		return status;
	/* The slot may be ahead of the table (idle advance is confirmed without a checkpoint
	 * write): nothing routed lies in between. */
	delivery_idle_advance(r->delivery, slot_confirmed);
	requests_wake(r->requests); /* unfinished requests resume; a standby's become ours */
	return source_start(r->pg, delivery_safe(r->delivery).confirmed_lsn, now);
}

static void maintain_source(struct relay *r, int64_t now)
{
	if (r->stop.reason != RUNNING || !source_due(r->pg, now))
		return;
	int status = open_session(r, now);
	if (status == PG_OK)
		return;
	if (status == PG_FATAL || status == PG_CONFIG) {
		/* Logged where it was found; the connections close as the relay ends. */
		if (status == PG_CONFIG)
			relay_fail_config(r);
		else
			relay_fail(r);
		return;
	}
	relay_pg_lost(r, status);
	if (status == PG_STANDBY && !r->ready_sent) {
		/* The active relay moves the checkpoint on: read it again when taking over. */
		delivery_free(r->delivery);
		r->delivery = NULL;
	}
}

static void notify_when_ready(struct relay *r)
{
	if (r->ready_sent || !relay_streaming(r) || mqtt_state(r->mqtt) != MQTT_UP)
		return;
	r->ready_sent = true;
	source_mark_started(r->pg);
	mqtt_mark_started(r->mqtt);
	notify_ready("streaming");
	log_info("ready: replication and broker connected, checkpoint loaded");
}

/* ---- bookkeeping -------------------------------------------------------------------- */

static int save_checkpoint(struct relay *r, struct ledger_pos pos)
{
	struct checkpoint_row row = { pos, r->stats.published };
	int status = bookkeeping_save_checkpoint_and_cleanup(source_sql(r->pg), r->cfg->source.slot, &row,
	                                                     r->cleanup);
	if (status == PG_OK)
		r->saved = row;
	return status;
}

static bool checkpoint_behind(const struct relay *r)
{
	return r->delivery && event_pos_after(delivery_safe(r->delivery).acked, r->saved.pos.acked);
}

/* Checkpoint first, then confirm the same position: the slot never moves past an event
 * that is not both acknowledged and recorded in the table. */
static void bookkeeping(struct relay *r, int64_t now)
{
	if (!relay_streaming(r))
		return;
	struct ledger_pos pos = delivery_safe(r->delivery);
	if (checkpoint_behind(r)) {
		if (now < r->checkpoint_at)
			return;
		if (!relay_query_done(r, save_checkpoint(r, pos)))
			return;
		r->checkpoint_at = now + r->cfg->delivery.checkpoint_interval_ms;
	}
	if (source_confirm(r->pg, pos.confirmed_lsn) != PG_OK)
		relay_pg_lost(r, PG_RETRY);
}

/* Requests (doc/design.md §22) work between stream reads, while both sides are up; not in
 * --drain, which ends at a position fixed at start. */
static void carry_out_requests(struct relay *r)
{
	if (!relay_streaming(r) || r->stop.reason != RUNNING || r->opts->drain ||
	    mqtt_state(r->mqtt) != MQTT_UP || !r->delivery)
		return;
	relay_query_done(r,
	                 requests_step(r->requests, source_sql(r->pg), r->cfg, delivery_safe(r->delivery)));
}

/* ---- periodic jobs ------------------------------------------------------------------ */

static uint32_t status_interval(const struct relay *r)
{
	return r->cfg->source.status_interval_ms;
}

static uint32_t heartbeat_interval(const struct relay *r)
{
	return r->cfg->source.heartbeat_interval_ms;
}

static uint32_t stats_interval(const struct relay *r)
{
	return r->cfg->log.stats_interval_ms;
}

/* STATUS= at least every 5 s whatever log.stats_interval says, when a manager listens. */
static uint32_t status_update_interval(const struct relay *r)
{
	(void)r;
	return notify_enabled() ? 5000 : 0;
}

/* A request table outside the publication (one created by an administrator without it) is
 * looked at this often; in it, a new request wakes the relay at once. */
static uint32_t request_poll_interval(const struct relay *r)
{
	(void)r;
	return 10000;
}

static void look_for_requests(struct relay *r, int64_t now)
{
	(void)now;
	requests_wake(r->requests);
}

static uint32_t watchdog_interval(const struct relay *r)
{
	(void)r;
	return notify_watchdog_interval_ms();
}

/* A dropped table leaves the publication without a word in the stream: look for it once a
 * status interval. */
static void check_publication(struct relay *r, int64_t now)
{
	(void)now;
	if (!relay_streaming(r) || r->stop.reason != RUNNING)
		return;
	relay_query_done(r, catalog_check_publication(source_sql(r->pg), r->cfg));
}

/* doc/design.md §2.6, §17: a transaction of our own gives the slot a position to advance to
 * when routed tables are idle, and lets the server release the WAL behind it; the stream
 * never publishes it. */
static void heartbeat(struct relay *r, int64_t now)
{
	(void)now;
	if (!relay_streaming(r) || r->stop.reason != RUNNING)
		return;
	lsn_t lsn;
	relay_query_done(
	        r, pg_emit_marker(source_sql(r->pg), true, HEARTBEAT_PREFIX, r->cfg->source.slot, &lsn));
}

/* doc/design.md §22.3: dead letters past delivery.dead_letter_retention go once soon after
 * streaming starts, then hourly. A run takes a few batches only, so that a long-neglected
 * table does not hold the loop up; the next run follows soon while some are left. */
#define RETENTION_BATCHES_PER_RUN 3
#define RETENTION_PERIOD_MS 3600000
#define RETENTION_SOON_MS 1000

static uint32_t retention_interval(const struct relay *r)
{
	if (!r->cfg->delivery.dead_letter_retention_ms || r->retention.off)
		return 0;
	return r->retention.caught_up ? RETENTION_PERIOD_MS : RETENTION_SOON_MS;
}

static void log_expired(uint64_t deleted)
{
	char count[24];
	snprintf(count, sizeof count, "%" PRIu64, deleted);
	log_info("dead letters past delivery.dead_letter_retention deleted", LOG_NUMBER("deleted"), count);
}

/* A table that refuses is logged once and left alone: housekeeping is no reason to stop
 * publishing, nor to drop the session every hour. */
static void expire_dead_letters(struct relay *r, int64_t now)
{
	(void)now;
	if (!relay_streaming(r) || r->stop.reason != RUNNING)
		return;
	uint64_t deleted;
	bool more;
	int status = bookkeeping_expire_dead_letters(source_sql(r->pg), r->cfg, RETENTION_BATCHES_PER_RUN,
	                                             &deleted, &more);
	if (deleted)
		log_expired(deleted);
	if (status == PG_REFUSED)
		pg_report_refusal(LOG_ERROR, "dead letters cannot be deleted; retention is off until restart",
		                  NULL, NULL);
	if (status == PG_FATAL)
		log_error("dead-letter retention is off until the relay restarts");
	r->retention.off = status == PG_REFUSED || status == PG_FATAL;
	if (status == PG_RETRY)
		relay_pg_lost(r, status);
	r->retention.caught_up = status == PG_OK && !more;
}

/* ---- stats and STATUS= (doc/design.md §8) ------------------------------------------ */

/* Asks the server how far its WAL is, once a sample. A lost connection is a lost session;
 * a refusal (logged) leaves the stream's positions for the rest of the process. */
static void ask_server_wal(struct relay *r)
{
	lsn_t lsn;
	int status = catalog_wal_position(source_sql(r->pg), &lsn);
	if (status == PG_OK)
		stats_server_wal(&r->stats, lsn);
	else if (status == PG_FATAL)
		r->ask_wal = false;
	else
		relay_pg_lost(r, status);
}

/* The numbers now, the rate since *mark; the server is asked only when the stream cannot
 * tell how far it is. */
static struct stats_view take_stats(struct relay *r, struct stats_mark *mark, int64_t now)
{
	if (relay_streaming(r) && r->ask_wal && stats_wal_unsure(&r->stats))
		ask_server_wal(r);
	struct stats_input in = {
		.now = now,
		.wall = pg_now(),
		.pending = dispatch_pending(r),
		.oldest_pending = dispatch_oldest_pending(r),
		.confirmed = source_confirmed(r->pg),
		.checkpoint_lsn = r->saved.pos.acked.commit_lsn,
		.reconnects = source_reconnects(r->pg) + mqtt_reconnects(r->mqtt),
	};
	struct stats_view v = stats_compute(&r->stats, mark, &in);
	stats_sampled(&r->stats, mark, now);
	return v;
}

static void log_stats(struct relay *r, int64_t now)
{
	struct stats_view v = take_stats(r, &r->stats.line, now);
	stats_log(&v);
}

static struct stats_state current_state(const struct relay *r)
{
	static const char *const session[SOURCE_STATE_COUNT] = {
		[SOURCE_DOWN] = "PostgreSQL disconnected",
		[SOURCE_STANDBY] = "standby (the slot is in use)",
		[SOURCE_STREAMING] = "streaming",
		[SOURCE_REFUSED] = "PostgreSQL refused the relay",
	};
	return (struct stats_state){ .session = session[source_state(r->pg)],
		                     .broker_up = mqtt_state(r->mqtt) == MQTT_UP,
		                     .stopping = r->stop.reason != RUNNING,
		                     .pg_trouble = source_trouble(r->pg),
		                     .broker_trouble = mqtt_trouble(r->mqtt) };
}

static bool same_state(const struct stats_state *a, const struct stats_state *b)
{
	return a->session == b->session && a->broker_up == b->broker_up && a->stopping == b->stopping;
}

static void update_status(struct relay *r, int64_t now)
{
	char text[1024];
	struct stats_view v = take_stats(r, &r->stats.status, now);
	r->shown = current_state(r);
	stats_status_text(&v, &r->shown, text, sizeof text);
	notify_status(text);
}

/* STATUS= follows every change of state at once; the job renews it in between. */
static void follow_state(struct relay *r, int64_t now)
{
	struct stats_state st = current_state(r);
	if (notify_enabled() && !same_state(&st, &r->shown))
		update_status(r, now);
}

/* ---- the status topic (doc/design.md §8) ------------------------------------------- */

/* Renewed every log.stats_interval, or every minute when the stats line is off. */
#define STATUS_TOPIC_RENEWAL_MS 60000

static uint32_t status_topic_interval(const struct relay *r)
{
	if (!r->cfg->broker.status_topic)
		return 0;
	return stats_interval(r) ? stats_interval(r) : STATUS_TOPIC_RENEWAL_MS;
}

/* state, with the stats line's figures of the moment. */
static void say_status(struct relay *r, const char *state, int64_t now)
{
	struct stats_view v = take_stats(r, &r->stats.topic, now);
	struct status_topic_who who = { r->cfg->broker.client_id, r->cfg->source.slot, OUTBOX_RELAY_VERSION };
	struct buf msg = BUF_INIT;
	status_topic_report(&msg, state, &who, pg_now(), &v);
	mqtt_publish_status(r->mqtt, msg.data, msg.len);
	buf_finish(&msg);
}

/* "online" once the relay has started (a standby never connects), on every new connection
 * and then at each renewal, until it stops. */
static void say_online(struct relay *r, int64_t now)
{
	if (r->ready_sent && r->stop.reason == RUNNING && mqtt_state(r->mqtt) == MQTT_UP)
		say_status(r, "online", now);
}

/* "stopped" after a clean stop. After a failure, "offline": the DISCONNECT that follows keeps
 * the broker from publishing the Will, which would have said so. */
static void say_goodbye(struct relay *r)
{
	if (mqtt_state(r->mqtt) != MQTT_UP)
		return; /* the Will said "offline" when the connection was lost */
	if (r->stop.reason != STOP_FATAL) {
		say_status(r, "stopped", monotonic_ms());
		return;
	}
	struct buf msg = BUF_INIT;
	status_topic_offline(&msg, r->cfg->broker.client_id);
	mqtt_publish_status(r->mqtt, msg.data, msg.len);
	buf_finish(&msg);
}

/* The watchdog proves the loop turns, not that both sides are up: a relay waiting out an
 * outage is healthy. */
static void watchdog(struct relay *r, int64_t now)
{
	(void)r;
	(void)now;
	notify_watchdog();
}

struct job {
	void (*run)(struct relay *r, int64_t now);
	uint32_t (*interval_ms)(const struct relay *r); /* 0: off */
};

static const struct job jobs[] = {
	{ check_publication, status_interval },       /* doc/design.md §19 */
	{ heartbeat, heartbeat_interval },            /* §17 */
	{ log_stats, stats_interval },                /* §8 */
	{ update_status, status_update_interval },    /* §8 */
	{ watchdog, watchdog_interval },              /* §8 */
	{ look_for_requests, request_poll_interval }, /* §22 */
	{ expire_dead_letters, retention_interval },  /* §22.3 */
	{ say_online, status_topic_interval },        /* §8 */
};
#define JOB_COUNT (sizeof jobs / sizeof jobs[0])
_Static_assert(JOB_COUNT <= JOBS_MAX, "raise JOBS_MAX");

/* A request the stream brought, which the first look may have missed. */
static void look_again_for_requests(struct relay *r, int64_t now)
{
	if (!r->requests_again_at || now < r->requests_again_at)
		return;
	r->requests_again_at = 0;
	requests_wake(r->requests);
}

/* Runs the jobs that are due. A job is armed (not run) the first time it is seen, and again
 * when its interval was off. */
static void run_jobs(struct relay *r, int64_t now)
{
	for (size_t i = 0; i < JOB_COUNT; i++) {
		uint32_t interval = jobs[i].interval_ms(r);
		if (!interval) {
			r->job_at[i] = 0;
		} else if (!r->job_at[i]) {
			r->job_at[i] = now + interval;
		} else if (now >= r->job_at[i]) {
			jobs[i].run(r, now);
			r->job_at[i] = now + interval;
		}
	}
}

/* ---- stopping ----------------------------------------------------------------------- */

static void request_stop(struct relay *r, const char *why)
{
	if (r->stop.reason == STOP_SIGNAL) {
		log_warn("second stop request: stopping without waiting for acknowledgements");
		r->stop.deadline = monotonic_ms();
		return;
	}
	if (r->stop.reason != RUNNING)
		return;
	r->stop.reason = STOP_SIGNAL;
	r->stop.deadline = monotonic_ms() + r->cfg->delivery.drain_timeout_ms;
	log_info("stopping: waiting for in-flight acknowledgements", "signal", why);
}

static bool flushed(const struct relay *r)
{
	return !r->delivery || delivery_inflight(r->delivery) == 0;
}

static bool finished(struct relay *r, int64_t now)
{
	if (r->stop.reason == STOP_FATAL)
		return true;
	if (r->drain.reached && flushed(r) && !r->ev_pending) {
		r->stop.reason = STOP_DRAINED;
		return true;
	}
	if (r->stop.reason == STOP_SIGNAL) {
		if (!relay_streaming(r))
			return true; /* nothing to checkpoint into until PostgreSQL is back */
		return (flushed(r) && !requests_placing(r->requests)) || now >= r->stop.deadline;
	}
	return false;
}

/* Writes the final checkpoint and confirms it, so that a restart publishes nothing twice. */
static void final_bookkeeping(struct relay *r)
{
	if (!relay_streaming(r) || !r->delivery)
		return;
	struct ledger_pos pos = delivery_safe(r->delivery);
	bool changed = event_pos_after(pos.acked, r->saved.pos.acked) ||
	               pos.confirmed_lsn != r->saved.pos.confirmed_lsn;
	if (changed && save_checkpoint(r, pos) != PG_OK) {
		log_warn("final checkpoint not written; acknowledged events may be published again");
		source_stop(r->pg, source_confirmed(r->pg));
		return;
	}
	if (requests_record_progress(r->requests, source_sql(r->pg), r->cfg, pos) != PG_OK)
		log_warn("a request's progress is not written; its last chunks are published again");
	source_stop(r->pg, pos.confirmed_lsn);
}

/* ---- signals ------------------------------------------------------------------------ */

static void reload(struct relay *r)
{
	bool sql_lost;
	if (reload_run(r->reload, source_sql(r->pg), &sql_lost)) {
		memset(r->job_at, 0, sizeof r->job_at); /* re-armed with the new intervals */
		mqtt_routes_changed(r->mqtt);
	}
	if (sql_lost)
		relay_pg_lost(r, PG_RETRY);
}

static void handle_signals(struct relay *r)
{
	int signo;
	while ((signo = signals_next(r->sigfd)) != 0) {
		if (signo == SIGTERM || signo == SIGINT)
			request_stop(r, signo == SIGTERM ? "SIGTERM" : "SIGINT");
		else if (signo == SIGUSR1)
			log_stats(r, monotonic_ms());
		else if (signo == SIGHUP)
			reload(r);
	}
}

/* ---- the loop ----------------------------------------------------------------------- */

/* The broker is connected (again) only while the stream is up: with PostgreSQL away there
 * is nothing to publish. */
static bool broker_wanted(const struct relay *r)
{
	return relay_streaming(r) && r->stop.reason == RUNNING;
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static int poll_timeout(const struct relay *r, int64_t now)
{
	int64_t at = earliest(source_deadline(r->pg), mqtt_deadline(r->mqtt, broker_wanted(r)));
	for (size_t i = 0; i < JOB_COUNT; i++)
		at = earliest(at, r->job_at[i]);
	if (checkpoint_behind(r))
		at = earliest(at, r->checkpoint_at);
	at = earliest(at, r->requests_again_at);
	if (r->stop.reason == STOP_SIGNAL)
		at = earliest(at, r->stop.deadline);
	/* The stream reached a chunk's high mark in this step: place it without waiting. */
	if (dispatch_can_place(r))
		at = now;
	at = earliest(at, now + 1000);
	return at <= now ? 0 : (int)(at - now);
}

enum { FD_SIGNAL, FD_PG, FD_MQTT, NFDS };

/* What the MQTT client read or wrote: acknowledgements first, then a new session (which
 * may set events aside for publishing again). */
static void mqtt_io(struct relay *r, short revents)
{
	mqtt_handle_io(r->mqtt, revents & (POLLIN | POLLERR | POLLHUP), revents & POLLOUT);
	if (mqtt_state(r->mqtt) == MQTT_DENIED) {
		relay_fail_config(r); /* mqtt.c said why */
		return;
	}
	dispatch_take_acks(r);
	dispatch_session_started(r, mqtt_take_session(r->mqtt));
	notify_when_ready(r);
}

static void pg_io(struct relay *r, short revents)
{
	struct pgstream *stream = source_stream(r->pg);
	if (stream && revents & (POLLIN | POLLERR | POLLHUP) && pgstream_consume(stream) != PG_OK)
		relay_pg_lost(r, PG_RETRY);
	stream = source_stream(r->pg);
	bool pending;
	if (stream && revents & POLLOUT && pgstream_flush(stream, &pending) != PG_OK)
		relay_pg_lost(r, PG_RETRY);
}

static void wait_and_dispatch(struct relay *r)
{
	struct pollfd fds[NFDS] = {
		[FD_SIGNAL] = { .fd = r->sigfd, .events = POLLIN },
		[FD_PG] = { .fd = -1 },
		[FD_MQTT] = { .fd = mqtt_socket(r->mqtt), .events = POLLIN },
	};
	bool pending = false;
	if (source_stream(r->pg) && pgstream_flush(source_stream(r->pg), &pending) != PG_OK)
		relay_pg_lost(r, PG_RETRY);
	if (source_stream(r->pg)) {
		fds[FD_PG].fd = pgstream_socket(source_stream(r->pg));
		fds[FD_PG].events = (short)((dispatch_can_receive(r) ? POLLIN : 0) | (pending ? POLLOUT : 0));
	}
	if (mqtt_want_write(r->mqtt))
		fds[FD_MQTT].events |= POLLOUT;

	if (poll(fds, NFDS, poll_timeout(r, monotonic_ms())) < 0 && errno != EINTR) {
		log_error("poll failed", "error", strerror(errno));
		relay_fail(r);
		return;
	}
	if (fds[FD_SIGNAL].revents)
		handle_signals(r);
	mqtt_io(r, fds[FD_MQTT].revents);
	pg_io(r, fds[FD_PG].revents);
}

static void step(struct relay *r)
{
	int64_t now = monotonic_ms();
	maintain_source(r, now);
	mqtt_maintain(r->mqtt, now, broker_wanted(r));
	dispatch_publish_pending(r);
	dispatch_receive(r);
	dispatch_take_acks(r); /* QoS 0 messages are acknowledged as they are written */
	now = monotonic_ms();
	bookkeeping(r, now);
	carry_out_requests(r);
	bool reading = dispatch_can_receive(r);
	stats_reading(&r->stats, reading, now);
	if (source_tick(r->pg, now, reading) != PG_OK)
		relay_pg_lost(r, PG_RETRY);
	run_jobs(r, now);
	look_again_for_requests(r, now);
	follow_state(r, now);
	if (mqtt_status_due(r->mqtt))
		say_online(r, now);
}

static int relay_init(struct relay *r, struct config *cfg, struct outbox **outbox,
                      const struct relay_options *opts)
{
	memset(r, 0, sizeof *r);
	r->cfg = cfg;
	r->outbox = outbox;
	r->opts = opts;
	r->handled.index = -1;
	r->ask_wal = true;
	stats_init(&r->stats, monotonic_ms());
	event_init(&r->ev);
	event_init(&r->ev_next);
	srandom((unsigned)(getpid() ^ monotonic_ms()));
	r->sigfd = signals_open();
	r->decoder = pgo_decoder_new();
	r->types = typemap_new();
	r->requests = requests_new();
	outbox_use_types(*outbox, r->types);
	r->reload = reload_new(cfg, outbox, r->types, opts->log_level_fixed);
	r->pg = source_new(cfg);
	r->mqtt = mqtt_new(cfg);
	r->cleanup = cleanup_new();
	if (r->sigfd < 0 || !r->mqtt) {
		log_error("cannot initialise", "error", strerror(errno));
		return -1;
	}
	return 0;
}

static void relay_finish(struct relay *r)
{
	source_free(r->pg);
	mqtt_free(r->mqtt);
	delivery_free(r->delivery);
	requests_free(r->requests);
	cleanup_free(r->cleanup);
	pgo_decoder_free(r->decoder);
	event_finish(&r->ev);
	event_finish(&r->ev_next);
	reload_free(r->reload);
	typemap_free(r->types);
	if (r->sigfd >= 0)
		close(r->sigfd);
}

int relay_run(struct config *cfg, struct outbox **outbox, const struct relay_options *opts)
{
	struct relay r;
	if (relay_init(&r, cfg, outbox, opts) < 0) {
		relay_finish(&r);
		return EXIT_FATAL;
	}
	for (;;) {
		step(&r);
		if (finished(&r, monotonic_ms()))
			break;
		wait_and_dispatch(&r);
	}
	notify_stopping();
	if (r.stop.reason != STOP_FATAL)
		final_bookkeeping(&r);
	say_goodbye(&r);
	mqtt_disconnect(r.mqtt, 2000, flushed(&r));
	stats_summary(&r.stats, r.delivery ? delivery_inflight(r.delivery) : 0, source_confirmed(r.pg));
	int status = r.stop.reason != STOP_FATAL ? EXIT_CLEAN : r.stop.exit_status;
	relay_finish(&r);
	return status;
}
