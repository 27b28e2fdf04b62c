/*
 * The transaction being received, and the numbering of its events (doc/design.md §2.5,
 * §14): each routed change or message gets the next index from 0 in row order, and every
 * event carries its transaction's commit LSN and time, formatted once per transaction. A
 * replay (an event at or before what was handled already) is recognised here. Pure.
 */
#ifndef OUTBOX_TXN_H
#define OUTBOX_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "ledger.h"
#include "lsn.h"
#include "pgtime.h"

struct txn {
	bool open;
	lsn_t commit_lsn;
	pg_time_t commit_time;
	int32_t next_index;
	char lsn_text[LSN_BUFLEN];
	char time_text[PG_TIME_TEXT_BUFLEN];
};

/* A Begin message. */
void txn_begin(struct txn *t, lsn_t commit_lsn, pg_time_t commit_time);

/* The Commit message, or the stream lost in the middle. */
void txn_end(struct txn *t);

/* Numbers the next event of the open transaction into ev (position, LSN and time). Returns
 * false, leaving ev alone, when that position is not after handled: published before. */
bool txn_next_event(struct txn *t, struct event_pos handled, struct event *ev);

#endif
