#include "relay.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backoff.h"
#include "catalog.h"
#include "checkpoint.h"
#include "inflight.h"
#include "ledger.h"
#include "log.h"
#include "mqtt.h"
#include "notify.h"
#include "pgoutput.h"
#include "pgrepl.h"
#include "util.h"

enum stop_reason {
	RUNNING,
	STOP_SIGNAL,  /* SIGTERM/SIGINT: wait for acks up to drain_timeout */
	STOP_DRAINED, /* --drain reached the marker and everything is acknowledged */
	STOP_FATAL,   /* exit 1 (or 78 when config_mismatch) */
};

#define STANDBY_RETRY_MS 1000 /* how often a standby asks for the slot */
/* Periodic status updates ask the server to answer; a server silent this many intervals
 * while the relay reads is taken for a frozen peer or a dead path, and dropped. */
#define SILENT_INTERVALS 3

/* The position of one event: its transaction's commit LSN and its index there. */
struct event_pos {
	lsn_t commit_lsn;
	int32_t index;
};

/* A configuration and its compiled routes replaced by a reload: events in flight may
 * still point into them, so they are freed when the run ends. */
struct retired {
	struct config cfg;
	struct outbox *outbox;
};

struct relay {
	const struct config *cfg;    /* the running configuration (reloads change it in place) */
	struct config *live_cfg;     /* the same, writable, for reloads */
	struct outbox **outbox_slot; /* the caller's, updated by reloads */
	struct outbox *outbox;
	struct retired *retired;
	size_t nretired;
	bool drain_mode;
	bool log_level_fixed;

	struct pgo_decoder *decoder;
	struct ledger *ledger;
	struct mqtt *mqtt;
	PGconn *sql;
	struct pgrepl *repl;
	int sigfd;

	/* Bookkeeping. */
	bool loaded;                 /* checkpoint read (once per process) */
	struct checkpoint_row saved; /* what the checkpoint table holds */
	lsn_t confirmed_sent;        /* what the slot was last told */
	/* Newest event published or set aside: a replay skips everything up to here. */
	struct event_pos handled;
	uint64_t acked; /* acknowledged events over the slot's life */

	/* The transaction being received. */
	bool in_txn;
	lsn_t txn_commit_lsn;
	char txn_lsn_text[LSN_BUFLEN]; /* formatted once per transaction for its events */
	char txn_time_text[PG_TIME_TEXT_BUFLEN];
	pg_time_t txn_commit_time;
	int32_t txn_next_index;

	/* An event decoded but not yet taken by the MQTT client. */
	struct event ev;
	bool ev_pending;
	/* QoS 0 acks arrive inside mqtt_publish, before the ledger knows the mid. */
	bool publishing;
	int early_ack_mid;
	/* Events of a lost session await publishing again, before anything new. */
	bool republishing;
	bool ready_sent; /* READY=1 told to the service manager */

	/* --drain */
	lsn_t drain_target;
	bool drain_reached;

	/* Timers, on the monotonic clock (ms); 0 = not armed. */
	int64_t pg_retry_at;
	int64_t mqtt_retry_at;
	int64_t next_status_at;
	int64_t pg_heard_at; /* last time the replication stream gave data */
	int64_t next_checkpoint_at;
	int64_t stop_deadline;
	struct backoff pg_backoff;
	struct backoff mqtt_backoff;

	struct inflight *inflight; /* events published and not yet acknowledged */
	struct typemap *types;     /* domains and their base types, for the encoders */

	/* Monitoring (SPEC §8). */
	uint64_t dead_lettered;
	uint64_t reconnects;
	lsn_t server_wal_end; /* newest WAL end the server reported */
	pg_time_t last_acked_commit_time;
	uint64_t stats_acked; /* acked at the last stats line, for the rate */
	int64_t stats_at;
	int64_t next_stats_at;
	int64_t next_heartbeat_at;
	int64_t next_publication_check_at;
	uint32_t watchdog_interval_ms; /* 0: no systemd watchdog */
	int64_t next_watchdog_at;

	enum stop_reason stop;
	bool config_mismatch;          /* routes name what the database lacks: exit 78 */
	bool standby;                  /* waiting for another process to free the slot */
	bool pg_backoff_pending_reset; /* reset the backoff once the stream delivers */
};

/* ---- helpers ------------------------------------------------------------------------ */

static bool pos_after(struct event_pos a, struct event_pos b)
{
	return a.commit_lsn > b.commit_lsn || (a.commit_lsn == b.commit_lsn && a.index > b.index);
}

static struct event_pos ledger_event_pos(struct ledger_pos p)
{
	return (struct event_pos){ p.commit_lsn, p.event_index };
}

static uint32_t jitter(void)
{
	return (uint32_t)random();
}

static void fail(struct relay *r)
{
	r->stop = STOP_FATAL;
}

/* ---- PostgreSQL session ------------------------------------------------------------- */

static void pg_close(struct relay *r)
{
	pgrepl_free(r->repl);
	r->repl = NULL;
	PQfinish(r->sql);
	r->sql = NULL;
	/* What was received but not published is received again after reconnecting. */
	r->in_txn = false;
	r->ev_pending = false;
}

