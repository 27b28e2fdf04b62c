/*
 * PostgreSQL's timestamps as the replication protocol carries them, and their text form in
 * messages. Pure but for pg_now(), which reads the clock.
 */
#ifndef OUTBOX_PGTIME_H
#define OUTBOX_PGTIME_H

#include <stddef.h>
#include <stdint.h>

/* Microseconds since 2000-01-01 00:00:00 UTC, as PostgreSQL sends timestamps. */
typedef int64_t pg_time_t;
/* Seconds between the Unix epoch and PostgreSQL's. */
#define PG_EPOCH_OFFSET_S INT64_C(946684800)

/* Room for pg_time_format's text. */
#define PG_TIME_TEXT_BUFLEN 40

/* Formats t as RFC 3339 UTC with microseconds: "2026-11-25T06:21:52.940434Z". */
void pg_time_format(pg_time_t t, char *out, size_t outlen);

/* The current time as a PostgreSQL timestamp. */
pg_time_t pg_now(void);

#endif
