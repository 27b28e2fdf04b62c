#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "routed.h"
#include "util.h"

/* ---- the bookkeeping schema ---- */

static char *quoted_schema(PGconn *sql, const struct config *cfg)
{
	const char *s = cfg->delivery.bookkeeping_schema;
	return PQescapeIdentifier(sql, s, strlen(s));
}

/* CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists:
 * a least-privileged role with a schema made for it must not be asked for that. */
static int schema_exists(PGconn *sql, const struct config *cfg, bool *exists)
{
	const char *params[] = { cfg->delivery.bookkeeping_schema };
	PGresult *res;
	int status = pg_query(sql, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1, params,
	                      &res, "cannot look up the bookkeeping schema");
	if (status == PG_OK) {
		*exists = PQntuples(res) > 0;
		PQclear(res);
	}
	return status;
}

static int create_tables(PGconn *sql, const struct config *cfg, const char *schema)
{
	bool exists = false;
	int status = schema_exists(sql, cfg, &exists);
	if (status != PG_OK)
		return status;
	struct buf q = BUF_INIT;
	if (!exists)
		buf_printf(&q, "CREATE SCHEMA %s;", schema);
	buf_printf(
	        &q,
	        "CREATE TABLE IF NOT EXISTS %s.checkpoint ("
	        " slot_name text PRIMARY KEY, commit_lsn pg_lsn NOT NULL, event_index int NOT NULL,"
	        " confirmed_lsn pg_lsn NOT NULL, published bigint NOT NULL, updated_at timestamptz NOT NULL);"
	        "CREATE TABLE IF NOT EXISTS %s.dead_letter ("
	        " id bigserial PRIMARY KEY, slot_name text, event_id text, source text, topic text,"
	        " commit_lsn pg_lsn, reason text, payload bytea, properties jsonb,"
	        " created_at timestamptz NOT NULL DEFAULT now());"
	        /* doc/design.md §22: what a re-drive did with a dead letter. */
	        "ALTER TABLE %s.dead_letter ADD COLUMN IF NOT EXISTS redriven_at timestamptz,"
	        " ADD COLUMN IF NOT EXISTS redrive_outcome text;"
	        "CREATE TABLE IF NOT EXISTS %s.request ("
	        " id bigserial PRIMARY KEY, slot_name text NOT NULL,"
	        " kind text NOT NULL CHECK (kind IN ('backfill', 'redrive')),"
	        " route text, where_clause text, dead_letter_ids bigint[],"
	        " state text NOT NULL DEFAULT 'pending'"
	        " CHECK (state IN ('pending', 'running', 'done', 'failed')),"
	        " position text[], done bigint NOT NULL DEFAULT 0, total bigint,"
	        " refused bigint NOT NULL DEFAULT 0, error text,"
	        " created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz,"
	        " updated_at timestamptz, finished_at timestamptz)",
	        schema, schema, schema, schema);
	status = pg_exec(sql, q.data, "cannot create the bookkeeping tables");
	buf_finish(&q);
	return status;
}

static int check_tables(PGconn *sql, const char *schema)
{
	struct buf q = BUF_INIT;
	buf_printf(&q, "SELECT 1 FROM %s.checkpoint LIMIT 0", schema);
	int status = pg_exec(
	        sql, q.data,
	        "the bookkeeping table is missing or unreadable (create_bookkeeping is false; create it"
	        " with the SQL in config/ or set create_bookkeeping: true)");
	buf_finish(&q);
	return status;
}

int catalog_ensure_bookkeeping(PGconn *sql, const struct config *cfg)
{
	char *schema = quoted_schema(sql, cfg);
	int status = cfg->delivery.create_bookkeeping ? create_tables(sql, cfg, schema)
	                                              : check_tables(sql, schema);
	PQfreemem(schema);
	return status;
}

/* ---- publication and slot ---- */

static void append_table(struct buf *b, PGconn *conn, const struct route_config *rc)
{
	pg_append_identifier(b, conn, rc->schema);
	buf_putc(b, '.');
	pg_append_identifier(b, conn, rc->table);
}

/* A routed table as the publication names it: schema.table, then the route's column list
 * and row filter (PostgreSQL 15) when it has them. */
static void append_table_spec(struct buf *b, PGconn *conn, const struct route_config *rc)
{
	append_table(b, conn, rc);
	for (size_t i = 0; i < rc->ncolumns; i++) {
		buf_puts(b, i ? ", " : " (");
		pg_append_identifier(b, conn, rc->columns[i]);
	}
	if (rc->ncolumns)
		buf_putc(b, ')');
	if (rc->row_filter)
		buf_printf(b, " WHERE (%s)", rc->row_filter);
}

/* Whether route i is the first of the routes of its table (several may route one table,
 * and the configuration gives them the same where and columns). */
static bool first_of_table(const struct config *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (cfg->routes[j].table && strcmp(cfg->routes[j].schema, cfg->routes[i].schema) == 0 &&
		    strcmp(cfg->routes[j].table, cfg->routes[i].table) == 0)
			return false;
	return true;
}

static bool has_filters(const struct route_config *rc)
{
	return rc->table && (rc->row_filter || rc->ncolumns);
}

static int publication_exists(PGconn *sql, const char *name, bool *exists)
{
	PGresult *res;
	const char *params[] = { name };
	int status = pg_query(sql, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, params, &res,
	                      "cannot look up the publication");
	if (status == PG_OK) {
		*exists = PQntuples(res) > 0;
		PQclear(res);
	}
	return status;
}

/* doc/design.md §22: the request table rides in the publication, so that a request reaches
 * the relay in the stream. Whether it exists, and whether the publication has it. */
static int request_table_state(PGconn *sql, const struct config *cfg, bool *exists, bool *published)
{
	struct buf name = BUF_INIT;
	pg_append_identifier(&name, sql, cfg->delivery.bookkeeping_schema);
	buf_puts(&name, ".request");
	const char *params[] = { name.data, cfg->source.publication };
	PGresult *res;
	int status =
	        pg_query(sql,
	                 "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_publication_rel pr"
	                 " JOIN pg_publication p ON p.oid = pr.prpubid"
	                 " WHERE p.pubname = $2 AND pr.prrelid = to_regclass($1))",
	                 2, params, &res, "cannot look up the request table");
	buf_finish(&name);
	if (status != PG_OK)
		return status;
	*exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	*published = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	return PG_OK;
}

