/*
 * Configuration, private to its files: ${NAME} references in values, replaced by the
 * values of environment variables. NAME is a letter or underscore, then letters, digits
 * and underscores; anything else, "$NAME" included, is literal text. Values are not
 * expanded again.
 */
#ifndef OUTBOX_CONFIG_ENV_H
#define OUTBOX_CONFIG_ENV_H

#include <stdbool.h>

/*
 * value with every ${NAME} replaced (caller frees). conninfo: value is a libpq connection
 * string, where a reference stands for one value and is quoted accordingly: percent-
 * encoded in a URI, single-quoted and escaped in key=value form (a reference where a
 * keyword may start is inserted as written). For each variable that is not set,
 * unset(ctx, NAME) is called, in order; then the result is NULL.
 */
char *cfg_expand_env(const char *value, bool conninfo, void (*unset)(void *ctx, const char *name), void *ctx);

#endif
