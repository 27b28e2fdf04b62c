#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "buf.h"
#include "catalog.h"
#include "exit_status.h"
#include "log.h"
#include "pgconn.h"
#include "util.h"

#define POLL_MS 500         /* --wait reads the request's row this often */
#define PLAIN_EVERY_MS 2000 /* --wait, not on a terminal: at most one line this often */
#define RECONNECT_MIN_MS 250
#define RECONNECT_MAX_MS 5000
#define ANSWER_TIMEOUT_MS 10000 /* a server silent this long is taken for gone */
#define IDS_SHOWN 5             /* a re-drive's ids named in a line; the others counted */
#define PURPOSE "requests"      /* the connection's purpose in messages */

/* ---- the command line ---- */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("outbox-relay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A dead letter's id: decimal digits, a bigint above 0. */
static bool parse_id(const char *text, size_t len, int64_t *out)
{
	int64_t v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9' || v > (INT64_MAX - (text[i] - '0')) / 10)
			return false;
		v = v * 10 + (text[i] - '0');
	}
	*out = v;
	return v > 0;
}

int client_add_ids(struct client_options *o, const char *text)
{
	const char *p = text;
	o->ids_given = true;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int64_t id;
		if (!parse_id(p, len, &id)) {
			usage_error(
			        "--id: expected a dead letter's id, a positive integer, or a comma-separated"
			        " list of them; got \"%s\"",
			        text);
			return -1;
		}
		o->ids = xrealloc(o->ids, (o->nids + 1) * sizeof *o->ids);
		o->ids[o->nids++] = id;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static bool blank(const char *s)
{
	return s[strspn(s, " \t\r\n")] == '\0';
}

int client_check_options(const struct client_options *o)
{
	if (o->ncommands > 1) {
		usage_error("--backfill, --redrive and --requests exclude each other: give one, once");
	} else if (o->command == CLIENT_BACKFILL && blank(o->route)) {
		usage_error("--backfill: expected a routed table, schema.table or table");
	} else if (o->where && o->command != CLIENT_BACKFILL) {
		usage_error("--where goes with --backfill");
	} else if (o->where && blank(o->where)) {
		usage_error("--where: expected an SQL condition on the table's rows");
	} else if (o->ids_given && o->command != CLIENT_REDRIVE) {
		usage_error("--id goes with --redrive");
	} else if (o->wait && o->command != CLIENT_BACKFILL && o->command != CLIENT_REDRIVE) {
		usage_error("--wait goes with --backfill or --redrive");
	} else {
		return 0;
	}
	return -1;
}

void client_options_finish(struct client_options *o)
{
	free(o->ids);
	o->ids = NULL;
	o->nids = 0;
}

/* ---- text for the terminal ---- */

/* Appends s with control characters as spaces: a route or an error from the table must not
 * move the cursor or break a line. */
static void put_clean(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		buf_putc(b, *p < 0x20 || *p == 0x7f ? ' ' : (char)*p);
}

/* Columns a UTF-8 string takes: one per character. */
static size_t text_width(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += (*p & 0xc0) != 0x80;
	return n;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* ---- failures ---- */

/* Says what was not done and why; the pgconn functions logged the detail, but for a
 * refusal, reported here. */
static int give_up(int status, const char *not_done, const char *why)
{
	if (status == PG_REFUSED) {
		pg_report_refusal(LOG_ERROR, "PostgreSQL refused the connection", NULL, NULL);
		why = pg_refusal_summary();
	}
	fprintf(stderr, "outbox-relay: %s: %s\n", not_done, why);
	return EXIT_FATAL;
}

/* "schema".request, for a query. */
static void append_table(struct buf *q, PGconn *sql, const struct config *cfg)
{
	pg_append_identifier(q, sql, cfg->delivery.bookkeeping_schema);
	buf_puts(q, ".request");
}

static int64_t int_value(const PGresult *res, int row, int column)
{
	return strtoll(PQgetvalue(res, row, column), NULL, 10);
}

/* Runs an INSERT ... RETURNING id: EXIT_CLEAN with the new request's id in *id, or
 * EXIT_FATAL having said why. */
static int queue(PGconn *sql, const char *q, int n, const char *const *params, int64_t *id)
{
	PGresult *res;
	int status = pg_query(sql, q, n, params, &res, "cannot insert the request");
	if (status == PG_OK) {
		*id = int_value(res, 0, 0);
		PQclear(res);
		return EXIT_CLEAN;
	}
	/* No answer: the server may have committed the row and lost only its answer. */
	if (status == PG_RETRY)
		return give_up(status, "request not confirmed",
		               "no answer to the insert; --requests shows whether it was queued");
	return give_up(status, "no request queued", "the insert into the request table failed");
}

/* ---- --wait ---- */

struct request_state {
	char state[16];
	int64_t done, total, refused;
	bool total_known;
	char *error; /* NULL: none */
};

static bool terminal_state(const struct request_state *s)
{
	return strcmp(s->state, "done") == 0 || strcmp(s->state, "failed") == 0;
}

static bool same_progress(const struct request_state *a, const struct request_state *b)
{
	return strcmp(a->state, b->state) == 0 && a->done == b->done && a->total_known == b->total_known &&
	       a->total == b->total && a->refused == b->refused;
}

/* "request 7 backfill public.outbox: running 41000/1000000 (4%)", with ", 2 refused" and, when
 * it failed, ": the error". */
static void format_state(struct buf *b, int64_t id, const char *what, const struct request_state *s)
{
	buf_printf(b, "request %" PRId64 " %s: ", id, what);
	put_clean(b, s->state);
	if (strcmp(s->state, "pending") != 0) {
		buf_printf(b, " %" PRId64, s->done);
		if (s->total_known)
			buf_printf(b, "/%" PRId64, s->total);
		if (s->total_known && s->total > 0 && s->done <= s->total)
			buf_printf(b, " (%d%%)", (int)((double)s->done * 100.0 / (double)s->total));
	}
	if (s->refused > 0)
		buf_printf(b, ", %" PRId64 " refused", s->refused);
	if (strcmp(s->state, "failed") == 0 && s->error) {
		buf_puts(b, ": ");
		put_clean(b, s->error);
	}
}

/* The line that follows a request: on a terminal, one line drawn again in place; elsewhere a
 * line when the numbers change, at most every PLAIN_EVERY_MS. */
struct progress {
	bool tty;
	size_t drawn; /* tty: the width of the line on the screen; 0: none */
	bool printed; /* not a tty: a line was printed, at printed_at, showing last */
	int64_t printed_at;
	struct request_state last;
};

/* The progress being drawn, for the logger to end its line before a record. */
static struct progress *drawing;

static void end_line(void)
{
	if (drawing && drawing->drawn) {
		fputc('\n', stdout);
		fflush(stdout);
		drawing->drawn = 0;
	}
}

static void draw(struct progress *p, const char *line)
{
	size_t width = text_width(line);
	fprintf(stdout, "\r%s", line);
	for (size_t i = width; i < p->drawn; i++)
		fputc(' ', stdout);
	fflush(stdout);
	p->drawn = width > 0 ? width : 1;
}

static void show(struct progress *p, const char *line, const struct request_state *s, int64_t now)
{
	if (p->tty) {
		draw(p, line);
		return;
	}
	if (p->printed && (same_progress(&p->last, s) || now - p->printed_at < PLAIN_EVERY_MS))
		return;
	printf("%s\n", line);
	fflush(stdout);
	p->printed = true;
	p->printed_at = now;
	p->last = *s;
	p->last.error = NULL; /* s's: only the numbers are compared */
}

static void finish(struct progress *p, const char *line)
{
	if (p->tty) {
		draw(p, line);
		end_line();
	} else {
		printf("%s\n", line);
		fflush(stdout);
	}
}

/* Reads the request's row into *s (found false when there is none). */
static int read_state(PGconn *sql, const struct config *cfg, int64_t id, struct request_state *s, bool *found)
{
	char id_text[24];
	snprintf(id_text, sizeof id_text, "%" PRId64, id);
	const char *params[] = { id_text };
	struct buf q = BUF_INIT;
	buf_puts(&q, "SELECT state, done, total, refused, error FROM ");
	append_table(&q, sql, cfg);
	buf_puts(&q, " WHERE id = $1");
	PGresult *res;
	int status = pg_query(sql, q.data, 1, params, &res, "cannot read the request");
	buf_finish(&q);
	if (status != PG_OK)
		return status;
	*found = PQntuples(res) > 0;
	free(s->error);
	s->error = NULL;
	if (*found) {
		snprintf(s->state, sizeof s->state, "%s", PQgetvalue(res, 0, 0));
		s->done = int_value(res, 0, 1);
		s->total_known = !PQgetisnull(res, 0, 2);
		s->total = s->total_known ? int_value(res, 0, 2) : 0;
		s->refused = int_value(res, 0, 3);
		s->error = PQgetisnull(res, 0, 4) ? NULL : xstrdup(PQgetvalue(res, 0, 4));
	}
	PQclear(res);
	return PG_OK;
}

/* Connects again after a lost connection, as long as it takes: the request lives on in the
 * table whatever happens to this client's session. */
static PGconn *reconnect(const struct config *cfg, struct backoff *b)
{
	for (;;) {
		int status;
		sleep_ms(backoff_next(b, (uint32_t)random()));
		PGconn *sql = pg_connect(cfg, false, PURPOSE, &status);
		if (sql) {
			log_info("connected to PostgreSQL again");
			return sql;
		}
		if (status == PG_REFUSED)
			pg_report_refusal(LOG_WARN, "PostgreSQL refused the connection; trying again", NULL,
			                  NULL);
	}
}

/* Follows request id until it is done (EXIT_CLEAN) or failed (EXIT_FATAL). */
static int follow(const struct config *cfg, PGconn **sql, int64_t id, const char *what)
{
	struct progress p = { .tty = isatty(STDOUT_FILENO) == 1 };
	struct request_state s = { .error = NULL };
	struct backoff b;
	struct buf line = BUF_INIT;
	int result = EXIT_FATAL;
	char id_text[24], not_done[64];
	snprintf(id_text, sizeof id_text, "%" PRId64, id);
	snprintf(not_done, sizeof not_done, "stopped following request %s", id_text);
	backoff_init(&b, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
	drawing = &p;
	log_set_before_write(end_line);
	for (;;) {
		bool found = false;
		int status = read_state(*sql, cfg, id, &s, &found);
		if (status == PG_RETRY) {
			log_warn("lost the connection to PostgreSQL; the request stays queued: connecting "
			         "again",
			         "request", id_text);
			PQfinish(*sql);
			*sql = reconnect(cfg, &b);
			continue;
		}
		backoff_reset(&b);
		if (status != PG_OK) {
			give_up(status, not_done, "cannot read the request");
			break;
		}
		if (!found) {
			end_line();
			fprintf(stderr, "outbox-relay: %s: it is no longer in the request table\n", not_done);
			break;
		}
		buf_reset(&line);
		format_state(&line, id, what, &s);
		if (terminal_state(&s)) {
			finish(&p, line.data);
			result = strcmp(s.state, "done") == 0 ? EXIT_CLEAN : EXIT_FATAL;
			break;
		}
		show(&p, line.data, &s, monotonic_ms());
		sleep_ms(POLL_MS);
	}
	end_line();
	log_set_before_write(NULL);
	drawing = NULL;
	buf_finish(&line);
	free(s.error);
	return result;
}

/* ---- the commands ---- */

static bool names_a_route(const struct config *cfg, const char *schema, const char *table)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct route_config *rc = &cfg->routes[i];
		if (rc->table && strcmp(rc->schema, schema) == 0 && strcmp(rc->table, table) == 0)
			return true;
	}
	return false;
}

/* Inserts a request (columns: its "(...) VALUES (...)" with n parameters), says so
 * ("request 7 queued: <kind> of <target>"), and with follow_as (its name in progress lines)
 * follows it to its end. An exit status. */
static int queue_and_follow(const struct config *cfg, PGconn **sql, const char *columns, int n,
                            const char *const *params, const char *kind, const char *target,
                            const char *follow_as)
{
	struct buf q = BUF_INIT;
	buf_puts(&q, "INSERT INTO ");
	append_table(&q, *sql, cfg);
	buf_printf(&q, " %s RETURNING id", columns);
	int64_t id = 0;
	int result = queue(*sql, q.data, n, params, &id);
	buf_finish(&q);
	if (result != EXIT_CLEAN)
		return result;
	printf("request %" PRId64 " queued: %s of %s\n", id, kind, target);
	fflush(stdout);
	return follow_as ? follow(cfg, sql, id, follow_as) : result;
}

/* --backfill ROUTE: the table as given, "public." before a bare name, as the file reads a
 * route's table. The relay checks it and fails the request, saying why, if it names no
 * route: the warning here is a courtesy. */
static int backfill(const struct config *cfg, PGconn **sql, const struct client_options *o)
{
	char *schema = NULL, *table = NULL;
	struct buf route = BUF_INIT, shown = BUF_INIT, what = BUF_INIT;
	bool known = false;
	if (config_table_name(o->route, &schema, &table)) {
		buf_printf(&route, "%s.%s", schema, table);
		known = names_a_route(cfg, schema, table);
	} else {
		buf_puts(&route, o->route);
	}
	free(schema);
	free(table);
	put_clean(&shown, route.data);
	buf_printf(&what, "backfill %s", shown.data);
	if (!known)
		fprintf(stderr,
		        "outbox-relay: warning: %s is not a table route of %s; the relay will fail the "
		        "request\n",
		        shown.data, cfg->path);

	const char *params[] = { cfg->source.slot, route.data, o->where };
	int result = queue_and_follow(
	        cfg, sql, "(slot_name, kind, route, where_clause) VALUES ($1, 'backfill', $2, $3)", 3, params,
	        "backfill", shown.data, o->wait ? what.data : NULL);
	buf_finish(&route);
	buf_finish(&shown);
	buf_finish(&what);
	return result;
}

/* --redrive [--id N...]: the ids as an array, or NULL for every dead letter of the slot. */
static int redrive(const struct config *cfg, PGconn **sql, const struct client_options *o)
{
	struct buf ids = BUF_INIT, target = BUF_INIT, what = BUF_INIT;
	if (o->nids == 0) {
		buf_puts(&target, "all dead letters");
	} else {
		buf_puts(&ids, "{");
		buf_puts(&target, "dead letters ");
		for (size_t i = 0; i < o->nids; i++) {
			buf_printf(&ids, "%s%" PRId64, i ? "," : "", o->ids[i]);
			if (i < IDS_SHOWN)
				buf_printf(&target, "%s%" PRId64, i ? "," : "", o->ids[i]);
		}
		buf_puts(&ids, "}");
		if (o->nids > IDS_SHOWN)
			buf_printf(&target, " and %zu more", o->nids - IDS_SHOWN);
	}
	buf_printf(&what, "redrive %s", target.data);

	const char *params[] = { cfg->source.slot, o->nids ? ids.data : NULL };
	int result = queue_and_follow(
	        cfg, sql, "(slot_name, kind, dead_letter_ids) VALUES ($1, 'redrive', $2::bigint[])", 2,
	        params, "redrive", target.data, o->wait ? what.data : NULL);
	buf_finish(&ids);
	buf_finish(&target);
	buf_finish(&what);
	return result;
}

/* --requests: the slot's requests as a table, oldest first. */
enum column {
	COL_ID,
	COL_KIND,
	COL_TARGET,
	COL_STATE,
	COL_DONE,
	COL_REFUSED,
	COL_CREATED,
	COL_FINISHED,
	COL_ERROR,
	NCOLS
};

static const char *const headers[NCOLS] = { "ID",      "KIND",    "TARGET",   "STATE", "DONE/TOTAL",
	                                    "REFUSED", "CREATED", "FINISHED", "ERROR" };
static const bool right_aligned[NCOLS] = { [COL_ID] = true, [COL_DONE] = true, [COL_REFUSED] = true };

/* The cells of one row of the result (in the order of list_requests's query). */
static void row_cells(const PGresult *res, int r, char **cells)
{
	struct buf b = BUF_INIT;
	bool backfill = strcmp(PQgetvalue(res, r, 1), "backfill") == 0;
	cells[COL_ID] = xstrdup(PQgetvalue(res, r, 0));
	put_clean(&b, PQgetvalue(res, r, 1));
	cells[COL_KIND] = xstrdup(b.data);
	buf_reset(&b);
	if (backfill) {
		put_clean(&b, PQgetisnull(res, r, 2) ? "-" : PQgetvalue(res, r, 2));
	} else if (PQgetisnull(res, r, 3)) {
		buf_puts(&b, "dead letters: all");
	} else {
		int64_t n = int_value(res, r, 4);
		buf_printf(&b, "ids %s", PQgetvalue(res, r, 3));
		if (n > IDS_SHOWN)
			buf_printf(&b, " and %" PRId64 " more", n - IDS_SHOWN);
	}
	cells[COL_TARGET] = xstrdup(b.data);
	buf_reset(&b);
	put_clean(&b, PQgetvalue(res, r, 5));
	cells[COL_STATE] = xstrdup(b.data);
	buf_reset(&b);
	buf_printf(&b, "%s/%s", PQgetvalue(res, r, 6), PQgetisnull(res, r, 7) ? "?" : PQgetvalue(res, r, 7));
	cells[COL_DONE] = xstrdup(b.data);
	cells[COL_REFUSED] = xstrdup(backfill ? "-" : PQgetvalue(res, r, 8));
	cells[COL_CREATED] = xstrdup(PQgetvalue(res, r, 10));
	cells[COL_FINISHED] = xstrdup(PQgetisnull(res, r, 11) ? "-" : PQgetvalue(res, r, 11));
	buf_reset(&b);
	put_clean(&b, PQgetvalue(res, r, 9));
	cells[COL_ERROR] = xstrdup(b.data);
	buf_finish(&b);
}

static void print_table(char **cells, size_t nrows)
{
	size_t width[NCOLS] = { 0 };
	for (size_t r = 0; r < nrows; r++)
		for (int c = 0; c < NCOLS; c++)
			if (text_width(cells[r * NCOLS + c]) > width[c])
				width[c] = text_width(cells[r * NCOLS + c]);
	struct buf line = BUF_INIT;
	for (size_t r = 0; r < nrows; r++) {
		buf_reset(&line);
		for (int c = 0; c < NCOLS; c++) {
			const char *cell = cells[r * NCOLS + c];
			size_t pad = width[c] - text_width(cell);
			if (c > 0)
				buf_puts(&line, "  ");
			for (size_t i = 0; right_aligned[c] && i < pad; i++)
				buf_putc(&line, ' ');
			buf_puts(&line, cell);
			for (size_t i = 0; !right_aligned[c] && c < NCOLS - 1 && i < pad; i++)
				buf_putc(&line, ' ');
		}
		while (line.len && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		printf("%s\n", line.data);
	}
	buf_finish(&line);
}

static int list_requests(const struct config *cfg, PGconn *sql)
{
	struct buf q = BUF_INIT;
	buf_printf(&q,
	           "SELECT id, kind, route, array_to_string(dead_letter_ids[1:%d], ','),"
	           " cardinality(dead_letter_ids), state, done, total, refused, coalesce(error, ''),"
	           " to_char(created_at, 'YYYY-MM-DD HH24:MI:SSOF'),"
	           " to_char(finished_at, 'YYYY-MM-DD HH24:MI:SSOF') FROM ",
	           IDS_SHOWN);
	append_table(&q, sql, cfg);
	buf_puts(&q, " WHERE slot_name = $1 ORDER BY id");
	const char *params[] = { cfg->source.slot };
	PGresult *res;
	int status = pg_query(sql, q.data, 1, params, &res, "cannot read the requests");
	buf_finish(&q);
	if (status != PG_OK)
		return give_up(status, "cannot list the requests", "reading the request table failed");
	size_t nrows = (size_t)PQntuples(res) + 1;
	if (nrows == 1) {
		printf("no requests for slot %s\n", cfg->source.slot);
		PQclear(res);
		return EXIT_CLEAN;
	}
	char **cells = xcalloc(nrows * NCOLS, sizeof *cells);
	for (int c = 0; c < NCOLS; c++)
		cells[c] = xstrdup(headers[c]);
	for (size_t r = 1; r < nrows; r++)
		row_cells(res, (int)r - 1, cells + r * NCOLS);
	PQclear(res);
	print_table(cells, nrows);
	for (size_t i = 0; i < nrows * NCOLS; i++)
		free(cells[i]);
	free(cells);
	return EXIT_CLEAN;
}

int client_run(const struct config *cfg, const struct client_options *o)
{
	const char *not_done =
	        o->command == CLIENT_REQUESTS ? "cannot list the requests" : "no request queued";
	int status;
	srandom((unsigned)(getpid() ^ monotonic_ms()));
	pg_set_answer_timeout(ANSWER_TIMEOUT_MS);
	PGconn *sql = pg_connect(cfg, false, PURPOSE, &status);
	if (!sql)
		return give_up(status, not_done, "cannot connect to PostgreSQL");
	status = catalog_ensure_bookkeeping(sql, cfg);
	int result;
	if (status != PG_OK)
		result = give_up(status, not_done, "the bookkeeping tables are not usable");
	else if (o->command == CLIENT_BACKFILL)
		result = backfill(cfg, &sql, o);
	else if (o->command == CLIENT_REDRIVE)
		result = redrive(cfg, &sql, o);
	else
		result = list_requests(cfg, sql);
	PQfinish(sql);
	return result;
}