/* "ALTER PUBLICATION <publication> ADD TABLE ": the table follows. */
static void begin_add_table(struct buf *q, PGconn *sql, const struct config *cfg)
{
	buf_puts(q, "ALTER PUBLICATION ");
	pg_append_identifier(q, sql, cfg->source.publication);
	buf_puts(q, " ADD TABLE ");
}

static void append_request_table(struct buf *q, PGconn *sql, const struct config *cfg)
{
	pg_append_identifier(q, sql, cfg->delivery.bookkeeping_schema);
	buf_puts(q, ".request");
}

/* Without it in the publication, requests are found by looking at the table now and then. */
static int publish_request_table(PGconn *sql, const struct config *cfg)
{
	bool exists, published;
	int status = request_table_state(sql, cfg, &exists, &published);
	if (status != PG_OK || !exists || published)
		return status;
	if (!cfg->source.create_publication) {
		log_info("the request table is not in the publication: new requests are seen within 10 s"
		         " (add it to the publication to have them at once)",
		         "publication", cfg->source.publication);
		return PG_OK;
	}
	struct buf q = BUF_INIT;
	begin_add_table(&q, sql, cfg);
	append_request_table(&q, sql, cfg);
	status = pg_exec(sql, q.data, "cannot add the request table to the publication");
	buf_finish(&q);
	if (status == PG_REFUSED || status == PG_FATAL) {
		log_info("the request table could not be added to the publication: new requests are seen"
		         " within 10 s",
		         "publication", cfg->source.publication);
		return PG_OK;
	}
	return status;
}

/* ---- what the publication publishes (doc/design.md §19) ---- */

/* The changes the routes publish: inserts always (the request table's wake requests), and
 * the updates and deletes of routes whose changes hold them. */
static unsigned wanted_changes(const struct config *cfg)
{
	unsigned changes = ROUTE_CHANGE_INSERT;
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (cfg->routes[i].table)
			changes |= cfg->routes[i].changes;
	return changes;
}

/* The publish option's value: "insert, update". */
static void append_publish(struct buf *b, unsigned changes, bool truncate)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { ROUTE_CHANGE_INSERT, "insert" },
		      { ROUTE_CHANGE_UPDATE, "update" },
		      { ROUTE_CHANGE_DELETE, "delete" } };
	size_t start = b->len;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (changes & names[i].bit)
			buf_printf(b, "%s%s", b->len > start ? ", " : "", names[i].name);
	if (truncate)
		buf_printf(b, "%struncate", b->len > start ? ", " : "");
}

/* An existing publication publishes what the routes need: widened when the relay may
 * (never narrowed: others may count on the rest), else exit 78 with the statement. */
static int ensure_publish(PGconn *sql, const struct config *cfg)
{
	const char *params[] = { cfg->source.publication };
	PGresult *res;
	int status = pg_query(sql,
	                      "SELECT pubinsert, pubupdate, pubdelete, pubtruncate"
	                      " FROM pg_catalog.pg_publication WHERE pubname = $1",
	                      1, params, &res, "cannot read what the publication publishes");
	if (status != PG_OK)
		return status;
	unsigned have = 0;
	bool truncate = false;
	if (PQntuples(res) > 0) {
		static const unsigned bits[] = { ROUTE_CHANGE_INSERT, ROUTE_CHANGE_UPDATE,
			                         ROUTE_CHANGE_DELETE };
		for (int i = 0; i < 3; i++)
			if (PQgetvalue(res, 0, i)[0] == 't')
				have |= bits[i];
		truncate = PQgetvalue(res, 0, 3)[0] == 't';
	}
	PQclear(res);
	unsigned wanted = wanted_changes(cfg);
	if (!(wanted & ~have))
		return PG_OK;
	struct buf q = BUF_INIT, publish = BUF_INIT;
	append_publish(&publish, have | wanted, truncate);
	buf_puts(&q, "ALTER PUBLICATION ");
	pg_append_identifier(&q, sql, cfg->source.publication);
	buf_printf(&q, " SET (publish = '%s')", publish.data);
	if (!cfg->source.create_publication) {
		log_error("the publication does not publish every change the routes publish and"
		          " create_publication is false: run the SQL given as the publication's owner",
		          "publication", cfg->source.publication, "publish", publish.data, "sql", q.data);
		status = PG_CONFIG;
	} else {
		status = pg_exec(sql, q.data, "cannot change what the publication publishes");
		if (status == PG_OK)
			log_info("the publication publishes what the routes need", "publication",
			         cfg->source.publication, "publish", publish.data);
	}
	buf_finish(&publish);
	buf_finish(&q);
	return status;
}

/* ---- row filters and column lists (PostgreSQL 15) ---- */

#define FILTER_VERSION 150000

/* Whether the publication publishes updates or deletes, or will: the routes want them, or
 * it does already (the relay never narrows it; CREATE PUBLICATION's default has them). */
static int publishes_old_rows(PGconn *sql, const struct config *cfg, bool *yes)
{
	*yes = (wanted_changes(cfg) & (ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE)) != 0;
	if (*yes)
		return PG_OK;
	const char *params[] = { cfg->source.publication };
	PGresult *res;
	int status = pg_query(
	        sql, "SELECT pubupdate OR pubdelete FROM pg_catalog.pg_publication WHERE pubname = $1", 1,
	        params, &res, "cannot read what the publication publishes");
	if (status == PG_OK) {
		*yes = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
	}
	return status;
}

/* Runs query, whose $1 is the publication and $2 the route's table (its quoted name, left in
 * *name for messages when name is not NULL): what the publication holds of the table. */
static int query_published_table(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                                 const char *query, const char *what, PGresult **res, struct buf *name)
{
	struct buf table = BUF_INIT;
	append_table(&table, sql, rc);
	const char *params[] = { cfg->source.publication, table.data };
	int status = pg_query(sql, query, 2, params, res, what);
	if (name)
		*name = table;
	else
		buf_finish(&table);
	return status;
}

/* With updates or deletes published, PostgreSQL refuses a table's UPDATEs and DELETEs when
 * its row filter reads a column outside the replica identity: checked against the filter as
 * the publication holds it (its node tree's column numbers), before that is committed. The
 * column list's side is checked with the routes (check_filter_columns). */
