/*
 * Logging: one record per line on stderr, logfmt ("ts=... level=info msg=\"...\" k=v").
 * Fields are passed as a NULL-terminated list of key, value strings, so the same call can
 * later be written as JSON or with journald priority prefixes.
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

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Parses "error", "warn", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);

/* log_write(LOG_INFO, "connected to broker", "host", host, "port", port_text, NULL); */
void log_write(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__, NULL)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__, NULL)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__, NULL)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__, NULL)

#endif
