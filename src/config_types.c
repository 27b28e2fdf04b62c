/*
 * The types of scalar configuration keys: how a value's text becomes a field of struct
 * config or struct route_config, how two loaded values compare, how the field is freed.
 * Each reports what it expected when the text does not fit; the loader adds the value.
 */
#include "config_types.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#define SECRET_MAX 4096 /* longest password accepted from a file */

/* Enum fields are written through an int; make sure that is their size. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is not int-sized");
_Static_assert(sizeof(enum mqtt_protocol) == sizeof(int), "enum mqtt_protocol is not int-sized");
_Static_assert(sizeof(enum route_cleanup) == sizeof(int), "enum route_cleanup is not int-sized");
_Static_assert(sizeof(enum route_snapshot) == sizeof(int), "enum route_snapshot is not int-sized");

static bool convert_string(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	int64_t len = (int64_t)strlen(text);
	if (len >= k->min && len <= k->max) {
		*(char **)key_field(k, base) = xstrdup(text);
		return true;
	}
	if (k->max == NO_LIMIT)
		snprintf(why, n, "expected a non-empty string");
	else if (k->min == 0)
		snprintf(why, n, "expected a string of at most %lld bytes", (long long)k->max);
	else
		snprintf(why, n, "expected a string of %lld to %lld bytes", (long long)k->min,
		         (long long)k->max);
	return false;
}

static void release_string(const struct key *k, void *base)
{
	char **s = key_field(k, base);
	free(*s);
	*s = NULL;
}

static bool equal_string(const struct key *k, const void *a, const void *b)
{
	return strings_equal(*(char *const *)key_field_const(k, a), *(char *const *)key_field_const(k, b));
}

static bool is_identifier(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > PG_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

/* Lower case only: slot names allow nothing else, and unquoted SQL names fold to it. */
static bool convert_identifier(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	if (is_identifier(text)) {
		*(char **)key_field(k, base) = xstrdup(text);
		return true;
	}
	snprintf(why, n,
	         "expected a name of 1 to %d lower-case letters, digits and underscores, "
	         "not starting with a digit",
	         PG_NAME_MAX);
	return false;
}

static bool convert_bool(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
			*(bool *)key_field(k, base) = strcasecmp(text, yes[i]) == 0;
			return true;
		}
	}
	snprintf(why, n, "expected true or false");
	return false;
}

static bool equal_bool(const struct key *k, const void *a, const void *b)
{
	return *(const bool *)key_field_const(k, a) == *(const bool *)key_field_const(k, b);
}

/* Decimal only, optional minus sign; false for anything else and for absurd lengths. */
bool cfg_parse_int(const char *text, int64_t *out)
{
	const char *p = text + (*text == '-');
	size_t digits = strlen(p);
	if (digits == 0 || digits > 18 || strspn(p, "0123456789") != digits)
		return false;
	int64_t v = 0;
	for (; *p; p++)
		v = v * 10 + (*p - '0');
	*out = *text == '-' ? -v : v;
	return true;
}

static bool convert_int(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	int64_t v;
	if (cfg_parse_int(text, &v) && v >= k->min && v <= k->max) {
		*(int *)key_field(k, base) = (int)v;
		return true;
	}
	snprintf(why, n, "expected an integer from %lld to %lld", (long long)k->min, (long long)k->max);
	return false;
}

/* Integer and enum fields alike: enums are written through an int. */
static bool equal_int(const struct key *k, const void *a, const void *b)
{
	return *(const int *)key_field_const(k, a) == *(const int *)key_field_const(k, b);
}

char *cfg_format_ms(uint64_t ms, char *buf, size_t n)
{
	if (ms == 0)
		snprintf(buf, n, "0s");
	else if (ms % DAYS(1) == 0)
		snprintf(buf, n, "%llud", (unsigned long long)(ms / DAYS(1)));
	else if (ms % SECONDS(3600) == 0)
		snprintf(buf, n, "%lluh", (unsigned long long)(ms / SECONDS(3600)));
	else if (ms % SECONDS(60) == 0)
		snprintf(buf, n, "%llum", (unsigned long long)(ms / SECONDS(60)));
	else if (ms % SECONDS(1) == 0)
		snprintf(buf, n, "%llus", (unsigned long long)(ms / SECONDS(1)));
	else
		snprintf(buf, n, "%llums", (unsigned long long)ms);
	return buf;
}

enum duration_parse {
	DURATION_OK,
	DURATION_NO_UNIT,
	DURATION_MALFORMED,
	DURATION_TOO_LONG,
};

/* "<digits><unit>" with unit ms, s, m, h or d, into milliseconds; longer than limit is
 * DURATION_TOO_LONG. Digits are read while the count is within limit, so a limit below
 * 2^59 keeps the count from wrapping. */
