"""What the fault suite asserts about a recorded stream (doc/design.md §2, §10): every committed
event present, none of a rolled-back transaction, first occurrences in commit order, every
repeat identical to the original, and no more repeats than allowed."""

import os

from .recorder import event_id
from .util import wait_until


def full_size():
    """The full-size runs (OUTBOX_FAULT_FULL=1); CI runs smaller ones."""
    return os.environ.get("OUTBOX_FAULT_FULL") == "1"


def wait_for_all(test, rec, committed, relay, timeout=600):
    """Waits until every committed event has arrived at least once (repeats do not count)."""
    wanted = {str(row_id) for row_id, _, _ in committed}

    def arrived():
        return wanted <= {event_id(m) for m in rec.messages}
    wait_until(arrived, timeout, f"all {len(wanted)} committed events", check=relay.check_running)


class DeliveryReport:
    def __init__(self, messages, committed, rolled_back=()):
        self.committed = [str(row_id) for row_id, _, _ in committed]
        self.expected = {str(row_id): (topic, payload) for row_id, topic, payload in committed}
        self.rolled_back = set(rolled_back)
        self.first = []
        self.seen = {}
        self.duplicates = 0
        self.mismatched = []
        for m in messages:
            key = event_id(m)
            content = (m["topic"], m.get("payload"))
            if key in self.seen:
                self.duplicates += 1
                if self.seen[key] != content:
                    self.mismatched.append(key)
                continue
            self.seen[key] = content
            self.first.append(key)

    def check(self, test, max_duplicates=0):
        """Asserts the guarantee; max_duplicates is what the faults allowed."""
        missing = [k for k in self.committed if k not in self.seen]
        test.assertEqual(missing[:10], [], f"{len(missing)} committed events lost")
        test.assertEqual(sorted(self.rolled_back & set(self.seen))[:10], [],
                         "events of rolled-back transactions published")
        unknown = [k for k in self.first if k not in self.expected]
        test.assertEqual(unknown[:10], [], "events nobody committed")
        test.assertEqual(self.first, self.committed, "first occurrences out of commit order")
        wrong = [k for k in self.first if self.seen[k] != self.expected[k]]
        test.assertEqual(wrong[:10], [], "events with the wrong topic or payload")
        test.assertEqual(self.mismatched[:10], [], "repeats that differ from the original")
        test.assertLessEqual(self.duplicates, max_duplicates, "more repeats than allowed")
