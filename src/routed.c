#include "routed.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pgconn.h"
#include "routed_tables_sql.h"
#include "util.h"

/* Names the install gives its objects in the bookkeeping schema. */
#define LIST_TABLE "routed_table"
#define TRIGGER_FUNCTION "add_routed_tables()"

/* Whether the event trigger is in place for bookkeeping schema $1 (its name, as text): an
 * enabled trigger at the end of DDL commands that calls the function of the install, which
 * runs as a superuser and reads a list owned by a superuser (it reads no other). */
#define TRIGGER_IN_PLACE                                                                                     \
	"(EXISTS (SELECT FROM pg_catalog.pg_event_trigger e"                                                 \
	" JOIN pg_catalog.pg_proc f ON f.oid = e.evtfoid"                                                    \
	" JOIN pg_catalog.pg_roles o ON o.oid = f.proowner"                                                  \
	" WHERE f.oid = pg_catalog.to_regprocedure(pg_catalog.quote_ident($1) || '." TRIGGER_FUNCTION "')"   \
	" AND f.prosecdef AND o.rolsuper AND e.evtevent = 'ddl_command_end' AND e.evtenabled IN ('O', 'A'))" \
	" AND EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles o ON o.oid = c.relowner"    \
	" WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '." LIST_TABLE "')"             \
	" AND c.relkind = 'r' AND o.rolsuper))"

/* One boolean: the first column of the only row. */
static int query_bool(PGconn *sql, const char *text, int n, const char *const *params, bool *value,
                      const char *what)
{
	PGresult *res;
	int status = pg_query(sql, text, n, params, &res, what);
	if (status == PG_OK) {
		*value = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
	}
	return status;
}

/* ---- installing the event trigger ---- */

static int install(PGconn *sql, const struct config *cfg)
{
	const char *schema = cfg->delivery.bookkeeping_schema;
	char *literal = PQescapeLiteral(sql, schema, strlen(schema));
	if (!literal)
		return pg_failure(sql, NULL, "cannot quote the bookkeeping schema's name");
	/* One simple query is one transaction: the setting lasts until its end. */
	struct buf q = BUF_INIT;
	buf_printf(&q, "SELECT pg_catalog.set_config('outbox_relay.bookkeeping_schema', %s, true);", literal);
	buf_puts(&q, ROUTED_TABLES_SQL);
	PQfreemem(literal);
	int status = pg_exec(sql, q.data,
	                     "cannot install the event trigger that keeps routed tables in the publication");
	buf_finish(&q);
	return status;
}

static bool warned_no_trigger;

int routed_prepare(PGconn *sql, const struct config *cfg)
{
	const char *params[] = { cfg->delivery.bookkeeping_schema };
	const char *in_place_sql = "SELECT " TRIGGER_IN_PLACE;
	const char *what = "cannot look up the event trigger for routed tables";
	bool superuser = false, before = false, in_place = false;
	int status = query_bool(sql, in_place_sql, 1, params, &before, what);
	if (status == PG_OK && cfg->delivery.create_bookkeeping)
		status = query_bool(sql, "SELECT pg_catalog.current_setting('is_superuser') = 'on'", 0, NULL,
		                    &superuser, "cannot tell whether the role is a superuser");
	in_place = before;
	if (status == PG_OK && superuser) {
		status = install(sql, cfg);
		if (status == PG_OK)
			status = query_bool(sql, in_place_sql, 1, params, &in_place, what);
	}
	if (status != PG_OK)
		return status;
	if (in_place) {
		if (!before)
			log_info(
			        "event trigger installed: routed tables dropped and created again stay in the"
			        " publication",
			        "bookkeeping_schema", cfg->delivery.bookkeeping_schema);
		warned_no_trigger = false;
		return PG_OK;
	}
	if (!warned_no_trigger)
		log_warn("no event trigger keeps the routed tables in the publication (missing or"
		         " disabled): a routed table dropped and created again stops the relay, and the"
		         " rows written to it before the relay's next start are lost. A superuser installs"
		         " it with the SQL file (see outbox-relay(8), ROUTED TABLES)",
		         "bookkeeping_schema", cfg->delivery.bookkeeping_schema, "sql_file",
		         ROUTED_TABLES_SQL_FILE);
	warned_no_trigger = true;
	return PG_OK;
}

/* ---- the list ---- */

/* The list's quoted name; NULL (logged) if it cannot be formed. */
static char *list_name(PGconn *sql, const struct config *cfg)
{
	const char *schema = cfg->delivery.bookkeeping_schema;
	char *quoted = PQescapeIdentifier(sql, schema, strlen(schema));
	if (!quoted)
		return NULL;
	char *name = xmalloc(strlen(quoted) + sizeof "." LIST_TABLE);
	strcpy(name, quoted);
	strcat(name, "." LIST_TABLE);
	PQfreemem(quoted);
	return name;
}

static bool warned_old_list;

