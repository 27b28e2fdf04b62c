#include "notify.h"

#include "build_config.h"

#if HAVE_LIBSYSTEMD
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

/* Read once: the environment does not change (sd_notify is never asked to unset it). */
bool notify_enabled(void)
{
	static int enabled = -1;
	if (enabled < 0)
		enabled = getenv("NOTIFY_SOCKET") != NULL;
	return enabled;
}

void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

static uint32_t read_watchdog_interval(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	/* Half the timeout, as sd_watchdog_enabled(3) advises; at least 1 ms. */
	uint64_t ms = usec / 2000;
	return ms ? (uint32_t)(ms > UINT32_MAX ? UINT32_MAX : ms) : 1;
}

/* Read once: the environment does not change, and the loop asks on every pass. */
uint32_t notify_watchdog_interval_ms(void)
{
	static bool known;
	static uint32_t interval;
	if (!known) {
		interval = read_watchdog_interval();
		known = true;
	}
	return interval;
}

void notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}

void notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	           (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void notify_reloaded(void)
{
	sd_notify(0, "READY=1");
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
#else
bool notify_enabled(void)
{
	return false;
}

void notify_reloading(void)
{
}

void notify_reloaded(void)
{
}

void notify_ready(const char *status)
{
	(void)status;
}

void notify_status(const char *status)
{
	(void)status;
}

uint32_t notify_watchdog_interval_ms(void)
{
	return 0;
}

void notify_watchdog(void)
{
}

void notify_stopping(void)
{
}
#endif
