/*
 * The type a column's values are written as. pgoutput's Relation message names each
 * column's declared type, which for a domain is the domain's own OID; its values are in
 * the text form of the domain's base type, so a domain over jsonb holds JSON and one over
 * integer a number. The map knows the database's domains and follows nested ones to the
 * base type. It is filled from pg_type at the I/O edge (catalog.h); here it is data only.
 * Pure.
 */
#ifndef OUTBOX_TYPEMAP_H
#define OUTBOX_TYPEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgo_relation;

/* OIDs from here on are the database's own (pg_type of a new cluster stops below). */
#define TYPEMAP_FIRST_USER_OID 16384

/* One row of pg_type with typtype = 'd'. */
struct typemap_domain {
	uint32_t oid;
	uint32_t base; /* typbasetype: a base type, or another domain */
};

struct typemap;

struct typemap *typemap_new(void);
void typemap_free(struct typemap *t);

/* Replaces the domains with these n (all of the database's, as read from pg_type). Types
 * learned not to be domains stay known. */
void typemap_set_domains(struct typemap *t, const struct typemap_domain *domains, size_t n);

/* The type whose text form values of type oid have: the base type of a domain (through
 * nested domains), else oid itself. A NULL map knows no domains. */
uint32_t typemap_resolve(const struct typemap *t, uint32_t oid);

/* Whether rel has a column of a type of the database's own that the map has never
 * heard of: it may be a domain created since the map was filled, so read them again. */
bool typemap_needs_lookup(const struct typemap *t, const struct pgo_relation *rel);

/* Records the types of rel's columns as known (call after reading the domains again):
 * those that are not domains are not asked about again. */
void typemap_learn(struct typemap *t, const struct pgo_relation *rel);

#endif
