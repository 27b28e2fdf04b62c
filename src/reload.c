#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notify.h"
#include "catalog.h"
#include "util.h"

/* A configuration and its compiled routes replaced by a reload. */
struct retired {
	struct config cfg;
	struct outbox *outbox;
};

struct reload {
	struct config *live;
	struct outbox **outbox;
	const struct typemap *types;
	bool log_level_fixed;
	struct retired *retired;
	size_t nretired;
};

struct reload *reload_new(struct config *live, struct outbox **outbox, const struct typemap *types,
                          bool log_level_fixed)
{
	struct reload *rl = xcalloc(1, sizeof *rl);
	*rl = (struct reload){
		.live = live, .outbox = outbox, .types = types, .log_level_fixed = log_level_fixed
	};
	return rl;
}

void reload_free(struct reload *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < rl->nretired; i++) {
		outbox_free(rl->retired[i].outbox);
		config_finish(&rl->retired[i].cfg);
	}
	free(rl->retired);
	free(rl);
}

static void note_restart_key(void *ctx, const char *path)
{
	(void)ctx;
	log_warn("changed setting not applied: it takes a restart", "key", path);
}

/* Logs each line of the loader's error text as one record. */
static void log_config_errors(char *text)
{
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_error("configuration error", "error", line);
}

/* New routes must name what the database has, and be in the publication, before they are
 * used. PG_OK also when PostgreSQL is away, or goes away now. */
static int prepare_routes(PGconn *sql, const struct config *next, const struct outbox *outbox, bool *sql_lost)
{
	if (!sql)
		return PG_OK;
	int status = catalog_check_routes(sql, next, outbox);
	if (status == PG_OK)
		status = catalog_ensure_publication(sql, next);
	*sql_lost = status == PG_RETRY;
	if (status == PG_REFUSED) /* a privilege the new routes need (pgconn.h: reported here) */
		pg_report_refusal(LOG_ERROR, "the new routes cannot be prepared", NULL, NULL);
	return *sql_lost ? PG_OK : status;
}

/* Takes next's routes, log level and stats interval; next keeps the old routes and is
 * retired with the old outbox. */
static void apply(struct reload *rl, struct config *next, struct outbox *outbox)
{
	struct config *live = rl->live;
	struct route_config *routes = live->routes;
	size_t nroutes = live->nroutes;
	live->routes = next->routes;
	live->nroutes = next->nroutes;
	next->routes = routes;
	next->nroutes = nroutes;
	live->log.level = next->log.level;
	if (!rl->log_level_fixed)
		log_set_level(live->log.level);
	live->log.stats_interval_ms = next->log.stats_interval_ms;

	rl->retired = xrealloc(rl->retired, (rl->nretired + 1) * sizeof *rl->retired);
	rl->retired[rl->nretired++] = (struct retired){ *next, *rl->outbox };
	outbox_use_types(outbox, rl->types);
	*rl->outbox = outbox;
}

bool reload_run(struct reload *rl, PGconn *sql, bool *sql_lost)
{
	struct config next;
	struct outbox *outbox = NULL;
	char *errors = NULL;
	size_t size = 0;
	FILE *errs = open_memstream(&errors, &size);
	if (!errs)
		abort(); /* only for want of memory */
	notify_reloading();
	log_info("reloading the configuration", "config", rl->live->path);
	bool loaded = config_load(rl->live->path, &next, errs) == 0;
	if (loaded)
		outbox = outbox_new(&next, errs);
	fclose(errs);
	*sql_lost = false;
	bool taken = outbox && prepare_routes(sql, &next, outbox, sql_lost) == PG_OK;
	if (!taken) {
		log_config_errors(errors);
		log_error("configuration not reloaded: the running one stays", "config", rl->live->path);
		outbox_free(outbox);
		if (loaded)
			config_finish(&next);
	} else {
		config_restart_changes(rl->live, &next, note_restart_key, NULL);
		apply(rl, &next, outbox);
		char routes[24];
		snprintf(routes, sizeof routes, "%zu", rl->live->nroutes);
		log_info("configuration reloaded", LOG_NUMBER("routes"), routes);
	}
	free(errors);
	notify_reloaded();
	return taken;
}
