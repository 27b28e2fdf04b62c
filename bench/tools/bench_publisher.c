/*
 * bench_publisher: the broker limit. A plain libmosquitto publisher that sends COUNT
 * messages as fast as the broker takes them (or at a fixed RATE), keeping at most WINDOW
 * unacknowledged, and prints one JSON line.
 *
 *   bench_publisher HOST PORT COUNT QOS WINDOW TOPIC-PATTERN PAYLOAD-SIZE PROTOCOL [RATE [TOPICS]]
 *
 * TOPIC-PATTERN: "{i}" in it is replaced by the message number modulo TOPICS (default
 * 1000), e.g. bench/order/{i}. PAYLOAD-SIZE: bytes of each payload, a JSON object that
 * starts with {"t": <send time in microseconds since the epoch>, so a subscriber can
 * measure latency. PROTOCOL: 5 or 311. With MQTT 5 every message carries the same
 * properties as the relay's (user properties event-id, lsn, commit-time, source and a
 * content type), built once. RATE: messages per second, 0 (default) as fast as possible.
 *
 * Output: {"sent":N,"acked":N,"first_us":T,"last_ack_us":T,"cpu_us":C}; exit 0 when every
 * message was acknowledged (QoS 0: written to the socket).
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "latency.h"

#define TS_DIGITS 16

struct pub {
	bool connected;
	bool failed;
	long long inflight;
	long long acked;
	int64_t last_ack_us;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_connect(struct mosquitto *mosq, void *ctx, int rc, int flags, const mosquitto_property *props)
{
	struct pub *p = ctx;
	(void)mosq;
	(void)flags;
	(void)props;
	if (rc != 0) {
		fprintf(stderr, "bench_publisher: connection refused: %s\n", mosquitto_reason_string(rc));
		p->failed = true;
		return;
	}
	p->connected = true;
}

static void on_disconnect(struct mosquitto *mosq, void *ctx, int rc, const mosquitto_property *props)
{
	struct pub *p = ctx;
	(void)mosq;
	(void)props;
	if (rc != 0) {
		fprintf(stderr, "bench_publisher: disconnected: %s\n", mosquitto_strerror(rc));
		p->failed = true;
	}
	p->connected = false;
}

static void on_publish(struct mosquitto *mosq, void *ctx, int mid, int reason,
                       const mosquitto_property *props)
{
	struct pub *p = ctx;
	(void)mosq;
	(void)mid;
	(void)props;
	if (reason >= 0x80) {
		fprintf(stderr, "bench_publisher: publish refused, reason %d\n", reason);
		p->failed = true;
	}
	p->inflight--;
	p->acked++;
	p->last_ack_us = now_us();
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_publisher HOST PORT COUNT QOS WINDOW TOPIC-PATTERN PAYLOAD-SIZE "
	                "PROTOCOL(5|311) [RATE [TOPICS]]\n");
	exit(64);
}

/* Splits the pattern at "{i}": prefix and suffix around the number. */
struct topic {
	char buf[512];
	size_t prefix_len;
	const char *suffix;
	bool numbered;
};

static int topic_init(struct topic *t, const char *pattern)
{
	const char *mark = strstr(pattern, "{i}");
	t->numbered = mark != NULL;
	t->prefix_len = mark ? (size_t)(mark - pattern) : strlen(pattern);
	t->suffix = mark ? mark + 3 : "";
	if (t->prefix_len + strlen(t->suffix) + 24 > sizeof t->buf)
		return -1;
	memcpy(t->buf, pattern, t->prefix_len);
	t->buf[t->prefix_len] = '\0';
	return 0;
}

static const char *topic_make(struct topic *t, long long n)
{
	if (t->numbered)
		snprintf(t->buf + t->prefix_len, sizeof t->buf - t->prefix_len, "%lld%s", n, t->suffix);
	return t->buf;
}

static void put_ts(char *payload, int64_t us)
{
	char *d = payload + TS_PREFIX_LEN + TS_DIGITS;
	for (int i = 0; i < TS_DIGITS; i++) {
		*--d = (char)('0' + us % 10);
		us /= 10;
	}
}

#define PAD_HEAD ", \"pad\": \""
#define PAYLOAD_MIN (TS_PREFIX_LEN + TS_DIGITS + sizeof PAD_HEAD - 1 + 2)

