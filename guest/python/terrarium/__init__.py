"""Terrarium's Python SDK: talk to the host that runs this sandbox.

    import terrarium

    @terrarium.export                 # the host calls it by name: "add"
    def add(args):
        return args["a"] + args["b"]

    @terrarium.export("shout")        # or under another name
    def _shout(text):
        return terrarium.host.upper(text)   # calls the host function "upper"

Values are JSON by default; ``bytes`` (and bytearray/memoryview) pass raw in
both directions. An exported function receives one argument: the decoded
payload (``bytes`` when the host sent raw bytes). ``host.NAME(...)`` sends its
one argument, ``None`` with no argument, a list with several, a dict with
keyword arguments; except to a host function registered as taking a call's
arguments (``_argument_functions``: the Python host binding's), which gets the
positional and keyword arguments as they were passed, bytes values included.
A failing or missing host function raises ``HostError`` with the host's
message. See docs/abi.md.
"""

import _terrarium
from json import JSONDecoder as _JSONDecoder, JSONEncoder as _JSONEncoder
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii
from json.scanner import make_scanner as _make_scanner

__all__ = ["export", "host", "call_host", "HostError", "exports"]

HostError = _terrarium.HostError

_KIND_JSON = _terrarium.KIND_JSON
_KIND_BYTES = _terrarium.KIND_BYTES
_KIND_ERROR = _terrarium.KIND_ERROR
_KIND_NOT_FOUND = _terrarium.KIND_NOT_FOUND

# JSON through the C accelerators directly (no per-call encoder set-up, no
# whitespace regex): compact, ASCII-only text; NaN/Infinity refused.
if _c_make_encoder is not None:
    _c_encoder = _c_make_encoder(None, _JSONEncoder().default, _encode_basestring_ascii, None,
                                 ":", ",", False, False, False)

    def _encode(value):
        return "".join(_c_encoder(value, 0))
else:  # pragma: no cover - the guest always has _json
    _encode = _JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    _c_encoder = None
_decode_slow = _JSONDecoder().decode
_scan = _make_scanner(_JSONDecoder())


def _decode(text):
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except StopIteration:
        pass
    return _decode_slow(text)  # whitespace around the value, or a clear error
_raw_host_call = _terrarium.host_call
_binary = (bytes, bytearray, memoryview)

# name -> callable, filled by @export
exports = {}

# Host functions that take a call's arguments as passed, in an ARGUMENTS frame
# (docs/abi.md); the host binding adds their names when it defines them.
_argument_functions = set()
_BYTES_TAG = "\u0000bytes"


_frame_blobs = []  # the bytes values of the frame being encoded (encoding never nests)


def _tag_bytes(value):
    if isinstance(value, _binary):
        blob = bytes(value)
        _frame_blobs.append(blob)
        return {_BYTES_TAG: len(blob)}
    raise TypeError("Object of type %s is not JSON serializable (host function "
                    "arguments are JSON values or bytes)" % type(value).__name__)


_frame_encoder = _c_make_encoder(None, _tag_bytes, _encode_basestring_ascii, None,
                                 ":", ",", False, False, False)


def _encode_arguments(args, kwargs):
    """The ARGUMENTS frame: JSON ``[args, kwargs]``, NUL, then the bytes
    values, each replaced in the JSON by ``{"\\u0000bytes": length}``, in order."""
    del _frame_blobs[:]
    try:
        text = "".join(_frame_encoder([args, kwargs], 0))
        return text.encode("ascii") + b"\0" + b"".join(_frame_blobs)
    finally:
        del _frame_blobs[:]


def _decode_frame(frame):
    """A host function's result in the same frame: JSON, NUL, the bytes values."""
    if type(frame) is not bytes:
        raise HostError("the host returned %s, not a result frame" % type(frame).__name__)
    split = frame.find(b"\0")
    if split < 0:
        raise HostError("the host returned a malformed result frame (no NUL)")
    text = frame[:split].decode("utf-8")
    if "\\u0000bytes" not in text:  # no bytes values (empty ones included)
        if split + 1 != len(frame):
            raise HostError("the host returned a malformed result frame (stray bytes)")
        return _decode(text)
    position = [split + 1]

    def hook(entry):
        if len(entry) == 1 and _BYTES_TAG in entry:
            length = entry[_BYTES_TAG]
            start = position[0]
            if type(length) is not int or length < 0 or start + length > len(frame):
                raise HostError("the host returned a malformed result frame (bad bytes length)")
            position[0] = start + length
            return frame[start:start + length]
        return entry

    return _JSONDecoder(object_hook=hook).decode(text)


def _call_with_arguments(name, args, kwargs):
    return _decode_frame(_raw_host_call(name, _encode_arguments(args, kwargs), _KIND_BYTES))


