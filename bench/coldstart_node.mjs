// Runs python.wasm (Terrarium's guest, a WASI reactor) under Node's WASI:
//   node coldstart_node.mjs PYTHON_WASM STDLIB_DIR [python args...]
// The peer for cold start: the same guest on a JIT engine.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, exit } from "node:process";

const [wasmPath, stdlibDir, ...args] = argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: ["python", ...args],
  env: {},
  preopens: { "/usr/local/lib/python3.11": stdlibDir },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
// The bridge imports (module "terrarium") are unused by `-c pass`.
const terrarium = {};
for (const entry of WebAssembly.Module.imports(module)) {
  if (entry.module === "terrarium") terrarium[entry.name] = () => -1;
}
const instance = await WebAssembly.instantiate(module, {
  wasi_snapshot_preview1: wasi.wasiImport,
  terrarium,
});
wasi.initialize(instance);
exit(instance.exports.terrarium_main());
