#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "util.h"

#include "wire_builder.h"

struct col_def {
	const char *name;
	uint32_t type_oid;
	int32_t typmod;
	uint8_t flags;
};

static void build_relation(struct msg *m, uint32_t oid, const char *schema, const char *name,
                           const struct col_def *cols, int ncols)
{
	put_u8(m, 'R');
	put_u32(m, oid);
	put_str(m, schema);
	put_str(m, name);
	put_u8(m, 'd');
	put_u16(m, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		put_u8(m, cols[i].flags);
		put_str(m, cols[i].name);
		put_u32(m, cols[i].type_oid);
		put_u32(m, (uint32_t)cols[i].typmod);
	}
}

#define OUTBOX_OID 16384
#define OTHER_OID 16385

static const struct col_def outbox_cols[] = {
	{ "id", 20, -1, 1 },
	{ "topic", 25, -1, 0 },
	{ "payload", 3802, -1, 0 },
};

static const struct col_def outbox_cols_v2[] = {
	{ "event_id", 2950, -1, 1 },
	{ "topic", 1043, 104, 0 },
	{ "payload", 114, -1, 0 },
	{ "created_at", 1184, -1, 0 },
};

/* Insert into the 3-column outbox: id, topic, payload (all text). */
static void build_insert(struct msg *m, uint32_t oid)
{
	put_u8(m, 'I');
	put_u32(m, oid);
	put_u8(m, 'N');
	put_u16(m, 3);
	put_text(m, "42", 2);
	put_text(m, "orders/created", 14);
	put_text(m, "{\"a\":1}", 7);
}

static void build_commit(struct msg *m)
{
	put_u8(m, 'C');
	put_u8(m, 0);
	put_u64(m, UINT64_C(0x16B374D848));
	put_u64(m, UINT64_C(0x16B374D878));
	put_u64(m, UINT64_C(0x0002A5F1C2D3E4F5));
}

static void build_message(struct msg *m, uint8_t flags, const char *prefix, const char *content, size_t len)
{
	put_u8(m, 'M');
	put_u8(m, flags);
	put_u64(m, UINT64_C(0x1234567890ABCDEF));
	put_str(m, prefix);
	put_u32(m, (uint32_t)len);
	put_bytes(m, content, len);
}

/* ---- decoding helpers -------------------------------------------------------------- */

static void decode_ok(struct pgo_decoder *d, const struct msg *m, struct pgo_msg *out)
{
	int rc = pgo_decode(d, m->data, m->len, out);
	ck_assert_msg(rc == 0, "decode failed: %s", pgo_error(d));
	ck_assert_str_eq(pgo_error(d), "");
}

static void decode_fails(struct pgo_decoder *d, const struct msg *m, const char *error)
{
	struct pgo_msg out;
	ck_assert_int_eq(pgo_decode(d, m->data, m->len, &out), -1);
	ck_assert_str_eq(pgo_error(d), error);
}

static const struct pgo_relation *define(struct pgo_decoder *d, uint32_t oid, const char *name,
                                         const struct col_def *cols, int ncols)
{
	struct msg m = { 0 };
	struct pgo_msg out;
	build_relation(&m, oid, "public", name, cols, ncols);
	decode_ok(d, &m, &out);
	msg_free(&m);
	ck_assert_int_eq(out.kind, PGO_RELATION);
	return out.u.relation;
}

static struct pgo_decoder *decoder_with_outbox(void)
{
	struct pgo_decoder *d = pgo_decoder_new();
	define(d, OUTBOX_OID, "outbox", outbox_cols, 3);
	return d;
}

/* A TEXT value equal to (s, len) and pointing into the message, not a copy. */
static void assert_text(const struct pgo_value *v, const struct msg *m, const char *s, size_t len)
{
	ck_assert_int_eq(v->kind, PGO_VALUE_TEXT);
	ck_assert_uint_eq(v->len, len);
	ck_assert(memcmp(v->data, s, len) == 0);
	ck_assert((const uint8_t *)v->data >= m->data);
	ck_assert((const uint8_t *)v->data + len <= m->data + m->len);
}

static void assert_no_data(const struct pgo_value *v, enum pgo_value_kind kind)
{
	ck_assert_int_eq(v->kind, kind);
	ck_assert_ptr_null(v->data);
	ck_assert_uint_eq(v->len, 0);
}

/* Every proper prefix, each in its own exactly sized allocation, must fail cleanly with
 * a message naming the kind and saying the data ran out; the whole must decode. */
static void assert_every_prefix_fails(struct pgo_decoder *d, const struct msg *m, const char *kind)
{
	struct pgo_msg out;
	for (size_t n = 0; n < m->len; n++) {
		uint8_t *copy = xmalloc(n);
		if (n)
			memcpy(copy, m->data, n);
		ck_assert_msg(pgo_decode(d, copy, n, &out) == -1, "%s prefix of %zu/%zu bytes decoded", kind,
		              n, m->len);
		const char *err = pgo_error(d);
		if (n == 0) {
			ck_assert_str_eq(err, "empty pgoutput message");
		} else {
			ck_assert_msg(strncmp(err, kind, strlen(kind)) == 0, "error \"%s\" does not name %s",
			              err, kind);
			ck_assert_msg(strstr(err, "truncated") || strstr(err, "not NUL-terminated"),
			              "error \"%s\" at %zu bytes does not say the data ran out", err, n);
		}
		free(copy);
	}
	decode_ok(d, m, &out);
}

