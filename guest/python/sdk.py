"""SE2 plugin compatibility: the ``sdk`` module SE2 plugins import.

A plugin defines ``run_e(payload, ident)`` and reports back exactly once with
``sdk.return_result(result, ident)`` or ``sdk.return_error(code, message,
ident)``. ``sdk.log(...)`` writes a line to the host's plugin log. These are
host calls into Terrarium's plugin runner (src/bridge/plugin.cc).
"""

import terrarium as _terrarium

__all__ = ["return_result", "return_error", "log"]


def return_result(result, ident):
    """Report the plugin's result (str or bytes) for request ``ident``."""
    if isinstance(result, str):
        result = result.encode("utf-8")
    elif not isinstance(result, (bytes, bytearray, memoryview)):
        raise TypeError("return_result: result must be str or bytes, not %s" % type(result).__name__)
    # Raw bytes: the ident's decimal digits, a newline, then the result.
    _terrarium.call_host("se2.return_result", b"%d\n" % int(ident) + bytes(result))


def return_error(code, message, ident):
    """Report a failure with an integer ``code`` and a ``message``."""
    _terrarium.call_host("se2.return_error", {"code": int(code), "message": str(message), "ident": int(ident)})


def log(*args, sep=" "):
    """Write a line to the host's plugin log."""
    _terrarium.call_host("se2.log", sep.join(str(arg) for arg in args))
