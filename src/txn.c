#include "txn.h"

#include <string.h>

void txn_begin(struct txn *t, lsn_t commit_lsn, pg_time_t commit_time)
{
	*t = (struct txn){ .open = true, .commit_lsn = commit_lsn, .commit_time = commit_time };
	lsn_format(commit_lsn, t->lsn_text);
	pg_time_format(commit_time, t->time_text, sizeof t->time_text);
}

void txn_end(struct txn *t)
{
	t->open = false;
}

bool txn_next_event(struct txn *t, struct event_pos handled, struct event *ev)
{
	struct event_pos pos = { t->commit_lsn, t->next_index++ };
	if (!event_pos_after(pos, handled))
		return false;
	ev->commit_lsn = pos.commit_lsn;
	ev->index = pos.index;
	ev->commit_time = t->commit_time;
	memcpy(ev->lsn_text, t->lsn_text, sizeof ev->lsn_text);
	memcpy(ev->commit_time_text, t->time_text, sizeof ev->commit_time_text);
	return true;
}
