/*
 * Pure decoder for pgoutput (proto_version 1): the logical messages inside the stream's
 * XLogData frames (pgframe.h). Nothing here touches a socket. Every read is bounds-checked;
 * malformed input yields -1 and a message in the decoder's error buffer, never a crash.
 *
 * Strings and column values in decoded messages point into the input buffer (zero copy),
 * so they are valid only while that buffer is. Relation metadata is the exception: the
 * decoder copies it into its cache, keyed by relation OID, and replaces the entry when a
 * new Relation message for the same OID arrives.
 */
#ifndef OUTBOX_PGOUTPUT_H
#define OUTBOX_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"
#include "pgtime.h"

/* ---- pgoutput --------------------------------------------------------------------- */

enum pgo_kind {
	PGO_BEGIN = 'B',
	PGO_COMMIT = 'C',
	PGO_ORIGIN = 'O',
	PGO_RELATION = 'R',
	PGO_TYPE = 'Y',
	PGO_INSERT = 'I',
	PGO_UPDATE = 'U',
	PGO_DELETE = 'D',
	PGO_TRUNCATE = 'T',
	PGO_MESSAGE = 'M',
};

struct pgo_column {
	char *name;
	uint32_t type_oid;
	int32_t typmod;
	bool key; /* part of the replica identity */
};

/* Cached metadata; owned by the decoder. Pointers stay valid until the same OID is
 * redefined by a later Relation message or the decoder is freed. */
struct pgo_relation {
	uint32_t oid;
	char *schema;
	char *name;
	char replica_identity;
	int ncolumns;
	struct pgo_column *columns;
	uint32_t generation; /* bumped on every (re)definition: lets callers cache bindings */
};

enum pgo_value_kind {
	PGO_VALUE_NULL = 'n',
	PGO_VALUE_UNCHANGED = 'u', /* unchanged TOASTed value: no data */
	PGO_VALUE_TEXT = 't',
};

struct pgo_value {
	enum pgo_value_kind kind;
	const char *data; /* TEXT only: points into the input buffer, not NUL-terminated */
	uint32_t len;
};

struct pgo_tuple {
	int ncolumns;
	const struct pgo_value *values; /* owned by the decoder, reused per message */
};

struct pgo_msg {
	enum pgo_kind kind;
	union {
		struct {
			lsn_t final_lsn; /* start of the commit record: the commit LSN of doc/design.md §6 */
			pg_time_t commit_time;
			uint32_t xid;
		} begin;
		struct {
			uint8_t flags;
			lsn_t commit_lsn; /* same as begin.final_lsn */
			lsn_t end_lsn;    /* position after the commit record: what to confirm */
			pg_time_t commit_time;
		} commit;
		struct {
			lsn_t lsn;
			const char *name;
		} origin;
		const struct pgo_relation *relation; /* RELATION: the freshly cached entry */
		struct {
			uint32_t oid;
			const char *schema;
			const char *name;
		} type;
		struct {
			const struct pgo_relation *rel;
			struct pgo_tuple tuple;
		} insert;
		struct {
			const struct pgo_relation *rel;
			bool has_old;               /* 'K' or 'O' old tuple present */
			struct pgo_tuple old_tuple; /* valid only if has_old */
			struct pgo_tuple new_tuple;
		} update;
		struct {
			const struct pgo_relation *rel;
			struct pgo_tuple old_tuple; /* key ('K') or full old row ('O') */
		} delete;
		struct {
			uint32_t nrelations;
			uint8_t options; /* 1 = CASCADE, 2 = RESTART IDENTITY */
		} truncate;
		struct {
			bool transactional;
			lsn_t lsn;
			const char *prefix;
			const uint8_t *content;
			uint32_t len;
		} message;
	} u;
};

struct pgo_decoder;

struct pgo_decoder *pgo_decoder_new(void);
void pgo_decoder_free(struct pgo_decoder *d);

/*
 * Decodes one pgoutput message. Returns 0 and fills *out, or -1 if the message is
 * truncated, malformed, of an unknown kind, or names a relation OID never described by
 * a Relation message; pgo_error() then says why.
 */
int pgo_decode(struct pgo_decoder *d, const uint8_t *buf, size_t len, struct pgo_msg *out);

/* The last error, e.g. "Insert: truncated column 3 (needs 10 bytes, 4 left)". */
const char *pgo_error(const struct pgo_decoder *d);

/* Relation cache lookup; NULL if unknown. */
const struct pgo_relation *pgo_relation_get(const struct pgo_decoder *d, uint32_t oid);

#endif
