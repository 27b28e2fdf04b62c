/*
 * ${NAME} references in configuration values, replaced by the environment's values.
 *
 * Most values take the variable's text as it is. In source.conninfo a reference stands
 * for a value, never for syntax, so there it is quoted the way libpq reads the place it
 * lands in (see enum conninfo_place). Pure apart from getenv: no file, no YAML.
 */
#include "config_env.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct text {
	char *s;
	size_t len, cap;
};

static void text_append(struct text *t, const char *s, size_t len)
{
	if (t->len + len + 1 > t->cap) {
		t->cap = (t->len + len + 1) * 2;
		t->s = xrealloc(t->s, t->cap);
	}
	memcpy(t->s + t->len, s, len);
	t->len += len;
	t->s[t->len] = '\0';
}

/* Length of NAME when p starts with "${NAME}", else 0: anything else is literal text. */
static size_t env_reference(const char *p)
{
	static const char first[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
	if (p[0] != '$' || p[1] != '{' || !p[2] || !strchr(first, p[2]))
		return 0;
	size_t len = 1 + strspn(p + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
	                               "0123456789");
	return p[2 + len] == '}' ? len : 0;
}

/*
 * ${NAME} in source.conninfo stands for text, never for syntax: a value "shop port=1"
 * must not add a keyword to the connection string. Where a reference lands decides its
 * quoting, so the string is followed as libpq reads it ("Connection Strings" in the
 * PostgreSQL documentation):
 *
 * - A URI (postgresql:// or postgres://): the value is percent-encoded, every byte but
 *   the unreserved ones (RFC 3986), so it stays within its component.
 * - Key=value form, where a keyword may start (a reference that is the whole string,
 *   or a list of settings): inserted as written, so `conninfo: ${DATABASE_URL}` works;
 *   the text it brings is followed like the rest.
 * - Inside a single-quoted value: \ and ' are escaped.
 * - Where an unquoted value is or starts: the whole value becomes a single-quoted one,
 *   its literal parts (libpq's backslash escapes resolved) and every reference in it
 *   escaped, so "dbname=${A}_${B}" is one value whatever A and B hold.
 */
enum conninfo_place {
	CONNINFO_KEYWORD,     /* between settings, or in a keyword */
	CONNINFO_VALUE_START, /* after '=', before the value (blanks are skipped) */
	CONNINFO_UNQUOTED,    /* in a value as written */
	CONNINFO_QUOTED,      /* in a value single-quoted as written */
	CONNINFO_OPENED,      /* in an unquoted value the relay quoted: closed where it ends */
};

struct conninfo_state {
	enum conninfo_place place;
	bool escape;        /* the previous character was a backslash */
	size_t value_start; /* CONNINFO_UNQUOTED: where the value starts in the output */
};

static bool conninfo_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void text_putc(struct text *t, char c)
{
	text_append(t, &c, 1);
}

/* Appends literal conninfo text (from the file, or a reference at a keyword), following
 * where it leaves the string. */
static void conninfo_literal(struct text *out, struct conninfo_state *st, char c)
{
	switch (st->place) {
	case CONNINFO_KEYWORD:
		if (c == '=')
			st->place = CONNINFO_VALUE_START;
		break;
	case CONNINFO_VALUE_START:
		if (conninfo_space(c))
			break;
		if (c == '\'') {
			st->place = CONNINFO_QUOTED;
			break;
		}
		st->place = CONNINFO_UNQUOTED;
		st->value_start = out->len;
		/* fall through */
	case CONNINFO_UNQUOTED:
		if (st->escape)
			st->escape = false;
		else if (c == '\\')
			st->escape = true;
		else if (conninfo_space(c))
			st->place = CONNINFO_KEYWORD;
		break;
	case CONNINFO_QUOTED:
		if (st->escape)
			st->escape = false;
		else if (c == '\\')
			st->escape = true;
		else if (c == '\'')
			st->place = CONNINFO_KEYWORD;
		break;
	case CONNINFO_OPENED:
		/* Written out with the next character: a backslash that ends the value
		 * escapes nothing in libpq, and must not escape the closing quote. */
		if (st->escape) {
			st->escape = false;
			text_putc(out, '\\');
		} else if (c == '\\') {
			st->escape = true;
			return;
		} else if (conninfo_space(c)) {
			text_putc(out, '\'');
			st->place = CONNINFO_KEYWORD;
		} else if (c == '\'') {
			text_putc(out, '\\'); /* a quote inside an unquoted value is literal */
		}
		break;
	}
	text_putc(out, c);
}

static void conninfo_escaped(struct text *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' || s[i] == '\'')
			text_putc(out, '\\');
		text_putc(out, s[i]);
	}
}