/* ---- each message kind ------------------------------------------------------------- */

START_TEST(decodes_begin)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'B');
	put_u64(&m, UINT64_C(0x16B374D848));
	put_u64(&m, UINT64_C(0x0002A5F1C2D3E4F5));
	put_u32(&m, 0xFFFFFFF0);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_BEGIN);
	ck_assert_uint_eq(out.u.begin.final_lsn, UINT64_C(0x16B374D848));
	ck_assert_int_eq(out.u.begin.commit_time, INT64_C(0x0002A5F1C2D3E4F5));
	ck_assert_uint_eq(out.u.begin.xid, 0xFFFFFFF0);
	assert_every_prefix_fails(d, &m, "Begin");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_commit)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	build_commit(&m);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_COMMIT);
	ck_assert_uint_eq(out.u.commit.flags, 0);
	ck_assert_uint_eq(out.u.commit.commit_lsn, UINT64_C(0x16B374D848));
	ck_assert_uint_eq(out.u.commit.end_lsn, UINT64_C(0x16B374D878));
	ck_assert_int_eq(out.u.commit.commit_time, INT64_C(0x0002A5F1C2D3E4F5));
	msg_free(&m);

	/* Times before 2000 are negative. */
	put_u8(&m, 'C');
	put_u8(&m, 7);
	put_u64(&m, 1);
	put_u64(&m, UINT64_MAX);
	put_u64(&m, UINT64_MAX);
	decode_ok(d, &m, &out);
	ck_assert_uint_eq(out.u.commit.flags, 7);
	ck_assert_uint_eq(out.u.commit.commit_lsn, 1);
	ck_assert_uint_eq(out.u.commit.end_lsn, UINT64_MAX);
	ck_assert_int_eq(out.u.commit.commit_time, -1);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_origin)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'O');
	put_u64(&m, UINT64_C(0xABCDEF0123456789));
	put_str(&m, "node_a");
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_ORIGIN);
	ck_assert_uint_eq(out.u.origin.lsn, UINT64_C(0xABCDEF0123456789));
	ck_assert_str_eq(out.u.origin.name, "node_a");
	ck_assert_ptr_eq(out.u.origin.name, (const char *)m.data + 9);
	assert_every_prefix_fails(d, &m, "Origin");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_relation)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	ck_assert_ptr_null(pgo_relation_get(d, OUTBOX_OID));
	build_relation(&m, OUTBOX_OID, "app", "outbox", outbox_cols_v2, 4);
	m.data[1 + 4 + 4 + 7] = 'f'; /* replica identity FULL */
	decode_ok(d, &m, &out);
	msg_free(&m); /* the cache holds copies */

	const struct pgo_relation *rel = out.u.relation;
	ck_assert_int_eq(out.kind, PGO_RELATION);
	ck_assert_ptr_eq(pgo_relation_get(d, OUTBOX_OID), rel);
	ck_assert_uint_eq(rel->oid, OUTBOX_OID);
	ck_assert_str_eq(rel->schema, "app");
	ck_assert_str_eq(rel->name, "outbox");
	ck_assert_int_eq(rel->replica_identity, 'f');
	ck_assert_uint_eq(rel->generation, 1);
	ck_assert_int_eq(rel->ncolumns, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_str_eq(rel->columns[i].name, outbox_cols_v2[i].name);
		ck_assert_uint_eq(rel->columns[i].type_oid, outbox_cols_v2[i].type_oid);
		ck_assert_int_eq(rel->columns[i].typmod, outbox_cols_v2[i].typmod);
		ck_assert(rel->columns[i].key == (i == 0));
	}
	ck_assert_ptr_null(pgo_relation_get(d, OTHER_OID));
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_relation_without_columns)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	/* Empty namespace: how the server names pg_catalog. */
	put_u8(&m, 'R');
	put_u32(&m, 1259);
	put_str(&m, "");
	put_str(&m, "");
	put_u8(&m, 'n');
	put_u16(&m, 0);
	decode_ok(d, &m, &out);
	ck_assert_str_eq(out.u.relation->schema, "");
	ck_assert_str_eq(out.u.relation->name, "");
	ck_assert_int_eq(out.u.relation->replica_identity, 'n');
	ck_assert_int_eq(out.u.relation->ncolumns, 0);
	msg_free(&m);

	put_u8(&m, 'I');
	put_u32(&m, 1259);
	put_u8(&m, 'N');
	put_u16(&m, 0);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.u.insert.tuple.ncolumns, 0);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_type)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'Y');
	put_u32(&m, 16400);
	put_str(&m, "public");
	put_str(&m, "mood");
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_TYPE);
	ck_assert_uint_eq(out.u.type.oid, 16400);
	ck_assert_str_eq(out.u.type.schema, "public");
	ck_assert_str_eq(out.u.type.name, "mood");
	assert_every_prefix_fails(d, &m, "Type");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_insert)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	struct pgo_msg out;
	build_insert(&m, OUTBOX_OID);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_INSERT);
	ck_assert_ptr_eq(out.u.insert.rel, pgo_relation_get(d, OUTBOX_OID));
	ck_assert_int_eq(out.u.insert.tuple.ncolumns, 3);
	assert_text(&out.u.insert.tuple.values[0], &m, "42", 2);
	assert_text(&out.u.insert.tuple.values[1], &m, "orders/created", 14);
	assert_text(&out.u.insert.tuple.values[2], &m, "{\"a\":1}", 7);
	ck_assert_ptr_eq(out.u.insert.tuple.values[0].data, (const char *)m.data + 13);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(insert_null_empty_and_embedded_nul)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'I');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	put_u8(&m, 'n');
	put_text(&m, "", 0);
	put_text(&m, "a\0b\0", 4);
	decode_ok(d, &m, &out);
	const struct pgo_value *v = out.u.insert.tuple.values;
	assert_no_data(&v[0], PGO_VALUE_NULL);
	assert_text(&v[1], &m, "", 0);
	assert_text(&v[2], &m, "a\0b\0", 4);
	msg_free(&m);

	/* The zero-length value last: its data points at the end of the buffer. */
	put_u8(&m, 'I');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	put_u8(&m, 'u');
	put_u8(&m, 'n');
	put_text(&m, "", 0);
	decode_ok(d, &m, &out);
	v = out.u.insert.tuple.values;
	assert_no_data(&v[0], PGO_VALUE_UNCHANGED);
	assert_no_data(&v[1], PGO_VALUE_NULL);
	ck_assert_int_eq(v[2].kind, PGO_VALUE_TEXT);
	ck_assert_uint_eq(v[2].len, 0);
	ck_assert_ptr_eq(v[2].data, (const char *)m.data + m.len);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(update_without_old_tuple)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'U');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	put_text(&m, "7", 1);
	put_u8(&m, 'n');
	put_u8(&m, 'u');
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_UPDATE);
	ck_assert_ptr_eq(out.u.update.rel, pgo_relation_get(d, OUTBOX_OID));
	ck_assert(!out.u.update.has_old);
	ck_assert_int_eq(out.u.update.new_tuple.ncolumns, 3);
	assert_text(&out.u.update.new_tuple.values[0], &m, "7", 1);
	assert_no_data(&out.u.update.new_tuple.values[1], PGO_VALUE_NULL);
	assert_no_data(&out.u.update.new_tuple.values[2], PGO_VALUE_UNCHANGED);
	assert_every_prefix_fails(d, &m, "Update");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

