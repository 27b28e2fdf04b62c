/*
 * The replication protocol's framing inside COPY BOTH (doc/design.md §12): what the server
 * sends (XLogData carrying a pgoutput message, keepalives) and the standby status update
 * the relay sends back. Pure: bytes in, bytes out.
 */
#ifndef OUTBOX_PGFRAME_H
#define OUTBOX_PGFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "pgtime.h"

enum repl_frame_kind {
	REPL_XLOGDATA = 'w',
	REPL_KEEPALIVE = 'k',
};

struct repl_frame {
	enum repl_frame_kind kind;
	lsn_t wal_start;      /* 'w' only */
	lsn_t wal_end;        /* both: server's WAL end ('k': position sent so far) */
	pg_time_t send_time;  /* both */
	bool reply_requested; /* 'k' only */
	const uint8_t *data;  /* 'w' only: the pgoutput message */
	size_t len;
};

/* Parses one CopyData payload. Returns 0, or -1 (with err filled) if malformed/unknown. */
int repl_frame_parse(const uint8_t *buf, size_t len, struct repl_frame *out, char *err, size_t errlen);

/* Size of a standby status update ('r' message). */
#define REPL_STATUS_LEN 34

/* Builds a standby status update confirming write/flush/apply = lsn. */
void repl_status_build(uint8_t out[REPL_STATUS_LEN], lsn_t lsn, pg_time_t now, bool reply_requested);

#endif
