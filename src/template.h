/*
 * Topic templates: "shop/{aggregate_type}/{aggregate_id}".
 *
 * A template is parsed once into literal text and named fields; the caller binds field
 * names to values (a column's text, or {schema}/{table}/{prefix}) and expands. Expansion
 * refuses values that cannot form a safe MQTT topic instead of producing a wrong one.
 * Pure: no I/O.
 */
#ifndef OUTBOX_TEMPLATE_H
#define OUTBOX_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Longest topic MQTT can carry (a UTF-8 string with a 16-bit length). */
#define TOPIC_MAX_LEN 65535

struct template;

/*
 * Parses "{name}" fields and "{{" / "}}" literal braces. Returns NULL and writes a
 * message into err on: unbalanced brace, empty field name, a field name containing
 * '{', or a literal part containing '+', '#' or NUL (wildcards are not topics), or
 * what libmosquitto refuses in a topic (invalid UTF-8, control characters U+0001-001F
 * and U+007F-009F, Unicode noncharacters).
 */
struct template *template_parse(const char *src, char *err, size_t errlen);
void template_free(struct template *t);

/* Fields in order of appearance (a name used twice appears twice). */
size_t template_nfields(const struct template *t);
const char *template_field(const struct template *t, size_t i);

struct template_value {
	const char *data; /* not NUL-terminated */
	size_t len;
	bool null;
};

/*
 * Expands into out (reset first) with values[i] for field i. Returns 0, or -1 with a
 * reason in why when a value is NULL, is not valid UTF-8, contains '+', '#', NUL, a
 * control character or a noncharacter, or when the result is empty or longer than
 * TOPIC_MAX_LEN. The reason names the field, e.g. "field {aggregate_id} is NULL".
 */
int template_expand(const struct template *t, const struct template_value *values, struct buf *out, char *why,
                    size_t whylen);

#endif
