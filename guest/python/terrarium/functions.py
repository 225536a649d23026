"""Metatype-style ops in the sandbox (the function runtime, docs/functions.md).

The host compiles every op once with ``__terrarium_functions_init__``, takes
a snapshot, and runs each call with ``__terrarium_functions_handle__`` in a
fresh copy of it. Handlers call back into the host with ``hostcall``::

    from terrarium.functions import hostcall

    def handler(inp, gql):              # gql(query, variables) is hostcall("gql", ...)
        user = gql("query { me { id } }", {})
        return {"id": user["me"]["id"], "n": hostcall("count", inp)}

Wire (docs/abi.md, "Function runtime"):
- init (JSON): {"ops": [{"name": NAME, "data": MAT_DATA}, ...]} -> null, or
  {"op", "kind": "unexpected-mat" | "other", "message", "type", "traceback"};
- handle (bytes): NAME NUL IN_JSON -> b"R" + the result's JSON text, or
  b"E" + {"kind": "in-json-err" | "handler-err", "message", "type", "traceback"};
- the host function ``__terrarium_hostcall__`` (bytes): NAME NUL JSON -> the
  answer's JSON text; a failure is raised as HostcallError.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import json
import linecache
import posixpath
import sys
import types

import terrarium

__all__ = ["hostcall", "HostcallError", "Context"]

_encode = terrarium._encode
_decode = terrarium._decode
_raw_host_call = terrarium._raw_host_call
_KIND_BYTES = terrarium._KIND_BYTES


class HostcallError(terrarium.HostError):
    """A hostcall failed; ``op_name`` names it, ``message`` is the host's answer."""

    def __init__(self, op_name, message):
        super().__init__("hostcall %r failed: %s" % (op_name, message))
        self.op_name = op_name
        self.message = message


def hostcall(op_name, value=None):
    """Calls the host's operation ``op_name`` with a JSON value; returns the
    decoded answer. Raises HostcallError naming the op if the host fails it."""
    if type(op_name) is not str:
        raise TypeError("hostcall op_name must be a str, not %s" % type(op_name).__name__)
    request = op_name.encode("utf-8", "surrogatepass") + b"\0" + _encode(value).encode("ascii")
    try:
        answer = _raw_host_call("__terrarium_hostcall__", request, _KIND_BYTES)
    except terrarium.HostError as error:
        raise HostcallError(op_name, str(error)) from None
    text = answer.decode("utf-8", "replace") if type(answer) is bytes else answer
    try:
        return _decode(text)
    except ValueError as error:
        raise HostcallError(op_name, "the answer is not JSON (%s): %.200r" % (error, text)) from None


class Context:
    """The second argument of a two-argument handler: ``gql(query, variables)``
    as in Metatype, and ``hostcall(op_name, value)`` for other host ops."""

    __slots__ = ()

    def __call__(self, query, variables=None):
        return hostcall("gql", {"query": query, "variables": {} if variables is None else variables})

    gql = __call__

    @staticmethod
    def hostcall(op_name, value=None):
        return hostcall(op_name, value)

    def __repr__(self):
        return "<terrarium.functions.Context>"


_context = Context()
# name -> (callable, takes_context)
_handlers = {}


class _InitError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _type_name(kind):
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else module + "." + kind.__qualname__


def _remember_source(filename, source):
    # Tracebacks show the op's lines although no file holds them.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _takes_context(function, op_name):
    """True if the handler takes (inp, gql): two positional parameters, or *args."""
    import inspect

    try:
        # Follows functools.wraps (__wrapped__) to the decorated handler.
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False  # a builtin without a signature: give it (inp)
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    if count == 0:
        raise _InitError("other", "op %r: the handler takes no argument (it must take "
                         "(inp) or (inp, gql))" % op_name)
    return count >= 2


