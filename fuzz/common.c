#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *target = "fuzz";

void fuzz_name(const char *name)
{
	target = name;
}

void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "%s: broken promise: %s\n", target, what);
	abort();
}

void touch(const void *p, size_t len)
{
	/* volatile: the reads are the point, the compiler must not drop them. */
	volatile unsigned char sink = 0;
	for (size_t i = 0; i < len; i++)
		sink ^= ((const unsigned char *)p)[i];
	(void)sink;
}

void touch_string(const char *s)
{
	touch(s, strlen(s) + 1);
}

void *copy_exact(const void *p, size_t len)
{
	void *c = malloc(len ? len : 1);
	require(c != NULL, "malloc");
	if (len)
		memcpy(c, p, len);
	return c;
}

/* Sequence length announced by a lead byte and the payload bits it carries; 0 if none. */
static size_t utf8_lead(unsigned char c, uint32_t *bits)
{
	static const struct {
		unsigned char mask, value, payload;
	} leads[] = {
		{ 0x80, 0x00, 0x7F }, { 0xE0, 0xC0, 0x1F }, { 0xF0, 0xE0, 0x0F }, { 0xF8, 0xF0, 0x07 }
	};
	for (size_t i = 0; i < sizeof leads / sizeof leads[0]; i++) {
		if ((c & leads[i].mask) == leads[i].value) {
			*bits = c & leads[i].payload;
			return i + 1;
		}
	}
	return 0;
}

size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	static const uint32_t smallest[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n = utf8_lead(s[0], cp);
	if (n == 0 || n > len)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[k] & 0x3Fu);
	}
	if (*cp < smallest[n] || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return n;
}
