#!/usr/bin/python3
"""doc/design.md §9: what `meson install` puts where, that installing again keeps an edited
configuration and `ninja uninstall` leaves it, man pages that lint clean, and systemd units
hardened to an exposure of 2.0 or below by `systemd-analyze security --offline=yes`."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import harness  # noqa: E402

BUILD_ROOT = os.environ.get("OUTBOX_BUILD_ROOT", "")
SOURCE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MAX_EXPOSURE = 2.0


class InstallTest(harness.IntegrationCase):
    needs_servers = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not BUILD_ROOT:
            raise unittest.SkipTest("OUTBOX_BUILD_ROOT is set by meson test")
        cls.destdir = os.path.join(cls.workdir, "dest")
        cls.install(cls.destdir)
        cls.installed = {}
        for root, _, files in os.walk(cls.destdir):
            for name in files:
                path = os.path.join(root, name)
                cls.installed[os.path.relpath(path, cls.destdir)] = path

    @staticmethod
    def install(destdir):
        subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--no-rebuild", "--quiet",
                        "--destdir", destdir], check=True, stdout=subprocess.DEVNULL)

    def find(self, suffix):
        """The one installed file whose path ends with suffix."""
        hits = [path for rel, path in self.installed.items() if rel.endswith(suffix)]
        self.assertEqual(len(hits), 1, f"{suffix}: {sorted(self.installed)}")
        return hits[0]

    def test_installs_binary_man_pages_units_and_example(self):
        binary = self.find("sbin/outbox-relay")
        self.assertTrue(os.access(binary, os.X_OK))
        self.find("man8/outbox-relay.8")
        self.find("man5/outbox-relay.yaml.5")
        self.find("systemd/system/outbox-relay.service")
        self.find("systemd/system/outbox-relay@.service")
        for sql in ("outbox.sql", "least-privilege.sql", "routed-tables.sql", "inbox.sql"):
            self.find(f"share/outbox-relay/{sql}")
        # The example under share/, and a copy of it as the configuration the unit reads.
        example = self.find("share/outbox-relay/outbox-relay.yaml")
        config = self.find("etc/outbox-relay/outbox-relay.yaml")
        with open(example, "rb") as a, open(config, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(os.stat(config).st_mode & 0o777, 0o644)
        check = subprocess.run([binary, "--check", "-c", config], capture_output=True, text=True)
        self.assertEqual((check.returncode, check.stdout), (0, "configuration OK\n"), check.stderr)

    def test_installing_again_keeps_an_edited_configuration(self):
        """The configuration is copied from the example only when it does not exist (a meson
        install script, honouring DESTDIR): an edit survives the next install."""
        destdir = os.path.join(self.workdir, "again")
        self.install(destdir)
        config = self.find("etc/outbox-relay/outbox-relay.yaml")
        config = os.path.join(destdir, os.path.relpath(config, self.destdir))
        with open(config, "a") as f:
            f.write("# edited by the administrator\n")
        with open(config) as f:
            edited = f.read()
        self.install(destdir)
        with open(config) as f:
            self.assertEqual(f.read(), edited)

    def test_uninstalling_leaves_an_edited_configuration(self):
        """`ninja uninstall` removes what meson installed (its install log), which does not
        hold the configuration the install script copied: an edited one stays."""
        destdir = os.path.join(self.workdir, "uninstall")
        self.install(destdir)
        config = os.path.join(destdir, os.path.relpath(self.find("etc/outbox-relay/outbox-relay.yaml"),
                                                       self.destdir))
        binary = os.path.join(destdir, os.path.relpath(self.find("sbin/outbox-relay"), self.destdir))
        with open(config, "a") as f:
            f.write("# edited by the administrator\n")
        with open(config) as f:
            edited = f.read()
        subprocess.run(["ninja", "-C", BUILD_ROOT, "uninstall"], check=True, stdout=subprocess.DEVNULL)
        self.assertFalse(os.path.exists(binary))
        with open(config) as f:
            self.assertEqual(f.read(), edited)

    def test_man_pages_lint_clean(self):
        for page in ("man/outbox-relay.8", "man/outbox-relay.yaml.5"):
            lint = subprocess.run(["mandoc", "-Tlint", "-Wwarning", os.path.join(SOURCE_ROOT, page)],
                                  capture_output=True, text=True)
            self.assertEqual(lint.stdout + lint.stderr, "", page)

    def test_units_are_hardened(self):
        for unit in ("outbox-relay.service", "outbox-relay@.service"):
            path = self.find(f"systemd/system/{unit}")
            with open(path) as f:
                text = f.read()
            self.assertIn("Type=notify", text)
            self.assertIn("RestartPreventExitStatus=64 78", text)
            report = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                                    capture_output=True, text=True)
            found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", report.stdout)
            self.assertIsNotNone(found, report.stdout + report.stderr)
            self.assertLessEqual(float(found.group(1)), MAX_EXPOSURE, report.stdout)
        template = self.find("systemd/system/outbox-relay@.service")
        with open(template) as f:
            self.assertIn("outbox-relay/%i.yaml", f.read())

    def test_units_verify_clean(self):
        """systemd-analyze verify, with the binary and manual pages where the units will
        find them once installed: here, under the DESTDIR."""
        binary = self.find("sbin/outbox-relay")
        installed_path = "/" + os.path.relpath(binary, self.destdir)
        units = os.path.join(self.workdir, "units")
        os.makedirs(units, exist_ok=True)
        paths = []
        for unit, name in (("outbox-relay.service", "outbox-relay.service"),
                           ("outbox-relay@.service", "outbox-relay@shop.service")):
            with open(self.find(f"systemd/system/{unit}")) as f:
                text = f.read().replace(installed_path, binary)
            paths.append(os.path.join(units, name))
            with open(paths[-1], "w") as f:
                f.write(text)
        man = os.path.dirname(os.path.dirname(self.find("man8/outbox-relay.8")))
        verify = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True,
                                env=dict(os.environ, MANPATH=man))
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))


if __name__ == "__main__":
    if not shutil.which("systemd-analyze") or not shutil.which("mandoc"):
        sys.exit("systemd-analyze and mandoc are needed (scripts/lib.sh installs them)")
    harness.main()
