#include "cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/*
 * A key is one byte string: the header "schema\0table\0column\0...column\0\0", which says
 * where the row is and how it is told apart, then the values "value\0...". Keys of one
 * table share their header byte for byte, which is how their rows end up in one statement.
 * Values hold no NUL: PostgreSQL's text never does.
 */

/* An arena grown past this by a burst of keys is given back once empty. */
#define ARENA_KEEP_MAX ((size_t)1024 * 1024)

struct entry {
	struct event_pos pos;
	size_t off, len; /* in the arena */
};

struct statement {
	const char *header; /* in the arena */
	size_t header_len;
	size_t ncolumns;
	struct buf sql;
	const char **params; /* in the arena */
	size_t nparams, cap;
	size_t rows;
};

struct cleanup {
	struct entry *entries;
	size_t n, cap;
	struct buf arena, spare; /* the keys; spare takes them over when some are dropped */
	struct statement *statements;
	size_t nstatements, statements_cap;
};

/* ---- keys ----------------------------------------------------------------------------- */

static void put_string(struct buf *b, const char *s, size_t len)
{
	buf_append(b, s, len);
	buf_putc(b, '\0');
}

/* DEFAULT names the primary key (no column without one), INDEX a unique index of NOT NULL
 * columns; FULL names every column, which need not be comparable nor NOT NULL. */
static bool identity_usable(const struct pgo_relation *rel)
{
	return rel->replica_identity == 'd' || rel->replica_identity == 'i';
}

bool cleanup_key_from_row(struct buf *key, const struct pgo_relation *rel, const struct pgo_tuple *row)
{
	buf_reset(key);
	if (!identity_usable(rel) || row->ncolumns != rel->ncolumns)
		return false;
	put_string(key, rel->schema, strlen(rel->schema));
	put_string(key, rel->name, strlen(rel->name));
	size_t columns = 0;
	for (int i = 0; i < rel->ncolumns; i++) {
		if (!rel->columns[i].key)
			continue;
		put_string(key, rel->columns[i].name, strlen(rel->columns[i].name));
		columns++;
	}
	buf_putc(key, '\0');
	for (int i = 0; i < rel->ncolumns && columns; i++) {
		if (!rel->columns[i].key)
			continue;
		if (row->values[i].kind != PGO_VALUE_TEXT) {
			buf_reset(key);
			return false;
		}
		put_string(key, row->values[i].data, row->values[i].len);
	}
	if (!columns)
		buf_reset(key);
	return columns > 0;
}

/* The length of key's header, and how many columns it names. */
static size_t header_length(const char *key, size_t *ncolumns)
{
	const char *p = key;
	p += strlen(p) + 1; /* schema */
	p += strlen(p) + 1; /* table */
	*ncolumns = 0;
	for (; *p; p += strlen(p) + 1)
		(*ncolumns)++;
	return (size_t)(p + 1 - key);
}

/* ---- the queue -------------------------------------------------------------------------- */

struct cleanup *cleanup_new(void)
{
	return xcalloc(1, sizeof(struct cleanup));
}

static void release_statements(struct cleanup *c)
{
	for (size_t i = 0; i < c->statements_cap; i++) {
		buf_finish(&c->statements[i].sql);
		free(c->statements[i].params);
	}
	free(c->statements);
	c->statements = NULL;
	c->nstatements = c->statements_cap = 0;
}

void cleanup_free(struct cleanup *c)
{
	if (!c)
		return;
	release_statements(c);
	buf_finish(&c->arena);
	buf_finish(&c->spare);
	free(c->entries);
	free(c);
}

void cleanup_add(struct cleanup *c, struct event_pos pos, const struct buf *key)
{
	if (!key->len)
		return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->entries = xrealloc(c->entries, c->cap * sizeof *c->entries);
	}
	c->entries[c->n++] = (struct entry){ pos, c->arena.len, key->len };
	buf_append(&c->arena, key->data, key->len);
	c->nstatements = 0; /* their parameters may point into the old arena */
}

size_t cleanup_pending(const struct cleanup *c)
{
	return c->n;
}

static bool covered(struct event_pos pos, struct event_pos upto)
{
	return !event_pos_after(pos, upto);
}

/* ---- statements ------------------------------------------------------------------------- */

