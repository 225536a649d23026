// Runs build/guest/python.wasm under Node's WASI (the reference host for the
// CPython regression comparison in tests/cpython/run.py).
//
//   node tests/cpython/node_runner.mjs --wasm build/guest/python.wasm \
//     --dir HOST::GUEST [--dir ...] [--env K=V ...] -- python-args...
//
// python.wasm is a WASI reactor: call `_initialize` (via wasi.initialize),
// then the `terrarium_main` export, whose return value is the exit status.
// Note: Node 20's WASI hangs on the absolute-clock poll_oneoff subscriptions
// that time.sleep() makes (clock_nanosleep(TIMER_ABSTIME)); callers must put
// a timeout on every run.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const argv = process.argv.slice(2);
let wasmPath = null;
const preopens = {};
const env = {};
let i = 0;
for (; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--') { i++; break; }
  if (a === '--wasm') wasmPath = argv[++i];
  else if (a === '--dir') {
    const [host, guest] = argv[++i].split('::');
    preopens[guest] = host;
  } else if (a === '--env') {
    const kv = argv[++i];
    const eq = kv.indexOf('=');
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  } else { break; }
}
if (!wasmPath) {
  console.error('usage: node_runner.mjs --wasm python.wasm [--dir HOST::GUEST] [--env K=V] -- args');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: ['python', ...argv.slice(i)],
  env,
  preopens,
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
let status;
try {
  wasi.initialize(instance);
  status = instance.exports.terrarium_main();
} catch (e) {
  // With returnOnExit, proc_exit() records the code under a private symbol
  // and throws that symbol to unwind the guest.
  if (typeof e !== 'symbol' || typeof wasi[e] !== 'number') {
    console.error(`node_runner: ${e && e.stack || e}`);
    process.exit(125);
  }
  status = wasi[e];
}
process.exitCode = status;
