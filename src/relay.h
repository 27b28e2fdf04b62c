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
	bool drain;	/* publish what was committed before start, then stop */
};

/* Runs until stopped by a signal, by --drain completing, or by a fatal error.
 * Returns 0 for a clean stop, 1 for a fatal runtime error. */
int relay_run(const struct config *cfg, struct outbox *outbox, const struct relay_options *opts);

#endif