static void pg_schedule_retry(struct relay *r)
{
	r->reconnects++;
	uint32_t delay = backoff_next(&r->pg_backoff, jitter());
	char text[16];
	if (r->standby && delay > STANDBY_RETRY_MS)
		delay = STANDBY_RETRY_MS; /* take over soon after the slot is freed */
	snprintf(text, sizeof text, "%" PRIu32 "ms", delay);
	log_write(r->standby ? LOG_DEBUG : LOG_INFO, "PostgreSQL unavailable, retrying", "in", text,
	          (const char *)NULL);
	r->pg_retry_at = monotonic_ms() + delay;
}

static int load_checkpoint(struct relay *r)
{
	bool found;
	int status = checkpoint_load(r->sql, r->cfg->source.slot, &r->saved, &found);
	if (status != PG_OK)
		return status;
	r->handled = ledger_event_pos(r->saved.pos);
	r->acked = r->saved.published;
	r->loaded = true;
	if (found) {
		char commit[LSN_BUFLEN], confirmed[LSN_BUFLEN], index[16];
		snprintf(index, sizeof index, "%" PRId32, r->saved.pos.event_index);
		log_info("checkpoint loaded", "commit_lsn", lsn_format(r->saved.pos.commit_lsn, commit),
		         "event_index", index, "confirmed_lsn",
		         lsn_format(r->saved.pos.confirmed_lsn, confirmed));
	}
	return PG_OK;
}

/* Connects both PostgreSQL connections, prepares bookkeeping, publication and slot, and
 * starts streaming from the newest confirmed position. */
static int pg_open(struct relay *r)
{
	const struct config *cfg = r->cfg;
	r->sql = pg_connect(cfg, false, "bookkeeping");
	if (!r->sql)
		return PG_RETRY;
	int status = pgrepl_check_routes(r->sql, cfg, r->outbox);
	if (status == PG_OK)
		status = catalog_load_domains(r->sql, r->types);
	if (status == PG_OK)
		status = checkpoint_prepare(r->sql, cfg);
	if (status == PG_OK && !r->loaded)
		status = load_checkpoint(r);
	lsn_t checkpoint_lsn = r->saved.pos.confirmed_lsn; /* LSN_INVALID: no checkpoint */
	lsn_t slot_confirmed = LSN_INVALID;
	if (status == PG_OK)
		status = pgrepl_prepare(r->sql, cfg, checkpoint_lsn, &slot_confirmed);
	if (status == PG_OK && r->drain_mode && r->drain_target == LSN_INVALID)
		status = pg_emit_marker(r->sql, DRAIN_MARKER_PREFIX, cfg->source.slot, &r->drain_target);
	if (status != PG_OK)
		return status;
	if (!r->ledger)
		r->ledger = ledger_new((size_t)cfg->broker.max_inflight, r->saved.pos);
	/* The slot may be ahead of the table (idle advance is confirmed without a
	 * checkpoint write): nothing routed lies in between. */
	ledger_idle_advance(r->ledger, slot_confirmed);
	lsn_t start = ledger_safe(r->ledger).confirmed_lsn;
	r->repl = pgrepl_start(cfg, start, &status);
	if (status == PG_OK && r->confirmed_sent < start)
		r->confirmed_sent = start;
	return status;
}

static void pg_maintain(struct relay *r, int64_t now)
{
	if (r->repl || r->stop != RUNNING || now < r->pg_retry_at)
		return;
	int status = pg_open(r);
	if (status == PG_OK) {
		if (r->standby)
			log_info("the slot is free: taking over", "slot", r->cfg->source.slot);
		r->standby = false;
		/* Not yet: a stream that fails at once (say, on its first change) must not be
		 * retried at the shortest delay for ever. */
		r->pg_backoff_pending_reset = true;
		r->pg_heard_at = now;
		r->next_status_at = now + r->cfg->source.status_interval_ms;
		return;
	}
	pg_close(r);
	r->config_mismatch = status == PG_CONFIG;
	if (status == PG_STANDBY && !r->standby)
		log_info("the slot is in use by another process: waiting as a standby until it is free",
		         "slot", r->cfg->source.slot);
	r->standby = status == PG_STANDBY;
	if (r->standby && !r->ready_sent) {
		/* The active relay moves the checkpoint on: read it again when taking over. */
		r->loaded = false;
		ledger_free(r->ledger);
		r->ledger = NULL;
	}
	if (status == PG_FATAL || status == PG_CONFIG)
		fail(r);
	else
		pg_schedule_retry(r);
}

static void pg_lost(struct relay *r)
{
	pg_close(r);
	if (r->stop == RUNNING)
		pg_schedule_retry(r);
}

/* ---- MQTT session ------------------------------------------------------------------- */

/* ---- events that can never be published (SPEC §7) ------------------------------------ */

static void log_event(enum log_level level, const char *msg, const struct event *ev, const char *why)
{
	char lsn[LSN_BUFLEN], index[16];
	snprintf(index, sizeof index, "%" PRId32, ev->index);
	log_write(level, msg, "reason", why, "event_id", ev->event_id.len ? ev->event_id.data : "", "source",
	          ev->source ? ev->source : "", "commit_lsn", lsn_format(ev->commit_lsn, lsn), "event_index",
	          index, (const char *)NULL);
}

