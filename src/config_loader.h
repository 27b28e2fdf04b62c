/*
 * Configuration, private to its files: one config_load in progress (struct loader) and
 * the errors it reports. Each error is one line, "FILE:LINE:COLUMN: key.path: message",
 * LINE and COLUMN 1-based from a libyaml mark, with control characters, quotes and
 * backslashes in names and values escaped. Errors are kept until cfg_flush_errors, which
 * writes them in file order: line, column, then the order they were reported in.
 */
#ifndef OUTBOX_CONFIG_LOADER_H
#define OUTBOX_CONFIG_LOADER_H

#include <stdbool.h>
#include <stdio.h>
#include <yaml.h>

struct loader {
	const char *file; /* as given to config_load: the start of every error */
	FILE *errs;       /* where cfg_flush_errors writes */
	struct loader_error *errors;
	int nerrors, cap;
	yaml_document_t *doc; /* while the document is walked */
};

/* "FILE:LINE:COLUMN: PATH: message"; an empty path (the document root) is "document". */
__attribute__((format(printf, 4, 5))) void cfg_report(struct loader *ld, const yaml_mark_t *mark,
                                                      const char *path, const char *fmt, ...);

/* "FILE:LINE:COLUMN: PATH: WHY, got "VALUE"", the value cut at 80 bytes; secret: the value
 * is left out, as it may hold a password. */
void cfg_report_got(struct loader *ld, const yaml_mark_t *mark, const char *path, const char *why,
                    const char *value, bool secret);

/* "FILE: WHAT: REASON", for the file as a whole (it cannot be opened or read). */
void cfg_report_file(struct loader *ld, const char *what, const char *reason);

/* Writes the errors to ld->errs in file order and frees them; ld->nerrors stays. */
void cfg_flush_errors(struct loader *ld);

/* The node of the document being walked with this id (a pair's key or value, an item). */
yaml_node_t *cfg_node(struct loader *ld, int id);

#endif
