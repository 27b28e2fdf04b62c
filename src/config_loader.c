/*
 * One load of the configuration in progress: the errors it finds, kept until the end and
 * then written in file order, one line each.
 */
#include "config_loader.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define VALUE_SHOWN_MAX 80 /* longer values are cut in error messages */

struct loader_error {
	size_t line, column, seq;
	char *text; /* the whole line, newline included */
	size_t size;
};

/* Writes s with control characters, quotes and backslashes escaped so that every error
 * stays one line. Past limit bytes it is cut at a character boundary and marked "...". */
static void put_escaped(FILE *f, const char *s, size_t limit)
{
	size_t len = strlen(s);
	bool cut = len > limit;
	if (cut) {
		len = limit;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	if (cut)
		fputs("...", f);
}

/* Errors are kept until the walk ends, then written in file order (line, column, then the
 * order found), so that a missing key reported when its mapping ends still reads in place. */
static FILE *error_begin(struct loader *ld, const yaml_mark_t *mark)
{
	if (ld->nerrors == ld->cap) {
		ld->cap = ld->cap ? ld->cap * 2 : 8;
		ld->errors = xrealloc(ld->errors, (size_t)ld->cap * sizeof *ld->errors);
	}
	struct loader_error *e = &ld->errors[ld->nerrors];
	e->line = mark->line;
	e->column = mark->column;
	e->seq = (size_t)ld->nerrors;
	e->text = NULL;
	FILE *f = open_memstream(&e->text, &e->size);
	if (!f)
		abort(); /* only for want of memory */
	put_escaped(f, ld->file, SIZE_MAX);
	return f;
}

static void error_end(struct loader *ld, FILE *f)
{
	fputc('\n', f);
	fclose(f);
	ld->nerrors++;
}

/* "FILE:LINE:COLUMN: key.path: "; the document root has no key path, so it is named. */
static FILE *report_start(struct loader *ld, const yaml_mark_t *mark, const char *path)
{
	FILE *f = error_begin(ld, mark);
	fprintf(f, ":%zu:%zu: ", mark->line + 1, mark->column + 1);
	put_escaped(f, *path ? path : "document", SIZE_MAX);
	fputs(": ", f);
	return f;
}

void cfg_report(struct loader *ld, const yaml_mark_t *mark, const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f = report_start(ld, mark, path);
	va_start(ap, fmt);
	/* fmt is never NULL (every caller passes a literal); the test keeps gcc's UBSan build
	 * from seeing a path where it is. */
	if (fmt)
		vfprintf(f, fmt, ap);
	va_end(ap);
	error_end(ld, f);
}

/* "expected ..., got "VALUE"", the value left out when it may be a secret. */
void cfg_report_got(struct loader *ld, const yaml_mark_t *mark, const char *path, const char *why,
                    const char *value, bool secret)
{
	FILE *f = report_start(ld, mark, path);
	fputs(why, f);
	if (!secret) {
		fputs(", got \"", f);
		put_escaped(f, value, VALUE_SHOWN_MAX);
		fputc('"', f);
	}
	error_end(ld, f);
}

/* Errors about the file as a whole have no line: "FILE: cannot open: REASON". */
void cfg_report_file(struct loader *ld, const char *what, const char *reason)
{
	static const yaml_mark_t start = { 0, 0, 0 };
	FILE *f = error_begin(ld, &start);
	fprintf(f, ": %s: %s", what, reason);
	error_end(ld, f);
}

static int error_order(const void *a, const void *b)
{
	const struct loader_error *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void cfg_flush_errors(struct loader *ld)
{
	if (!ld->errors)
		return;
	qsort(ld->errors, (size_t)ld->nerrors, sizeof *ld->errors, error_order);
	for (int i = 0; i < ld->nerrors; i++) {
		fwrite(ld->errors[i].text, 1, ld->errors[i].size, ld->errs);
		free(ld->errors[i].text);
	}
	free(ld->errors);
}

yaml_node_t *cfg_node(struct loader *ld, int id)
{
	return yaml_document_get_node(ld->doc, id);
}
