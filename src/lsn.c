#include "lsn.h"

#include <stdio.h>
#include <stdlib.h>

static int parse_half(const char *start, const char *end, uint32_t *out)
{
	if (end == start || end - start > 8)
		return -1;
	uint64_t v = 0;
	for (const char *p = start; p < end; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			return -1;
		v = v * 16 + (uint64_t)d;
	}
	*out = (uint32_t)v;
	return 0;
}

int lsn_parse(const char *text, lsn_t *out)
{
	const char *slash = text;
	while (*slash && *slash != '/')
		slash++;
	if (*slash != '/')
		return -1;
	const char *end = slash + 1;
	while (*end)
		end++;
	uint32_t hi, lo;
	if (parse_half(text, slash, &hi) < 0 || parse_half(slash + 1, end, &lo) < 0)
		return -1;
	*out = ((lsn_t)hi << 32) | lo;
	return 0;
}

char *lsn_format(lsn_t lsn, char buf[LSN_BUFLEN])
{
	snprintf(buf, LSN_BUFLEN, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
	return buf;
}
