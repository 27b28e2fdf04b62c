/* systemd service notification (sd_notify); no-ops when built without libsystemd or
 * when not started by systemd. */
#ifndef OUTBOX_NOTIFY_H
#define OUTBOX_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* True when a service manager listens (NOTIFY_SOCKET is set): STATUS= is worth
 * composing. */
bool notify_enabled(void);

/* READY=1 with a status line: both sides connected and the checkpoint loaded. */
void notify_ready(const char *status);

/* STATUS=: the one-line summary systemctl status shows. */
void notify_status(const char *status);

/* How often to send WATCHDOG=1 (half of WatchdogSec), in ms; 0 when no watchdog is set. */
uint32_t notify_watchdog_interval_ms(void);

/* WATCHDOG=1: the loop is alive. */
void notify_watchdog(void);

/* RELOADING=1 with MONOTONIC_USEC, then READY=1 when done (systemd 253's reload
 * protocol; older managers ignore what they do not know). */
void notify_reloading(void);
void notify_reloaded(void);

/* STOPPING=1. */
void notify_stopping(void);

#endif
