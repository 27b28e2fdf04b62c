/*
 * libFuzzer target: replication frames and the pgoutput decoder (src/pgframe.c, src/pgoutput.c).
 *
 * Every input is used twice:
 *  1. As one CopyData payload, exactly what PQgetCopyData hands the relay: through
 *     repl_frame_parse and, for an XLogData ('w') frame, through a fresh decoder.
 *  2. As a stream: records of a 2-byte big-endian length followed by that many bytes of
 *     CopyData payload (a last record shorter than its length takes what is left). Every
 *     record goes to ONE decoder, so Relation messages fill and redefine its relation
 *     cache and later Insert/Update/Delete messages are decoded against it.
 *
 * Whatever decodes is read back in full (strings to their NUL, values to their length),
 * so a pointer that strays past the input shows up under AddressSanitizer, and the
 * promises of pgoutput.h are checked: a tuple has as many columns as its relation, a
 * decoded relation is the one the cache returns.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pgframe.h"
#include "pgoutput.h"

#define RECORD_HEADER_LEN 2

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch_time(pg_time_t t)
{
	char text[64];
	pg_time_format(t, text, sizeof text);
	touch_string(text);
}

static void check_relation(const struct pgo_decoder *d, const struct pgo_relation *rel)
{
	require(pgo_relation_get(d, rel->oid) == rel, "a decoded relation is the cached one");
	require(rel->ncolumns >= 0, "column count is not negative");
	touch_string(rel->schema);
	touch_string(rel->name);
	for (int i = 0; i < rel->ncolumns; i++)
		touch_string(rel->columns[i].name);
}

static void check_tuple(const struct pgo_decoder *d, const struct pgo_relation *rel,
                        const struct pgo_tuple *t)
{
	check_relation(d, rel);
	require(t->ncolumns == rel->ncolumns, "a tuple has its relation's column count");
	for (int i = 0; i < t->ncolumns; i++) {
		const struct pgo_value *v = &t->values[i];
		require(v->kind == PGO_VALUE_NULL || v->kind == PGO_VALUE_UNCHANGED ||
		                v->kind == PGO_VALUE_TEXT,
		        "value kind is n, u or t");
		if (v->kind == PGO_VALUE_TEXT)
			touch(v->data, v->len);
	}
}

/* The decoded message's pointers, read as a consumer of the decoder would. */
static void check_msg(const struct pgo_decoder *d, const struct pgo_msg *m)
{
	switch (m->kind) {
	case PGO_BEGIN: touch_time(m->u.begin.commit_time); break;
	case PGO_COMMIT: touch_time(m->u.commit.commit_time); break;
	case PGO_ORIGIN: touch_string(m->u.origin.name); break;
	case PGO_RELATION: check_relation(d, m->u.relation); break;
	case PGO_TYPE:
		touch_string(m->u.type.schema);
		touch_string(m->u.type.name);
		break;
	case PGO_INSERT: check_tuple(d, m->u.insert.rel, &m->u.insert.tuple); break;
	case PGO_UPDATE:
		if (m->u.update.has_old)
			check_tuple(d, m->u.update.rel, &m->u.update.old_tuple);
		check_tuple(d, m->u.update.rel, &m->u.update.new_tuple);
		break;
	case PGO_DELETE: check_tuple(d, m->u.delete.rel, &m->u.delete.old_tuple); break;
	case PGO_TRUNCATE: break;
	case PGO_MESSAGE:
		touch_string(m->u.message.prefix);
		touch(m->u.message.content, m->u.message.len);
		break;
	default: require(0, "message kind is one of pgo_kind");
	}
}

/* One CopyData payload, as the relay's receive step handles it. */
static void feed_frame(struct pgo_decoder *d, const uint8_t *buf, size_t len)
{
	struct repl_frame f;
	struct pgo_msg m;
	char err[256];
	if (repl_frame_parse(buf, len, &f, err, sizeof err) < 0) {
		touch_string(err);
		return;
	}
	touch_time(f.send_time);
	if (f.kind == REPL_KEEPALIVE) {
		/* What the relay answers with. */
		uint8_t status[REPL_STATUS_LEN];
		repl_status_build(status, f.wal_end, f.send_time, f.reply_requested);
		require(status[0] == 'r' && status[33] == f.reply_requested, "status update layout");
		return;
	}
	require(f.data == buf + (len - f.len), "XLogData data ends where the frame does");
	if (pgo_decode(d, f.data, f.len, &m) < 0)
		touch_string(pgo_error(d));
	else
		check_msg(d, &m);
}

static void single_frame(const uint8_t *data, size_t size)
{
	struct pgo_decoder *d = pgo_decoder_new();
	feed_frame(d, data, size);
	pgo_decoder_free(d);
}

/* Each record is copied to a buffer of exactly its size, so that reading one byte past
 * the frame is caught even when the next record follows in the input. */
static void stream(const uint8_t *data, size_t size)
{
	struct pgo_decoder *d = pgo_decoder_new();
	while (size >= RECORD_HEADER_LEN) {
		size_t len = (size_t)data[0] << 8 | data[1];
		data += RECORD_HEADER_LEN;
		size -= RECORD_HEADER_LEN;
		if (len > size)
			len = size;
		uint8_t *frame = copy_exact(data, len);
		feed_frame(d, frame, len);
		free(frame);
		data += len;
		size -= len;
	}
	pgo_decoder_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_name("fuzz_pgoutput");
	single_frame(data, size);
	stream(data, size);
	return 0;
}
