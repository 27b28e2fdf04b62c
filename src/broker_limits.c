#include "broker_limits.h"

#include <stdio.h>

struct broker_limits broker_limits_unsaid(void)
{
	return (struct broker_limits){
		.max_qos = 2, .retain_available = true, .max_packet_size = 0, .receive_maximum = 65535
	};
}

bool broker_limits_same(const struct broker_limits *a, const struct broker_limits *b)
{
	return a->max_qos == b->max_qos && a->retain_available == b->retain_available &&
	       a->max_packet_size == b->max_packet_size && a->receive_maximum == b->receive_maximum;
}

bool broker_limits_said(const struct broker_limits *l)
{
	return l->max_qos < 2 || !l->retain_available || l->max_packet_size > 0 || l->receive_maximum < 65535;
}

static void route_key(const struct config *cfg, size_t i, const char *key, struct broker_misfit *misfit)
{
	const struct route_config *rc = &cfg->routes[i];
	snprintf(misfit->key, sizeof misfit->key, "%s:%d:%d: routes[%zu].%s", cfg->path, rc->line, rc->column,
	         i, key);
}

static bool qos_fits(const struct config *cfg, size_t i, const struct broker_limits *l,
                     struct broker_misfit *misfit)
{
	const struct route_config *rc = &cfg->routes[i];
	if (rc->qos <= l->max_qos || (rc->downgrade && l->max_qos > 0))
		return true;
	route_key(cfg, i, "qos", misfit);
	snprintf(misfit->broker, sizeof misfit->broker, "Maximum QoS %d", l->max_qos);
	if (l->max_qos == 0)
		snprintf(misfit->fix, sizeof misfit->fix,
		         "use a broker that takes QoS 1: it acknowledges no message at QoS 0, so the relay "
		         "could"
		         " not know what it lost (qos: 0 on the route publishes so, accepting the loss)");
	else
		snprintf(misfit->fix, sizeof misfit->fix,
		         "set qos: %d on routes[%zu], or downgrade: true to publish its QoS %d messages at "
		         "QoS %d"
		         " on this broker",
		         l->max_qos, i, rc->qos, l->max_qos);
	return false;
}

static bool retain_fits(const struct config *cfg, size_t i, const struct broker_limits *l,
                        struct broker_misfit *misfit)
{
	const struct route_config *rc = &cfg->routes[i];
	if (!rc->retain || l->retain_available || rc->downgrade)
		return true;
	route_key(cfg, i, "retain", misfit);
	snprintf(misfit->broker, sizeof misfit->broker, "Retain Available 0");
	snprintf(
	        misfit->fix, sizeof misfit->fix,
	        "enable retained messages on the broker, or set retain: false on routes[%zu] (downgrade: true"
	        " publishes without the retain flag on this broker)",
	        i);
	return false;
}

/* The status topic's messages and its Will are QoS 1 and retained: without them it cannot
 * say "offline" when the relay is gone. */
static bool status_topic_fits(const struct config *cfg, const struct broker_limits *l,
                              struct broker_misfit *misfit)
{
	if (!cfg->broker.status_topic || (l->retain_available && l->max_qos >= 1))
		return true;
	snprintf(misfit->key, sizeof misfit->key, "%s: broker.status_topic", cfg->path);
	snprintf(misfit->broker, sizeof misfit->broker, "%s",
	         l->retain_available ? "Maximum QoS 0" : "Retain Available 0");
	snprintf(misfit->fix, sizeof misfit->fix,
	         "the status topic needs retained QoS 1 messages: allow them on the broker, or remove"
	         " broker.status_topic");
	return false;
}

bool broker_limits_fit(const struct config *cfg, const struct broker_limits *l, struct broker_misfit *misfit)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (!qos_fits(cfg, i, l, misfit) || !retain_fits(cfg, i, l, misfit))
			return false;
	}
	return status_topic_fits(cfg, l, misfit);
}

int broker_limits_qos(const struct broker_limits *l, int qos)
{
	return qos > l->max_qos ? l->max_qos : qos;
}

bool broker_limits_retain(const struct broker_limits *l, bool retain)
{
	return retain && l->retain_available;
}
