/*
 * What flows through the loop (loop.h): each change the replication stream brings
 * becomes an event, the event goes to the broker, its acknowledgement settles it. An event
 * that can never be published is dead-lettered on the way (doc/design.md §7), and a lost
 * MQTT session has its unacknowledged events published again (doc/design.md §16).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "log.h"
#include "pgframe.h"
#include "pgstream.h"
#include "dispatch.h"
#include "loop.h"
#include "util.h"
#include "watermark.h"

/* ---- events that can never be published (doc/design.md §7) -------------------------- */

/* Dead-letters ev, or stops the relay (bookkeeping_reject). Returns its pg_status. */
static int reject(struct relay *r, const struct event *ev, const char *why)
{
	if (ev->redrive_of) /* refused again: its dead letter says so */
		return requests_settled(r->requests, source_sql(r->pg), r->cfg, ev, why);
	int status = bookkeeping_reject(source_sql(r->pg), r->cfg, ev, why);
	if (status == PG_OK)
		r->stats.dead_lettered++;
	else if (status == PG_FATAL)
		relay_fail(r);
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
		relay_fail(r);
	}
	return status == PG_OK;
}

/* ---- the broker's side -------------------------------------------------------------- */

/* Acknowledgements, in the order they came; a refusal (MQTT 5 reason code >= 0x80) is
 * dead-lettered before the event counts as done. */
void dispatch_take_acks(struct relay *r)
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
			/* Copied now: the event's buffers go back to the store on settling. */
			cleanup_add(r->cleanup, (struct event_pos){ ev->commit_lsn, ev->index },
			            &ev->cleanup_key);
			if (ev->redrive_of &&
			    requests_settled(r->requests, source_sql(r->pg), r->cfg, ev, NULL) != PG_OK)
				log_warn("a re-driven dead letter is published but not marked so");
		}
		delivery_settle(r->delivery, seq);
	}
}

/* A new session: what the client no longer holds goes out again before anything new. */
void dispatch_session_started(struct relay *r, enum mqtt_session session)
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

/* ---- events ------------------------------------------------------------------------- */

static void take_next(struct relay *r);

/* The pending event at pos is published or set aside: a replay skips it from now on. A
 * second event of the same change takes its place. */
static void event_handled(struct relay *r, struct event_pos pos)
{
	r->handled = pos;
	r->ev_pending = false;
	event_trim(&r->ev);
	if (r->ev_next_pending)
		take_next(r);
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
		relay_pg_lost(r, status); /* the event comes again after reconnecting */
	else if (status == PG_OK)
		event_handled(r, pending_pos(r));
}

/* The second event of a change becomes the pending one; one that could not be built is
 * dead-lettered now, in its turn. */
