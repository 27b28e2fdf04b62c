/*
 * broker.hosts: the brokers the client tries in turn, each "host", "host:port",
 * "[address]" or "[address]:port". A port left out is filled in from broker.port once
 * the whole file is read (config.c).
 */
#include "config_brokers.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_walk.h"
#include "util.h"

#define ADDRESS_EXPECTED "expected \"host\", \"host:port\" or \"[address]:port\" with a port from 1 to 65535"

/* "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 address has no port. Port 0
 * means "not given". Returns false for anything else. */
static bool parse_address(const char *text, struct broker_address *out)
{
	const char *host = text, *colon = strrchr(text, ':');
	size_t host_len = strlen(text);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close == text + 1 || (close[1] && close[1] != ':'))
			return false;
		host = text + 1;
		host_len = (size_t)(close - host);
		colon = close[1] ? close + 1 : NULL;
	} else if (colon && strchr(text, ':') != colon) {
		colon = NULL; /* several colons: a bare IPv6 address */
	} else if (colon) {
		host_len = (size_t)(colon - text);
	}
	int64_t port = 0;
	if (host_len == 0 || (colon && (!cfg_parse_int(colon + 1, &port) || port < 1 || port > 65535)))
		return false;
	out->host = xstrndup(host, host_len);
	out->port = (int)port;
	return true;
}

static void load_hosts(struct loader *ld, const struct key *k, yaml_node_t *node, void *base,
                       const char *shown)
{
	struct config *cfg = base;
	(void)k;
	if (node->type != YAML_SEQUENCE_NODE ||
	    node->data.sequence.items.top == node->data.sequence.items.start) {
		cfg_report(ld, &node->start_mark, shown,
		           "expected a non-empty sequence of \"host\" or \"host:port\", got %s",
		           node->type == YAML_SEQUENCE_NODE ? "an empty sequence" : cfg_node_kind(node));
		return;
	}
	yaml_node_item_t *items = node->data.sequence.items.start;
	size_t n = (size_t)(node->data.sequence.items.top - items);
	cfg->broker.hosts = xcalloc(n, sizeof *cfg->broker.hosts);
	for (size_t i = 0; i < n; i++) {
		char item[128];
		snprintf(item, sizeof item, "%s[%zu]", shown, i);
		yaml_node_t *entry = cfg_node(ld, items[i]);
		char *text = cfg_scalar_value(ld, entry, item);
		if (!text)
			continue;
		if (parse_address(text, &cfg->broker.hosts[cfg->broker.nhosts]))
			cfg->broker.nhosts++;
		else
			cfg_report_got(ld, &entry->start_mark, item, ADDRESS_EXPECTED, text, false);
		free(text);
	}
}

static void release_hosts(const struct key *k, void *base)
{
	struct config *cfg = base;
	(void)k;
	for (size_t i = 0; i < cfg->broker.nhosts; i++)
		free(cfg->broker.hosts[i].host);
	free(cfg->broker.hosts);
	cfg->broker.hosts = NULL;
	cfg->broker.nhosts = 0;
}

static bool equal_hosts(const struct key *k, const void *a, const void *b)
{
	const struct config *x = a, *y = b;
	(void)k;
	if (x->broker.nhosts != y->broker.nhosts)
		return false;
	for (size_t i = 0; i < x->broker.nhosts; i++)
		if (!strings_equal(x->broker.hosts[i].host, y->broker.hosts[i].host) ||
		    x->broker.hosts[i].port != y->broker.hosts[i].port)
			return false;
	return true;
}

const struct key_type cfg_hosts_type = {
	.load = load_hosts,
	.release = release_hosts,
	.equal = equal_hosts,
	.doc_name = "list",
};
