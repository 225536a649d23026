"""How CPython's regression tests (regrtest) run inside Terrarium: one layout
shared by tests/cpython/run.py (module by module, and under Node's WASI as a
reference) and tools/guest_profile.py (the PGO training run).

Stdlib only.
"""
import contextlib
import os
import shutil
import tempfile

GUEST_TEST = "/usr/local/lib/python3.11/test"
ENV = {"TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
# --tempdir: regrtest would os.makedirs(gettempdir()), which stats "/";
# Node's WASI has no "/" (only the preopens), so name a directory below /tmp.
REGRTEST = ["-m", "test", "--tempdir", "/tmp/regrtest"]


@contextlib.contextmanager
def scratch(prefix):
    """A fresh host directory with an empty root/ (the guest's writable "/")
    and tmp/ (its /tmp), removed afterwards.

    Without a "/" mount, "/" does not exist in the guest: regrtest chdir()s
    back to the initial cwd "/" when done and fails, and paths outside every
    mount give ENOTCAPABLE (PermissionError) where tests expect ENOENT."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        os.mkdir(os.path.join(path, "root"))
        os.mkdir(os.path.join(path, "tmp"))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def env_options():
    options = []
    for key, value in ENV.items():
        options += ["--env", "%s=%s" % (key, value)]
    return options


def terrarium_command(terrarium, lib_test, scratch_dir, regrtest_args):
    """`terrarium run` of regrtest with Lib/test mounted read-only."""
    return ([terrarium, "run", "--dir", "%s/root::/" % scratch_dir,
             "--dir", "%s::%s:ro" % (lib_test, GUEST_TEST), "--dir", "%s/tmp::/tmp" % scratch_dir]
            + env_options() + REGRTEST + regrtest_args)
