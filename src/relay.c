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
#include "signals.h"
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

	struct txn txn;  /* the transaction being received */
	struct event ev; /* decoded, not yet taken by the MQTT client */
	bool ev_pending;
	/* Newest event published or set aside: a replay skips everything up to here. */
	struct event_pos handled;
	struct checkpoint_row saved; /* what the checkpoint table holds */
	int64_t checkpoint_at;       /* the earliest next write */

	lsn_t drain_target; /* --drain: the marker emitted at start */
	bool drain_reached;
	enum stop_reason stop;
	int exit_status; /* with STOP_FATAL */
	int64_t stop_deadline;
	/* READY=1 told to the service manager: the relay has started. Before, a refusal by
	 * either server ends the process with status 78; after, it is retried. */
	bool ready_sent;

	struct stats stats;
	struct stats_state shown; /* what STATUS= last said */
	bool ask_wal;             /* the server answers for its WAL position */
	int64_t job_at[JOBS_MAX]; /* per job: when it runs next; 0: not armed */
	int sigfd;
};

static void fail(struct relay *r)
{
	r->stop = STOP_FATAL;
	r->exit_status = EXIT_FATAL;
}

/* The configuration does not fit what the servers have or allow (logged). */
static void fail_config(struct relay *r)
{
	r->stop = STOP_FATAL;
	r->exit_status = EXIT_CONFIG;
}

static bool streaming(const struct relay *r)
{
	return source_state(r->pg) == SOURCE_STREAMING;
}

/* ---- the PostgreSQL session --------------------------------------------------------- */

/* The session failed: what was received but not published is received again. A refusal
 * before the first start ends the process (source_close reported it). */
static void pg_lost(struct relay *r, int status)
{
	source_close(r->pg, status, monotonic_ms());
	txn_end(&r->txn);
	r->ev_pending = false;
	if (source_state(r->pg) == SOURCE_REFUSED)
		fail_config(r);
}

/* What a query's status means for the session: go on, stop for good, or reconnect. Returns
 * true on PG_OK. */
static bool query_done(struct relay *r, int status)
{
	if (status == PG_FATAL)
		fail(r);
	else if (status != PG_OK)
		pg_lost(r, status);
	return status == PG_OK;
}

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
	lsn_t slot_confirmed = LSN_INVALID;
	if (status == PG_OK)
		status = catalog_prepare(sql, cfg, r->saved.pos.confirmed_lsn, &slot_confirmed);
	if (status == PG_OK && r->opts->drain && r->drain_target == LSN_INVALID)
		status = pg_emit_marker(sql, false, DRAIN_MARKER_PREFIX, cfg->source.slot, &r->drain_target);
	if (status != PG_OK)
		return status;
	/* The slot may be ahead of the table (idle advance is confirmed without a checkpoint
	 * write): nothing routed lies in between. */
	delivery_idle_advance(r->delivery, slot_confirmed);
	return source_start(r->pg, delivery_safe(r->delivery).confirmed_lsn, now);
}

static void maintain_source(struct relay *r, int64_t now)
{
	if (r->stop != RUNNING || !source_due(r->pg, now))
		return;
	int status = open_session(r, now);
	if (status == PG_OK)
		return;
	if (status == PG_FATAL || status == PG_CONFIG) {
		/* Logged where it was found; the connections close as the relay ends. */
		if (status == PG_CONFIG)
			fail_config(r);
		else
			fail(r);
		return;
	}
	pg_lost(r, status);
	if (status == PG_STANDBY && !r->ready_sent) {
		/* The active relay moves the checkpoint on: read it again when taking over. */
		delivery_free(r->delivery);
		r->delivery = NULL;
	}
}

/* ---- events that can never be published (doc/design.md §7) -------------------------- */

/* Dead-letters ev, or stops the relay (bookkeeping_reject). Returns its pg_status. */
static int reject(struct relay *r, const struct event *ev, const char *why)
{
	int status = bookkeeping_reject(source_sql(r->pg), r->cfg, ev, why);
	if (status == PG_OK)
		r->stats.dead_lettered++;
	else if (status == PG_FATAL)
		fail(r);
	return status;
}

