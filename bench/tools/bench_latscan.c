/*
 * bench_latscan: the decode side of the live latency measurement. Reads a byte stream
 * (pg_recvlogical's output on stdin) and takes every {"t": <microseconds> it contains as
 * one event inserted at that time; prints the same JSON as bench_subscriber.
 *
 *   pg_recvlogical ... -f - | bench_latscan -n COUNT [-i IDLE_S]
 *
 * Stops at end of input, after COUNT events, or after IDLE_S seconds (default 30) without
 * input once the first event came.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "latency.h"

#define CHUNK 65536
#define KEEP 32 /* bytes kept across reads: prefix + digits of a split match */

int main(int argc, char **argv)
{
	long long expected = -1, count = 0;
	double idle_s = 30;
	int opt;
	while ((opt = getopt(argc, argv, "n:i:")) != -1) {
		switch (opt) {
		case 'n': expected = atoll(optarg); break;
		case 'i': idle_s = atof(optarg); break;
		default: fprintf(stderr, "usage: bench_latscan -n COUNT [-i IDLE_S]\n"); return 64;
		}
	}
	if (expected < 0) {
		fprintf(stderr, "usage: bench_latscan -n COUNT [-i IDLE_S]\n");
		return 64;
	}
	struct latencies lat;
	static char buf[KEEP + CHUNK];
	if (lat_init(&lat, (size_t)expected) < 0)
		return 1;
	size_t have = 0;
	long long bytes = 0;
	int64_t first_us = 0, last_us = 0;
	while (count < expected) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int ready = poll(&pfd, 1, 200);
		int64_t now = now_us();
		if (ready == 0) {
			if (count && now - last_us > (int64_t)(idle_s * 1e6))
				break;
			continue;
		}
		ssize_t n = read(0, buf + have, CHUNK);
		if (n <= 0)
			break;
		now = now_us();
		bytes += n;
		size_t end = have + (size_t)n, scan = 0, done = 0;
		for (;;) {
			char *hit = memmem(buf + scan, end - scan, TS_PREFIX, TS_PREFIX_LEN);
			if (!hit)
				break;
			size_t at = (size_t)(hit - buf) + TS_PREFIX_LEN;
			if (end - at < 17) { /* digits may continue in the next read */
				done = (size_t)(hit - buf);
				goto keep;
			}
			int64_t t = parse_ts(buf + at, end - at);
			if (t > 0) {
				if (!count)
					first_us = now;
				last_us = now;
				count++;
				lat_add(&lat, now - t);
			}
			scan = at;
		}
		done = end > KEEP ? end - KEEP : 0;
		if (done < scan)
			done = scan;
	keep:
		memmove(buf, buf + done, end - done);
		have = end - done;
	}
	printf("{\"count\":%lld,\"expected\":%lld,\"first_us\":%lld,\"last_us\":%lld,\"bytes\":%lld", count,
	       expected, (long long)first_us, (long long)last_us, bytes);
	lat_print_json(stdout, &lat);
	printf("}\n");
	free(lat.v);
	return count >= expected ? 0 : 2;
}
