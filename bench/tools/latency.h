/*
 * Shared by the bench tools: wall-clock time, payload timestamps and latency percentiles.
 *
 * A timestamped payload starts with {"t": followed by the insert's (or the publish's)
 * time in microseconds since the epoch, as PostgreSQL prints a jsonb object whose
 * shortest key is "t". Percentiles are exact: every latency is kept in a preallocated
 * array and sorted once at the end.
 */
#ifndef BENCH_LATENCY_H
#define BENCH_LATENCY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TS_PREFIX "{\"t\": "
#define TS_PREFIX_LEN 6

static inline int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The timestamp right after TS_PREFIX at p (len bytes available), or -1. */
static inline int64_t parse_ts(const char *p, size_t len)
{
	int64_t v = 0;
	size_t i = 0;
	while (i < len && i < 20 && p[i] >= '0' && p[i] <= '9') {
		v = v * 10 + (p[i] - '0');
		i++;
	}
	return i >= 10 ? v : -1;
}

struct latencies {
	int64_t *v;
	size_t n, cap;
};

static inline int lat_init(struct latencies *l, size_t cap)
{
	l->n = 0;
	l->cap = cap ? cap : 1;
	l->v = malloc(l->cap * sizeof *l->v);
	return l->v ? 0 : -1;
}

static inline void lat_add(struct latencies *l, int64_t us)
{
	if (l->n < l->cap)
		l->v[l->n++] = us;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static inline int64_t lat_pct(const struct latencies *l, double p)
{
	if (!l->n)
		return -1;
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	return l->v[i < l->n ? i : l->n - 1];
}

/* Prints ,"latency_us":{...} (nothing when no latency was recorded). Sorts l. */
static inline void lat_print_json(FILE *f, struct latencies *l)
{
	if (!l->n)
		return;
	qsort(l->v, l->n, sizeof *l->v, cmp_i64);
	fprintf(f,
	        ",\"latency_us\":{\"n\":%zu,\"p50\":%lld,\"p99\":%lld,\"p999\":%lld,\"max\":%lld,\"min\":%"
	        "lld}",
	        l->n, (long long)lat_pct(l, 0.50), (long long)lat_pct(l, 0.99), (long long)lat_pct(l, 0.999),
	        (long long)l->v[l->n - 1], (long long)l->v[0]);
}

#endif