/*
 * Dead-letters ev, or stops the relay (on_reject: stop, or the dead-letter table cannot be
 * written). Returns 0 when the stream may go past the event; PG_RETRY when PostgreSQL was
 * lost and the event will come again; PG_FATAL when stopping. Either way, nothing
 * checkpoints past an event that is neither published nor dead-lettered.
 */
static int reject(struct relay *r, const struct event *ev, const char *why)
{
	if (r->cfg->delivery.on_reject == REJECT_STOP) {
		log_event(LOG_ERROR, "event cannot be published; stopping (delivery.on_reject: stop)", ev,
		          why);
		fail(r);
		return PG_FATAL;
	}
	int status = r->sql ? checkpoint_dead_letter(r->sql, r->cfg->source.slot, ev, why) : PG_RETRY;
	if (status == PG_FATAL) {
		/* The table refuses the row (privilege, constraint): retrying cannot help. */
		log_event(LOG_ERROR, "event cannot be dead-lettered; stopping", ev, why);
		fail(r);
	}
	if (status != PG_OK)
		return status;
	r->dead_lettered++;
	log_event(LOG_WARN, "event dead-lettered", ev, why);
	return PG_OK;
}

/* A refusal arrives with the acknowledgement (MQTT 5 reason code >= 0x80). Returns false
 * if the event must stay unacknowledged (stopping). */
static bool handle_refusal(struct relay *r, const struct event *ev, int reason)
{
	char why[96];
	snprintf(why, sizeof why, "the broker refused the message: reason code 0x%02x (%s)", reason,
	         mqtt_reason_text(reason));
	if (!ev) {
		log_error("the broker refused a message the relay no longer holds; stopping so that it is"
		          " published again after restart",
		          "reason", why);
		fail(r);
		return false;
	}
	int status = reject(r, ev, why);
	if (status == PG_OK)
		return true;
	if (status == PG_RETRY) {
		/* It was published already, so a reconnect would skip it: start over instead. */
		log_error("cannot dead-letter a refused event; stopping so that it is published again after"
		          " restart",
		          "reason", why);
		fail(r);
	}
	return false;
}

/* The event numbered seq is done with: acknowledged (or dead-lettered after a refusal). */
static void settle(struct relay *r, uint64_t seq, bool delivered)
{
	struct event *ev = inflight_find(r->inflight, seq);
	if (delivered) {
		r->acked++;
		if (ev)
			r->last_acked_commit_time = ev->commit_time;
	}
	ledger_ack_seq(r->ledger, seq);
	inflight_forget(r->inflight, seq);
}

static void on_ack(void *ctx, int mid, int reason)
{
	struct relay *r = ctx;
	int64_t seq = ledger_seq_of(r->ledger, mid);
	if (seq < 0) {
		/* Inside mqtt_publish the client reports every QoS 0 message it managed to
		 * write, the one being published included, which the ledger gets only after
		 * the call: keep that one for then. (Others are late repeats, or acks for a
		 * session given up: nothing to do.) */
		if (r->publishing)
			r->early_ack_mid = mid;
		return;
	}
	if (reason >= 0x80 && !handle_refusal(r, inflight_find(r->inflight, (uint64_t)seq), reason))
		return;
	settle(r, (uint64_t)seq, reason < 0x80);
}

static void mqtt_maintain(struct relay *r, int64_t now)
{
	/* A standby that does not hold the slot stays off the broker: the active relay may
	 * use the same client id. */
	if (!r->repl || mqtt_state(r->mqtt) != MQTT_DOWN || now < r->mqtt_retry_at || r->stop != RUNNING)
		return;
	if (mqtt_connect(r->mqtt) == 0) {
		backoff_reset(&r->mqtt_backoff);
		return;
	}
	r->mqtt_retry_at = now + backoff_next(&r->mqtt_backoff, jitter());
}

static void notify_when_ready(struct relay *r)
{
	if (r->ready_sent || !r->repl || mqtt_state(r->mqtt) != MQTT_UP)
		return;
	r->ready_sent = true;
	notify_ready("streaming");
	log_info("ready: replication and broker connected, checkpoint loaded");
}

static void mqtt_check_down(struct relay *r, enum mqtt_state before)
{
	if (before != MQTT_DOWN && mqtt_state(r->mqtt) == MQTT_DOWN && r->stop == RUNNING) {
		r->mqtt_retry_at = monotonic_ms() + backoff_next(&r->mqtt_backoff, jitter());
		r->reconnects++;
	}
}

/* ---- events ------------------------------------------------------------------------- */

/* The pending event cannot be published: past it once it is dead-lettered. */
static void set_aside(struct relay *r, const char *why)
{
	int status = reject(r, &r->ev, why);
	if (status == PG_RETRY) {
		pg_lost(r); /* the event comes again after reconnecting */
		return;
	}
	if (status != PG_OK)
		return;
	r->handled = (struct event_pos){ r->ev.commit_lsn, r->ev.index };
	r->ev_pending = false;
	event_trim(&r->ev);
}

/* Hands ev to the MQTT client. A QoS 0 message may be acknowledged inside the call, before
 * its mid is known: that mid is left in r->early_ack_mid. */
