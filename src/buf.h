/* A growable byte buffer meant to be reused: reset keeps the allocation. */
#ifndef OUTBOX_BUF_H
#define OUTBOX_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* always NUL-terminated after any append (NUL not counted in len) */
	size_t len;
	size_t cap;
};

#define BUF_INIT           \
	{                  \
		NULL, 0, 0 \
	}

void buf_reset(struct buf *b);
/* Makes room for extra more bytes (and the NUL) at once: one allocation for a value whose
 * size is known, instead of doubling through every size below it. */
void buf_reserve(struct buf *b, size_t extra);
/* Appends n bytes for the caller to write: returns where they start. */
char *buf_extend(struct buf *b, size_t n);
void buf_finish(struct buf *b);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
