/* Allocation that cannot fail quietly (out of memory is fatal for a daemon this small),
 * and the monotonic clock. */
#ifndef OUTBOX_UTIL_H
#define OUTBOX_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Formats an error message into buf (if buf and len allow) and returns -1, so that
 * "return error_printf(err, errlen, ...);" reports and fails in one line. */
int error_printf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds on the monotonic clock: for deadlines, never for timestamps. */
int64_t monotonic_ms(void);

#endif
