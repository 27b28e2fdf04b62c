#include "mqtt.h"

#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "broker_limits.h"
#include "buf.h"
#include "log.h"
#include "qos2_watch.h"
#include "refusal.h"
#include "status_topic.h"
#include "util.h"

/* What the relay knows of the broker's session for its client id. */
enum broker_session {
	SESSION_UNKNOWN, /* maybe one left by an earlier client: its state is not ours */
	SESSION_EMPTY,   /* none, or one of ours that holds no message */
	SESSION_OURS,    /* made with this client object, whose messages match its state */
};

/* Acknowledgements as the client reported them, for the loop to take in order. Callbacks
 * only record: a refusal needs SQL (a dead letter), which has no place inside the client's
 * read. QoS 0 messages are acknowledged inside mqtt_publish, before the caller knows their
 * mid: queued, they reach it after the call, like any other. */
struct ack_queue {
	struct mqtt_ack *items;
	size_t cap, head, count;
};

/* Status messages (broker.status_topic) published and not yet acknowledged: a few at most,
 * since one goes out a stats interval. */
#define STATUS_INFLIGHT_MAX 8

struct mqtt {
	const struct config *cfg;
	struct mosquitto *mosq;
	enum mqtt_state state;
	struct ack_queue acks;
	struct backoff backoff;
	int64_t retry_at;    /* when MQTT_DOWN: the next attempt */
	uint64_t reconnects; /* connections lost */
	int64_t last_misc_ms;
	size_t host;        /* index in cfg->broker.hosts of the one tried now */
	bool reached_up;    /* the current attempt got a CONNACK */
	bool relay_started; /* the relay has started: refusals are retried */
	int64_t up_at;      /* when the connection reached MQTT_UP */
	bool carried;       /* the connection has had a message acknowledged */
	char trouble[512];

	enum broker_session session;
	bool persistent;           /* broker.session_expiry > 0: sessions outlive a connection */
	bool purging;              /* this connection only ends a session the client cannot resume */
	bool reset_client;         /* before the next connection, drop the messages the client holds */
	bool connect_now;          /* the next connection follows at once, to the same broker */
	enum mqtt_session started; /* for mqtt_take_session */

	/* The status topic (doc/design.md §8). Its messages are not events: their
	 * acknowledgements never reach the ack queue. */
	int status_mids[STATUS_INFLIGHT_MAX]; /* in the client, not yet acknowledged */
	size_t nstatus;
	bool status_said;    /* this connection published on the status topic */
	bool status_refused; /* the broker refused a status message (said once) */

	/* What the broker said it takes (MQTT 5 CONNACK; everything on 3.1.1). */
	struct broker_limits limits;
	/* MQTT 5 connections the broker closed after CONNECT without answering, in a row. */
	int unanswered;
	/* QoS 2 on a broker that answers it with PUBACK (doc/design.md §24). */
	struct qos2_watch qos2;
};

