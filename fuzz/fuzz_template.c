/*
 * libFuzzer target: topic templates (src/template.c), parsing and expansion.
 *
 * Input: the template source, a NUL byte, then one value per field in order of
 * appearance, each introduced by one length byte L:
 *   L = 0x00..0xFD  the next L bytes (fewer if the input ends) are the value;
 *   L = 0xFE        the next byte repeated LONG_VALUE_LEN times (reaches the topic limit);
 *   L = 0xFF        SQL NULL.
 * Fields left without a value once the input ends get the empty string. Without a NUL
 * the whole input is the source and expansion is skipped.
 * Example: "shop/{type}/{id}\0" "\x05" "order" "\xff" -> type = "order", id = NULL.
 *
 * Checked beyond "no crash, no leak": a failed expansion leaves the output empty; a
 * successful one is between 1 and TOPIC_MAX_LEN bytes of valid UTF-8 without wildcards,
 * NUL, control characters or noncharacters (checked by a decoder of our own, not
 * template.c's); expanding again into the same buffer gives the same topic.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "template.h"

#define LONG_VALUE_LEN 40000
#define LEN_LONG 0xFE
#define LEN_NULL 0xFF

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Takes the next value from *data; see the format above. */
static struct template_value next_value(const uint8_t **data, size_t *size)
{
	if (*size == 0)
		return (struct template_value){ copy_exact("", 0), 0, false };
	uint8_t len = **data;
	(*data)++;
	(*size)--;
	if (len == LEN_NULL)
		return (struct template_value){ NULL, 0, true };
	if (len == LEN_LONG) {
		uint8_t fill = 'a';
		if (*size) {
			fill = **data;
			(*data)++;
			(*size)--;
		}
		char *long_value = malloc(LONG_VALUE_LEN);
		require(long_value != NULL, "malloc");
		memset(long_value, fill, LONG_VALUE_LEN);
		return (struct template_value){ long_value, LONG_VALUE_LEN, false };
	}
	size_t n = len < *size ? len : *size;
	struct template_value v = { copy_exact(*data, n), n, false };
	*data += n;
	*size -= n;
	return v;
}

/* What the values alone add to the topic. */
static size_t values_len(const struct template *t, const struct template_value *values)
{
	size_t n = 0;
	for (size_t i = 0; i < template_nfields(t); i++)
		n += values[i].len;
	return n;
}

/* What libmosquitto refuses: control characters and noncharacters. */
static bool topic_codepoint(uint32_t cp)
{
	bool control = cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
	bool nonchar = (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
	return !control && !nonchar && cp != '+' && cp != '#';
}

static void check_topic_text(const unsigned char *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0, n; i < len; i += n) {
		n = utf8_next(s + i, len - i, &cp);
		require(n > 0, "a topic is valid UTF-8");
		require(topic_codepoint(cp), "a topic has no wildcard, NUL, control or noncharacter");
	}
}

static void check_topic(const struct buf *out, size_t values_len)
{
	require(out->len >= 1 && out->len <= TOPIC_MAX_LEN, "topic length within 1..TOPIC_MAX_LEN");
	require(out->len >= values_len, "topic holds every value");
	require(out->data[out->len] == '\0', "output is NUL-terminated");
	check_topic_text((const unsigned char *)out->data, out->len);
}

static void expand(const struct template *t, const struct template_value *values)
{
	struct buf out = BUF_INIT;
	char why[256];
	if (template_expand(t, values, &out, why, sizeof why) < 0) {
		require(out.len == 0, "a failed expansion writes nothing");
		buf_finish(&out);
		return;
	}
	check_topic(&out, values_len(t, values));
	char *first = copy_exact(out.data, out.len);
	size_t first_len = out.len;
	require(template_expand(t, values, &out, why, sizeof why) == 0, "expansion is repeatable");
	require(out.len == first_len && memcmp(out.data, first, first_len) == 0,
	        "expansion gives the same topic twice");
	free(first);
	buf_finish(&out);
}

static void parse_and_expand(const char *src, const uint8_t *data, size_t size, int with_values)
{
	char err[256];
	struct template *t = template_parse(src, err, sizeof err);
	if (!t)
		return;
	size_t n = template_nfields(t);
	require(template_field(t, n) == NULL, "no field past the last");
	struct template_value *values = calloc(n ? n : 1, sizeof *values);
	require(values != NULL, "calloc");
	for (size_t i = 0; i < n; i++) {
		require(template_field(t, i) != NULL && *template_field(t, i), "field names are not empty");
		values[i] = next_value(&data, &size);
	}
	if (with_values)
		expand(t, values);
	for (size_t i = 0; i < n; i++)
		free((void *)values[i].data);
	free(values);
	template_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_name("fuzz_template");
	const uint8_t *nul = memchr(data, '\0', size);
	size_t src_len = nul ? (size_t)(nul - data) : size;
	char *src = malloc(src_len + 1);
	require(src != NULL, "malloc");
	memcpy(src, data, src_len);
	src[src_len] = '\0';
	size_t rest = nul ? size - src_len - 1 : 0;
	parse_and_expand(src, data + src_len + (nul ? 1 : 0), rest, nul != NULL);
	free(src);
	return 0;
}
