/*
 * libFuzzer target: row payloads as JSON (src/json.c, with bytea.c and buf.c).
 *
 * Input: a relation and one tuple built by hand, no decoder involved.
 *   byte 0: low 5 bits the column count (0..31), high 3 bits how many trailing columns
 *           the tuple lacks (json_append_row must pad them with null);
 *   then per column:
 *     type  1 byte T: T < 0xF0 picks TYPES[T % NTYPES] (the OIDs json.c knows and a
 *           few it does not); T >= 0xF0 is followed by a 4-byte big-endian OID, as is;
 *     name  1 byte length N, then N bytes (cut at a NUL: names are C strings);
 *     value 2-byte big-endian length L, then L bytes of text form; L = 0xFFFF is NULL,
 *           L = 0xFFFE an unchanged TOASTed value.
 *   A field cut short by the end of the input takes what is left.
 * Example: "\x01" "\x02" "\x02id" "\x00\x0242" -> one int4 (TYPES[2]) column id = 42.
 *
 * Checked beyond "no crash, no leak", with a JSON reader of our own: every value and
 * every row is one JSON value in valid UTF-8 (unless a json/jsonb column embeds its text
 * verbatim, which json.h allows); a number goes out bare only as its exact text; a
 * string of valid UTF-8 reads back as the very bytes it came from; a bool is true or
 * false only for "t" or "f"; a NULL or unchanged value is null; bytea in hex form is
 * base64 of the right length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "common.h"
#include "json.h"
#include "pgoutput.h"

#define MAX_COLUMNS 31
#define OID_LITERAL 0xF0
#define LEN_NULL 0xFFFF
#define LEN_UNCHANGED 0xFFFE

enum {
	T_BOOL = 16,
	T_BYTEA = 17,
	T_INT8 = 20,
	T_INT2 = 21,
	T_INT4 = 23,
	T_TEXT = 25,
	T_OID = 26,
	T_JSON = 114,
	T_FLOAT4 = 700,
	T_FLOAT8 = 701,
	T_NUMERIC = 1700,
	T_JSONB = 3802,
	T_UUID = 2950,
	T_TIMESTAMPTZ = 1184,
	T_INT4ARRAY = 1007,
};

static const uint32_t TYPES[] = {
	T_BOOL,    T_BYTEA, T_INT4,  T_INT8, T_INT2, T_OID,         T_FLOAT4,    T_FLOAT8,
	T_NUMERIC, T_JSON,  T_JSONB, T_TEXT, T_UUID, T_TIMESTAMPTZ, T_INT4ARRAY,
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reading the input -------------------------------------------------------------- */

struct input {
	const uint8_t *p;
	size_t left;
};

static size_t take(struct input *in, size_t n, const uint8_t **out)
{
	n = n < in->left ? n : in->left;
	*out = in->p;
	in->p += n;
	in->left -= n;
	return n;
}