def export(name_or_function=None):
    """Register a function the host can call: ``@export`` or ``@export("name")``."""
    if callable(name_or_function):
        exports[name_or_function.__name__] = name_or_function
        return name_or_function
    if name_or_function is not None and not isinstance(name_or_function, str):
        raise TypeError("export name must be a str")

    def register(function):
        exports[name_or_function or function.__name__] = function
        return function

    return register


def call_host(name, *args, **kwargs):
    """Call the host function ``name`` (any string, e.g. "db.query")."""
    if name in _argument_functions:
        return _call_with_arguments(name, args, kwargs)
    if kwargs:
        if args:
            raise TypeError("pass either positional or keyword arguments to a host function")
        value = kwargs
    elif len(args) == 1:
        value = args[0]
    elif args:
        value = list(args)
    else:
        value = None
    if type(value) is bytes:
        return _raw_host_call(name, value, _KIND_BYTES)
    if isinstance(value, _binary):
        return _raw_host_call(name, bytes(value), _KIND_BYTES)
    result = _raw_host_call(name, _encode(value), _KIND_JSON)
    return _decode(result) if type(result) is str else result


class _Host:
    """``host.NAME(...)`` calls the host function NAME."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            if name in _argument_functions:
                return _call_with_arguments(name, args, kwargs)
            if not kwargs and len(args) == 1:
                value = args[0]
                if type(value) is bytes:
                    return _raw_host_call(name, value, _KIND_BYTES)
                if not isinstance(value, _binary):
                    result = _raw_host_call(name, "".join(_c_encoder(value, 0)), _KIND_JSON)
                    if type(result) is not str:
                        return result
                    try:
                        value, end = _scan(result, 0)
                        if end == len(result):
                            return value
                    except StopIteration:
                        pass
                    return _decode_slow(result)
            return call_host(name, *args, **kwargs)

        call.__name__ = call.__qualname__ = name
        self.__dict__[name] = call
        return call

    def __repr__(self):
        return "<terrarium host functions>"


host = _Host()


def _error(exception, skip_frames=1):
    """The JSON error payload for an exception: type, message, traceback."""
    import traceback

    kind = type(exception)
    module = kind.__module__
    name = kind.__qualname__ if module in ("builtins", "__main__") else module + "." + kind.__qualname__
    tb = exception.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(kind, exception, tb))
    try:
        message = str(exception)
    except BaseException:
        message = "<unprintable %s>" % name
    return _KIND_ERROR, _encode({"type": name, "message": message, "traceback": text})


def _set_invocation(data):
    """Sandbox::set_invocation: sys.argv, os.environ and sys.stdin anew.

    ``data``: b"STDIN_WAS_READ ARGS ENTRIES" (decimal counts), NUL, then the
    args and the "KEY=VALUE" entries, each ended by NUL (docs/abi.md).
    """
    import os
    import sys

    head, _, body = data.partition(b"\0")
    stdin_was_read, args, entries = head.split(b" ")
    items = body.split(b"\0")
    args = int(args)
    sys.argv = [arg.decode("utf-8", "surrogateescape") for arg in items[:args]]
    # os.environ's own store, swapped whole: a putenv per entry would cost
    # ~4 us each (the C library's environ keeps the snapshot's entries).
    os.environ._data = dict(entry.split(b"=", 1) for entry in items[args:args + int(entries)])
    if stdin_was_read == b"1" and sys.stdin is not None:
        # What the old stdin's buffers hold belongs to the old invocation.
        import io

        old = sys.stdin
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)),
                                     encoding=old.encoding, errors=old.errors,
                                     line_buffering=old.line_buffering)
        if sys.__stdin__ is old:
            sys.__stdin__ = sys.stdin


# Exports of Terrarium itself (not listed among the user's).
_internal_exports = {"__terrarium_set_invocation__": _set_invocation}


def _dispatch(name, data, kind):
    """Called by the bridge for terrarium_call: returns (kind, data)."""
    function = exports.get(name)
    if function is None:
        function = _internal_exports.get(name)
    if function is None:
        return _KIND_NOT_FOUND, "no exported function named %r (exports: %s)" % (
            name, ", ".join(sorted(exports)) or "none")
    try:
        result = function(_decode(data) if kind == _KIND_JSON else data)
        if type(result) is bytes:
            return _KIND_BYTES, result
        if isinstance(result, _binary):
            return _KIND_BYTES, bytes(result)
        return _KIND_JSON, _encode(result)
    except BaseException as exception:
        return _error(exception)


def _exec(code, filename):
    """Called by the bridge for terrarium_exec: runs code in __main__."""
    import __main__

    try:
        exec(compile(code, filename, "exec"), __main__.__dict__)
        return _KIND_JSON, "null"
    except BaseException as exception:
        return _error(exception)
