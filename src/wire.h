/*
 * Reading and writing PostgreSQL's wire format: big-endian integers, and a readable form of
 * a kind byte for error messages. Header-only, shared by the pgoutput decoder and the
 * replication framing.
 */
#ifndef OUTBOX_WIRE_H
#define OUTBOX_WIRE_H

#include <stdint.h>
#include <stdio.h>

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Shows a kind or marker byte readably in error messages: 'N' or 0x00. */
static inline const char *byte_text(uint8_t b, char out[8])
{
	if (b > ' ' && b < 0x7f)
		snprintf(out, 8, "'%c'", b);
	else
		snprintf(out, 8, "0x%02x", b);
	return out;
}

#endif