/* An event already handed to the broker cannot be published: dead-letter it, or stop
 * (a reconnect would skip it, published as it was, so stopping publishes it again after
 * restart). Returns true when it is done with. */
static bool reject_published(struct relay *r, const struct event *ev, const char *why)
{
	int status = reject(r, ev, why);
	if (status == PG_RETRY) {
		log_error("cannot dead-letter a refused event; stopping so that it is published again after"
		          " restart",
		          "reason", why);
		fail(r);
	}
	return status == PG_OK;
}

/* ---- the broker's side -------------------------------------------------------------- */

/* Acknowledgements, in the order they came; a refusal (MQTT 5 reason code >= 0x80) is
 * dead-lettered before the event counts as done. */
static void take_acks(struct relay *r)
{
	struct mqtt_ack ack;
	while (mqtt_next_ack(r->mqtt, &ack)) {
		uint64_t seq;
		struct event *ev = r->delivery ? delivery_find(r->delivery, ack.mid, &seq) : NULL;
		if (!ev)
			continue; /* a late repeat, or for a session given up */
		if (ack.reason >= 0x80) {
			char why[96];
			snprintf(why, sizeof why, "the broker refused the message: reason code 0x%02x (%s)",
			         ack.reason, mqtt_reason_text(ack.reason));
			if (!reject_published(r, ev, why))
				continue;
		} else {
			stats_acked(&r->stats);
		}
		delivery_settle(r->delivery, seq);
	}
}

/* A new session: what the client no longer holds goes out again before anything new. */
static void session_started(struct relay *r, enum mqtt_session session)
{
	size_t again = r->delivery ? delivery_session_started(r->delivery, session) : 0;
	if (again) {
		char count[24];
		snprintf(count, sizeof count, "%zu", again);
		log_info("publishing again what the broker may not have", LOG_NUMBER("events"), count);
	}
}

static void republish(struct relay *r)
{
	struct event *refused;
	uint64_t seq;
	char why[256];
	while (delivery_republish(r->delivery, r->mqtt, &refused, &seq, why, sizeof why) ==
	       DELIVERY_REFUSED) {
		if (!reject_published(r, refused, why))
			return;
		delivery_settle(r->delivery, seq);
	}
}

static void notify_when_ready(struct relay *r)
{
	if (r->ready_sent || !streaming(r) || mqtt_state(r->mqtt) != MQTT_UP)
		return;
	r->ready_sent = true;
	source_mark_started(r->pg);
	mqtt_mark_started(r->mqtt);
	notify_ready("streaming");
	log_info("ready: replication and broker connected, checkpoint loaded");
}

/* ---- events ------------------------------------------------------------------------- */

/* The pending event at pos is published or set aside: a replay skips it from now on. */
static void event_handled(struct relay *r, struct event_pos pos)
{
	r->handled = pos;
	r->ev_pending = false;
	event_trim(&r->ev);
}

static struct event_pos pending_pos(const struct relay *r)
{
	return (struct event_pos){ r->ev.commit_lsn, r->ev.index };
}

/* The pending event cannot be published: past it once it is dead-lettered. */
static void set_aside(struct relay *r, const char *why)
{
	int status = reject(r, &r->ev, why);
	if (status == PG_RETRY)
		pg_lost(r, status); /* the event comes again after reconnecting */
	else if (status == PG_OK)
		event_handled(r, pending_pos(r));
}

static void try_publish(struct relay *r)
{
	char why[256];
	/* Read first: once sent, the event's buffers are in the store and r->ev holds spares. */
	struct event_pos pos = pending_pos(r);
	enum delivery_result res = delivery_publish(r->delivery, r->mqtt, &r->ev, why, sizeof why);
	if (res == DELIVERY_REFUSED)
		set_aside(r, why);
	else if (res == DELIVERY_SENT)
		event_handled(r, pos);
}

