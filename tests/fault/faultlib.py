"""Shared parts of the fault suite: sizes, the event stream, and the delivery checks.

Every fault test streams a known set of events through the relay while something breaks,
and checks what a subscriber recorded against doc/design.md §2:

- every committed event is there (first occurrences equal the committed rows, exactly);
- nothing from a rolled-back transaction;
- first occurrences in commit order (the writer is the only session writing the outbox,
  so commit order is the order of the bigserial ids);
- every duplicate has the same event-id, topic and payload as the original;
- duplicates only where doc/design.md §2.4 allows them, counted exactly or bounded per fault.

Sizes: the default is reduced so that one plain run of the whole suite stays under about
four minutes on two cores (CI runs it twice, once under ASan+UBSan). OUTBOX_FAULT_FULL=1
selects the full sizes. OUTBOX_FAULT_SEED fixes the random fault moments (the seed
used is printed either way).
"""

import bisect
import collections
import json
import os
import random
import re
import signal
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import parse_lsn  # noqa: E402
from harness.relay import relay_binary  # noqa: E402
from harness.util import wait_until  # noqa: E402

FULL = os.environ.get("OUTBOX_FAULT_FULL", "") not in ("", "0")


def size(default, full):
    """The reduced default, or the full-size number with OUTBOX_FAULT_FULL=1."""
    return full if FULL else default


def seeded_random(label):
    seed = os.environ.get("OUTBOX_FAULT_SEED") or str(random.SystemRandom().randrange(1 << 32))
    sys.stderr.write(f"{label}: OUTBOX_FAULT_SEED={seed}\n")
    return random.Random(f"{seed}:{label}")


_sanitized = None


def sanitized():
    """True when the relay under test is built with AddressSanitizer."""
    global _sanitized
    if _sanitized is None:
        with open(relay_binary(), "rb") as f:
            _sanitized = b"__asan_init" in f.read()
    return _sanitized


# --- the stream of events ------------------------------------------------------------

AGGREGATES = ("order", "customer", "invoice")

INSERT = """
WITH ins AS (
    INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
    SELECT %(agg)s, ((%(txn)s + g) %% 13)::text, 'written',
           jsonb_build_object('txn', %(txn)s, 'row', g, 'committed', %(commit)s)
    FROM generate_series(0, %(rows)s - 1) AS g
    ORDER BY g
    RETURNING id)
SELECT min(id), max(id), count(*) FROM ins
"""


def make_plan(rng, committed_events, large_rows, rollback_every=9, max_rows=20):
    """Transactions as (rows, commit): single-row and 2..max_rows-row ones, roughly one in
    rollback_every rolled back, and one transaction of large_rows rows about 40% in.
    The committed rows add up to committed_events exactly."""
    small = committed_events - large_rows
    assert small > 0
    plan, total, large_done = [], 0, large_rows == 0
    while total < small:
        if not large_done and total >= small * 2 // 5:
            plan.append((large_rows, True))
            large_done = True
        if rng.randrange(rollback_every) == 0:
            plan.append((rng.randint(1, 5), False))
            continue
        rows = 1 if rng.random() < 0.5 else rng.randint(2, max_rows)
        rows = min(rows, small - total)
        plan.append((rows, True))
        total += rows
    if not large_done:
        plan.append((large_rows, True))
    assert sum(r for r, c in plan if c) == committed_events
    return plan