static void ack_push(struct ack_queue *q, int mid, int reason)
{
	if (q->count == q->cap) {
		/* Grow, unrolling the ring at its start. */
		size_t cap = q->cap ? 2 * q->cap : 64;
		struct mqtt_ack *items = xmalloc(cap * sizeof *items);
		for (size_t i = 0; i < q->count; i++)
			items[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = items;
		q->cap = cap;
		q->head = 0;
	}
	q->items[(q->head + q->count++) % q->cap] = (struct mqtt_ack){ mid, reason };
}

bool mqtt_next_ack(struct mqtt *m, struct mqtt_ack *ack)
{
	struct ack_queue *q = &m->acks;
	if (q->count == 0)
		return false;
	*ack = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return true;
}

/* Where the next attempt goes: the same broker after a connection that worked, the next
 * one in the list after one that did not. */
static void choose_next_host(struct mqtt *m)
{
	size_t was = m->host;
	if (!m->reached_up)
		m->host = (m->host + 1) % m->cfg->broker.nhosts;
	m->reached_up = false;
	/* Another broker's session for this client id, if it has one, is not the one this
	 * client's messages belong to (unless the brokers share sessions, which the relay cannot
	 * tell): start from an empty client, and end such a session before publishing. */
	if (m->host != was && m->session == SESSION_OURS) {
		m->session = SESSION_UNKNOWN;
		m->reset_client = true;
	}
}

static const struct broker_address *current_host(const struct mqtt *m)
{
	return &m->cfg->broker.hosts[m->host];
}

/* Ends the connection that just got its CONNACK, before the client sends anything else: the
 * DISCONNECT is queued ahead of whatever the client would resend, and the socket closes once
 * it is written, so nothing of the old session reaches the broker. */
static void end_connection(struct mqtt *m, bool reset_client)
{
	m->reset_client = reset_client;
	m->connect_now = true;
	mosquitto_disconnect(m->mosq);
}

static void log_connected(const struct mqtt *m, const char *session)
{
	char port[8];
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	log_info("connected to broker", "host", current_host(m)->host, LOG_NUMBER("port"), port, "session",
	         session);
}

/*
 * A session the broker kept is resumed: the client sends again what it holds, as the
 * protocol says (PUBLISH with DUP, or PUBREL for what was PUBREC'd). A session it did not
 * keep must not see those resends: a PUBREL there is answered with PUBCOMP for a message
 * the broker never forwarded. The client is then replaced by an empty one and the caller
 * publishes every unacknowledged event again (mqtt_take_session).
 */
static void on_session(struct mqtt *m, bool present)
{
	if (m->purging) {
		m->purging = false;
		m->session = SESSION_EMPTY;
		end_connection(m, true);
		return;
	}
	if (m->persistent && present && m->session == SESSION_UNKNOWN) {
		log_info("the broker holds a session of this client id that the relay cannot resume; ending"
		         " it before publishing",
		         "client_id", m->cfg->broker.client_id);
		m->purging = true;
		end_connection(m, true);
		return;
	}
	if (!present && m->session == SESSION_OURS) {
		log_warn("the broker did not keep the session: every message not completely acknowledged is"
		         " published again",
		         "client_id", m->cfg->broker.client_id);
		m->session = SESSION_EMPTY;
		end_connection(m, true);
		return;
	}
	bool resumed = present && m->session == SESSION_OURS;
	m->session = m->persistent ? SESSION_OURS : SESSION_EMPTY;
	m->state = MQTT_UP;
	m->reached_up = true;
	m->up_at = monotonic_ms();
	m->carried = false;
	m->trouble[0] = '\0';
	m->started = resumed ? MQTT_SESSION_RESUMED : MQTT_SESSION_NEW;
	m->status_said = false;
	qos2_watch_connected(&m->qos2);
	log_connected(m, resumed ? "resumed" : "new");
}

static uint32_t jitter(void)
{
	return (uint32_t)random();
}

static bool connected(const struct mqtt *m)
{
	return m->state == MQTT_CONNECTING || m->state == MQTT_UP;
}

/* Healthy (doc/design.md §20): a connection that had a message acknowledged, or stayed up for
 * one keepalive. A broker that accepts and then drops every connection at once (a session
 * taken over again and again, a listener that closes) is retried ever more slowly. */
static bool was_healthy(const struct mqtt *m)
{
	return m->state == MQTT_UP &&
	       (m->carried || monotonic_ms() - m->up_at >= (int64_t)m->cfg->broker.keepalive_ms);
}

static uint32_t schedule_retry(struct mqtt *m, bool healthy)
{
	uint32_t delay = backoff_after_session(&m->backoff, healthy, jitter());
	m->retry_at = monotonic_ms() + delay;
	return delay;
}

/* A connection ended. Without persistent sessions nothing the client holds can be resumed.
 * The next attempt waits out the backoff, unless the module ended the connection itself to
 * open a better one at once (on_session). Returns that delay, or 0 when none was set. */
static uint32_t connection_gone(struct mqtt *m)
{
	if (!connected(m))
		return 0;
	bool healthy = was_healthy(m);
	m->state = MQTT_DOWN;
	if (!m->persistent)
		m->reset_client = true;
	if (m->connect_now)
		return 0;
	m->reconnects++;
	return schedule_retry(m, healthy);
}

/* One line for a connection that failed or ended: which broker, why, and when the next
 * attempt comes; the same in a few words for mqtt_trouble. */
static void log_gone(const struct mqtt *m, enum log_level level, const char *msg, const char *reason,
                     uint32_t delay)
{
	char port[8], in[16];
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	snprintf(in, sizeof in, "%" PRIu32 "ms", delay);
	log_write(level, msg, "host", current_host(m)->host, LOG_NUMBER("port"), port, "reason", reason,
	          delay ? "in" : NULL, in, (const char *)NULL);
}

static void note_trouble(struct mqtt *m, const char *what, const char *reason)
{
	snprintf(m->trouble, sizeof m->trouble, "%s: %s (%s:%d)", what, reason, current_host(m)->host,
	         current_host(m)->port);
}

/* The broker says no to the configuration, which no retry changes: before the relay's first
 * start the process ends (MQTT_DENIED), afterwards the connection is retried with the growing
 * backoff (another broker of the list, or a reloaded configuration, may do). Returns whether
 * it is retried, with the delay in `in` ("" when not). */
static bool refused(struct mqtt *m, char in[16])
{
	m->purging = false;
	m->connect_now = false;
	in[0] = '\0';
	if (!m->relay_started) {
		m->state = MQTT_DENIED;
		return false;
	}
	snprintf(in, 16, "%" PRIu32 "ms", connection_gone(m));
	return true;
}

/* The broker answered CONNECT with a refusal. One that no retry can change (credentials,
 * client id, protocol version) ends the process before its first start, in one line that
 * says what to fix; afterwards, like any other refusal, it waits out the backoff. */
static void connack_refused(struct mqtt *m, int rc)
{
	bool v5 = m->cfg->broker.protocol == BROKER_MQTT_V5;
	const char *reason = v5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
	enum refusal r = refusal_of_connack(v5, rc);
	if (r == REFUSAL_NONE) {
		m->purging = false;
		m->connect_now = false;
		log_gone(m, LOG_WARN, "broker refused the connection", reason, connection_gone(m));
		note_trouble(m, "broker refused the connection", reason);
		return;
	}
	char port[8], fix[512], in[16];
	struct refusal_who who = { m->cfg->broker.username, NULL, m->cfg->broker.client_id, v5 };
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	refusal_fix(r, &who, fix, sizeof fix);
	note_trouble(m, "broker refused the relay", refusal_cause(r));
	bool retried = refused(m, in);
	log_write(LOG_ERROR,
	          retried ? "the broker refused the relay; retrying"
	                  : "the broker refused the relay before its first start; stopping",
	          "cause", refusal_cause(r), "host", current_host(m)->host, LOG_NUMBER("port"), port,
	          "username", m->cfg->broker.username ? m->cfg->broker.username : "", "client_id",
	          m->cfg->broker.client_id, "reason", reason, "fix", fix, retried ? "in" : NULL, in,
	          (const char *)NULL);
}

/* What an MQTT 5 CONNACK says the broker takes; MQTT 3.1.1 says nothing. */
static struct broker_limits read_limits(const struct mqtt *m, const mosquitto_property *props)
{
	struct broker_limits l = broker_limits_unsaid();
	if (m->cfg->broker.protocol != BROKER_MQTT_V5)
		return l;
	uint8_t byte;
	if (mosquitto_property_read_byte(props, MQTT_PROP_MAXIMUM_QOS, &byte, false))
		l.max_qos = byte;
	if (mosquitto_property_read_byte(props, MQTT_PROP_RETAIN_AVAILABLE, &byte, false))
		l.retain_available = byte != 0;
	mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &l.max_packet_size, false);
	mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &l.receive_maximum, false);
	return l;
}

