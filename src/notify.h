/* systemd service notification (sd_notify); no-ops when built without libsystemd or
 * when not started by systemd. */
#ifndef OUTBOX_NOTIFY_H
#define OUTBOX_NOTIFY_H

/* READY=1 with a status line: both sides connected and the checkpoint loaded. */
void notify_ready(const char *status);

/* STOPPING=1. */
void notify_stopping(void);

#endif
