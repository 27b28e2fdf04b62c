/*
 * The signals the relay acts on (SIGTERM, SIGINT, SIGHUP, SIGUSR1), read from a signalfd by
 * the poll loop: no handler runs asynchronously, the loop acts when it reads one.
 */
#ifndef OUTBOX_SIGNALS_H
#define OUTBOX_SIGNALS_H

/* Blocks them (and ignores SIGPIPE): called first thing in main, so that a SIGTERM during
 * start-up is a graceful stop rather than a kill. Returns 0 or -1 (errno set). */
int signals_block(void);

/* Blocks them and returns a non-blocking signalfd that reads them, or -1 (errno set). */
int signals_open(void);

/* The next pending signal's number, or 0 when none is pending. */
int signals_next(int fd);

#endif