class StreamWriter(threading.Thread):
    """Writes a plan of transactions on its own connection, at most rows_per_second.

    committed: (first_id, rows) of each committed transaction in commit order (ids are
    consecutive within a transaction: one session draws them from the sequence).
    rolled_back: the same for rolled-back ones. pause()/resume() hold the writer between
    transactions, so that nothing is ever in doubt when the server goes away.
    """

    def __init__(self, pg, dbname, plan, rows_per_second=None):
        super().__init__(daemon=True)
        self.pg = pg
        self.dbname = dbname
        self.plan = plan
        self.rate = rows_per_second
        self.committed = []
        self.rolled_back = []
        self.committed_rows = 0
        self.error = None
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._paused = False
        self._idle = False          # waiting between transactions, or finished
        self._reconnect = False
        self.conn = None

    def run(self):
        try:
            self.conn = psycopg2.connect(self.pg.conninfo(self.dbname))
            start = time.monotonic()
            for txn, (rows, commit) in enumerate(self.plan):
                self._gate()
                self._write(txn, rows, commit)
                if self.rate and commit:
                    ahead = self.committed_rows / self.rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
            self.conn.close()
        except Exception as e:  # reported by finish()
            self.error = e
        finally:
            with self._cond:
                self._idle = True
                self._cond.notify_all()

    def _gate(self):
        with self._cond:
            while self._paused:
                self._idle = True
                self._cond.notify_all()
                self._cond.wait()
            self._idle = False
            reconnect, self._reconnect = self._reconnect, False
        if reconnect:
            self.conn.close()
            self.conn = psycopg2.connect(self.pg.conninfo(self.dbname))

    def _write(self, txn, rows, commit):
        with self.conn.cursor() as cur:
            cur.execute(INSERT, {"agg": AGGREGATES[txn % 3], "txn": txn, "rows": rows,
                                 "commit": commit})
            first, last, count = cur.fetchone()
        if last - first + 1 != count or count != rows:
            raise AssertionError(f"transaction {txn}: ids {first}..{last} for {rows} rows")
        if commit:
            self.conn.commit()
        else:
            self.conn.rollback()
        with self._lock:
            (self.committed if commit else self.rolled_back).append((first, rows))
            if commit:
                self.committed_rows += rows

    def pause(self, timeout=120):
        """Returns once the writer is between transactions and will not start another."""
        with self._cond:
            self._paused = True
            if not self._cond.wait_for(lambda: self._idle or not self.is_alive(), timeout):
                raise TimeoutError("the writer did not pause")
        if self.error:
            raise self.error

    def resume(self):
        """Continues on a new connection (the server may have restarted meanwhile)."""
        with self._cond:
            self._paused = False
            self._reconnect = True
            self._cond.notify_all()

    def finish(self, timeout=300):
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("the writer did not finish")
        if self.error:
            raise self.error

    @property
    def total(self):
        return sum(r for r, c in self.plan if c)


# --- what the subscriber got ---------------------------------------------------------

# envelope: the whole message body when it is an envelope (MQTT 3.1.1 routes), else None.
Msg = collections.namedtuple("Msg", "eid topic payload lsn at envelope", defaults=(None,))


def compact(msg):
    """The recorder's transform: what the checks need, small enough for a million.

    An MQTT 3.1.1 message has no properties: its route must use `payload: envelope`, and
    the event-id, LSN and outbox payload are read from the envelope (payload is then the
    outbox column's JSON text, as PostgreSQL prints it, so verify_stream compares it with
    the table; envelope keeps the whole body, which a repeat must match too)."""
    eid = lsn = None
    for key, value in msg.get("user_properties", []):
        if key == "event-id":
            if eid is not None:
                raise AssertionError(f"two event-id properties in {msg!r}")
            eid = value
        elif key == "lsn":
            lsn = sys.intern(value)
    if eid is None and not msg.get("user_properties"):
        body = msg.get("payload", "")
        try:
            env = json.loads(body)
            eid, lsn, payload = env["event_id"], sys.intern(env["lsn"]), env["row"]["payload"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"no event-id property and no envelope in {msg!r}") from None
        return Msg(eid, sys.intern(msg["topic"]), json.dumps(payload), lsn, time.monotonic(),
                   body)
    if eid is None:
        raise AssertionError(f"no event-id property in {msg!r}")
    return Msg(eid, sys.intern(msg["topic"]), msg.get("payload", msg.get("payload_b64")), lsn,
               time.monotonic())


