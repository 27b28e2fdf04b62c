/*
 * Logging: one record per line on stderr, logfmt ("ts=... level=info msg=\"...\" k=v") or
 * JSON ({"ts":...,"level":...,"msg":...,"k":"v"}). Fields are passed as a NULL-terminated
 * list of key, value strings. When stderr is the journal, each line starts with its
 * syslog priority ("<6>") and has no ts: journald keeps both better than we can.
 *
 * A value is a string unless its key says otherwise: LOG_NUMBER("port") or LOG_BOOL("ok")
 * in place of the key makes JSON write the value bare ("port":1883, "ok":true). The type
 * is the key's, never guessed from the text, so a key has one JSON type on every line (an
 * SQLSTATE such as 40001 stays a string). logfmt is the same either way.
 */
#ifndef OUTBOX_LOG_H
#define OUTBOX_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

enum log_format {
	LOG_FORMAT_LOGFMT,
	LOG_FORMAT_JSON,
};

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);

/* Checks JOURNAL_STREAM against stderr (systemd sets it for the unit's stderr only, so a
 * child with redirected stderr must not take it for the journal). */
void log_detect_journal(void);
bool log_enabled(enum log_level level);

/* fn (NULL: none) runs before each record that is written: whoever draws on the terminal
 * (the command line's progress line) ends its line there, so that a record starts its own. */
void log_set_before_write(void (*fn)(void));

/* Parses "error", "warn", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);

/* A number or boolean field's key (a string literal); its value is still text the caller
 * formatted. A value that is not a JSON number literal, or not "true" or "false", is
 * written as a string instead, so that a line is always valid JSON. */
#define LOG_NUMBER(key) "\x01" key
#define LOG_BOOL(key) "\x02" key

/* log_write(LOG_INFO, "connected to broker", "host", host, LOG_NUMBER("port"), port_text,
 *           NULL); */
void log_write(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__, (const char *)NULL)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__, (const char *)NULL)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__, (const char *)NULL)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__, (const char *)NULL)

#endif
