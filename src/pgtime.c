#include "pgtime.h"

#include <stdio.h>
#include <time.h>

pg_time_t pg_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec - PG_EPOCH_OFFSET_S) * 1000000 + ts.tv_nsec / 1000;
}

void pg_time_format(pg_time_t t, char *out, size_t outlen)
{
	/* Floor division: timestamps before 2000 are negative. */
	int64_t secs = t / 1000000, micros = t % 1000000;
	if (micros < 0) {
		micros += 1000000;
		secs -= 1;
	}
	time_t unix_secs = (time_t)(secs + PG_EPOCH_OFFSET_S);
	struct tm tm;
	char date[24];
	gmtime_r(&unix_secs, &tm);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%06dZ", date, (int)micros);
}
