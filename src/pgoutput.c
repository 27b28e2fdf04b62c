#include "pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "wire.h"

#define INITIAL_SLOTS 16
#define INITIAL_VALUES 32
/* Smallest Relation column on the wire: flags, an empty name's NUL, type OID, typmod. */
#define MIN_RELATION_COLUMN_LEN 10

/*
 * The relation cache is an open-addressing hash (linear probing) of pointers to
 * individually allocated entries. Growing the table moves only the pointers, and a
 * redefinition rewrites an entry in place, so a struct pgo_relation never changes
 * address while the decoder lives. Its strings and columns array, however, are freed
 * and replaced on redefinition: pointers into them (column names, schema, name) that a
 * caller kept from an earlier generation are dangling after the next Relation message
 * for that OID. Callers compare `generation` to notice.
 */
struct pgo_decoder {
	struct pgo_relation **slots; /* NULL = empty; relations are never removed */
	size_t nslots;               /* a power of two */
	size_t nrelations;
	uint32_t next_generation; /* decoder-wide, so a generation is never reused */
	/* Scratch for decoded tuples, grown to the widest relation seen and reused for
	 * every message: [0] for the new (or only) tuple, [1] for an Update's old one. */
	struct pgo_value *values[2];
	size_t values_cap;
	char error[256];
};

/* A cursor over one pgoutput message; its context makes errors name what was being read. */
struct reader {
	const uint8_t *p;
	size_t left;
	struct pgo_decoder *d;
	const char *kind;               /* "Insert", ... */
	const char *tuple;              /* "new tuple", ... while reading one */
	const struct pgo_relation *rel; /* names columns in errors, when known */
	int column;                     /* 0-based, -1 outside a column */
};

/* ---- decoder lifecycle and relation cache ------------------------------------------ */

struct pgo_decoder *pgo_decoder_new(void)
{
	struct pgo_decoder *d = xcalloc(1, sizeof *d);
	d->nslots = INITIAL_SLOTS;
	d->slots = xcalloc(d->nslots, sizeof *d->slots); /* NOLINT(bugprone-sizeof-expression): pointers */
	d->next_generation = 1;
	d->values_cap = INITIAL_VALUES;
	d->values[0] = xcalloc(d->values_cap, sizeof *d->values[0]);
	d->values[1] = xcalloc(d->values_cap, sizeof *d->values[1]);
	return d;
}

/* Frees what a relation owns, leaving the struct itself for reuse or free(). */
static void relation_clear(struct pgo_relation *rel)
{
	for (int i = 0; i < rel->ncolumns; i++)
		free(rel->columns[i].name);
	free(rel->columns);
	free(rel->schema);
	free(rel->name);
	rel->columns = NULL;
	rel->schema = rel->name = NULL;
	rel->ncolumns = 0;
}

void pgo_decoder_free(struct pgo_decoder *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nslots; i++) {
		if (d->slots[i]) {
			relation_clear(d->slots[i]);
			free(d->slots[i]);
		}
	}
	free(d->slots);
	free(d->values[0]);
	free(d->values[1]);
	free(d);
}

const char *pgo_error(const struct pgo_decoder *d)
{
	return d->error;
}

/* The slot holding oid, or the empty slot where it would go. The table is never full. */
static struct pgo_relation **find_slot(const struct pgo_decoder *d, uint32_t oid)
{
	size_t mask = d->nslots - 1;
	/* OIDs are mostly sequential; an odd multiplier keeps them in distinct slots. */
	size_t i = (size_t)(oid * UINT32_C(2654435761)) & mask;
	while (d->slots[i] && d->slots[i]->oid != oid)
		i = (i + 1) & mask;
	return &d->slots[i];
}

const struct pgo_relation *pgo_relation_get(const struct pgo_decoder *d, uint32_t oid)
{
	return *find_slot(d, oid);
}

static void grow_slots(struct pgo_decoder *d)
{
	struct pgo_relation **old = d->slots;
	size_t nold = d->nslots;
	d->nslots *= 2;
	d->slots = xcalloc(d->nslots, sizeof *d->slots); /* NOLINT(bugprone-sizeof-expression): pointers */
	for (size_t i = 0; i < nold; i++)
		if (old[i])
			*find_slot(d, old[i]->oid) = old[i];
	free(old);
}