class DistinctCount:
    """A recorder transform (compact) that also counts the distinct event-ids received, so
    that a test can wait on a count without going over every message again."""

    def __init__(self):
        self.seen = set()

    def __call__(self, msg):
        m = compact(msg)
        self.seen.add(m.eid)
        return m

    def __len__(self):
        return len(self.seen)


class Positions:
    """Event positions of the committed stream, from the writer's ranges and the LSNs the
    subscriber saw: index in commit order, and (commit LSN, index in its transaction)."""

    def __init__(self, writer):
        self.firsts = [first for first, _ in writer.committed]
        self.cum = [0]
        for _, rows in writer.committed:
            self.cum.append(self.cum[-1] + rows)
        self.total = self.cum[-1]
        self.rolled_back = set()
        for first, rows in writer.rolled_back:
            self.rolled_back.update(str(i) for i in range(first, first + rows))
        self.txn_of_lsn = {}

    def txn(self, eid):
        """Index of the committed transaction holding event eid, or None."""
        i = int(eid)
        t = bisect.bisect_right(self.firsts, i) - 1
        if t < 0 or i >= self.firsts[t] + self.cum[t + 1] - self.cum[t]:
            return None
        return t

    def index(self, eid):
        t = self.txn(eid)
        return None if t is None else self.cum[t] + int(eid) - self.firsts[t]

    def learn(self, messages):
        for m in messages:
            t = self.txn(m.eid)
            if t is not None and m.lsn is not None:
                self.txn_of_lsn.setdefault(m.lsn, t)

    def checkpoint_index(self, cp):
        """Index in commit order of the checkpoint's event; -1 for no checkpoint."""
        if cp is None or cp["commit_lsn"] in (None, "0/0"):
            return -1
        t = self.txn_of_lsn.get(cp["commit_lsn"])
        if t is None:
            raise AssertionError(f"checkpoint {cp} names a commit LSN no event was received with")
        return self.cum[t] + cp["event_index"]

    def eid_at(self, index):
        t = bisect.bisect_right(self.cum, index) - 1
        return str(self.firsts[t] + index - self.cum[t])


def expected_rows(pg, dbname):
    """(event-id, topic, payload) of every committed outbox row in commit (id) order,
    streamed from the server so that a million rows need not be held at once."""
    conn = psycopg2.connect(pg.conninfo(dbname))
    try:
        with conn.cursor(name="expected") as cur:
            cur.itersize = 20000
            cur.execute("SELECT id::text, 'shop/' || aggregate_type || '/' || aggregate_id,"
                        " payload::text FROM public.outbox o ORDER BY o.id")
            for row in cur:
                yield row
    finally:
        conn.close()


def committed_ids(pg, dbname, ids):
    """The ones of ids that are ids of committed outbox rows."""
    conn = psycopg2.connect(pg.conninfo(dbname))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id::text FROM public.outbox WHERE id = ANY(%s::bigint[])", (list(ids),))
            return {row[0] for row in cur}
    finally:
        conn.close()


def kill_grace():
    """Seconds allowed, beyond the checkpoint interval, between an acknowledgement and the
    checkpoint write that covers it (FaultCase.kill9)."""
    return 2.0 if sanitized() else 1.0