/* One line when a broker says it takes less than everything, and again when that changes. */
static void log_limits(const struct mqtt *m, const struct broker_limits *was)
{
	const struct broker_limits *l = &m->limits;
	if (!broker_limits_said(l) || broker_limits_same(l, was))
		return;
	char qos[4], packet[16], receive[8], port[8];
	snprintf(qos, sizeof qos, "%d", l->max_qos);
	snprintf(packet, sizeof packet, "%" PRIu32, l->max_packet_size);
	snprintf(receive, sizeof receive, "%u", (unsigned)l->receive_maximum);
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	log_info("the broker takes less than MQTT allows", "host", current_host(m)->host, LOG_NUMBER("port"),
	         port, LOG_NUMBER("maximum_qos"), qos, "retain_available",
	         l->retain_available ? "true" : "false", LOG_NUMBER("maximum_packet_size"),
	         l->max_packet_size ? packet : "0", LOG_NUMBER("receive_maximum"), receive);
}

/* A route asks for more than the broker takes: a refusal of the configuration. */
static void limits_refused(struct mqtt *m, const struct broker_misfit *misfit)
{
	char port[8], in[16];
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	note_trouble(m, "the broker takes less than the configuration asks", misfit->broker);
	bool retried = refused(m, in);
	log_write(LOG_ERROR,
	          retried ? "the broker takes less than the configuration asks; retrying"
	                  : "the broker takes less than the configuration asks; stopping",
	          "key", misfit->key, "broker", misfit->broker, "host", current_host(m)->host,
	          LOG_NUMBER("port"), port, "fix", misfit->fix, retried ? "in" : NULL, in,
	          (const char *)NULL);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	struct mqtt *m = obj;
	m->unanswered = 0;
	if (rc != 0) {
		/* The library would retry on its own terms: close, and back off. */
		connack_refused(m, rc);
		mosquitto_disconnect(mosq);
		return;
	}
	struct broker_limits was = m->limits;
	m->limits = read_limits(m, props);
	log_limits(m, &was);
	struct broker_misfit misfit;
	if (!broker_limits_fit(m->cfg, &m->limits, &misfit)) {
		/* Queued ahead of anything the client would send again (end_connection). */
		limits_refused(m, &misfit);
		mosquitto_disconnect(mosq);
		return;
	}
	on_session(m, flags & 1);
}

