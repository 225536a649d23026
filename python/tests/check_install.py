"""The binding installs as the issue promises (ctest python.install):

  1. `pip install --no-build-isolation ./python` into a fresh venv, offline,
     with Debian's setuptools (the venv sees the system's site packages for
     them), then the venv's python imports terrarium and runs a guest;
  2. `cmake --install` into a prefix, then Debian's python3 imports the
     package from the prefix's site directory and runs a guest.

    /usr/bin/python3 python/tests/check_install.py --source . --build build
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

PROBE = ("import sys, terrarium\n"
         "assert terrarium.__file__.startswith(sys.argv[1]), terrarium.__file__\n"
         "sandbox = terrarium.Sandbox()\n"
         "@sandbox.host_function\n"
         "def demo(a, b):\n"
         "    return (a + b) * 11\n"
         "sandbox.exec('import terrarium\\nprint(terrarium.host.demo(1, 2))')\n"
         "print(sandbox.run('print(6 * 7)').stdout.decode().strip())\n")


def run(command, **kwargs):
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="the Terrarium source tree")
    parser.add_argument("--build", required=True, help="its CMake build tree (already built)")
    options = parser.parse_args()
    source, build = os.path.abspath(options.source), os.path.abspath(options.build)
    with tempfile.TemporaryDirectory(prefix="terrarium-install-") as scratch:
        # pip builds in the directory it is given: a copy keeps the source clean.
        package = os.path.join(scratch, "python")
        shutil.copytree(os.path.join(source, "python"), package,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        venv = os.path.join(scratch, "venv")
        run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
        run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--no-build-isolation",
             "--no-index", "--quiet", package],
            env=clean_env(TERRARIUM_SOURCE_DIR=source, TERRARIUM_BUILD_DIR=build))
        out = run([os.path.join(venv, "bin", "python"), "-c", PROBE, venv], env=clean_env(),
                  cwd=scratch, capture_output=True, text=True).stdout
        assert out == "33\n42\n", out
        print("pip install: ok")

        prefix = os.path.join(scratch, "prefix")
        run(["cmake", "--install", build, "--component", "python", "--prefix", prefix], stdout=subprocess.DEVNULL)
        site = os.path.join(prefix, "lib", "python3", "dist-packages")
        for name in ("__init__.py", "__init__.pyi", "py.typed"):
            assert os.path.exists(os.path.join(site, "terrarium", name)), name
        out = run(["/usr/bin/python3", "-c", PROBE, site], env=clean_env(PYTHONPATH=site), cwd=scratch,
                  capture_output=True, text=True).stdout
        assert out == "33\n42\n", out
        print("cmake --install: ok")


if __name__ == "__main__":
    sys.exit(main())
