"""WSGI applications (PEP 3333) under ``terrarium serve``.

The server imports the app once with ``prepare(spec, paths)``, sends one
request (GET /) through it to warm it, and takes the route's snapshot;
every request then runs ``__terrarium_wsgi__`` in a fresh copy of that
snapshot. The host builds the environ (the CGI variables of the request) and
sends it with the body; the response comes back whole when the app returns a
list or tuple (the common case), or is streamed to the host chunk by chunk
through the host function ``__terrarium_wsgi_send__`` when the app returns
another iterable or uses ``write()``.

Wire (all bytes): request = b"N BODY_LENGTH\\0" then N names and N values,
each ended by NUL (latin-1: PEP 3333's native strings), then the body.
Response = b"H 0|1\\0" (H header pairs; 1 = the body was streamed), the
status, each header name and value, each ended by NUL, then the body.
"""

import importlib
import io
import sys

import terrarium

_app = None
_spec = None


class _Input(io.BufferedIOBase):
    """wsgi.input: the request body (CONTENT_LENGTH bytes), readable in pieces."""

    def __init__(self, body):
        self._stream = io.BytesIO(body)

    def readable(self):
        return True

    def read(self, size=-1):
        return self._stream.read(-1 if size is None else size)

    def read1(self, size=-1):
        return self._stream.read1(-1 if size is None else size)

    def readline(self, size=-1):
        return self._stream.readline(-1 if size is None else size)

    def readlines(self, hint=-1):
        return self._stream.readlines(hint)

    def __iter__(self):
        return iter(self._stream)


def _load(spec):
    name, _, attribute = spec.partition(":")
    factory = attribute.endswith("()")
    if factory:
        attribute = attribute[:-2]
    target = importlib.import_module(name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if factory:
        target = target()
    if not callable(target):
        raise TypeError("%s is %r, not a WSGI callable" % (spec, target))
    return target


def _send(data):
    return terrarium._raw_host_call("__terrarium_wsgi_send__", data, terrarium._KIND_BYTES)


def prepare(spec, paths):
    """Imports the app ``spec`` ("module:app" or "module:factory()") with
    ``paths`` first on sys.path; the host then warms it with one request."""
    global _app, _spec
    sys.path[:0] = [path for path in paths if path not in sys.path]
    _spec = spec
    _app = _load(spec)
    terrarium.export("__terrarium_wsgi__")(_handle)


def _encode_head(status, headers, streamed):
    fields = [status]
    for name, value in headers:
        fields.append(name)
        fields.append(value)
    head = "\0".join(fields).encode("latin-1") + b"\0"
    return b"%d %d\0" % (len(headers), 1 if streamed else 0) + head


def _check_headers(status, headers):
    if type(status) is not str:
        raise TypeError("status must be a str, not %r" % (status,))
    if len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
        raise ValueError("status %r is not '<3 digits> <reason>'" % (status,))
    if type(headers) is not list:
        raise TypeError("headers must be a list of (name, value) tuples, not %r" % (type(headers),))
    for header in headers:
        if type(header) is not tuple or len(header) != 2:
            raise TypeError("header %r is not a (name, value) tuple" % (header,))
        name, value = header
        if type(name) is not str or type(value) is not str:
            raise TypeError("header %r: name and value must be str" % (header,))
        if "\0" in name or "\0" in value or "\n" in value or "\r" in value:
            raise ValueError("header %r contains a control character" % (header,))


def _content_length(headers):
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


def _handle(data):
    head, _, rest = data.partition(b"\0")
    count, body_length = head.split(b" ")
    count = int(count)
    body_length = int(body_length)
    fields = rest[: len(rest) - body_length].split(b"\0")
    environ = {}
    for i in range(count):
        environ[fields[i].decode("latin-1")] = fields[count + i].decode("latin-1")
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.url_scheme"] = environ.pop("terrarium.url_scheme", "http")
    environ["wsgi.input"] = _Input(rest[len(rest) - body_length:] if body_length else b"")
    environ["wsgi.errors"] = sys.stderr
    environ["wsgi.multithread"] = False
    environ["wsgi.multiprocess"] = True
    environ["wsgi.run_once"] = False

    state = {"status": None, "headers": None, "sent": False}
    chunks = []

    def send_headers():
        state["sent"] = True
        _send(b"H" + _encode_head(state["status"], state["headers"], True))

    def write(data):
        if type(data) is not bytes:
            raise TypeError("write() takes bytes, not %r" % (type(data),))
        if state["status"] is None:
            raise AssertionError("write() before start_response()")
        if not state["sent"]:
            send_headers()
        if data:
            _send(b"B" + data)

    def start_response(status, headers, exc_info=None):
        if exc_info:
            try:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response() called twice without exc_info")
        _check_headers(status, headers)
        state["status"] = status
        state["headers"] = headers
        return write

    result = _app(environ, start_response)
    try:
        if type(result) in (list, tuple) and not state["sent"]:
            for chunk in result:
                if type(chunk) is not bytes:
                    raise TypeError("the app's response holds %r, not bytes" % (type(chunk),))
                chunks.append(chunk)
            if state["status"] is None:
                raise AssertionError("the app returned without calling start_response()")
            return _encode_head(state["status"], state["headers"], False) + b"".join(chunks)
        iterator = iter(result)
        for chunk in iterator:
            if type(chunk) is not bytes:
                raise TypeError("the app's response holds %r, not bytes" % (type(chunk),))
            if not chunk:
                continue
            if state["status"] is None:
                raise AssertionError("the app yielded a body before calling start_response()")
            if not state["sent"]:
                if len(chunk) == _content_length(state["headers"]):
                    # The whole body at once (werkzeug's usual response):
                    # no need to stream it.
                    rest = b"".join(iterator)
                    return _encode_head(state["status"], state["headers"], False) + chunk + rest
                send_headers()
            _send(b"B" + chunk)
        if state["status"] is None:
            raise AssertionError("the app returned without calling start_response()")
        if not state["sent"]:
            send_headers()
        return _encode_head(state["status"], state["headers"], True)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
