#!/usr/bin/python3
"""outbox-relay benchmark: the relay side by side with the physical limits of this machine.

    bench/run [--quick] [--scenario NAME]... [--profile] [--keep]

Builds an optimised relay and the tools in bench/tools (build-bench/), starts a throwaway
PostgreSQL (fsync on, wal_level=logical) and Mosquitto with the test harness
(tests/harness), runs each scenario and prints its table, then writes bench/RESULTS.md.
Every server and tool it starts is stopped by its PID and its temporary directory is
removed, also on Ctrl-C. bench/README.md says what is measured and how to read it.

Scenarios: single (200,000 one-row transactions), batch (2,000 x 100-row transactions),
big (one 1,000,000-row transaction), each drained at QoS 0, 1 and 2; live1k and live5k
(a fixed insert rate for 10 s, commit-to-subscriber latency at QoS 1); mqtt311 (the single
backlog at QoS 1 and 2 over MQTT 3.1.1 with in-flight windows of 20 and 1,000, and MQTT 5 with
1,000); backfill (a 200,000-row table published on a backfill request, beside the read and broker
limits, and the 1,000/s live latency without and during a backfill). --quick runs 1/20 of the
sizes (2 s for the live ones). --profile instead runs
`perf record -g` on the relay draining the single-row backlog at QoS 1 and writes
bench/PROFILE.md.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.case import OUTBOX_DDL  # noqa: E402
from harness.mosquitto import Mosquitto  # noqa: E402
from harness.postgres import Postgres  # noqa: E402
from harness.relay import relay_config, to_yaml  # noqa: E402
from harness.util import install_signal_cleanup, make_workdir, register_cleanup  # noqa: E402
from harness.util import unregister_cleanup, wait_until  # noqa: E402

BUILD = os.path.join(ROOT, "build-bench")
SETUP = ["meson", "setup", "build-bench", "--buildtype=release", "-Db_ndebug=true", "-Dtests=false"]
RELAY = os.path.join(BUILD, "src", "outbox-relay")
TOOLS = os.path.join(BUILD, "bench")
RESULTS = os.path.join(BENCH, "RESULTS.md")
PROFILE = os.path.join(BENCH, "PROFILE.md")

WINDOW = 1000              # the relay's broker.max_inflight, and the publisher's window
PUBLICATION = "bench"
TOPIC_TEMPLATE = "bench/{aggregate_type}/{aggregate_id}"
TOPIC_PATTERN = "bench/order/{i}"   # what the publisher sends: aggregate_id = n % TOPICS
TOPICS = 1000
PAYLOAD_PAD = 12           # makes payload::text about 200 bytes
STALL_S = 20               # a --drain still running this long after the last message: stalled

# Added to the harness's PostgreSQL settings (those are tuned for fast tests: fsync off).
PG_SETTINGS = """
# added by bench/run: durable, and no checkpoint in the middle of a scenario
fsync = on
full_page_writes = on
synchronous_commit = on
shared_buffers = 128MB
max_wal_size = 8GB
checkpoint_timeout = 30min
log_replication_commands = off
"""

# name -> (full parameters, --quick parameters, title)
BACKLOGS = {
    "single": ((200000, 1), (10000, 1), "200,000 single-row transactions"),
    "batch": ((2000, 100), (100, 100), "2,000 transactions of 100 rows"),
    "big": ((1, 1000000), (1, 50000), "one transaction of 1,000,000 rows"),
}
LIVES = {
    "live1k": ((1000, 10), (1000, 2), "live: 1,000 inserts/s for 10 s"),
    "live5k": ((5000, 10), (5000, 2), "live: 5,000 inserts/s for 10 s"),
}
# name -> (backlog, title): that backlog drained at QoS 1 and 2 with each (protocol, window) of
# PROTOCOL_WINDOWS, by the relay and by the broker limit. MQTT 3.1.1 has no Receive Maximum, so
# the relay's window there defaults to Mosquitto's default max_inflight_messages (20); 1,000
# needs a broker whose limit was raised (the bench broker has none); MQTT 5 for reference.
WINDOWS = {
    "mqtt311": ("single", "MQTT 3.1.1: in-flight window 20 versus 1,000"),
}
PROTOCOL_WINDOWS = (("mqttv311", 20), ("mqttv311", 1000), ("mqttv5", 1000))
PUBLISHER_PROTOCOL = {"mqttv5": "5", "mqttv311": "311"}   # bench_publisher's PROTOCOL argument
# Backfill (doc/design.md §22.1): rows already in the table before the slot, published on a
# request by a relay that is streaming and idle; (full, --quick) rows. The read limit reads the
# same table by primary key in chunks of READ_CHUNK rows.
BACKFILL_ROWS = (200000, 10000)
READ_CHUNK = 10000
# The live latency without and during a backfill of another table: (rows of that table,
# inserts/s, seconds), full and --quick. The backfill must outlast the measurement: at the
# 35-50,000 rows/s it runs at beside the live inserts on 2 cores, 500,000 rows would last
# barely longer than 10 s; the relay is stopped once the measurement is done.
BACKFILL_LIVE = ((1000000, 1000, 10), (200000, 1000, 2))
BACKFILL_TOPIC = "backfill/{aggregate_type}/{aggregate_id}"   # the backfilled table's route
SCENARIOS = list(BACKLOGS) + list(LIVES) + list(WINDOWS) + ["backfill"]

SQL_FUNCTIONS = f"""
-- About 200 bytes of JSON; "t" (the shortest key, so jsonb prints it first) is the insert
-- time in microseconds since the epoch, for the latency measurement.
CREATE FUNCTION bench_payload(n bigint) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
  SELECT jsonb_build_object(
    't', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    'order_id', n, 'customer', 'customer-' || (n % 5000), 'currency', 'EUR',
    'total', (n % 100000) / 100.0, 'status', 'placed',
    'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (n % 777), 'qty', 1 + n % 5)),
    'note', repeat('x', {PAYLOAD_PAD}))