static unsigned take_uint(struct input *in, size_t nbytes)
{
	const uint8_t *p;
	size_t n = take(in, nbytes, &p);
	unsigned v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t read_type(struct input *in)
{
	unsigned t = take_uint(in, 1);
	return t < OID_LITERAL ? TYPES[t % NTYPES] : (uint32_t)take_uint(in, 4);
}

static char *read_name(struct input *in)
{
	const uint8_t *p;
	size_t n = take(in, take_uint(in, 1), &p);
	const uint8_t *nul = memchr(p, '\0', n);
	n = nul ? (size_t)(nul - p) : n;
	char *name = malloc(n + 1);
	require(name != NULL, "malloc");
	memcpy(name, p, n);
	name[n] = '\0';
	return name;
}

/* The value's text gets an allocation of its exact size, so that overreads are caught. */
static struct pgo_value read_value(struct input *in)
{
	unsigned len = take_uint(in, 2);
	const uint8_t *p;
	if (len == LEN_NULL)
		return (struct pgo_value){ PGO_VALUE_NULL, NULL, 0 };
	if (len == LEN_UNCHANGED)
		return (struct pgo_value){ PGO_VALUE_UNCHANGED, NULL, 0 };
	size_t n = take(in, len, &p);
	return (struct pgo_value){ PGO_VALUE_TEXT, copy_exact(p, n), (uint32_t)n };
}

/* ---- a JSON reader of our own (RFC 8259, scalars and one flat object) ------------------ */

struct reader {
	const unsigned char *p;
	size_t left;
	struct buf *decoded; /* a string's decoded bytes, when not NULL */
};

static bool eat(struct reader *r, char c)
{
	if (!r->left || *r->p != c)
		return false;
	r->p++;
	r->left--;
	return true;
}

static bool eat_digits(struct reader *r)
{
	size_t n = 0;
	while (r->left && *r->p >= '0' && *r->p <= '9') {
		r->p++;
		r->left--;
		n++;
	}
	return n > 0;
}

static bool read_number(struct reader *r)
{
	eat(r, '-');
	if (!eat(r, '0') && !eat_digits(r))
		return false;
	if (eat(r, '.') && !eat_digits(r))
		return false;
	if (eat(r, 'e') || eat(r, 'E')) {
		if (!eat(r, '+'))
			eat(r, '-');
		return eat_digits(r);
	}
	return true;
}

static int hex_digit(unsigned char c)
{
	const char *digits = "0123456789abcdef0123456789ABCDEF";
	const char *at = c ? strchr(digits, c) : NULL;
	return at ? (int)((at - digits) % 16) : -1;
}

/* "\u" and four hex digits (already past the backslash); BMP only, as json.c writes. */
static bool read_unicode_escape(struct reader *r)
{
	uint32_t cp = 0;
	if (!eat(r, 'u') || r->left < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(r->p[i]);
		if (d < 0)
			return false;
		cp = cp << 4 | (uint32_t)d;
	}
	r->p += 4;
	r->left -= 4;
	if (cp < 0x80) {
		buf_putc(r->decoded, (char)cp);
	} else if (cp < 0x800) {
		buf_putc(r->decoded, (char)(0xC0 | cp >> 6));
		buf_putc(r->decoded, (char)(0x80 | (cp & 0x3F)));
	} else {
		buf_putc(r->decoded, (char)(0xE0 | cp >> 12));
		buf_putc(r->decoded, (char)(0x80 | (cp >> 6 & 0x3F)));
		buf_putc(r->decoded, (char)(0x80 | (cp & 0x3F)));
	}
	return true;
}

static bool read_escape(struct reader *r)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *at = r->left && *r->p ? strchr(from, *r->p) : NULL;
	if (!at)
		return read_unicode_escape(r);
	buf_putc(r->decoded, to[at - from]);
	r->p++;
	r->left--;
	return true;
}

static bool read_string(struct reader *r)
{
	buf_reset(r->decoded);
	if (!eat(r, '"'))
		return false;
	while (!eat(r, '"')) {
		uint32_t cp;
		size_t n = r->left ? utf8_next(r->p, r->left, &cp) : 0;
		if (n == 0 || cp < 0x20)
			return false; /* unterminated, invalid UTF-8 or a raw control */
		if (cp == '\\') {
			r->p++;
			r->left--;
			if (!read_escape(r))
				return false;
			continue;
		}
		buf_append(r->decoded, r->p, n);
		r->p += n;
		r->left -= n;
	}
	return true;
}

static bool eat_word(struct reader *r, const char *word)
{
	size_t n = strlen(word);
	if (r->left < n || memcmp(r->p, word, n) != 0)
		return false;
	r->p += n;
	r->left -= n;
	return true;
}

