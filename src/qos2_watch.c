#include "qos2_watch.h"

#include <stdlib.h>
#include <string.h>

#define PUBACK_LOGGED " received PUBACK (Mid: "

static bool held(const struct qos2_watch *w, int mid)
{
	return w->held[(uint16_t)mid / 8] & (1u << ((uint16_t)mid % 8));
}

static bool any_held(const struct qos2_watch *w)
{
	for (size_t i = 0; i < sizeof w->held; i++) {
		if (w->held[i])
			return true;
	}
	return false;
}

void qos2_watch_hold(struct qos2_watch *w, int mid)
{
	w->held[(uint16_t)mid / 8] |= (uint8_t)(1u << ((uint16_t)mid % 8));
}

bool qos2_watch_release(struct qos2_watch *w, int mid)
{
	if (!held(w, mid))
		return false;
	w->held[(uint16_t)mid / 8] &= (uint8_t) ~(1u << ((uint16_t)mid % 8));
	w->completed = true;
	w->breaks = 0;
	return true;
}

void qos2_watch_forget(struct qos2_watch *w)
{
	memset(w->held, 0, sizeof w->held);
}

void qos2_watch_connected(struct qos2_watch *w)
{
	w->completed = false;
}

void qos2_watch_log_line(struct qos2_watch *w, const char *text)
{
	const char *at = strstr(text, PUBACK_LOGGED);
	if (!at)
		return;
	long mid = strtol(at + strlen(PUBACK_LOGGED), NULL, 10);
	if (mid > 0 && mid <= 65535 && held(w, (int)mid))
		w->pubacked = true;
}

bool qos2_watch_refused(struct qos2_watch *w)
{
	if (!any_held(w) || w->completed)
		return false;
	return w->pubacked || ++w->breaks >= 2;
}

bool qos2_watch_seen(const struct qos2_watch *w)
{
	return w->pubacked;
}
