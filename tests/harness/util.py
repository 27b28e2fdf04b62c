"""Small helpers shared by the harness: ports, waiting, processes, cleanup."""

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

_cleanups = []


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def tcp_queues(local_port, remote_port):
    """(bytes sent and not yet acknowledged by the peer, bytes received and not yet read by
    the program) of the loopback TCP connection from local_port to remote_port, from
    Linux's /proc/net/tcp; None when there is no such connection."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def is_root():
    return os.geteuid() == 0


def wait_until(predicate, timeout, what, check=None, interval=0.05):
    """Polls predicate() until it returns a true value, which is returned.

    check(), when given, is called on every pass and may raise (a process died).
    Raises TimeoutError naming `what` after `timeout` seconds: timeouts are there to
    fail instead of hanging, never to assert how fast something is.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check:
            check()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def backoff_attempts_bound(window, low, high):
    """The most attempts a reconnect backoff from low to high seconds allows in window
    seconds, the first attempt at its start: each delay is at least half its ceiling and
    never below low (equal jitter), and the ceiling doubles up to high. An upper bound for
    tests that count retries; the relay's own delays are longer on average."""
    attempts, elapsed, ceiling = 1, 0.0, low
    while True:
        delay = max(low, ceiling / 2)
        if elapsed + delay > window:
            return attempts
        elapsed += delay
        attempts += 1
        ceiling = min(ceiling * 2, high)


def count_in_window(times, window):
    """How many of the sorted times fall within window seconds of the first, and the span
    they cover."""
    if not times:
        return 0, 0.0
    inside = [t for t in times if t - times[0] <= window]
    return len(inside), inside[-1] - inside[0]


def make_workdir(prefix="outbox-relay-test-"):
    """A fresh temporary directory others may traverse (servers run as other users)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o711)
    return path


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def print_tail(title, path, lines=40):
    text = tail(path, lines)
    if text:
        sys.stderr.write(f"----- {title} ({path}), last lines -----\n{text}\n")


def stop_process(proc, sig=signal.SIGTERM, timeout=30):
    """Sends sig to proc by its PID, waits, and kills it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def register_cleanup(fn):
    """Runs fn at exit (or on SIGTERM/SIGINT/SIGHUP) unless unregistered before."""
    _cleanups.append(fn)
    return fn


def unregister_cleanup(fn):
    if fn in _cleanups:
        _cleanups.remove(fn)


def run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep stopping the others
            sys.stderr.write(f"cleanup {fn!r} failed: {e}\n")


def _on_signal(signum, frame):
    # Unwinds through every finally block; atexit does the rest.
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_cleanup():
    atexit.register(run_cleanups)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