static int check_filter_identity(PGconn *sql, const struct config *cfg, const struct route_config *rc)
{
	bool old_rows = false;
	int status = rc->row_filter ? publishes_old_rows(sql, cfg, &old_rows) : PG_OK;
	if (status != PG_OK || !old_rows)
		return status;
	struct buf name = BUF_INIT;
	PGresult *res;
	status = query_published_table(
	        sql, cfg, rc,
	        "SELECT DISTINCT a.attname FROM pg_catalog.pg_publication_rel pr"
	        " JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid"
	        " JOIN pg_catalog.pg_class t ON t.oid = pr.prrelid"
	        " CROSS JOIN LATERAL pg_catalog.regexp_matches(pr.prqual::text, ':varattno (\\d+) ', 'g') m"
	        " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = m[1]::int2"
	        " LEFT JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND CASE t.relreplident"
	        " WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END"
	        " WHERE p.pubname = $1 AND pr.prrelid = pg_catalog.to_regclass($2) AND t.relreplident <> 'f'"
	        " AND NOT coalesce(a.attnum = ANY (i.indkey), false)",
	        "cannot read the columns of a row filter", &res, &name);
	if (status == PG_OK && PQntuples(res) > 0) {
		char problem[768];
		snprintf(problem, sizeof problem,
		         "routes[].where of %s.%s reads column \"%s\", which is not in the table's"
		         " replica identity: the publication publishes updates and deletes, and"
		         " PostgreSQL would refuse the table's UPDATEs and DELETEs; filter on key"
		         " columns only, or run ALTER TABLE %s REPLICA IDENTITY FULL",
		         rc->schema, rc->table, PQgetvalue(res, 0, 0), name.data);
		log_error("the configuration does not match the database", "error", problem);
		status = PG_CONFIG;
	}
	if (status == PG_OK || status == PG_CONFIG)
		PQclear(res);
	buf_finish(&name);
	return status;
}

static int check_filters_identity(PGconn *sql, const struct config *cfg, const struct route_config *only)
{
	int status = PG_OK;
	for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
		if ((!only || &cfg->routes[i] == only) && cfg->routes[i].table)
			status = check_filter_identity(sql, cfg, &cfg->routes[i]);
	return status;
}

/* PostgreSQL's text of the table's row filter in the publication; NULL when it has none. */
static int read_row_filter(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                           char **filter)
{
	PGresult *res;
	int status =
	        query_published_table(sql, cfg, rc,
	                              "SELECT pg_catalog.pg_get_expr(pr.prqual, pr.prrelid)"
	                              " FROM pg_catalog.pg_publication_rel pr"
	                              " JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid"
	                              " WHERE p.pubname = $1 AND pr.prrelid = pg_catalog.to_regclass($2)",
	                              "cannot read a row filter of the publication", &res, NULL);
	*filter = NULL;
	if (status != PG_OK)
		return status;
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		*filter = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return PG_OK;
}

static int rollback(PGconn *sql, int status)
{
	int end = pg_exec(sql, "ROLLBACK", "cannot roll back a change of the publication");
	return status != PG_OK ? status : end;
}

/* Runs statements that change the publication in one transaction, which commits only when
 * no row filter would have PostgreSQL refuse UPDATEs and DELETEs (rc: that route's; NULL:
 * every route's). With same_as: only when the table's row filter, as PostgreSQL writes it,
 * is no longer that text (*changed says which). A duplicate table (the event trigger was
 * quicker) is no error. */
static int apply_checked(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                         const char *statements, const char *what, const char *same_as, bool *changed)
{
	struct buf q = BUF_INIT;
	buf_printf(&q, "BEGIN; %s", statements);
	PGresult *res = pg_await(sql, PQsendQuery(sql, q.data), what);
	buf_finish(&q);
	if (changed)
		*changed = false;
	if (!res)
		return PG_RETRY;
	int status = PG_OK;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		bool duplicate = state && strcmp(state, "42710") == 0;
		status = duplicate ? PG_OK : pg_failure(sql, res, what);
		PQclear(res);
		return rollback(sql, status);
	}
	PQclear(res);
	if (same_as && rc) {
		char *now = NULL;
		status = read_row_filter(sql, cfg, rc, &now);
		bool same = status == PG_OK && now && strcmp(now, same_as) == 0;
		free(now);
		if (status != PG_OK || same)
			return rollback(sql, status);
	}
	status = check_filters_identity(sql, cfg, rc);
	if (status != PG_OK)
		return rollback(sql, status);
	if (changed)
		*changed = true;
	return pg_exec(sql, "COMMIT", what);
}

/* The configured filter and PostgreSQL's text of it (NULL: none) say the same, as far as
 * text tells: equal, or equal but for the outer parentheses PostgreSQL adds. */
static bool filter_text_equal(const char *have, const char *want)
{
	if (!have || !want)
		return !have && !want;
	size_t hl = strlen(have), wl = strlen(want);
	return strcmp(have, want) == 0 ||
	       (hl == wl + 2 && have[0] == '(' && have[hl - 1] == ')' && strncmp(have + 1, want, wl) == 0);
}

/* Whether the publication's column list for the table (rows of attname, the first column
 * saying whether there is a list) is the route's. */
static bool column_list_equal(const PGresult *res, const struct route_config *rc)
{
	if (PQgetvalue(res, 0, 0)[0] != 't')
		return rc->ncolumns == 0;
	size_t n = 0;
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetisnull(res, r, 2))
			continue;
		bool found = false;
		for (size_t i = 0; i < rc->ncolumns && !found; i++)
			found = strcmp(rc->columns[i], PQgetvalue(res, r, 2)) == 0;
		if (!found)
			return false;
		n++;
	}
	return n == rc->ncolumns;
}

/* A routed table in an existing publication has the route's column list and row filter:
 * if not, it is dropped from the publication and added again with them in one transaction,
 * so that no change falls between; with create_publication false, exit 78 with the SQL. */
