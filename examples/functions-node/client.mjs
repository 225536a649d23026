// A JSON-RPC 2.0 client for `terrarium functions stdio`, in plain Node (no
// dependencies): what a platform written in JavaScript (Metatype's typegate
// is Deno) needs to run Python ops in Terrarium's sandboxes.
//
//   const runtime = new TerrariumFunctions({ binary: "build/terrarium",
//     hostcall: async (opName, value) => ({ n: 41 }) });
//   await runtime.init("0.5.1", [{ op_name: "add", mat_data_json: ... }]);
//   const three = await runtime.handle("add", { a: 1, b: 2 });   // 3
//   await runtime.close();
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export class FunctionsError extends Error {
  constructor(error) {
    super(error.message);
    this.name = "FunctionsError";
    this.code = error.code;
    // "no-handler" | "in-json-err" | "handler-err" | "version-mismatch" | "unexpected-mat" | "other"
    this.kind = error.data?.kind;
    this.type = error.data?.type; // the Python exception's type
    this.traceback = error.data?.traceback;
    this.opName = error.data?.op_name;
  }
}

export class TerrariumFunctions {
  // binary: path of `terrarium`; args: more CLI arguments (an ops.toml, --timeout ...);
  // hostcall(opName, value): answers the ops' hostcalls (may be async); throw to fail one.
  constructor({ binary = "terrarium", args = [], hostcall = null, stderr = "inherit" } = {}) {
    this.child = spawn(binary, ["functions", "stdio", ...args], {
      stdio: ["pipe", "pipe", stderr],
    });
    this.hostcall = hostcall;
    this.nextId = 1;
    this.pending = new Map();
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    this.child.on("exit", () => {
      for (const { reject } of this.pending.values()) reject(new Error("terrarium exited"));
      this.pending.clear();
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => this.#receive(line));
  }

  // Metatype's init: ops as mat-info records {op_name, mat_title, mat_hash, mat_data_json, effect}.
  init(metatypeVersion, ops) {
    return this.#request("init", { metatype_version: metatypeVersion, expected_ops: ops });
  }

  // Runs op `opName` on `value` (any JSON value); resolves to the decoded result.
  async handle(opName, value) {
    const text = await this.#request("handle", { op_name: opName, in_json: JSON.stringify(value) });
    return JSON.parse(text);
  }

  // Ends stdin; resolves to the exit status once the calls in flight are done.
  close() {
    this.child.stdin.end();
    return this.exited;
  }

  #request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.#send({ jsonrpc: "2.0", id, method, params });
    });
  }

  #send(message) {
    this.child.stdin.write(JSON.stringify(message) + "\n");
  }

  async #receive(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return; // never happens: the runtime writes one JSON message per line
    }
    if (message.method === "hostcall") {
      const { op_name: opName, json } = message.params;
      try {
        if (!this.hostcall) throw new Error("this client answers no hostcall");
        const answer = await this.hostcall(opName, JSON.parse(json));
        this.#send({ jsonrpc: "2.0", id: message.id, result: JSON.stringify(answer ?? null) });
      } catch (error) {
        this.#send({ jsonrpc: "2.0", id: message.id, error: { code: -32000, message: String(error.message ?? error) } });
      }
      return;
    }
    const waiting = this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id);
    if (message.error) waiting.reject(new FunctionsError(message.error));
    else waiting.resolve(message.result);
  }
}
