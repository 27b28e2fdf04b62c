#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "pgrepl.h"
#include "util.h"

int catalog_load_domains(PGconn *sql, struct typemap *t)
{
	PGresult *res;
	int status = pg_result(sql,
	                       PQsendQueryParams(sql,
	                                         "SELECT oid, typbasetype FROM pg_catalog.pg_type"
	                                         " WHERE typtype = 'd'",
	                                         0, NULL, NULL, NULL, NULL, 0),
	                       PGRES_TUPLES_OK, "cannot read the domain types", &res);
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
	log_debug("domain types read", "domains", count);
	return PG_OK;
}
