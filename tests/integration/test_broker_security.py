#!/usr/bin/python3
"""doc/design.md §4 broker.username, broker.password_file and broker.tls.*, against a real Mosquitto.

The broker keeps the harness's plain anonymous listener (for the recorder) and gets a
second, TLS-only listener that requires a client certificate signed by a test CA. Its
password file makes a client that names a user prove it. Certificates are made with
openssl in the test's directory.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402
from harness import insert_event  # noqa: E402
from harness.mosquitto import Mosquitto  # noqa: E402
from harness.proxy import Proxy  # noqa: E402
from harness.util import backoff_attempts_bound, free_port, wait_until  # noqa: E402

USER, PASSWORD = "relay", "s3cret-for-tests"
TLS_PORT = free_port()
# doc/design.md §20: the broker's default backoff, and the window retries are counted over.
BROKER_MIN, BROKER_MAX = 0.1, 5.0
STORM_WINDOW = 6


def openssl(workdir, *args):
    subprocess.run(["openssl", *args], cwd=workdir, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_certificates(workdir):
    """A CA, a server certificate for the name localhost only, and a client certificate."""
    openssl(workdir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=outbox-relay test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, extra in (("server", "subjectAltName=DNS:localhost"),
                        ("client", "extendedKeyUsage=clientAuth")):
        openssl(workdir, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        with open(os.path.join(workdir, f"{name}.ext"), "w") as f:
            f.write(extra + "\n")
        openssl(workdir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    # A second CA that signed nothing here: trusting it must fail.
    openssl(workdir, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=unrelated CA", "-keyout", "other-ca.key", "-out", "other-ca.pem")
    for name in os.listdir(workdir):
        if name.endswith((".pem", ".key")):
            os.chmod(os.path.join(workdir, name), 0o644)   # the broker runs as another user


class BrokerSecurityTest(harness.IntegrationCase):
    mosquitto_config = (f"password_file {{workdir}}/mosquitto.passwd\n"
                        f"listener {TLS_PORT} 127.0.0.1\n"
                        "cafile {workdir}/ca.pem\n"
                        "certfile {workdir}/server.pem\n"
                        "keyfile {workdir}/server.key\n"
                        "require_certificate true\n")

    @classmethod
    def prepare_files(cls):
        passwd = os.path.join(cls.workdir, "mosquitto.passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, USER, PASSWORD], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(passwd, 0o644)
        make_certificates(cls.workdir)

    def secret_file(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def file(self, name):
        return os.path.join(self.workdir, name)

    def relay_for(self, db, name, **broker):
        return self.new_relay(db, name=name, broker=broker)

    def deliver(self, db, rec, relay, n):
        relay.start()
        relay.wait_for_slot(db, self.name)
        with db.transaction() as cur:
            events = [insert_event(cur, "order", f"{relay.name}-{i}", "placed", json.dumps({"i": i}))
                      for i in range(n)]
        wait_until(lambda: len([m for m in rec.messages if relay.name in m["topic"]]) == n, 60,
                   f"{n} messages through {relay.name}", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)
        return events

    def refused(self, relay, text):
        relay.start()
        wait_until(lambda: text in relay.stderr(), 30, f"the relay to log {text!r}",
                   check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)

    def refused_at_start(self, relay, cause, *names):
        """Before its first start the relay ends with 78 and one error line: the cause, the
        broker, the user and the fix (doc/design.md §3)."""
        self.assertEqual(relay.run(), 78)
        errors = [line for line in relay.stderr().splitlines() if "level=error" in line]
        self.assertEqual(len(errors), 1, relay.stderr())
        self.assertIn(f'cause="{cause}"', errors[0])
        for name in ("host=", "port=", "username=", "client_id=", "fix=") + names:
            self.assertIn(name, errors[0])
        self.assertNotIn(PASSWORD, relay.stderr())
        return errors[0]

    def assert_retries_bounded(self, relay, attempts, what):
        """Counts attempts() over STORM_WINDOW seconds from now, while the relay keeps running:
        at least three, and no more than the default backoff allows."""
        start, first = time.monotonic(), attempts()
        wait_until(lambda: time.monotonic() - start >= STORM_WINDOW, STORM_WINDOW + 30,
                   f"{STORM_WINDOW}s of retries", check=relay.check_running, interval=0.2)
        elapsed, count = time.monotonic() - start, attempts() - first
        bound = backoff_attempts_bound(elapsed, BROKER_MIN, BROKER_MAX) + 1   # + 1: the edge
        sys.stderr.write(f"{what}: {count} attempts in {elapsed:.1f}s (backoff allows {bound})\n")
        self.assertGreaterEqual(count, 3, what)
        self.assertLessEqual(count, bound, what)

    def test_username_and_password_file(self):
        db = self.new_database()
        rec = self.start_recorder()
        good = self.relay_for(db, "good", username=USER,
                              password_file=self.secret_file("mqtt-pw", PASSWORD + "\n"))
        self.deliver(db, rec, good, 3)
        bad = self.relay_for(db, "bad", username=USER,
                             password_file=self.secret_file("wrong-pw", "guess\n"))
        line = self.refused_at_start(bad, "the broker does not authorize the client",
                                     f"username={USER}", f"port={self.mqtt.port}", "broker.password_file")
        self.assertIn('reason="Not authorized"', line)
        for relay in (good, bad):
            self.assertNotIn(PASSWORD, relay.stderr())
            self.assertNotIn("guess", relay.stderr())

    def test_tls_with_client_certificate(self):
        db = self.new_database()
        rec = self.start_recorder()
        tls = {"ca_file": self.file("ca.pem"), "cert_file": self.file("client.pem"),
               "key_file": self.file("client.key")}
        verified = self.relay_for(db, "verified", host="localhost", port=TLS_PORT, tls=tls)
        self.deliver(db, rec, verified, 3)

        # The certificate names localhost, not 127.0.0.1: the same broker by address fails
        # verification, unless verify_hostname is off.
        by_address = self.relay_for(db, "by_address", port=TLS_PORT, tls=tls)
        self.refused(by_address, "certificate verify failed")
        insecure = self.relay_for(db, "insecure", port=TLS_PORT, tls=dict(tls, verify_hostname=False))
        self.deliver(db, rec, insecure, 2)

        untrusted = self.relay_for(db, "untrusted", port=TLS_PORT,
                                   tls=dict(tls, ca_file=self.file("other-ca.pem")))
        self.refused(untrusted, "certificate verify failed")

        no_client_cert = self.relay_for(db, "no_client_cert", port=TLS_PORT,
                                        tls={"ca_file": self.file("ca.pem")})
        no_client_cert.start()
        wait_until(lambda: "connected to broker" not in no_client_cert.stderr()
                   and ("disconnected" in no_client_cert.stderr()
                        or "cannot connect" in no_client_cert.stderr()
                        or "libmosquitto" in no_client_cert.stderr()), 30,
                   "the broker to turn away a client without certificate",
                   check=no_client_cert.check_running)
        self.assertNotIn('msg="connected to broker"', no_client_cert.stderr())
        self.assertEqual(no_client_cert.terminate(), 0)


    def locked_broker(self, password):
        """A broker of its own that admits no anonymous client, USER with password."""
        passwd = os.path.join(self.workdir, "locked.passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, USER, password], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(passwd, 0o644)
        broker = Mosquitto(self.workdir, name="locked",
                           extra_config=f"allow_anonymous false\npassword_file {passwd}\n")
        return broker, passwd

    def test_credentials_refused(self):
        """Before the first start: no user name, a wrong password (MQTT 5 and 3.1.1) end the
        relay with 78 and a fix that tells the two apart. After it: the same refusal, the
        password changed on the broker, is retried at error level with the growing backoff,
        and the relay comes back once the password fits again."""
        broker, passwd = self.locked_broker(PASSWORD)
        broker.start()
        self.addCleanup(broker.stop)
        db = self.new_database()
        right = self.secret_file("locked-pw", PASSWORD + "\n")
        wrong = self.secret_file("locked-wrong", "guess\n")

        anonymous = self.relay_for(db, "anonymous", port=broker.port)
        self.refused_at_start(anonymous, "the broker does not authorize the client",
                              "set broker.username", 'username=""')
        for protocol in ("mqttv5", "mqttv311"):
            with self.subTest(protocol):
                relay = self.relay_for(db, f"wrong_{protocol}", port=broker.port, protocol=protocol,
                                       username=USER, password_file=wrong)
                # Mosquitto says "not authorized" for a wrong password too (3.1.1: code 5).
                line = self.refused_at_start(relay, "the broker does not authorize the client",
                                             f"username={USER}", "broker.password_file")
                self.assertNotIn("guess", relay.stderr())
                self.assertNotIn("Unknown", line)    # 3.1.1 codes read as 3.1.1 codes

        relay = self.relay_for(db, "later", port=broker.port, username=USER, password_file=right)
        relay.start()
        wait_until(lambda: "ready:" in relay.stderr(), 30, "the relay to start", check=relay.check_running)
        subprocess.run(["mosquitto_passwd", "-b", passwd, USER, "changed"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.restart()
        self.assert_retries_bounded(
            relay, lambda: relay.stderr().count('msg="the broker refused the relay; retrying"'),
            "broker refusing the credentials after the start")
        for line in relay.stderr().splitlines():
            if "refused the relay; retrying" in line:
                self.assertIn("level=error", line)
                self.assertIn(f"username={USER}", line)
                self.assertIn(f"port={broker.port}", line)
        subprocess.run(["mosquitto_passwd", "-b", passwd, USER, PASSWORD], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.restart()
        wait_until(lambda: relay.stderr().count('msg="connected to broker"') >= 2, 60,
                   "the relay to come back", check=relay.check_running)
        self.assertEqual(relay.terminate(), 0)

    def test_tls_failures_back_off(self):
        """Plain TCP to the TLS listener, and a TLS client that trusts the wrong CA: the
        connection opens and the session fails at once. Transient, and retried with the
        default backoff, which grows (counted at a proxy in front of the listener)."""
        db = self.new_database()
        for name, broker in (
                ("plain_tcp", {"port": None}),
                ("wrong_ca", {"host": "localhost", "port": None,
                              "tls": {"ca_file": self.file("other-ca.pem"),
                                      "cert_file": self.file("client.pem"),
                                      "key_file": self.file("client.key")}})):
            with self.subTest(name):
                proxy = Proxy(TLS_PORT)
                self.addCleanup(proxy.close)
                relay = self.relay_for(db, name, **dict(broker, port=proxy.port))
                relay.start()
                relay.wait_for_slot(db, self.name)
                self.assert_retries_bounded(relay, lambda: proxy.accepted, f"TLS trouble ({name})")
                self.assertNotIn('msg="connected to broker"', relay.stderr())
                self.assertEqual(relay.terminate(), 0)


if __name__ == "__main__":
    harness.main()