/* {"t": 1732520000000000, "pad": "xxx…"}, size >= PAYLOAD_MIN bytes. */
static char *make_payload(size_t size)
{
	const char *head = PAD_HEAD;
	size_t fixed = PAYLOAD_MIN;
	char *p = malloc(size);
	if (!p)
		return NULL;
	memcpy(p, TS_PREFIX, TS_PREFIX_LEN);
	memset(p + TS_PREFIX_LEN, '0', TS_DIGITS);
	memcpy(p + TS_PREFIX_LEN + TS_DIGITS, head, strlen(head));
	memset(p + TS_PREFIX_LEN + TS_DIGITS + strlen(head), 'x', size - fixed);
	p[size - 2] = '"';
	p[size - 1] = '}';
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 9 || argc > 11)
		usage();
	const char *host = argv[1];
	int port = atoi(argv[2]);
	long long count = atoll(argv[3]);
	int qos = atoi(argv[4]);
	long long window = atoll(argv[5]);
	const char *pattern = argv[6];
	size_t size = (size_t)atol(argv[7]);
	int protocol = strcmp(argv[8], "5") == 0 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
	double rate = argc > 9 ? atof(argv[9]) : 0;
	long long topics = argc > 10 ? atoll(argv[10]) : 1000;
	if (port <= 0 || count < 0 || qos < 0 || qos > 2 || window < 1 || window > 65535 || topics < 1)
		usage();

	if (size < PAYLOAD_MIN)
		size = PAYLOAD_MIN;
	struct topic topic;
	char *payload = make_payload(size);
	if (topic_init(&topic, pattern) < 0 || !payload) {
		fprintf(stderr, "bench_publisher: topic pattern too long or out of memory\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	struct pub p = { 0 };
	char client_id[64];
	snprintf(client_id, sizeof client_id, "bench-pub-%d", (int)getpid());
	struct mosquitto *mosq = mosquitto_new(client_id, true, &p);
	if (!mosq)
		return 1;
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
	mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, (int)window);
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(mosq, on_publish);

	mosquitto_property *props = NULL;
	if (protocol == MQTT_PROTOCOL_V5) {
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "event-id", "1000000");
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "lsn", "0/1A2B3C4D");
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "commit-time",
		                                   "2024-11-25T07:55:14.123456Z");
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "source",
		                                   "public.outbox");
		mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
	}

	if (mosquitto_connect(mosq, host, port, 60) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "bench_publisher: cannot connect to %s:%d\n", host, port);
		return 1;
	}
	while (!p.connected && !p.failed && !stop_requested)
		if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS)
			p.failed = true;

	int fd = mosquitto_socket(mosq);
	long long sent = 0;
	int64_t first_us = 0, start_us = now_us();
	double interval_us = rate > 0 ? 1e6 / rate : 0;
	while (!p.failed && !stop_requested && p.acked < count) {
		int64_t now = now_us();
		while (sent < count && p.inflight < window && !mosquitto_want_write(mosq)) {
			if (interval_us > 0 && (double)(now - start_us) < (double)sent * interval_us)
				break;
			int64_t t = now_us();
			if (!sent)
				first_us = t;
			put_ts(payload, t);
			p.inflight++; /* before: on_publish may run inside the call (QoS 0) */
			int rc = mosquitto_publish_v5(mosq, NULL, topic_make(&topic, sent % topics),
			                              (int)size, payload, qos, false, props);
			if (rc != MOSQ_ERR_SUCCESS) {
				fprintf(stderr, "bench_publisher: publish failed: %s\n",
				        mosquitto_strerror(rc));
				p.failed = true;
				break;
			}
			sent++;
		}
		int timeout = 100;
		if (interval_us > 0 && sent < count) {
			double due = (double)sent * interval_us - (double)(now_us() - start_us);
			timeout =
			        due <= 0 ? 0 : (int)(due / 1000) + 1; /* 1 ms ticks, like the SQL generator */
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (mosquitto_want_write(mosq))
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, timeout) < 0)
			continue;
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP))
			if (mosquitto_loop_read(mosq, 1) != MOSQ_ERR_SUCCESS)
				p.failed = true;
		if (pfd.revents & POLLOUT)
			if (mosquitto_loop_write(mosq, 1) != MOSQ_ERR_SUCCESS)
				p.failed = true;
		mosquitto_loop_misc(mosq);
	}
	mosquitto_disconnect(mosq);
	while (mosquitto_want_write(mosq) && mosquitto_loop_write(mosq, 1) == MOSQ_ERR_SUCCESS)
		;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long long cpu = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	                ru.ru_stime.tv_usec;
	printf("{\"sent\":%lld,\"acked\":%lld,\"first_us\":%lld,\"last_ack_us\":%lld,\"cpu_us\":%lld}\n",
	       sent, p.acked, (long long)first_us, (long long)p.last_ack_us, cpu);
	mosquitto_property_free_all(&props);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	free(payload);
	return p.acked >= count && !p.failed ? 0 : 1;
}
