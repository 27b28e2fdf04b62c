/*
 * Watching for a broker that answers QoS 2 with PUBACK (doc/design.md §24). RabbitMQ has no
 * QoS 2 and acknowledges a QoS 2 PUBLISH as if it were QoS 1; libmosquitto finds that the
 * PUBACK completes no QoS 2 message and ends the connection with a protocol error, and each
 * new session sends the same window again. The watch keeps the packet identifiers of the
 * QoS 2 messages the client holds and what the client said it received, and answers whether
 * a connection that ended with a protocol error ended for that reason. Pure.
 */
#ifndef OUTBOX_QOS2_WATCH_H
#define OUTBOX_QOS2_WATCH_H

#include <stdbool.h>
#include <stdint.h>

struct qos2_watch {
	uint8_t held[65536 / 8]; /* packet identifiers of QoS 2 messages the client holds */
	bool completed;          /* this connection completed a QoS 2 message */
	bool pubacked;           /* the client received a PUBACK for one */
	int breaks;              /* connections in a row that ended suspiciously */
};

/* The client holds (has sent or will send) QoS 2 message mid. */
void qos2_watch_hold(struct qos2_watch *w, int mid);

/* The client no longer holds mid (acknowledged): true when it was a QoS 2 message. */
bool qos2_watch_release(struct qos2_watch *w, int mid);

/* A new client holds nothing: its identifiers start again. */
void qos2_watch_forget(struct qos2_watch *w);

/* A connection is up: it has completed nothing yet. */
void qos2_watch_connected(struct qos2_watch *w);

/* A line libmosquitto logged at debug level: it logs every acknowledgement it reads
 * ("Client ID received PUBACK (Mid: 7, RC:0)"), before it ends the connection over one. */
void qos2_watch_log_line(struct qos2_watch *w, const char *text);

/* The connection ended with a protocol error: true when the broker answers QoS 2 with
 * PUBACK — seen for certain (qos2_watch_seen), or inferred from the second connection in a
 * row that ended so while holding QoS 2 messages and completing none. */
bool qos2_watch_refused(struct qos2_watch *w);

/* True when the client was seen to receive a PUBACK for a QoS 2 message. */
bool qos2_watch_seen(const struct qos2_watch *w);

#endif