/* The list as it was before routes had filters: tables only. A route with filters would
 * have its table added unfiltered when it is created again: said once. */
static int list_update_tables_only(PGconn *sql, const struct config *cfg)
{
	char *list = list_name(sql, cfg);
	if (!list)
		return pg_failure(sql, NULL, "cannot quote the bookkeeping schema's name");
	size_t n = 1;
	const char **values = xcalloc(1 + 2 * cfg->nroutes, sizeof *values);
	struct buf q = BUF_INIT, want = BUF_INIT;
	bool filtered = false;
	values[0] = cfg->source.publication;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		if (!rc->table)
			continue;
		filtered = filtered || rc->row_filter || rc->ncolumns;
		buf_printf(&want, "%s($%zu::text, $%zu::text)", n > 1 ? ", " : "", n + 1, n + 2);
		values[n++] = rc->schema;
		values[n++] = rc->table;
	}
	if (filtered && !warned_old_list)
		log_warn("the list of routed tables predates column lists and row filters: a routed table"
		         " with them created again would be added to the publication unfiltered. A"
		         " superuser runs the SQL file again (see outbox-relay(8), ROUTED TABLES)",
		         "bookkeeping_schema", cfg->delivery.bookkeeping_schema, "sql_file",
		         ROUTED_TABLES_SQL_FILE);
	warned_old_list = warned_old_list || filtered;
	if (n == 1) {
		buf_printf(&q, "DELETE FROM %s WHERE publication = $1", list);
	} else {
		buf_printf(&q,
		           "WITH want (schema_name, table_name) AS (VALUES %s),"
		           " gone AS (DELETE FROM %s l WHERE l.publication = $1 AND NOT EXISTS"
		           " (SELECT FROM want w WHERE w.schema_name = l.schema_name"
		           " AND w.table_name = l.table_name))"
		           " INSERT INTO %s (publication, schema_name, table_name)"
		           " SELECT $1, schema_name, table_name FROM want ON CONFLICT DO NOTHING",
		           want.data, list, list);
	}
	int status = pg_result(sql, PQsendQueryParams(sql, q.data, (int)n, NULL, values, NULL, NULL, 0),
	                       PGRES_COMMAND_OK, "cannot update the list of routed tables", NULL);
	buf_finish(&q);
	buf_finish(&want);
	free(values);
	free(list);
	return status;
}

/* The route's column list as a text[] literal: {"a","b"}. */
static const char *append_text_array(struct buf *b, const struct route_config *rc)
{
	pg_append_text_array(b, (const char *const *)rc->columns, rc->ncolumns);
	return b->data;
}

int routed_list_update(PGconn *sql, const struct config *cfg)
{
	const char *params[] = { cfg->delivery.bookkeeping_schema };
	bool exists;
	int status = query_bool(sql,
	                        "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '." LIST_TABLE
	                        "') IS NOT NULL",
	                        1, params, &exists, "cannot look up the list of routed tables");
	if (status != PG_OK || !exists)
		return status; /* not installed: routed_prepare has said what that means */
	/* A list installed before routes had filters: the tables only, said once. */
	bool filters;
	status = query_bool(sql,
	                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid ="
	                    " pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '." LIST_TABLE "')"
	                    " AND attname = 'row_filter' AND NOT attisdropped)",
	                    1, params, &filters, "cannot look up the list of routed tables");
	if (status != PG_OK)
		return status;
	if (!filters)
		return list_update_tables_only(sql, cfg);
	char *list = list_name(sql, cfg);
	if (!list)
		return pg_failure(sql, NULL, "cannot quote the bookkeeping schema's name");

	/* One statement: rows of routes no longer configured go, new ones come, changed ones
	 * change, the rest stay. */
	size_t n = 1;
	const char **values = xcalloc(1 + 4 * cfg->nroutes, sizeof *values);
	struct buf *arrays = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *arrays);
	struct buf q = BUF_INIT, want = BUF_INIT;
	values[0] = cfg->source.publication;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		if (!rc->table)
			continue;
		buf_printf(&want, "%s($%zu::text, $%zu::text, $%zu::text[], $%zu::text)", n > 1 ? ", " : "",
		           n + 1, n + 2, n + 3, n + 4);
		values[n++] = rc->schema;
		values[n++] = rc->table;
		values[n++] = rc->ncolumns ? append_text_array(&arrays[i], rc) : NULL;
		values[n++] = rc->row_filter;
	}
	if (n == 1) {
		buf_printf(&q, "DELETE FROM %s WHERE publication = $1", list);
	} else {
		buf_printf(
		        &q,
		        "WITH want (schema_name, table_name, column_list, row_filter) AS (VALUES %s),"
		        " gone AS (DELETE FROM %s l WHERE l.publication = $1 AND NOT EXISTS"
		        " (SELECT FROM want w WHERE w.schema_name = l.schema_name"
		        " AND w.table_name = l.table_name))"
		        " INSERT INTO %s AS l (publication, schema_name, table_name, column_list, row_filter)"
		        " SELECT DISTINCT ON (schema_name, table_name) $1, schema_name, table_name,"
		        " column_list, row_filter FROM want"
		        " ON CONFLICT (publication, schema_name, table_name) DO UPDATE"
		        " SET column_list = excluded.column_list, row_filter = excluded.row_filter"
		        " WHERE (l.column_list, l.row_filter)"
		        " IS DISTINCT FROM (excluded.column_list, excluded.row_filter)",
		        want.data, list, list);
	}
	status = pg_result(sql, PQsendQueryParams(sql, q.data, (int)n, NULL, values, NULL, NULL, 0),
	                   PGRES_COMMAND_OK, "cannot update the list of routed tables", NULL);
	buf_finish(&q);
	buf_finish(&want);
	for (size_t i = 0; i < cfg->nroutes; i++)
		buf_finish(&arrays[i]);
	free(arrays);
	free(values);
	free(list);
	return status;
}