/* A broker that does not speak MQTT 5 may close the connection on its CONNECT without a
 * word (RabbitMQ 3) instead of refusing the version in a CONNACK; so does an address where no
 * MQTT broker answers (a proxy without its backend). After a few in a row, with never an
 * answer, the line says both, with the fix for the first. */
#define UNANSWERED_TO_NAME 3

static void log_unanswered(struct mqtt *m, uint32_t delay)
{
	const char *reason = "the broker closed the connection without answering CONNECT";
	if (++m->unanswered < UNANSWERED_TO_NAME) {
		log_gone(m, LOG_WARN, "disconnected from broker", reason, delay);
		note_trouble(m, "disconnected from broker", reason);
		return;
	}
	char port[8], in[16], times[8];
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	snprintf(in, sizeof in, "%" PRIu32 "ms", delay);
	snprintf(times, sizeof times, "%d", m->unanswered);
	log_write(
	        LOG_ERROR, "disconnected from broker", "host", current_host(m)->host, LOG_NUMBER("port"),
	        port, "reason", "the broker closes every MQTT 5 CONNECT without answering",
	        LOG_NUMBER("times"), times, "cause",
	        "the broker does not support MQTT 5 (as RabbitMQ 3), or no MQTT broker answers at this "
	        "address",
	        "fix",
	        "set broker.protocol: mqttv311 for a broker without MQTT 5; else check broker.host and port",
	        "in", in, (const char *)NULL);
	note_trouble(m, "the broker closes every MQTT 5 CONNECT without answering",
	             "set broker.protocol: mqttv311 if it does not support MQTT 5");
}

/* Which routes publish at QoS 2, for the fix: "routes[0], routes[3]". */
static void qos2_routes(const struct config *cfg, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->nroutes && len < size; i++) {
		if (cfg->routes[i].qos == 2)
			len += (size_t)snprintf(buf + len, size - len, "%sroutes[%zu]", len ? ", " : "", i);
	}
}

static void stop_for_qos2(struct mqtt *m)
{
	char port[8], routes[256], fix[512];
	snprintf(port, sizeof port, "%d", current_host(m)->port);
	qos2_routes(m->cfg, routes, sizeof routes);
	snprintf(fix, sizeof fix,
	         "set qos: 1 on %s (consumers drop the repeats QoS 1 may bring by their event-id)", routes);
	m->state = MQTT_DENIED;
	note_trouble(m, "the broker does not support QoS 2", "set qos: 1");
	log_write(LOG_ERROR,
	          qos2_watch_seen(&m->qos2)
	                  ? "the broker does not support QoS 2: it answered a QoS 2 message with PUBACK;"
	                    " stopping"
	                  : "the broker does not support QoS 2: it ends the connection before completing"
	                    " a QoS 2 message; stopping",
	          "host", current_host(m)->host, LOG_NUMBER("port"), port, "routes", routes, "fix", fix,
	          (const char *)NULL);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
	struct mqtt *m = obj;
	(void)mosq;
	(void)props;
	/* rc is the broker's MQTT 5 reason code when it said why (0x8E: session taken over
	 * by a client with the same id), else a library error. */
	bool unexpected = connected(m) && rc != 0;
	bool unanswered = m->state == MQTT_CONNECTING && rc == MOSQ_ERR_CONN_LOST &&
	                  m->cfg->broker.protocol == BROKER_MQTT_V5;
	const char *reason = rc >= 0x80 ? mosquitto_reason_string(rc) : mosquitto_strerror(rc);
	if (unexpected && rc == MOSQ_ERR_PROTOCOL && qos2_watch_refused(&m->qos2)) {
		stop_for_qos2(m);
		return;
	}
	uint32_t delay = connection_gone(m);
	if (unexpected && unanswered) {
		log_unanswered(m, delay);
	} else if (unexpected) {
		log_gone(m, LOG_WARN, "disconnected from broker", reason, delay);
		note_trouble(m, "disconnected from broker", reason);
	}
}

/* Reason codes that say the broker did not take the message this time, not that it never
 * will: its session state and ours disagree (a packet identifier it does not know, or one it
 * still holds for another message) or it has no room now. Not a delivery, not a refusal. */
static bool reason_is_session_trouble(int reason)
{
	return reason == MQTT_RC_PACKET_ID_IN_USE || reason == MQTT_RC_PACKET_ID_NOT_FOUND ||
	       reason == MQTT_RC_QUOTA_EXCEEDED;
}