static void build_update_with_old(struct msg *m, uint8_t marker)
{
	put_u8(m, 'U');
	put_u32(m, OUTBOX_OID);
	put_u8(m, marker);
	put_u16(m, 3);
	put_text(m, "1", 1);
	put_text(m, "old/topic", 9);
	put_u8(m, 'n');
	put_u8(m, 'N');
	put_u16(m, 3);
	put_text(m, "2", 1);
	put_text(m, "new/topic", 9);
	put_u8(m, 'u');
}

START_TEST(update_with_old_tuple)
{
	static const uint8_t markers[] = { 'K', 'O' };
	for (size_t i = 0; i < sizeof markers; i++) {
		struct pgo_decoder *d = decoder_with_outbox();
		struct msg m = { 0 };
		struct pgo_msg out;
		build_update_with_old(&m, markers[i]);
		decode_ok(d, &m, &out);
		ck_assert(out.u.update.has_old);
		const struct pgo_tuple *old = &out.u.update.old_tuple, *new = &out.u.update.new_tuple;
		ck_assert_ptr_ne(old->values, new->values);
		ck_assert_int_eq(old->ncolumns, 3);
		assert_text(&old->values[0], &m, "1", 1);
		assert_text(&old->values[1], &m, "old/topic", 9);
		assert_no_data(&old->values[2], PGO_VALUE_NULL);
		ck_assert_int_eq(new->ncolumns, 3);
		assert_text(&new->values[0], &m, "2", 1);
		assert_text(&new->values[1], &m, "new/topic", 9);
		assert_no_data(&new->values[2], PGO_VALUE_UNCHANGED);
		assert_every_prefix_fails(d, &m, "Update");
		msg_free(&m);
		pgo_decoder_free(d);
	}
}
END_TEST

START_TEST(decodes_delete)
{
	static const uint8_t markers[] = { 'K', 'O' };
	for (size_t i = 0; i < sizeof markers; i++) {
		struct pgo_decoder *d = decoder_with_outbox();
		struct msg m = { 0 };
		struct pgo_msg out;
		put_u8(&m, 'D');
		put_u32(&m, OUTBOX_OID);
		put_u8(&m, markers[i]);
		put_u16(&m, 3);
		put_text(&m, "99", 2);
		put_u8(&m, 'n');
		put_u8(&m, markers[i] == 'K' ? 'n' : 'u');
		decode_ok(d, &m, &out);
		ck_assert_int_eq(out.kind, PGO_DELETE);
		ck_assert_ptr_eq(out.u.delete.rel, pgo_relation_get(d, OUTBOX_OID));
		ck_assert_int_eq(out.u.delete.old_tuple.ncolumns, 3);
		assert_text(&out.u.delete.old_tuple.values[0], &m, "99", 2);
		assert_no_data(&out.u.delete.old_tuple.values[1], PGO_VALUE_NULL);
		assert_no_data(&out.u.delete.old_tuple.values[2],
		               markers[i] == 'K' ? PGO_VALUE_NULL : PGO_VALUE_UNCHANGED);
		assert_every_prefix_fails(d, &m, "Delete");
		msg_free(&m);
		pgo_decoder_free(d);
	}
}
END_TEST

