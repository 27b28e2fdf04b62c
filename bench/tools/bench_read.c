/*
 * bench_read: the read limit of a backfill. Reads a whole table by its primary key in
 * chunks (keyset pagination, text results, as the relay reads a backfill's chunks) and
 * prints one JSON line.
 *
 *   bench_read CONNINFO TABLE KEY CHUNK
 *
 * Runs SELECT * FROM TABLE [WHERE KEY > $1] ORDER BY KEY LIMIT CHUNK until a chunk comes
 * back short, each in its own implicit transaction; TABLE and KEY go into the query as
 * given (quote them yourself). Every value's length is added up, so that the rows are
 * walked as a consumer would.
 *
 * Output: {"rows":N,"chunks":C,"bytes":B,"wall_us":W,"cpu_us":C}, the wall time
 * counting the connection. Exit 0, or 1 with the server's words on stderr.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
	if (argc != 5 || atol(argv[4]) <= 0) {
		fprintf(stderr, "usage: bench_read CONNINFO TABLE KEY CHUNK\n");
		return 64;
	}
	const char *table = argv[2], *key = argv[3];
	long chunk = atol(argv[4]);
	long long t0 = mono_us();
	PGconn *conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "bench_read: %s", PQerrorMessage(conn));
		return 1;
	}
	char first[1024], next[1024];
	snprintf(first, sizeof first, "SELECT * FROM %s ORDER BY %s LIMIT %ld", table, key, chunk);
	snprintf(next, sizeof next, "SELECT * FROM %s WHERE %s > $1 ORDER BY %s LIMIT %ld", table, key, key,
	         chunk);
	long long rows = 0, chunks = 0, bytes = 0;
	char *last = NULL;
	int key_col = -1;
	for (;;) {
		const char *params[] = { last };
		PGresult *res =
		        last ? PQexecParams(conn, next, 1, NULL, params, NULL, NULL, 0) : PQexec(conn, first);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "bench_read: %s", PQerrorMessage(conn));
			return 1;
		}
		int n = PQntuples(res), nf = PQnfields(res);
		if (key_col < 0)
			key_col = PQfnumber(res, key);
		if (key_col < 0) {
			fprintf(stderr, "bench_read: no column %s in the result\n", key);
			return 1;
		}
		for (int i = 0; i < n; i++)
			for (int c = 0; c < nf; c++)
				bytes += PQgetlength(res, i, c);
		rows += n;
		chunks++;
		if (n > 0) {
			free(last);
			last = strdup(PQgetvalue(res, n - 1, key_col));
		}
		PQclear(res);
		if (n < chunk)
			break;
	}
	PQfinish(conn);
	free(last);
	printf("{\"rows\":%lld,\"chunks\":%lld,\"bytes\":%lld,\"wall_us\":%lld,\"cpu_us\":%lld}\n", rows,
	       chunks, bytes, mono_us() - t0, cpu_us());
	return 0;
}