/* A status message's acknowledgement: true, and it is forgotten, when mid is one. */
static bool status_acked(struct mqtt *m, int mid)
{
	for (size_t i = 0; i < m->nstatus; i++) {
		if (m->status_mids[i] == mid) {
			m->status_mids[i] = m->status_mids[--m->nstatus];
			return true;
		}
	}
	return false;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
	struct mqtt *m = obj;
	(void)mosq;
	(void)props;
	if (status_acked(m, mid)) {
		/* Not an event, whatever the broker said of it; a refusal is an ACL to fix. */
		if (reason >= 0x80 && !m->status_refused)
			log_warn("the broker refuses messages on the status topic", "topic",
			         m->cfg->broker.status_topic, "reason", mosquitto_reason_string(reason));
		m->status_refused |= reason >= 0x80;
		return;
	}
	qos2_watch_release(&m->qos2, mid);
	if (!reason_is_session_trouble(reason)) {
		/* The connection carries data: a later failure starts the backoff afresh. */
		m->carried = true;
		ack_push(&m->acks, mid, reason);
		return;
	}
	/* The message stays unacknowledged; a clean session gets it published again. */
	if (m->state == MQTT_UP) {
		log_warn("the broker did not take a message; starting a new session to publish again"
		         " every message not completely acknowledged",
		         "reason", mosquitto_reason_string(reason));
		m->state = MQTT_CONNECTING;
		m->purging = true;
		end_connection(m, true);
	}
}

static void on_log(struct mosquitto *mosq, void *obj, int level, const char *text)
{
	(void)mosq;
	if (level & MOSQ_LOG_DEBUG)
		qos2_watch_log_line(&((struct mqtt *)obj)->qos2, text);
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		log_warn("libmosquitto", "detail", text);
	else if (level & MOSQ_LOG_DEBUG && log_enabled(LOG_DEBUG))
		log_debug("libmosquitto", "detail", text);
}

static int protocol_version(const struct config *cfg)
{
	return cfg->broker.protocol == BROKER_MQTT_V5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
}

/* The system's trust store, used when broker.tls.ca_file is not set. */
#define SYSTEM_CA_DIR "/etc/ssl/certs"

