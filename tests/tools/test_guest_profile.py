#!/usr/bin/env python3
"""Tests tools/guest_profile.py (the PGO training step of the guest build) with
a stand-in for the instrumented terrarium binary: what lands next to the final
objects, what is cached, and that a failed or partial training stops the build.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "guest_profile.py")

# Writes one .gcda per unit (as libgcov does at exit) into $FAKE_OBJECTS, after
# checking it was asked to run CPython's PGO set with Lib/test mounted; exits
# with $FAKE_STATUS.
FAKE_TERRARIUM = r'''#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
assert args[0] == "run", args
assert args[-5:] == ["-m", "test", "--tempdir", "/tmp/regrtest", "--pgo"], args
mounts = [args[i + 1] for i, a in enumerate(args) if a == "--dir"]
assert any(m.endswith("/Lib/test::/usr/local/lib/python3.11/test:ro") for m in mounts), mounts
for unit in range(int(os.environ["FAKE_UNITS"])):
    with open(os.path.join(os.environ["FAKE_OBJECTS"], "python_wasm_%d.c.gcda" % unit), "w") as f:
        f.write("profile %d\n" % unit)
print("training output")
sys.exit(int(os.environ["FAKE_STATUS"]))
'''


class GuestProfileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="terrarium-guest-profile-test-")
        self.instrumented = os.path.join(self.tmp, "instrumented")
        self.final = os.path.join(self.tmp, "final")
        self.cache = os.path.join(self.tmp, "cache", "guest-profile-key")
        self.stamp = os.path.join(self.tmp, "profile.stamp")
        self.log = os.path.join(self.tmp, "training.log")
        for d in (self.instrumented, self.final, os.path.join(self.tmp, "src", "Lib", "test")):
            os.makedirs(d)
        self.source_dir_file = os.path.join(self.tmp, "source-dir.txt")
        with open(self.source_dir_file, "w") as f:
            f.write(os.path.join(self.tmp, "src") + "\n")
        self.terrarium = os.path.join(self.tmp, "terrarium-instrumented")
        with open(self.terrarium, "w") as f:
            f.write(FAKE_TERRARIUM)
        os.chmod(self.terrarium, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_script(self, mode, status=2, written_units=3, units=3):
        env = dict(os.environ, FAKE_STATUS=str(status), FAKE_UNITS=str(written_units),
                   FAKE_OBJECTS=self.instrumented)
        command = [sys.executable, SCRIPT, mode, "--final-objects", self.final, "--cache", self.cache,
                   "--units", str(units), "--stamp", self.stamp, "--log", self.log]
        if mode == "train":
            command += ["--terrarium", self.terrarium, "--source-dir-file", self.source_dir_file,
                        "--instrumented-objects", self.instrumented]
        return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)

    def profiles(self, directory):
        return sorted(n for n in os.listdir(directory) if n.endswith(".gcda"))

    def test_training_puts_the_profile_beside_the_final_objects_and_in_the_cache(self):
        with open(os.path.join(self.final, "python_wasm_9.c.gcda"), "w") as f:
            f.write("stale")
        with open(os.path.join(self.instrumented, "python_wasm_7.c.gcda"), "w") as f:
            f.write("stale, from an earlier training run")
        result = self.run_script("train", status=2)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = ["python_wasm_0.c.gcda", "python_wasm_1.c.gcda", "python_wasm_2.c.gcda"]
        self.assertEqual(self.profiles(self.final), expected)
        self.assertEqual(self.profiles(self.cache), expected)
        with open(os.path.join(self.final, "python_wasm_1.c.gcda")) as f:
            self.assertEqual(f.read(), "profile 1\n")
        with open(self.log) as f:
            self.assertIn("training output", f.read())
        self.assertTrue(os.path.exists(self.stamp))

    def test_a_trapping_training_run_fails_the_build_and_caches_nothing(self):
        result = self.run_script("train", status=125)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("status 125", result.stderr)
        self.assertIn(self.log, result.stderr)
        self.assertFalse(os.path.exists(self.cache))
        self.assertFalse(os.path.exists(self.stamp))

    def test_missing_profiles_fail_the_build(self):
        result = self.run_script("train", status=0, written_units=2, units=3)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("expected 3 profiles", result.stderr)
        self.assertFalse(os.path.exists(self.cache))

    def test_restore_copies_a_cached_profile(self):
        self.assertEqual(self.run_script("train").returncode, 0)
        shutil.rmtree(self.final)
        os.unlink(self.stamp)
        result = self.run_script("restore")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(self.profiles(self.final)), 3)
        self.assertTrue(os.path.exists(self.stamp))

    def test_restore_refuses_an_incomplete_cache(self):
        os.makedirs(self.cache)
        with open(os.path.join(self.cache, "python_wasm_0.c.gcda"), "w") as f:
            f.write("x")
        result = self.run_script("restore")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("has 1 units, expected 3", result.stderr)
        self.assertFalse(os.path.exists(self.stamp))


if __name__ == "__main__":
    unittest.main(verbosity=2)
