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
void buf_finish(struct buf *b);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