START_TEST(decodes_truncate)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	put_u8(&m, 'T');
	put_u32(&m, 3);
	put_u8(&m, 3);
	put_u32(&m, OUTBOX_OID);
	put_u32(&m, OTHER_OID);
	put_u32(&m, 99999);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_TRUNCATE);
	ck_assert_uint_eq(out.u.truncate.nrelations, 3);
	ck_assert_uint_eq(out.u.truncate.options, 3);
	assert_every_prefix_fails(d, &m, "Truncate");
	msg_free(&m);

	put_u8(&m, 'T');
	put_u32(&m, 0);
	put_u8(&m, 0);
	decode_ok(d, &m, &out);
	ck_assert_uint_eq(out.u.truncate.nrelations, 0);
	ck_assert_uint_eq(out.u.truncate.options, 0);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(decodes_messages)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	struct pgo_msg out;
	build_message(&m, 1, "app.audit", "he\0llo", 6);
	decode_ok(d, &m, &out);
	ck_assert_int_eq(out.kind, PGO_MESSAGE);
	ck_assert(out.u.message.transactional);
	ck_assert_uint_eq(out.u.message.lsn, UINT64_C(0x1234567890ABCDEF));
	ck_assert_str_eq(out.u.message.prefix, "app.audit");
	ck_assert_uint_eq(out.u.message.len, 6);
	ck_assert(memcmp(out.u.message.content, "he\0llo", 6) == 0);
	ck_assert_ptr_eq(out.u.message.content, m.data + m.len - 6);
	msg_free(&m);

	build_message(&m, 0, "outbox_relay.drain", "", 0);
	decode_ok(d, &m, &out);
	ck_assert(!out.u.message.transactional);
	ck_assert_uint_eq(out.u.message.lsn, UINT64_C(0x1234567890ABCDEF));
	ck_assert_str_eq(out.u.message.prefix, "outbox_relay.drain");
	ck_assert_uint_eq(out.u.message.len, 0);
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

/* ---- relation cache ---------------------------------------------------------------- */