static bool read_scalar(struct reader *r)
{
	if (r->left && *r->p == '"')
		return read_string(r);
	if (r->left && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')))
		return read_number(r);
	return eat_word(r, "true") || eat_word(r, "false") || eat_word(r, "null");
}

/* {"name":scalar,...} exactly as json_append_row writes it (no whitespace). */
static bool read_row(struct reader *r)
{
	if (!eat(r, '{'))
		return false;
	if (eat(r, '}'))
		return true;
	do {
		if (!read_string(r) || !eat(r, ':') || !read_scalar(r))
			return false;
	} while (eat(r, ','));
	return eat(r, '}');
}

/* ---- the checks ---------------------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0, n; i < len; i += n)
		if ((n = utf8_next((const unsigned char *)s + i, len - i, &cp)) == 0)
			return false;
	return true;
}

static bool is_json_type(uint32_t oid)
{
	return oid == T_JSON || oid == T_JSONB;
}

static bool is_number_type(uint32_t oid)
{
	return oid == T_INT2 || oid == T_INT4 || oid == T_INT8 || oid == T_OID || oid == T_FLOAT4 ||
	       oid == T_FLOAT8 || oid == T_NUMERIC;
}

static bool same(const struct buf *b, const char *s, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, s, len) == 0);
}

/* Hex form per bytea.h, checked without bytea.c. */
static bool bytea_hex(const char *s, size_t len)
{
	if (len < 2 || s[0] != '\\' || s[1] != 'x' || len % 2)
		return false;
	for (size_t i = 2; i < len; i++)
		if (hex_digit((unsigned char)s[i]) < 0)
			return false;
	return true;
}

/* A string's decoded text against the value it came from. */
static void check_string_value(uint32_t oid, const struct pgo_value *v, const struct buf *decoded)
{
	if (oid == T_BYTEA && bytea_hex(v->data, v->len)) {
		size_t nbytes = (v->len - 2) / 2;
		require(decoded->len == (nbytes + 2) / 3 * 4, "bytea is base64 of its length");
		return;
	}
	if (valid_utf8(v->data, v->len))
		require(same(decoded, v->data, v->len), "a string reads back as its value");
	else
		require(valid_utf8(decoded->data, decoded->len), "invalid UTF-8 is replaced");
}

static void check_value(uint32_t oid, const struct pgo_value *v)
{
	struct buf out = BUF_INIT, decoded = BUF_INIT;
	json_append_value(&out, oid, v);
	struct reader r = { (const unsigned char *)out.data, out.len, &decoded };
	if (v->kind != PGO_VALUE_TEXT) {
		require(same(&out, "null", 4), "NULL and unchanged values are null");
	} else if (is_json_type(oid)) {
		require(v->len ? same(&out, v->data, v->len) : same(&out, "null", 4),
		        "json is embedded verbatim");
	} else {
		require(read_scalar(&r) && r.left == 0, "a value is one JSON scalar");
		char first = out.data[0];
		if (first == '"')
			check_string_value(oid, v, &decoded);
		else if (first == 't' || first == 'f')
			require(oid == T_BOOL && v->len == 1 && v->data[0] == first,
			        "true/false only for t/f");
		else
			require(is_number_type(oid) && same(&out, v->data, v->len),
			        "a bare number is its text");
	}
	buf_finish(&decoded);
	buf_finish(&out);
}

static void check_row(const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	struct buf out = BUF_INIT, decoded = BUF_INIT;
	bool verbatim = false;
	for (int i = 0; i < row->ncolumns; i++)
		verbatim |= is_json_type(rel->columns[i].type_oid) && row->values[i].kind == PGO_VALUE_TEXT;
	json_append_row(&out, NULL, rel, row);
	struct reader r = { (const unsigned char *)out.data, out.len, &decoded };
	require(out.data[out.len] == '\0', "output is NUL-terminated");
	if (!verbatim)
		require(read_row(&r) && r.left == 0, "a row is one flat JSON object");
	buf_finish(&decoded);
	buf_finish(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct pgo_column columns[MAX_COLUMNS];
	struct pgo_value values[MAX_COLUMNS];
	unsigned head = take_uint(&in, 1);
	int ncolumns = (int)(head & MAX_COLUMNS);
	int missing = (int)(head >> 5);
	fuzz_name("fuzz_json");
	for (int i = 0; i < ncolumns; i++) {
		/* In input order: the order of initializers' side effects is unspecified. */
		columns[i] = (struct pgo_column){ .type_oid = read_type(&in) };
		columns[i].name = read_name(&in);
		values[i] = read_value(&in);
		check_value(columns[i].type_oid, &values[i]);
	}
	struct pgo_relation rel = {
		.oid = 1, .schema = "public", .name = "fuzz", .ncolumns = ncolumns, .columns = columns
	};
	struct pgo_tuple row = { missing < ncolumns ? ncolumns - missing : 0, values };
	check_row(&rel, &row);
	for (int i = 0; i < ncolumns; i++) {
		free(columns[i].name);
		free((void *)values[i].data);
	}
	return 0;
}