/* The event just built holds all it needs: the message it came from is freed before the
 * MQTT client copies the payload, so that a huge one is not in memory once more meanwhile.
 * Nothing may read the message (the decoded change) after this. */
static void publish_built(struct relay *r)
{
	if (source_stream(r->pg))
		pgstream_release(source_stream(r->pg));
	try_publish(r);
}

static bool next_event(struct relay *r)
{
	r->ev_pending = txn_next_event(&r->txn, r->handled, &r->ev);
	return r->ev_pending;
}

static void handle_insert(struct relay *r, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	struct outbox_route *route = r->txn.open ? outbox_route_table(*r->outbox, rel) : NULL;
	if (!route || !next_event(r))
		return;
	char why[256];
	if (outbox_build(route, rel, row, &r->ev, why, sizeof why) < 0)
		set_aside(r, why);
	else
		publish_built(r);
}

static void handle_routed_message(struct relay *r, const struct pgo_msg *msg)
{
	char why[256];
	struct outbox_route *route =
	        r->txn.open ? outbox_route_message(*r->outbox, msg->u.message.prefix) : NULL;
	if (!route || !next_event(r))
		return;
	if (outbox_build_message(route, msg->u.message.prefix, msg->u.message.content, msg->u.message.len,
	                         &r->ev, why, sizeof why) < 0)
		set_aside(r, why);
	else
		publish_built(r);
}

static void handle_message(struct relay *r, const struct pgo_msg *msg)
{
	if (msg->u.message.transactional) {
		/* The heartbeat is one too (doc/design.md §17): its prefix is never routed, so it
		 * takes no event number, and its Commit confirms like any transaction without
		 * events. */
		handle_routed_message(r, msg);
		return;
	}
	/* Only committed work is published: never a non-transactional message. The relay's
	 * own are the --drain marker and, in WAL written by releases before the heartbeat
	 * became transactional, the heartbeat. */
	bool drain = strcmp(msg->u.message.prefix, DRAIN_MARKER_PREFIX) == 0;
	if (!drain && strcmp(msg->u.message.prefix, HEARTBEAT_PREFIX) != 0)
		return;
	/* Outside any transaction, with every earlier commit already received: a safe
	 * position to confirm once nothing is in flight. */
	delivery_idle_advance(r->delivery, msg->u.message.lsn);
	if (drain && r->opts->drain && r->drain_target != LSN_INVALID &&
	    msg->u.message.lsn >= r->drain_target) {
		r->drain_reached = true;
		log_info("drain: everything committed before start has been received");
	}
}

/* A relation with a column type never seen may use a domain created since the domains were
 * read: read them again before its rows are encoded. */
static void learn_types(struct relay *r, const struct pgo_relation *rel)
{
	if (!typemap_needs_lookup(r->types, rel))
		return;
	/* After a reconnect the relation is described again. */
	if (query_done(r, catalog_load_domains(source_sql(r->pg), r->types)))
		typemap_learn(r->types, rel);
}

static void handle_change(struct relay *r, const struct pgo_msg *msg)
{
	switch (msg->kind) {
	case PGO_BEGIN: txn_begin(&r->txn, msg->u.begin.final_lsn, msg->u.begin.commit_time); break;
	case PGO_COMMIT:
		delivery_txn_end(r->delivery, msg->u.commit.commit_lsn, msg->u.commit.end_lsn);
		txn_end(&r->txn);
		break;
	case PGO_INSERT: handle_insert(r, msg->u.insert.rel, &msg->u.insert.tuple); break;
	case PGO_MESSAGE: handle_message(r, msg); break;
	case PGO_RELATION: learn_types(r, msg->u.relation); break;
	case PGO_UPDATE:
		if (outbox_update_is_new(*r->outbox, msg->u.update.rel))
			log_warn("UPDATE of an outbox table is not published (outbox rows are inserted, not "
			         "changed)",
			         "schema", msg->u.update.rel->schema, "table", msg->u.update.rel->name);
		break;
	default: break; /* the rest is not published */
	}
}

