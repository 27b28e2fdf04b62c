#include "delivery.h"

#include <stdlib.h>

#include "inflight.h"
#include "util.h"

struct delivery {
	struct ledger *ledger;  /* order, acknowledgements, the safe position */
	struct inflight *store; /* the content, under the ledger's numbers */
	bool republishing;
};

struct delivery *delivery_new(size_t window, struct ledger_pos start)
{
	struct delivery *d = xcalloc(1, sizeof *d);
	d->ledger = ledger_new(window, start);
	d->store = inflight_new(window);
	return d;
}

void delivery_free(struct delivery *d)
{
	if (!d)
		return;
	ledger_free(d->ledger);
	inflight_free(d->store);
	free(d);
}

bool delivery_has_room(const struct delivery *d)
{
	return ledger_has_room(d->ledger);
}

static enum delivery_result from_mqtt(enum mqtt_publish_result res)
{
	return res == MQTT_PUBLISHED ? DELIVERY_SENT
	       : res == MQTT_REFUSED ? DELIVERY_REFUSED
	                             : DELIVERY_NOT_NOW;
}

enum delivery_result delivery_publish(struct delivery *d, struct mqtt *m, struct event *ev, char *why,
                                      size_t whylen)
{
	int mid = 0;
	enum mqtt_publish_result res = mqtt_publish(m, ev, &mid, why, whylen);
	if (res != MQTT_PUBLISHED)
		return from_mqtt(res);
	if (ledger_add(d->ledger, mid, ev->commit_lsn, ev->index) < 0)
		abort(); /* the caller asked delivery_has_room; the client never reuses a live mid */
	/* Kept until acknowledged: for a refusal's dead letter, and to publish again. */
	inflight_keep(d->store, (uint64_t)ledger_seq_of(d->ledger, mid), ev);
	event_trim(ev);
	return DELIVERY_SENT;
}

struct event *delivery_find(struct delivery *d, int mid, uint64_t *seq)
{
	int64_t n = ledger_seq_of(d->ledger, mid);
	if (n < 0)
		return NULL;
	*seq = (uint64_t)n;
	return inflight_find(d->store, *seq);
}

void delivery_settle(struct delivery *d, uint64_t seq)
{
	ledger_ack_seq(d->ledger, seq);
	inflight_forget(d->store, seq);
}

/*
 * After a session the broker did not keep, the client holds nothing: every unacknowledged
 * event goes again. After a resumed one the client sends its QoS 1 and 2 messages again
 * itself, but QoS 0 ones it had not written when the connection broke are gone.
 */
size_t delivery_session_started(struct delivery *d, enum mqtt_session session)
{
	if (session == MQTT_SESSION_NONE)
		return 0;
	size_t cursor = 0, unbound = 0;
	uint64_t seq;
	int mid;
	while (ledger_next_unacked(d->ledger, &cursor, &seq, &mid)) {
		const struct event *ev = inflight_find(d->store, seq);
		if (session == MQTT_SESSION_RESUMED && ev && ev->qos > 0)
			continue;
		ledger_unbind(d->ledger, seq);
		unbound++;
	}
	d->republishing = unbound > 0;
	return unbound;
}

bool delivery_republishing(const struct delivery *d)
{
	return d->republishing;
}

enum delivery_result delivery_republish(struct delivery *d, struct mqtt *m, struct event **refused,
                                        uint64_t *seq, char *why, size_t whylen)
{
	size_t cursor = 0;
	int mid;
	while (d->republishing && ledger_next_unacked(d->ledger, &cursor, seq, &mid)) {
		if (mid)
			continue;
		struct event *ev = inflight_find(d->store, *seq);
		enum mqtt_publish_result res = mqtt_publish(m, ev, &mid, why, whylen);
		if (res == MQTT_NOT_NOW)
			return DELIVERY_NOT_NOW;
		if (res == MQTT_REFUSED) {
			*refused = ev;
			return DELIVERY_REFUSED;
		}
		ledger_bind(d->ledger, *seq, mid);
	}
	d->republishing = false;
	return DELIVERY_SENT;
}

void delivery_txn_end(struct delivery *d, lsn_t commit_lsn, lsn_t end_lsn)
{
	ledger_txn_end(d->ledger, commit_lsn, end_lsn);
}

bool delivery_idle_advance(struct delivery *d, lsn_t lsn)
{
	return ledger_idle_advance(d->ledger, lsn);
}

struct ledger_pos delivery_safe(const struct delivery *d)
{
	return ledger_safe(d->ledger);
}

size_t delivery_inflight(const struct delivery *d)
{
	return ledger_inflight(d->ledger);
}

bool delivery_oldest_commit_time(struct delivery *d, pg_time_t *commit_time)
{
	uint64_t seq;
	const struct event *ev = ledger_oldest_unacked(d->ledger, &seq) ? inflight_find(d->store, seq) : NULL;
	if (ev)
		*commit_time = ev->commit_time;
	return ev != NULL;
}
