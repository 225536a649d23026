"""`terrarium functions stdio` (JSON-RPC 2.0 on stdin/stdout) and
`terrarium functions serve` (HTTP) against the real binary.

Run: /usr/bin/python3 tests/functions/test_functions_cli.py build/terrarium
"""

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

BINARY = None

LAMBDA = {"ty": "lambda", "source": "lambda x: x['a'] + x['b']"}
GQL_DEF = {
    "ty": "def",
    "func_name": "f",
    "source": "def f(inp, gql):\n    return gql('query { n }', {'v': inp})['n'] + 1\n",
}
IMPORTED = {
    "ty": "import_function",
    "root_src_path": "main.py",
    "func_name": "handler",
    "sources": {
        "main.py": "from .lib.calc import double\ndef handler(x):\n    return double(x)\n",
        "lib/calc.py": "def double(x):\n    return 2 * x\n",
    },
}


def mat(name, data):
    return {"op_name": name, "mat_title": name, "mat_hash": "h", "mat_data_json": json.dumps(data),
            "effect": {"effect": "read"}}


class Rpc:
    """A JSON-RPC peer over the process's pipes, every read bounded."""

    def __init__(self, *args):
        self.process = subprocess.Popen([BINARY, "functions", "stdio", *args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.buffer = b""
        self.next_id = 0

    def send_line(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def send(self, message):
        self.send_line(json.dumps(message))

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def read(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message within %.0f s; stderr: %s" % (timeout, self.stderr()))
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("stdout closed; stderr: %s" % self.stderr())
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def call(self, method, params):
        wanted = self.request(method, params)
        message = self.read()
        assert message.get("id") == wanted, message
        return message

    def stderr(self):
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read().decode(errors="replace")

    def close(self):
        self.process.stdin.close()
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        err = self.process.stderr.read().decode(errors="replace")
        self.process.stdout.close()
        self.process.stderr.close()
        return status, err


class Stdio(unittest.TestCase):
    def setUp(self):
        self.rpc = Rpc("--metatype-version", "0.5.1", "--timeout", "500ms")

    def tearDown(self):
        if self.rpc.process.poll() is None:
            self.rpc.process.kill()
            self.rpc.process.wait()
        for stream in (self.rpc.process.stdin, self.rpc.process.stdout, self.rpc.process.stderr):
            if not stream.closed:
                stream.close()

    def init(self):
        answer = self.rpc.call("init", {"metatype_version": "0.5.1", "expected_ops": [
            mat("add", LAMBDA), mat("gql", GQL_DEF), mat("double", IMPORTED),
            mat("fails", {"ty": "def", "func_name": "f",
                          "source": "def f(x):\n    raise KeyError('missing ' + str(x))\n"}),
            mat("loop", {"ty": "def", "func_name": "f", "source": "def f(x):\n    while True:\n        pass\n"}),
            mat("talk", {"ty": "def", "func_name": "f",
                         "source": "def f(x):\n    print('talking', x)\n    return x\n"}),
        ]})
        self.assertEqual(answer, {"jsonrpc": "2.0", "id": answer["id"], "result": {"ok": True}})

    def test_init_and_handle_every_mat_type(self):
        self.init()
        self.assertEqual(self.rpc.call("handle", {"op_name": "add", "in_json": '{"a": 1, "b": 2}'})["result"], "3")
        self.assertEqual(self.rpc.call("handle", {"op_name": "double", "in_json": "21"})["result"], "42")
        status, _ = self.rpc.close()
        self.assertEqual(status, 0)

    def test_error_kinds_on_the_wire(self):
        self.init()
        answer = self.rpc.call("handle", {"op_name": "nope", "in_json": "1"})
        self.assertEqual(answer["error"]["code"], -32000)
        self.assertEqual(answer["error"]["data"]["kind"], "no-handler")
        answer = self.rpc.call("handle", {"op_name": "add", "in_json": "{oops"})
        self.assertEqual(answer["error"]["data"]["kind"], "in-json-err")
        self.assertIn("Expecting property name", answer["error"]["message"])
        answer = self.rpc.call("handle", {"op_name": "fails", "in_json": "3"})
        error = answer["error"]
        self.assertEqual(error["data"]["kind"], "handler-err")
        self.assertEqual(error["data"]["type"], "KeyError")
        self.assertEqual(error["message"], "'missing 3'")
        self.assertIn("raise KeyError", error["data"]["traceback"])
        answer = self.rpc.call("handle", {"op_name": "loop", "in_json": "null"})
        self.assertEqual(answer["error"]["data"]["kind"], "handler-err")
        self.assertEqual(answer["error"]["data"]["type"], "terrarium.Timeout")
        self.assertEqual(self.rpc.call("handle", {"op_name": "add", "in_json": '{"a": 2, "b": 2}'})["result"], "4")

    def test_init_errors(self):
        answer = self.rpc.call("init", {"metatype_version": "0.4.0", "expected_ops": [mat("add", LAMBDA)]})
        self.assertEqual(answer["error"]["data"]["kind"], "version-mismatch")
        answer = self.rpc.call("init", {"metatype_version": "0.5.1", "expected_ops": [
            mat("add", LAMBDA), mat("odd", {"ty": "rust", "source": ""})]})
        self.assertEqual(answer["error"]["data"]["kind"], "unexpected-mat")
        self.assertEqual(answer["error"]["data"]["op_name"], "odd")
        answer = self.rpc.call("init", {"metatype_version": "0.5.1", "expected_ops": [
            mat("bad", {"ty": "def", "func_name": "f", "source": "def f(x):\n  return )\n"})]})
        self.assertEqual(answer["error"]["data"]["kind"], "other")
        self.assertIn("line 2", answer["error"]["message"])
        # No init yet succeeded: a handle says so.
        answer = self.rpc.call("handle", {"op_name": "add", "in_json": "1"})
        self.assertEqual(answer["error"]["data"]["kind"], "no-handler")
        self.assertIn("init has not been called", answer["error"]["message"])

    def test_hostcall_round_trip(self):
        self.init()
        wanted = self.rpc.request("handle", {"op_name": "gql", "in_json": "5"})
        hostcall = self.rpc.read()
        self.assertEqual(hostcall["method"], "hostcall")
        self.assertEqual(hostcall["params"]["op_name"], "gql")
        self.assertEqual(json.loads(hostcall["params"]["json"]),
                         {"query": "query { n }", "variables": {"v": 5}})
        self.rpc.send({"jsonrpc": "2.0", "id": hostcall["id"], "result": json.dumps({"n": 41})})
        answer = self.rpc.read()
        self.assertEqual(answer, {"jsonrpc": "2.0", "id": wanted, "result": "42"})
        # A failing hostcall: the handler's exception names the op.
        wanted = self.rpc.request("handle", {"op_name": "gql", "in_json": "5"})
        hostcall = self.rpc.read()
        self.rpc.send({"jsonrpc": "2.0", "id": hostcall["id"],
                       "error": {"code": 1, "message": "permission denied"}})
        answer = self.rpc.read()
        self.assertEqual(answer["id"], wanted)
        self.assertEqual(answer["error"]["data"]["type"], "terrarium.functions.HostcallError")
        self.assertIn("hostcall 'gql' failed: permission denied", answer["error"]["message"])

    def test_concurrent_requests_while_a_hostcall_waits(self):
        self.init()
        waiting = self.rpc.request("handle", {"op_name": "gql", "in_json": "1"})
        hostcall = self.rpc.read()
        self.assertEqual(hostcall["method"], "hostcall")
        # The other worker answers while the first call waits for us.
        quick = self.rpc.request("handle", {"op_name": "add", "in_json": '{"a": 5, "b": 5}'})
        self.assertEqual(self.rpc.read(), {"jsonrpc": "2.0", "id": quick, "result": "10"})
        self.rpc.send({"jsonrpc": "2.0", "id": hostcall["id"], "result": '{"n": 1}'})
        self.assertEqual(self.rpc.read(), {"jsonrpc": "2.0", "id": waiting, "result": "2"})

    def test_malformed_lines_and_requests(self):
        self.rpc.send_line("this is not json")
        answer = self.rpc.read()
        self.assertEqual(answer["error"]["code"], -32700)
        self.assertIsNone(answer["id"])
        self.rpc.send_line('{"jsonrpc": "2.0", "id": 9}')
        self.assertEqual(self.rpc.read()["error"]["code"], -32600)
        self.rpc.send_line('{"jsonrpc": "2.0", "id": 10, "method": "dance", "params": {}}')
        answer = self.rpc.read()
        self.assertEqual((answer["id"], answer["error"]["code"]), (10, -32601))
        self.rpc.send_line('{"jsonrpc": "2.0", "id": 11, "method": "handle", "params": {"in_json": "1"}}')
        self.assertEqual(self.rpc.read()["error"]["code"], -32602)
        self.rpc.send_line("[]")
        self.assertEqual(self.rpc.read()["error"]["code"], -32600)
        # The runtime carries on.
        self.init()
        self.rpc.send_line(json.dumps([
            {"jsonrpc": "2.0", "id": "b1", "method": "handle", "params": {"op_name": "add", "in_json": '{"a": 1, "b": 1}'}},
            {"jsonrpc": "2.0", "method": "handle", "params": {"op_name": "add", "in_json": "1"}},
            {"jsonrpc": "2.0", "id": "b2", "method": "handle", "params": {"op_name": "double", "in_json": "4"}},
        ]))
        batch = self.rpc.read()
        self.assertEqual(sorted((entry["id"], entry["result"]) for entry in batch), [("b1", "2"), ("b2", "8")])

    def test_prints_go_to_stderr_not_the_protocol(self):
        self.init()
        self.assertEqual(self.rpc.call("handle", {"op_name": "talk", "in_json": '"hi"'})["result"], '"hi"')
        status, err = self.rpc.close()
        self.assertEqual(status, 0)
        self.assertIn("[op talk] talking hi", err)


class StdioWithManifest(unittest.TestCase):
    def test_ops_ready_without_init_and_op_hostcalls(self):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "ops.toml"), "w") as f:
                f.write('[[op]]\nname = "twice"\nlambda = "lambda x: x * 2"\n'
                        '[[op]]\nname = "quad"\n'
                        'def = "from terrarium.functions import hostcall\\n'
                        'def f(x):\\n    return hostcall(\'double\', hostcall(\'double\', x))\\n"\n'
                        'function = "f"\n'
                        '[hostcalls]\ndouble = { op = "twice" }\n')
            rpc = Rpc(os.path.join(folder, "ops.toml"))
            try:
                self.assertEqual(rpc.call("handle", {"op_name": "quad", "in_json": "3"})["result"], "12")
            finally:
                status, err = rpc.close()
            self.assertEqual(status, 0, err)
            self.assertIn("2 ops from", err)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory()
        os.makedirs(os.path.join(cls.folder.name, "ops", "lib"))
        with open(os.path.join(cls.folder.name, "ops", "main.py"), "w") as f:
            f.write("import json, re\nfrom .lib.words import count\n"
                    "def handler(inp):\n    return {'words': count(inp['text']), "
                    "'numbers': [int(n) for n in re.findall(r'\\d+', inp['text'])]}\n")
        with open(os.path.join(cls.folder.name, "ops", "lib", "words.py"), "w") as f:
            f.write("def count(text):\n    return len(text.split())\n")
        with open(os.path.join(cls.folder.name, "ops.toml"), "w") as f:
            f.write('[[op]]\nname = "add"\nlambda = "lambda x: x[\'a\'] + x[\'b\']"\n'
                    '[[op]]\nname = "words"\nfile = "ops/main.py"\nfunction = "handler"\ndeps = ["ops/lib"]\n'
                    '[[op]]\nname = "fails"\nlambda = "lambda x: 1 / 0"\n'
                    '[[op]]\nname = "slow"\ndef = "def f(x):\\n    while True:\\n        pass\\n"\nfunction = "f"\n'
                    'limits = { timeout = "300ms" }\n')
        cls.port = free_port()
        cls.process = subprocess.Popen(
            [BINARY, "functions", "serve", os.path.join(cls.folder.name, "ops.toml"),
             "--listen", "127.0.0.1:%d" % cls.port, "--max-body", "1K", "--workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = cls.process.stdout.readline().decode()
        if not line.startswith("Ready"):
            cls.process.kill()
            raise AssertionError("did not start: %s %s" % (line, cls.process.stderr.read().decode()))

    @classmethod
    def tearDownClass(cls):
        cls.process.terminate()
        try:
            cls.assertion_status = cls.process.wait(timeout=30)
        finally:
            cls.process.stdout.close()
            cls.process.stderr.close()
            cls.folder.cleanup()

    def post(self, path, body, method="POST"):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                         data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get("Content-Type"), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type"), error.read()

    def test_results_and_errors(self):
        self.assertEqual(self.post("/ops/add", b'{"a": 40, "b": 2}'), (200, "application/json", b"42"))
        status, _, body = self.post("/ops/words", b'{"text": "3 little pigs and 1 wolf"}')
        self.assertEqual((status, json.loads(body)), (200, {"words": 6, "numbers": [3, 1]}))
        status, kind, body = self.post("/ops/missing", b"1")
        self.assertEqual((status, kind, json.loads(body)["error"]["kind"]), (404, "application/json", "no-handler"))
        status, _, body = self.post("/ops/add", b"{not json")
        self.assertEqual((status, json.loads(body)["error"]["kind"]), (400, "in-json-err"))
        status, _, body = self.post("/ops/fails", b"null")
        error = json.loads(body)["error"]
        self.assertEqual((status, error["kind"], error["type"]), (500, "handler-err", "ZeroDivisionError"))
        self.assertIn("1 / 0", error["traceback"])
        status, _, body = self.post("/ops/slow", b"null")
        self.assertEqual((status, json.loads(body)["error"]["type"]), (504, "terrarium.Timeout"))
        status, kind, body = self.post("/ops/add", b"[" + b"1," * 1000 + b"1]")
        self.assertEqual((status, kind, json.loads(body)["error"]["kind"]), (413, "application/json", "body-too-large"))
        status, _, _ = self.post("/ops/add", None, method="GET")
        self.assertEqual(status, 405)
        # Still fine after every failure.
        self.assertEqual(self.post("/ops/add", b'{"a": 1, "b": 1}')[2], b"2")

    def test_init_is_off_by_default(self):
        status, _, body = self.post("/init", b"{}")
        self.assertEqual(status, 404)
        self.assertIn("--allow-init", json.loads(body)["error"]["message"])

    def test_health_and_metrics(self):
        self.assertEqual(self.post("/healthz", None, method="GET")[0], 200)
        self.post("/ops/add", b'{"a": 1, "b": 1}')
        status, kind, body = self.post("/metrics", None, method="GET")
        self.assertEqual(status, 200)
        text = body.decode()
        self.assertIn('terrarium_function_calls_total{op="add",outcome="ok"}', text)
        self.assertIn('terrarium_function_duration_seconds_bucket{op="add",le="+Inf"}', text)


class HttpInit(unittest.TestCase):
    """Metatype's init over HTTP (--allow-init), then handle as POST /ops/NAME."""

    def test_init_then_handle_and_init_errors(self):
        port = free_port()
        process = subprocess.Popen([BINARY, "functions", "serve", "--allow-init", "--metatype-version",
                                    "0.5.1", "--listen", "127.0.0.1:%d" % port],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertTrue(process.stdout.readline().startswith(b"Ready"))
            post = Http.post.__get__(self)
            self.port = port
            self.assertEqual(post("/ops/add", b"1")[0], 404)
            init = {"metatype_version": "0.5.1", "expected_ops": [
                mat("add", LAMBDA), mat("double", IMPORTED),
                mat("hello", {"ty": "def", "func_name": "f", "source": "def f(x):\n    return 'hi ' + x\n"})]}
            self.assertEqual(post("/init", json.dumps(init).encode()), (200, "application/json", b'{"ok":true}'))
            self.assertEqual(post("/ops/add", b'{"a": 2, "b": 3}')[2], b"5")
            self.assertEqual(post("/ops/double", b"8")[2], b"16")
            self.assertEqual(post("/ops/hello", b'"you"')[2], b'"hi you"')
            status, _, body = post("/init", json.dumps({"metatype_version": "0.5.1", "expected_ops": [
                mat("odd", {"ty": "cobol"})]}).encode())
            self.assertEqual((status, json.loads(body)["error"]["kind"]), (400, "unexpected-mat"))
            status, _, body = post("/init", json.dumps(dict(init, metatype_version="0.1")).encode())
            self.assertEqual((status, json.loads(body)["error"]["kind"]), (409, "version-mismatch"))
            status, _, body = post("/init", b"[1, 2]")
            self.assertEqual(status, 400)
            self.assertIn("expected_ops", json.loads(body)["error"]["message"])
            # The failed inits kept the ops.
            self.assertEqual(post("/ops/add", b'{"a": 1, "b": 1}')[2], b"2")
        finally:
            process.terminate()
            self.assertEqual(process.wait(timeout=30), 0)
            process.stdout.close()
            process.stderr.close()


class BadFlags(unittest.TestCase):
    def check(self, args, expected):
        result = subprocess.run([BINARY, "functions", *args], capture_output=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(expected.encode(), result.stderr)

    def test_each_bad_value_names_its_flag(self):
        self.check(["stdio", "--timeout", "0s"], "terrarium functions stdio: --timeout '0s': must be a positive duration")
        self.check(["stdio", "--hostcall-timeout", "soon"], "--hostcall-timeout 'soon': must be a positive duration")
        self.check(["stdio", "--max-memory", "lots"], "--max-memory 'lots': ")
        self.check(["serve", "x.toml", "--max-output", "-1"], "terrarium functions serve: --max-output '-1': ")
        self.check(["serve", "x.toml", "--max-body", "big"], "--max-body 'big': ")
        self.check(["serve", "x.toml", "--metrics-path", "metrics"], "--metrics-path 'metrics': must start with '/'")
        self.check(["serve"], "no ops.toml given")


class BadManifest(unittest.TestCase):
    def test_error_names_file_and_line(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "ops.toml")
            with open(path, "w") as f:
                f.write('[[op]]\nname = "a"\nlambda = "lambda x: x"\nisolaton = "warm"\n')
            result = subprocess.run([BINARY, "functions", "serve", path, "--listen", "127.0.0.1:0"],
                                    capture_output=True, timeout=60)
            self.assertEqual(result.returncode, 1)
            self.assertIn(path.encode() + b":4:1: op 'a': unknown key 'isolaton'", result.stderr)

    def test_op_that_does_not_compile_stops_the_start(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "ops.toml")
            with open(path, "w") as f:
                f.write('[[op]]\nname = "a"\ndef = "def f(x):\\n  retur x\\n"\nfunction = "f"\n')
            result = subprocess.run([BINARY, "functions", "serve", path, "--listen", "127.0.0.1:0"],
                                    capture_output=True, timeout=60)
            self.assertEqual(result.returncode, 1)
            self.assertIn(b"other: ", result.stderr)
            self.assertIn(b"line 2", result.stderr)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
