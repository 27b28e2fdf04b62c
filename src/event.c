#include "event.h"

#include <string.h>

/* User properties are kept as "name\0value\0" pairs in one buffer: no allocation per
 * property, and the strings are ready for the MQTT client as they are. */

void event_init(struct event *ev)
{
	memset(ev, 0, sizeof *ev);
}

void event_trim(struct event *ev)
{
	struct buf *bufs[] = { &ev->topic, &ev->payload, &ev->event_id, &ev->user_properties };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		if (bufs[i]->cap > EVENT_BUFFER_KEEP_MAX)
			buf_finish(bufs[i]);
}

void event_finish(struct event *ev)
{
	buf_finish(&ev->topic);
	buf_finish(&ev->payload);
	buf_finish(&ev->event_id);
	buf_finish(&ev->message_source);
	buf_finish(&ev->response_topic);
	buf_finish(&ev->correlation_data);
	buf_finish(&ev->user_properties);
	buf_finish(&ev->stored_content_type);
	buf_finish(&ev->cleanup_key);
}

void event_clear_properties(struct event *ev)
{
	buf_reset(&ev->user_properties);
}

void event_add_property(struct event *ev, const char *name, const char *value, size_t len)
{
	buf_append(&ev->user_properties, name, strlen(name) + 1);
	buf_append(&ev->user_properties, value, len);
	buf_putc(&ev->user_properties, '\0');
}

bool event_next_property(const struct event *ev, size_t *cursor, const char **name, const char **value)
{
	if (*cursor >= ev->user_properties.len)
		return false;
	*name = ev->user_properties.data + *cursor;
	*value = *name + strlen(*name) + 1;
	*cursor = (size_t)(*value - ev->user_properties.data) + strlen(*value) + 1;
	return true;
}

const char *event_op_named(const char *name, size_t len)
{
	static const char *const ops[] = { EVENT_OP_INSERT, EVENT_OP_UPDATE, EVENT_OP_DELETE };
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strlen(ops[i]) == len && memcmp(name, ops[i], len) == 0)
			return ops[i];
	return NULL;
}
