/*
 * bench_subscriber: counts the messages under a topic filter and prints one JSON line.
 *
 *   bench_subscriber -p PORT -n COUNT [-h HOST] [-t FILTER] [-q QOS] [-V 5|311]
 *                    [-L] [-i IDLE_S] [-T TOTAL_S]
 *
 * Prints "ready" (flushed) once the subscription is granted. Stops after COUNT messages,
 * after IDLE_S seconds without a message once the first one came (default 30), after
 * TOTAL_S seconds in all (default 3600), or on SIGTERM/SIGINT; then prints
 *   {"count":N,"first_us":T,"last_us":T,"bytes":B[,"latency_us":{...}]}
 * with receive times in microseconds since the epoch (CLOCK_REALTIME, comparable with
 * PostgreSQL's clock_timestamp() on the same machine). With -L each payload that starts
 * with {"t": <microseconds> gives one latency sample (receive time - t).
 * Per message: a counter, a clock read and, with -L, a digit scan into a preallocated
 * array. Exit status 0 when COUNT messages came, 2 when fewer did, 1 on errors.
 */
#include <mosquitto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "latency.h"

struct sub {
	const char *filter;
	int qos;
	bool want_latency;
	bool subscribed;
	bool failed;
	long long expected;
	long long count;
	long long bytes;
	int64_t first_us, last_us;
	struct latencies lat;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_connect(struct mosquitto *mosq, void *ctx, int rc)
{
	struct sub *s = ctx;
	if (rc != 0) {
		fprintf(stderr, "bench_subscriber: connection refused: %s\n", mosquitto_connack_string(rc));
		s->failed = true;
		return;
	}
	if (mosquitto_subscribe(mosq, NULL, s->filter, s->qos) != MOSQ_ERR_SUCCESS)
		s->failed = true;
}

static void on_subscribe(struct mosquitto *mosq, void *ctx, int mid, int n, const int *granted)
{
	struct sub *s = ctx;
	(void)mosq;
	(void)mid;
	if (n < 1 || granted[0] > 2) {
		fprintf(stderr, "bench_subscriber: subscription refused\n");
		s->failed = true;
		return;
	}
	s->subscribed = true;
	printf("ready\n");
	fflush(stdout);
}

static void on_message(struct mosquitto *mosq, void *ctx, const struct mosquitto_message *m)
{
	struct sub *s = ctx;
	int64_t t = now_us();
	(void)mosq;
	if (!s->count)
		s->first_us = t;
	s->last_us = t;
	s->count++;
	s->bytes += m->payloadlen;
	if (s->want_latency && m->payloadlen > TS_PREFIX_LEN &&
	    memcmp(m->payload, TS_PREFIX, TS_PREFIX_LEN) == 0) {
		int64_t sent = parse_ts((const char *)m->payload + TS_PREFIX_LEN,
		                        (size_t)m->payloadlen - TS_PREFIX_LEN);
		if (sent > 0)
			lat_add(&s->lat, t - sent);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_subscriber -p PORT -n COUNT [-h HOST] [-t FILTER] [-q QOS] "
	                "[-V 5|311] [-L] [-i IDLE_S] [-T TOTAL_S]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	struct sub s = { .filter = "bench/#", .qos = 1, .expected = -1 };
	const char *host = "127.0.0.1";
	int port = 0, protocol = MQTT_PROTOCOL_V311, opt;
	double idle_s = 30, total_s = 3600;

	while ((opt = getopt(argc, argv, "h:p:t:q:n:V:Li:T:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': s.filter = optarg; break;
		case 'q': s.qos = atoi(optarg); break;
		case 'n': s.expected = atoll(optarg); break;
		case 'V': protocol = strcmp(optarg, "5") == 0 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311; break;
		case 'L': s.want_latency = true; break;
		case 'i': idle_s = atof(optarg); break;
		case 'T': total_s = atof(optarg); break;
		default: usage();
		}
	}
	if (port <= 0 || s.expected < 0 || s.qos < 0 || s.qos > 2)
		usage();
	if (lat_init(&s.lat, s.want_latency ? (size_t)s.expected : 1) < 0) {
		fprintf(stderr, "bench_subscriber: out of memory\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	mosquitto_lib_init();
	char client_id[64];
	snprintf(client_id, sizeof client_id, "bench-sub-%d", (int)getpid());
	struct mosquitto *mosq = mosquitto_new(client_id, true, &s);
	if (!mosq)
		return 1;
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, protocol);
	if (protocol == MQTT_PROTOCOL_V5)
		mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
	mosquitto_connect_callback_set(mosq, on_connect);
	mosquitto_subscribe_callback_set(mosq, on_subscribe);
	mosquitto_message_callback_set(mosq, on_message);
	if (mosquitto_connect(mosq, host, port, 60) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "bench_subscriber: cannot connect to %s:%d\n", host, port);
		return 1;
	}
	int64_t start = now_us();
	while (!stop_requested && !s.failed && s.count < s.expected) {
		int rc = mosquitto_loop(mosq, 100, 1);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "bench_subscriber: connection lost: %s\n", mosquitto_strerror(rc));
			s.failed = true;
			break;
		}
		/* One clock read per wake-up, not per message. */
		int64_t now = now_us();
		if (s.count && now - s.last_us > (int64_t)(idle_s * 1e6))
			break;
		if (now - start > (int64_t)(total_s * 1e6))
			break;
	}
	if (s.subscribed && !s.failed)
		mosquitto_disconnect(mosq);
	printf("{\"count\":%lld,\"expected\":%lld,\"first_us\":%lld,\"last_us\":%lld,\"bytes\":%lld", s.count,
	       s.expected, (long long)s.first_us, (long long)s.last_us, s.bytes);
	lat_print_json(stdout, &s.lat);
	printf("}\n");
	fflush(stdout);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	free(s.lat.v);
	if (s.failed)
		return 1;
	return s.count >= s.expected ? 0 : 2;
}