class FaultCase(harness.IntegrationCase):
    """IntegrationCase plus the stream checks of the fault suite."""

    def start_compact_recorder(self, **kwargs):
        return self.start_recorder(transform=compact, **kwargs)

    def start_writer(self, db, plan, rows_per_second=None):
        writer = StreamWriter(self.pg, db.name, plan, rows_per_second)
        writer.start()
        self.addCleanup(writer.finish)
        return writer

    def distinct(self, rec):
        return len({m.eid for m in rec.messages})

    def wait_for_distinct(self, rec, n, timeout=300, check=None):
        """Waits until n distinct events arrived (duplicates not counted)."""
        wait_until(lambda: self.distinct(rec) >= n, timeout, f"{n} distinct events",
                   check=check, interval=0.25)

    def kill9(self, relay, rec, db, writer, marks, max_inflight, interval_s):
        """kill -9 the relay now and account for what its next run must publish again.

        After the kill, a fence through the broker makes sure everything the broker took
        from the dead relay has reached the subscriber; the checkpoint row is then final.
        The next run must start right after the checkpoint's event (verify_runs checks
        that), so the events past the checkpoint received so far are exactly the ones it
        publishes a second time ("overlap", returned).

        The bound (doc/design.md §2.4 (a) and (b)): a kill repeats only the events acknowledged
        since the last checkpoint write, plus those in flight (published, not yet
        acknowledged: at most broker.max_inflight). The relay writes a checkpoint at most
        delivery.checkpoint_interval after an acknowledgement, so an event acknowledged
        earlier than one interval before the kill is covered by a checkpoint. Arrival at
        the subscriber stands in for the acknowledgement (the broker forwards and
        acknowledges at the same moment); a grace period covers the loop's latency and a
        slow sanitizer build. So: at most max_inflight of the events past the checkpoint
        may have arrived earlier than interval + grace before the kill.
        """
        t_kill = time.monotonic()
        relay.kill()
        self.assertEqual(relay.proc.returncode, -signal.SIGKILL, "the relay died of SIGKILL")
        messages = rec.sync()
        pos = Positions(writer)
        pos.learn(messages)
        cp = self.checkpoint(db)
        cp_index = pos.checkpoint_index(cp)
        if cp is not None:
            self.assertEqual(cp["published"], cp_index + 1,
                             f"checkpoint {cp}: published counts the events up to its position")
        indexes = [pos.index(m.eid) for m in messages]
        self.assertNotIn(None, indexes, "only committed events arrive")
        overlap = max(max(indexes, default=-1) - cp_index, 0)
        grace = kill_grace()
        stale_before = t_kill - interval_s - grace
        run_begin = marks[-1][0]
        stale = {i for m, i in zip(messages[run_begin:], indexes[run_begin:])
                 if i > cp_index and m.at < stale_before}
        self.assertLessEqual(
            len(stale), max_inflight,
            f"{len(stale)} events past checkpoint {cp} had arrived more than "
            f"{interval_s + grace:.1f}s before the kill: the checkpoint lags")
        sys.stderr.write(f"kill: checkpoint index {cp_index}, {overlap} events past it received,"
                         f" {len(stale)} of them before the last {interval_s + grace:.1f}s\n")
        marks.append((len(messages), cp_index))
        return overlap

    def published(self, db):
        """The checkpoint's count of acknowledged events (0 before the first checkpoint)."""
        cp = self.checkpoint(db)
        return cp["published"] if cp else 0

    def wait_published(self, db, n, relay, timeout=600):
        """Waits until the relay has acknowledged n events and checkpointed them. Unlike
        waiting for the subscriber, this ends when events are lost on the way, too."""
        wait_until(lambda: self.published(db) >= n, timeout,
                   f"the relay's checkpoint to count {n} events", check=relay.check_running,
                   interval=0.1)

    def assert_none_lost(self, messages, writer, context=""):
        """Every committed event arrived at least once; the failure says how many did not."""
        pos = Positions(writer)
        got = {m.eid for m in messages}
        missing = [i for i in range(pos.total) if pos.eid_at(i) not in got]
        if missing:
            blocks, start = [], missing[0]
            for a, b in zip(missing, missing[1:] + [None]):
                if b != a + 1:
                    blocks.append(f"{start}..{a}" if a > start else str(start))
                    if b is not None:
                        start = b
            self.fail(f"{len(missing)} of {pos.total} committed events lost{context}; "
                      f"commit-order indexes: {', '.join(blocks[:12])}"
                      f"{' ...' if len(blocks) > 12 else ''} ({len(blocks)} blocks)")

    def verify_stream(self, messages, writer, dbname):
        """The checks every fault test makes; returns the duplicates as a list of Msg."""
        self.assertIsNone(writer.error)
        pos = Positions(writer)
        first, order, duplicates, changed = {}, [], [], []
        for m in messages:
            original = first.get(m.eid)
            if original is None:
                first[m.eid] = m
                order.append(m.eid)
                continue
            duplicates.append(m)
            if (m.topic, m.payload, m.envelope) != (original.topic, original.payload,
                                                    original.envelope):
                changed.append((original, m))
        self.assertEqual(changed[:5], [], f"{len(changed)} duplicates differ from the original")
        leaked = [eid for eid in order if eid in pos.rolled_back]
        if leaked:
            # After an immediate shutdown the sequence may hand out again ids that only
            # rolled-back transactions had taken (their WAL was never flushed): such an id
            # names a committed row now, whose content the comparison below checks.
            leaked = [eid for eid in leaked if eid not in committed_ids(self.pg, dbname, leaked)]
        self.assertEqual(leaked[:10], [], f"{len(leaked)} events of rolled-back transactions")

        count = 0
        rows = expected_rows(self.pg, dbname)
        try:
            for want, eid in zip(rows, order):
                got = first[eid]
                if want != (got.eid, got.topic, got.payload):
                    self.fail(f"event {count} in commit order: expected {want}, first received"
                              f" {(got.eid, got.topic, got.payload)}")
                count += 1
        finally:
            rows.close()
        self.assertEqual(len(order), pos.total,
                         f"distinct events received: {len(order)}, committed: {pos.total}"
                         f" (missing from index {count} on)")
        self.assertEqual(count, pos.total)
        return duplicates

    def verify_runs(self, messages, writer, marks):
        """Per relay run: the run published exactly the committed events that follow the
        checkpoint it started from, in commit order, with no gap and no repeat.

        marks: (index in messages where the run begins, checkpoint index it started from).
        Proves that a restart resumes exactly at the checkpoint, mid-transaction too."""
        pos = Positions(writer)
        pos.learn(messages)
        bounds = [m[0] for m in marks] + [len(messages)]
        for run, (begin, cp_index) in enumerate(marks):
            got = [m.eid for m in messages[begin:bounds[run + 1]]]
            want = [pos.eid_at(i) for i in range(cp_index + 1, min(cp_index + 1 + len(got),
                                                                      pos.total))]
            if got != want:
                for i, (a, b) in enumerate(zip(got, want)):
                    if a != b:
                        break
                else:
                    i = min(len(got), len(want))
                self.fail(f"run {run} (after checkpoint index {cp_index}) published "
                          f"{len(got)} events; they differ from the committed stream at run "
                          f"position {i}: got {got[i:i + 3]}, expected {want[i:i + 3]}")


# --- processes --------------------------------------------------------------------------

class PeakMemory(threading.Thread):
    """Polls VmHWM (peak resident set) of a process until it exits; keeps the last value."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.interval = interval
        self.kib = 0
        self._stop = threading.Event()

    def run(self):
        while not self._stop.is_set():
            try:
                with open(self.path) as f:
                    text = f.read()
            except OSError:
                return
            match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
            if not match:
                return  # a zombie has no memory lines any more
            self.kib = max(self.kib, int(match.group(1)))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.join(5)
        return self.kib


def log_lines(relay, pattern):
    """Lines of the relay's current stderr matching the regular expression."""
    return [line for line in relay.stderr().splitlines() if re.search(pattern, line)]


__all__ = ["DistinctCount", "FULL", "FaultCase", "Msg", "PeakMemory", "Positions", "StreamWriter", "compact",
           "expected_rows", "kill_grace", "log_lines", "make_plan", "sanitized", "seeded_random", "size",
           "wait_until", "parse_lsn"]