/* The unquoted value written so far becomes the start of a quoted one. */
static void conninfo_open_quote(struct text *out, struct conninfo_state *st)
{
	size_t len = out->len - st->value_start;
	char *raw = xstrndup(out->s + st->value_start, len);
	out->len = st->value_start;
	text_putc(out, '\'');
	for (size_t i = 0; i < len; i++) {
		if (raw[i] == '\\' && ++i == len)
			break; /* a backslash before the reference escapes its first character */
		conninfo_escaped(out, raw + i, 1);
	}
	free(raw);
	st->place = CONNINFO_OPENED;
	st->escape = false;
}

/* Appends the value of a reference in a key=value string. */
static void conninfo_reference(struct text *out, struct conninfo_state *st, const char *value)
{
	switch (st->place) {
	case CONNINFO_KEYWORD:
		for (const char *p = value; *p; p++)
			conninfo_literal(out, st, *p);
		return;
	case CONNINFO_VALUE_START:
		text_putc(out, '\'');
		st->place = CONNINFO_OPENED;
		break;
	case CONNINFO_UNQUOTED: conninfo_open_quote(out, st); break;
	case CONNINFO_QUOTED:
		/* A backslash before the reference escapes its first character, which the
		 * escaping below does anyway. */
		if (st->escape)
			out->len--;
		break;
	case CONNINFO_OPENED: break;
	}
	st->escape = false;
	conninfo_escaped(out, value, strlen(value));
}

static void conninfo_finish(struct text *out, const struct conninfo_state *st)
{
	if (st->place == CONNINFO_OPENED)
		text_putc(out, '\'');
}

static bool conninfo_is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

static void percent_encode(struct text *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p)) {
			text_putc(out, (char)*p);
			continue;
		}
		char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
		text_append(out, enc, sizeof enc);
	}
}

enum expand_mode {
	EXPAND_PLAIN,        /* references become their values as they are */
	EXPAND_CONNINFO,     /* key=value conninfo: values quoted */
	EXPAND_CONNINFO_URI, /* URI conninfo: values percent-encoded */
};

/* Appends one piece of the file's text, or a reference's value, as mode says. */
static void expand_append(struct text *out, enum expand_mode mode, struct conninfo_state *st, const char *s,
                          size_t len, bool reference)
{
	if (mode == EXPAND_PLAIN || (mode == EXPAND_CONNINFO_URI && !reference))
		text_append(out, s, len);
	else if (mode == EXPAND_CONNINFO_URI)
		percent_encode(out, s);
	else if (reference)
		conninfo_reference(out, st, s);
	else
		for (size_t i = 0; i < len; i++)
			conninfo_literal(out, st, s[i]);
}

/* Every ${NAME} replaced; unset variables are passed to unset and make the result NULL. */
char *cfg_expand_env(const char *value, bool conninfo, void (*unset)(void *ctx, const char *name), void *ctx)
{
	struct text out = { NULL, 0, 0 };
	struct conninfo_state st = { .place = CONNINFO_KEYWORD };
	enum expand_mode mode = !conninfo                ? EXPAND_PLAIN
	                        : conninfo_is_uri(value) ? EXPAND_CONNINFO_URI
	                                                 : EXPAND_CONNINFO;
	bool complete = true;
	text_append(&out, "", 0);
	for (const char *p = value; *p;) {
		size_t len = env_reference(p);
		if (len == 0) {
			expand_append(&out, mode, &st, p++, 1, false);
			continue;
		}
		char *name = xstrndup(p + 2, len);
		const char *env = getenv(name);
		if (env)
			expand_append(&out, mode, &st, env, strlen(env), true);
		else
			unset(ctx, name);
		complete = complete && env;
		free(name);
		p += len + 3;
	}
	if (mode == EXPAND_CONNINFO)
		conninfo_finish(&out, &st);
	if (complete)
		return out.s;
	free(out.s);
	return NULL;
}