static void handle_keepalive(struct relay *r, const struct repl_frame *f)
{
	/* The keepalive's position is what the server has sent so far: with no transaction
	 * open and nothing in flight, everything before it is done. */
	if (!r->txn.open && !r->ev_pending)
		delivery_idle_advance(r->delivery, f->wal_end);
	if (f->reply_requested && source_answer(r->pg) != PG_OK)
		pg_lost(r, PG_RETRY);
}

/* Returns 0, or -1 when the stream is unusable (logged). */
static int handle_frame(struct relay *r, const struct repl_frame *frame)
{
	struct pgo_msg msg;
	stats_wal_end(&r->stats, frame->wal_end);
	if (frame->kind == REPL_KEEPALIVE) {
		handle_keepalive(r, frame);
		return 0;
	}
	if (pgo_decode(r->decoder, frame->data, frame->len, &msg) < 0) {
		log_error("malformed pgoutput message", "error", pgo_error(r->decoder));
		return -1;
	}
	handle_change(r, &msg);
	return 0;
}

/* Whether to take more from the replication stream now. Not taking is the back-pressure:
 * the server keeps the WAL, and status updates keep the connection alive. */
static bool can_receive(const struct relay *r)
{
	return streaming(r) && r->stop == RUNNING && !r->drain_reached && !r->ev_pending &&
	       !delivery_republishing(r->delivery) && mqtt_state(r->mqtt) == MQTT_UP &&
	       delivery_has_room(r->delivery);
}

/* Handles what the stream has buffered; returns how many messages. */
static size_t receive_buffered(struct relay *r)
{
	size_t handled = 0;
	while (can_receive(r)) {
		struct repl_frame frame;
		bool got;
		int status = pgstream_next(source_stream(r->pg), &frame, &got);
		if (status == PG_OK && !got)
			break;
		if (status == PG_FATAL) {
			pg_lost(r, PG_FATAL);
			fail(r);
			break;
		}
		if (status != PG_OK || handle_frame(r, &frame) < 0) {
			pg_lost(r, status != PG_OK ? status : PG_RETRY);
			break;
		}
		handled++;
	}
	return handled;
}

static void receive(struct relay *r)
{
	bool listening = can_receive(r);
	size_t handled = receive_buffered(r);
	/* Once a batch, not once a message: the clock is read off the hot path. */
	if (streaming(r) && (!listening || handled))
		source_heard(r->pg, monotonic_ms());
}

/* ---- bookkeeping -------------------------------------------------------------------- */

static int save_checkpoint(struct relay *r, struct ledger_pos pos)
{
	struct checkpoint_row row = { pos, r->stats.published };
	int status = bookkeeping_save_checkpoint(source_sql(r->pg), r->cfg->source.slot, &row);
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
	if (!streaming(r))
		return;
	struct ledger_pos pos = delivery_safe(r->delivery);
	if (checkpoint_behind(r)) {
		if (now < r->checkpoint_at)
			return;
		if (!query_done(r, save_checkpoint(r, pos)))
			return;
		r->checkpoint_at = now + r->cfg->delivery.checkpoint_interval_ms;
	}
	if (source_confirm(r->pg, pos.confirmed_lsn) != PG_OK)
		pg_lost(r, PG_RETRY);
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
	if (!streaming(r) || r->stop != RUNNING)
		return;
	query_done(r, catalog_check_publication(source_sql(r->pg), r->cfg));
}

/* doc/design.md §2.6, §17: a transaction of our own gives the slot a position to advance to
 * when routed tables are idle, and lets the server release the WAL behind it; the stream
 * never publishes it. */
static void heartbeat(struct relay *r, int64_t now)
{
	(void)now;
	if (!streaming(r) || r->stop != RUNNING)
		return;
	lsn_t lsn;
	query_done(r, pg_emit_marker(source_sql(r->pg), true, HEARTBEAT_PREFIX, r->cfg->source.slot, &lsn));
}

/* ---- stats and STATUS= (doc/design.md §8) ------------------------------------------ */