static int ensure_filters(PGconn *sql, const struct config *cfg, const struct route_config *rc)
{
	if (PQserverVersion(sql) < FILTER_VERSION)
		return PG_OK; /* check_route refused where and columns */
	PGresult *res;
	int status = query_published_table(
	        sql, cfg, rc,
	        "SELECT pr.prattrs IS NOT NULL, pg_catalog.pg_get_expr(pr.prqual, pr.prrelid),"
	        " a.attname FROM pg_catalog.pg_publication_rel pr"
	        " JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid"
	        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid"
	        " AND a.attnum = ANY (pr.prattrs)"
	        " WHERE p.pubname = $1 AND pr.prrelid = pg_catalog.to_regclass($2)",
	        "cannot read the publication's filters", &res, NULL);
	if (status != PG_OK)
		return status;
	if (PQntuples(res) == 0) {
		PQclear(res);
		if (!has_filters(rc))
			return PG_OK;
		log_error("the publication covers a routed table without naming it (FOR ALL TABLES or"
		          " FOR TABLES IN SCHEMA), and cannot give it the route's where or columns: name"
		          " the tables in the publication (FOR TABLE)",
		          "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table);
		return PG_CONFIG;
	}
	char *have = PQgetisnull(res, 0, 1) ? NULL : xstrdup(PQgetvalue(res, 0, 1));
	bool columns_same = column_list_equal(res, rc);
	PQclear(res);
	bool filter_same = filter_text_equal(have, rc->row_filter);
	if (columns_same && filter_same) {
		free(have);
		return check_filter_identity(sql, cfg, rc);
	}
	struct buf q = BUF_INIT;
	buf_puts(&q, "ALTER PUBLICATION ");
	pg_append_identifier(&q, sql, cfg->source.publication);
	buf_puts(&q, " DROP TABLE ");
	append_table(&q, sql, rc);
	buf_puts(&q, "; ");
	begin_add_table(&q, sql, cfg);
	append_table_spec(&q, sql, rc);
	if (!cfg->source.create_publication) {
		struct buf shown = BUF_INIT;
		buf_printf(&shown, "BEGIN; %s; COMMIT", q.data);
		log_error("the publication's column list or row filter for a routed table is not the"
		          " route's and create_publication is false: run the SQL given as the"
		          " publication's owner (the row filter is compared as PostgreSQL writes it:"
		          " pg_publication_tables.rowfilter)",
		          "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table,
		          "rowfilter", have ? have : "", "sql", shown.data);
		buf_finish(&shown);
		status = PG_CONFIG;
	} else {
		/* Only the filter's text differs: PostgreSQL's own text of the route's filter says
		 * whether it is a change. */
		const char *same_as = columns_same && have && rc->row_filter ? have : NULL;
		bool changed = false;
		status = apply_checked(sql, cfg, rc, q.data,
		                       "cannot change a table's filters in the publication", same_as,
		                       &changed);
		if (status == PG_OK && changed)
			log_info("the publication's column list and row filter for a routed table are the"
			         " route's",
			         "publication", cfg->source.publication, "schema", rc->schema, "table",
			         rc->table);
	}
	buf_finish(&q);
	free(have);
	return status;
}

static int create_publication(PGconn *sql, const struct config *cfg)
{
	struct buf q = BUF_INIT;
	buf_puts(&q, "CREATE PUBLICATION ");
	pg_append_identifier(&q, sql, cfg->source.publication);
	/* With message routes only, the publication stays empty: messages need none. */
	bool first = true;
	int status = PG_OK;
	for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++) {
		const struct route_config *rc = &cfg->routes[i];
		struct routed_state st;
		if (!rc->table || !first_of_table(cfg, i))
			continue;
		/* A table the event trigger adds when it is created cannot be named yet. */
		status = routed_state(sql, cfg, rc, &st);
		if (status == PG_OK && !st.exists && routed_covered(&st)) {
			routed_note_missing(cfg, rc);
			continue;
		}
		buf_puts(&q, first ? " FOR TABLE " : ", ");
		append_table_spec(&q, sql, rc);
		first = false;
	}
	buf_puts(&q, " WITH (publish = '");
	append_publish(&q, wanted_changes(cfg), false);
	buf_puts(&q, "')");
	if (status == PG_OK)
		status = apply_checked(sql, cfg, NULL, q.data, "cannot create the publication", NULL, NULL);
	buf_finish(&q);
	if (status == PG_OK)
		log_info("publication created", "publication", cfg->source.publication);
	return status;
}

/* A routed table is not in the publication and nothing puts it back: its rows are lost. */
static void report_left_publication(const struct config *cfg, const struct route_config *rc, bool exists)
{
	const char *created_again =
	        "a routed table is not in the publication: created again while no event trigger kept it"
	        " there (or taken out of the publication), its rows are not decoded and cannot be"
	        " published; the relay stops so that this is seen. Starting it again adds the table"
	        " back when create_publication is true; the rows written to it before then are lost";
	const char *dropped =
	        "a routed table left the publication (dropped) and no event trigger puts it back when"
	        " it is created again: the rows written to it before the relay's next start would not"
	        " be decoded; the relay stops so that this is seen. A superuser installs the event"
	        " trigger with the SQL file (see outbox-relay(8), ROUTED TABLES)";
	log_error(exists ? created_again : dropped, "publication", cfg->source.publication, "schema",
	          rc->schema, "table", rc->table, "sql_file", ROUTED_TABLES_SQL_FILE);
}

int catalog_check_publication(PGconn *sql, const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		struct routed_state st;
		if (!rc->table)
			continue;
		int status = routed_state(sql, cfg, rc, &st);
		if (status != PG_OK)
			return status;
		if (st.published) {
			routed_note_present(cfg, rc);
			continue;
		}
		/* Dropped, and the event trigger puts it back in the publication in the transaction
		 * that creates it again: no row written to it can be missed. */
		if (!st.exists && routed_covered(&st)) {
			routed_note_missing(cfg, rc);
			continue;
		}
		report_left_publication(cfg, rc, st.exists);
		return PG_FATAL;
	}
	return PG_OK;
}

