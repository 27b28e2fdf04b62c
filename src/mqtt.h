/*
 * The MQTT side: one libmosquitto client driven from the relay's poll loop through the
 * external-loop API (no library thread). The module owns connection and session state and
 * reconnects with backoff when the caller wants it connected (mqtt_maintain);
 * acknowledgements are queued as they arrive and taken by the loop (mqtt_next_ack).
 *
 * Sessions (doc/design.md §2.4): with broker.session_expiry above zero the session is
 * persistent, and a connection that finds it kept resumes it: the client sends again what it
 * holds, so a QoS 2 message already PUBREC'd is released, not repeated. A connection that
 * finds it gone starts with an empty client, and the caller publishes every unacknowledged
 * event again (mqtt_take_session). A session the relay cannot resume (left by an earlier
 * process) is ended before anything is published into it.
 */
#ifndef OUTBOX_MQTT_H
#define OUTBOX_MQTT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "outbox.h"

/* One acknowledged message: PUBACK (QoS 1), PUBCOMP or a refusing PUBREC (QoS 2), or
 * written to the socket (QoS 0). reason: the MQTT 5 reason code, 0 for success; >= 0x80
 * means the broker refused the message. Codes that only say the session is out of step
 * (packet identifier not found or in use, quota exceeded) are not acknowledgements: the
 * module starts a new session instead. */
struct mqtt_ack {
	int mid;
	int reason;
};

enum mqtt_state {
	MQTT_DOWN,       /* no connection: call mqtt_connect (after a backoff) */
	MQTT_CONNECTING, /* TCP or CONNECT/CONNACK under way */
	MQTT_UP,         /* CONNACK accepted */
	MQTT_DENIED,     /* stop, status 78 (logged): before the relay's first start, the broker
	                  * refused the credentials, the client id, the protocol version or a
	                  * route; at any time, it answered QoS 2 with PUBACK */
};

enum mqtt_session {
	MQTT_SESSION_NONE,    /* no new connection since the last call */
	MQTT_SESSION_NEW,     /* the client holds nothing: publish every unacknowledged event again */
	MQTT_SESSION_RESUMED, /* the client sends again what it holds, QoS 1 and 2; QoS 0
	                       * messages not yet written when the connection broke are lost */
};

enum mqtt_publish_result {
	MQTT_PUBLISHED, /* queued in the client; an ack will follow */
	MQTT_NOT_NOW,   /* not connected or out of resources: try again later */
	MQTT_REFUSED,   /* can never be sent as it is (e.g. larger than the broker allows) */
};

struct mqtt;

struct mqtt *mqtt_new(const struct config *cfg);
void mqtt_free(struct mqtt *m);

/* Connects when down, wanted, and the backoff since the last failure has passed. The
 * backoff grows with every failure, starting afresh only after a healthy connection: one
 * that had a message acknowledged or stayed up for one keepalive (doc/design.md §20). */
void mqtt_maintain(struct mqtt *m, int64_t now, bool wanted);

/* The relay has started (READY): from now on the broker's refusals are retried, at error
 * level, instead of ending the process. */
void mqtt_mark_started(struct mqtt *m);

/* The routes were reloaded: they are held against what the broker takes (doc/design.md §24),
 * and a connection to a broker that takes less than they ask ends, retried with the growing
 * backoff and an error line until the configuration fits. */
void mqtt_routes_changed(struct mqtt *m);

/* What keeps the broker connection down, in one line for a status ("broker refused the relay:
 * the broker refuses the credentials (mqtt.example:8883)"), or NULL when up. */
const char *mqtt_trouble(const struct mqtt *m);

/* When mqtt_maintain, called with the same wanted, or mqtt_tick next has work (monotonic
 * ms; 0: nothing). A connection that is down and not wanted has none. */
int64_t mqtt_deadline(const struct mqtt *m, bool wanted);

/* Connections lost so far. */
uint64_t mqtt_reconnects(const struct mqtt *m);

/* The oldest acknowledgement not yet taken; false when there is none. Take them all after
 * every mqtt_handle_io and mqtt_publish, before mqtt_take_session. */
bool mqtt_next_ack(struct mqtt *m, struct mqtt_ack *ack);

enum mqtt_state mqtt_state(const struct mqtt *m);

/* What the connection that reached MQTT_UP found, once per connection; MQTT_SESSION_NONE
 * otherwise. Ask after every mqtt_handle_io (after taking its acknowledgements), before
 * publishing anything new. */
enum mqtt_session mqtt_take_session(struct mqtt *m);

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

/*
 * The status topic (broker.status_topic, doc/design.md §8). The client's Will says "offline"
 * there. Status messages are retained, QoS 1, and not events: their acknowledgements never
 * reach mqtt_next_ack. Like events, they count against the broker's Receive Maximum.
 */

/* True when a status topic is configured, the connection is up and nothing has been
 * published (or tried) on the topic since it came up. */
bool mqtt_status_due(const struct mqtt *m);

/* Publishes payload on the status topic. False when there is none, the connection is not
 * up, or the broker has not acknowledged the last few (this one is skipped). */
bool mqtt_publish_status(struct mqtt *m, const char *payload, size_t len);

/* Sends DISCONNECT and closes, waiting at most timeout_ms for the status messages to be
 * acknowledged and the socket to drain. end_session: nothing is in flight, so an MQTT 5
 * persistent session may end with it. */
void mqtt_disconnect(struct mqtt *m, int timeout_ms, bool end_session);

#endif
