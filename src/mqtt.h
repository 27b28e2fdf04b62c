/*
 * The MQTT side: one libmosquitto client driven from the relay's poll loop through the
 * external-loop API (no library thread). The module owns connection state and
 * reconnection is the caller's decision; acknowledgements are reported through the
 * callback given at creation.
 */
#ifndef OUTBOX_MQTT_H
#define OUTBOX_MQTT_H

#include <stdbool.h>

#include "config.h"
#include "outbox.h"

/* Called for each acknowledged event: PUBACK (QoS 1), PUBCOMP or a refusing PUBREC
 * (QoS 2), or written to the socket (QoS 0). reason: MQTT 5 reason code, 0 for success;
 * >= 0x80 means the broker refused the message. May be called from inside mqtt_publish
 * (QoS 0) as well as from mqtt_handle_io. */
typedef void (*mqtt_ack_fn)(void *ctx, int mid, int reason);

enum mqtt_state {
	MQTT_DOWN,       /* no connection: call mqtt_connect (after a backoff) */
	MQTT_CONNECTING, /* TCP or CONNECT/CONNACK under way */
	MQTT_UP,         /* CONNACK accepted */
};

enum mqtt_publish_result {
	MQTT_PUBLISHED, /* queued in the client; an ack will follow */
	MQTT_NOT_NOW,   /* not connected or out of resources: try again later */
	MQTT_REFUSED,   /* can never be sent as it is (e.g. larger than the broker allows) */
};

struct mqtt;

struct mqtt *mqtt_new(const struct config *cfg, mqtt_ack_fn on_ack, void *ctx);
void mqtt_free(struct mqtt *m);

/* Starts connecting (first time or again). Returns 0, or -1 (logged) if the attempt
 * failed at once; the state is then MQTT_DOWN. */
int mqtt_connect(struct mqtt *m);

enum mqtt_state mqtt_state(const struct mqtt *m);

/* The socket to poll, or -1. It changes on every reconnect: never cache it. */
int mqtt_socket(const struct mqtt *m);
bool mqtt_want_write(const struct mqtt *m);

/* Reads and/or writes as poll reported; then runs keepalive housekeeping. */
void mqtt_handle_io(struct mqtt *m, bool readable, bool writable);

/* Keepalive housekeeping; call at least once a second. */
void mqtt_tick(struct mqtt *m);

/* Publishes ev. On MQTT_PUBLISHED *mid is the message id acks will carry. On
 * MQTT_REFUSED why says why. */
enum mqtt_publish_result mqtt_publish(struct mqtt *m, const struct event *ev, int *mid, char *why,
                                      size_t whylen);

/* The name of an MQTT 5 reason code ("Not authorized"). */
const char *mqtt_reason_text(int reason);

/* Sends DISCONNECT and closes, waiting at most timeout_ms for the socket to drain. */
void mqtt_disconnect(struct mqtt *m, int timeout_ms);

#endif