static enum duration_parse parse_duration(const char *text, uint64_t limit, uint64_t *ms)
{
	static const struct {
		const char *name;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 } };
	size_t digits = strspn(text, "0123456789");
	if (digits == 0)
		return DURATION_MALFORMED;
	if (text[digits] == '\0')
		return DURATION_NO_UNIT;
	uint64_t count = 0;
	for (size_t i = 0; i < digits && count <= limit; i++)
		count = count * 10 + (uint64_t)(text[i] - '0');
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(text + digits, units[i].name) != 0)
			continue;
		if (count > limit / units[i].ms)
			return DURATION_TOO_LONG;
		*ms = count * units[i].ms;
		return DURATION_OK;
	}
	return DURATION_MALFORMED;
}

static void describe_duration_range(const struct key *k, bool too_long, char *why, size_t n)
{
	char lo[32], hi[32];
	cfg_format_ms((uint64_t)k->min, lo, sizeof lo);
	cfg_format_ms((uint64_t)k->max, hi, sizeof hi);
	if (k->max < MS_MAX)
		snprintf(why, n, "expected a duration from %s to %s", lo, hi);
	else if (too_long)
		snprintf(why, n, "expected a duration of at most %lldms", (long long)MS_MAX);
	else
		snprintf(why, n, "expected a duration of at least %s", lo);
}

/* What is wrong with a duration that is not written as one. */
static void describe_duration_syntax(enum duration_parse res, char *why, size_t n)
{
	if (res == DURATION_NO_UNIT)
		snprintf(why, n, "expected a duration with a unit, e.g. 250ms, 30s, 5m");
	else
		snprintf(why, n, "expected a duration: a whole number followed by ms, s, m, h or d");
}

static bool convert_duration(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	uint64_t ms = 0;
	enum duration_parse res = parse_duration(text, (uint64_t)MS_MAX, &ms);
	switch (res) {
	case DURATION_NO_UNIT:
	case DURATION_MALFORMED: describe_duration_syntax(res, why, n); return false;
	case DURATION_TOO_LONG: describe_duration_range(k, true, why, n); return false;
	case DURATION_OK: break;
	}
	if (ms < (uint64_t)k->min || ms > (uint64_t)k->max) {
		describe_duration_range(k, false, why, n);
		return false;
	}
	*(uint32_t *)key_field(k, base) = (uint32_t)ms;
	return true;
}

static bool equal_duration(const struct key *k, const void *a, const void *b)
{
	return *(const uint32_t *)key_field_const(k, a) == *(const uint32_t *)key_field_const(k, b);
}

/* A 64-bit field for what is counted in days: its bounds are always the key's own. */
static bool convert_long_duration(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	uint64_t ms = 0;
	enum duration_parse res = parse_duration(text, (uint64_t)k->max, &ms);
	if (res == DURATION_OK && ms >= (uint64_t)k->min) {
		*(uint64_t *)key_field(k, base) = ms;
		return true;
	}
	if (res == DURATION_OK || res == DURATION_TOO_LONG) {
		char lo[32], hi[32];
		snprintf(why, n, "expected a duration from %s to %s",
		         cfg_format_ms((uint64_t)k->min, lo, sizeof lo),
		         cfg_format_ms((uint64_t)k->max, hi, sizeof hi));
	} else {
		describe_duration_syntax(res, why, n);
	}
	return false;
}

static bool equal_long_duration(const struct key *k, const void *a, const void *b)
{
	return *(const uint64_t *)key_field_const(k, a) == *(const uint64_t *)key_field_const(k, b);
}

static bool convert_enum(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	for (const struct enum_name *e = k->names; e->name; e++) {
		if (strcmp(text, e->name) == 0) {
			memcpy(key_field(k, base), &e->value, sizeof e->value);
			return true;
		}
	}
	size_t used = (size_t)snprintf(why, n, "expected one of");
	for (const struct enum_name *e = k->names; e->name && used < n; e++)
		used += (size_t)snprintf(why + used, n - used, "%s %s", e == k->names ? "" : ",", e->name);
	return false;
}

static bool valid_table_part(const char *s, size_t len)
{
	return len > 0 && len <= PG_NAME_MAX && memchr(s, '.', len) == NULL;
}

bool config_table_name(const char *text, char **schema, char **table)
{
	const char *dot = strchr(text, '.');
	const char *name = dot ? dot + 1 : text;
	size_t schema_len = dot ? (size_t)(dot - text) : 0;
	if ((dot && !valid_table_part(text, schema_len)) || !valid_table_part(name, strlen(name)))
		return false;
	*schema = dot ? xstrndup(text, schema_len) : xstrdup("public");
	*table = xstrdup(name);
	return true;
}

/* A route's table into its schema and table fields. */
static bool convert_table_name(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	struct route_config *route = base;
	(void)k;
	if (config_table_name(text, &route->schema, &route->table))
		return true;
	snprintf(why, n, "expected \"table\" or \"schema.table\", each name 1 to %d bytes", PG_NAME_MAX);
	return false;
}

static void release_table_name(const struct key *k, void *base)
{
	struct route_config *route = base;
	(void)k;
	free(route->schema);
	free(route->table);
	route->schema = route->table = NULL;
}

