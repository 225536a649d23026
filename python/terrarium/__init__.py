"""Run untrusted Python in a sandbox from a Python host program.

    import terrarium

    sandbox = terrarium.Sandbox(limits=terrarium.Limits(timeout=5.0, memory="128M"))

    @sandbox.host_function
    def demo(a, b):              # in the guest: terrarium.host.demo(1, 2)
        return (a + b) * 11

    sandbox.exec("import terrarium\\nprint(terrarium.host.demo(1, 2))")

Safe by default: the guest sees only the mounts given (read-only unless
``writable=True``) and the files given; no host environment variable passes;
every limit is bounded unless lifted. Values cross as JSON (dict, list, str,
int, float, bool, None) or bytes; no pickle anywhere.

A host function receives the guest's positional and keyword arguments as a
Python call passes them (``f([1, 2])`` is one list, ``f(1, 2)`` two ints).
The GIL is released while the guest runs; ``interrupt()`` stops a call from
any thread, Ctrl-C raises KeyboardInterrupt in the caller, and ``acall`` /
``aexec`` / ``arun`` serve asyncio (cancelling the task stops the guest).
"""

import asyncio as _asyncio
import functools as _functools
import json as _json
import re as _re
import traceback as _traceback
from dataclasses import dataclass as _dataclass, field as _field
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii

from . import _native

__all__ = [
    "Sandbox", "Mount", "Limits", "Completed", "Error", "GuestError", "LimitExceeded",
    "TimeLimitExceeded", "MemoryLimitExceeded", "OutputLimitExceeded", "Trap", "ConfigError",
    "HostFunctionError", "CalledProcessError", "SandboxBusy", "Interrupted", "Snapshot", "Pool",
]


class Error(Exception):
    """Every error of Terrarium."""


class GuestError(Error):
    """Python in the sandbox raised: ``type``, ``message``, ``traceback``."""

    def __init__(self, message, type="", traceback=""):
        super().__init__(message)
        self.type = type
        self.message = message
        self.traceback = traceback


class LimitExceeded(Error):
    """The guest hit a limit (time, memory, output)."""


class TimeLimitExceeded(LimitExceeded, TimeoutError):
    pass


class MemoryLimitExceeded(LimitExceeded, MemoryError):
    pass


class OutputLimitExceeded(LimitExceeded):
    pass


class Trap(Error):
    """The guest trapped (e.g. its C stack overflowed); the sandbox is spent."""


class ConfigError(Error, ValueError):
    """A bad mount, path, limit or argument."""


class HostFunctionError(Error):
    """A host function failed; ``__cause__`` is the host-side exception."""


class SandboxBusy(Error):
    """The sandbox is already running a call (another thread, or a host
    function calling back into its own sandbox)."""


class Interrupted(Error):
    """interrupt() (or a cancelled asyncio task) stopped the call; the
    sandbox is spent, as after a timeout (a pooled one is reset)."""


class CalledProcessError(Error):
    """run(check=True) and the guest exited non-zero; ``completed`` has its output."""

    def __init__(self, completed):
        super().__init__("the guest exited with status %d" % completed.exit_code)
        self.completed = completed


_SIZE = _re.compile(r"^\s*(\d+)\s*([KMG]?)(i?B)?\s*$", _re.I)


def _size(value, what):
    if isinstance(value, bool):
        raise ConfigError("%s must be a size, not %r" % (what, value))
    if isinstance(value, int):
        if value < 0:
            raise ConfigError("%s must not be negative" % what)
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError("%s %r is not a size (e.g. 256M, 1G, 65536)" % (what, value))
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]


@_dataclass(frozen=True)
class Mount:
    """A host directory visible to the guest at ``guest`` (read-only unless writable)."""

    host: str
    guest: str
    writable: bool = False


@_dataclass(frozen=True)
class Limits:
    """Bounded by default; pass None to lift one."""

    timeout: float = 30.0    # seconds of wall clock per call
    memory: object = "256M"  # the guest's linear memory
    output: object = "16M"   # stdout + stderr

    def _native(self):
        timeout = 0 if self.timeout is None else self.timeout
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ConfigError("Limits.timeout must be seconds (a number), not %r" % (self.timeout,))
        return {"timeout_ms": int(timeout * 1000),
                "memory": 0 if self.memory is None else _size(self.memory, "Limits.memory"),
                "output": 0 if self.output is None else _size(self.output, "Limits.output")}


