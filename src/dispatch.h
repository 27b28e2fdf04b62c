/*
 * What flows through the loop: changes to events, events to the broker, acknowledgements
 * back (dispatch.c). Called by relay.c on the state of loop.h.
 */
#ifndef OUTBOX_DISPATCH_H
#define OUTBOX_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "mqtt.h"
#include "pgtime.h"

/* Reads what the replication stream has buffered while the relay may take more. */
void dispatch_receive(struct relay *r);

/* Whether to take more from the replication stream now. */
bool dispatch_can_receive(const struct relay *r);

/* Takes the acknowledgements the MQTT client queued: settles each event, or dead-letters a
 * refused one first. */
void dispatch_take_acks(struct relay *r);

/* A new MQTT session: sets aside what must be published again. */
void dispatch_session_started(struct relay *r, enum mqtt_session session);

/* Publishes what a lost session set aside, then the decoded event, then a request's chunk. */
void dispatch_publish_pending(struct relay *r);

/* Whether a request's chunk waits to be placed and has room now: work for the next step,
 * which nothing on the sockets would wake the loop for (the stream is not read meanwhile). */
bool dispatch_can_place(const struct relay *r);

/* Events received and not yet acknowledged, and the commit time of the oldest (0: none). */
size_t dispatch_pending(const struct relay *r);
pg_time_t dispatch_oldest_pending(struct relay *r);

#endif
