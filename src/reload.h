/*
 * Reading the configuration file again (SIGHUP): a new file that loads, compiles and names
 * only what the database has replaces the running routes, log level and stats interval;
 * any other change is logged as taking a restart. Otherwise the running configuration stays
 * and the log says why.
 */
#ifndef OUTBOX_RELOAD_H
#define OUTBOX_RELOAD_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "outbox.h"
#include "typemap.h"

struct reload;

/* live and *outbox are the caller's and are changed in place by reloads; what they held
 * before stays allocated until reload_free, for events still in flight that point into
 * it. types: handed to every new outbox. */
struct reload *reload_new(struct config *live, struct outbox **outbox, const struct typemap *types,
                          bool log_level_fixed);
void reload_free(struct reload *rl);

/* Reloads. sql: the connection to check new routes on, or NULL when PostgreSQL is away
 * (connecting again checks the same). Returns true when the new file was taken. *sql_lost
 * is set when the connection broke meanwhile (the caller closes its session). */
bool reload_run(struct reload *rl, PGconn *sql, bool *sql_lost);

#endif