/* Events received and not yet acknowledged: in flight, and the one decoded. */
static size_t pending(const struct relay *r)
{
	return (r->delivery ? delivery_inflight(r->delivery) : 0) + (r->ev_pending ? 1 : 0);
}

/* The commit time of the oldest of them; 0: none. */
static pg_time_t oldest_pending(struct relay *r)
{
	pg_time_t t = 0;
	if (r->delivery && delivery_oldest_commit_time(r->delivery, &t))
		return t;
	return r->ev_pending ? r->ev.commit_time : 0;
}

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
		pg_lost(r, status);
}

/* The numbers now, the rate since *mark; the server is asked only when the stream cannot
 * tell how far it is. */
static struct stats_view take_stats(struct relay *r, struct stats_mark *mark, int64_t now)
{
	if (streaming(r) && r->ask_wal && stats_wal_unsure(&r->stats))
		ask_server_wal(r);
	struct stats_input in = {
		.now = now,
		.wall = pg_now(),
		.pending = pending(r),
		.oldest_pending = oldest_pending(r),
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
	static const char *const session[] = {
		[SOURCE_DOWN] = "PostgreSQL disconnected",
		[SOURCE_STANDBY] = "standby (the slot is in use)",
		[SOURCE_STREAMING] = "streaming",
	};
	return (struct stats_state){ session[source_state(r->pg)], mqtt_state(r->mqtt) == MQTT_UP,
		                     r->stop != RUNNING };
}

static bool same_state(const struct stats_state *a, const struct stats_state *b)
{
	return a->session == b->session && a->broker_up == b->broker_up && a->stopping == b->stopping;
}

static void update_status(struct relay *r, int64_t now)
{
	char text[256];
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
	{ check_publication, status_interval },    /* doc/design.md §19 */
	{ heartbeat, heartbeat_interval },         /* §17 */
	{ log_stats, stats_interval },             /* §8 */
	{ update_status, status_update_interval }, /* §8 */
	{ watchdog, watchdog_interval },           /* §8 */
};
#define JOB_COUNT (sizeof jobs / sizeof jobs[0])
_Static_assert(JOB_COUNT <= JOBS_MAX, "raise JOBS_MAX");

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
	if (r->stop == STOP_SIGNAL) {
		log_warn("second stop request: stopping without waiting for acknowledgements");
		r->stop_deadline = monotonic_ms();
		return;
	}
	if (r->stop != RUNNING)
		return;
	r->stop = STOP_SIGNAL;
	r->stop_deadline = monotonic_ms() + r->cfg->delivery.drain_timeout_ms;
	log_info("stopping: waiting for in-flight acknowledgements", "signal", why);
}

static bool flushed(const struct relay *r)
{
	return !r->delivery || delivery_inflight(r->delivery) == 0;
}

static bool finished(struct relay *r, int64_t now)
{
	if (r->stop == STOP_FATAL)
		return true;
	if (r->drain_reached && flushed(r) && !r->ev_pending) {
		r->stop = STOP_DRAINED;
		return true;
	}
	if (r->stop == STOP_SIGNAL) {
		if (!streaming(r))
			return true; /* nothing to checkpoint into until PostgreSQL is back */
		return flushed(r) || now >= r->stop_deadline;
	}
	return false;
}

/* Writes the final checkpoint and confirms it, so that a restart publishes nothing twice. */
static void final_bookkeeping(struct relay *r)
{
	if (!streaming(r) || !r->delivery)
		return;
	struct ledger_pos pos = delivery_safe(r->delivery);
	bool changed = event_pos_after(pos.acked, r->saved.pos.acked) ||
	               pos.confirmed_lsn != r->saved.pos.confirmed_lsn;
	if (changed && save_checkpoint(r, pos) != PG_OK) {
		log_warn("final checkpoint not written; acknowledged events may be published again");
		source_stop(r->pg, source_confirmed(r->pg));
		return;
	}
	source_stop(r->pg, pos.confirmed_lsn);
}

/* ---- signals ------------------------------------------------------------------------ */

