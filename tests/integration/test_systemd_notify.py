#!/usr/bin/python3
"""doc/design.md §8 under systemd: READY=1 once both sides are up, STATUS= on every change of
state and at least every 5 s, WATCHDOG=1 while WatchdogSec is set, STOPPING=1 on the way out.

The test plays the service manager: it binds the datagram socket named by NOTIFY_SOCKET
and sets WATCHDOG_USEC, as systemd does for a Type=notify unit with WatchdogSec=.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness.notify import NotifySocket  # noqa: E402
from harness.util import wait_until  # noqa: E402


def statuses(notify):
    """What STATUS= said, in order."""
    return [line[len("STATUS="):] for line in notify.lines() if line.startswith("STATUS=")]


class SystemdNotifyTest(harness.IntegrationCase):

    def notify_socket(self):
        path = os.path.join(self.workdir, f"{self.name}.sock")
        notify = NotifySocket(path)
        self.addCleanup(notify.close)
        return notify, path

    def test_ready_status_watchdog_stopping(self):
        db = self.new_database()
        notify, path = self.notify_socket()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                      log={"stats_interval": "200ms"})
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="300000")
        relay = self.relay_with_config(config, env=env).start()
        wait_until(lambda: "READY=1" in notify.lines(), 30, "READY=1", check=relay.check_running)
        # Ready means streaming: the slot is in use by then.
        self.assertTrue(db.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                                  (self.name,)))
        wait_until(lambda: notify.lines().count("WATCHDOG=1") >= 3, 30, "three watchdog pings",
                   check=relay.check_running)
        wait_until(lambda: any(s.startswith("streaming, broker connected; published ")
                               for s in statuses(notify)), 30,
                   "a status line with the state and the counters", check=relay.check_running)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: notify.lines().count("READY=1") == 2, 30, "READY=1 after the reload",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        lines = notify.lines()
        self.assertEqual(lines[-1], "STOPPING=1")
        reloading = lines.index("RELOADING=1")
        self.assertRegex(lines[reloading + 1], r"^MONOTONIC_USEC=\d+$")
        self.assertLess(lines.index("READY=1"), reloading)
        self.assertEqual(lines.index("READY=1", reloading), len(lines) - 1 - lines[::-1].index("READY=1"))

    def test_status_follows_each_change_of_state(self):
        """Standby, streaming, broker away and back, stopping: each is said at once, and
        STATUS= is renewed although log.stats_interval is 0 (no stats line at all)."""
        db = self.new_database()
        active = self.new_relay(db, name="active").start()
        active.wait_for_slot(db, self.name)
        notify, path = self.notify_socket()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                      log={"stats_interval": "0s"})
        relay = self.relay_with_config(config, "watched", env=dict(os.environ, NOTIFY_SOCKET=path))
        relay.start()

        def said(prefix, after=-1):
            """The index of the first status after index `after` that starts with prefix."""
            found = [i for i, s in enumerate(statuses(notify)) if i > after and s.startswith(prefix)]
            return found[0] if found else None

        def wait_for(prefix, after=-1):
            wait_until(lambda: said(prefix, after) is not None, 60, f"STATUS={prefix}",
                       check=relay.check_running)
            return said(prefix, after)

        standby = wait_for("standby (the slot is in use), broker disconnected; published ")
        self.assertEqual(active.terminate(), 0)
        streaming = wait_for("streaming, broker connected; ", standby)
        # Renewed every 5 s while nothing changes.
        wait_until(lambda: sum(s.startswith("streaming, broker connected; ")
                               for s in statuses(notify)[streaming:]) >= 3, 60,
                   "STATUS= renewed twice", check=relay.check_running)

        port = self.mqtt.port
        self.mqtt.stop()
        away = wait_for("streaming, broker disconnected; ", streaming)
        # The renewal says why: what the last attempt met, and where.
        wait_until(lambda: any(f"; broker: cannot connect to broker: Connection refused (127.0.0.1:{port})"
                               in s for s in statuses(notify)[away:]), 60,
                   "STATUS= naming why the broker is away", check=relay.check_running)
        self.mqtt.start()
        back = wait_for("streaming, broker connected; ", away)

        self.assertEqual(relay.terminate(), 0)
        stopping = said("stopping, streaming, broker connected; ", back)
        self.assertIsNotNone(stopping, statuses(notify))
        self.assertEqual(notify.lines()[-1], "STOPPING=1")
        self.assertNotIn("msg=stats", relay.stderr())
        for status in statuses(notify)[standby:]:
            if "; " in status:
                self.assertRegex(status.split("; ", 1)[1],
                                 r"^published \d+, \d+\.\d/s, dead-lettered \d+, pending \d+,"
                                 r" lag \d+ ms, \d+ bytes(; (PostgreSQL|broker): .+)*$")

    def test_status_says_when_postgresql_is_unreachable(self):
        db = self.new_database()
        notify, path = self.notify_socket()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                      source={"conninfo": "host=127.0.0.1 port=1 dbname=x"})
        relay = self.relay_with_config(config, env=dict(os.environ, NOTIFY_SOCKET=path)).start()
        wait_until(lambda: sum(s.startswith("PostgreSQL disconnected, broker disconnected; ")
                               for s in statuses(notify)) >= 2, 60,
                   "STATUS= said and renewed while PostgreSQL is away", check=relay.check_running)
        self.assertIn("; PostgreSQL: PostgreSQL unavailable", statuses(notify)[-1])
        self.assertEqual(relay.terminate(), 0)
        self.assertNotIn("READY=1", notify.lines())

    def test_journal_stream_gives_priority_prefixes(self):
        """With stderr on the journal, each line starts with its syslog priority, no ts."""
        db = self.new_database()
        config = harness.relay_config(self.pg, self.mqtt, db.name, self.name,
                                      source={"conninfo": "host=127.0.0.1 port=1 dbname=x"})
        relay = self.relay_with_config(config)
        relay.runs += 1     # the next run's stderr file, made now to know its inode
        log_path = relay.log_path
        relay.runs -= 1
        open(log_path, "w").close()
        st = os.stat(log_path)
        relay.env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        relay.start()
        wait_until(lambda: "<4>level=warn" in relay.stderr(), 30, "a warning for the journal",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        lines = relay.stderr().splitlines()
        self.assertTrue(lines[0].startswith("<6>level=info msg=starting "), lines[0])
        self.assertTrue(all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines)
        self.assertFalse(any("ts=" in line for line in lines))

        # Any other stderr (a child's, a redirected one) keeps the plain format.
        relay.env = dict(os.environ, JOURNAL_STREAM="1:1")
        relay.start()
        wait_until(lambda: "level=warn" in relay.stderr(), 30, "a warning",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        self.assertTrue(relay.stderr().startswith("ts="))


if __name__ == "__main__":
    harness.main()
