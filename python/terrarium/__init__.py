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
int, float, bool, None); no pickle anywhere.

This is the first part of the binding (issue 16): Sandbox, Mount, Limits,
host functions, exec, call, run, the error hierarchy, Snapshot and Pool.
Interrupt and asyncio are to come.
"""

import json as _json
import re as _re
import traceback as _traceback
from dataclasses import dataclass as _dataclass, field as _field

from . import _native

__all__ = [
    "Sandbox", "Mount", "Limits", "Completed", "Error", "GuestError", "LimitExceeded",
    "TimeLimitExceeded", "MemoryLimitExceeded", "OutputLimitExceeded", "Trap", "ConfigError",
    "HostFunctionError", "CalledProcessError", "SandboxBusy", "Snapshot", "Pool",
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


def _check_json(value, where):
    try:
        return _json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError("%s: %s" % (where, error)) from None


class Sandbox:
    """One isolated interpreter. Used by one thread at a time."""

    def __init__(self, mounts=(), env=None, files=None, limits=None, functions=()):
        self._spec = {
            "mounts": [(m.host, m.guest, bool(m.writable)) for m in self._mounts(mounts)],
            "env": ["%s=%s" % (k, v) for k, v in (env or {}).items()],
            "files": self._files(files or {}),
            "limits": (limits or Limits())._native(),
        }
        for key in (env or {}):
            if not isinstance(key, str) or not key or "=" in key:
                raise ConfigError("env key %r must be a non-empty str without '='" % (key,))
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
        """Registers a Python function the guest calls as ``terrarium.host.NAME(...)``."""
        if function is None:
            return lambda f: self.host_function(f, name=name)
        label = name or function.__name__

        def bridge(text):
            value = _json.loads(text)
            try:
                if isinstance(value, dict):
                    result = function(**value)
                elif isinstance(value, list):
                    result = function(*value)
                elif value is None:
                    result = function()
                else:
                    result = function(value)
            except (KeyboardInterrupt, SystemExit) as error:
                # Never through the guest and out of the process.
                self._host_tracebacks[label] = _traceback.format_exc()
                raise RuntimeError("host function %r was interrupted (%s)" % (label, type(error).__name__)) from None
            except Exception as error:
                self._host_tracebacks[label] = _traceback.format_exc()
                raise RuntimeError("%s: %s" % (type(error).__name__, error)) from None
            try:
                return _json.dumps(result, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as error:
                message = "host function %r returned %r, which is not JSON (%s)" % (label, result, error)
                self._host_tracebacks[label] = message
                raise TypeError(message) from None

        _native_call(self._native.define, label, bridge)
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

    def run(self, code, stdin=b"", check=False):
        """Runs ``code`` like ``python -c CODE`` in a fresh sandbox with this
        sandbox's mounts, env, files and limits; returns Completed."""
        if isinstance(stdin, str):
            stdin = stdin.encode()
        status, out, err, failure = _native.run(self._spec, code, bytes(stdin))
        if failure is not None:
            error = _translate(*failure)
            error.stdout, error.stderr = out, err  # partial output kept
            raise error
        completed = Completed(status, out, err, ["python", "-c", code])
        if check:
            completed.check_returncode()
        return completed

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
