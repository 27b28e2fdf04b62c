#include "status_topic.h"

#include <inttypes.h>
#include <string.h>

#include "json.h"
#include "lsn.h"

static void add_string(struct buf *out, const char *name, const char *value)
{
	buf_printf(out, ",\"%s\":", name);
	json_append_string(out, value, strlen(value));
}

static void begin(struct buf *out, const char *state, const char *client_id)
{
	buf_reset(out);
	buf_puts(out, "{\"state\":");
	json_append_string(out, state, strlen(state));
	add_string(out, "client_id", client_id);
}

void status_topic_report(struct buf *out, const char *state, const struct status_topic_who *who,
                         pg_time_t time, const struct stats_view *v)
{
	char when[PG_TIME_TEXT_BUFLEN], lsn[LSN_BUFLEN];
	pg_time_format(time, when, sizeof when);
	begin(out, state, who->client_id);
	add_string(out, "slot", who->slot);
	add_string(out, "version", who->version);
	add_string(out, "time", when);
	buf_printf(out,
	           ",\"published\":%" PRIu64 ",\"rate\":%.1f,\"dead_lettered\":%" PRIu64
	           ",\"pending\":%zu,\"lag_bytes\":%" PRIu64 ",\"lag_ms\":%" PRId64,
	           v->published, v->rate, v->dead_lettered, v->pending, v->lag_bytes, v->lag_ms);
	add_string(out, "checkpoint_lsn", lsn_format(v->checkpoint_lsn, lsn));
	buf_printf(out, ",\"reconnects\":%" PRIu64 "}", v->reconnects);
}

void status_topic_offline(struct buf *out, const char *client_id)
{
	begin(out, "offline", client_id);
	buf_puts(out, "}");
}