class _SourcesFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Serves one op's uploaded files as the package ``prefix``: "lib/util.py"
    is ``prefix.lib.util``, so dot-relative imports between them work."""

    def __init__(self, prefix, display_root, sources):
        self.prefix = prefix
        self.display_root = display_root
        self.modules = {}   # module name -> (relative path, source)
        self.packages = {self.prefix: ""}  # package name -> its folder (relative)
        self.files = sources  # relative path -> text, also what get_data reads
        for path, source in sources.items():
            name = self.module_name(path)
            if name is None:
                continue  # data (or a file no import can name): pkgutil.get_data reads it
            parts = name.split(".")
            for i in range(1, len(parts)):
                package = ".".join(parts[:i])
                self.packages.setdefault(package, "/".join(parts[1:i]))
            if path == "__init__.py" or path.endswith("/__init__.py"):
                self.packages[name] = path[:-len("__init__.py")].rstrip("/")
            self.modules[name] = (path, source)

    def module_name(self, path):
        """The module a .py path defines ("lib/__init__.py" -> prefix.lib), or None."""
        if not path.endswith(".py"):
            return None
        parts = path[:-3].split("/")
        if parts[-1] == "__init__":
            parts.pop()
        if not all(part.isidentifier() for part in parts):
            return None
        return ".".join([self.prefix] + parts)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.prefix and not fullname.startswith(self.prefix + "."):
            return None
        if fullname not in self.modules and fullname not in self.packages:
            return None
        package = fullname in self.packages
        origin = self.get_filename(fullname)
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=package)
        if package:
            spec.submodule_search_locations = []
        # __file__ for every module and package: pkgutil.get_data needs it.
        spec.has_location = True
        return spec

    def get_source(self, fullname):
        entry = self.modules.get(fullname)
        return entry[1] if entry is not None else ""

    def get_filename(self, fullname):
        entry = self.modules.get(fullname)
        if entry is not None:
            return self.display_root + "/" + entry[0]
        folder = self.packages.get(fullname, "")
        return self.display_root + "/" + (folder + "/" if folder else "") + "__init__.py"

    def get_code(self, fullname):
        source = self.get_source(fullname)
        filename = self.get_filename(fullname)
        _remember_source(filename, source)
        return compile(source, filename, "exec", dont_inherit=True)

    def get_data(self, path):
        root = self.display_root + "/"
        if path.startswith(root) and path[len(root):] in self.files:
            return self.files[path[len(root):]].encode("utf-8", "surrogateescape")
        raise OSError("no file %r among the op's files" % path)

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)


def _normalize(path):
    if type(path) is not str or not path:
        raise _InitError("other", "a source path must be a non-empty string, not %r" % (path,))
    clean = posixpath.normpath(path)
    if path.startswith("/") or clean == ".." or clean.startswith("../"):
        raise _InitError("other", "source path %r lies outside the op's files" % path)
    return clean


def _compile(index, name, data):
    if not isinstance(data, dict):
        raise _InitError("unexpected-mat", "op %r: mat_data is %s, not an object" % (
            name, type(data).__name__))
    ty = data.get("ty")

    def need(key):
        value = data.get(key)
        if type(value) is not str:
            raise _InitError("other", "op %r (%s): %r is %s" % (
                name, ty, key, "missing" if value is None else "not a string"))
        return value

    if ty == "lambda":
        source = need("source")
        filename = "<op %s>" % name
        _remember_source(filename, source)
        function = eval(compile(source, filename, "eval", dont_inherit=True),
                        {"__name__": "__op__", "__builtins__": __builtins__})
        if not callable(function):
            raise _InitError("other", "op %r: the lambda source evaluates to %s, not a callable"
                             % (name, type(function).__name__))
    elif ty == "def":
        source = need("source")
        func_name = need("func_name")
        filename = "<op %s>" % name
        _remember_source(filename, source)
        module = types.ModuleType("_terrarium_op_%d" % index)
        module.__file__ = filename
        sys.modules[module.__name__] = module
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
        function = module.__dict__.get(func_name)
        if function is None:
            raise _InitError("other", "op %r: the source defines no %r" % (name, func_name))
    elif ty == "import_function":
        func_name = need("func_name")
        root = _normalize(need("root_src_path"))
        sources = data.get("sources")
        if not isinstance(sources, dict):
            raise _InitError("other", "op %r (import_function): 'sources' is %s, not an object "
                             "of path -> source" % (name, "missing" if sources is None else
                                                    type(sources).__name__))
        files = {}
        for path, source in sources.items():
            if type(source) is not str:
                raise _InitError("other", "op %r: source of %r is not a string" % (name, path))
            files[_normalize(path)] = source
        if root not in files:
            raise _InitError("other", "op %r: root_src_path %r is not among the sources (%s)" % (
                name, root, ", ".join(sorted(files)) or "none"))
        finder = _SourcesFinder("_terrarium_op_%d" % index, "/ops/" + name, files)
        module_name = finder.module_name(root)
        if module_name is None:
            raise _InitError("other", "op %r: root_src_path %r is not a Python module path "
                             "(NAME/NAME.py, each NAME an identifier)" % (name, root))
        sys.meta_path.insert(0, finder)
        module = importlib.import_module(module_name)
        function = getattr(module, func_name, None)
        if function is None:
            raise _InitError("other", "op %r: %s defines no %r" % (name, root, func_name))
    else:
        raise _InitError("unexpected-mat", "op %r: unknown mat type %r (expected lambda, def or "
                         "import_function)" % (name, ty))
    if not callable(function):
        raise _InitError("other", "op %r: %r is %s, not a function" % (
            name, data.get("func_name"), type(function).__name__))
    return function, _takes_context(function, name)


def _init(request):
    for index, op in enumerate(request["ops"]):
        name = op["name"]
        try:
            _handlers[name] = _compile(index, name, op["data"])
        except _InitError as error:
            return {"op": name, "kind": error.kind, "message": str(error), "type": "", "traceback": ""}
        except BaseException as error:
            import traceback

            kind = type(error)
            text = "".join(traceback.format_exception(kind, error, error.__traceback__.tb_next))
            return {"op": name, "kind": "other", "type": _type_name(kind),
                    "message": "op %r: %s: %s" % (name, _type_name(kind), error),
                    "traceback": text}
    return None


def _failure(kind, error, skip):
    import traceback

    tb = error.__traceback__
    for _ in range(skip):
        if tb is not None:
            tb = tb.tb_next
    try:
        message = str(error)
    except BaseException:
        message = "<unprintable %s>" % type(error).__name__
    return b"E" + _encode({
        "kind": kind, "message": message, "type": _type_name(type(error)),
        "traceback": "".join(traceback.format_exception(type(error), error, tb)),
    }).encode("ascii")


def _flush(stream):
    try:
        if stream is not None:
            stream.flush()
    except BaseException:
        pass


def _handle(data):
    name, _, text = data.partition(b"\0")
    function, takes_context = _handlers[name.decode("utf-8", "surrogateescape")]
    try:
        inp = json.loads(text)
    except ValueError as error:
        return _failure("in-json-err", error, 99)
    try:
        result = function(inp, _context) if takes_context else function(inp)
    except BaseException as error:
        return _failure("handler-err", error, 1)
    finally:
        # What the call printed is delivered with the call (the next call
        # starts from the snapshot, buffers included).
        _flush(sys.stdout)
        _flush(sys.stderr)
    try:
        return b"R" + _encode(result).encode("ascii")
    except BaseException as error:
        return _failure("handler-err", error, 99)


terrarium._internal_exports["__terrarium_functions_init__"] = _init
terrarium._internal_exports["__terrarium_functions_handle__"] = _handle
