#!/usr/bin/env python3
"""Tests guest/fetch-source.sh (how the guest build gets Debian's orig
tarballs) against a fake `apt-cache` and `apt-get` on PATH, so that the
outcome does not depend on the archive's mood: the newest listed version
failing while an older one delivers (Debian's security archive listing files
it no longer serves), a tarball with the wrong sha256, nothing delivering, and
a cached tarball that is reused or replaced.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "guest", "fetch-source.sh")

# apt-cache showsrc PACKAGE: prints $FAKE_APT/showsrc.
FAKE_APT_CACHE = r'''#!/usr/bin/env python3
import os, sys
assert sys.argv[1] == "showsrc", sys.argv
with open(os.path.join(os.environ["FAKE_APT"], "showsrc")) as f:
    sys.stdout.write(f.read())
'''

# apt-get source -qq --download-only PACKAGE=VERSION: logs the request to
# $FAKE_APT/calls, then does what $FAKE_APT/answer-VERSION says: "deliver
# CONTENT" writes the tarball (named in $FAKE_APT/tarball) into the current
# folder; "404" fails as the security archive does; a missing file means apt
# does not know the version.
FAKE_APT_GET = r'''#!/usr/bin/env python3
import os, sys
fake = os.environ["FAKE_APT"]
args = sys.argv[1:]
assert args[0] == "source" and "--download-only" in args, args
package, version = args[-1].split("=", 1)
with open(os.path.join(fake, "calls"), "a") as f:
    f.write(args[-1] + "\n")
answer_file = os.path.join(fake, "answer-" + version)
if not os.path.exists(answer_file):
    print("E: Can not find version '%s' of package '%s'" % (version, package))
    sys.exit(100)
answer = open(answer_file).read()
if answer.startswith("404"):
    print("Err:1 http://archive.invalid/debian-security %s %s (dsc)" % (package, version))
    print("  404  Not Found [IP: 192.0.2.1 80]")
    print("E: Failed to fetch http://archive.invalid/%s.dsc  404  Not Found" % package)
    sys.exit(100)
assert answer.startswith("deliver "), answer
with open(open(os.path.join(fake, "tarball")).read(), "w") as f:
    f.write(answer[len("deliver "):])
'''

TARBALL = "zlib_1.2.13.dfsg.orig.tar.bz2"
GOOD = "the real upstream tarball\n"


def read(path):
    with open(path) as f:
        return f.read()


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def stanza(package, version):
    return "Package: %s\nBinary: %s\nVersion: %s\nFormat: 3.0 (quilt)\n\n" % (package, package, version)


class FetchSourceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="terrarium-fetch-source-test-")
        self.fake = os.path.join(self.tmp, "fake-apt")
        self.bin = os.path.join(self.tmp, "bin")
        self.cache = os.path.join(self.tmp, "cache")
        os.makedirs(self.fake)
        os.makedirs(self.bin)
        for name, text in (("apt-cache", FAKE_APT_CACHE), ("apt-get", FAKE_APT_GET)):
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(text.replace("/usr/bin/env python3", sys.executable, 1))
            os.chmod(path, 0o755)
        with open(os.path.join(self.fake, "tarball"), "w") as f:
            f.write(TARBALL)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def archive(self, showsrc, answers):
        with open(os.path.join(self.fake, "showsrc"), "w") as f:
            f.write(showsrc)
        for version, answer in answers.items():
            with open(os.path.join(self.fake, "answer-" + version), "w") as f:
                f.write(answer)

    def fetch(self, expected_sha=None):
        env = dict(os.environ, FAKE_APT=self.fake, TERRARIUM_CACHE=self.cache,
                   PATH=self.bin + os.pathsep + os.environ["PATH"])
        return subprocess.run(["bash", SCRIPT, "zlib", TARBALL, expected_sha or sha256(GOOD)],
                              env=env, capture_output=True, text=True, timeout=60)

    def calls(self):
        path = os.path.join(self.fake, "calls")
        return read(path).split() if os.path.exists(path) else []

    def cached(self):
        path = os.path.join(self.cache, "src", TARBALL)
        return read(path) if os.path.exists(path) else None

    def leftovers(self):
        return [n for n in os.listdir(os.path.join(self.cache, "src")) if n != TARBALL]

    def test_an_older_version_delivers_when_the_newest_answers_404(self):
        # Listed out of order, with an epoch, beside another package's stanza:
        # the script must try dpkg's newest first and only zlib's versions.
        self.archive(stanza("zlib", "1:1.2.13.dfsg-1") + stanza("zlib-ng", "9:9.9-9")
                     + stanza("zlib", "1:1.2.13.dfsg-1+deb12u1") + stanza("zlib", "1.2.11.dfsg-2"),
                     {"1:1.2.13.dfsg-1+deb12u1": "404", "1:1.2.13.dfsg-1": "deliver " + GOOD})
        result = self.fetch()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.calls(), ["zlib=1:1.2.13.dfsg-1+deb12u1", "zlib=1:1.2.13.dfsg-1"])
        self.assertEqual(self.cached(), GOOD)
        self.assertEqual(self.leftovers(), [])
        # Says which version delivered and why the newer one did not.
        self.assertIn("zlib=1:1.2.13.dfsg-1 delivered " + TARBALL, result.stderr)
        self.assertIn("zlib=1:1.2.13.dfsg-1+deb12u1: no " + TARBALL, result.stderr)
        self.assertIn("404", result.stderr)

    def test_a_tarball_with_the_wrong_sha256_is_not_kept(self):
        self.archive(stanza("zlib", "1:1.2.13.dfsg-2") + stanza("zlib", "1:1.2.13.dfsg-1"),
                     {"1:1.2.13.dfsg-2": "deliver a repacked tarball\n", "1:1.2.13.dfsg-1": "deliver " + GOOD})
        result = self.fetch()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.calls(), ["zlib=1:1.2.13.dfsg-2", "zlib=1:1.2.13.dfsg-1"])
        self.assertEqual(self.cached(), GOOD)
        self.assertIn("zlib=1:1.2.13.dfsg-2: delivered %s with sha256 %s" % (TARBALL, sha256("a repacked tarball\n")),
                      result.stderr)

    def test_nothing_delivers_and_the_error_lists_every_attempt(self):
        self.archive(stanza("zlib", "1:1.2.13.dfsg-1+deb12u1") + stanza("zlib", "1:1.2.13.dfsg-1")
                     + stanza("zlib", "1:1.2.11.dfsg-4"),
                     {"1:1.2.13.dfsg-1+deb12u1": "404", "1:1.2.13.dfsg-1": "deliver wrong bytes\n"})
        result = self.fetch()
        self.assertNotEqual(result.returncode, 0)
        self.assertIsNone(self.cached(), "an unverified tarball was left under its name")
        self.assertEqual(self.leftovers(), [])
        err = result.stderr
        self.assertIn("no source version of zlib delivered %s with sha256 %s" % (TARBALL, sha256(GOOD)), err)
        lines = [line for line in err.splitlines() if line.startswith("[guest]   zlib=")]
        self.assertEqual(len(lines), 3, err)
        self.assertIn("zlib=1:1.2.13.dfsg-1+deb12u1: no %s (apt-get exit 100: " % TARBALL, lines[0])
        self.assertIn("404", lines[0])
        self.assertIn("zlib=1:1.2.13.dfsg-1: delivered %s with sha256 %s" % (TARBALL, sha256("wrong bytes\n")), lines[1])
        self.assertIn("zlib=1:1.2.11.dfsg-4: no %s (apt-get exit 100: E: Can not find version" % TARBALL, lines[2])
        self.assertIn("Place the tarball by hand as %s/src/%s" % (self.cache, TARBALL), err)

    def test_a_cached_tarball_is_reused_and_a_corrupt_one_replaced(self):
        self.archive(stanza("zlib", "1:1.2.13.dfsg-1"), {"1:1.2.13.dfsg-1": "deliver " + GOOD})
        self.assertEqual(self.fetch().returncode, 0)
        self.assertEqual(self.calls(), ["zlib=1:1.2.13.dfsg-1"])
        # Present and right: apt is not asked again.
        result = self.fetch()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(self.calls()), 1)
        # Present and wrong (a truncated download): fetched again, and said so.
        with open(os.path.join(self.cache, "src", TARBALL), "w") as f:
            f.write("trunc")
        result = self.fetch()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(self.calls()), 2)
        self.assertEqual(self.cached(), GOOD)
        self.assertIn("fetching it again", result.stderr)


if __name__ == "__main__":
    unittest.main()
