"""CGI scripts under ``terrarium serve``: compiled once, run once per request.

The server prepares a route's sandbox with ``prepare(path)`` and takes its
snapshot; each request then runs in a fresh copy of it: the host sets
``sys.argv``, ``os.environ`` and stdin for the request (Sandbox::set_invocation)
and calls ``__terrarium_cgi__``, which runs the script as ``__main__`` and
returns its exit status as ``python script.py`` would.
"""

import atexit
import builtins
import os
import sys
import types

import terrarium

# What most CGI scripts import; loaded before the snapshot so that requests
# find them ready.
# linecache and tokenize: what a warning or a traceback reads the script's
# lines with (logging.warn, a DeprecationWarning in __main__, an uncaught error).
_WARM = ("os", "sys", "json", "io", "re", "traceback", "urllib.parse", "html", "datetime",
         "warnings", "linecache", "tokenize")

_code = None
_path = None


def _stdlib_module(name):
    """True if ``name`` is a module of the standard library (or built in)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    origin = spec.origin or ""
    return origin.startswith(sys.prefix + "/lib/python") or origin.startswith("/usr/local/lib/python3.11/")


def _top_level_imports(tree):
    import ast

    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def prepare(path):
    """Compiles the script at ``path`` (a guest path) and warms its imports.

    Only standard-library modules are imported ahead: the user's own modules
    may read the environment when imported, which is the request's.
    """
    global _code, _path
    import ast

    with open(path, "rb") as file:
        source = file.read()
    tree = compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    _code = compile(tree, path, "exec", dont_inherit=True)
    _path = path
    # Warnings and tracebacks show the lines that were compiled, without
    # reading the file again in every request (mtime None: never re-checked).
    import linecache

    text = source.decode("utf-8", "replace")
    linecache.cache[path] = (len(text), None, text.splitlines(True), path)
    # As `python script.py` does: the script's folder first on sys.path.
    sys.path.insert(0, os.path.dirname(path) or "/")
    for name in _WARM + tuple(_top_level_imports(tree)):
        if name in sys.modules or not _stdlib_module(name):
            continue
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - it fails again, visibly, in a request
            pass
    terrarium.export("__terrarium_cgi__")(_run)


def _exit_status(exit):
    code = exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else (256 + code) & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:  # noqa: BLE001
        pass
    return 1


def _run(_):
    main = types.ModuleType("__main__")
    main.__file__ = _path
    main.__builtins__ = builtins
    main.__cached__ = None
    sys.modules["__main__"] = main
    try:
        exec(_code, main.__dict__)
        status = 0
    except SystemExit as exit:
        status = _exit_status(exit)
    except BaseException:  # noqa: BLE001 - as the interpreter reports it
        sys.excepthook(*sys.exc_info())
        status = 1
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001
            pass
    return status