static int extend_publication(PGconn *sql, const struct config *cfg, const struct route_config *rc)
{
	if (!cfg->source.create_publication) {
		log_error("the publication does not cover a routed table and create_publication is false",
		          "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table);
		return PG_FATAL;
	}
	struct buf q = BUF_INIT;
	begin_add_table(&q, sql, cfg);
	append_table_spec(&q, sql, rc);
	const char *what = "cannot add a table to the publication";
	if (has_filters(rc) && wanted_changes(cfg) != ROUTE_CHANGE_INSERT) {
		/* In a transaction, so that a filter PostgreSQL would refuse UPDATEs for is never
		 * committed. The event trigger's 42710 is not told apart here: the filters are
		 * compared next anyway. */
		int status = apply_checked(sql, cfg, rc, q.data, what, NULL, NULL);
		buf_finish(&q);
		return status;
	}
	PGresult *res = pg_await(sql, PQsendQuery(sql, q.data), what);
	buf_finish(&q);
	if (!res)
		return PG_RETRY;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	int status = PG_OK;
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		log_info("table added to publication", "publication", cfg->source.publication, "schema",
		         rc->schema, "table", rc->table);
	else if (!state || strcmp(state, "42710") != 0) /* 42710: the event trigger was quicker */
		status = pg_failure(sql, res, what);
	PQclear(res);
	return status;
}

/* A routed table that is not in the publication, before the relay adds it. */
static int add_missing_table(PGconn *sql, const struct config *cfg, const struct route_config *rc,
                             const struct routed_state *st)
{
	if (!st->exists && routed_covered(st)) {
		routed_note_missing(cfg, rc);
		return PG_OK; /* the event trigger adds it when it is created */
	}
	/* Listed: the relay published it before. It was dropped and created again while nothing
	 * kept it in the publication, and what was written to it since was not decoded. */
	if (st->exists && st->listed)
		log_warn("a routed table was created again while no event trigger kept it in the"
		         " publication: the rows written to it before it is added back are not decoded"
		         " and are not published",
		         "publication", cfg->source.publication, "schema", rc->schema, "table", rc->table,
		         "sql_file", ROUTED_TABLES_SQL_FILE);
	return extend_publication(sql, cfg, rc);
}

int catalog_ensure_publication(PGconn *sql, const struct config *cfg)
{
	bool exists;
	int status = publication_exists(sql, cfg->source.publication, &exists);
	if (status != PG_OK)
		return status;
	if (exists) {
		/* The states as the list was (whether the relay routed a table before), then the
		 * list: from the moment it names a table, the event trigger puts the table in the
		 * publication whenever it is created. Then what is still missing. */
		struct routed_state *st = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *st);
		for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
			if (cfg->routes[i].table)
				status = routed_state(sql, cfg, &cfg->routes[i], &st[i]);
		if (status == PG_OK)
			status = routed_list_update(sql, cfg);
		for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
			if (cfg->routes[i].table && !st[i].published)
				status = add_missing_table(sql, cfg, &cfg->routes[i], &st[i]);
		for (size_t i = 0; i < cfg->nroutes && status == PG_OK; i++)
			if (cfg->routes[i].table && st[i].exists && first_of_table(cfg, i))
				status = ensure_filters(sql, cfg, &cfg->routes[i]);
		free(st);
		if (status == PG_OK)
			status = ensure_publish(sql, cfg);
		if (status == PG_OK)
			status = publish_request_table(sql, cfg);
	} else if (cfg->source.create_publication) {
		/* The list after the publication: a row written before the publication exists
		 * breaks decoding for every slot created before it. */
		status = create_publication(sql, cfg);
		if (status == PG_OK)
			status = routed_list_update(sql, cfg);
		if (status == PG_OK)
			status = publish_request_table(sql, cfg);
	} else {
		log_error("the publication does not exist and create_publication is false", "publication",
		          cfg->source.publication);
		return PG_FATAL;
	}
	return status;
}

static int create_slot(PGconn *sql, const char *slot, lsn_t *confirmed)
{
	PGresult *res;
	const char *params[] = { slot };
	int status = pg_query(sql, "SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')", 1,
	                      params, &res, "cannot create the replication slot");
	if (status == PG_OK) {
		log_info("replication slot created", "slot", slot, "lsn", PQgetvalue(res, 0, 0));
		if (lsn_parse(PQgetvalue(res, 0, 0), confirmed) < 0)
			*confirmed = LSN_INVALID;
		PQclear(res);
	}
	return status;
}

static int check_slot_row(const PGresult *res, const char *slot, lsn_t *confirmed)
{
	const char *plugin = PQgetvalue(res, 0, 0);
	const char *wal_status = PQgetvalue(res, 0, 1);
	if (strcmp(plugin, "pgoutput") != 0) {
		log_error("the replication slot does not use pgoutput", "slot", slot, "plugin", plugin);
		return PG_FATAL;
	}
	if (strcmp(wal_status, "lost") == 0) {
		log_error("the replication slot is invalidated: the WAL it needed was removed and events are "
		          "lost;"
		          " drop the slot (SELECT pg_drop_replication_slot(...)) and the checkpoint row to "
		          "start afresh",
		          "slot", slot, "wal_status", wal_status);
		return PG_FATAL;
	}
	if (lsn_parse(PQgetvalue(res, 0, 2), confirmed) < 0)
		*confirmed = LSN_INVALID;
	return PG_OK;
}

/* The slot is gone but the checkpoint says it was used: whatever was committed after the
 * checkpoint and before a new slot would be created is lost. Say so with the way out. */
static void report_lost_slot(const struct config *cfg, lsn_t checkpoint_lsn)
{
	/* Both names are plain identifiers (the configuration accepts nothing else), so the SQL
	 * needs no quoting and can be pasted as it is. */
	char lsn[LSN_BUFLEN], accept[256];
	snprintf(accept, sizeof accept, "DELETE FROM %s.checkpoint WHERE slot_name = '%s'",
	         cfg->delivery.bookkeeping_schema, cfg->source.slot);
	log_error("the replication slot is missing but the checkpoint shows it was in use: events committed"
	          " after the checkpoint may be lost, so the relay does not create a new slot; to accept the "
	          "gap,"
	          " run the SQL given and start again",
	          "slot", cfg->source.slot, "checkpoint_lsn", lsn_format(checkpoint_lsn, lsn), "sql", accept);
}

static int ensure_slot(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *confirmed)
{
	PGresult *res;
	const char *slot = cfg->source.slot;
	const char *params[] = { slot };
	int status =
	        pg_query(sql,
	                 "SELECT plugin, coalesce(wal_status, ''), coalesce(confirmed_flush_lsn, '0/0')::text"
	                 " FROM pg_replication_slots"
	                 " WHERE slot_name = $1 AND slot_type = 'logical' AND database = current_database()",
	                 1, params, &res, "cannot look up the replication slot");
	if (status != PG_OK)
		return status;
	bool exists = PQntuples(res) > 0;
	if (exists)
		status = check_slot_row(res, slot, confirmed);
	PQclear(res);
	if (exists)
		return status;
	if (checkpoint_lsn != LSN_INVALID) {
		report_lost_slot(cfg, checkpoint_lsn);
		return PG_FATAL;
	}
	if (!cfg->source.create_slot) {
		log_error("the replication slot does not exist and create_slot is false", "slot", slot);
		return PG_FATAL;
	}
	return create_slot(sql, slot, confirmed);
}