/* Grow-only, so tuples of relations already seen never allocate. */
static void reserve_values(struct pgo_decoder *d, size_t n)
{
	if (n <= d->values_cap)
		return;
	size_t cap = d->values_cap;
	while (cap < n)
		cap *= 2;
	d->values[0] = xrealloc(d->values[0], cap * sizeof *d->values[0]);
	d->values[1] = xrealloc(d->values[1], cap * sizeof *d->values[1]);
	d->values_cap = cap;
}

/* Takes over parsed's allocations: replaces an entry in place or adds a new one. */
static struct pgo_relation *cache_relation(struct pgo_decoder *d, struct pgo_relation *parsed)
{
	struct pgo_relation **slot = find_slot(d, parsed->oid);
	if (*slot) {
		relation_clear(*slot);
	} else {
		if ((d->nrelations + 1) * 2 > d->nslots) {
			grow_slots(d);
			slot = find_slot(d, parsed->oid);
		}
		*slot = xmalloc(sizeof **slot);
		d->nrelations++;
	}
	**slot = *parsed;
	(*slot)->generation = d->next_generation++;
	reserve_values(d, (size_t)parsed->ncolumns);
	return *slot;
}

/* ---- reading primitives ------------------------------------------------------------ */

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the error buffer, keeping *used within it when the text is cut short. */
static void error_append(char *buf, size_t size, size_t *used, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void error_append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *used, size - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n < size - *used ? (size_t)n : size - *used - 1;
}

/* Names where the reader is: "new tuple column 3 "payload": ", "column 2: " or nothing. */
static void describe_position(const struct reader *r, char *buf, size_t size, size_t *used)
{
	if (!r->tuple && r->column < 0)
		return;
	error_append(buf, size, used, "%s", r->tuple ? r->tuple : "");
	if (r->column >= 0) {
		/* 1-based, as PostgreSQL numbers attributes */
		error_append(buf, size, used, "%scolumn %d", r->tuple ? " " : "", r->column + 1);
		if (r->rel && r->column < r->rel->ncolumns)
			error_append(buf, size, used, " \"%s\"", r->rel->columns[r->column].name);
	}
	error_append(buf, size, used, ": ");
}

/* Records "Kind: [position: ]message" as the decoder's error and returns -1. */
static int fail(struct reader *r, const char *fmt, ...)
{
	char *buf = r->d->error;
	size_t size = sizeof r->d->error, used = 0;
	error_append(buf, size, &used, "%s: ", r->kind);
	describe_position(r, buf, size, &used);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, size - used, fmt, ap);
	va_end(ap);
	return -1;
}

static int need(struct reader *r, size_t n, const char *what)
{
	if (r->left >= n)
		return 0;
	/* Not "return fail()": -1 in plain sight spares the optimizer false "uninitialized" alarms. */
	fail(r, "truncated %s (needs %zu bytes, %zu left)", what, n, r->left);
	return -1;
}

