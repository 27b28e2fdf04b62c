/*
 * Pure pieces of a backfill (doc/design.md §22.1): the watermark markers' text, the set of
 * row keys the stream changed while a chunk was open, and the chunk size that keeps a read
 * within its time budget. No I/O.
 */
#ifndef OUTBOX_WATERMARK_H
#define OUTBOX_WATERMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The prefix of the relay's transactional marker messages; never routed. */
#define WATERMARK_PREFIX "outbox-relay.watermark"

enum mark_kind {
	MARK_LOW,  /* emitted before a chunk is read */
	MARK_HIGH, /* emitted after: the chunk is placed in the stream here */
};

struct mark {
	enum mark_kind kind;
	int64_t request;
	int64_t chunk;
};

/* "low:<request>:<chunk>" or "high:<request>:<chunk>" into out (reset first). */
void mark_format(const struct mark *m, struct buf *out);

/* Parses a marker's content (not NUL-terminated). Returns 0, or -1 for anything else. */
int mark_parse(const uint8_t *content, size_t len, struct mark *m);

/* ---- row keys ---- */

/* A row's key as one byte string: each key column's text as <length>:<bytes>, NULL as "-",
 * so that no two different keys encode the same. Appends to out. */
void key_append_column(struct buf *out, const char *value, size_t len, bool null);

/* A set of encoded keys, reused from chunk to chunk. */
struct keyset;

struct keyset *keyset_new(void);
void keyset_free(struct keyset *s);
void keyset_clear(struct keyset *s);
void keyset_add(struct keyset *s, const char *key, size_t len);
bool keyset_has(const struct keyset *s, const char *key, size_t len);
size_t keyset_count(const struct keyset *s);

/* ---- chunk size ---- */

#define CHUNK_ROWS_MIN 100
#define CHUNK_ROWS_MAX 50000
#define CHUNK_ROWS_FIRST 1000
#define CHUNK_BUDGET_MS 50
#define CHUNK_BYTES_MAX ((size_t)16 * 1024 * 1024)

/* The size of the next chunk after one of rows rows that held the stream elapsed_ms (read
 * and placed) and held bytes:
 * towards the budget, at most doubling or halving at once, within the bounds; a chunk that
 * was cut short (the table's end) says nothing about speed and keeps the size. */
uint32_t chunk_rows_next(uint32_t rows, uint32_t returned, int64_t elapsed_ms, size_t bytes);

#endif
