/*
 * The relay: one single-threaded poll loop joining the replication stream, the MQTT
 * client and the bookkeeping. Returns the process exit status.
 */
#ifndef OUTBOX_RELAY_H
#define OUTBOX_RELAY_H

#include <stdbool.h>

#include "config.h"
#include "outbox.h"

struct relay_options {
	bool drain;           /* publish what was committed before start, then stop */
	bool log_level_fixed; /* -l given: a reload keeps it */
};

/* Blocks the signals the loop reads from a signalfd: called first thing in main, so that
 * a SIGTERM during start-up is a graceful stop rather than a kill. Returns 0 or -1. */
int relay_block_signals(void);

/* Runs until stopped by a signal, by --drain completing, or by a fatal error. SIGHUP
 * reloads cfg's file and applies its reloadable keys to *cfg and *outbox (both stay
 * owned by the caller; what they held before is kept until the run ends, for the events
 * still in flight). Returns 0 for a clean stop, 1 for a fatal runtime error, 78 when the
 * routes do not match the database. */
int relay_run(struct config *cfg, struct outbox **outbox, const struct relay_options *opts);

#endif
