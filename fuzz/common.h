/* Helpers shared by the fuzz targets: independent checks of what the modules promise. */
#ifndef OUTBOX_FUZZ_COMMON_H
#define OUTBOX_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Aborts with "NAME: broken promise: WHAT" unless ok, so libFuzzer saves the input. */
void require(bool ok, const char *what);

/* Sets the target's name for require's messages. */
void fuzz_name(const char *name);

/* Reads every byte of p, so that AddressSanitizer sees a pointer out of bounds. */
void touch(const void *p, size_t len);
void touch_string(const char *s);

/* A copy in an allocation of exactly len bytes (1 when len is 0). */
void *copy_exact(const void *p, size_t len);

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong form, no
 * surrogate, nothing past U+10FFFF) with its code point in *cp, or 0 if malformed.
 * Written apart from the decoders under test so the two can disagree.
 */
size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

#endif