/* ---- the state of one routed table ---- */

int routed_state(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                 struct routed_state *st)
{
	/* One statement, one snapshot: the table's existence and its membership are seen at the
	 * same moment. Membership by OID (what pgoutput goes by), or as the publication lists it
	 * (FOR ALL TABLES, FOR TABLES IN SCHEMA). */
	const char *params[] = { cfg->delivery.bookkeeping_schema, cfg->source.publication, rc->schema,
		                 rc->table };
	PGresult *res;
	int status = pg_query(
	        sql,
	        "WITH t AS (SELECT c.oid FROM pg_catalog.pg_class c"
	        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	        " WHERE n.nspname = $3 AND c.relname = $4 AND c.relkind IN ('r', 'p'))"
	        " SELECT EXISTS (SELECT FROM t),"
	        " EXISTS (SELECT FROM t, pg_catalog.pg_publication p WHERE p.pubname = $2 AND (p.puballtables"
	        " OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel r"
	        " WHERE r.prpubid = p.oid AND r.prrelid = t.oid)))"
	        " OR EXISTS (SELECT FROM pg_catalog.pg_publication_tables pt"
	        " WHERE pt.pubname = $2 AND pt.schemaname = $3 AND pt.tablename = $4),"
	        " " TRIGGER_IN_PLACE ","
	        " pg_catalog.has_table_privilege(pg_catalog.to_regclass(pg_catalog.quote_ident($1) || "
	        "'." LIST_TABLE "'), 'SELECT')",
	        4, params, &res, "cannot look up a routed table");
	if (status != PG_OK)
		return status;
	st->exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	st->published = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	st->trigger = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	bool list_readable = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	st->listed = false;
	PQclear(res);
	if (st->published || !list_readable)
		return PG_OK;
	/* Only the relay changes the list: no need to read it in the same snapshot. */
	char *list = list_name(sql, cfg);
	if (!list)
		return pg_failure(sql, NULL, "cannot quote the bookkeeping schema's name");
	struct buf q = BUF_INIT;
	buf_printf(&q,
	           "SELECT EXISTS (SELECT FROM %s WHERE publication = $1 AND schema_name = $2"
	           " AND table_name = $3)",
	           list);
	status = query_bool(sql, q.data, 3, params + 1, &st->listed, "cannot read the list of routed tables");
	buf_finish(&q);
	free(list);
	return status;
}

/* ---- saying it once ---- */

/* Routed tables found missing and warned about, as "schema.table". */
static char **missing;
static size_t nmissing;

static char *qualified(const struct route_config *rc)
{
	char *name = xmalloc(strlen(rc->schema) + strlen(rc->table) + 2);
	strcpy(name, rc->schema);
	strcat(name, ".");
	strcat(name, rc->table);
	return name;
}

static size_t find_missing(const char *name)
{
	for (size_t i = 0; i < nmissing; i++)
		if (strcmp(missing[i], name) == 0)
			return i;
	return nmissing;
}

void routed_note_missing(const struct config *cfg, const struct route_config *rc)
{
	char *name = qualified(rc);
	if (find_missing(name) < nmissing) {
		free(name);
		return;
	}
	log_warn("a routed table was dropped (or is not created yet): the event trigger puts it in"
	         " the publication in the transaction that creates it, and every row written to it"
	         " from then on is published",
	         "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table);
	missing = xrealloc(missing, (nmissing + 1) * sizeof *missing);
	missing[nmissing++] = name;
}

void routed_note_present(const struct config *cfg, const struct route_config *rc)
{
	if (!nmissing)
		return;
	char *name = qualified(rc);
	size_t i = find_missing(name);
	free(name);
	if (i == nmissing)
		return;
	log_info("a routed table that was missing exists again, in the publication since its creation",
	         "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table);
	free(missing[i]);
	missing[i] = missing[--nmissing];
}
