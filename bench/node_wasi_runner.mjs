// Runs build/guest/python.wasm (a WASI reactor) under Node's WASI, like
// `terrarium run`: _initialize, then terrarium_main with the script's args.
//   node bench/node_wasi_runner.mjs PYTHON_WASM STDLIB_DIR SCRIPT [ARGS...]
// The script's directory is preopened at /bench, the standard library at
// /usr/local/lib/python3.11 (where the guest's sys.prefix points).
// Note: time.sleep hangs under Node's WASI (poll_oneoff); workloads avoid it.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import path from 'node:path';
import process from 'node:process';

const [wasmPath, stdlibDir, script, ...rest] = process.argv.slice(2);
if (!wasmPath || !stdlibDir || !script) {
  console.error('usage: node node_wasi_runner.mjs PYTHON_WASM STDLIB_DIR SCRIPT [ARGS...]');
  process.exit(2);
}
const scriptDir = path.dirname(path.resolve(script));
const wasi = new WASI({
  version: 'preview1',
  args: ['python', '/bench/' + path.basename(script), ...rest],
  env: {},
  preopens: {
    '/usr/local/lib/python3.11': path.resolve(stdlibDir),
    '/bench': scriptDir,
  },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
// The guest's host-call bridge imports (module "terrarium") are not used by
// the workloads: stubs that trap if called.
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.kind !== 'function' || imp.module.startsWith('wasi_')) continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => { throw new Error('bench: host import ' + imp.module + '.' + imp.name + ' not available under node'); };
}
const instance = await WebAssembly.instantiate(module, imports);
wasi.initialize(instance);  // calls _initialize
let status;
try {
  status = instance.exports.terrarium_main();
} catch (e) {
  // proc_exit with returnOnExit: Node throws a symbol-carrying error in some
  // versions; report anything else as a crash.
  console.error('node runner: guest trapped:', e);
  process.exit(125);
}
process.exitCode = status;