static enum mqtt_publish_result hand_over(struct relay *r, const struct event *ev, int *mid, char *why,
                                          size_t whylen)
{
	r->publishing = true;
	r->early_ack_mid = 0;
	enum mqtt_publish_result res = mqtt_publish(r->mqtt, ev, mid, why, whylen);
	r->publishing = false;
	return res;
}

static void try_publish(struct relay *r)
{
	char why[256];
	int mid = 0;

	enum mqtt_publish_result res = hand_over(r, &r->ev, &mid, why, sizeof why);
	if (res == MQTT_NOT_NOW)
		return;
	if (res == MQTT_REFUSED) {
		set_aside(r, why);
		return;
	}
	if (ledger_add(r->ledger, mid, r->ev.commit_lsn, r->ev.index) < 0) {
		log_error("in-flight ledger refused an event (mid reused while in flight)");
		fail(r);
		return;
	}
	r->handled = (struct event_pos){ r->ev.commit_lsn, r->ev.index };
	r->ev_pending = false;
	/* Kept until acknowledged: for a refusal's dead letter, and to publish again. */
	inflight_keep(r->inflight, (uint64_t)ledger_seq_of(r->ledger, mid), &r->ev);
	event_trim(&r->ev);
	if (r->early_ack_mid == mid)
		on_ack(r, mid, 0);
}

/* ---- a new MQTT session ----------------------------------------------------------------- */

/*
 * What the client no longer holds is published again, in the original order and before
 * anything new: every unacknowledged event after a session the broker did not keep, and
 * after a resumed one the QoS 0 messages the broken connection never wrote.
 */
static void session_started(struct relay *r, enum mqtt_session session)
{
	if (session == MQTT_SESSION_NONE || !r->ledger)
		return;
	size_t cursor = 0, unbound = 0;
	uint64_t seq;
	int mid;
	while (ledger_next_unacked(r->ledger, &cursor, &seq, &mid)) {
		const struct event *ev = inflight_find(r->inflight, seq);
		if (session == MQTT_SESSION_RESUMED && ev && ev->qos > 0)
			continue;
		ledger_unbind(r->ledger, seq);
		unbound++;
	}
	r->republishing = unbound > 0;
	if (unbound) {
		char count[24];
		snprintf(count, sizeof count, "%zu", unbound);
		log_info("publishing again what the broker may not have", "events", count);
	}
}

/* Publishes the events session_started set aside, oldest first, until the client takes no
 * more (then again on the next pass). */
static void republish(struct relay *r)
{
	size_t cursor = 0;
	uint64_t seq;
	int mid;
	char why[256];
	while (r->republishing && ledger_next_unacked(r->ledger, &cursor, &seq, &mid)) {
		if (mid)
			continue;
		struct event *ev = inflight_find(r->inflight, seq);
		enum mqtt_publish_result res = hand_over(r, ev, &mid, why, sizeof why);
		if (res == MQTT_NOT_NOW)
			return;
		if (res == MQTT_REFUSED) {
			/* Another broker of the list may allow less than the one that took it. */
			if (reject(r, ev, why) != PG_OK)
				return;
			settle(r, seq, false);
			continue;
		}
		ledger_bind(r->ledger, seq, mid);
		if (r->early_ack_mid == mid)
			on_ack(r, mid, 0);
	}
	r->republishing = false;
}

/* The event just built holds all it needs: the message it came from is freed before the
 * MQTT client copies the payload, so that a huge one is not in memory once more meanwhile.
 * Nothing may read the message (the decoded change) after this. */
static void publish_built(struct relay *r)
{
	if (r->repl)
		pgrepl_release(r->repl);
	try_publish(r);
}

/* Numbers the next event of the open transaction; false if it was handled before. */
static bool next_event(struct relay *r)
{
	struct event_pos pos = { r->txn_commit_lsn, r->txn_next_index++ };
	if (!pos_after(pos, r->handled))
		return false; /* replayed: published before (or before the checkpoint) */
	r->ev.commit_lsn = pos.commit_lsn;
	r->ev.index = pos.index;
	memcpy(r->ev.lsn_text, r->txn_lsn_text, sizeof r->ev.lsn_text);
	memcpy(r->ev.commit_time_text, r->txn_time_text, sizeof r->ev.commit_time_text);
	r->ev.commit_time = r->txn_commit_time;
	r->ev_pending = true;
	return true;
}

static void handle_insert(struct relay *r, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	struct outbox_route *route = r->in_txn ? outbox_route_table(r->outbox, rel) : NULL;
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
	        r->in_txn ? outbox_route_message(r->outbox, msg->u.message.prefix) : NULL;
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
		handle_routed_message(r, msg);
		return;
	}
	/* Only committed work is published: never a non-transactional message. */
	bool drain = strcmp(msg->u.message.prefix, DRAIN_MARKER_PREFIX) == 0;
	if (!drain && strcmp(msg->u.message.prefix, HEARTBEAT_PREFIX) != 0)
		return;
	/* Outside any transaction, with every earlier commit already received: a safe
	 * position to confirm once nothing is in flight. */
	ledger_idle_advance(r->ledger, msg->u.message.lsn);
	if (drain && r->drain_mode && r->drain_target != LSN_INVALID &&
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
	int status = r->sql ? catalog_load_domains(r->sql, r->types) : PG_RETRY;
	if (status == PG_OK)
		typemap_learn(r->types, rel);
	else if (status == PG_FATAL)
		fail(r);
	else
		pg_lost(r); /* the relation is described again after reconnecting */
}

