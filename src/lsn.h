/* Log sequence numbers: PostgreSQL's 64-bit WAL positions and their X/Y text form. */
#ifndef OUTBOX_LSN_H
#define OUTBOX_LSN_H

#include <stdint.h>

typedef uint64_t lsn_t;

#define LSN_INVALID ((lsn_t)0)
/* "FFFFFFFF/FFFFFFFF" plus NUL. */
#define LSN_BUFLEN 18

/* Parses "X/Y" (hexadecimal halves). Returns 0, or -1 if the text is not an LSN. */
int lsn_parse(const char *text, lsn_t *out);

/* Writes the X/Y form into buf and returns buf. */
char *lsn_format(lsn_t lsn, char buf[LSN_BUFLEN]);

#endif
