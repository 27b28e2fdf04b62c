#include "watermark.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void mark_format(const struct mark *m, struct buf *out)
{
	buf_reset(out);
	buf_printf(out, "%s:%" PRId64 ":%" PRId64, m->kind == MARK_LOW ? "low" : "high", m->request,
	           m->chunk);
}

/* A decimal number ending at end or at ':'; returns where it stopped, or NULL. */
static const char *parse_number(const char *p, const char *end, int64_t *out)
{
	int64_t v = 0;
	const char *start = p;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return NULL;
		v = v * 10 + (*p - '0');
		p++;
	}
	if (p == start)
		return NULL;
	*out = v;
	return p;
}

int mark_parse(const uint8_t *content, size_t len, struct mark *m)
{
	const char *p = (const char *)content, *end = p + len;
	if (len > 4 && memcmp(p, "low:", 4) == 0) {
		m->kind = MARK_LOW;
		p += 4;
	} else if (len > 5 && memcmp(p, "high:", 5) == 0) {
		m->kind = MARK_HIGH;
		p += 5;
	} else {
		return -1;
	}
	p = parse_number(p, end, &m->request);
	if (!p || p == end || *p != ':')
		return -1;
	p = parse_number(p + 1, end, &m->chunk);
	return p == end ? 0 : -1;
}

void key_append_column(struct buf *out, const char *value, size_t len, bool null)
{
	if (null) {
		buf_putc(out, '-');
		return;
	}
	buf_printf(out, "%zu:", len);
	buf_append(out, value, len);
}

/* ---- the key set: open addressing over copies of the keys ---- */

struct key {
	char *data; /* NULL: empty slot */
	size_t len;
};

struct keyset {
	struct key *slots;
	size_t capacity; /* a power of two */
	size_t count;
};

static uint64_t hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct keyset *keyset_new(void)
{
	struct keyset *s = xcalloc(1, sizeof *s);
	s->capacity = 64;
	s->slots = xcalloc(s->capacity, sizeof *s->slots);
	return s;
}

void keyset_clear(struct keyset *s)
{
	for (size_t i = 0; i < s->capacity; i++) {
		free(s->slots[i].data);
		s->slots[i].data = NULL;
	}
	s->count = 0;
}

void keyset_free(struct keyset *s)
{
	if (!s)
		return;
	keyset_clear(s);
	free(s->slots);
	free(s);
}

static struct key *find_slot(struct key *slots, size_t capacity, const char *key, size_t len)
{
	size_t i = (size_t)hash(key, len) & (capacity - 1);
	while (slots[i].data && (slots[i].len != len || memcmp(slots[i].data, key, len) != 0))
		i = (i + 1) & (capacity - 1);
	return &slots[i];
}

static void grow(struct keyset *s)
{
	size_t capacity = s->capacity * 2;
	struct key *slots = xcalloc(capacity, sizeof *slots);
	for (size_t i = 0; i < s->capacity; i++)
		if (s->slots[i].data)
			*find_slot(slots, capacity, s->slots[i].data, s->slots[i].len) = s->slots[i];
	free(s->slots);
	s->slots = slots;
	s->capacity = capacity;
}

void keyset_add(struct keyset *s, const char *key, size_t len)
{
	if ((s->count + 1) * 2 > s->capacity)
		grow(s);
	struct key *slot = find_slot(s->slots, s->capacity, key, len);
	if (slot->data)
		return;
	slot->data = xmalloc(len ? len : 1);
	memcpy(slot->data, key, len);
	slot->len = len;
	s->count++;
}

bool keyset_has(const struct keyset *s, const char *key, size_t len)
{
	return find_slot(s->slots, s->capacity, key, len)->data != NULL;
}

size_t keyset_count(const struct keyset *s)
{
	return s->count;
}

/* ---- chunk size ---- */

uint32_t chunk_rows_next(uint32_t rows, uint32_t returned, int64_t elapsed_ms, size_t bytes)
{
	uint64_t next = rows;
	if (returned >= rows) {
		if (elapsed_ms < 1)
			elapsed_ms = 1;
		next = (uint64_t)rows * CHUNK_BUDGET_MS / (uint64_t)elapsed_ms;
		if (next > (uint64_t)rows * 2)
			next = (uint64_t)rows * 2;
		if (next < rows / 2)
			next = rows / 2;
	}
	/* Whatever the speed, a chunk's rows wait in memory until the stream places them. */
	if (returned && bytes > CHUNK_BYTES_MAX / 2) {
		uint64_t fit = (uint64_t)returned * (CHUNK_BYTES_MAX / 2) / bytes;
		if (fit < next)
			next = fit;
	}
	if (next < CHUNK_ROWS_MIN)
		next = CHUNK_ROWS_MIN;
	if (next > CHUNK_ROWS_MAX)
		next = CHUNK_ROWS_MAX;
	return (uint32_t)next;
}