static void reload(struct relay *r)
{
	bool sql_lost;
	if (reload_run(r->reload, source_sql(r->pg), &sql_lost))
		memset(r->job_at, 0, sizeof r->job_at); /* re-armed with the new intervals */
	if (sql_lost)
		pg_lost(r, PG_RETRY);
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
	int64_t at = earliest(source_deadline(r->pg), mqtt_deadline(r->mqtt));
	for (size_t i = 0; i < JOB_COUNT; i++)
		at = earliest(at, r->job_at[i]);
	if (checkpoint_behind(r))
		at = earliest(at, r->checkpoint_at);
	if (r->stop == STOP_SIGNAL)
		at = earliest(at, r->stop_deadline);
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
		fail_config(r); /* before the first start: mqtt.c said why */
		return;
	}
	take_acks(r);
	session_started(r, mqtt_take_session(r->mqtt));
	notify_when_ready(r);
}

static void pg_io(struct relay *r, short revents)
{
	struct pgstream *stream = source_stream(r->pg);
	if (stream && revents & (POLLIN | POLLERR | POLLHUP) && pgstream_consume(stream) != PG_OK)
		pg_lost(r, PG_RETRY);
	stream = source_stream(r->pg);
	bool pending;
	if (stream && revents & POLLOUT && pgstream_flush(stream, &pending) != PG_OK)
		pg_lost(r, PG_RETRY);
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
		pg_lost(r, PG_RETRY);
	if (source_stream(r->pg)) {
		fds[FD_PG].fd = pgstream_socket(source_stream(r->pg));
		fds[FD_PG].events = (short)((can_receive(r) ? POLLIN : 0) | (pending ? POLLOUT : 0));
	}
	if (mqtt_want_write(r->mqtt))
		fds[FD_MQTT].events |= POLLOUT;

	if (poll(fds, NFDS, poll_timeout(r, monotonic_ms())) < 0 && errno != EINTR) {
		log_error("poll failed", "error", strerror(errno));
		fail(r);
		return;
	}
	if (fds[FD_SIGNAL].revents)
		handle_signals(r);
	mqtt_io(r, fds[FD_MQTT].revents);
	pg_io(r, fds[FD_PG].revents);
}

/* Publishing: what a lost session set aside first, then the decoded event. */
static void publish_pending(struct relay *r)
{
	if (!r->delivery || r->stop == STOP_FATAL)
		return;
	if (delivery_republishing(r->delivery))
		republish(r);
	if (r->ev_pending && r->stop == RUNNING && !delivery_republishing(r->delivery))
		try_publish(r);
}

static void step(struct relay *r)
{
	int64_t now = monotonic_ms();
	maintain_source(r, now);
	mqtt_maintain(r->mqtt, now, streaming(r) && r->stop == RUNNING);
	publish_pending(r);
	receive(r);
	take_acks(r); /* QoS 0 messages are acknowledged as they are written */
	now = monotonic_ms();
	bookkeeping(r, now);
	bool reading = can_receive(r);
	stats_reading(&r->stats, reading, now);
	if (source_tick(r->pg, now, reading) != PG_OK)
		pg_lost(r, PG_RETRY);
	run_jobs(r, now);
	follow_state(r, now);
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
	srandom((unsigned)(getpid() ^ monotonic_ms()));
	r->sigfd = signals_open();
	r->decoder = pgo_decoder_new();
	r->types = typemap_new();
	outbox_use_types(*outbox, r->types);
	r->reload = reload_new(cfg, outbox, r->types, opts->log_level_fixed);
	r->pg = source_new(cfg);
	r->mqtt = mqtt_new(cfg);
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
	pgo_decoder_free(r->decoder);
	event_finish(&r->ev);
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
	if (r.stop != STOP_FATAL)
		final_bookkeeping(&r);
	mqtt_disconnect(r.mqtt, 2000, flushed(&r));
	stats_summary(&r.stats, r.delivery ? delivery_inflight(r.delivery) : 0, source_confirmed(r.pg));
	int status = r.stop != STOP_FATAL ? EXIT_CLEAN : r.exit_status;
	relay_finish(&r);
	return status;
}
