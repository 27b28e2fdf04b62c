/* Building protocol messages byte by byte, for the unit tests of the decoders. */
#ifndef OUTBOX_TEST_WIRE_BUILDER_H
#define OUTBOX_TEST_WIRE_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Always exactly as large as its contents, so reading one byte past the end is caught
 * by valgrind and AddressSanitizer. */
struct msg {
	uint8_t *data;
	size_t len;
};

static inline void put_bytes(struct msg *m, const void *p, size_t n)
{
	if (n == 0)
		return;
	m->data = xrealloc(m->data, m->len + n);
	memcpy(m->data + m->len, p, n);
	m->len += n;
}

static inline void put_u8(struct msg *m, uint8_t v)
{
	put_bytes(m, &v, 1);
}

static inline void put_u16(struct msg *m, uint16_t v)
{
	put_u8(m, (uint8_t)(v >> 8));
	put_u8(m, (uint8_t)v);
}

static inline void put_u32(struct msg *m, uint32_t v)
{
	put_u16(m, (uint16_t)(v >> 16));
	put_u16(m, (uint16_t)v);
}

static inline void put_u64(struct msg *m, uint64_t v)
{
	put_u32(m, (uint32_t)(v >> 32));
	put_u32(m, (uint32_t)v);
}

/* With its terminating NUL, as pgoutput sends strings. */
static inline void put_str(struct msg *m, const char *s)
{
	put_bytes(m, s, strlen(s) + 1);
}

static inline void put_text(struct msg *m, const char *s, size_t len)
{
	put_u8(m, 't');
	put_u32(m, (uint32_t)len);
	put_bytes(m, s, len);
}

static inline void msg_free(struct msg *m)
{
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

#endif
