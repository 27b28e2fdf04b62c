/*
 * The relay: one single-threaded poll loop joining the replication stream, the MQTT
 * client and the bookkeeping. Returns the process exit status.
 */
#ifndef OUTBOX_RELAY_H
#define OUTBOX_RELAY_H

#include <stdbool.h>

#include "config.h"
#include "exit_status.h"
#include "outbox.h"

struct relay_options {
	bool drain;           /* publish what was committed before start, then stop */
	bool log_level_fixed; /* -l given: a reload keeps it */
};

/* Runs until stopped by a signal, by --drain completing, or by a fatal error. SIGHUP
 * reloads cfg's file and applies its reloadable keys to *cfg and *outbox (both stay
 * owned by the caller; what they held before is kept until the run ends, for the events
 * still in flight). Returns EXIT_CLEAN, EXIT_FATAL, or EXIT_CONFIG when the routes do not
 * match the database. */
int relay_run(struct config *cfg, struct outbox **outbox, const struct relay_options *opts);

#endif
