#include "template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A template is a list of segments: literal text (braces already unescaped) or a field. */
struct segment {
	bool is_field;
	size_t start; /* literal: offset into text; field: index into fields */
	size_t len;   /* literal: length in bytes */
};

struct template
{
	char *text; /* every literal segment, back to back */
	struct segment *segs;
	size_t nsegs;
	char **fields;
	size_t nfields;
};

/*
 * What can make text unfit for a topic (a scan reports the first it meets). libmosquitto
 * refuses control characters and noncharacters as malformed UTF-8, so they are flaws
 * here too: a topic the library would refuse must be caught before publishing.
 */
enum flaw {
	FLAW_NONE,
	FLAW_BAD_UTF8,
	FLAW_NUL,
	FLAW_PLUS,
	FLAW_HASH,
	FLAW_CONTROL,
	FLAW_NONCHARACTER,
};

struct scan {
	enum flaw flaw;
	size_t offset;      /* where the flaw starts */
	uint32_t codepoint; /* for FLAW_CONTROL and FLAW_NONCHARACTER */
};

/* How a lead byte starts a sequence: its length, the smallest code point it may carry
 * (anything lower is overlong) and the payload bits it holds. */
struct utf8_lead {
	unsigned char first, last;
	size_t len;
	uint32_t min;
	unsigned char mask;
};

/* C0, C1 (always overlong) and F5..FF (beyond U+10FFFF) lead nothing. */
static const struct utf8_lead utf8_leads[] = {
	{ 0xC2, 0xDF, 2, 0x80, 0x1F },
	{ 0xE0, 0xEF, 3, 0x800, 0x0F },
	{ 0xF0, 0xF4, 4, 0x10000, 0x07 },
};

static const struct utf8_lead *utf8_lead_of(unsigned char c)
{
	for (size_t i = 0; i < sizeof utf8_leads / sizeof utf8_leads[0]; i++)
		if (c >= utf8_leads[i].first && c <= utf8_leads[i].last)
			return &utf8_leads[i];
	return NULL;
}

/* Decodes one non-ASCII sequence (RFC 3629). Returns its length, or 0 if malformed:
 * truncated, overlong, a surrogate, or beyond U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	const struct utf8_lead *lead = utf8_lead_of(s[0]);
	if (!lead || len < lead->len)
		return 0;
	*cp = s[0] & lead->mask;
	for (size_t i = 1; i < lead->len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3F);
	}
	if (*cp < lead->min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
		return 0;
	return lead->len;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

static bool is_noncharacter(uint32_t cp)
{
	return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

static enum flaw ascii_flaw(unsigned char c)
{
	switch (c) {
	case '\0': return FLAW_NUL;
	case '+': return FLAW_PLUS;
	case '#': return FLAW_HASH;
	default: return is_control(c) ? FLAW_CONTROL : FLAW_NONE;
	}
}

static enum flaw codepoint_flaw(uint32_t cp)
{
	if (is_control(cp))
		return FLAW_CONTROL;
	if (is_noncharacter(cp))
		return FLAW_NONCHARACTER;
	return FLAW_NONE;
}

/* Finds the first thing in text that cannot be part of an MQTT topic name. */
static struct scan scan_topic_text(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	struct scan r = { FLAW_NONE, 0, 0 };
	size_t i = 0;
	while (i < len) {
		size_t n = 1;
		r.offset = i;
		r.codepoint = s[i];
		if (s[i] < 0x80)
			r.flaw = ascii_flaw(s[i]);
		else if ((n = utf8_decode(s + i, len - i, &r.codepoint)) == 0)
			r.flaw = FLAW_BAD_UTF8;
		else
			r.flaw = codepoint_flaw(r.codepoint);
		if (r.flaw != FLAW_NONE)
			return r;
		i += n;
	}
	r.offset = len;
	return r;
}

/* ---- Parsing ---- */

struct parser {
	const char *src;
	struct template *t;
	struct buf text;
	char *err;
	size_t errlen;
};

static void add_literal(struct parser *p, const char *s, size_t len)
{
	struct template *t = p->t;
	bool extends_literal = t->nsegs > 0 && !t->segs[t->nsegs - 1].is_field;
	if (!extends_literal)
		t->segs[t->nsegs++] = (struct segment){ false, p->text.len, 0 };
	buf_append(&p->text, s, len);
	t->segs[t->nsegs - 1].len += len;
}

static void add_field(struct parser *p, const char *name, size_t len)
{
	struct template *t = p->t;
	t->segs[t->nsegs++] = (struct segment){ true, t->nfields, 0 };
	t->fields[t->nfields++] = xstrndup(name, len);
}

static int literal_error(struct parser *p, size_t start, struct scan s)
{
	size_t at = start + s.offset;
	switch (s.flaw) {
	case FLAW_PLUS:
	case FLAW_HASH:
		return error_printf(p->err, p->errlen,
		                    "\"%c\" is an MQTT wildcard and cannot appear in a topic", p->src[at]);
	case FLAW_CONTROL:
		return error_printf(p->err, p->errlen,
		                    "control character U+%04X at offset %zu cannot appear in a topic",
		                    (unsigned)s.codepoint, at);
	case FLAW_NONCHARACTER:
		return error_printf(p->err, p->errlen,
		                    "noncharacter U+%04X at offset %zu cannot appear in a topic",
		                    (unsigned)s.codepoint, at);
	default: return error_printf(p->err, p->errlen, "invalid UTF-8 at offset %zu", at);
	}
}

