#!/usr/bin/env python3
"""Profile-guided optimisation of the translated guest: the training run.

gcc compiles the wasm2c output twice when TERRARIUM_GUEST_PGO is on (see
guest/CMakeLists.txt): once instrumented (-fprofile-generate) into a separate
`terrarium-instrumented` binary, and once for real with -fprofile-use. Between
the two, this script

    train:   runs CPython's own PGO training set (`python -m test --pgo`, the
             list CPython and Debian train their native builds on; none of it is
             a benchmark in bench/) under the instrumented binary, then copies
             the profile (.gcda, one per unit) next to the final objects, where
             `gcc -fprofile-use` looks for it, and into the cache directory;
    restore: copies a cached profile next to the final objects (a fresh clone
             whose inputs were trained before skips the instrumented build).

Either way it writes STAMP last, which the final objects depend on.

A profile that does not match the code (stale cache) cannot make the build
wrong: gcc ignores the profile of any function whose shape changed.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

from regrtest_sandbox import scratch, terrarium_command

# regrtest returns 0 (all passed), 2 (some failed, e.g. a module that needs
# _testcapi) or 3 (a test changed its environment); all fine for training.
# Anything else (a trap: 125, a timeout: 124, a crash) means the profile would
# be partial: stop the build.
ACCEPTED_STATUS = (0, 2, 3)


def say(message):
    sys.stderr.write("[guest-pgo] %s\n" % message)
    sys.stderr.flush()


def profiles_in(directory):
    return sorted(glob.glob(os.path.join(directory, "*.gcda")))


def copy_profiles(paths, destination):
    os.makedirs(destination, exist_ok=True)
    for stale in profiles_in(destination):
        os.unlink(stale)
    for path in paths:
        shutil.copy2(path, os.path.join(destination, os.path.basename(path)))


def train(args):
    for stale in profiles_in(args.instrumented_objects):
        os.unlink(stale)
    with open(args.source_dir_file) as f:
        lib_test = os.path.join(f.read().strip(), "Lib", "test")
    if not os.path.isdir(lib_test):
        sys.exit("guest_profile.py: CPython's Lib/test not found at %s" % lib_test)
    with scratch("terrarium-pgo-") as scratch_dir:
        command = terrarium_command(args.terrarium, lib_test, scratch_dir, ["--pgo"])
        say("training run: CPython's PGO test set under the instrumented guest (~1 min)")
        start = time.monotonic()
        with open(args.log, "w") as log:
            status = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, timeout=args.timeout)
    if status not in ACCEPTED_STATUS:
        sys.exit("guest_profile.py: training run exited with status %d; see %s"
                 % (status, args.log))
    say("training run done in %.0f s (log: %s)" % (time.monotonic() - start, args.log))
    found = profiles_in(args.instrumented_objects)
    if len(found) < args.units:
        sys.exit("guest_profile.py: expected %d profiles in %s after training, found %d"
                 % (args.units, args.instrumented_objects, len(found)))
    copy_profiles(found, args.final_objects)
    # Into the cache through a temporary directory, so that a build stopped
    # half-way never leaves a partial profile that looks complete.
    partial = args.cache + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    copy_profiles(found, partial)
    shutil.rmtree(args.cache, ignore_errors=True)
    os.rename(partial, args.cache)
    say("profile of %d units cached in %s" % (len(found), args.cache))


def restore(args):
    found = profiles_in(args.cache)
    if len(found) < args.units:
        sys.exit("guest_profile.py: cached profile %s has %d units, expected %d; "
                 "delete it and reconfigure to train again" % (args.cache, len(found), args.units))
    copy_profiles(found, args.final_objects)
    say("using the cached profile %s" % args.cache)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["train", "restore"])
    parser.add_argument("--terrarium", help="the instrumented terrarium binary (train)")
    parser.add_argument("--source-dir-file", help="guest/cpython/source-dir.txt (train)")
    parser.add_argument("--instrumented-objects", help="directory of the instrumented units' objects")
    parser.add_argument("--final-objects", required=True, help="directory of the final units' objects")
    parser.add_argument("--cache", required=True, help="cache directory of this profile")
    parser.add_argument("--units", type=int, required=True, help="number of translated units")
    parser.add_argument("--stamp", required=True)
    parser.add_argument("--log", default="guest-profile-training.log")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    if args.mode == "train":
        if not (args.terrarium and args.source_dir_file and args.instrumented_objects):
            parser.error("train needs --terrarium, --source-dir-file and --instrumented-objects")
        train(args)
    else:
        restore(args)
    with open(args.stamp, "w") as f:
        f.write(args.cache + "\n")


if __name__ == "__main__":
    main()
