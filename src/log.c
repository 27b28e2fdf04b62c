#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_FORMAT_LOGFMT;
static bool to_journal;
static void (*before_write)(void);

/* syslog priorities of error, warn, info, debug */
static const int journal_priority[] = { 3, 4, 6, 7 };

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	current_level = level;
}

void log_set_format(enum log_format format)
{
	current_format = format;
}

void log_detect_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!stream || sscanf(stream, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return;
	to_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_before_write(void (*fn)(void))
{
	before_write = fn;
}

bool log_enabled(enum log_level level)
{
	return level <= current_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* A logfmt value needs quotes when empty or holding spaces, quotes, '=' or controls. */
static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\')
			return true;
	return false;
}

static void put_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < ' ' || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else. */
static bool is_json_number(const char *s)
{
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p += strspn(p, "0123456789");
	else
		return false;
	if (*p == '.') {
		size_t digits = strspn(++p, "0123456789");
		if (!digits)
			return false;
		p += digits;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		size_t digits = strspn(p, "0123456789");
		if (!digits)
			return false;
		p += digits;
	}
	return *p == '\0';
}

/* The marks LOG_NUMBER and LOG_BOOL put before a key. */
enum value_type { VALUE_STRING = 0, VALUE_NUMBER = '\x01', VALUE_BOOL = '\x02' };

/* The type a key asks for, and the key without its mark. */
static enum value_type key_type(const char **key)
{
	char mark = **key;
	if (mark != VALUE_NUMBER && mark != VALUE_BOOL)
		return VALUE_STRING;
	(*key)++;
	return (enum value_type)mark;
}

static bool is_bare(enum value_type type, const char *value)
{
	if (type == VALUE_NUMBER)
		return is_json_number(value);
	if (type == VALUE_BOOL)
		return strcmp(value, "true") == 0 || strcmp(value, "false") == 0;
	return false;
}

static void put_logfmt_value(FILE *f, const char *s)
{
	if (!needs_quotes(s)) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < ' ')
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void format_timestamp(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	char text[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%03ldZ", text, ts.tv_nsec / 1000000);
}

/* One field: the first is written without a separator. */
static void put_field(FILE *f, bool first, const char *key, const char *value)
{
	enum value_type type = key_type(&key);
	if (!value)
		value = "";
	if (current_format == LOG_FORMAT_JSON) {
		fputs(first ? "{" : ",", f);
		put_json_string(f, key);
		fputc(':', f);
		if (is_bare(type, value))
			fputs(value, f);
		else
			put_json_string(f, value);
	} else {
		fprintf(f, "%s%s=", first ? "" : " ", key);
		put_logfmt_value(f, value);
	}
}

void log_write(enum log_level level, const char *msg, ...)
{
	if (!log_enabled(level))
		return;
	FILE *f = stderr;
	char ts[48];
	bool first = true;
	if (before_write)
		before_write();
	flockfile(f);
	if (to_journal) {
		fprintf(f, "<%d>", journal_priority[level]);
	} else {
		format_timestamp(ts, sizeof ts);
		put_field(f, first, "ts", ts);
		first = false;
	}
	put_field(f, first, "level", level_names[level]);
	put_field(f, false, "msg", msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *key = va_arg(ap, const char *);
		if (!key)
			break;
		put_field(f, false, key, va_arg(ap, const char *));
	}
	va_end(ap);
	fputs(current_format == LOG_FORMAT_JSON ? "}\n" : "\n", f);
	funlockfile(f);
	fflush(f);
}