static int set_credentials(struct mosquitto *mosq, const struct config *cfg)
{
	int rc = MOSQ_ERR_SUCCESS;
	if (cfg->broker.username)
		rc = mosquitto_username_pw_set(mosq, cfg->broker.username, cfg->broker.password.value);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_error("cannot set the broker credentials", "error", mosquitto_strerror(rc));
		return -1;
	}
	if (!cfg->broker.tls.enabled)
		return 0;
	rc = mosquitto_tls_set(mosq, cfg->broker.tls.ca_file, cfg->broker.tls.ca_file ? NULL : SYSTEM_CA_DIR,
	                       cfg->broker.tls.cert_file, cfg->broker.tls.key_file, NULL);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_tls_insecure_set(mosq, !cfg->broker.tls.verify_hostname);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_error("cannot set up TLS for the broker", "error",
		          rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

/* application/json on MQTT 5, for the status topic's messages and its Will. */
static mosquitto_property *status_properties(const struct mqtt *m)
{
	mosquitto_property *props = NULL;
	if (m->cfg->broker.protocol == BROKER_MQTT_V5)
		mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
	return props;
}

/*
 * doc/design.md §8: the broker publishes the Will, retained, when a connection ends without
 * DISCONNECT (the relay was killed, or the connection was lost), so that the status topic
 * says "offline". Every client object gets it: the first and each replacement. On MQTT 5 it
 * has no Will Delay Interval, so the broker publishes it at once rather than after a delay
 * that a quick reconnection would cancel; the reconnected relay says "online" again.
 */
static int set_will(struct mqtt *m)
{
	if (!m->cfg->broker.status_topic)
		return 0;
	struct buf payload = BUF_INIT;
	status_topic_offline(&payload, m->cfg->broker.client_id);
	mosquitto_property *props = status_properties(m);
	int rc = mosquitto_will_set_v5(m->mosq, m->cfg->broker.status_topic, (int)payload.len, payload.data,
	                               1, true, props);
	buf_finish(&payload); /* copied */
	if (rc != MOSQ_ERR_SUCCESS) {
		mosquitto_property_free_all(&props); /* the library keeps them only on success */
		log_error("cannot set the MQTT Will", "error", mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

/* Sets a new or reinitialised client up from the configuration. */
static int setup_client(struct mqtt *m)
{
	const struct config *cfg = m->cfg;
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol_version(cfg));
	/* The client sends at most this many QoS 1/2 messages before acknowledgements (20
	 * unless told; MQTT 5 brokers may lower it with their Receive Maximum): the window
	 * is ours to choose, not the library's. */
	mosquitto_int_option(m->mosq, MOSQ_OPT_SEND_MAXIMUM, cfg->broker.max_inflight);
	if (set_credentials(m->mosq, cfg) < 0)
		return -1;
	mosquitto_connect_v5_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(m->mosq, on_publish);
	mosquitto_log_callback_set(m->mosq, on_log);
	return set_will(m);
}

/* A persistent session needs clean start off; a purge, and every connection without
 * persistent sessions, starts clean. */
static bool clean_start(const struct mqtt *m)
{
	return !m->persistent || m->purging;
}

struct mqtt *mqtt_new(const struct config *cfg)
{
	struct mqtt *m = xcalloc(1, sizeof *m);
	m->cfg = cfg;
	m->state = MQTT_DOWN;
	backoff_init(&m->backoff, cfg->broker.reconnect.min_ms, cfg->broker.reconnect.max_ms);
	m->persistent = cfg->broker.session_expiry_ms > 0;
	m->session = SESSION_UNKNOWN;
	m->limits = broker_limits_unsaid();
	m->mosq = mosquitto_new(cfg->broker.client_id, clean_start(m), m);
	if (!m->mosq) {
		log_error("cannot create the MQTT client");
		free(m);
		return NULL;
	}
	if (setup_client(m) < 0) {
		mosquitto_destroy(m->mosq);
		free(m);
		return NULL;
	}
	/* The first attempt goes to the first broker of the list. */
	m->host = cfg->broker.nhosts - 1;
	return m;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	mosquitto_destroy(m->mosq);
	free(m->acks.items);
	free(m);
}

/* A client without the messages the old one holds (outside any callback of the old one). */
static int replace_client(struct mqtt *m)
{
	m->reset_client = false;
	m->nstatus = 0; /* their ids are free again in the new client */
	qos2_watch_forget(&m->qos2);
	int rc = mosquitto_reinitialise(m->mosq, m->cfg->broker.client_id, clean_start(m), m);
	if (rc != MOSQ_ERR_SUCCESS || setup_client(m) < 0) {
		log_error("cannot set the MQTT client up again", "error", mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * MQTT 5 says in CONNECT how long the broker keeps a persistent session after the connection
 * ends (without it, not at all). libmosquitto 2.0 takes CONNECT properties only in its
 * blocking connect, which stores them before it checks its arguments and would then block
 * the loop in connect(): given an invalid port it stores them and returns, and the
 * non-blocking connect that follows sends them.
 */
static int store_connect_properties(struct mqtt *m)
{
	if (m->cfg->broker.protocol != BROKER_MQTT_V5)
		return 0;
	mosquitto_property *props = NULL;
	if (!clean_start(m))
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
		                             m->cfg->broker.session_expiry_ms / 1000);
	int rc = mosquitto_connect_bind_v5(m->mosq, current_host(m)->host, -1, 0, NULL, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_INVAL) {
		log_error("cannot set the MQTT session expiry", "error", mosquitto_strerror(rc));
		return -1;
	}
	return 0;
}

static int start_connection(struct mqtt *m)
{
	const struct config *cfg = m->cfg;
	int keepalive = (int)(cfg->broker.keepalive_ms / 1000);
	int rc;

	if (m->connect_now)
		m->connect_now = false; /* the same broker, which holds the session in question */
	else
		choose_next_host(m);
	if ((m->reset_client && replace_client(m) < 0) || store_connect_properties(m) < 0) {
		m->state = MQTT_DOWN;
		schedule_retry(m, false);
		return -1;
	}
	const struct broker_address *to = current_host(m);
	/* A persistent session's client keeps the messages it holds unacknowledged and sends
	 * them again once connected, if the broker kept the session (on_session). */
	rc = mosquitto_connect_async(m->mosq, to->host, to->port, keepalive);
	if (rc != MOSQ_ERR_SUCCESS) {
		const char *error = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
		m->state = MQTT_DOWN;
		log_gone(m, LOG_WARN, "cannot connect to broker", error, schedule_retry(m, false));
		note_trouble(m, "cannot connect to broker", error);
		return -1;
	}
	m->state = MQTT_CONNECTING;
	return 0;
}

void mqtt_maintain(struct mqtt *m, int64_t now, bool wanted)
{
	if (!wanted || m->state != MQTT_DOWN || now < m->retry_at)
		return;
	start_connection(m); /* a failure has set the next attempt */
}

void mqtt_mark_started(struct mqtt *m)
{
	m->relay_started = true;
}

void mqtt_routes_changed(struct mqtt *m)
{
	struct broker_misfit misfit;
	if (m->state != MQTT_UP || broker_limits_fit(m->cfg, &m->limits, &misfit))
		return;
	limits_refused(m, &misfit);
	mosquitto_disconnect(m->mosq);
}

const char *mqtt_trouble(const struct mqtt *m)
{
	if (m->state == MQTT_UP)
		return NULL;
	return m->trouble[0] ? m->trouble : "broker not connected yet";
}

int64_t mqtt_deadline(const struct mqtt *m, bool wanted)
{
	if (m->state == MQTT_DENIED || (m->state == MQTT_DOWN && !wanted))
		return 0; /* nothing more to do, or not now */
	return m->state == MQTT_DOWN ? m->retry_at : m->last_misc_ms + 1000;
}

uint64_t mqtt_reconnects(const struct mqtt *m)
{
	return m->reconnects;
}

enum mqtt_session mqtt_take_session(struct mqtt *m)
{
	enum mqtt_session started = m->started;
	m->started = MQTT_SESSION_NONE;
	return started;
}

enum mqtt_state mqtt_state(const struct mqtt *m)
{
	return m->state;
}

int mqtt_socket(const struct mqtt *m)
{
	return connected(m) ? mosquitto_socket(m->mosq) : -1;
}

bool mqtt_want_write(const struct mqtt *m)
{
	return connected(m) && mosquitto_want_write(m->mosq);
}

/* A failed read or write means the connection is gone, whatever the callback said. */
static void check_io(struct mqtt *m, int rc, const char *what)
{
	if (rc == MOSQ_ERR_SUCCESS || !connected(m))
		return;
	const char *error = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
	char reason[128];
	snprintf(reason, sizeof reason, "%s during %s", error, what);
	log_gone(m, LOG_WARN, "broker connection lost", reason, connection_gone(m));
	note_trouble(m, "broker connection lost", reason);
}

void mqtt_handle_io(struct mqtt *m, bool readable, bool writable)
{
	if (readable && connected(m))
		check_io(m, mosquitto_loop_read(m->mosq, 1), "read");
	if (writable && connected(m))
		check_io(m, mosquitto_loop_write(m->mosq, 1), "write");
	/* A connection ended on purpose (on_session) is followed by the next one at once; a
	 * failure has set the next attempt. */
	if (m->state == MQTT_DOWN && m->connect_now)
		start_connection(m);
	mqtt_tick(m);
}

void mqtt_tick(struct mqtt *m)
{
	int64_t now = monotonic_ms();
	if (!connected(m) || now - m->last_misc_ms < 1000)
		return;
	m->last_misc_ms = now;
	check_io(m, mosquitto_loop_misc(m->mosq), "keepalive");
}

static enum mqtt_publish_result classify_error(const struct mqtt *m, int rc, char *why, size_t whylen)
{
	switch (rc) {
	case MOSQ_ERR_OVERSIZE_PACKET:
		snprintf(why, whylen,
		         "the message is larger than the broker's Maximum Packet Size (%" PRIu32 " bytes)",
		         m->limits.max_packet_size);
		return MQTT_REFUSED;
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_INVAL:
		snprintf(why, whylen, "the MQTT client refused the message: %s", mosquitto_strerror(rc));
		return MQTT_REFUSED;
	default: return MQTT_NOT_NOW;
	}
}

/* doc/design.md §5: every message says which event it is and where it came from. */
static void add_event_properties(mosquitto_property **props, const struct event *ev)
{
	mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "event-id", ev->event_id.data);
	mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "lsn", ev->lsn_text);
	mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "commit-time",
	                                   ev->commit_time_text);
	mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "source", ev->source);
	if (ev->origin)
		mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "origin", ev->origin);
	if (ev->op)
		mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, "op", ev->op);
	if (ev->content_type)
		mosquitto_property_add_string(props, MQTT_PROP_CONTENT_TYPE, ev->content_type);
	if (ev->message_expiry_s)
		mosquitto_property_add_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, ev->message_expiry_s);
	if (ev->has_response_topic)
		mosquitto_property_add_string(props, MQTT_PROP_RESPONSE_TOPIC, ev->response_topic.data);
	if (ev->has_correlation_data)
		mosquitto_property_add_binary(props, MQTT_PROP_CORRELATION_DATA, ev->correlation_data.data,
		                              (uint16_t)ev->correlation_data.len);
}