/* Files are opened at load time, so that --check catches a wrong path or permission
 * before the relay starts. */
static bool describe_unreadable(char *why, size_t n)
{
	snprintf(why, n, "expected a readable file (%s)", strerror(errno));
	return false;
}

static bool convert_readable_path(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	int fd = open(text, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return describe_unreadable(why, n);
	close(fd);
	*(char **)key_field(k, base) = xstrdup(text);
	return true;
}

#define FILE_EXPOSED (-2)

/* Up to SECRET_MAX bytes of path into buf; returns the length, -1 with errno set, or
 * FILE_EXPOSED, with *mode set, for a regular file its group or others may access (the
 * mode of the file opened, not of whatever the path names a moment later). */
static ssize_t read_private_file(const char *path, char *buf, size_t size, mode_t *mode)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		*mode = st.st_mode;
		close(fd);
		return FILE_EXPOSED;
	}
	size_t len = 0;
	ssize_t got;
	while (len < size && (got = read(fd, buf + len, size - len)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		len += (size_t)got;
	}
	close(fd);
	return (ssize_t)len;
}

/* As ssh treats a private key (and libpq .pgpass): a password others could read is no
 * secret, so the file is refused rather than used with a warning. */
static bool describe_exposed(mode_t mode, char *why, size_t n)
{
	const char *who = !(mode & S_IRWXO)   ? "its group"
	                  : !(mode & S_IRWXG) ? "others"
	                                      : "its group and others";
	snprintf(why, n,
	         "expected a file only its owner may access, as for an ssh key: mode %04o lets %s in; chmod "
	         "600 it",
	         (unsigned)(mode & 07777), who);
	return false;
}

/* The password is the whole file but one trailing newline (as "echo pw > file" writes). */
static bool convert_secret_file(const struct key *k, const char *text, void *base, char *why, size_t n)
{
	char buf[SECRET_MAX + 1];
	mode_t mode = 0;
	ssize_t got = read_private_file(text, buf, sizeof buf, &mode);
	if (got == FILE_EXPOSED)
		return describe_exposed(mode, why, n);
	if (got < 0)
		return describe_unreadable(why, n);
	size_t len = (size_t)got;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	const char *problem = NULL;
	if (got > SECRET_MAX)
		problem = "expected a password file of at most 4096 bytes";
	else if (len == 0)
		problem = "expected a file holding a password, not an empty file";
	else if (memchr(buf, '\0', len) || memchr(buf, '\n', len))
		problem = "expected a password file of one line without NUL characters";
	if (problem) {
		explicit_bzero(buf, sizeof buf);
		snprintf(why, n, "%s", problem);
		return false;
	}
	struct secret_file *secret = key_field(k, base);
	secret->path = xstrdup(text);
	secret->value = xstrndup(buf, len);
	explicit_bzero(buf, sizeof buf);
	return true;
}

static void release_secret_file(const struct key *k, void *base)
{
	struct secret_file *secret = key_field(k, base);
	if (secret->value)
		explicit_bzero(secret->value, strlen(secret->value));
	free(secret->value);
	free(secret->path);
	secret->value = secret->path = NULL;
}

/* The content counts: the same file may hold a new password. */
static bool equal_secret_file(const struct key *k, const void *a, const void *b)
{
	const struct secret_file *x = key_field_const(k, a), *y = key_field_const(k, b);
	return strings_equal(x->path, y->path) && strings_equal(x->value, y->value);
}

const struct key_type cfg_string_type = {
	.convert = convert_string,
	.release = release_string,
	.equal = equal_string,
	.doc_name = "string",
};
const struct key_type cfg_identifier_type = {
	.convert = convert_identifier,
	.release = release_string,
	.equal = equal_string,
	.doc_name = "name",
};
const struct key_type cfg_path_type = {
	.convert = convert_readable_path,
	.release = release_string,
	.equal = equal_string,
	.doc_name = "path",
};
const struct key_type cfg_secret_file_type = {
	.convert = convert_secret_file,
	.release = release_secret_file,
	.equal = equal_secret_file,
	.doc_name = "path",
};
const struct key_type cfg_bool_type = {
	.convert = convert_bool,
	.equal = equal_bool,
	.doc_name = "boolean",
};
const struct key_type cfg_int_type = {
	.convert = convert_int,
	.equal = equal_int,
	.doc_name = "integer",
};
const struct key_type cfg_duration_type = {
	.convert = convert_duration,
	.equal = equal_duration,
	.doc_name = "duration",
};
const struct key_type cfg_long_duration_type = {
	.convert = convert_long_duration,
	.equal = equal_long_duration,
	.doc_name = "duration",
};
const struct key_type cfg_enum_type = {
	.convert = convert_enum,
	.equal = equal_int,
	.doc_name = "keyword",
};
const struct key_type cfg_table_name_type = {
	.convert = convert_table_name,
	.release = release_table_name,
	.doc_name = "string",
};
