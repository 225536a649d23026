#!/usr/bin/env python3
"""Runs tests/thirdparty/PACKAGE_test.py under native /usr/bin/python3.11 and in
the sandbox, with Debian's /usr/lib/python3/dist-packages on the path of both
(mounted read-only at /site in the guest), and fails unless the exit statuses
and stdouts are identical.

  compare.py TERRARIUM_BINARY PACKAGE
  compare.py TERRARIUM_BINARY --script FILE   (any script, no packages mounted)

Exit 77 (ctest: skipped) when the Debian package is not installed.
"""
import difflib
import importlib.util
import os
import subprocess
import sys

DIST = "/usr/lib/python3/dist-packages"
NATIVE = "/usr/bin/python3.11"
HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = {}  # package name -> top-level directory in dist-packages, when they differ


def main():
    terrarium = sys.argv[1]
    env = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    guest_options = ["--env", "PYTHONHASHSEED=0"]
    if sys.argv[2] == "--script":
        script = os.path.abspath(sys.argv[3])
        package = os.path.basename(script)
    else:
        package = sys.argv[2]
        script = os.path.join(HERE, f"{package}_test.py")
        module = MODULE.get(package, package)
        if not (os.path.isdir(os.path.join(DIST, module)) or os.path.isfile(os.path.join(DIST, module + ".py"))):
            print(f"SKIP: {DIST}/{module} missing (apt-get install python3-{package}; see make deps)")
            return 77
        env["PYTHONPATH"] = DIST
        guest_options += ["--dir", f"{DIST}::/site:ro", "--env", "PYTHONPATH=/site"]
    native = subprocess.run([NATIVE, "-S", script], capture_output=True, env=env, timeout=120)
    guest = subprocess.run([terrarium, "run"] + guest_options + ["--", script], capture_output=True, timeout=120)
    ok = True
    if native.returncode != 0:
        print(f"native run failed ({native.returncode}):\n{native.stderr.decode()}")
        ok = False
    if guest.returncode != native.returncode:
        print(f"exit status: native {native.returncode}, terrarium {guest.returncode}\n"
              f"terrarium stderr:\n{guest.stderr.decode()}")
        ok = False
    if guest.stdout != native.stdout:
        diff = difflib.unified_diff(native.stdout.decode().splitlines(), guest.stdout.decode().splitlines(),
                                    "native python3.11", "terrarium", lineterm="")
        print("stdout differs:\n" + "\n".join(diff))
        ok = False
    if ok:
        print(f"{package}: {len(native.stdout.splitlines())} lines of output identical")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