START_TEST(redefinition_replaces_in_place)
{
	struct pgo_decoder *d = pgo_decoder_new();
	const struct pgo_relation *a = define(d, OUTBOX_OID, "outbox", outbox_cols, 3);
	const struct pgo_relation *b = define(d, OTHER_OID, "other", outbox_cols, 2);
	ck_assert_uint_eq(a->generation, 1);
	ck_assert_uint_eq(b->generation, 2);

	const struct pgo_relation *a2 = define(d, OUTBOX_OID, "outbox_v2", outbox_cols_v2, 4);
	ck_assert_ptr_eq(a2, a);
	ck_assert_ptr_eq(pgo_relation_get(d, OUTBOX_OID), a);
	ck_assert_uint_eq(a->generation, 3);
	ck_assert_str_eq(a->name, "outbox_v2");
	ck_assert_int_eq(a->ncolumns, 4);
	ck_assert_str_eq(a->columns[0].name, "event_id");
	ck_assert_str_eq(a->columns[3].name, "created_at");
	ck_assert_uint_eq(a->columns[1].type_oid, 1043);
	ck_assert_int_eq(a->columns[1].typmod, 104);

	/* The other entry is untouched. */
	ck_assert_ptr_eq(pgo_relation_get(d, OTHER_OID), b);
	ck_assert_uint_eq(b->generation, 2);
	ck_assert_int_eq(b->ncolumns, 2);
	ck_assert_str_eq(b->name, "other");

	/* Identical contents still make a new generation. */
	define(d, OTHER_OID, "other", outbox_cols, 2);
	ck_assert_uint_eq(b->generation, 4);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(insert_after_redefinition_uses_new_columns)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg old = { 0 }, new = { 0 };
	struct pgo_msg out;
	build_insert(&old, OUTBOX_OID);
	decode_ok(d, &old, &out);

	define(d, OUTBOX_OID, "outbox", outbox_cols_v2, 4);
	decode_fails(d, &old, "Insert: new tuple: 3 columns but relation 16384 (public.outbox) has 4");

	put_u8(&new, 'I');
	put_u32(&new, OUTBOX_OID);
	put_u8(&new, 'N');
	put_u16(&new, 4);
	put_text(&new, "8c2f", 4);
	put_text(&new, "t", 1);
	put_u8(&new, 'n');
	put_text(&new, "2024-01-01", 10);
	decode_ok(d, &new, &out);
	ck_assert_int_eq(out.u.insert.tuple.ncolumns, 4);
	ck_assert_uint_eq(out.u.insert.rel->generation, 2);
	assert_text(&out.u.insert.tuple.values[3], &new, "2024-01-01", 10);
	msg_free(&old);
	msg_free(&new);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(many_relations)
{
	enum { N = 5000 };
	struct pgo_decoder *d = pgo_decoder_new();
	const struct pgo_relation *rels[N];
	char name[32];
	for (uint32_t i = 0; i < N; i++) {
		/* Sequential OIDs and scattered ones, as after years of DDL. */
		uint32_t oid = i % 2 ? 16384 + i : i * 2654435761u;
		snprintf(name, sizeof name, "t%u", i);
		rels[i] = define(d, oid, name, outbox_cols, (int)(i % 4));
	}
	for (uint32_t i = 0; i < N; i++) {
		uint32_t oid = i % 2 ? 16384 + i : i * 2654435761u;
		snprintf(name, sizeof name, "t%u", i);
		const struct pgo_relation *rel = pgo_relation_get(d, oid);
		ck_assert_ptr_eq(rel, rels[i]);
		ck_assert_uint_eq(rel->oid, oid);
		ck_assert_str_eq(rel->name, name);
		ck_assert_int_eq(rel->ncolumns, (int)(i % 4));
		ck_assert_uint_eq(rel->generation, i + 1);
	}
	ck_assert_ptr_null(pgo_relation_get(d, 16384));
	ck_assert_ptr_null(pgo_relation_get(d, 16384 + N + 1));
	ck_assert_ptr_eq(define(d, 16385, "again", outbox_cols, 3), rels[1]);
	ck_assert_uint_eq(rels[1]->generation, N + 1);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(tuple_arrays_are_reused)
{
	enum { WIDE = 200 };
	struct pgo_decoder *d = pgo_decoder_new();
	struct col_def cols[WIDE];
	char names[WIDE][16];
	for (int i = 0; i < WIDE; i++) {
		snprintf(names[i], sizeof names[i], "c%d", i);
		cols[i] = (struct col_def){ names[i], 23, -1, 0 };
	}
	define(d, OUTBOX_OID, "wide", cols, WIDE);
	const struct pgo_value *first = NULL;
	for (int round = 0; round < 3; round++) {
		struct msg m = { 0 };
		struct pgo_msg out;
		put_u8(&m, 'I');
		put_u32(&m, OUTBOX_OID);
		put_u8(&m, 'N');
		put_u16(&m, WIDE);
		for (int i = 0; i < WIDE; i++)
			put_text(&m, names[i], strlen(names[i]));
		decode_ok(d, &m, &out);
		if (!first)
			first = out.u.insert.tuple.values;
		ck_assert_ptr_eq(out.u.insert.tuple.values, first);
		assert_text(&out.u.insert.tuple.values[WIDE - 1], &m, "c199", 4);
		msg_free(&m);
	}
	pgo_decoder_free(d);
}
END_TEST

/* ---- malformed input ---------------------------------------------------------------- */

START_TEST(truncated_anywhere)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg insert = { 0 }, relation = { 0 }, commit = { 0 }, message = { 0 };
	build_insert(&insert, OUTBOX_OID);
	build_relation(&relation, OTHER_OID, "public", "other", outbox_cols_v2, 4);
	build_commit(&commit);
	build_message(&message, 1, "prefix", "content", 7);

	assert_every_prefix_fails(d, &insert, "Insert");
	assert_every_prefix_fails(d, &commit, "Commit");
	assert_every_prefix_fails(d, &message, "Message");

	/* A truncated Relation must leave the cache as it was. */
	for (size_t n = 1; n < relation.len; n++) {
		struct msg part = { 0 };
		struct pgo_msg out;
		put_bytes(&part, relation.data, n);
		ck_assert_int_eq(pgo_decode(d, part.data, part.len, &out), -1);
		ck_assert_ptr_null(pgo_relation_get(d, OTHER_OID));
		msg_free(&part);
	}
	assert_every_prefix_fails(d, &relation, "Relation");
	ck_assert_uint_eq(pgo_relation_get(d, OTHER_OID)->generation, 2);
	ck_assert_int_eq(pgo_relation_get(d, OTHER_OID)->ncolumns, 4);

	msg_free(&insert);
	msg_free(&relation);
	msg_free(&commit);
	msg_free(&message);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(truncation_messages)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	build_insert(&m, OUTBOX_OID);
	m.len -= 3;
	decode_fails(d, &m,
	             "Insert: new tuple column 3 \"payload\": truncated value (needs 7 bytes, 4 left)");
	m.len = 1 + 4 + 1 + 1;
	decode_fails(d, &m, "Insert: new tuple: truncated column count (needs 2 bytes, 1 left)");
	m.len = 3;
	decode_fails(d, &m, "Insert: truncated relation OID (needs 4 bytes, 2 left)");
	m.len = 1 + 4 + 1 + 2 + 1 + 2;
	decode_fails(d, &m,
	             "Insert: new tuple column 1 \"id\": truncated value length (needs 4 bytes, 2 left)");
	m.len = 1 + 4 + 1 + 2;
	decode_fails(d, &m,
	             "Insert: new tuple column 1 \"id\": truncated value kind (needs 1 bytes, 0 left)");
	msg_free(&m);

	build_commit(&m);
	m.len = 9;
	decode_fails(d, &m, "Commit: truncated commit LSN (needs 8 bytes, 7 left)");
	m.len = 18 + 5;
	decode_fails(d, &m, "Commit: truncated commit timestamp (needs 8 bytes, 5 left)");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(unknown_kinds)
{
	/* Streaming messages (proto_version 2) are not requested, so they are errors. */
	static const uint8_t kinds[] = { 'S', 'E', 'c', 'A', 'P', 'K', 'r', 'w', 'Z', 0, 0xff, ' ' };
	struct pgo_decoder *d = pgo_decoder_new();
	for (size_t i = 0; i < sizeof kinds; i++) {
		struct msg m = { 0 };
		char expect[64];
		put_u8(&m, kinds[i]);
		put_u64(&m, 0);
		if (kinds[i] > ' ' && kinds[i] < 0x7f)
			snprintf(expect, sizeof expect, "unknown pgoutput message kind '%c'", kinds[i]);
		else
			snprintf(expect, sizeof expect, "unknown pgoutput message kind 0x%02x", kinds[i]);
		decode_fails(d, &m, expect);
		msg_free(&m);
	}
	struct pgo_msg out;
	uint8_t none = 'B';
	ck_assert_int_eq(pgo_decode(d, &none, 0, &out), -1);
	ck_assert_str_eq(pgo_error(d), "empty pgoutput message");
	pgo_decoder_free(d);
}
END_TEST

START_TEST(unknown_relation)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	build_insert(&m, OTHER_OID);
	decode_fails(d, &m, "Insert: relation 16385 is unknown (no Relation message seen)");
	msg_free(&m);

	build_update_with_old(&m, 'O');
	m.data[4] = 0x01; /* OID 16385 */
	decode_fails(d, &m, "Update: relation 16385 is unknown (no Relation message seen)");
	msg_free(&m);

	put_u8(&m, 'D');
	put_u32(&m, 0);
	put_u8(&m, 'K');
	put_u16(&m, 0);
	decode_fails(d, &m, "Delete: relation 0 is unknown (no Relation message seen)");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(column_count_mismatch)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	put_u8(&m, 'I');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 4);
	for (int i = 0; i < 4; i++)
		put_u8(&m, 'n');
	decode_fails(d, &m, "Insert: new tuple: 4 columns but relation 16384 (public.outbox) has 3");
	msg_free(&m);

	put_u8(&m, 'I');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 0xFFFF);
	decode_fails(d, &m, "Insert: new tuple: -1 columns but relation 16384 (public.outbox) has 3");
	msg_free(&m);

	/* An Update's old tuple is checked as strictly as its new one. */
	put_u8(&m, 'U');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'K');
	put_u16(&m, 1);
	put_text(&m, "1", 1);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	for (int i = 0; i < 3; i++)
		put_u8(&m, 'n');
	decode_fails(d, &m, "Update: old key: 1 columns but relation 16384 (public.outbox) has 3");
	msg_free(&m);

	put_u8(&m, 'D');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'O');
	put_u16(&m, 2);
	put_u8(&m, 'n');
	put_u8(&m, 'n');
	decode_fails(d, &m, "Delete: old tuple: 2 columns but relation 16384 (public.outbox) has 3");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

