/*
 * Configuration, private to its files: the type of broker.hosts, a sequence of broker
 * addresses read into struct config's broker.hosts (port 0 where none is written).
 */
#ifndef OUTBOX_CONFIG_BROKERS_H
#define OUTBOX_CONFIG_BROKERS_H

#include "config_types.h"

extern const struct key_type cfg_hosts_type;

#endif