@_dataclass
class Completed:
    """What run() returns, like subprocess.CompletedProcess."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    args: list = _field(default_factory=list)

    @property
    def returncode(self):
        return self.exit_code

    def check_returncode(self):
        if self.exit_code:
            raise CalledProcessError(self)


def _translate(kind, message, details="", python_type=""):
    if kind == "timeout":
        return TimeLimitExceeded(message)
    if kind == "limit exceeded":
        if "memory" in message:
            return MemoryLimitExceeded(message)
        if "output" in message:
            return OutputLimitExceeded(message)
        return LimitExceeded(message)
    if kind == "trap":
        return Trap(message)
    if kind == "interrupted":
        return Interrupted(message)
    if kind in ("config error", "not found"):
        return ConfigError(message)
    if kind == "guest error":
        text = message
        prefix = python_type + ": " if python_type else ""
        if prefix and prefix in text:
            text = text[text.index(prefix) + len(prefix):]
        return GuestError(text, python_type, details)
    if kind == "host error":
        if message.startswith("busy:"):
            return SandboxBusy(message)
        return HostFunctionError(message)
    return Error("%s: %s" % (kind, message))


def _native_call(function, *args):
    """Calls into the native core; its failures become this module's errors."""
    try:
        return function(*args)
    except _native.NativeFailure as failure:
        raise _translate(*failure.args[0]) from None


# The ARGUMENTS frame of a call to a Python host function (docs/abi.md): JSON
# ``[args, kwargs]``, NUL, then the bytes values, each standing in the JSON as
# ``{"\\u0000bytes": length}``, in order. The result comes back the same way.
_BYTES_TAG = "\u0000bytes"
_BINARY = (bytes, bytearray, memoryview)


def _decode_frame(frame, label):
    split = frame.find(b"\0")
    if split < 0:
        raise TypeError("host function %r: the guest sent a malformed call (no NUL in the frame)" % label)
    text = frame[:split]
    if b"\\u0000bytes" not in text:  # no bytes values (empty ones included)
        if split + 1 != len(frame):
            raise TypeError("host function %r: the guest sent a malformed call (%d stray bytes)"
                            % (label, len(frame) - split - 1))
        return _json.loads(text)
    position = [split + 1]

    def hook(entry):
        if len(entry) == 1 and _BYTES_TAG in entry:
            length = entry[_BYTES_TAG]
            start = position[0]
            if type(length) is not int or length < 0 or start + length > len(frame):
                raise TypeError("host function %r: the guest sent a malformed call (bad bytes length)" % label)
            position[0] = start + length
            return frame[start:start + length]
        return entry

    value = _json.loads(text, object_hook=hook)
    if position[0] != len(frame):
        raise TypeError("host function %r: the guest sent a malformed call (%d stray bytes)"
                        % (label, len(frame) - position[0]))
    return value


def _encode_frame(result, label):
    blobs = []

    def tag(value):
        if isinstance(value, _BINARY):
            blob = bytes(value)
            blobs.append(blob)
            return {_BYTES_TAG: len(blob)}
        raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)

    encoder = _c_make_encoder(None, tag, _encode_basestring_ascii, None, ":", ",", False, False, False)
    try:
        text = "".join(encoder(result, 0))
    except (TypeError, ValueError) as error:
        raise TypeError("host function %r returned %s, which is not JSON (%s)"
                        % (label, _short_repr(result), error)) from None
    return text.encode("ascii") + b"\0" + b"".join(blobs)