int catalog_prepare(PGconn *sql, const struct config *cfg, lsn_t checkpoint_lsn, lsn_t *slot_confirmed)
{
	/* The publication first: pgoutput reads it through the snapshot of the WAL being
	 * decoded, so a slot older than its publication cannot decode. */
	int status = routed_prepare(sql, cfg);
	if (status == PG_OK)
		status = catalog_ensure_publication(sql, cfg);
	if (status != PG_OK)
		return status;
	*slot_confirmed = LSN_INVALID;
	return ensure_slot(sql, cfg, checkpoint_lsn, slot_confirmed);
}

/* ---- routed tables against the catalog ---- */

struct route_check {
	const struct config *cfg;
	size_t route;
	const char *table; /* "schema.table" as written in errors */
	PGresult *columns; /* attname of every live column */
	int missing;
};

static void report_route_problem(const struct route_check *c, const char *key, const char *problem)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	char where[2048]; /* the file, the key and a problem of up to 1024 bytes */
	snprintf(where, sizeof where, "%s:%d:%d: routes[%zu].%s: %s", c->cfg->path, rc->line, rc->column,
	         c->route, key, problem);
	log_error("the configuration does not match the database", "error", where);
}

static void check_column(void *ctx, const char *key, const char *column)
{
	struct route_check *c = ctx;
	for (int i = 0; i < PQntuples(c->columns); i++)
		if (strcmp(PQgetvalue(c->columns, i, 0), column) == 0)
			return;
	char problem[256];
	snprintf(problem, sizeof problem, "column \"%s\" does not exist in %s", column, c->table);
	report_route_problem(c, key, problem);
	c->missing++;
}

/* cleanup: delete tells rows apart by the replica identity that pgoutput flags (cleanup.h):
 * the primary key, or a unique index of NOT NULL columns. False, with what is wrong in
 * problem, for a table without one. */
static bool identity_fits(const char *identity, bool primary_key, const char *table, char *problem, size_t n)
{
	if ((identity[0] == 'd' && primary_key) || identity[0] == 'i')
		return true;
	if (identity[0] == 'd')
		snprintf(problem, n, "delete needs a primary key to tell rows apart, and %s has none", table);
	else
		snprintf(problem, n,
		         "delete tells rows apart by the replica identity, and %s has REPLICA IDENTITY"
		         " %s: set it to DEFAULT (the primary key)",
		         table, identity[0] == 'f' ? "FULL" : "NOTHING");
	return false;
}

/* The table can say which row an event came from, and the relay may delete it: a missing
 * DELETE privilege is a refusal like any other (no rows go: the condition is false). */
static int check_cleanup(PGconn *sql, struct route_check *c)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	const char *params[] = { rc->schema, rc->table };
	PGresult *res;
	int status = pg_query(
	        sql,
	        "SELECT t.relreplident, EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
	        " WHERE i.indrelid = t.oid AND i.indisprimary)"
	        " FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace"
	        " WHERE n.nspname = $1 AND t.relname = $2",
	        2, params, &res, "cannot read the routed table's replica identity");
	if (status != PG_OK)
		return status;
	char problem[256];
	bool fits = !PQntuples(res) || identity_fits(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)[0] == 't',
	                                             c->table, problem, sizeof problem);
	PQclear(res);
	if (!fits) {
		report_route_problem(c, "cleanup", problem);
		c->missing++;
		return PG_OK;
	}
	struct buf q = BUF_INIT;
	buf_puts(&q, "DELETE FROM ");
	append_table(&q, sql, rc);
	buf_puts(&q, " WHERE false");
	status = pg_exec(sql, q.data, "cannot delete from a routed table (cleanup: delete)");
	buf_finish(&q);
	return status;
}

/* ---- replica identity: what an UPDATE or DELETE carries of the old row (doc/design.md
 * §5) ---- */

/* Columns of the identity query, one row per column of the table. */
enum identity_column {
	ID_REPLIDENT, /* pg_class.relreplident: d, i, f or n */
	ID_HAS_INDEX, /* the primary key (d) or the USING INDEX index (i) exists */
	ID_NAME,
	ID_KEY,       /* the column is in that index */
	ID_TOASTABLE, /* its values may be stored out of line */
};

struct identity_check {
	struct route_check *c;
	PGconn *sql;
	PGresult *res;
	char fix[300];  /* ALTER TABLE ... REPLICA IDENTITY FULL */
	char keys[200]; /* the key columns, "a, b" */
};

static bool identity_flag(const struct identity_check *ic, int row, enum identity_column col)
{
	return PQgetvalue(ic->res, row, col)[0] == 't';
}

static int identity_row(const struct identity_check *ic, const char *column)
{
	for (int i = 0; i < PQntuples(ic->res); i++)
		if (strcmp(PQgetvalue(ic->res, i, ID_NAME), column) == 0)
			return i;
	return -1;
}

/* A name as SQL takes it: plain when it is a lower-case identifier, else quoted. */
static void append_sql_name(struct buf *b, PGconn *sql, const char *name)
{
	bool plain = (*name >= 'a' && *name <= 'z') || *name == '_';
	for (const char *p = name; *p && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	if (plain)
		buf_puts(b, name);
	else
		pg_append_identifier(b, sql, name);
}

static void identity_fix(struct identity_check *ic, const struct route_config *rc)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "ALTER TABLE ");
	append_sql_name(&b, ic->sql, rc->schema);
	buf_putc(&b, '.');
	append_sql_name(&b, ic->sql, rc->table);
	buf_puts(&b, " REPLICA IDENTITY FULL");
	snprintf(ic->fix, sizeof ic->fix, "%s", b.data);
	buf_finish(&b);
	size_t used = 0;
	ic->keys[0] = '\0';
	for (int i = 0; i < PQntuples(ic->res) && used < sizeof ic->keys; i++)
		if (identity_flag(ic, i, ID_KEY))
			used += (size_t)snprintf(ic->keys + used, sizeof ic->keys - used, "%s%s",
			                         used ? ", " : "", PQgetvalue(ic->res, i, ID_NAME));
}

static void identity_problem(struct identity_check *ic, const char *key, const char *problem)
{
	report_route_problem(ic->c, key, problem);
	ic->c->missing++;
}

/* A table without a usable replica identity: nothing of the old row is carried, and
 * PostgreSQL refuses UPDATE and DELETE on it once the publication publishes them. */
