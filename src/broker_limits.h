/*
 * What the broker takes (doc/design.md §24). An MQTT 5 broker says in its CONNACK the highest
 * QoS it accepts, whether it keeps retained messages, the largest packet it reads and how many
 * QoS 1/2 messages it lets a client have unacknowledged; a broker that receives more than it
 * said ends the connection. MQTT 3.1.1 says none of this: everything is assumed. The routes are
 * held against these limits at every connection, so that the relay names what does not fit
 * instead of publishing into a disconnection. Pure.
 */
#ifndef OUTBOX_BROKER_LIMITS_H
#define OUTBOX_BROKER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct broker_limits {
	int max_qos;              /* 0, 1 or 2 (Maximum QoS; 2 when the broker does not say) */
	bool retain_available;    /* Retain Available; true when the broker does not say */
	uint32_t max_packet_size; /* Maximum Packet Size; 0: the broker does not say */
	uint16_t receive_maximum; /* Receive Maximum; 65535 when the broker does not say */
};

/* What a broker that says nothing takes: everything the protocol allows. */
struct broker_limits broker_limits_unsaid(void);

bool broker_limits_same(const struct broker_limits *a, const struct broker_limits *b);

/* True when the broker said less than everything, for one line in the log. */
bool broker_limits_said(const struct broker_limits *l);

/* What does not fit: the configuration key that asks for more than the broker takes, what
 * the broker takes instead, and the fix. */
struct broker_misfit {
	char key[160];   /* "FILE:LINE:COLUMN: routes[N].qos", or "broker.status_topic" */
	char broker[64]; /* "Maximum QoS 1" */
	char fix[320];
};

/*
 * Holds the configuration against the broker's limits. Returns false, with misfit filled in,
 * at the first route (or the status topic) that asks for more than the broker takes and that
 * may not be downgraded: a route may publish QoS 2 at QoS 1, or without the retain flag, only
 * when it says downgrade: true; a route never goes down to QoS 0, which the relay cannot
 * confirm (a downgrade would turn an outage into loss).
 */
bool broker_limits_fit(const struct config *cfg, const struct broker_limits *l, struct broker_misfit *misfit);

/* The QoS and retain flag a message asked for, as published to this broker: lowered only
 * where broker_limits_fit found the route allows it. */
int broker_limits_qos(const struct broker_limits *l, int qos);
bool broker_limits_retain(const struct broker_limits *l, bool retain);

#endif