/* The route's properties come from columns: a value MQTT cannot carry (not UTF-8) makes
 * the event unpublishable rather than silently incomplete. */
static int add_route_properties(mosquitto_property **props, const struct event *ev, char *why, size_t whylen)
{
	size_t cursor = 0;
	const char *name, *value;
	while (event_next_property(ev, &cursor, &name, &value)) {
		int rc = mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, name, value);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(why, whylen, "user property \"%s\" cannot be sent: %s", name,
			         mosquitto_strerror(rc));
			return -1;
		}
	}
	return 0;
}

enum mqtt_publish_result mqtt_publish(struct mqtt *m, const struct event *ev, int *mid, char *why,
                                      size_t whylen)
{
	mosquitto_property *props = NULL;
	int rc;

	if (m->state != MQTT_UP)
		return MQTT_NOT_NOW;
	if (m->cfg->broker.protocol == BROKER_MQTT_V5) {
		add_event_properties(&props, ev);
		if (add_route_properties(&props, ev, why, whylen) < 0) {
			mosquitto_property_free_all(&props);
			return MQTT_REFUSED;
		}
	}
	/* Lowered only for a route that allows it (broker_limits_fit, at connect). */
	int qos = broker_limits_qos(&m->limits, ev->qos);
	rc = mosquitto_publish_v5(m->mosq, mid, ev->topic.data, (int)ev->payload.len, ev->payload.data, qos,
	                          broker_limits_retain(&m->limits, ev->retain), props);
	mosquitto_property_free_all(&props);
	/* For QoS 1 and 2 the client has queued the message once it got this far, even if
	 * writing it failed: it sends it again after reconnecting. */
	bool queued =
	        rc == MOSQ_ERR_SUCCESS ||
	        (qos > 0 && (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO));
	if (queued && qos == 2)
		qos2_watch_hold(&m->qos2, *mid);
	if (queued)
		return MQTT_PUBLISHED;
	return classify_error(m, rc, why, whylen);
}

