#include "pgframe.h"

#include "util.h"
#include "wire.h"

#define XLOGDATA_HEADER_LEN 25 /* 'w', walStart, walEnd, sendTime */
#define KEEPALIVE_LEN 18       /* 'k', walEnd, sendTime, replyRequested */

static int parse_xlogdata(const uint8_t *buf, size_t len, struct repl_frame *out, char *err, size_t errlen)
{
	if (len < XLOGDATA_HEADER_LEN)
		return error_printf(err, errlen, "XLogData: truncated header (needs %d bytes, %zu given)",
		                    XLOGDATA_HEADER_LEN, len);
	*out = (struct repl_frame){
		.kind = REPL_XLOGDATA,
		.wal_start = get_be64(buf + 1),
		.wal_end = get_be64(buf + 9),
		.send_time = (pg_time_t)get_be64(buf + 17),
		.data = buf + XLOGDATA_HEADER_LEN,
		.len = len - XLOGDATA_HEADER_LEN,
	};
	return 0;
}

/* A keepalive has a fixed size; anything else means the framing is off. */
static int parse_keepalive(const uint8_t *buf, size_t len, struct repl_frame *out, char *err, size_t errlen)
{
	if (len < KEEPALIVE_LEN)
		return error_printf(err, errlen, "keepalive: truncated (needs %d bytes, %zu given)",
		                    KEEPALIVE_LEN, len);
	if (len > KEEPALIVE_LEN)
		return error_printf(err, errlen, "keepalive: trailing garbage (%zu bytes, expected %d)", len,
		                    KEEPALIVE_LEN);
	*out = (struct repl_frame){
		.kind = REPL_KEEPALIVE,
		.wal_end = get_be64(buf + 1),
		.send_time = (pg_time_t)get_be64(buf + 9),
		.reply_requested = buf[17] != 0,
	};
	return 0;
}

int repl_frame_parse(const uint8_t *buf, size_t len, struct repl_frame *out, char *err, size_t errlen)
{
	char b[8];
	if (len == 0)
		return error_printf(err, errlen, "empty replication message");
	if (buf[0] == REPL_XLOGDATA)
		return parse_xlogdata(buf, len, out, err, errlen);
	if (buf[0] == REPL_KEEPALIVE)
		return parse_keepalive(buf, len, out, err, errlen);
	return error_printf(err, errlen, "unknown replication message kind %s", byte_text(buf[0], b));
}

void repl_status_build(uint8_t out[REPL_STATUS_LEN], lsn_t lsn, pg_time_t now, bool reply_requested)
{
	out[0] = 'r';
	put_be64(out + 1, lsn);  /* written */
	put_be64(out + 9, lsn);  /* flushed */
	put_be64(out + 17, lsn); /* applied */
	put_be64(out + 25, (uint64_t)now);
	out[33] = reply_requested ? 1 : 0;
}