/* Plain text up to the next brace. Returns its length, or -1 if it cannot be a topic. */
static int parse_text(struct parser *p, size_t at, size_t *len)
{
	size_t n = strcspn(p->src + at, "{}");
	struct scan s = scan_topic_text(p->src + at, n);
	if (s.flaw != FLAW_NONE)
		return literal_error(p, at, s);
	add_literal(p, p->src + at, n);
	*len = n;
	return 0;
}

/* "{name}" starting at the '{'. Returns its length, or -1. */
static int parse_field(struct parser *p, size_t at, size_t *len)
{
	size_t n = strcspn(p->src + at + 1, "{}");
	char stop = p->src[at + 1 + n];
	if (stop == '{')
		return error_printf(p->err, p->errlen, "nested \"{\" at offset %zu", at + 1 + n);
	if (stop != '}')
		return error_printf(p->err, p->errlen, "unclosed \"{\" at offset %zu", at);
	if (n == 0)
		return error_printf(p->err, p->errlen, "empty field name at offset %zu", at);
	add_field(p, p->src + at + 1, n);
	*len = n + 2;
	return 0;
}

/* Whatever starts at a brace: an escaped brace or a field. Returns its length, or -1. */
static int parse_brace(struct parser *p, size_t at, size_t *len)
{
	char c = p->src[at];
	if (p->src[at + 1] == c) {
		add_literal(p, &c, 1);
		*len = 2;
		return 0;
	}
	if (c == '{')
		return parse_field(p, at, len);
	return error_printf(p->err, p->errlen,
	                    "\"}\" without \"{\" at offset %zu (write \"}}\" for a literal brace)", at);
}

/* Each field adds at most two segments (itself and the literal after it). */
static struct template *template_alloc(const char *src)
{
	size_t braces = 0;
	for (const char *s = src; *s; s++)
		braces += *s == '{';
	struct template *t = xcalloc(1, sizeof *t);
	t->segs = xcalloc(2 * braces + 1, sizeof *t->segs);
	t->fields = xcalloc(braces + 1, sizeof *t->fields);
	return t;
}

struct template *template_parse(const char *src, char *err, size_t errlen)
{
	struct parser p = { src, template_alloc(src), BUF_INIT, err, errlen };
	size_t at = 0;
	while (src[at]) {
		size_t len = 0;
		bool brace = src[at] == '{' || src[at] == '}';
		int rc = brace ? parse_brace(&p, at, &len) : parse_text(&p, at, &len);
		if (rc < 0) {
			buf_finish(&p.text);
			template_free(p.t);
			return NULL;
		}
		at += len;
	}
	p.t->text = p.text.data;
	return p.t;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nfields; i++)
		free(t->fields[i]);
	free(t->fields);
	free(t->segs);
	free(t->text);
	free(t);
}

size_t template_nfields(const struct template *t)
{
	return t->nfields;
}

const char *template_field(const struct template *t, size_t i)
{
	return i < t->nfields ? t->fields[i] : NULL;
}

/* ---- Expansion ---- */

static int value_error(const char *name, struct scan s, char *why, size_t whylen)
{
	switch (s.flaw) {
	case FLAW_NUL: return error_printf(why, whylen, "field {%s} contains NUL", name);
	case FLAW_PLUS: return error_printf(why, whylen, "field {%s} contains \"+\"", name);
	case FLAW_HASH: return error_printf(why, whylen, "field {%s} contains \"#\"", name);
	case FLAW_CONTROL:
		return error_printf(why, whylen, "field {%s} contains control character U+%04X", name,
		                    (unsigned)s.codepoint);
	case FLAW_NONCHARACTER:
		return error_printf(why, whylen, "field {%s} contains noncharacter U+%04X", name,
		                    (unsigned)s.codepoint);
	default: return error_printf(why, whylen, "field {%s} is not valid UTF-8", name);
	}
}

static int check_value(const char *name, const struct template_value *v, char *why, size_t whylen)
{
	if (v->null)
		return error_printf(why, whylen, "field {%s} is NULL", name);
	struct scan s = scan_topic_text(v->data, v->len);
	if (s.flaw != FLAW_NONE)
		return value_error(name, s, why, whylen);
	return 0;
}

/* Checks every value and sums the topic's length, so nothing is written on failure and
 * an oversized value never grows the output buffer. */
static int measure(const struct template *t, const struct template_value *values, size_t *total, char *why,
                   size_t whylen)
{
	*total = 0;
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *sg = &t->segs[i];
		if (!sg->is_field) {
			*total += sg->len;
			continue;
		}
		const struct template_value *v = &values[sg->start];
		if (check_value(t->fields[sg->start], v, why, whylen) < 0)
			return -1;
		*total += v->len;
	}
	return 0;
}

int template_expand(const struct template *t, const struct template_value *values, struct buf *out, char *why,
                    size_t whylen)
{
	size_t total;
	buf_reset(out);
	if (measure(t, values, &total, why, whylen) < 0)
		return -1;
	if (total == 0)
		return error_printf(why, whylen, "topic is empty");
	if (total > TOPIC_MAX_LEN)
		return error_printf(why, whylen, "topic is %zu bytes, longer than MQTT's %d", total,
		                    TOPIC_MAX_LEN);
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct segment *sg = &t->segs[i];
		if (sg->is_field)
			buf_append(out, values[sg->start].data, values[sg->start].len);
		else
			buf_append(out, t->text + sg->start, sg->len);
	}
	return 0;
}