static void handle_change(struct relay *r, const struct pgo_msg *msg)
{
	switch (msg->kind) {
	case PGO_BEGIN:
		r->in_txn = true;
		r->txn_commit_lsn = msg->u.begin.final_lsn;
		r->txn_next_index = 0;
		lsn_format(r->txn_commit_lsn, r->txn_lsn_text);
		pg_time_format(msg->u.begin.commit_time, r->txn_time_text, sizeof r->txn_time_text);
		r->txn_commit_time = msg->u.begin.commit_time;
		break;
	case PGO_COMMIT:
		ledger_txn_end(r->ledger, msg->u.commit.commit_lsn, msg->u.commit.end_lsn);
		r->in_txn = false;
		break;
	case PGO_INSERT: handle_insert(r, msg->u.insert.rel, &msg->u.insert.tuple); break;
	case PGO_MESSAGE: handle_message(r, msg); break;
	case PGO_RELATION: learn_types(r, msg->u.relation); break;
	case PGO_UPDATE:
		if (outbox_update_is_new(r->outbox, msg->u.update.rel))
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
	if (!r->in_txn && !r->ev_pending)
		ledger_idle_advance(r->ledger, f->wal_end);
	if (f->reply_requested && pgrepl_send_status(r->repl, r->confirmed_sent, false) != PG_OK)
		pg_lost(r);
}

/* Returns 0, or -1 when the stream is unusable (logged). */
static int handle_copydata(struct relay *r, const uint8_t *data, size_t len)
{
	struct repl_frame frame;
	struct pgo_msg msg;
	char err[200];

	if (repl_frame_parse(data, len, &frame, err, sizeof err) < 0) {
		log_error("malformed replication message", "error", err);
		return -1;
	}
	if (frame.wal_end > r->server_wal_end)
		r->server_wal_end = frame.wal_end;
	if (frame.kind == REPL_KEEPALIVE) {
		handle_keepalive(r, &frame);
		return 0;
	}
	if (pgo_decode(r->decoder, frame.data, frame.len, &msg) < 0) {
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
	return r->repl && r->stop == RUNNING && !r->drain_reached && !r->ev_pending && !r->republishing &&
	       mqtt_state(r->mqtt) == MQTT_UP && ledger_has_room(r->ledger);
}

/* Handles what the stream has buffered; returns how many messages. */
static size_t receive_buffered(struct relay *r)
{
	size_t handled = 0;
	while (can_receive(r)) {
		const uint8_t *data;
		int len = pgrepl_next(r->repl, &data);
		if (len == 0)
			break;
		if (len == PG_FATAL) {
			pg_close(r);
			fail(r);
			break;
		}
		if (len < 0 || handle_copydata(r, data, (size_t)len) < 0) {
			pg_lost(r);
			break;
		}
		handled++;
	}
	return handled;
}

static void receive(struct relay *r)
{
	/* Silence only counts while the relay listens: back-pressure is not the server's fault. */
	bool listening = r->repl && can_receive(r);
	size_t handled = receive_buffered(r);
	if (!r->repl || (listening && !handled))
		return;
	/* Once a batch, not once a message: the clock is read off the hot path. */
	r->pg_heard_at = monotonic_ms();
	/* The stream works: a failure from now on starts the backoff afresh. */
	if (handled && r->pg_backoff_pending_reset) {
		backoff_reset(&r->pg_backoff);
		r->pg_backoff_pending_reset = false;
	}
}

/* ---- bookkeeping -------------------------------------------------------------------- */

static int save_checkpoint(struct relay *r, struct ledger_pos pos)
{
	struct checkpoint_row row = { pos, r->acked };
	int status = checkpoint_save(r->sql, r->cfg->source.slot, &row);
	if (status == PG_OK)
		r->saved = row;
	return status;
}

/* Checkpoint first, then confirm the same position: the slot never moves past an event
 * that is not both acknowledged and recorded in the table. */
static void bookkeeping(struct relay *r, int64_t now)
{
	if (!r->repl)
		return;
	struct ledger_pos pos = ledger_safe(r->ledger);
	struct event_pos acked = ledger_event_pos(pos);
	bool events_moved = pos_after(acked, ledger_event_pos(r->saved.pos));

	if (events_moved && now >= r->next_checkpoint_at) {
		int status = save_checkpoint(r, pos);
		if (status != PG_OK) {
			status == PG_FATAL ? fail(r) : pg_lost(r);
			return;
		}
		r->next_checkpoint_at = now + r->cfg->delivery.checkpoint_interval_ms;
		events_moved = false;
	}
	bool confirm = !events_moved && pos.confirmed_lsn > r->confirmed_sent;
	bool due = now >= r->next_status_at;
	if (!confirm && !due)
		return;
	if (confirm)
		r->confirmed_sent = pos.confirmed_lsn;
	/* The periodic one asks for an answer, which proves the server is still there. */
	if (pgrepl_send_status(r->repl, r->confirmed_sent, due) != PG_OK) {
		pg_lost(r);
		return;
	}
	r->next_status_at = now + r->cfg->source.status_interval_ms;
}

static void check_silence(struct relay *r, int64_t now)
{
	int64_t limit = (int64_t)SILENT_INTERVALS * r->cfg->source.status_interval_ms;
	if (!r->repl || !can_receive(r) || now - r->pg_heard_at <= limit)
		return;
	char silent[24];
	snprintf(silent, sizeof silent, "%" PRId64 "ms", now - r->pg_heard_at);
	log_warn("PostgreSQL stopped answering on the replication connection; reconnecting", "silent_for",
	         silent);
	pg_lost(r);
}

/* SPEC §2.6: a message of our own gives the slot a position to advance to when routed
 * tables are idle. It goes through the bookkeeping connection; the stream never publishes it. */
/* A dropped table leaves the publication without a word in the stream: look for it once
 * a status interval, alongside the status update. */
static void check_publication(struct relay *r, int64_t now)
{
	if (!r->repl || r->stop != RUNNING || now < r->next_publication_check_at)
		return;
	r->next_publication_check_at = now + r->cfg->source.status_interval_ms;
	int status = pgrepl_check_publication(r->sql, r->cfg);
	if (status == PG_FATAL)
		fail(r);
	else if (status != PG_OK)
		pg_lost(r);
}

static void heartbeat(struct relay *r, int64_t now)
{
	uint32_t interval = r->cfg->source.heartbeat_interval_ms;
	if (!interval || !r->repl || r->stop != RUNNING || now < r->next_heartbeat_at)
		return;
	lsn_t lsn;
	int status = pg_emit_marker(r->sql, HEARTBEAT_PREFIX, r->cfg->source.slot, &lsn);
	r->next_heartbeat_at = now + interval;
	if (status == PG_RETRY)
		pg_lost(r);
	else if (status == PG_FATAL)
		fail(r);
}

static void log_stats(struct relay *r, int64_t now)
{
	char published[24], rate[24], dead[24], inflight[24], lag_bytes[24], lag_ms[24], lsn[LSN_BUFLEN],
	        reconnects[24];
	double seconds = r->stats_at ? (double)(now - r->stats_at) / 1000.0 : 0.0;
	lsn_t confirmed = r->confirmed_sent;
	int64_t lag = r->last_acked_commit_time ? (pg_now() - r->last_acked_commit_time) / 1000 : 0;
	snprintf(published, sizeof published, "%" PRIu64, r->acked);
	snprintf(rate, sizeof rate, "%.1f",
	         seconds > 0 ? (double)(r->acked - r->stats_acked) / seconds : 0.0);
	snprintf(dead, sizeof dead, "%" PRIu64, r->dead_lettered);
	snprintf(inflight, sizeof inflight, "%zu", r->ledger ? ledger_inflight(r->ledger) : (size_t)0);
	snprintf(lag_bytes, sizeof lag_bytes, "%" PRIu64,
	         r->server_wal_end > confirmed ? (uint64_t)(r->server_wal_end - confirmed) : (uint64_t)0);
	snprintf(lag_ms, sizeof lag_ms, "%" PRId64, lag > 0 ? lag : 0);
	snprintf(reconnects, sizeof reconnects, "%" PRIu64, r->reconnects);
	char status[256];
	snprintf(status, sizeof status, "published %s, %s/s, dead-lettered %s, in flight %s, lag %s ms",
	         published, rate, dead, inflight, lag_ms);
	notify_status(status);
	log_info("stats", "published", published, "rate", rate, "dead_lettered", dead, "inflight", inflight,
	         "lag_bytes", lag_bytes, "lag_ms", lag_ms, "checkpoint_lsn",
	         lsn_format(r->saved.pos.commit_lsn, lsn), "reconnects", reconnects);
	r->stats_acked = r->acked;
	r->stats_at = now;
}

/* The watchdog proves the loop turns, not that both sides are up: a relay waiting out an
 * outage is healthy. */
static void watchdog(struct relay *r, int64_t now)
{
	if (!r->watchdog_interval_ms || now < r->next_watchdog_at)
		return;
	notify_watchdog();
	r->next_watchdog_at = now + r->watchdog_interval_ms;
}

static void periodic_stats(struct relay *r, int64_t now)
{
	uint32_t interval = r->cfg->log.stats_interval_ms;
	if (!interval)
		return;
	if (!r->next_stats_at) {
		r->next_stats_at = now + interval;
		r->stats_at = now;
	} else if (now >= r->next_stats_at) {
		log_stats(r, now);
		r->next_stats_at = now + interval;
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
	return !r->ledger || ledger_inflight(r->ledger) == 0;
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
		if (!r->repl)
			return true; /* nothing to checkpoint into until PostgreSQL is back */
		return flushed(r) || now >= r->stop_deadline;
	}
	return false;
}

/* Writes the final checkpoint and confirms it, so that a restart publishes nothing twice. */
static void final_bookkeeping(struct relay *r)
{
	if (!r->repl || !r->ledger)
		return;
	struct ledger_pos pos = ledger_safe(r->ledger);
	bool changed = pos.commit_lsn != r->saved.pos.commit_lsn ||
	               pos.event_index != r->saved.pos.event_index ||
	               pos.confirmed_lsn != r->saved.pos.confirmed_lsn;
	if (changed && save_checkpoint(r, pos) != PG_OK) {
		log_warn("final checkpoint not written; acknowledged events may be published again");
		pgrepl_stop(r->repl, r->confirmed_sent);
		r->repl = NULL;
		return;
	}
	pgrepl_stop(r->repl, pos.confirmed_lsn);
	r->repl = NULL;
	r->confirmed_sent = pos.confirmed_lsn;
}

static void log_summary(const struct relay *r)
{
	char acked[24], inflight[24], confirmed[LSN_BUFLEN];
	snprintf(acked, sizeof acked, "%" PRIu64, r->acked);
	snprintf(inflight, sizeof inflight, "%zu", r->ledger ? ledger_inflight(r->ledger) : (size_t)0);
	log_info("stopped", "published_total", acked, "unacknowledged", inflight, "confirmed_lsn",
	         lsn_format(r->confirmed_sent, confirmed));
}

/* ---- reloading (SIGHUP) ------------------------------------------------------------- */

static void note_restart_key(void *ctx, const char *path)
{
	(void)ctx;
	log_warn("changed setting not applied: it takes a restart", "key", path);
}

/* Logs each line of the loader's error text as one record. */
static void log_config_errors(char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_error("configuration error", "error", line);
}

/* New routes must name what the database has, and be in the publication, before they are
 * used. PG_OK also when PostgreSQL is away: connecting again checks the same. */
static int prepare_routes(struct relay *r, const struct config *next, const struct outbox *outbox)
{
	if (!r->sql)
		return PG_OK;
	int status = pgrepl_check_routes(r->sql, next, outbox);
	if (status == PG_OK)
		status = pgrepl_ensure_publication(r->sql, next);
	if (status == PG_RETRY) {
		pg_lost(r);
		return PG_OK;
	}
	return status;
}

/* Takes next's routes, log level and stats interval; next keeps the old routes and is
 * retired with the old outbox. */
static void apply_reload(struct relay *r, struct config *next, struct outbox *outbox)
{
	struct config *live = r->live_cfg;
	struct route_config *routes = live->routes;
	size_t nroutes = live->nroutes;
	live->routes = next->routes;
	live->nroutes = next->nroutes;
	next->routes = routes;
	next->nroutes = nroutes;
	live->log.level = next->log.level;
	if (!r->log_level_fixed)
		log_set_level(live->log.level);
	live->log.stats_interval_ms = next->log.stats_interval_ms;
	r->next_stats_at = 0; /* re-armed with the new interval */

	r->retired = xrealloc(r->retired, (r->nretired + 1) * sizeof *r->retired);
	r->retired[r->nretired++] = (struct retired){ *next, r->outbox };
	outbox_use_types(outbox, r->types);
	r->outbox = outbox;
	*r->outbox_slot = outbox;
}

static void reload(struct relay *r)
{
	struct config next;
	struct outbox *outbox = NULL;
	char *errors = NULL;
	size_t size = 0;
	FILE *errs = open_memstream(&errors, &size);
	if (!errs)
		abort(); /* only for want of memory */
	notify_reloading();
	log_info("reloading the configuration", "config", r->cfg->path);
	bool loaded = config_load(r->cfg->path, &next, errs) == 0;
	if (loaded)
		outbox = outbox_new(&next, errs);
	fclose(errs);
	int status = outbox ? prepare_routes(r, &next, outbox) : PG_CONFIG;
	if (status != PG_OK) {
		log_config_errors(errors);
		log_error("configuration not reloaded: the running one stays", "config", r->cfg->path);
		outbox_free(outbox);
		if (loaded)
			config_finish(&next);
	} else {
		config_restart_changes(r->cfg, &next, note_restart_key, NULL);
		apply_reload(r, &next, outbox);
		char routes[24];
		snprintf(routes, sizeof routes, "%zu", r->cfg->nroutes);
		log_info("configuration reloaded", "routes", routes);
	}
	free(errors);
	notify_reloaded();
}

/* ---- the loop ----------------------------------------------------------------------- */

static void handled_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGUSR1);
}

