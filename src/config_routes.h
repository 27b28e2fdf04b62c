/*
 * Configuration, private to its files: the types of the routes sequence (into struct
 * config's routes), of a route's properties mapping (into struct route_config's
 * properties) and of its changes list (into its changes bits). They walk their node;
 * none is compared on reload, as a reload replaces the routes whole.
 */
#ifndef OUTBOX_CONFIG_ROUTES_H
#define OUTBOX_CONFIG_ROUTES_H

#include "config_types.h"

extern const struct key_type cfg_routes_type;
extern const struct key_type cfg_properties_type;
extern const struct key_type cfg_changes_type;
extern const struct key_type cfg_columns_type; /* routes[].columns: into columns, ncolumns */

#endif
