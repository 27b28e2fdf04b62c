#include "typemap.h"

#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "util.h"

/* Sorted by oid. base is the resolved base type; base == oid: known, not a domain. */
struct typemap_entry {
	uint32_t oid;
	uint32_t base;
};

struct typemap {
	struct typemap_entry *entries;
	size_t n, cap;
};

struct typemap *typemap_new(void)
{
	return xcalloc(1, sizeof(struct typemap));
}

void typemap_free(struct typemap *t)
{
	if (!t)
		return;
	free(t->entries);
	free(t);
}

/* The entry for oid, or NULL; *at gets where it is or would go. */
static struct typemap_entry *find(const struct typemap *t, uint32_t oid, size_t *at)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->entries[mid].oid < oid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (at)
		*at = lo;
	return lo < t->n && t->entries[lo].oid == oid ? &t->entries[lo] : NULL;
}

static void insert_at(struct typemap *t, size_t at, uint32_t oid, uint32_t base)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->entries = xrealloc(t->entries, t->cap * sizeof *t->entries);
	}
	memmove(t->entries + at + 1, t->entries + at, (t->n - at) * sizeof *t->entries);
	t->entries[at] = (struct typemap_entry){ oid, base };
	t->n++;
}

static int by_oid(const void *a, const void *b)
{
	uint32_t x = ((const struct typemap_entry *)a)->oid, y = ((const struct typemap_entry *)b)->oid;
	return (x > y) - (x < y);
}

/* Replaces each domain's base by the end of its chain, a type that is not a domain. Each
 * chain is walked once: the domains on it all get its end. PostgreSQL has no cycles; one
 * in the table ends where it closes. */
static void resolve_chains(struct typemap *t)
{
	bool *done = xcalloc(t->n ? t->n : 1, sizeof *done);
	size_t *chain = xmalloc((t->n ? t->n : 1) * sizeof *chain);
	for (size_t i = 0; i < t->n; i++) {
		size_t len = 0, at = i;
		uint32_t base;
		for (;;) {
			if (done[at]) {
				base = t->entries[at].base;
				break;
			}
			done[at] = true;
			chain[len++] = at;
			base = t->entries[at].base;
			const struct typemap_entry *next = find(t, base, &at);
			if (!next)
				break; /* base is not a domain: the end */
		}
		for (size_t k = 0; k < len; k++)
			t->entries[chain[k]].base = base;
	}
	free(chain);
	free(done);
}

void typemap_set_domains(struct typemap *t, const struct typemap_domain *domains, size_t n)
{
	struct typemap next = { xmalloc((n + t->n + 1) * sizeof(struct typemap_entry)), 0, n + t->n + 1 };
	for (size_t i = 0; i < n; i++)
		next.entries[i] = (struct typemap_entry){ domains[i].oid, domains[i].base };
	qsort(next.entries, n, sizeof *next.entries, by_oid);
	for (size_t i = 0; i < n; i++)
		if (!next.n || next.entries[next.n - 1].oid != next.entries[i].oid)
			next.entries[next.n++] = next.entries[i];
	resolve_chains(&next);
	/* Types learned not to be domains stay known, unless they are domains now. */
	size_t ndomains = next.n;
	for (size_t i = 0; i < t->n; i++) {
		const struct typemap_entry *e = &t->entries[i];
		struct typemap domains_only = { next.entries, ndomains, ndomains };
		if (e->base == e->oid && !find(&domains_only, e->oid, NULL))
			next.entries[next.n++] = *e;
	}
	qsort(next.entries, next.n, sizeof *next.entries, by_oid);
	free(t->entries);
	*t = next;
}

uint32_t typemap_resolve(const struct typemap *t, uint32_t oid)
{
	if (!t || !t->n)
		return oid;
	const struct typemap_entry *e = find(t, oid, NULL);
	return e ? e->base : oid;
}

static bool unknown(const struct typemap *t, uint32_t oid)
{
	return oid >= TYPEMAP_FIRST_USER_OID && !find(t, oid, NULL);
}

bool typemap_needs_lookup(const struct typemap *t, const struct pgo_relation *rel)
{
	for (int i = 0; i < rel->ncolumns; i++)
		if (unknown(t, rel->columns[i].type_oid))
			return true;
	return false;
}

void typemap_learn(struct typemap *t, const struct pgo_relation *rel)
{
	for (int i = 0; i < rel->ncolumns; i++) {
		uint32_t oid = rel->columns[i].type_oid;
		size_t at;
		if (oid >= TYPEMAP_FIRST_USER_OID && !find(t, oid, &at))
			insert_at(t, at, oid, oid);
	}
}
