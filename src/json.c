#include "json.h"

#include <stdbool.h>
#include <string.h>

#include "bytea.h"
#include "pgoutput.h"
#include "typemap.h"

/* Built-in type OIDs (pg_type.dat); stable across PostgreSQL versions. */
enum {
	OID_BOOL = 16,
	OID_BYTEA = 17,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_OID = 26,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_NUMERIC = 1700,
	OID_JSONB = 3802,
};

/* Written as an escape rather than raw bytes so the replacement is visible in ASCII logs. */
#define JSON_REPLACEMENT "\\ufffd"

/*
 * Length of the well-formed UTF-8 sequence at s, or 0 if there is none. Follows
 * Unicode table 3-7, so overlong forms, surrogates and code points past U+10FFFF fail.
 * *bad gets how many bytes form the maximal ill-formed prefix, so that one U+FFFD
 * replaces it (the W3C/Unicode "maximal subpart" practice).
 */
static size_t utf8_seq(const unsigned char *s, size_t len, size_t *bad)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

	*bad = 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* below: overlong */
		else if (c == 0xed)
			hi = 0x9f; /* above: UTF-16 surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* below: overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above: past U+10FFFF */
	} else {
		return 0; /* continuation byte, C0/C1 (always overlong) or F5..FF */
	}
	if (len < 2 || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		*bad = i;
		if (i >= len || (s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* The escape for a byte below 0x20 or one of '"' '\\'; NULL if it may go out raw. */
static const char *json_escape(unsigned char c, char tmp[7])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\t': return "\\t";
	case '\r': return "\\r";
	case '\b': return "\\b";
	case '\f': return "\\f";
	}
	if (c >= 0x20)
		return NULL;
	memcpy(tmp, "\\u00", 4);
	tmp[4] = hex[c >> 4];
	tmp[5] = hex[c & 0xf];
	tmp[6] = '\0';
	return tmp;
}

void json_append_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0; /* start of the pending stretch of bytes that go out unchanged */
	size_t i = 0;
	char tmp[7];

	buf_putc(out, '"');
	while (i < len) {
		const char *esc = NULL;
		size_t step = 1;

		if (p[i] >= 0x80) {
			size_t bad;
			step = utf8_seq(p + i, len - i, &bad);
			if (!step) {
				esc = JSON_REPLACEMENT;
				step = bad;
			}
		} else {
			esc = json_escape(p[i], tmp);
		}
		if (esc) {
			/* Copy in runs: most text needs no escaping at all. */
			buf_append(out, s + run, i - run);
			buf_puts(out, esc);
			run = i + step;
		}
		i += step;
	}
	buf_append(out, s + run, len - run);
	buf_putc(out, '"');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Skips a run of digits starting at *i; false if there was none. */
static bool skip_digits(const char *s, size_t len, size_t *i)
{
	size_t start = *i;
	while (*i < len && is_digit(s[*i]))
		(*i)++;
	return *i > start;
}

/* RFC 8259 number grammar: PostgreSQL's output is close but not identical (e.g. "NaN",
 * or a future format change), and a payload must never be broken JSON. */
static bool is_json_number(const char *s, size_t len)
{
	size_t i = 0;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0')
		i++;
	else if (!skip_digits(s, len, &i))
		return false;
	if (i < len && s[i] == '.') {
		i++;
		if (!skip_digits(s, len, &i))
			return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!skip_digits(s, len, &i))
			return false;
	}
	return i == len;
}

/* Valid numbers go out bare; the special values (NaN, ±Infinity) and anything else as
 * strings, which keeps them lossless. */
static void append_number(struct buf *out, const char *s, size_t len)
{
	if (is_json_number(s, len))
		buf_append(out, s, len);
	else
		json_append_string(out, s, len);
}

/* Base64 straight from the hex digits, through a stack chunk: no decoded copy needed. */
static void append_bytea_base64(struct buf *out, const char *text, size_t nbytes)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char chunk[256];
	size_t n = 0;

	/* Sized once, quotes included: a huge value is not copied through smaller buffers. */
	buf_reserve(out, (nbytes + 2) / 3 * 4 + 2);
	buf_putc(out, '"');
	for (size_t k = 0; k < nbytes; k += 3) {
		size_t left = nbytes - k;
		unsigned v = (unsigned)bytea_byte(text, k) << 16;
		if (left > 1)
			v |= bytea_byte(text, k + 1) << 8;
		if (left > 2)
			v |= bytea_byte(text, k + 2);
		chunk[n++] = b64[v >> 18 & 63];
		chunk[n++] = b64[v >> 12 & 63];
		chunk[n++] = left > 1 ? b64[v >> 6 & 63] : '=';
		chunk[n++] = left > 2 ? b64[v & 63] : '=';
		if (n > sizeof chunk - 4) {
			buf_append(out, chunk, n);
			n = 0;
		}
	}
	buf_append(out, chunk, n);
	buf_putc(out, '"');
}

static void append_bytea(struct buf *out, const char *s, size_t len)
{
	if (bytea_is_hex(s, len))
		append_bytea_base64(out, s, bytea_length(len));
	else
		json_append_string(out, s, len); /* escape format or garbage: keep the text */
}

static void append_bool(struct buf *out, const char *s, size_t len)
{
	if (len == 1 && s[0] == 't')
		buf_puts(out, "true");
	else if (len == 1 && s[0] == 'f')
		buf_puts(out, "false");
	else
		json_append_string(out, s, len);
}

void json_append_value(struct buf *out, uint32_t type_oid, const struct pgo_value *v)
{
	if (!v || v->kind != PGO_VALUE_TEXT) {
		/* The payload cannot carry the old TOASTed value, and null is the honest
		 * "no value here" in JSON. */
		buf_puts(out, "null");
		return;
	}
	const char *s = v->data;
	size_t len = v->len;

	switch (type_oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC: append_number(out, s, len); break;
	case OID_BOOL: append_bool(out, s, len); break;
	case OID_JSON:
	case OID_JSONB:
		/* The server validated it on input; an empty text is the one cheap-to-spot
		 * way it could still break the payload. */
		if (len)
			buf_append(out, s, len);
		else
			buf_puts(out, "null");
		break;
	case OID_BYTEA: append_bytea(out, s, len); break;
	default: json_append_string(out, s, len); break;
	}
}

void json_append_row(struct buf *out, const struct typemap *types, const struct pgo_relation *rel,
                     const struct pgo_tuple *row)
{
	buf_putc(out, '{');
	for (int i = 0; i < rel->ncolumns; i++) {
		const struct pgo_column *col = &rel->columns[i];
		/* A tuple shorter than its relation would be a decoder bug; the missing
		 * columns go out as null rather than reading past the values. */
		const struct pgo_value *v = i < row->ncolumns ? &row->values[i] : NULL;

		if (i)
			buf_putc(out, ',');
		json_append_string(out, col->name, strlen(col->name));
		buf_putc(out, ':');
		json_append_value(out, typemap_resolve(types, col->type_oid), v);
	}
	buf_putc(out, '}');
}
