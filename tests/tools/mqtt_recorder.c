/*
 * mqtt_recorder: subscribe to topic filters and print every message received as one JSON
 * object per line on stdout, for the integration tests and the demo.
 *
 *   mqtt_recorder -h HOST -p PORT -t FILTER [-t FILTER...] [-q QOS] [-V 5|311]
 *                 [-i CLIENT_ID] [-c] [-r RECEIVE_MAXIMUM] [-u USERNAME [-P PASSWORD]]
 *
 * After the broker has granted every subscription it prints {"ready":true}. Each message
 * then gives topic, payload_b64, payload (only when the payload is valid UTF-8), qos,
 * retain, mid and, with MQTT 5, its properties: user_properties as [key, value] pairs in
 * the order received, content_type, message_expiry, response_topic, correlation_data
 * (base64), payload_format_indicator, subscription_identifiers, topic_alias.
 * Every line is flushed. SIGTERM or SIGINT disconnects cleanly and exits 0. A lost
 * connection is retried every 200 ms until then.
 *
 * -r sets the MQTT 5 Receive Maximum the recorder announces (libmosquitto's default is 20).
 * Mosquitto 2.0.11 can put more QoS 2 messages in flight to a subscriber than it announced
 * when a backlog is queued for it (its in-flight accounting, fixed in 2.0.13), and
 * libmosquitto then drops the connection as a protocol error; a large value avoids that.
 *
 * -u and -P give the broker a user name and password (brokers that need one, such as
 * ejabberd's mod_mqtt).
 */
#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILTERS 32
#define SESSION_EXPIRY_S 86400

struct options {
	const char *host;
	int port;
	const char *filters[MAX_FILTERS];
	int nfilters;
	int qos;
	int protocol; /* MQTT_PROTOCOL_V5 or MQTT_PROTOCOL_V311 */
	const char *client_id;
	bool persistent;
	int receive_maximum; /* 0: the library's default */
	const char *username;
	const char *password;
};

struct recorder {
	struct options opt;
	mosquitto_property *connect_props;
	bool ready_printed;
	int failed; /* fatal error seen in a callback: exit status 1 */
};

