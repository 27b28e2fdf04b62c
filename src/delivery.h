/*
 * Delivery: the events handed to the broker and not yet done with (doc/design.md §14-§16).
 *
 * An event published here is numbered in the in-flight ledger and its content kept until
 * its acknowledgement, so that a refusal can be dead-lettered with its content and a lost
 * MQTT session can have everything unacknowledged published again, in order, under new
 * message ids. The ledger answers the safe position for bookkeeping. The window
 * (broker.max_inflight) bounds both, and with them the relay's memory.
 */
#ifndef OUTBOX_DELIVERY_H
#define OUTBOX_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "ledger.h"
#include "mqtt.h"

struct delivery;

struct delivery *delivery_new(size_t window, struct ledger_pos start);
void delivery_free(struct delivery *d);

enum delivery_result {
	DELIVERY_SENT,    /* taken by the MQTT client; an acknowledgement will follow */
	DELIVERY_NOT_NOW, /* not connected, or out of resources: try again later */
	DELIVERY_REFUSED, /* can never be sent as it is: why says why */
};

/* True if one more event may be published now. */
bool delivery_has_room(const struct delivery *d);

/* Publishes *ev. On DELIVERY_SENT its buffers move into the store and *ev gets spare ones
 * back; otherwise *ev is unchanged. */
enum delivery_result delivery_publish(struct delivery *d, struct mqtt *m, struct event *ev, char *why,
                                      size_t whylen);

/* The event an acknowledgement is for, and its number in *seq; NULL for a late repeat (a
 * message of a session given up, or acknowledged before). Valid until it is settled. */
struct event *delivery_find(struct delivery *d, int mid, uint64_t *seq);

/* The event seq is done with: acknowledged, or dead-lettered after a refusal. */
void delivery_settle(struct delivery *d, uint64_t seq);

/* A new MQTT session began: what the client no longer holds awaits publishing again, before
 * anything new. Returns how many events that is. */
size_t delivery_session_started(struct delivery *d, enum mqtt_session session);

/* True while events of a lost session await publishing again. */
bool delivery_republishing(const struct delivery *d);

/* Publishes what delivery_session_started set aside, oldest first. DELIVERY_SENT once all
 * went out; DELIVERY_NOT_NOW to go on later; DELIVERY_REFUSED with *refused (and *seq) set
 * for one that can never go (another broker of the list may allow less than the one that
 * took it): dead-letter it, settle it, and call again. */
enum delivery_result delivery_republish(struct delivery *d, struct mqtt *m, struct event **refused,
                                        uint64_t *seq, char *why, size_t whylen);

/* The ledger's view, for bookkeeping (see ledger.h). */
void delivery_txn_end(struct delivery *d, lsn_t commit_lsn, lsn_t end_lsn);
bool delivery_idle_advance(struct delivery *d, lsn_t lsn);
struct ledger_pos delivery_safe(const struct delivery *d);
size_t delivery_inflight(const struct delivery *d);

/* The commit time of the oldest unacknowledged event in *commit_time; false when there is
 * none. For the stats' lag: once a line, not once an event. */
bool delivery_oldest_commit_time(struct delivery *d, pg_time_t *commit_time);

#endif
