/* bytea's text output form as logical decoding sends it (bytea_output = 'hex', the
 * default): "\x" followed by two hex digits per byte. Pure. */
#ifndef OUTBOX_BYTEA_H
#define OUTBOX_BYTEA_H

#include <stdbool.h>
#include <stddef.h>

/* True if text is a well-formed hex form ("\x" and an even number of hex digits). */
bool bytea_is_hex(const char *text, size_t len);

/* Number of bytes a well-formed hex form stands for. */
size_t bytea_length(size_t text_len);

/* Byte k of a well-formed hex form. */
unsigned char bytea_byte(const char *text, size_t k);

/* Writes the bytea_length(len) bytes a well-formed hex form stands for to out. out may be
 * text itself: byte k is written before digit 2k + 2 is read, so decoding in place works. */
void bytea_decode(const char *text, size_t len, unsigned char *out);

#endif
