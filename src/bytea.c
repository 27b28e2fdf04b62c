#include "bytea.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool bytea_is_hex(const char *text, size_t len)
{
	if (len < 2 || text[0] != '\\' || text[1] != 'x' || len % 2)
		return false;
	for (size_t i = 2; i < len; i++)
		if (hex_value(text[i]) < 0)
			return false;
	return true;
}

size_t bytea_length(size_t text_len)
{
	return (text_len - 2) / 2;
}

unsigned char bytea_byte(const char *text, size_t k)
{
	/* Callers check bytea_is_hex first, so both digits are valid (0..15). */
	unsigned high = (unsigned)hex_value(text[2 + 2 * k]) & 0xf,
	         low = (unsigned)hex_value(text[3 + 2 * k]) & 0xf;
	return (unsigned char)(high << 4 | low);
}

void bytea_decode(const char *text, size_t len, unsigned char *out)
{
	size_t n = bytea_length(len);
	for (size_t k = 0; k < n; k++)
		out[k] = bytea_byte(text, k);
}