static void check_identity_exists(struct identity_check *ic, const struct route_config *rc)
{
	char ident = PQgetvalue(ic->res, 0, ID_REPLIDENT)[0];
	const char *what = ident == 'n'   ? "REPLICA IDENTITY NOTHING"
	                   : ident == 'i' ? "no replica identity index"
	                                  : "no primary key";
	char problem[1024];
	if (rc->changes & (ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE)) {
		snprintf(problem, sizeof problem,
		         "%s has %s: an UPDATE or DELETE carries nothing of the old row, and PostgreSQL"
		         " refuses both once the publication publishes them; give it a primary key or run"
		         " %s",
		         ic->c->table, what, ic->fix);
		identity_problem(ic, "changes", problem);
	} else {
		snprintf(problem, sizeof problem,
		         "the publication publishes updates and deletes for other routes, and %s has %s:"
		         " PostgreSQL would refuse UPDATE and DELETE on it; give it a primary key or run %s",
		         ic->c->table, what, ic->fix);
		identity_problem(ic, "table", problem);
	}
}

/* A DELETE, and an UPDATE that moves a row, must say which topic to clear: every column of
 * the topic in the replica identity. */
static void check_topic_column(void *ctx, const char *key, const char *column)
{
	struct identity_check *ic = ctx;
	int row = identity_row(ic, column);
	if (strcmp(key, "topic") != 0 || row < 0 || identity_flag(ic, row, ID_KEY))
		return;
	char problem[1024];
	snprintf(problem, sizeof problem,
	         "column \"%s\" is not in the replica identity of %s (%s): a DELETE, or an UPDATE"
	         " that changes it, does not carry its old value, so its old topic could not be"
	         " cleared; run %s, or build the topic from key columns only",
	         column, ic->c->table, ic->keys, ic->fix);
	identity_problem(ic, key, problem);
}

static void report_toast(struct identity_check *ic, const char *key, const char *column, bool row)
{
	char problem[1024];
	snprintf(problem, sizeof problem,
	         "%scolumn \"%s\" of %s may be stored out of line (TOAST), and an UPDATE that leaves"
	         " it unchanged carries its value only with REPLICA IDENTITY FULL; run %s, or leave"
	         " update out of changes",
	         row ? "payload: row and envelope need every column of an updated row, and " : "", column,
	         ic->c->table, ic->fix);
	identity_problem(ic, key, problem);
}

/* A column an UPDATE's message reads, besides the topic (checked above) and the id (not
 * used by updates), must come with every UPDATE. */
static void check_toast_column(void *ctx, const char *key, const char *column)
{
	struct identity_check *ic = ctx;
	int row = identity_row(ic, column);
	if (strcmp(key, "topic") == 0 || strcmp(key, "event_id") == 0 || row < 0 ||
	    identity_flag(ic, row, ID_KEY) || !identity_flag(ic, row, ID_TOASTABLE))
		return;
	report_toast(ic, key, column, false);
}

static void check_toast_row(struct identity_check *ic)
{
	for (int i = 0; i < PQntuples(ic->res); i++) {
		if (!identity_flag(ic, i, ID_KEY) && identity_flag(ic, i, ID_TOASTABLE)) {
			report_toast(ic, "payload", PQgetvalue(ic->res, i, ID_NAME), true);
			return;
		}
	}
}

/* When any route publishes updates or deletes: the table has a replica identity; and for
 * a route that publishes them itself, without REPLICA IDENTITY FULL, its topic comes from
 * key columns and an UPDATE carries every column its messages read. */
static int check_identity(PGconn *sql, struct route_check *c, const struct outbox *o)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	const char *params[] = { rc->schema, rc->table };
	struct identity_check ic = { .c = c, .sql = sql };
	int status = pg_query(
	        sql,
	        "SELECT t.relreplident, i.indexrelid IS NOT NULL, a.attname,"
	        " coalesce(a.attnum = ANY (i.indkey), false),"
	        " a.attlen = -1 AND a.attstorage <> 'p' AND a.attgenerated = ''"
	        " FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace"
	        " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0"
	        " AND NOT a.attisdropped"
	        " LEFT JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND CASE t.relreplident"
	        " WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END"
	        " WHERE n.nspname = $1 AND t.relname = $2 ORDER BY a.attnum",
	        2, params, &ic.res, "cannot read the routed table's replica identity");
	if (status != PG_OK)
		return status;
	if (PQntuples(ic.res) == 0) {
		PQclear(ic.res);
		return PG_OK;
	}
	identity_fix(&ic, rc);
	char ident = PQgetvalue(ic.res, 0, ID_REPLIDENT)[0];
	if (ident != 'f' && !identity_flag(&ic, 0, ID_HAS_INDEX)) {
		check_identity_exists(&ic, rc);
	} else if (ident != 'f' && (rc->changes & (ROUTE_CHANGE_UPDATE | ROUTE_CHANGE_DELETE))) {
		outbox_route_columns(o, c->route, check_topic_column, &ic);
		bool row = rc->payload_column && (strcmp(rc->payload_column, "row") == 0 ||
		                                  strcmp(rc->payload_column, "envelope") == 0);
		if ((rc->changes & ROUTE_CHANGE_UPDATE) && row)
			check_toast_row(&ic);
		if (rc->changes & ROUTE_CHANGE_UPDATE)
			outbox_route_columns(o, c->route, check_toast_column, &ic);
	}
	PQclear(ic.res);
	return PG_OK;
}

/* ---- where and columns against the table ---- */

static void check_listed_column(void *ctx, const char *key, const char *column)
{
	struct route_check *c = ctx;
	const struct route_config *rc = &c->cfg->routes[c->route];
	for (size_t i = 0; i < rc->ncolumns; i++)
		if (strcmp(rc->columns[i], column) == 0)
			return;
	char problem[512];
	snprintf(problem, sizeof problem,
	         "column \"%s\" is read by routes[%zu].%s but is not in columns: the publication would"
	         " not send it; add it to columns",
	         column, c->route, key);
	report_route_problem(c, "columns", problem);
	c->missing++;
}

/* With updates or deletes published, PostgreSQL refuses UPDATE and DELETE on a table whose
 * column list leaves out a column of its replica identity (every column with FULL). */