/* A growing byte string for one output line. */
struct out {
	char *data;
	size_t len;
	size_t cap;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void die_oom(void)
{
	fputs("mqtt_recorder: out of memory\n", stderr);
	exit(1);
}

static void out_reserve(struct out *o, size_t extra)
{
	size_t cap = o->cap ? o->cap : 256;

	if (o->len + extra <= o->cap)
		return;
	while (cap < o->len + extra)
		cap *= 2;
	o->data = realloc(o->data, cap);
	if (!o->data)
		die_oom();
	o->cap = cap;
}

static void out_bytes(struct out *o, const void *p, size_t n)
{
	out_reserve(o, n);
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

static void out_str(struct out *o, const char *s)
{
	out_bytes(o, s, strlen(s));
}

static void out_uint(struct out *o, unsigned long v)
{
	char tmp[32];

	snprintf(tmp, sizeof tmp, "%lu", v);
	out_str(o, tmp);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if there is none. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0; /* overlong */
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static bool utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0, len;

	while (i < n) {
		len = utf8_seq_len(p + i, n - i);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

/* A JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void out_json_string(struct out *o, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0, len;
	char esc[8];

	out_str(o, "\"");
	while (i < n) {
		len = utf8_seq_len(p + i, n - i);
		if (!len) {
			out_str(o, "\\ufffd");
			i++;
		} else if (p[i] == '"' || p[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)p[i];
			out_bytes(o, esc, 2);
			i++;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", p[i]);
			out_str(o, esc);
			i++;
		} else {
			out_bytes(o, p + i, len);
			i += len;
		}
	}
	out_str(o, "\"");
}

static void out_base64(struct out *o, const void *data, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char quad[4];
	size_t i;
	uint32_t v;

	out_str(o, "\"");
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		quad[0] = alphabet[v >> 18 & 63];
		quad[1] = alphabet[v >> 12 & 63];
		quad[2] = alphabet[v >> 6 & 63];
		quad[3] = alphabet[v & 63];
		out_bytes(o, quad, 4);
	}
	if (i < n) {
		v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		quad[0] = alphabet[v >> 18 & 63];
		quad[1] = alphabet[v >> 12 & 63];
		quad[2] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		quad[3] = '=';
		out_bytes(o, quad, 4);
	}
	out_str(o, "\"");
}

static void out_key(struct out *o, const char *key)
{
	out_str(o, ",\"");
	out_str(o, key);
	out_str(o, "\":");
}

static void out_user_property(struct out *o, const mosquitto_property *p, int *count)
{
	char *name = NULL, *value = NULL;

	if (!mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false))
		return;
	out_str(o, *count ? ",[" : "[");
	out_json_string(o, name, strlen(name));
	out_str(o, ",");
	out_json_string(o, value, strlen(value));
	out_str(o, "]");
	(*count)++;
	free(name);
	free(value);
}

static void out_string_property(struct out *o, const mosquitto_property *p, int id, const char *key)
{
	char *value = NULL;

	if (!mosquitto_property_read_string(p, id, &value, false))
		return;
	out_key(o, key);
	out_json_string(o, value, strlen(value));
	free(value);
}

static void out_correlation_data(struct out *o, const mosquitto_property *p)
{
	void *value = NULL;
	uint16_t len = 0;

	if (!mosquitto_property_read_binary(p, MQTT_PROP_CORRELATION_DATA, &value, &len, false))
		return;
	out_key(o, "correlation_data");
	out_base64(o, value, len);
	free(value);
}

static void out_number_property(struct out *o, const mosquitto_property *p, int id)
{
	uint8_t b = 0;
	uint16_t s = 0;
	uint32_t l = 0;

	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
		if (mosquitto_property_read_byte(p, id, &b, false)) {
			out_key(o, "payload_format_indicator");
			out_uint(o, b);
		}
		break;
	case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
		if (mosquitto_property_read_int32(p, id, &l, false)) {
			out_key(o, "message_expiry");
			out_uint(o, l);
		}
		break;
	case MQTT_PROP_TOPIC_ALIAS:
		if (mosquitto_property_read_int16(p, id, &s, false)) {
			out_key(o, "topic_alias");
			out_uint(o, s);
		}
		break;
	default: break;
	}
}

/* Every property except user properties and subscription identifiers (lists, see below). */
static void out_single_properties(struct out *o, const mosquitto_property *props)
{
	const mosquitto_property *p;
	int id;

	for (p = props; p; p = mosquitto_property_next(p)) {
		id = mosquitto_property_identifier(p);
		if (id == MQTT_PROP_CONTENT_TYPE)
			out_string_property(o, p, id, "content_type");
		else if (id == MQTT_PROP_RESPONSE_TOPIC)
			out_string_property(o, p, id, "response_topic");
		else if (id == MQTT_PROP_CORRELATION_DATA)
			out_correlation_data(o, p);
		else
			out_number_property(o, p, id);
	}
}

static void out_user_properties(struct out *o, const mosquitto_property *props)
{
	const mosquitto_property *p;
	int count = 0;

	out_key(o, "user_properties");
	out_str(o, "[");
	for (p = props; p; p = mosquitto_property_next(p)) {
		if (mosquitto_property_identifier(p) == MQTT_PROP_USER_PROPERTY)
			out_user_property(o, p, &count);
	}
	out_str(o, "]");
}

static void out_subscription_identifiers(struct out *o, const mosquitto_property *props)
{
	const mosquitto_property *p;
	uint32_t v;
	int count = 0;

	for (p = props; p; p = mosquitto_property_next(p)) {
		if (mosquitto_property_identifier(p) != MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
			continue;
		if (!mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &v, false))
			continue;
		if (count++ == 0) {
			out_key(o, "subscription_identifiers");
			out_str(o, "[");
		} else {
			out_str(o, ",");
		}
		out_uint(o, v);
	}
	if (count)
		out_str(o, "]");
}

static void out_message(struct out *o, const struct mosquitto_message *msg)
{
	size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

	out_str(o, "{\"topic\":");
	out_json_string(o, msg->topic, strlen(msg->topic));
	out_key(o, "payload_b64");
	out_base64(o, msg->payload, plen);
	if (utf8_valid(msg->payload, plen)) {
		out_key(o, "payload");
		out_json_string(o, msg->payload, plen);
	}
	out_key(o, "qos");
	out_uint(o, (unsigned long)msg->qos);
	out_key(o, "retain");
	out_str(o, msg->retain ? "true" : "false");
	out_key(o, "mid");
	out_uint(o, (unsigned long)msg->mid);
}

/* Writes one line and flushes it; a closed stdout ends the program. */
static void emit_line(struct out *o)
{
	out_str(o, "\n");
	if (fwrite(o->data, 1, o->len, stdout) != o->len || fflush(stdout) != 0) {
		fprintf(stderr, "mqtt_recorder: stdout: %s\n", strerror(errno));
		exit(1);
	}
	free(o->data);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct recorder *r = obj;
	struct out o = { 0 };

	(void)mosq;
	out_message(&o, msg);
	if (r->opt.protocol == MQTT_PROTOCOL_V5) {
		out_user_properties(&o, props);
		out_single_properties(&o, props);
		out_subscription_identifiers(&o, props);
	}
	out_str(&o, "}");
	emit_line(&o);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	struct recorder *r = obj;
	struct out o = { 0 };
	int i;

	(void)mosq;
	(void)mid;
	(void)props;
	for (i = 0; i < count; i++) {
		if (granted[i] >= 0x80) {
			fprintf(stderr, "mqtt_recorder: subscription refused, reason %d\n", granted[i]);
			r->failed = 1;
			stop_requested = 1;
			return;
		}
	}
	if (r->ready_printed)
		return;
	r->ready_printed = true;
	out_str(&o, "{\"ready\":true}");
	emit_line(&o);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	struct recorder *r = obj;
	int res;

	(void)flags;
	(void)props;
	if (rc != 0) {
		fprintf(stderr, "mqtt_recorder: connection refused: %s\n",
		        r->opt.protocol == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(rc)
		                                            : mosquitto_connack_string(rc));
		r->failed = 1;
		stop_requested = 1;
		return;
	}
	res = mosquitto_subscribe_multiple(mosq, NULL, r->opt.nfilters, (char *const *)r->opt.filters,
	                                   r->opt.qos, 0, NULL);
	if (res != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqtt_recorder: subscribe: %s\n", mosquitto_strerror(res));
		r->failed = 1;
		stop_requested = 1;
	}
}

static void usage(FILE *f)
{
	fputs("usage: mqtt_recorder -h HOST -p PORT -t FILTER [-t FILTER...] [-q QOS]\n"
	      "                     [-V 5|311] [-i CLIENT_ID] [-c] [-r RECEIVE_MAXIMUM]\n"
	      "                     [-u USERNAME [-P PASSWORD]]\n",
	      f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_protocol(const char *s, int *out)
{
	if (!strcmp(s, "5")) {
		*out = MQTT_PROTOCOL_V5;
		return 0;
	}
	if (!strcmp(s, "311")) {
		*out = MQTT_PROTOCOL_V311;
		return 0;
	}
	return -1;
}

static int parse_option(struct options *o, int c, const char *arg)
{
	switch (c) {
	case 'h': o->host = arg; return 0;
	case 'p': return parse_int(arg, 1, 65535, &o->port);
	case 't':
		if (o->nfilters == MAX_FILTERS)
			return -1;
		o->filters[o->nfilters++] = arg;
		return 0;
	case 'q': return parse_int(arg, 0, 2, &o->qos);
	case 'V': return parse_protocol(arg, &o->protocol);
	case 'i': o->client_id = arg; return 0;
	case 'c': o->persistent = true; return 0;
	case 'r': return parse_int(arg, 1, 65535, &o->receive_maximum);
	case 'u': o->username = arg; return 0;
	case 'P': o->password = arg; return 0;
	default: return -1;
	}
}

static int parse_args(int argc, char **argv, struct options *o)
{
	int c;

	o->host = "127.0.0.1";
	o->port = 1883;
	o->qos = 1;
	o->protocol = MQTT_PROTOCOL_V5;
	while ((c = getopt(argc, argv, "h:p:t:q:V:i:cr:u:P:")) != -1) {
		if (parse_option(o, c, optarg) < 0)
			return -1;
	}
	if (optind != argc || o->nfilters == 0)
		return -1;
	if (o->password && !o->username) {
		fputs("mqtt_recorder: -P needs -u USERNAME\n", stderr);
		return -1;
	}
	if (o->persistent && !o->client_id) {
		fputs("mqtt_recorder: -c needs -i CLIENT_ID\n", stderr);
		return -1;
	}
	return 0;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

static int start_connect(struct mosquitto *mosq, struct recorder *r)
{
	return mosquitto_connect_bind_v5(mosq, r->opt.host, r->opt.port, 30, NULL, r->connect_props);
}

static struct mosquitto *recorder_client(struct recorder *r)
{
	struct mosquitto *mosq;

	mosq = mosquitto_new(r->opt.client_id, !r->opt.persistent, r);
	if (!mosq)
		return NULL;
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, r->opt.protocol);
	if (r->opt.receive_maximum)
		mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, r->opt.receive_maximum);
	if (r->opt.username &&
	    mosquitto_username_pw_set(mosq, r->opt.username, r->opt.password) != MOSQ_ERR_SUCCESS) {
		mosquitto_destroy(mosq);
		return NULL;
	}
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(mosq, on_subscribe);
	mosquitto_message_v5_callback_set(mosq, on_message);
	if (r->opt.persistent && r->opt.protocol == MQTT_PROTOCOL_V5 &&
	    mosquitto_property_add_int32(&r->connect_props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
	                                 SESSION_EXPIRY_S) != MOSQ_ERR_SUCCESS) {
		mosquitto_destroy(mosq);
		return NULL;
	}
	return mosq;
}

static void pause_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Runs until a signal or a fatal callback error; a lost connection is retried. */
static void run(struct mosquitto *mosq, struct recorder *r)
{
	int rc = start_connect(mosq, r);

	while (!stop_requested) {
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_loop(mosq, 100, 1);
		if (rc == MOSQ_ERR_SUCCESS || stop_requested)
			continue;
		fprintf(stderr, "mqtt_recorder: connection: %s, retrying\n", mosquitto_strerror(rc));
		pause_ms(200);
		rc = start_connect(mosq, r);
	}
}

static void disconnect(struct mosquitto *mosq)
{
	int i;

	if (mosquitto_disconnect_v5(mosq, 0, NULL) != MOSQ_ERR_SUCCESS)
		return;
	for (i = 0; i < 10; i++) {
		if (mosquitto_loop(mosq, 50, 1) != MOSQ_ERR_SUCCESS)
			break;
	}
}

int main(int argc, char **argv)
{
	struct recorder r = { 0 };
	struct mosquitto *mosq;

	if (parse_args(argc, argv, &r.opt) < 0) {
		usage(stderr);
		return 64;
	}
	install_signals();
	mosquitto_lib_init();
	mosq = recorder_client(&r);
	if (!mosq) {
		fputs("mqtt_recorder: cannot create the client\n", stderr);
		mosquitto_lib_cleanup();
		return 1;
	}
	run(mosq, &r);
	disconnect(mosq);
	mosquitto_destroy(mosq);
	mosquitto_property_free_all(&r.connect_props);
	mosquitto_lib_cleanup();
	return r.failed;
}
