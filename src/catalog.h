/*
 * What the encoders need from the system catalogs, read over the ordinary SQL connection:
 * the database's domains and their base types (typemap.h). Functions return pg_status
 * values (pgrepl.h), failures logged.
 */
#ifndef OUTBOX_CATALOG_H
#define OUTBOX_CATALOG_H

#include <libpq-fe.h>

#include "typemap.h"

/* Reads every domain of the database (pg_type, typtype 'd') into t. */
int catalog_load_domains(PGconn *sql, struct typemap *t);

#endif