def _short_repr(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _frame_bridge(function, label, tracebacks):
    """The native side's view of a Python host function: frame in, frame out."""

    def bridge(frame):
        try:
            call = _decode_frame(frame, label)
        except ValueError as error:
            raise TypeError("host function %r: the guest sent a malformed call (%s)" % (label, error)) from None
        if type(call) is not list or len(call) != 2 or type(call[0]) is not list or type(call[1]) is not dict:
            raise TypeError("host function %r: the guest sent a malformed call (not [args, kwargs])" % label)
        try:
            result = function(*call[0], **call[1])
        except KeyboardInterrupt:
            # The native side stops the guest call; the caller gets it.
            tracebacks[label] = _traceback.format_exc()
            raise
        except SystemExit as error:
            tracebacks[label] = _traceback.format_exc()
            raise RuntimeError("host function %r called sys.exit(%r); the host does not exit"
                               % (label, error.code)) from None
        except BaseException as error:
            tracebacks[label] = _traceback.format_exc()
            raise RuntimeError("%s: %s" % (type(error).__name__, error)) from None
        try:
            return _encode_frame(result, label)
        except TypeError as error:
            tracebacks[label] = str(error)
            raise

    return bridge


def _define(native, function, label, tracebacks):
    if not callable(function):
        raise ConfigError("a host function must be callable, not %r" % (function,))
    if not isinstance(label, str) or not label:
        raise ConfigError("a host function's name must be a non-empty str, not %r" % (label,))
    _native_call(native.define_frame, label, _frame_bridge(function, label, tracebacks))
    # The guest sends this function its calls' arguments as passed.
    _native_call(native.exec, "__import__('terrarium')._argument_functions.add(%r)" % label)


async def _in_thread(target, function, *args, **kwargs):
    """Runs a blocking call on the loop's executor; cancelling the awaiting
    task interrupts the guest (asked again until the call has ended: it may
    not have started yet) and then raises CancelledError."""
    loop = _asyncio.get_running_loop()
    cancelled = []

    def job():
        if cancelled:
            raise _asyncio.CancelledError()
        return function(*args, **kwargs)

    future = loop.run_in_executor(None, job)
    try:
        return await _asyncio.shield(future)
    except _asyncio.CancelledError:
        cancelled.append(True)
        while not future.done():
            target.interrupt()
            try:
                await _asyncio.wait([future], timeout=0.01)
            except _asyncio.CancelledError:
                pass
        if not future.cancelled():
            future.exception()  # Interrupted (or the call's own end): seen
        raise


def _check_json(value, where):
    try:
        return _json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError("%s: %s" % (where, error)) from None


def _make_spec(mounts, env, files, limits):
    for key in (env or {}):
        if not isinstance(key, str) or not key or "=" in key:
            raise ConfigError("env key %r must be a non-empty str without '='" % (key,))
    return {
        "mounts": [(m.host, m.guest, bool(m.writable)) for m in Sandbox._mounts(mounts)],
        "env": ["%s=%s" % (k, v) for k, v in (env or {}).items()],
        "files": Sandbox._files(files or {}),
        "limits": (limits or Limits())._native(),
    }


class Sandbox:
    """One isolated interpreter. Used by one thread at a time."""

    def __init__(self, mounts=(), env=None, files=None, limits=None, functions=()):
        self._spec = _make_spec(mounts, env, files, limits)
        self._host_tracebacks = {}
        self._native = _native_call(_native.Sandbox, self._spec)
        for function in functions:
            self.host_function(function)

    @staticmethod
    def _mounts(mounts):
        for mount in mounts:
            if not isinstance(mount, Mount):
                raise ConfigError("mounts take terrarium.Mount(host, guest, writable=False), not %r" % (mount,))
            yield mount

    @staticmethod
    def _files(files):
        out = {}
        for path, data in files.items():
            if isinstance(data, str):
                data = data.encode()
            if not isinstance(data, (bytes, bytearray)):
                raise ConfigError("files[%r] must be bytes or str" % (path,))
            out[path] = bytes(data)
        return out

    def host_function(self, function=None, *, name=None):
        """Registers a Python function the guest calls as
        ``terrarium.host.NAME(...)``: it gets the call's positional and keyword
        arguments (JSON values or bytes) and returns one. Its exception reaches
        the guest as ``terrarium.HostError``; ``host_traceback(NAME)`` keeps
        the host-side traceback. Usable as ``@sandbox.host_function`` or
        ``@sandbox.host_function(name="db.query")``."""
        if function is None:
            return lambda f: self.host_function(f, name=name)
        _define(self._native, function, name or getattr(function, "__name__", None), self._host_tracebacks)
        return function

    def host_traceback(self, name):
        """The host-side traceback of the last failure of host function ``name``."""
        return self._host_tracebacks.get(name)

    def exec(self, code):
        """Runs ``code`` in the guest's ``__main__``."""
        _native_call(self._native.exec, code)

    def call(self, name, value=None):
        """Calls the guest function exported as ``name`` (``@terrarium.export``) with a JSON value."""
        text = _check_json(value, "call(%r)" % name)
        return _json.loads(_native_call(self._native.call, name, text))

    def run(self, code, stdin=b"", check=False, on_stdout=None, on_stderr=None):
        """Runs ``code`` like ``python -c CODE`` in a fresh sandbox with this
        sandbox's mounts, env, files and limits; returns Completed. Output is
        captured, or passed as it is written (bytes) to ``on_stdout`` /
        ``on_stderr`` (then Completed.stdout / .stderr are None). When the
        guest fails, the error carries the partial output (.stdout, .stderr)."""
        if isinstance(stdin, str):
            stdin = stdin.encode()
        for label, callback in (("on_stdout", on_stdout), ("on_stderr", on_stderr)):
            if callback is not None and not callable(callback):
                raise ConfigError("%s must be callable (it gets bytes), not %r" % (label, callback))
        status, out, err, failure = _native_call(self._native.run, self._spec, code, bytes(stdin),
                                                 on_stdout, on_stderr)
        if failure is not None:
            error = _translate(*failure)
            error.stdout, error.stderr = out, err  # partial output kept
            raise error
        completed = Completed(status, out, err, ["python", "-c", code])
        if check:
            completed.check_returncode()
        return completed

    def interrupt(self):
        """Stops the call (exec, call or run) running now, from any thread:
        it raises Interrupted and the sandbox is spent. A guest inside a host
        function stops when the function returns. Returns whether a call was
        running; with none, nothing happens."""
        return self._native.interrupt()

    async def acall(self, name, value=None):
        """call() for asyncio: runs on the loop's executor; cancelling the task stops the guest."""
        return await _in_thread(self, self.call, name, value)

    async def aexec(self, code):
        """exec() for asyncio (as acall)."""
        return await _in_thread(self, self.exec, code)

    async def arun(self, code, stdin=b"", check=False, on_stdout=None, on_stderr=None):
        """run() for asyncio (as acall). Callbacks run on the executor's thread."""
        return await _in_thread(self, self.run, code, stdin=stdin, check=check,
                                on_stdout=on_stdout, on_stderr=on_stderr)

    @property
    def spent(self):
        return self._native.spent

    def snapshot(self):
        """Captures this sandbox (its imports, globals, host functions) once;
        Snapshot.sandbox() then makes a fresh copy in microseconds."""
        return Snapshot(_native_call(self._native.snapshot), self)

    @classmethod
    def _from_native(cls, native, origin):
        sandbox = cls.__new__(cls)
        sandbox._spec = origin._spec
        sandbox._host_tracebacks = origin._host_tracebacks
        sandbox._native = native
        return sandbox


class Snapshot:
    """An initialized sandbox captured once (Sandbox.snapshot())."""

    def __init__(self, native, origin):
        self._native = native
        self._origin = origin

    @classmethod
    def load(cls, path, mounts=(), env=None, files=None, limits=None, functions=()):
        """A snapshot saved by save(), in a process with the same Terrarium
        build. ``mounts``, ``env`` and ``files`` must have the layout it was
        taken with (the same guest paths and names); the mounts' host
        directories and the limits may differ. Host functions are not in the
        file: pass them again as ``functions``."""
        origin = Sandbox.__new__(Sandbox)
        origin._spec = _make_spec(mounts, env, files, limits)
        origin._host_tracebacks = {}

        def define(native):
            for function in functions:
                _define(native, function, getattr(function, "__name__", None), origin._host_tracebacks)

        return cls(_native_call(_native.Snapshot.load, str(path), origin._spec, define), origin)

    def sandbox(self):
        """A new sandbox in the snapshot's state (copy-on-write memory)."""
        return Sandbox._from_native(_native_call(self._native.sandbox), self._origin)

    def save(self, path):
        _native_call(self._native.save, path)

    @property
    def memory_bytes(self):
        return self._native.memory_bytes


class Pool:
    """Ready sandboxes made from a snapshot, each put back to the snapshot
    after a call: every call sees the snapshot's state, nothing of the last.
    Thread-safe."""

    def __init__(self, snapshot, max_idle=8):
        if not isinstance(snapshot, Snapshot):
            raise ConfigError("Pool takes a terrarium.Snapshot, not %r" % (snapshot,))
        self._native = _native_call(_native.Pool, snapshot._native, int(max_idle))

    def call(self, name, value=None):
        """Calls export ``name`` in a fresh (reset) sandbox."""
        text = _check_json(value, "call(%r)" % name)
        return _json.loads(_native_call(self._native.call, name, text))

    def sandbox(self):
        """A pooled sandbox for several calls: ``with pool.sandbox() as sb:``;
        it is reset into the pool when the block ends."""
        return _PooledSandbox(_native_call(self._native.lease))

    async def acall(self, name, value=None):
        """call() for asyncio, on a sandbox of the pool; cancelling the task stops the guest."""
        with self.sandbox() as sandbox:
            return await sandbox.acall(name, value)

    @property
    def idle(self):
        return self._native.idle


class _PooledSandbox:
    """What ``Pool.sandbox()`` hands out (exec and call, as a Sandbox)."""

    def __init__(self, lease):
        self._lease = lease

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()

    def release(self):
        self._lease.release()

    def exec(self, code):
        _native_call(self._lease.exec, code)

    def call(self, name, value=None):
        text = _check_json(value, "call(%r)" % name)
        return _json.loads(_native_call(self._lease.call, name, text))

    def interrupt(self):
        return self._lease.interrupt()

    async def acall(self, name, value=None):
        return await _in_thread(self, self.call, name, value)

    async def aexec(self, code):
        return await _in_thread(self, self.exec, code)