int relay_block_signals(void)
{
	sigset_t mask;
	handled_signals(&mask);
	signal(SIGPIPE, SIG_IGN);
	return sigprocmask(SIG_BLOCK, &mask, NULL);
}

static int open_signalfd(void)
{
	sigset_t mask;
	handled_signals(&mask);
	if (relay_block_signals() < 0)
		return -1;
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void handle_signals(struct relay *r)
{
	struct signalfd_siginfo si;
	while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			request_stop(r, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		else if (si.ssi_signo == SIGUSR1)
			log_stats(r, monotonic_ms());
		else if (si.ssi_signo == SIGHUP)
			reload(r);
		else
			log_info("signal ignored by this version", "signal", strsignal((int)si.ssi_signo));
	}
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
	int64_t at = now + 1000; /* MQTT keepalive housekeeping */
	if (!r->repl)
		at = earliest(at, r->pg_retry_at);
	else
		at = earliest(at, r->next_status_at);
	if (mqtt_state(r->mqtt) == MQTT_DOWN)
		at = earliest(at, r->mqtt_retry_at);
	if (r->ledger && pos_after(ledger_event_pos(ledger_safe(r->ledger)), ledger_event_pos(r->saved.pos)))
		at = earliest(at, r->next_checkpoint_at);
	if (r->stop == STOP_SIGNAL)
		at = earliest(at, r->stop_deadline);
	if (r->repl && r->cfg->source.heartbeat_interval_ms)
		at = earliest(at, r->next_heartbeat_at);
	at = earliest(at, r->next_stats_at);
	at = earliest(at, r->next_watchdog_at);
	return at <= now ? 0 : (int)(at - now);
}

enum { FD_SIGNAL, FD_PG, FD_MQTT, NFDS };

static void wait_and_dispatch(struct relay *r)
{
	struct pollfd fds[NFDS] = {
		[FD_SIGNAL] = { .fd = r->sigfd, .events = POLLIN },
		[FD_PG] = { .fd = -1 },
		[FD_MQTT] = { .fd = mqtt_socket(r->mqtt), .events = POLLIN },
	};
	int pending_output = r->repl ? pgrepl_flush(r->repl) : PG_OK;
	if (pending_output < 0)
		pg_lost(r);
	if (r->repl) {
		fds[FD_PG].fd = pgrepl_socket(r->repl);
		fds[FD_PG].events =
		        (short)((can_receive(r) ? POLLIN : 0) | (pending_output == 1 ? POLLOUT : 0));
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
	enum mqtt_state before = mqtt_state(r->mqtt);
	mqtt_handle_io(r->mqtt, fds[FD_MQTT].revents & (POLLIN | POLLERR | POLLHUP),
	               fds[FD_MQTT].revents & POLLOUT);
	mqtt_check_down(r, before);
	session_started(r, mqtt_take_session(r->mqtt));
	notify_when_ready(r);
	if (r->repl && fds[FD_PG].revents & (POLLIN | POLLERR | POLLHUP) && pgrepl_consume(r->repl) != PG_OK)
		pg_lost(r);
	if (r->repl && fds[FD_PG].revents & POLLOUT && pgrepl_flush(r->repl) < 0)
		pg_lost(r);
}

static void step(struct relay *r)
{
	int64_t now = monotonic_ms();
	pg_maintain(r, now);
	mqtt_maintain(r, now);
	if (r->republishing && r->stop != STOP_FATAL)
		republish(r);
	if (r->ev_pending && r->stop == RUNNING && !r->republishing)
		try_publish(r);
	receive(r);
	now = monotonic_ms();
	bookkeeping(r, now);
	check_silence(r, now);
	check_publication(r, now);
	heartbeat(r, now);
	periodic_stats(r, now);
	watchdog(r, now);
}

static int relay_init(struct relay *r, struct config *cfg, struct outbox **outbox,
                      const struct relay_options *opts)
{
	memset(r, 0, sizeof *r);
	r->cfg = r->live_cfg = cfg;
	r->outbox_slot = outbox;
	r->outbox = *outbox;
	r->log_level_fixed = opts->log_level_fixed;
	r->drain_mode = opts->drain;
	r->handled.index = -1;
	event_init(&r->ev);
	backoff_init(&r->pg_backoff, cfg->source.reconnect.min_ms, cfg->source.reconnect.max_ms);
	backoff_init(&r->mqtt_backoff, cfg->broker.reconnect.min_ms, cfg->broker.reconnect.max_ms);
	srandom((unsigned)(getpid() ^ monotonic_ms()));
	r->sigfd = open_signalfd();
	r->watchdog_interval_ms = notify_watchdog_interval_ms();
	pg_set_answer_timeout((int)((int64_t)SILENT_INTERVALS * cfg->source.status_interval_ms > INT32_MAX
	                                    ? INT32_MAX
	                                    : (int64_t)SILENT_INTERVALS * cfg->source.status_interval_ms));
	r->decoder = pgo_decoder_new();
	r->inflight = inflight_new((size_t)cfg->broker.max_inflight);
	r->types = typemap_new();
	outbox_use_types(r->outbox, r->types);
	r->mqtt = mqtt_new(cfg, on_ack, r);
	if (r->sigfd < 0 || !r->mqtt) {
		log_error("cannot initialise", "error", strerror(errno));
		return -1;
	}
	return 0;
}

static void relay_finish(struct relay *r)
{
	pg_close(r);
	mqtt_free(r->mqtt);
	ledger_free(r->ledger);
	pgo_decoder_free(r->decoder);
	event_finish(&r->ev);
	inflight_free(r->inflight);
	typemap_free(r->types);
	for (size_t i = 0; i < r->nretired; i++) {
		outbox_free(r->retired[i].outbox);
		config_finish(&r->retired[i].cfg);
	}
	free(r->retired);
	if (r->sigfd >= 0)
		close(r->sigfd);
}

int relay_run(struct config *cfg, struct outbox **outbox, const struct relay_options *opts)
{
	struct relay r;
	if (relay_init(&r, cfg, outbox, opts) < 0) {
		relay_finish(&r);
		return 1;
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
	log_summary(&r);
	int status = r.stop != STOP_FATAL ? 0 : r.config_mismatch ? 78 : 1;
	relay_finish(&r);
	return status;
}
