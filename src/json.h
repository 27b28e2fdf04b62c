/*
 * JSON output for row payloads (doc/design.md §5 payload: row).
 *
 * Column values arrive as PostgreSQL text output forms; this maps them to JSON by type
 * OID, a domain's values by its base type's (typemap.h). Whatever the input bytes, the output is valid JSON in valid UTF-8: values that do
 * not fit their type's JSON form fall back to strings, and invalid UTF-8 becomes U+FFFD.
 * Pure: appends to a caller-owned buffer, no other allocation.
 */
#ifndef OUTBOX_JSON_H
#define OUTBOX_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct pgo_value;
struct pgo_relation;
struct pgo_tuple;
struct typemap;

/* Appends s (len bytes) as a JSON string literal with quotes. Invalid UTF-8 bytes are
 * replaced by U+FFFD; control characters and '"' '\\' escaped (\n \t \r \b \f, others \u00XX). */
void json_append_string(struct buf *out, const char *s, size_t len);

/* Appends one column value as JSON according to its type OID (doc/design.md §5 payload: row):
 * NULL -> null; unchanged TOAST -> null;
 * int2(21)/int4(23)/int8(20)/oid(26) -> number as is;
 * float4(700)/float8(701): "NaN","Infinity","-Infinity" -> JSON strings, else number as is;
 * numeric(1700): "NaN"/"Infinity"/"-Infinity" -> strings, else the literal as a number;
 * bool(16): "t" -> true, "f" -> false;
 * json(114)/jsonb(3802) -> embedded verbatim (it is already JSON);
 * bytea(17): text form "\x0a1b.." -> base64 (standard alphabet, padded) string; a malformed hex form -> its text as a string;
 * everything else (text, varchar, uuid, timestamptz, date, arrays...) -> JSON string of the text form.
 * Never emits invalid JSON: a number-typed value whose text is not a valid JSON number is written as a string. */
void json_append_value(struct buf *out, uint32_t type_oid, const struct pgo_value *v);

/* Appends {"col1": value1, ...} for every column of the relation, in column order, each
 * value as its column's type resolved by types (a domain as its base type; NULL: the
 * declared types). */
void json_append_row(struct buf *out, const struct typemap *types, const struct pgo_relation *rel,
                     const struct pgo_tuple *row);

#endif
