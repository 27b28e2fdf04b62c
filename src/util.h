/* Allocation that cannot fail quietly (out of memory is fatal for a daemon this small),
 * and the monotonic clock. */
#ifndef OUTBOX_UTIL_H
#define OUTBOX_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Never NULL: out of memory aborts (a relay that cannot allocate cannot keep its promise). */
#define NONNULL_ALLOC __attribute__((returns_nonnull, warn_unused_result))
NONNULL_ALLOC void *xmalloc(size_t size);
NONNULL_ALLOC void *xcalloc(size_t n, size_t size);
NONNULL_ALLOC void *xrealloc(void *p, size_t size);
NONNULL_ALLOC char *xstrdup(const char *s);
NONNULL_ALLOC char *xstrndup(const char *s, size_t n);

/* Formats an error message into buf (if buf and len allow) and returns -1, so that
 * "return error_printf(err, errlen, ...);" reports and fails in one line. */
int error_printf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds on the monotonic clock: for deadlines, never for timestamps. */
int64_t monotonic_ms(void);

#endif