static void take_next(struct relay *r)
{
	struct event spare = r->ev;
	r->ev = r->ev_next;
	r->ev_next = spare;
	r->ev_next_pending = false;
	r->ev_pending = true;
	if (r->ev_next_why[0]) {
		char why[sizeof r->ev_next_why];
		memcpy(why, r->ev_next_why, sizeof why);
		r->ev_next_why[0] = '\0';
		set_aside(r, why);
	}
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

/* The pending event, and a second one of the same change behind it, as far as the MQTT
 * client takes them now. The stream was read with room for one event: the second waits for
 * room in the window. */
static void publish_now(struct relay *r)
{
	while (r->ev_pending && delivery_has_room(r->delivery)) {
		struct event_pos pos = pending_pos(r);
		try_publish(r);
		if (r->ev_pending && !event_pos_after(pending_pos(r), pos))
			break; /* not now */
	}
}

/* The event just built holds all it needs: the message it came from is freed before the
 * MQTT client copies the payload, so that a huge one is not in memory once more meanwhile.
 * Nothing may read the message (the decoded change) after this. */
static void publish_built(struct relay *r)
{
	if (source_stream(r->pg))
		pgstream_release(source_stream(r->pg));
	publish_now(r);
}

static bool next_event(struct relay *r)
{
	r->ev.origin = NULL;
	r->ev.redrive_of = 0;
	buf_reset(&r->ev.cleanup_key); /* set by the builder of a cleanup: delete route's rows */
	r->ev_pending = txn_next_event(&r->txn, r->handled, &r->ev);
	return r->ev_pending;
}

static void handle_insert(struct relay *r, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	if (requests_is_table(r->cfg, rel))
		relay_requests_soon(r);
	requests_note_change(r->requests, rel, row);
	struct outbox_route *route = r->txn.open ? outbox_route_table(*r->outbox, rel) : NULL;
	if (!route || !outbox_route_publishes(route, ROUTE_CHANGE_INSERT) || !next_event(r))
		return;
	char why[256];
	if (outbox_build(route, rel, row, &r->ev, why, sizeof why) < 0)
		set_aside(r, why);
	else
		publish_built(r);
}

/* ---- updates and deletes of routes that publish them (doc/design.md §5) ---- */

/* Numbers the next event of the change being handled: the first into r->ev, a second one
 * behind it into r->ev_next. NULL for a replay: published before. */
static struct event *next_change_event(struct relay *r)
{
	if (!r->ev_pending)
		return next_event(r) ? &r->ev : NULL;
	struct event *ev = &r->ev_next;
	ev->origin = NULL;
	ev->redrive_of = 0;
	buf_reset(&ev->cleanup_key);
	r->ev_next_why[0] = '\0';
	r->ev_next_pending = txn_next_event(&r->txn, r->handled, ev);
	return r->ev_next_pending ? ev : NULL;
}

/* After building ev (status 0, or -1 with why): one that cannot be published is set aside,
 * the second of a change in its turn. False when the change must not go on: the session
 * was lost (it comes again) or the relay stops. */
static bool built(struct relay *r, const struct event *ev, int status, const char *why)
{
	if (status == 0)
		return true;
	if (ev == &r->ev_next) {
		snprintf(r->ev_next_why, sizeof r->ev_next_why, "%s", why);
		return true;
	}
	set_aside(r, why);
	return r->txn.open && !r->ev_pending;
}

static void handle_update(struct relay *r, const struct pgo_relation *rel, const struct pgo_tuple *old,
                          const struct pgo_tuple *new_row)
{
	/* A changed key: a chunk row read under the old one is stale as well (doc/design.md
	 * §22.1). */
	if (old)
		requests_note_change(r->requests, rel, old);
	requests_note_change(r->requests, rel, new_row);
	struct outbox_route *route = outbox_route_table(*r->outbox, rel);
	if (route && !outbox_route_publishes(route, ROUTE_CHANGE_UPDATE)) {
		if (outbox_update_is_new(*r->outbox, rel))
			log_warn("UPDATE of an outbox table is not published (outbox rows are inserted, not "
			         "changed)",
			         "schema", rel->schema, "table", rel->name);
		return;
	}
	if (!route || !r->txn.open)
		return;
	const struct pgo_tuple *row = outbox_update_row(route, rel, old, new_row);
	char why[256];
	struct event *ev;
	/* Off its old topic: cleared there first, then published on the new one. */
	if (outbox_update_moves(route, rel, old, row) && (ev = next_change_event(r)) &&
	    !built(r, ev, outbox_build_delete(route, rel, old, ev, why, sizeof why), why))
		return;
	if ((ev = next_change_event(r)) &&
	    !built(r, ev, outbox_build_update(route, rel, old, row, ev, why, sizeof why), why))
		return;
	if (r->ev_pending)
		publish_built(r);
}

static void handle_delete(struct relay *r, const struct pgo_relation *rel, const struct pgo_tuple *old)
{
	requests_note_change(r->requests, rel, old);
	struct outbox_route *route = r->txn.open ? outbox_route_table(*r->outbox, rel) : NULL;
	if (!route || !outbox_route_publishes(route, ROUTE_CHANGE_DELETE) || !next_event(r))
		return;
	char why[256];
	if (outbox_build_delete(route, rel, old, &r->ev, why, sizeof why) < 0)
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
	if (msg->u.message.transactional && strcmp(msg->u.message.prefix, WATERMARK_PREFIX) == 0) {
		if (r->txn.open)
			requests_mark(r->requests, msg->u.message.content, msg->u.message.len,
			              r->txn.commit_lsn);
		return;
	}
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
	if (drain && r->opts->drain && r->drain.target != LSN_INVALID &&
	    msg->u.message.lsn >= r->drain.target) {
		r->drain.reached = true;
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
	if (relay_query_done(r, catalog_load_domains(source_sql(r->pg), r->types)))
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
	case PGO_DELETE: handle_delete(r, msg->u.delete.rel, &msg->u.delete.old_tuple); break;
	case PGO_UPDATE:
		handle_update(r, msg->u.update.rel, msg->u.update.has_old ? &msg->u.update.old_tuple : NULL,
		              &msg->u.update.new_tuple);
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
		relay_pg_lost(r, PG_RETRY);
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
bool dispatch_can_receive(const struct relay *r)
{
	return relay_streaming(r) && r->stop.reason == RUNNING && !r->drain.reached && !r->ev_pending &&
	       !requests_placing(r->requests) && !delivery_republishing(r->delivery) &&
	       mqtt_state(r->mqtt) == MQTT_UP && delivery_has_room(r->delivery);
}

/* Handles what the stream has buffered; returns how many messages. */
static size_t receive_buffered(struct relay *r)
{
	size_t handled = 0;
	while (dispatch_can_receive(r)) {
		struct repl_frame frame;
		bool got;
		int status = pgstream_next(source_stream(r->pg), &frame, &got);
		if (status == PG_OK && !got)
			break;
		if (status == PG_FATAL) {
			relay_pg_lost(r, PG_FATAL);
			relay_fail(r);
			break;
		}
		if (status != PG_OK || handle_frame(r, &frame) < 0) {
			relay_pg_lost(r, status != PG_OK ? status : PG_RETRY);
			break;
		}
		handled++;
	}
	return handled;
}

void dispatch_receive(struct relay *r)
{
	bool listening = dispatch_can_receive(r);
	size_t handled = receive_buffered(r);
	/* Once a batch, not once a message: the clock is read off the hot path. */
	if (relay_streaming(r) && (!listening || handled))
		source_heard(r->pg, monotonic_ms());
}

/* Events received and not yet acknowledged: in flight, and the one decoded. */
size_t dispatch_pending(const struct relay *r)
{
	return (r->delivery ? delivery_inflight(r->delivery) : 0) + (r->ev_pending ? 1 : 0) +
	       (r->ev_next_pending ? 1 : 0);
}

/* The commit time of the oldest of them; 0: none. */
pg_time_t dispatch_oldest_pending(struct relay *r)
{
	pg_time_t t = 0;
	if (r->delivery && delivery_oldest_commit_time(r->delivery, &t))
		return t;
	return r->ev_pending ? r->ev.commit_time : 0;
}

bool dispatch_can_place(const struct relay *r)
{
	/* A clean stop places the rest of the chunk first: its events then go out once. */
	return r->delivery && requests_placing(r->requests) && !r->ev_pending &&
	       r->stop.reason != STOP_FATAL && relay_streaming(r) && !delivery_republishing(r->delivery) &&
	       delivery_has_room(r->delivery);
}

/* A chunk of a request (doc/design.md §22) becomes the events of its marker's transaction,
 * while the stream waits. */
static void place_rows(struct relay *r)
{
	char why[256];
	while (dispatch_can_place(r) && requests_next_row(r->requests)) {
		if (!next_event(r))
			continue; /* handled before the session was lost */
		if (requests_build(r->requests, *r->outbox, &r->ev, why, sizeof why) < 0)
			set_aside(r, why);
		else
			try_publish(r);
	}
}

/* Publishing: what a lost session set aside first, then the decoded event, then a chunk. */
void dispatch_publish_pending(struct relay *r)
{
	if (!r->delivery || r->stop.reason == STOP_FATAL)
		return;
	if (delivery_republishing(r->delivery))
		republish(r);
	bool going_on = r->stop.reason == RUNNING || requests_placing(r->requests);
	if (r->ev_pending && going_on && !delivery_republishing(r->delivery))
		publish_now(r);
	place_rows(r);
}
