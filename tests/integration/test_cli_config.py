#!/usr/bin/python3
"""Command line and configuration errors: exit statuses 0, 64 and 78, and error locations.

No server is needed: nothing here may connect anywhere.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOOD = """\
source:
  conninfo: "host=127.0.0.1 port=1 dbname=test user=postgres"
  slot: outbox_relay
  publication: outbox_relay
broker:
  host: 127.0.0.1
  port: 1
routes:
  - table: public.outbox
    topic: "shop/{aggregate_type}/{aggregate_id}"
    payload: payload
    event_id: id
    qos: 1
"""

EXIT_OK, EXIT_USAGE, EXIT_CONFIG = 0, 64, 78


class CliConfigTest(harness.IntegrationCase):
    needs_servers = False

    def relay(self, text, env=None):
        return self.relay_with_config(text, env=env)

    def check(self, text, env=None):
        relay = self.relay(text, env)
        return relay, relay.run("--check", timeout=30)

    def assert_error_at(self, relay, line, columns, key_path):
        """stderr has FILE:LINE:COLUMN: KEY.PATH: message, COLUMN one of columns.

        key_path is a regular expression when given as a compiled pattern.
        """
        path_re = key_path.pattern if isinstance(key_path, re.Pattern) else re.escape(key_path)
        pattern = re.compile(rf"^{re.escape(relay.config_path)}:(\d+):(\d+): (?:{path_re}): \S")
        found = [m for m in map(pattern.match, relay.stderr().splitlines()) if m]
        self.assertTrue(found, f"no '{key_path}' error in:\n{relay.stderr()}")
        self.assertIn((int(found[0].group(1)), int(found[0].group(2))),
                      [(line, c) for c in columns], relay.stderr())
        return found[0].string

    def assert_config_error(self, text, line, columns, key_path, env=None):
        relay, status = self.check(text, env)
        self.assertEqual(status, EXIT_CONFIG, relay.stderr())
        return self.assert_error_at(relay, line, columns, key_path)

    # --- a good file -----------------------------------------------------------

    def test_check_good_config(self):
        relay, status = self.check(GOOD)
        self.assertEqual(status, EXIT_OK, relay.stderr())
        self.assertEqual(relay.stdout().strip(), "configuration OK")

    def test_check_demo_config(self):
        with open(os.path.join(REPO, "config", "demo.yaml")) as f:
            text = f.read()
        relay = self.relay(text, env={"DEMO_PG_PORT": "5432", "DEMO_MQTT_PORT": "1883"})
        self.assertEqual(relay.run("--check", timeout=30), EXIT_OK, relay.stderr())
        self.assertEqual(relay.stdout().strip(), "configuration OK")

    # --- configuration errors --------------------------------------------------

    def test_unknown_key_with_hint(self):
        text = GOOD.replace("  slot: outbox_relay", "  slott: outbox_relay")
        line = self.assert_config_error(text, 3, [3], "source.slott")
        self.assertRegex(line, r"\bslot\b", "a did-you-mean hint")

    def test_port_out_of_range(self):
        text = GOOD.replace("  port: 1\n", "  port: 70000\n")
        self.assert_config_error(text, 7, [3, 9], "broker.port")

    def test_bad_duration(self):
        text = GOOD + "delivery:\n  checkpoint_interval: 10 parsecs\n"
        self.assert_config_error(text, 15, [3, 24], "delivery.checkpoint_interval")

    def test_bad_slot_name(self):
        text = GOOD.replace("  slot: outbox_relay", "  slot: Outbox-Relay")
        self.assert_config_error(text, 3, [3, 9], "source.slot")

    def test_bad_qos_in_route(self):
        text = GOOD.replace("    qos: 1", "    qos: 3")
        # routes[0].qos or routes.0.qos: doc/design.md does not fix how a list index is written
        self.assert_config_error(text, 13, [5, 10], re.compile(r"routes(?:\[0\]|\.0)\.qos"))

    def test_message_route_topic_uses_a_column(self):
        text = GOOD + "  - message_prefix: \"shop.*\"\n    topic: \"m/{aggregate_id}\"\n"
        line = self.assert_config_error(text, text.count("\n") - 1, [5], "routes[1].topic")
        self.assertIn("a message route can use only {prefix}, not {aggregate_id}", line)

    def test_unset_environment_variable(self):
        text = GOOD.replace("port=1 dbname", "port=${OUTBOX_RELAY_TEST_UNSET_VARIABLE} dbname")
        relay = self.relay(text)
        relay.env.pop("OUTBOX_RELAY_TEST_UNSET_VARIABLE", None)
        self.assertEqual(relay.run("--check", timeout=30), EXIT_CONFIG, relay.stderr())
        line = self.assert_error_at(relay, 2, [3, 13], "source.conninfo")
        self.assertIn("OUTBOX_RELAY_TEST_UNSET_VARIABLE", line)

    def test_every_error_is_reported(self):
        text = GOOD.replace("  slot: outbox_relay", "  slott: outbox_relay").replace(
            "  port: 1\n", "  port: 70000\n")
        relay, status = self.check(text)
        self.assertEqual(status, EXIT_CONFIG)
        self.assert_error_at(relay, 3, [3], "source.slott")
        self.assert_error_at(relay, 7, [3, 9], "broker.port")

    def test_yaml_syntax_error(self):
        relay, status = self.check(GOOD + "broker: [unclosed\n")
        self.assertEqual(status, EXIT_CONFIG)
        self.assertRegex(relay.stderr(), rf"(?m)^{re.escape(relay.config_path)}:\d+:\d+: ")

    def test_missing_file(self):
        relay = self.relay(GOOD)
        os.unlink(relay.config_path)
        self.assertEqual(relay.run("--check", timeout=30), EXIT_CONFIG)
        self.assertIn(relay.config_path, relay.stderr())

    def test_config_error_without_check_exits_78(self):
        relay = self.relay(GOOD.replace("  port: 1\n", "  port: 70000\n"))
        self.assertEqual(relay.run(timeout=30), EXIT_CONFIG)
        self.assert_error_at(relay, 7, [3, 9], "broker.port")

    def test_password_file_others_can_read_is_refused(self):
        """As ssh refuses a private key others can read: exit 78 naming the key, the file and
        the fix, with --check and without; the password itself is never shown."""
        path = os.path.join(self.workdir, "shared-password")
        with open(path, "w") as f:
            f.write("hunter2\n")
        os.chmod(path, 0o644)
        text = GOOD.replace("  publication: outbox_relay\n",
                            f"  publication: outbox_relay\n  password_file: {path}\n").replace(
            "  port: 1\n", f"  port: 1\n  username: relay\n  password_file: {path}\n")
        for args in (("--check",), ()):
            relay = self.relay(text)
            self.assertEqual(relay.run(*args, timeout=30), EXIT_CONFIG, relay.stderr())
            for line, key in ((5, "source.password_file"), (10, "broker.password_file")):
                error = self.assert_error_at(relay, line, [18], key)
                self.assertIn("mode 0644 lets its group and others in; chmod 600 it", error)
                self.assertIn(f'got "{path}"', error)
            self.assertNotIn("hunter2", relay.stderr() + relay.stdout())
        os.chmod(path, 0o640)
        relay = self.relay(text)
        self.assertEqual(relay.run("--check", timeout=30), EXIT_CONFIG, relay.stderr())
        self.assertIn("mode 0640 lets its group in", relay.stderr())
        os.chmod(path, 0o600)
        relay, status = self.check(text)
        self.assertEqual(status, EXIT_OK, relay.stderr())

    # --- the command line ------------------------------------------------------

    def test_unknown_option(self):
        relay = self.relay(GOOD)
        self.assertEqual(relay.run("--no-such-option", timeout=30), EXIT_USAGE)
        self.assertIn("usage:", relay.stderr())

    def test_unexpected_argument(self):
        relay = self.relay(GOOD)
        self.assertEqual(relay.run("--check", "stray", timeout=30), EXIT_USAGE)

    def test_bad_log_level(self):
        relay = self.relay(GOOD)
        self.assertEqual(relay.run("--check", "-l", "loud", timeout=30), EXIT_USAGE)

    def test_version(self):
        """The version, then the libraries the binary runs with and systemd support."""
        relay = self.relay(GOOD)
        self.assertEqual(relay.run("--version", config=False, timeout=30), EXIT_OK)
        lines = relay.stdout().splitlines()
        self.assertRegex(lines[0], r"^outbox-relay \d+\.\d+\.\d+$")
        self.assertRegex(lines[1], r"^libpq \d+\.\d+(\.\d+)?$")
        self.assertRegex(lines[2], r"^libmosquitto \d+\.\d+\.\d+$")
        self.assertRegex(lines[3], r"^libyaml \d+\.\d+\.\d+$")
        built_in = self.build_has_systemd()
        if built_in is not None:
            self.assertEqual(lines[4], "systemd support: yes" if built_in else
                             "systemd support: no (built without libsystemd)")
        self.assertEqual(len(lines), 5)
        self.assertEqual(relay.stderr(), "")

    @staticmethod
    def build_has_systemd():
        """HAVE_LIBSYSTEMD of the build under test, or None when its directory is unknown."""
        root = os.environ.get("OUTBOX_BUILD_ROOT")
        if not root:
            return None
        with open(os.path.join(root, "build_config.h")) as f:
            found = re.search(r"#define HAVE_LIBSYSTEMD (\d)", f.read())
        return found.group(1) == "1"

    def test_help(self):
        relay = self.relay(GOOD)
        self.assertEqual(relay.run("--help", config=False, timeout=30), EXIT_OK)
        for option in ("--config", "--check", "--drain", "--log-level", "--version", "--help",
                       "--backfill", "--where", "--redrive", "--id", "--requests", "--wait"):
            self.assertIn(option, relay.stdout())


if __name__ == "__main__":
    harness.main()