static void append_identifier(struct buf *sql, const char *name)
{
	buf_putc(sql, '"');
	for (; *name; name++) {
		if (*name == '"')
			buf_putc(sql, '"');
		buf_putc(sql, *name);
	}
	buf_putc(sql, '"');
}

/* "DELETE FROM "schema"."table" WHERE ("k1", "k2") IN (": the rows follow. */
static void begin_sql(struct buf *sql, const char *header)
{
	const char *table = header + strlen(header) + 1;
	const char *column = table + strlen(table) + 1;
	buf_reset(sql);
	buf_puts(sql, "DELETE FROM ");
	append_identifier(sql, header);
	buf_putc(sql, '.');
	append_identifier(sql, table);
	buf_puts(sql, " WHERE (");
	for (bool first = true; *column; column += strlen(column) + 1, first = false) {
		if (!first)
			buf_puts(sql, ", ");
		append_identifier(sql, column);
	}
	buf_puts(sql, ") IN (");
}

static struct statement *new_statement(struct cleanup *c, const char *header, size_t header_len,
                                       size_t ncolumns)
{
	if (c->nstatements == c->statements_cap) {
		size_t cap = c->statements_cap ? c->statements_cap * 2 : 4;
		c->statements = xrealloc(c->statements, cap * sizeof *c->statements);
		memset(c->statements + c->statements_cap, 0,
		       (cap - c->statements_cap) * sizeof *c->statements);
		c->statements_cap = cap;
	}
	struct statement *s = &c->statements[c->nstatements++];
	s->header = header;
	s->header_len = header_len;
	s->ncolumns = ncolumns;
	s->nparams = 0;
	s->rows = 0;
	begin_sql(&s->sql, header);
	return s;
}

/* The statement still open for rows with this header, or a new one. */
static struct statement *statement_for(struct cleanup *c, const char *key)
{
	size_t ncolumns;
	size_t len = header_length(key, &ncolumns);
	for (size_t i = 0; i < c->nstatements; i++) {
		struct statement *s = &c->statements[i];
		if (s->rows < CLEANUP_BATCH_ROWS && s->header_len == len && memcmp(s->header, key, len) == 0)
			return s;
	}
	return new_statement(c, key, len, ncolumns);
}

static void add_param(struct statement *s, const char *value)
{
	if (s->nparams == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->params = xrealloc(s->params, s->cap * sizeof *s->params);
	}
	s->params[s->nparams++] = value;
}

/* "($1, $2)" for the row whose key is at key, its values as parameters. */
static void add_row(struct statement *s, const char *key)
{
	const char *value = key + s->header_len;
	buf_puts(&s->sql, s->rows ? ", (" : "(");
	for (size_t i = 0; i < s->ncolumns; i++, value += strlen(value) + 1) {
		add_param(s, value);
		buf_printf(&s->sql, i ? ", $%zu" : "$%zu", s->nparams);
	}
	buf_putc(&s->sql, ')');
	s->rows++;
}

size_t cleanup_build(struct cleanup *c, struct event_pos upto)
{
	c->nstatements = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (!covered(c->entries[i].pos, upto))
			continue;
		const char *key = c->arena.data + c->entries[i].off;
		add_row(statement_for(c, key), key);
	}
	for (size_t i = 0; i < c->nstatements; i++)
		buf_putc(&c->statements[i].sql, ')');
	return c->nstatements;
}

struct cleanup_statement cleanup_statement(const struct cleanup *c, size_t i)
{
	const struct statement *s = &c->statements[i];
	return (struct cleanup_statement){ s->sql.data, (int)s->nparams, s->params, s->rows };
}

void cleanup_drop(struct cleanup *c, struct event_pos upto)
{
	size_t kept = 0;
	buf_reset(&c->spare);
	for (size_t i = 0; i < c->n; i++) {
		struct entry e = c->entries[i];
		if (covered(e.pos, upto))
			continue;
		c->entries[kept++] = (struct entry){ e.pos, c->spare.len, e.len };
		buf_append(&c->spare, c->arena.data + e.off, e.len);
	}
	c->n = kept;
	struct buf swap = c->arena;
	c->arena = c->spare;
	c->spare = swap;
	c->nstatements = 0;
	if (!kept && c->spare.cap > ARENA_KEEP_MAX) {
		buf_finish(&c->arena);
		buf_finish(&c->spare);
	}
}
