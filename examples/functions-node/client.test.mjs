// node --test examples/functions-node/  (TERRARIUM_BINARY: the binary; default build/terrarium)
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { test } from "node:test";
import { TerrariumFunctions, FunctionsError } from "./client.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const binary = process.env.TERRARIUM_BINARY ?? path.join(root, "build/terrarium");

const mat = (name, data) => ({
  op_name: name, mat_title: name, mat_hash: "", mat_data_json: JSON.stringify(data), effect: "read",
});

test("init, handle, hostcall and errors from Node", { timeout: 60_000 }, async () => {
  const asked = [];
  const runtime = new TerrariumFunctions({
    binary,
    stderr: "ignore",
    hostcall: async (opName, value) => {
      asked.push([opName, value]);
      if (opName === "gql") return { user: { name: "Ada" } };
      throw new Error(`no host op ${opName}`);
    },
  });
  try {
    assert.deepEqual(
      await runtime.init("0.5.1", [
        mat("add", { ty: "lambda", source: "lambda x: x['a'] + x['b']" }),
        mat("hello", {
          ty: "def", func_name: "hello",
          source: "def hello(inp, gql):\n    return 'hello ' + gql('{ user { name } }', inp)['user']['name']\n",
        }),
        mat("lib", {
          ty: "import_function", root_src_path: "main.py", func_name: "f",
          sources: { "main.py": "from .util import twice\ndef f(x):\n    return twice(x)\n",
                     "util.py": "def twice(x):\n    return [x, x]\n" },
        }),
        mat("other", {
          ty: "def", func_name: "f",
          source: "def f(x, ctx):\n    return ctx.hostcall('storage', x)\n",
        }),
      ]),
      { ok: true },
    );
    assert.equal(await runtime.handle("add", { a: 1, b: 2 }), 3);
    assert.equal(await runtime.handle("hello", { id: 1 }), "hello Ada");
    assert.deepEqual(asked, [["gql", { query: "{ user { name } }", variables: { id: 1 } }]]);
    assert.deepEqual(await runtime.handle("lib", "x"), ["x", "x"]);
    // Calls run concurrently.
    const sums = await Promise.all([1, 2, 3, 4].map((n) => runtime.handle("add", { a: n, b: n })));
    assert.deepEqual(sums, [2, 4, 6, 8]);

    await assert.rejects(runtime.handle("missing", 1), (error) => {
      assert.ok(error instanceof FunctionsError);
      assert.equal(error.kind, "no-handler");
      return true;
    });
    await assert.rejects(runtime.handle("add", { a: 1 }), (error) => {
      assert.equal(error.kind, "handler-err");
      assert.equal(error.type, "KeyError");
      assert.match(error.traceback, /Traceback/);
      return true;
    });
    await assert.rejects(runtime.handle("other", 1), (error) => {
      assert.equal(error.type, "terrarium.functions.HostcallError");
      assert.match(error.message, /hostcall 'storage' failed: no host op storage/);
      return true;
    });
  } finally {
    assert.equal(await runtime.close(), 0);
  }
});