/* One valid message of every kind, for checks that apply to all of them. */
static void build_each_kind(struct msg m[10])
{
	put_u8(&m[0], 'B');
	put_u64(&m[0], 1);
	put_u64(&m[0], 2);
	put_u32(&m[0], 3);
	build_commit(&m[1]);
	put_u8(&m[2], 'O');
	put_u64(&m[2], 1);
	put_str(&m[2], "origin");
	build_relation(&m[3], OTHER_OID, "public", "other", outbox_cols, 3);
	put_u8(&m[4], 'Y');
	put_u32(&m[4], 1);
	put_str(&m[4], "public");
	put_str(&m[4], "type");
	build_insert(&m[5], OUTBOX_OID);
	build_update_with_old(&m[6], 'O');
	put_u8(&m[7], 'D');
	put_u32(&m[7], OUTBOX_OID);
	put_u8(&m[7], 'K');
	put_u16(&m[7], 3);
	put_bytes(&m[7], "nnn", 3);
	put_u8(&m[8], 'T');
	put_u32(&m[8], 1);
	put_u8(&m[8], 0);
	put_u32(&m[8], OUTBOX_OID);
	build_message(&m[9], 0, "p", "c", 1);
}

START_TEST(trailing_bytes)
{
	static const char *const names[10] = {
		"Begin",  "Commit", "Origin", "Relation", "Type",
		"Insert", "Update", "Delete", "Truncate", "Message",
	};
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m[10] = { { 0 } };
	struct pgo_msg out;
	build_each_kind(m);
	for (int i = 0; i < 10; i++) {
		char expect[128];
		decode_ok(d, &m[i], &out);
		put_u8(&m[i], 0);
		put_u8(&m[i], 'X');
		snprintf(expect, sizeof expect, "%s: trailing garbage after a complete message (2 bytes)",
		         names[i]);
		decode_fails(d, &m[i], expect);
		msg_free(&m[i]);
	}
	/* The bad Relation did not replace the good one (generation 2, from the loop). */
	ck_assert_uint_eq(pgo_relation_get(d, OTHER_OID)->generation, 2);

	/* Nor does it create an entry. */
	struct msg r = { 0 };
	build_relation(&r, 777, "public", "x", outbox_cols, 1);
	put_u8(&r, 0);
	decode_fails(d, &r, "Relation: trailing garbage after a complete message (1 bytes)");
	ck_assert_ptr_null(pgo_relation_get(d, 777));
	msg_free(&r);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(huge_and_negative_lengths)
{
	struct pgo_decoder *d = decoder_with_outbox();
	static const uint32_t lengths[] = { 0x7fffffff, 0xffffffff, 0x80000000 };
	static const char *const errors[] = {
		"Insert: new tuple column 1 \"id\": truncated value (needs 2147483647 bytes, 3 left)",
		"Insert: new tuple column 1 \"id\": negative value length -1",
		"Insert: new tuple column 1 \"id\": negative value length -2147483648",
	};
	for (size_t i = 0; i < 3; i++) {
		struct msg m = { 0 };
		put_u8(&m, 'I');
		put_u32(&m, OUTBOX_OID);
		put_u8(&m, 'N');
		put_u16(&m, 3);
		put_u8(&m, 't');
		put_u32(&m, lengths[i]);
		put_bytes(&m, "abc", 3);
		decode_fails(d, &m, errors[i]);
		msg_free(&m);
	}

	struct msg m = { 0 };
	build_message(&m, 1, "p", "abc", 3);
	m.data[1 + 1 + 8 + 2] = 0x7f; /* the length's high byte: 0x7f000003 */
	decode_fails(d, &m, "Message: truncated content (needs 2130706435 bytes, 3 left)");
	m.data[1 + 1 + 8 + 2] = 0xff;
	decode_fails(d, &m, "Message: negative content length -16777213");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(huge_counts)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	put_u8(&m, 'R');
	put_u32(&m, 1);
	put_str(&m, "s");
	put_str(&m, "t");
	put_u8(&m, 'd');
	put_u16(&m, 0x7fff);
	put_bytes(&m,
	          "\x01"
	          "a\0"
	          "\0\0\0\x17"
	          "\xff\xff\xff\xff",
	          11); /* one column */
	decode_fails(d, &m, "Relation: truncated columns (32767 need at least 327670 bytes, 11 left)");
	m.data[m.len - 13] = 0x80; /* the count's high byte: 0x80ff */
	decode_fails(d, &m, "Relation: negative column count -32513");
	ck_assert_ptr_null(pgo_relation_get(d, 1));
	msg_free(&m);

	put_u8(&m, 'T');
	put_u32(&m, 0x7fffffff);
	put_u8(&m, 0);
	put_u32(&m, 1);
	decode_fails(d, &m, "Truncate: truncated relation OIDs (2147483647 need 8589934588 bytes, 4 left)");
	m.data[1] = 0xff;
	decode_fails(d, &m, "Truncate: negative relation count -1");
	msg_free(&m);

	put_u8(&m, 'T');
	put_u32(&m, 2);
	put_u8(&m, 0);
	put_u32(&m, 1);
	put_u16(&m, 0);
	decode_fails(d, &m, "Truncate: truncated relation OIDs (2 need 8 bytes, 6 left)");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(missing_string_terminator)
{
	struct pgo_decoder *d = pgo_decoder_new();
	struct msg m = { 0 };
	put_u8(&m, 'O');
	put_u64(&m, 1);
	put_bytes(&m, "abc", 3);
	decode_fails(d, &m, "Origin: origin name is not NUL-terminated within the message (3 bytes left)");
	msg_free(&m);

	put_u8(&m, 'R');
	put_u32(&m, 1);
	put_bytes(&m, "publi", 5);
	decode_fails(d, &m, "Relation: namespace is not NUL-terminated within the message (5 bytes left)");
	msg_free(&m);

	put_u8(&m, 'R');
	put_u32(&m, 1);
	put_str(&m, "public");
	put_str(&m, "t");
	put_u8(&m, 'd');
	put_u16(&m, 1);
	put_u8(&m, 1);
	put_bytes(&m, "abcdefghijkl", 12);
	decode_fails(d, &m,
	             "Relation: column 1: name is not NUL-terminated within the message (12 bytes left)");
	ck_assert_ptr_null(pgo_relation_get(d, 1));
	msg_free(&m);

	put_u8(&m, 'Y');
	put_u32(&m, 1);
	put_str(&m, "public");
	put_bytes(&m, "mood", 4);
	decode_fails(d, &m, "Type: type name is not NUL-terminated within the message (4 bytes left)");
	msg_free(&m);

	put_u8(&m, 'M');
	put_u8(&m, 0);
	put_u64(&m, 1);
	put_bytes(&m, "prefix", 6);
	decode_fails(d, &m, "Message: prefix is not NUL-terminated within the message (6 bytes left)");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(bad_value_kinds)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	put_u8(&m, 'I');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	put_text(&m, "1", 1);
	put_u8(&m, 'b');
	put_u32(&m, 1);
	put_u8(&m, 0);
	put_u8(&m, 'n');
	decode_fails(d, &m, "Insert: new tuple column 2 \"topic\": binary column values are not supported");
	m.data[1 + 4 + 1 + 2 + 6] = 'x';
	decode_fails(d, &m, "Insert: new tuple column 2 \"topic\": unknown value kind 'x'");
	m.data[1 + 4 + 1 + 2 + 6] = 0;
	decode_fails(d, &m, "Insert: new tuple column 2 \"topic\": unknown value kind 0x00");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(bad_tuple_markers)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m = { 0 };
	build_insert(&m, OUTBOX_OID);
	m.data[5] = 'K';
	decode_fails(d, &m, "Insert: expected 'N' (new tuple) but got 'K'");
	m.data[5] = 0;
	decode_fails(d, &m, "Insert: expected 'N' (new tuple) but got 0x00");
	msg_free(&m);

	build_update_with_old(&m, 'X');
	decode_fails(d, &m, "Update: expected 'K' (old key), 'O' (old tuple) or 'N' (new tuple) but got 'X'");
	msg_free(&m);

	build_update_with_old(&m, 'K');
	m.data[1 + 4 + 1 + 2 + 6 + 14 + 1] = 'O'; /* where the 'N' belongs */
	decode_fails(d, &m, "Update: expected 'N' (new tuple) but got 'O'");
	msg_free(&m);

	put_u8(&m, 'D');
	put_u32(&m, OUTBOX_OID);
	put_u8(&m, 'N');
	put_u16(&m, 3);
	put_bytes(&m, "nnn", 3);
	decode_fails(d, &m, "Delete: expected 'K' (old key) or 'O' (old tuple) but got 'N'");
	msg_free(&m);
	pgo_decoder_free(d);
}
END_TEST

START_TEST(recovers_after_errors)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg bad = { 0 }, good = { 0 };
	struct pgo_msg out;
	build_insert(&bad, OUTBOX_OID);
	bad.len -= 1;
	build_insert(&good, OUTBOX_OID);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pgo_decode(d, bad.data, bad.len, &out), -1);
		decode_ok(d, &good, &out);
		assert_text(&out.u.insert.tuple.values[2], &good, "{\"a\":1}", 7);
	}
	msg_free(&bad);
	msg_free(&good);
	pgo_decoder_free(d);
	pgo_decoder_free(NULL);
}
END_TEST

