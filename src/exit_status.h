#ifndef OUTBOX_EXIT_STATUS_H
#define OUTBOX_EXIT_STATUS_H

/* The process's exit status (doc/design.md §3): sysexits.h values where one fits. */
enum exit_status {
	EXIT_CLEAN = 0,
	EXIT_FATAL = 1,   /* a runtime error retrying cannot fix */
	EXIT_USAGE = 64,  /* a bad command line */
	EXIT_CONFIG = 78, /* a configuration error, or routes the database does not match */
};

#endif