static int read_u8(struct reader *r, const char *what, uint8_t *out)
{
	if (need(r, 1, what) < 0)
		return -1;
	*out = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

static int read_i16(struct reader *r, const char *what, int16_t *out)
{
	if (need(r, 2, what) < 0)
		return -1;
	*out = (int16_t)get_be16(r->p);
	r->p += 2;
	r->left -= 2;
	return 0;
}

static int read_u32(struct reader *r, const char *what, uint32_t *out)
{
	if (need(r, 4, what) < 0)
		return -1;
	*out = get_be32(r->p);
	r->p += 4;
	r->left -= 4;
	return 0;
}

static int read_u64(struct reader *r, const char *what, uint64_t *out)
{
	if (need(r, 8, what) < 0)
		return -1;
	*out = get_be64(r->p);
	r->p += 8;
	r->left -= 8;
	return 0;
}

static int read_time(struct reader *r, const char *what, pg_time_t *out)
{
	uint64_t v;
	if (read_u64(r, what, &v) < 0)
		return -1;
	*out = (pg_time_t)v;
	return 0;
}

/* An int32 byte count; negative ones are malformed, not "NULL" as elsewhere in libpq. */
static int read_length(struct reader *r, const char *what, uint32_t *out)
{
	uint32_t v;
	if (read_u32(r, what, &v) < 0)
		return -1;
	if (v > INT32_MAX) {
		fail(r, "negative %s %d", what, (int32_t)v);
		return -1;
	}
	*out = v;
	return 0;
}

static int read_bytes(struct reader *r, const char *what, size_t n, const uint8_t **out)
{
	if (need(r, n, what) < 0)
		return -1;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

/* A NUL-terminated string inside the message; the NUL must be within bounds. */
static int read_string(struct reader *r, const char *what, const char **out)
{
	const uint8_t *nul = r->left ? memchr(r->p, '\0', r->left) : NULL;
	if (!nul) {
		fail(r, "%s is not NUL-terminated within the message (%zu bytes left)", what, r->left);
		return -1;
	}
	*out = (const char *)r->p;
	size_t n = (size_t)(nul - r->p) + 1;
	r->p += n;
	r->left -= n;
	return 0;
}

static int expect_end(struct reader *r)
{
	if (r->left == 0)
		return 0;
	return fail(r, "trailing garbage after a complete message (%zu bytes)", r->left);
}

/* ---- tuples ------------------------------------------------------------------------- */

static int read_text_value(struct reader *r, struct pgo_value *v)
{
	uint32_t len;
	const uint8_t *data;
	if (read_length(r, "value length", &len) < 0 || read_bytes(r, "value", len, &data) < 0)
		return -1;
	*v = (struct pgo_value){ PGO_VALUE_TEXT, (const char *)data, len };
	return 0;
}

static int read_value(struct reader *r, struct pgo_value *v)
{
	uint8_t kind;
	char b[8];
	if (read_u8(r, "value kind", &kind) < 0)
		return -1;
	switch (kind) {
	case PGO_VALUE_NULL:
	case PGO_VALUE_UNCHANGED: *v = (struct pgo_value){ (enum pgo_value_kind)kind, NULL, 0 }; return 0;
	case PGO_VALUE_TEXT: return read_text_value(r, v);
	case 'b': return fail(r, "binary column values are not supported");
	default: return fail(r, "unknown value kind %s", byte_text(kind, b));
	}
}

/* Reads a TupleData into the decoder's scratch array `which`; it must match the relation. */
static int read_tuple(struct reader *r, const struct pgo_relation *rel, int which, const char *label,
                      struct pgo_tuple *out)
{
	int16_t ncols;
	r->tuple = label;
	if (read_i16(r, "column count", &ncols) < 0)
		return -1;
	if (ncols != rel->ncolumns)
		return fail(r, "%d columns but relation %u (%s.%s) has %d", ncols, rel->oid, rel->schema,
		            rel->name, rel->ncolumns);
	struct pgo_value *values = r->d->values[which];
	r->rel = rel;
	for (r->column = 0; r->column < ncols; r->column++)
		if (read_value(r, &values[r->column]) < 0)
			return -1;
	r->column = -1;
	r->tuple = NULL;
	*out = (struct pgo_tuple){ ncols, values };
	return 0;
}

static int read_known_relation(struct reader *r, const struct pgo_relation **out)
{
	uint32_t oid;
	if (read_u32(r, "relation OID", &oid) < 0)
		return -1;
	*out = pgo_relation_get(r->d, oid);
	if (!*out)
		return fail(r, "relation %u is unknown (no Relation message seen)", oid);
	return 0;
}

/* Reads a tuple marker byte that must be one of `allowed` (e.g. "KO"). */
static int read_marker(struct reader *r, const char *allowed, const char *expected, uint8_t *out)
{
	char b[8];
	if (read_u8(r, "tuple marker", out) < 0)
		return -1;
	if (*out == '\0' || !strchr(allowed, *out))
		return fail(r, "expected %s but got %s", expected, byte_text(*out, b));
	return 0;
}

/* ---- one function per message kind ------------------------------------------------- */

static int decode_begin(struct reader *r, struct pgo_msg *m)
{
	if (read_u64(r, "final LSN", &m->u.begin.final_lsn) < 0 ||
	    read_time(r, "commit timestamp", &m->u.begin.commit_time) < 0)
		return -1;
	return read_u32(r, "xid", &m->u.begin.xid);
}

static int decode_commit(struct reader *r, struct pgo_msg *m)
{
	if (read_u8(r, "flags", &m->u.commit.flags) < 0 ||
	    read_u64(r, "commit LSN", &m->u.commit.commit_lsn) < 0 ||
	    read_u64(r, "end LSN", &m->u.commit.end_lsn) < 0)
		return -1;
	return read_time(r, "commit timestamp", &m->u.commit.commit_time);
}

static int decode_origin(struct reader *r, struct pgo_msg *m)
{
	if (read_u64(r, "origin LSN", &m->u.origin.lsn) < 0)
		return -1;
	return read_string(r, "origin name", &m->u.origin.name);
}

static int decode_type(struct reader *r, struct pgo_msg *m)
{
	if (read_u32(r, "type OID", &m->u.type.oid) < 0 ||
	    read_string(r, "type namespace", &m->u.type.schema) < 0)
		return -1;
	return read_string(r, "type name", &m->u.type.name);
}

static int read_relation_column(struct reader *r, struct pgo_column *col)
{
	uint8_t flags;
	const char *name;
	uint32_t typmod;
	if (read_u8(r, "flags", &flags) < 0 || read_string(r, "name", &name) < 0 ||
	    read_u32(r, "type OID", &col->type_oid) < 0 || read_u32(r, "type modifier", &typmod) < 0)
		return -1;
	col->name = xstrdup(name);
	col->typmod = (int32_t)typmod;
	col->key = (flags & 1) != 0;
	return 0;
}

static int read_relation_columns(struct reader *r, struct pgo_relation *rel)
{
	int16_t ncols;
	if (read_i16(r, "column count", &ncols) < 0)
		return -1;
	if (ncols < 0)
		return fail(r, "negative column count %d", ncols);
	/* Refuse an absurd count before allocating for it. */
	if ((size_t)ncols > r->left / MIN_RELATION_COLUMN_LEN)
		return fail(r, "truncated columns (%d need at least %zu bytes, %zu left)", ncols,
		            (size_t)ncols * MIN_RELATION_COLUMN_LEN, r->left);
	rel->columns = xcalloc((size_t)ncols, sizeof *rel->columns);
	rel->ncolumns = ncols;
	for (r->column = 0; r->column < ncols; r->column++)
		if (read_relation_column(r, &rel->columns[r->column]) < 0)
			return -1;
	r->column = -1;
	return 0;
}

/* Everything but the cache update; rel's allocations are the caller's on any return. */
static int read_relation(struct reader *r, struct pgo_relation *rel)
{
	const char *schema, *name;
	uint8_t identity;
	if (read_u32(r, "relation OID", &rel->oid) < 0 || read_string(r, "namespace", &schema) < 0 ||
	    read_string(r, "relation name", &name) < 0 || read_u8(r, "replica identity", &identity) < 0)
		return -1;
	rel->schema = xstrdup(schema); /* empty means pg_catalog, as the server sends it */
	rel->name = xstrdup(name);
	rel->replica_identity = (char)identity;
	if (read_relation_columns(r, rel) < 0)
		return -1;
	/* Checked here, not only by the caller, so a bad message leaves the cache alone. */
	return expect_end(r);
}

static int decode_relation(struct reader *r, struct pgo_msg *m)
{
	struct pgo_relation parsed = { 0 };
	if (read_relation(r, &parsed) < 0) {
		relation_clear(&parsed);
		return -1;
	}
	m->u.relation = cache_relation(r->d, &parsed);
	return 0;
}

/* The hot path: no allocation, values point into the message. */
static int decode_insert(struct reader *r, struct pgo_msg *m)
{
	uint8_t marker;
	if (read_known_relation(r, &m->u.insert.rel) < 0 ||
	    read_marker(r, "N", "'N' (new tuple)", &marker) < 0)
		return -1;
	return read_tuple(r, m->u.insert.rel, 0, "new tuple", &m->u.insert.tuple);
}

static int decode_update(struct reader *r, struct pgo_msg *m)
{
	const struct pgo_relation *rel;
	uint8_t marker;
	if (read_known_relation(r, &rel) < 0 ||
	    read_marker(r, "KON", "'K' (old key), 'O' (old tuple) or 'N' (new tuple)", &marker) < 0)
		return -1;
	m->u.update.rel = rel;
	m->u.update.has_old = marker != 'N';
	if (m->u.update.has_old) {
		const char *label = marker == 'K' ? "old key" : "old tuple";
		if (read_tuple(r, rel, 1, label, &m->u.update.old_tuple) < 0 ||
		    read_marker(r, "N", "'N' (new tuple)", &marker) < 0)
			return -1;
	}
	return read_tuple(r, rel, 0, "new tuple", &m->u.update.new_tuple);
}

static int decode_delete(struct reader *r, struct pgo_msg *m)
{
	uint8_t marker;
	if (read_known_relation(r, &m->u.delete.rel) < 0 ||
	    read_marker(r, "KO", "'K' (old key) or 'O' (old tuple)", &marker) < 0)
		return -1;
	const char *label = marker == 'K' ? "old key" : "old tuple";
	return read_tuple(r, m->u.delete.rel, 0, label, &m->u.delete.old_tuple);
}

static int decode_truncate(struct reader *r, struct pgo_msg *m)
{
	uint32_t n;
	const uint8_t *oids;
	if (read_length(r, "relation count", &n) < 0 || read_u8(r, "options", &m->u.truncate.options) < 0)
		return -1;
	/* Compared by division first: n * 4 could overflow a 32-bit size_t. */
	if (n > r->left / 4)
		return fail(r, "truncated relation OIDs (%u need %llu bytes, %zu left)", n,
		            (unsigned long long)n * 4, r->left);
	m->u.truncate.nrelations = n;
	/* Skipped, not reported: the header has no room for them and the relay ignores truncation. */
	return read_bytes(r, "relation OIDs", (size_t)n * 4, &oids);
}

static int decode_message(struct reader *r, struct pgo_msg *m)
{
	uint8_t flags;
	const uint8_t *content;
	if (read_u8(r, "flags", &flags) < 0 || read_u64(r, "LSN", &m->u.message.lsn) < 0 ||
	    read_string(r, "prefix", &m->u.message.prefix) < 0 ||
	    read_length(r, "content length", &m->u.message.len) < 0 ||
	    read_bytes(r, "content", m->u.message.len, &content) < 0)
		return -1;
	m->u.message.transactional = (flags & 1) != 0;
	m->u.message.content = content;
	return 0;
}

/* ---- dispatch ------------------------------------------------------------------------ */

struct message_kind {
	uint8_t kind;
	const char *name;
	int (*decode)(struct reader *r, struct pgo_msg *m);
};

/* Streaming (proto_version 2+) kinds are absent on purpose: we never ask for them. */
static const struct message_kind message_kinds[] = {
	{ PGO_INSERT, "Insert", decode_insert }, /* first: by far the most frequent */
	{ PGO_BEGIN, "Begin", decode_begin },       { PGO_COMMIT, "Commit", decode_commit },
	{ PGO_ORIGIN, "Origin", decode_origin },    { PGO_RELATION, "Relation", decode_relation },
	{ PGO_TYPE, "Type", decode_type },          { PGO_UPDATE, "Update", decode_update },
	{ PGO_DELETE, "Delete", decode_delete },    { PGO_TRUNCATE, "Truncate", decode_truncate },
	{ PGO_MESSAGE, "Message", decode_message },
};

static const struct message_kind *find_kind(uint8_t kind)
{
	for (size_t i = 0; i < sizeof message_kinds / sizeof message_kinds[0]; i++)
		if (message_kinds[i].kind == kind)
			return &message_kinds[i];
	return NULL;
}

int pgo_decode(struct pgo_decoder *d, const uint8_t *buf, size_t len, struct pgo_msg *out)
{
	char b[8];
	d->error[0] = '\0';
	if (len == 0) {
		snprintf(d->error, sizeof d->error, "empty pgoutput message");
		return -1;
	}
	const struct message_kind *k = find_kind(buf[0]);
	if (!k) {
		snprintf(d->error, sizeof d->error, "unknown pgoutput message kind %s", byte_text(buf[0], b));
		return -1;
	}
	struct reader r = { buf + 1, len - 1, d, k->name, NULL, NULL, -1 };
	out->kind = (enum pgo_kind)k->kind;
	if (k->decode(&r, out) < 0)
		return -1;
	return expect_end(&r);
}