static int check_list_identity(PGconn *sql, struct route_check *c)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	const char *params[] = { rc->schema, rc->table };
	PGresult *res;
	int status = pg_query(sql,
	                      "SELECT a.attname, t.relreplident FROM pg_catalog.pg_class t"
	                      " JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace"
	                      " JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0"
	                      " AND NOT a.attisdropped"
	                      " LEFT JOIN pg_catalog.pg_index i ON i.indrelid = t.oid AND CASE t.relreplident"
	                      " WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END"
	                      " WHERE n.nspname = $1 AND t.relname = $2"
	                      " AND (t.relreplident = 'f' OR a.attnum = ANY (i.indkey)) ORDER BY a.attnum",
	                      2, params, &res, "cannot read the routed table's replica identity");
	if (status != PG_OK)
		return status;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *column = PQgetvalue(res, r, 0);
		bool listed = false;
		for (size_t i = 0; i < rc->ncolumns && !listed; i++)
			listed = strcmp(rc->columns[i], column) == 0;
		if (listed)
			continue;
		char problem[512];
		snprintf(problem, sizeof problem,
		         "column \"%s\" of the replica identity%s of %s is not in columns: the publication"
		         " publishes updates and deletes, and PostgreSQL would refuse the table's UPDATEs"
		         " and DELETEs; add it to columns",
		         column, PQgetvalue(res, r, 1)[0] == 'f' ? " (FULL: every column)" : "", c->table);
		report_route_problem(c, "columns", problem);
		c->missing++;
		break;
	}
	PQclear(res);
	return PG_OK;
}

static int check_filters(PGconn *sql, struct route_check *c, const struct outbox *o)
{
	const struct route_config *rc = &c->cfg->routes[c->route];
	if (!has_filters(rc))
		return PG_OK;
	if (PQserverVersion(sql) < FILTER_VERSION) {
		char problem[256];
		snprintf(problem, sizeof problem,
		         "a row filter or column list of a publication needs PostgreSQL 15 or later, and"
		         " the server is older");
		report_route_problem(c, rc->row_filter ? "where" : "columns", problem);
		c->missing++;
		return PG_OK;
	}
	if (!rc->ncolumns)
		return PG_OK;
	for (size_t i = 0; i < rc->ncolumns; i++)
		check_column(c, "columns", rc->columns[i]);
	if (c->missing)
		return PG_OK;
	outbox_route_columns(o, c->route, check_listed_column, c);
	bool old_rows = false;
	int status = c->missing ? PG_OK : publishes_old_rows(sql, c->cfg, &old_rows);
	if (status != PG_OK || c->missing || !old_rows)
		return status;
	return check_list_identity(sql, c);
}

static int check_route(PGconn *sql, const struct config *cfg, const struct outbox *o, size_t i, int *missing)
{
	const struct route_config *rc = &cfg->routes[i];
	const char *params[] = { rc->schema, rc->table };
	char table[2 * 64 + 2];
	struct route_check c = { cfg, i, table, NULL, 0 };
	snprintf(table, sizeof table, "%s.%s", rc->schema, rc->table);
	int status = pg_query(sql,
	                      "SELECT a.attname FROM pg_catalog.pg_attribute a"
	                      " JOIN pg_catalog.pg_class t ON t.oid = a.attrelid"
	                      " JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace"
	                      " WHERE n.nspname = $1 AND t.relname = $2 AND t.relkind IN ('r', 'p')"
	                      " AND a.attnum > 0 AND NOT a.attisdropped",
	                      2, params, &c.columns, "cannot read the routed table's columns");
	if (status != PG_OK)
		return status;
	struct routed_state st = { 0 };
	if (PQntuples(c.columns) == 0)
		status = routed_state(sql, cfg, rc, &st);
	if (status != PG_OK) {
		PQclear(c.columns);
		return status;
	}
	if (PQntuples(c.columns) == 0 && !st.exists && routed_covered(&st)) {
		/* Dropped, perhaps for a moment: the event trigger puts it back in the publication
		 * when it is created again. */
		routed_note_missing(cfg, rc);
	} else if (PQntuples(c.columns) == 0) {
		char problem[256];
		snprintf(problem, sizeof problem, "table %s does not exist (or is not a table)", table);
		report_route_problem(&c, "table", problem);
		c.missing++;
	} else {
		outbox_route_columns(o, i, check_column, &c);
		if (!c.missing)
			status = check_filters(sql, &c, o);
		if (status == PG_OK && rc->cleanup == CLEANUP_DELETE)
			status = check_cleanup(sql, &c);
		if (status == PG_OK && !c.missing && wanted_changes(cfg) != ROUTE_CHANGE_INSERT)
			status = check_identity(sql, &c, o);
	}
	PQclear(c.columns);
	*missing += c.missing;
	return status;
}

int catalog_check_routes(PGconn *sql, const struct config *cfg, const struct outbox *o)
{
	int missing = 0;
	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (!cfg->routes[i].table)
			continue;
		int status = check_route(sql, cfg, o, i, &missing);
		if (status != PG_OK)
			return status;
	}
	return missing ? PG_CONFIG : PG_OK;
}

/* ---- domains ---- */

int catalog_load_domains(PGconn *sql, struct typemap *t)
{
	PGresult *res;
	int status = pg_query(sql, "SELECT oid, typbasetype FROM pg_catalog.pg_type WHERE typtype = 'd'", 0,
	                      NULL, &res, "cannot read the domain types");
	if (status != PG_OK)
		return status;
	size_t n = (size_t)PQntuples(res);
	struct typemap_domain *domains = xcalloc(n ? n : 1, sizeof *domains);
	for (size_t i = 0; i < n; i++) {
		/* oid is unsigned 32-bit text; strtoul covers it on every platform we build for. */
		domains[i].oid = (uint32_t)strtoul(PQgetvalue(res, (int)i, 0), NULL, 10);
		domains[i].base = (uint32_t)strtoul(PQgetvalue(res, (int)i, 1), NULL, 10);
	}
	PQclear(res);
	typemap_set_domains(t, domains, n);
	free(domains);
	char count[24];
	snprintf(count, sizeof count, "%zu", n);
	log_debug("domain types read", LOG_NUMBER("domains"), count);
	return PG_OK;
}

/* ---- the server's WAL position ---- */

int catalog_wal_position(PGconn *sql, lsn_t *lsn)
{
	PGresult *res;
	int status = pg_query(sql,
	                      "SELECT CASE WHEN pg_catalog.pg_is_in_recovery()"
	                      " THEN pg_catalog.pg_last_wal_replay_lsn()"
	                      " ELSE pg_catalog.pg_current_wal_flush_lsn() END::text",
	                      0, NULL, &res, "cannot read the server's WAL position");
	if (status != PG_OK)
		return status;
	if (PQgetisnull(res, 0, 0) || lsn_parse(PQgetvalue(res, 0, 0), lsn) < 0)
		*lsn = LSN_INVALID;
	PQclear(res);
	return PG_OK;
}