const char *mqtt_reason_text(int reason)
{
	return mosquitto_reason_string(reason);
}

bool mqtt_status_due(const struct mqtt *m)
{
	return m->cfg->broker.status_topic && m->state == MQTT_UP && !m->status_said;
}

bool mqtt_publish_status(struct mqtt *m, const char *payload, size_t len)
{
	if (!m->cfg->broker.status_topic || m->state != MQTT_UP)
		return false;
	m->status_said = true; /* tried: after a failure the next renewal tries again */
	if (m->nstatus == STATUS_INFLIGHT_MAX)
		return false;
	mosquitto_property *props = status_properties(m);
	int mid = 0;
	int rc = mosquitto_publish_v5(m->mosq, &mid, m->cfg->broker.status_topic, (int)len, payload, 1, true,
	                              props);
	mosquitto_property_free_all(&props);
	/* As for an event at QoS 1: queued once it got this far, even if writing failed. */
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST &&
	    rc != MOSQ_ERR_ERRNO) {
		log_warn("cannot publish on the status topic", "error", mosquitto_strerror(rc));
		return false;
	}
	m->status_mids[m->nstatus++] = mid;
	return true;
}

/* Until the status messages are acknowledged or deadline: the last is the relay's goodbye,
 * and the DISCONNECT that follows keeps the broker from publishing the Will instead. */
static void wait_status_acks(struct mqtt *m, int64_t deadline)
{
	while (m->state == MQTT_UP && m->nstatus > 0) {
		int64_t now = monotonic_ms();
		struct pollfd p = { .fd = mosquitto_socket(m->mosq), .events = POLLIN };
		if (mosquitto_want_write(m->mosq))
			p.events |= POLLOUT;
		if (now >= deadline || p.fd < 0 || poll(&p, 1, (int)(deadline - now)) <= 0)
			return;
		if (p.revents & (POLLIN | POLLERR | POLLHUP))
			check_io(m, mosquitto_loop_read(m->mosq, 1), "read");
		if (p.revents & POLLOUT && m->state == MQTT_UP)
			check_io(m, mosquitto_loop_write(m->mosq, 1), "write");
	}
}

void mqtt_disconnect(struct mqtt *m, int timeout_ms, bool end_session)
{
	int64_t deadline = monotonic_ms() + timeout_ms;
	wait_status_acks(m, deadline);
	if (!connected(m))
		return;
	/* With nothing in flight the session holds nothing worth keeping: MQTT 5 lets us end it,
	 * so the next start finds none to clear. */
	mosquitto_property *props = NULL;
	if (end_session && m->persistent && m->cfg->broker.protocol == BROKER_MQTT_V5)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
	mosquitto_disconnect_v5(m->mosq, MQTT_RC_NORMAL_DISCONNECTION, props);
	mosquitto_property_free_all(&props);
	while (mosquitto_want_write(m->mosq) && monotonic_ms() < deadline) {
		struct pollfd p = { .fd = mosquitto_socket(m->mosq), .events = POLLOUT };
		if (p.fd < 0 || poll(&p, 1, (int)(deadline - monotonic_ms())) <= 0)
			break;
		if (mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
			break;
	}
	m->state = MQTT_DOWN;
}