$$;
-- n_tx transactions of rows_per_tx rows each: one COMMIT per transaction, no round trips.
CREATE PROCEDURE bench_fill(n_tx int, rows_per_tx int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 0 .. n_tx - 1 LOOP
    INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
      SELECT 'order', ((i::bigint * rows_per_tx + g) % {TOPICS})::text, 'OrderPlaced',
             bench_payload(i::bigint * rows_per_tx + g)
      FROM generate_series(0, rows_per_tx - 1) AS g;
    COMMIT;
  END LOOP;
END $$;
-- n rows already in a table of the outbox's shape (the backfill scenario), as bench_fill
-- makes them, in transactions of 10,000 rows.
CREATE PROCEDURE bench_rows(tbl regclass, n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR lo IN 0 .. n - 1 BY 10000 LOOP
    EXECUTE format('INSERT INTO %s (aggregate_type, aggregate_id, event_type, payload)
        SELECT ''order'', (g %% {TOPICS})::text, ''OrderPlaced'', bench_payload(g)
        FROM generate_series($1::bigint, $2::bigint) AS g', tbl) USING lo, least(n, lo + 10000) - 1;
    COMMIT;
  END LOOP;
END $$;
-- One-row transactions at a fixed rate: every 1 ms tick, each row due is inserted in its
-- own transaction (synchronous commit), then the session sleeps until the next tick.
CREATE PROCEDURE bench_live(rate int, seconds int, first bigint) LANGUAGE plpgsql AS $$
DECLARE
  started timestamptz := clock_timestamp();
  total bigint := rate::bigint * seconds;
  done bigint := 0;
  due bigint;
BEGIN
  WHILE done < total LOOP
    due := least(total, (extract(epoch FROM clock_timestamp() - started) * rate)::bigint + 1);
    WHILE done < due LOOP
      INSERT INTO public.outbox (aggregate_type, aggregate_id, event_type, payload)
        VALUES ('order', ((first + done) % {TOPICS})::text, 'OrderPlaced', bench_payload(first + done));
      COMMIT;
      done := done + 1;
    END LOOP;
    IF done < total THEN
      PERFORM pg_sleep(0.001);
    END IF;
  END LOOP;
END $$;
"""


# --- processes -------------------------------------------------------------------------

class Child:
    """A process this run started; stopped by its PID (and its direct children) on cleanup."""

    def __init__(self, argv, name, workdir, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL):
        self.name = name
        self.err_path = os.path.join(workdir, f"{name}.stderr")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=stdout, stdin=stdin, stderr=err)
        register_cleanup(self.kill)

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def signal(self, sig):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=None):
        rc = self.proc.wait(timeout)
        unregister_cleanup(self.kill)
        return rc

    def stop(self, timeout=30):
        """SIGTERM (bench_rusage passes it on), wait, then SIGKILL."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self):
        unregister_cleanup(self.kill)
        if self.proc.poll() is None:
            for pid in self.children():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self, lines=20):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def tool(name):
    return os.path.join(TOOLS, name)


def json_line(text):
    """The last line of text that is a JSON object."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result in {text!r}")


def cpu_seconds(pid):
    """utime + stime of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the bench -------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.workdir = make_workdir("outbox-relay-bench-")
        register_cleanup(self.remove_workdir)
        self.pg = None
        self.mqtt = None
        self.sections = []      # (title, table lines, notes)
        self.facts = {}         # scenario -> results, for the targets
        self.runs = 0
        self.load0 = f"{os.getloadavg()[0]:.2f}"

    def remove_workdir(self):
        unregister_cleanup(self.remove_workdir)
        if self.args.keep:
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # servers and databases

    def start_servers(self):
        self.pg = Postgres(self.workdir)
        self.pg.init()
        with open(os.path.join(self.pg.datadir, "postgresql.conf"), "a") as f:
            f.write(PG_SETTINGS)
        self.pg.start()
        self.mqtt = Mosquitto(self.workdir, name="mosquitto")
        self.mqtt.start()

    def stop_servers(self):
        if self.mqtt:
            self.mqtt.stop()
        if self.pg:
            self.pg.stop()

    def new_database(self, name):
        db = self.pg.create_database(name)
        db.execute(OUTBOX_DDL)
        db.execute("ALTER TABLE public.outbox SET (autovacuum_enabled = false)")  # no vacuum mid-run
        db.execute(SQL_FUNCTIONS)
        db.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE public.outbox WITH (publish = 'insert')")
        return db

    def fill(self, db, n_tx, rows):
        """Writes the backlog (asynchronous commits, then one synchronous commit that flushes
        it all) and returns the WAL position after it."""
        db.execute("SET synchronous_commit = off")
        db.execute("CALL bench_fill(%s, %s)", (n_tx, rows))
        db.execute("SET synchronous_commit = on")
        db.execute("SELECT txid_current()")
        return db.scalar("SELECT pg_current_wal_insert_lsn()::text")

    @staticmethod
    def settle(db):
        """A checkpoint now rather than during a measurement, and a moment for the server's
        background work to finish (the first consumer pays for it otherwise)."""
        db.execute("CHECKPOINT")
        time.sleep(1.0)

    def drop_database(self, db):
        for (slot,) in db.query("SELECT slot_name FROM pg_replication_slots WHERE database = %s", (db.name,)):
            wait_until(lambda: not db.scalar(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)), 30,
                f"slot {slot} to be released")
            db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        db.close()
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {db.name}")
        finally:
            conn.close()

    def wait_streaming(self, db, slot, child):
        wait_until(lambda: db.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)),
                   60, f"{child.name} to stream from {slot}", check=lambda: self.alive(child))
        time.sleep(1.0)   # connected to the broker too, and settled

    @staticmethod
    def alive(child):
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited {child.proc.returncode}: {child.stderr_tail()}")

    # measuring tools

    def subscriber(self, count, qos, latency=False, topic_filter="bench/#"):
        self.runs += 1
        argv = [tool("bench_subscriber"), "-p", str(self.mqtt.port), "-n", str(count), "-q", str(qos),
                "-t", topic_filter, "-i", "30"] + (["-L"] if latency else [])
        sub = Child(argv, f"sub{self.runs}", self.workdir)
        line = sub.proc.stdout.readline()
        if line.strip() != b"ready":
            sub.kill()
            raise RuntimeError(f"subscriber did not start: {line!r} {sub.stderr_tail()}")
        return sub

    @staticmethod
    def finish_subscriber(sub, timeout):
        """The subscriber's result; stopped (it prints what it has) after timeout seconds."""
        try:
            out, _ = sub.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            sub.signal(signal.SIGTERM)
            out, _ = sub.proc.communicate(timeout=30)
        sub.wait()
        return json_line(out.decode())

    @staticmethod
    def rates(res, count, strict=True):
        if res["count"] < count and strict:
            raise RuntimeError(f"the subscriber got {res['count']} of {count} messages")
        span = (res["last_us"] - res["first_us"]) / 1e6
        return {"count": res["count"], "rate": res["count"] / span if span > 0 else float("inf"),
                "first_us": res["first_us"], "last_us": res["last_us"], "latency": res.get("latency_us")}

    @staticmethod
    def route(qos, table="public.outbox", topic=TOPIC_TEMPLATE):
        return {"table": table, "topic": topic, "payload": "payload", "event_id": "id", "qos": qos}

    def relay_file(self, db, slot, qos, protocol="mqttv5", window=WINDOW, routes=None, create_publication=False):
        """create_publication: the relay adds what the publication lacks, its request table
        among it (doc/design.md §22), so that a request reaches it in the stream."""
        config = relay_config(self.pg, self.mqtt, db.name, slot, routes or [self.route(qos)])
        config["source"].update(publication=PUBLICATION, create_slot=False, create_publication=create_publication)
        config["broker"].update(protocol=protocol, max_inflight=window)
        config["log"] = {"level": "info", "stats_interval": "0s"}
        path = os.path.join(self.workdir, f"{db.name}.{slot}.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(config))
        return path

    def rusage_child(self, name, argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL):
        out = os.path.join(self.workdir, f"{name}.rusage.json")
        child = Child([tool("bench_rusage"), out] + argv, name, self.workdir, stdout=stdout, stdin=stdin)
        child.rusage_path = out
        return child

    @staticmethod
    def rusage(child):
        try:
            with open(child.rusage_path) as f:
                ru = json.load(f)
        except OSError:   # the wrapper was killed: nothing measured
            ru = {"utime_us": 0, "stime_us": 0, "maxrss_kb": 0, "wall_us": 0}
        ru["cpu_us"] = ru["utime_us"] + ru["stime_us"]
        return ru

    def broker_cpu(self):
        return cpu_seconds(self.mqtt.proc.pid)

    def recvlogical(self, db, slot, *args):
        return [os.path.join(self.pg.bindir, "pg_recvlogical"), "-d", self.pg.conninfo(db.name),
                "--slot", slot, "--start", "--no-loop", "-F", "0", "-o", "proto_version=1",
                "-o", f"publication_names={PUBLICATION}"] + list(args)

    @staticmethod
    def memory(wrapper):
        """The relay's own /proc status lines about memory (it is the wrapper's child)."""
        fields = {}
        for pid in wrapper.children():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in ("VmHWM", "RssAnon", "RssFile"):
                            fields[key] = value.strip().replace(" kB", " kB")
            except OSError:
                pass
        return fields

    # --- backlog ---------------------------------------------------------------------

    def backlog_shape(self, name):
        """(transactions, rows per transaction, events, title) of a backlog at this run's size."""
        full, quick, title = BACKLOGS[name]
        n_tx, rows = quick if self.quick else full
        return n_tx, rows, n_tx * rows, title + (f" (quick: {n_tx:,} x {rows:,})" if self.quick else "")

    def backlog(self, name):
        n_tx, rows, count, title = self.backlog_shape(name)
        title = f"Backlog: {title}"
        print(f"\n== {title}", flush=True)
        db = self.new_database(f"bench_{name}")
        self._backlog(db, name, title, n_tx, rows, count)
        self.drop_database(db)   # not after a failure: the servers are stopped anyway

    def write_backlog(self, db, slots, n_tx, rows, count):
        """Creates the slots, then writes the backlog once, so that each of them drains the same
        WAL. Returns (end of the backlog, seconds it took to write, payload bytes, MB of WAL)."""
        for slot in slots:   # every slot first, then one backlog they all see
            db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        t0 = time.monotonic()
        endpos = self.fill(db, n_tx, rows)
        gen_s = time.monotonic() - t0
        self.settle(db)
        payload = int(db.scalar("SELECT avg(octet_length(payload::text)) FROM "
                                "(SELECT payload FROM public.outbox LIMIT 1000) s"))
        wal_mb = db.scalar("SELECT pg_wal_lsn_diff(%s, confirmed_flush_lsn) / 1e6 FROM pg_replication_slots "
                           "WHERE slot_name = %s", (endpos, slots[0]))
        print(f"   {count:,} rows written in {gen_s:.1f} s, {wal_mb:.0f} MB of WAL, payload {payload} B",
              flush=True)
        return endpos, gen_s, payload, wal_mb

    def _backlog(self, db, name, title, n_tx, rows, count):
        slots = {"decode": "decode", 0: "relay_q0", 1: "relay_q1", 2: "relay_q2"}
        endpos, gen_s, payload, wal_mb = self.write_backlog(db, list(slots.values()), n_tx, rows, count)
        decode = self.decode_limit(db, slots["decode"], endpos, count)
        print(f"   decode limit (pg_recvlogical): {decode['rate']:,.0f} ev/s", flush=True)
        results = []
        for qos in (0, 1, 2):
            broker = self.broker_limit(count, qos, payload)
            relay = self.relay_drain(db, slots[qos], qos, count)
            results.append({"qos": qos, "relay": relay, "broker": broker, "decode": decode})
            print(f"   QoS {qos}: relay {relay['rate']:,.0f} ev/s (end to end {relay['wall_rate']:,.0f}), "
                  f"broker limit {broker['rate']:,.0f} ev/s, relay CPU {relay['cpu_us']:.1f} µs/ev, "
                  f"peak RSS {relay['rss_mb']:.1f} MB", flush=True)
        self.facts[name] = results
        table = self.backlog_table(results)
        self.sections.append((title, table, [
            f"{count:,} events; payload {payload} B; backlog written in {gen_s:.1f} s ({wal_mb:.0f} MB of WAL). "
            f"pg_recvlogical itself used {decode['cpu_us']:.1f} µs CPU/event (the walsender's decoding is "
            f"not in that number); the publisher used "
            + ", ".join(f"{r['broker']['cpu_us']:.1f}" for r in results) + " µs/event at QoS 0, 1, 2."]))
        print("\n".join(table), flush=True)

    def decode_limit(self, db, slot, endpos, count):
        child = self.rusage_child(f"{db.name}.recvlogical",
                                  self.recvlogical(db, slot, "--endpos", endpos, "-f", "/dev/null"))
        rc = child.wait(timeout=3600)
        if rc != 0:
            raise RuntimeError(f"pg_recvlogical failed ({rc}): {child.stderr_tail()}")
        ru = self.rusage(child)
        wall = ru["wall_us"] / 1e6
        return {"wall_s": wall, "rate": count / wall, "cpu_us": ru["cpu_us"] / count}

    def broker_limit(self, count, qos, payload, rate=0, latency=False, protocol="mqttv5", window=WINDOW):
        sub = self.subscriber(count, qos, latency)
        cpu0 = self.broker_cpu()
        pub = Child([tool("bench_publisher"), "127.0.0.1", str(self.mqtt.port), str(count), str(qos),
                     str(window), TOPIC_PATTERN, str(payload), PUBLISHER_PROTOCOL[protocol], str(rate),
                     str(TOPICS)],
                    f"pub{self.runs}", self.workdir)
        out, _ = pub.proc.communicate(timeout=3600)
        rc = pub.wait()
        if rc != 0:
            sub.kill()
            raise RuntimeError(f"the publisher failed ({rc}): {pub.stderr_tail()}")
        res = self.rates(self.finish_subscriber(sub, timeout=60), count)
        res.update(cpu_us=json_line(out.decode())["cpu_us"] / count, rss_mb=None,
                   broker_us=(self.broker_cpu() - cpu0) * 1e6 / count)
        return res

    def relay_drain(self, db, slot, qos, count, protocol="mqttv5", window=WINDOW):
        cfg = self.relay_file(db, slot, qos, protocol, window)
        sub = self.subscriber(count, qos)
        cpu0 = self.broker_cpu()
        start_us = time.time() * 1e6
        relay = self.rusage_child(f"{db.name}.{slot}", [RELAY, "-c", cfg, "--drain"])
        # --drain must exit on its own; if it is still running STALL_S after the subscriber
        # is done (all received, or idle), it is stopped and the run is marked stalled.
        stalled, sub_done_at = False, None
        while relay.proc.poll() is None:
            time.sleep(0.05)
            if sub_done_at is None and sub.proc.poll() is not None:
                sub_done_at = time.monotonic()
            if sub_done_at is not None and time.monotonic() - sub_done_at > STALL_S:
                stalled = True
                log = relay.stderr_tail(3)
                relay.signal(signal.SIGUSR1)   # a stats line for the log
                time.sleep(0.5)
                relay.stop(timeout=60)
                print(f"   !! relay --drain stalled at QoS {qos}; stopped by SIGTERM. Its log:\n{log}"
                      f"{relay.stderr_tail(2)}", flush=True)
        rc = relay.wait()
        if rc != 0 and not stalled:
            sub.kill()
            raise RuntimeError(f"relay --drain exited {rc}: {relay.stderr_tail()}")
        got = self.finish_subscriber(sub, timeout=60)
        res = self.rates(got, count, strict=not stalled)
        ru = self.rusage(relay)
        res.update(cpu_us=ru["cpu_us"] / max(res["count"], 1), rss_mb=ru["maxrss_kb"] / 1024, stalled=stalled,
                   wall_rate=res["count"] / ((res["last_us"] - start_us) / 1e6),
                   broker_us=(self.broker_cpu() - cpu0) * 1e6 / count)
        return res

    @staticmethod
    def backlog_table(results):
        lines = ["| QoS | relay ev/s | relay ev/s (end to end) | decode limit ev/s | broker limit ev/s "
                 "| relay ÷ decode | relay ÷ broker | relay CPU µs/ev | relay peak RSS MB "
                 "| broker CPU µs/ev: relay run / limit run |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            rel, bro, dec = r["relay"], r["broker"], r["decode"]
            qos = f"{r['qos']} ⚠ stalled, {rel['count']:,} received" if rel["stalled"] else r["qos"]
            lines.append(
                f"| {qos} | {rel['rate']:,.0f} | {rel['wall_rate']:,.0f} | {dec['rate']:,.0f} "
                f"| {bro['rate']:,.0f} | {rel['wall_rate'] / dec['rate']:.2f} | {rel['rate'] / bro['rate']:.2f} "
                f"| {rel['cpu_us']:.1f} | {rel['rss_mb']:.1f} | {rel['broker_us']:.1f} / {bro['broker_us']:.1f} |")
        return lines

    # --- windows ---------------------------------------------------------------------

    def windows(self, name):
        backlog, title = WINDOWS[name]
        n_tx, rows, count, shape = self.backlog_shape(backlog)
        title = f"{title}: {shape}"
        print(f"\n== {title}", flush=True)
        db = self.new_database(f"bench_{name}")
        self._windows(db, name, title, n_tx, rows, count)
        self.drop_database(db)   # not after a failure: the servers are stopped anyway

    def _windows(self, db, name, title, n_tx, rows, count):
        runs = [(qos, protocol, window) for qos in (1, 2) for protocol, window in PROTOCOL_WINDOWS]
        slots = {run: "relay_q{}_{}_w{}".format(*run) for run in runs}
        _, gen_s, payload, wal_mb = self.write_backlog(db, list(slots.values()), n_tx, rows, count)
        results = []
        for qos, protocol, window in runs:
            broker = self.broker_limit(count, qos, payload, protocol=protocol, window=window)
            relay = self.relay_drain(db, slots[qos, protocol, window], qos, count, protocol, window)
            results.append({"qos": qos, "protocol": protocol, "window": window, "relay": relay, "broker": broker})
            print(f"   QoS {qos}, {protocol}, window {window:,}: relay {relay['rate']:,.0f} ev/s (end to end "
                  f"{relay['wall_rate']:,.0f}), broker limit {broker['rate']:,.0f} ev/s, relay CPU "
                  f"{relay['cpu_us']:.1f} µs/ev", flush=True)
        self.facts[name] = results
        table = self.windows_table(results)
        ratios = "; ".join(
            f"QoS {r['qos']}, window {r['window']:,} ÷ {WINDOW:,}: relay "
            f"{r['relay']['rate'] / base['relay']['rate']:.2f}, broker limit "
            f"{r['broker']['rate'] / base['broker']['rate']:.2f}"
            for r, base in self.window_bases(results) if r["protocol"] == "mqttv311" and r is not base)
        self.sections.append((title, table, [
            f"mqttv311, events/s with the smaller window ÷ with {WINDOW:,} (below 1.00: what the smaller "
            f"window costs) — {ratios}.",
            f"{count:,} events; payload {payload} B; backlog written in {gen_s:.1f} s ({wal_mb:.0f} MB of WAL), "
            "drained by each relay run from its own slot. The broker limit is bench_publisher at the same "
            "protocol, QoS and window (no properties with mqttv311, like the relay); it used "
            + ", ".join(f"{r['broker']['cpu_us']:.1f}" for r in results) + " µs/event, in the table's order. "
            "The bench broker has no in-flight limit (max_inflight_messages 0): a window of 1,000 over "
            "MQTT 3.1.1 needs that, since with Mosquitto's default (20) it acknowledges the QoS 2 messages "
            "beyond 20 and drops them."]))
        print("\n".join(table), flush=True)

    @staticmethod
    def window_bases(results):
        """(run, the run it is compared with: same QoS, mqttv311, window WINDOW) for each run."""
        bases = {r["qos"]: r for r in results if r["protocol"] == "mqttv311" and r["window"] == WINDOW}
        return [(r, bases[r["qos"]]) for r in results]

    @classmethod
    def windows_table(cls, results):
        lines = ["| QoS | broker.protocol | broker.max_inflight | relay ev/s | relay ev/s (end to end) "
                 f"| broker limit ev/s | relay ÷ broker | relay ÷ mqttv311 at {WINDOW:,} "
                 f"| broker limit ÷ mqttv311 at {WINDOW:,} | relay CPU µs/ev | relay peak RSS MB "
                 "| broker CPU µs/ev: relay run / limit run |",
                 "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r, base in cls.window_bases(results):
            rel, bro = r["relay"], r["broker"]
            qos = f"{r['qos']} ⚠ stalled, {rel['count']:,} received" if rel["stalled"] else r["qos"]
            lines.append(
                f"| {qos} | {r['protocol']} | {r['window']:,} | {rel['rate']:,.0f} | {rel['wall_rate']:,.0f} "
                f"| {bro['rate']:,.0f} | {rel['rate'] / bro['rate']:.2f} "
                f"| {rel['rate'] / base['relay']['rate']:.2f} | {bro['rate'] / base['broker']['rate']:.2f} "
                f"| {rel['cpu_us']:.1f} | {rel['rss_mb']:.1f} | {rel['broker_us']:.1f} / {bro['broker_us']:.1f} |")
        return lines

    # --- live ------------------------------------------------------------------------

    def live(self, name):
        full, quick, title = LIVES[name]
        rate, seconds = quick if self.quick else full
        count = rate * seconds
        title = title + (f" (quick: {seconds} s)" if self.quick else "") + ", QoS 1"
        print(f"\n== {title}", flush=True)
        db = self.new_database(f"bench_{name}")
        payload = len(db.scalar("SELECT bench_payload(123456)::text"))
        relay = self.live_relay(db, rate, seconds, count)
        print(f"   relay: p99 {relay['latency']['p99'] / 1000:.2f} ms", flush=True)
        decode = self.live_decode(db, rate, seconds, count)
        print(f"   decode limit: p99 {decode['latency']['p99'] / 1000:.2f} ms", flush=True)
        broker = self.broker_limit(count, 1, payload, rate=rate, latency=True)
        print(f"   broker limit: p99 {broker['latency']['p99'] / 1000:.2f} ms", flush=True)
        self.drop_database(db)
        res = {"rate": rate, "relay": relay, "decode": decode, "broker": broker}
        self.facts[name] = res
        table = self.live_table(res)
        memory = ", ".join(f"{k} {v}" for k, v in relay["memory"].items()) or "unknown"
        self.sections.append((title, table, [
            "Latency of the relay and the decode limit: receive time − the row's clock_timestamp() at "
            "INSERT, so it includes the synchronous commit (fsync); of the broker limit: receive time − "
            "the publisher's send time. The decode limit scans pg_recvlogical's output as it arrives. "
            "CPU µs/event of the relay counts its whole run, idle time included.",
            f"Relay memory just before it was stopped: {memory} (RssFile: mapped shared libraries and "
            "the binary, mostly libc, libpq, libssl/libcrypto, libmosquitto)."]))
        print("\n".join(table), flush=True)

    def live_relay(self, db, rate, seconds, count):
        db.execute("SELECT pg_create_logical_replication_slot('relay_live', 'pgoutput')")
        cfg = self.relay_file(db, "relay_live", 1)
        sub = self.subscriber(count, 1, latency=True)
        relay = self.rusage_child(f"{db.name}.relay", [RELAY, "-c", cfg])
        self.wait_streaming(db, "relay_live", relay)
        cpu0 = self.broker_cpu()
        db.execute("CALL bench_live(%s, %s, %s)", (rate, seconds, 0))
        res = self.rates(self.finish_subscriber(sub, timeout=60), count)
        broker_us = (self.broker_cpu() - cpu0) * 1e6 / count
        memory = self.memory(relay)
        rc = relay.stop(timeout=60)
        if rc != 0:
            raise RuntimeError(f"the relay exited {rc}: {relay.stderr_tail()}")
        ru = self.rusage(relay)
        res.update(cpu_us=ru["cpu_us"] / count, rss_mb=ru["maxrss_kb"] / 1024, broker_us=broker_us,
                   memory=memory)
        return res

    def live_decode(self, db, rate, seconds, count):
        # Created now: it sees only the rows written from here on.
        db.execute("SELECT pg_create_logical_replication_slot('decode_live', 'pgoutput')")
        scan = Child([tool("bench_latscan"), "-n", str(count), "-i", "60"], f"{db.name}.latscan",
                     self.workdir, stdin=subprocess.PIPE)
        recv = self.rusage_child(f"{db.name}.recvlogical", self.recvlogical(db, "decode_live", "-f", "-"),
                                 stdout=scan.proc.stdin)
        scan.proc.stdin.close()
        scan.proc.stdin = None   # pg_recvlogical holds the pipe now
        self.wait_streaming(db, "decode_live", recv)
        db.execute("CALL bench_live(%s, %s, %s)", (rate, seconds, count))
        try:
            out, _ = scan.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            scan.kill()
            raise
        scan.wait()
        recv.stop(timeout=30)
        ru = self.rusage(recv)
        res = self.rates(json_line(out.decode()), count)
        res.update(cpu_us=ru["cpu_us"] / count, rss_mb=ru["maxrss_kb"] / 1024)
        return res

    @staticmethod
    def live_table(res):
        lines = ["| | events | events/s | p50 ms | p99 ms | p99.9 ms | max ms | CPU µs/ev | peak RSS MB |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, key in (("relay", "relay"), ("decode limit (pg_recvlogical)", "decode"),
                           ("broker limit (bench_publisher)", "broker")):
            r = res[key]
            lat = r["latency"] or {}

            def ms(k):
                return f"{lat[k] / 1000:.2f}" if k in lat else "–"
            rss = f"{r['rss_mb']:.1f}" if r.get("rss_mb") is not None else "–"
            lines.append(f"| {label} | {r['count']:,} | {r['rate']:,.0f} | {ms('p50')} | {ms('p99')} "
                         f"| {ms('p999')} | {ms('max')} | {r['cpu_us']:.1f} | {rss} |")
        return lines

    # --- backfill --------------------------------------------------------------------

    def backfill(self):
        count = BACKFILL_ROWS[1 if self.quick else 0]
        title = f"Backfill: a table of {count:,} rows, QoS 1"
        print(f"\n== {title}", flush=True)
        db = self.new_database("bench_backfill")
        gen_s, payload = self.write_table(db, "public.outbox", count)
        # After the rows: they are not in the slot's stream, only the backfill publishes them.
        db.execute("SELECT pg_create_logical_replication_slot('relay_bf', 'pgoutput')")
        read = self.read_limit(db, "public.outbox", count)
        print(f"   read limit (bench_read): {read['rate']:,.0f} rows/s", flush=True)
        broker = self.broker_limit(count, 1, payload)
        print(f"   broker limit: {broker['rate']:,.0f} ev/s", flush=True)
        relay = self.backfill_relay(db, "relay_bf", "public.outbox", count)
        print(f"   backfill: {relay['rate']:,.0f} rows/s, first row after {relay['first_ms']:.0f} ms, relay CPU "
              f"{relay['cpu_us']:.1f} µs/row, peak RSS {relay['rss_mb']:.1f} MB", flush=True)
        self.drop_database(db)
        res = {"relay": relay, "read": read, "broker": broker}
        self.facts["backfill"] = res
        table = self.backfill_table(res)
        self.sections.append((title, table, [
            f"{count:,} rows of the backlogs' shape (payload {payload} B), written in {gen_s:.1f} s before "
            "the slot was created, so only the backfill publishes them. The relay streams, idle, until "
            "`INSERT INTO outbox_relay.request (slot_name, kind, route) VALUES (…, 'backfill', "
            "'public.outbox')`; *to done* is that insert's time to the request's `finished_at`, *to last "
            "received* to the subscriber's last message, *backfill rows/s* = rows ÷ the later of the two. "
            f"The first backfilled row reached the subscriber {relay['first_ms']:.0f} ms after the insert.",
            f"Read limit: `bench_read`, one libpq connection running `SELECT * … WHERE id > $1 ORDER BY id "
            f"LIMIT {READ_CHUNK:,}` until the table is read, text results, every value walked; "
            f"{read['chunks']} chunks, {read['mb']:.0f} MB, {read['cpu_us']:.2f} µs CPU/row of its own; "
            "rate = rows ÷ its wall time, connection included. Broker limit: bench_publisher at QoS 1, "
            f"as in the backlogs ({broker['cpu_us']:.1f} µs CPU/event). Relay CPU µs/row: its CPU from the "
            "request's insert to its end; peak RSS over the relay's whole run. "
            + (f"Relay memory at the request's end: {relay['memory']}." if relay["memory"] else "")]))
        print("\n".join(table), flush=True)
        self.backfill_live()

    def write_table(self, db, table, count):
        """count rows in table, vacuumed (hint bits and visibility set now, not by the first
        reader; reltuples for the request's total). Returns (seconds to write, payload bytes)."""
        db.execute("SET synchronous_commit = off")
        t0 = time.monotonic()
        db.execute("CALL bench_rows(%s, %s)", (table, count))
        gen_s = time.monotonic() - t0
        db.execute("SET synchronous_commit = on")
        db.execute(f"VACUUM (ANALYZE) {table}")
        self.settle(db)
        payload = int(db.scalar(f"SELECT avg(octet_length(payload::text)) FROM (SELECT payload FROM {table} "
                                "LIMIT 1000) s"))
        print(f"   {count:,} rows in {table} written in {gen_s:.1f} s, payload {payload} B", flush=True)
        return gen_s, payload

    def read_limit(self, db, table, count):
        child = Child([tool("bench_read"), self.pg.conninfo(db.name), table, "id", str(READ_CHUNK)],
                      f"{db.name}.read", self.workdir)
        out, _ = child.proc.communicate(timeout=3600)
        rc = child.wait()
        if rc != 0:
            raise RuntimeError(f"bench_read failed ({rc}): {child.stderr_tail()}")
        res = json_line(out.decode())
        if res["rows"] != count:
            raise RuntimeError(f"bench_read read {res['rows']} of {count} rows")
        wall = res["wall_us"] / 1e6
        return {"rate": count / wall, "wall_s": wall, "cpu_us": res["cpu_us"] / count, "chunks": res["chunks"],
                "mb": res["bytes"] / 1e6}

    @staticmethod
    def request_backfill(db, slot, route):
        return db.scalar("INSERT INTO outbox_relay.request (slot_name, kind, route) VALUES (%s, 'backfill', %s) "
                         "RETURNING id", (slot, route))

    @staticmethod
    def request_row(db, rid):
        row = db.query("SELECT state, done, total, error, extract(epoch FROM created_at), "
                       "extract(epoch FROM updated_at), extract(epoch FROM finished_at) "
                       "FROM outbox_relay.request WHERE id = %s", (rid,))[0]
        return dict(zip(("state", "done", "total", "error", "created", "updated", "finished"), row))

    def wait_request(self, db, rid, relay, interval=0.02):
        """The request's row once it has ended, or None if its `done` did not move for STALL_S
        (the relay is then asked for a stats line and left running)."""
        last, moved = None, time.monotonic()
        while True:
            self.alive(relay)
            row = self.request_row(db, rid)
            if row["state"] in ("done", "failed"):
                return row
            if row["done"] != last:
                last, moved = row["done"], time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                relay.signal(signal.SIGUSR1)   # a stats line for the log
                time.sleep(0.5)
                print(f"   !! backfill stalled at {row['done']:,} rows ({row['state']}); the relay's log:\n"
                      f"{relay.stderr_tail(5)}", flush=True)
                return None
            time.sleep(interval)

    def start_backfill_relay(self, db, slot, cfg):
        relay = self.rusage_child(f"{db.name}.relay", [RELAY, "-c", cfg])
        self.wait_streaming(db, slot, relay)
        pids = relay.children()
        if not pids:
            raise RuntimeError(f"the relay is not running: {relay.stderr_tail()}")
        return relay, pids[0]

    def stop_backfill_relay(self, relay):
        rc = relay.stop(timeout=60)
        if rc != 0:
            raise RuntimeError(f"the relay exited {rc}: {relay.stderr_tail()}")
        return self.rusage(relay)

    def backfill_relay(self, db, slot, table, count):
        cfg = self.relay_file(db, slot, 1, create_publication=True)
        sub = self.subscriber(count, 1)
        relay, pid = self.start_backfill_relay(db, slot, cfg)
        cpu0, broker0 = cpu_seconds(pid), self.broker_cpu()
        rid = self.request_backfill(db, slot, table)
        row = self.wait_request(db, rid, relay)
        cpu = cpu_seconds(pid) - cpu0
        broker_us = (self.broker_cpu() - broker0) * 1e6 / count
        memory = ", ".join(f"{k} {v}" for k, v in self.memory(relay).items())
        got = self.finish_subscriber(sub, timeout=60 if row else 1)
        ru = self.stop_backfill_relay(relay)
        if row is None or row["state"] != "done":
            raise RuntimeError(f"the backfill did not end: {row['error'] if row else 'stalled'}; the subscriber "
                               f"got {got['count']:,} of {count:,} rows")
        res = self.rates(got, count)
        if row["done"] != count:
            raise RuntimeError(f"the backfill counted {row['done']:,} rows of {count:,}")
        created = float(row["created"])
        to_done = float(row["finished"]) - created
        to_last = res["last_us"] / 1e6 - created
        res.update(rate=count / max(to_done, to_last), sub_rate=res["rate"], to_done=to_done, to_last=to_last,
                   first_ms=(res["first_us"] / 1e6 - created) * 1000, cpu_us=cpu * 1e6 / count,
                   rss_mb=ru["maxrss_kb"] / 1024, broker_us=broker_us, memory=memory)
        return res

    @staticmethod
    def backfill_table(res):
        rel, read, bro = res["relay"], res["read"], res["broker"]
        return ["| rows | backfill rows/s | to done s | to last received s | at the subscriber rows/s "
                "| read limit rows/s | broker limit ev/s | backfill ÷ read | backfill ÷ broker "
                "| relay CPU µs/row | relay peak RSS MB | broker CPU µs/ev: backfill / limit |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {rel['count']:,} | {rel['rate']:,.0f} | {rel['to_done']:.2f} | {rel['to_last']:.2f} "
                f"| {rel['sub_rate']:,.0f} | {read['rate']:,.0f} | {bro['rate']:,.0f} "
                f"| {rel['rate'] / read['rate']:.2f} | {rel['rate'] / bro['rate']:.2f} | {rel['cpu_us']:.1f} "
                f"| {rel['rss_mb']:.1f} | {rel['broker_us']:.1f} / {bro['broker_us']:.1f} |"]

    def backfill_live(self):
        rows, rate, seconds = BACKFILL_LIVE[1 if self.quick else 0]
        count = rate * seconds
        title = (f"live: {rate:,} inserts/s for {seconds} s, QoS 1, without and during a backfill of "
                 f"{rows:,} rows")
        print(f"\n== {title}", flush=True)
        db = self.new_database("bench_backfill_live")
        # Another table, routed to other topics: the latency subscriber sees only the live rows.
        db.execute("CREATE TABLE public.outbox_history (LIKE public.outbox INCLUDING ALL)")
        db.execute("ALTER TABLE public.outbox_history SET (autovacuum_enabled = false)")
        db.execute(f"ALTER PUBLICATION {PUBLICATION} ADD TABLE public.outbox_history")
        gen_s, _ = self.write_table(db, "public.outbox_history", rows)
        slot = "relay_live"
        db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        routes = [self.route(1), self.route(1, "public.outbox_history", BACKFILL_TOPIC)]
        cfg = self.relay_file(db, slot, 1, routes=routes, create_publication=True)
        relay, pid = self.start_backfill_relay(db, slot, cfg)
        without = self.live_run(db, pid, rate, seconds, count, 0)
        print(f"   without a backfill: p50 {without['latency']['p50'] / 1000:.2f} ms, "
              f"p99 {without['latency']['p99'] / 1000:.2f} ms", flush=True)
        bsub = self.subscriber(rows, 1, topic_filter="backfill/#")
        rid = self.request_backfill(db, slot, "public.outbox_history")
        wait_until(lambda: self.request_row(db, rid)["done"] > 0, 60, "the backfill's first chunk",
                   check=lambda: self.alive(relay), interval=0.02)
        before = self.request_row(db, rid)
        during = self.live_run(db, pid, rate, seconds, count, count)
        after = self.request_row(db, rid)
        print(f"   during the backfill: p50 {during['latency']['p50'] / 1000:.2f} ms, "
              f"p99 {during['latency']['p99'] / 1000:.2f} ms; {after['done'] - before['done']:,} rows "
              f"backfilled meanwhile, {after['state']} at its end", flush=True)
        if after["state"] == "failed":
            raise RuntimeError(f"the backfill failed: {after['error']}")
        memory = ", ".join(f"{k} {v}" for k, v in self.memory(relay).items())
        ru = self.stop_backfill_relay(relay)   # the rest of the backfill is not measured
        self.finish_subscriber(bsub, timeout=1)
        self.drop_database(db)
        span = float(after["updated"]) - float(before["updated"])
        during.update(backfilled=after["done"] - before["done"], lasted=after["state"] == "running")
        res = {"without": without, "during": during, "rows": rows, "rss_mb": ru["maxrss_kb"] / 1024}
        self.facts["backfill_live"] = {"relay": res}
        table = self.backfill_live_table(res)
        lasted = ("it was still running when the measurement ended" if during["lasted"] else
                  "**it ended before the measurement did**: the last part of the measurement ran without it")
        self.sections.append((title, table, [
            "One relay, QoS 1, two routes: `public.outbox` (the live inserts, topics `bench/…`) and "
            f"`public.outbox_history`, {rows:,} rows written in {gen_s:.1f} s before the slot (topics "
            "`backfill/…`, which a second subscriber takes). The live measurement ran first without a "
            "request, then again from the moment the backfill's first chunk was acknowledged; "
            f"{during['backfilled']:,} rows were backfilled during it (acknowledged chunks: "
            f"{during['backfilled'] / span:,.0f} rows/s), and {lasted}; then the relay was stopped. "
            "Latency: receive time − the row's clock_timestamp() at INSERT, as in the live scenarios; "
            "relay CPU % = its CPU time ÷ the measurement's wall time. "
            f"Relay peak RSS over both: {res['rss_mb']:.1f} MB"
            + (f"; its memory at the end: {memory}." if memory else ".")]))
        print("\n".join(table), flush=True)

    def live_run(self, db, pid, rate, seconds, count, first):
        sub = self.subscriber(count, 1, latency=True)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        db.execute("CALL bench_live(%s, %s, %s)", (rate, seconds, first))
        res = self.rates(self.finish_subscriber(sub, timeout=60), count)
        res["cpu_pct"] = (cpu_seconds(pid) - cpu0) * 100 / (time.monotonic() - t0)
        return res

    @staticmethod
    def backfill_live_table(res):
        lines = ["| | events | events/s | p50 ms | p99 ms | p99.9 ms | max ms | relay CPU % "
                 "| rows backfilled meanwhile |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, key in (("relay, no backfill", "without"), ("relay, during a backfill", "during")):
            r = res[key]
            lat = r["latency"]
            back = f"{r['backfilled']:,}" if "backfilled" in r else "–"
            lines.append(f"| {label} | {r['count']:,} | {r['rate']:,.0f} | {lat['p50'] / 1000:.2f} "
                         f"| {lat['p99'] / 1000:.2f} | {lat['p999'] / 1000:.2f} | {lat['max'] / 1000:.2f} "
                         f"| {r['cpu_pct']:.0f} | {back} |")
        return lines

    # --- profile ---------------------------------------------------------------------

    def profile(self):
        full, quick, _ = BACKLOGS["single"]
        n_tx, rows = quick if self.quick else full
        count = n_tx * rows
        print(f"\n== profile: relay --drain of {count:,} single-row transactions, QoS 1", flush=True)
        db = self.new_database("bench_profile")
        data = os.path.join(self.workdir, "perf.data")
        try:
            db.execute("SELECT pg_create_logical_replication_slot('relay_q1', 'pgoutput')")
            self.fill(db, n_tx, rows)
            self.settle(db)
            cfg = self.relay_file(db, "relay_q1", 1)
            sub = self.subscriber(count, 1)
            perf = Child(["perf", "record", "-g", "-F", "4999", "-o", data, "--", RELAY, "-c", cfg, "--drain"],
                         "perf", self.workdir, stdout=subprocess.DEVNULL)
            rc = perf.wait(timeout=3600)
            res = self.finish_subscriber(sub, timeout=60)
            if rc != 0 or res["count"] < count:
                raise RuntimeError(f"perf/relay exited {rc}, {res['count']} of {count} messages: "
                                   f"{perf.stderr_tail()}")
        finally:
            self.drop_database(db)
        reports = []
        for sort, limit in (("dso", "0.5"), ("dso,symbol", "0.8")):
            out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                                  "--percent-limit", limit, "--sort", sort],
                                 capture_output=True, text=True, check=True).stdout
            reports.append("\n".join(line for line in out.splitlines() if line and not line.startswith("#")))
        text = (f"# outbox-relay profile\n\n`{shlex.join(['bench/run'] + sys.argv[1:])}` "
                f"({time.strftime('%Y-%m-%d %H:%M %Z')}): `perf record -g` of the relay (release build) "
                f"draining {count:,} single-row transactions at QoS 1. Self time only; "
                f"`[kernel.kallsyms]` is system calls and networking done on the relay's behalf.\n\n"
                f"## Samples by object\n\n```\n{reports[0]}\n```\n\n"
                f"## Samples by function\n\n```\n{reports[1]}\n```\n")
        with open(PROFILE, "w") as f:
            f.write(text)
        print(text)

    # --- report ----------------------------------------------------------------------

    def targets(self):
        rows = []

        def add(target, value, ok):
            rows.append(f"| {target} | {value} | {'met' if ok else '**not met**'} |")

        for name in BACKLOGS:
            if name in self.facts:
                q1 = self.facts[name][1]
                ratio = q1["relay"]["rate"] / q1["broker"]["rate"]
                add(f"backlog {name}, QoS 1: relay rate ≥ 1.0 × broker limit", f"{ratio:.2f} ×", ratio >= 1.0)
        if "single" in self.facts:
            cpu = self.facts["single"][1]["relay"]["cpu_us"]
            add("relay CPU ≤ 15 µs/event, QoS 1, single-row backlog", f"{cpu:.1f} µs", cpu <= 15)
        peaks = []
        for name, facts in self.facts.items():
            for r in (facts if isinstance(facts, list) else [facts]):
                peaks.append((r["relay"]["rss_mb"], name, r.get("qos", 1)))
        if peaks:
            peak, where, qos = max(peaks)
            add("relay peak RSS ≤ 8 MB in every scenario", f"{peak:.1f} MB at most ({where}, QoS {qos})",
                peak <= 8)
        if "live1k" in self.facts:
            p99 = self.facts["live1k"]["relay"]["latency"]["p99"] / 1000
            add("live 1k/s: commit-to-subscriber p99 ≤ 3 ms", f"{p99:.2f} ms", p99 <= 3)
        return ["| target | measured | status |", "|---|---|---|"] + rows

    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        pg_version = subprocess.run([os.path.join(self.pg.bindir, "postgres"), "--version"],
                                    capture_output=True, text=True).stdout.strip()
        mosq = subprocess.run([self.mqtt.binary, "-h"], capture_output=True, text=True).stdout.splitlines()
        libmosq = subprocess.run(["pkg-config", "--modversion", "libmosquitto"], capture_output=True,
                                 text=True).stdout.strip()
        return [f"- CPU: {cpu}, {os.cpu_count()} cores",
                f"- kernel: {platform.system()} {platform.release()}",
                f"- {pg_version}: fsync on, synchronous_commit on (the backlogs are written with it off, "
                "then flushed), wal_level logical",
                f"- {mosq[0] if mosq else 'mosquitto'}, libmosquitto {libmosq or '?'}",
                f"- load average (1 min) at start {self.load0}, at end {os.getloadavg()[0]:.2f}: anything "
                "else running on the machine makes every number noisier"]

    def write_results(self, command, started, elapsed):
        out = ["# outbox-relay benchmark results", "",
               "Written by `bench/run` on every run (bench/README.md explains the columns).", "",
               f"Command: `{command}`, started {started}, took {elapsed / 60:.1f} min.", "",
               "## Machine", ""] + self.machine() + ["", "## Targets", ""] + self.targets()
        for title, table, notes in self.sections:
            out += ["", f"## {title}", ""] + table
            for note in notes:
                out += ["", note]
        with open(RESULTS, "w") as f:
            f.write("\n".join(out) + "\n")
        print(f"\nwrote {RESULTS}")

    def run(self, scenarios):
        started = time.strftime("%Y-%m-%d %H:%M %Z")
        t0 = time.monotonic()
        self.start_servers()
        try:
            if self.args.profile:
                self.profile()
                return
            for i, name in enumerate(scenarios):
                try:
                    if name in BACKLOGS:
                        self.backlog(name)
                    elif name in WINDOWS:
                        self.windows(name)
                    elif name == "backfill":
                        self.backfill()
                    else:
                        self.live(name)
                except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
                    print(f"   !! scenario {name} failed: {e}", flush=True)
                    self.sections.append((f"{name}: FAILED", [f"    {line}" for line in str(e).splitlines()], []))
                    if i + 1 < len(scenarios):   # a clean slate for the next one
                        self.stop_servers()
                        self.start_servers()
            print("\n" + "\n".join(self.targets()))
            self.write_results(shlex.join(["bench/run"] + sys.argv[1:]), started, time.monotonic() - t0)
        finally:
            self.stop_servers()


def build():
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        subprocess.run(SETUP, cwd=ROOT, check=True)
    subprocess.run(["meson", "compile", "-C", BUILD], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about 1/20 of the sizes, for development")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, metavar="NAME",
                        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="perf record the relay draining the "
                        "single-row backlog at QoS 1 and write bench/PROFILE.md (no RESULTS.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args()
    install_signal_cleanup()
    build()
    bench = Bench(args)
    try:
        bench.run([s for s in SCENARIOS if s in (args.scenario or SCENARIOS)])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