/* Flipping single bytes of every kind must never crash or leak; sanitizers judge. */
START_TEST(mutations_do_not_crash)
{
	struct pgo_decoder *d = decoder_with_outbox();
	struct msg m[10] = { { 0 } };
	build_each_kind(m);
	static const uint8_t patterns[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 'n', 't', 'u', 'N', 'K' };
	for (int k = 0; k < 10; k++) {
		for (size_t pos = 0; pos < m[k].len; pos++) {
			for (size_t p = 0; p < sizeof patterns; p++) {
				struct msg copy = { 0 };
				struct pgo_msg out;
				put_bytes(&copy, m[k].data, m[k].len);
				copy.data[pos] = patterns[p];
				if (pgo_decode(d, copy.data, copy.len, &out) < 0)
					ck_assert(pgo_error(d)[0] != '\0');
				msg_free(&copy);
			}
		}
		msg_free(&m[k]);
	}
	pgo_decoder_free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgoutput");
	TCase *kinds = tcase_create("kinds");
	tcase_add_test(kinds, decodes_begin);
	tcase_add_test(kinds, decodes_commit);
	tcase_add_test(kinds, decodes_origin);
	tcase_add_test(kinds, decodes_relation);
	tcase_add_test(kinds, decodes_relation_without_columns);
	tcase_add_test(kinds, decodes_type);
	tcase_add_test(kinds, decodes_insert);
	tcase_add_test(kinds, insert_null_empty_and_embedded_nul);
	tcase_add_test(kinds, update_without_old_tuple);
	tcase_add_test(kinds, update_with_old_tuple);
	tcase_add_test(kinds, decodes_delete);
	tcase_add_test(kinds, decodes_truncate);
	tcase_add_test(kinds, decodes_messages);
	suite_add_tcase(s, kinds);

	TCase *cache = tcase_create("cache");
	tcase_add_test(cache, redefinition_replaces_in_place);
	tcase_add_test(cache, insert_after_redefinition_uses_new_columns);
	tcase_add_test(cache, many_relations);
	tcase_add_test(cache, tuple_arrays_are_reused);
	suite_add_tcase(s, cache);

	TCase *malformed = tcase_create("malformed");
	tcase_set_timeout(malformed, 60);
	tcase_add_test(malformed, truncated_anywhere);
	tcase_add_test(malformed, truncation_messages);
	tcase_add_test(malformed, unknown_kinds);
	tcase_add_test(malformed, unknown_relation);
	tcase_add_test(malformed, column_count_mismatch);
	tcase_add_test(malformed, trailing_bytes);
	tcase_add_test(malformed, huge_and_negative_lengths);
	tcase_add_test(malformed, huge_counts);
	tcase_add_test(malformed, missing_string_terminator);
	tcase_add_test(malformed, bad_value_kinds);
	tcase_add_test(malformed, bad_tuple_markers);
	tcase_add_test(malformed, recovers_after_errors);
	tcase_add_test(malformed, mutations_do_not_crash);
	suite_add_tcase(s, malformed);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
