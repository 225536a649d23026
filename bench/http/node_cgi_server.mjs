// Wagi's model with a JIT engine, as the peer of `terrarium serve` in
// bench/http: an HTTP server on Node where every request instantiates the
// same python.wasm afresh under Node's WASI (the compiled module is kept, as
// Wagi keeps it) and runs a CGI script; the stdout preamble becomes the
// response's status and headers. One process per core (node:cluster).
//   node node_cgi_server.mjs --port P --wasm PYTHON_WASM --stdlib DIR --code DIR \
//        --route /hello=/code/hello.py [--route ...] [--workers N]
import cluster from 'node:cluster';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { WASI } from 'node:wasi';

const options = { routes: [], workers: os.availableParallelism() };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (flag === '--route') options.routes.push(value.split('='));
  else options[flag.replace(/^--/, '')] = value;
}
if (!options.port || !options.wasm || !options.stdlib || !options.code || !options.routes.length) {
  console.error('usage: node node_cgi_server.mjs --port P --wasm W --stdlib DIR --code DIR --route PATH=SCRIPT...');
  process.exit(2);
}

if (cluster.isPrimary) {
  // Node 20's baseline wasm compiler (Liftoff) crashes this process with
  // SIGSEGV after about six fresh instances of python.wasm (measured
  // 2026-12-02, Node 20.20); the optimizing compiler alone (TurboFan) does
  // not, and is what a long-running server ends up using anyway.
  // And V8 reserves ~10 GiB of address space per wasm memory within a limit
  // of ~1 TiB, freed only when the garbage collector finds the instance
  // dead: after ~90 requests without a full collection the next instance
  // gets a memory without guard regions and the process crashes (SIGSEGV).
  // A wasm runtime frees each instance's memory when the request ends;
  // collecting every GC_EVERY requests does the same here.
  cluster.setupPrimary({ execArgv: [...process.execArgv, '--no-liftoff', '--expose-gc'] });
  for (let i = 0; i < Number(options.workers); i++) cluster.fork();
  let ready = 0;
  cluster.on('message', () => { if (++ready === Number(options.workers)) console.log('Ready'); });
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
  // A worker that dies is said so (and replaced): a peer that fails
  // silently would make its rows meaningless.
  cluster.on('exit', (worker, code, signal) => {
    console.error(`node-wasi worker ${worker.process.pid} exited (code ${code}, signal ${signal}); starting another`);
    cluster.fork();
  });
} else {
  const module = await WebAssembly.compile(fs.readFileSync(options.wasm));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'node-cgi-'));
  const GC_EVERY = 16;
  let served = 0;
  const run = (script, args, env, body) => {
    const inPath = path.join(scratch, 'in'), outPath = path.join(scratch, 'out');
    fs.writeFileSync(inPath, body);
    const stdin = fs.openSync(inPath, 'r');
    const stdout = fs.openSync(outPath, 'w+');
    const stderr = fs.openSync('/dev/null', 'w');
    try {
      const wasi = new WASI({
        version: 'preview1', args: ['python', script, ...args], env, returnOnExit: true,
        preopens: { '/usr/local/lib/python3.11': options.stdlib, '/code': options.code },
        stdin, stdout, stderr,
      });
      const imports = wasi.getImportObject();
      for (const imp of WebAssembly.Module.imports(module)) {
        if (imp.kind !== 'function' || imp.module.startsWith('wasi_')) continue;
        imports[imp.module] ??= {};
        imports[imp.module][imp.name] = () => { throw new Error('no host import ' + imp.name); };
      }
      const instance = new WebAssembly.Instance(module, imports);
      wasi.initialize(instance);
      instance.exports.terrarium_main();
      return fs.readFileSync(outPath);
    } finally {
      fs.closeSync(stdin); fs.closeSync(stdout); fs.closeSync(stderr);
      if (++served % GC_EVERY === 0) globalThis.gc();
    }
  };
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url, 'http://' + (request.headers.host || 'localhost'));
      const route = options.routes.find(([prefix]) => prefix === url.pathname);
      if (!route) { response.writeHead(404); response.end(); return; }
      const body = Buffer.concat(chunks);
      const env = {
        GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: request.method, SCRIPT_NAME: route[0],
        PATH_INFO: '', QUERY_STRING: url.search.slice(1), CONTENT_LENGTH: String(body.length),
        CONTENT_TYPE: request.headers['content-type'] || '', SERVER_NAME: url.hostname,
        SERVER_PORT: url.port, SERVER_PROTOCOL: 'HTTP/' + request.httpVersion,
        SERVER_SOFTWARE: 'node-wasi-cgi', REMOTE_ADDR: request.socket.remoteAddress,
        X_FULL_URL: url.href, X_MATCHED_ROUTE: route[0],
      };
      for (const [name, value] of Object.entries(request.headers)) {
        env['HTTP_' + name.toUpperCase().replace(/-/g, '_')] = String(value);
      }
      const args = url.search ? url.search.slice(1).split('&').map(decodeURIComponent) : [];
      let output;
      try {
        output = run(route[1], args, env, body);
      } catch (error) {
        response.writeHead(500); response.end(String(error)); return;
      }
      let split = output.indexOf('\n\n');
      let skip = 2;
      const crlf = output.indexOf('\r\n\r\n');
      if (crlf >= 0 && (split < 0 || crlf < split)) { split = crlf; skip = 4; }
      if (split < 0) { response.writeHead(500); response.end('no CGI preamble'); return; }
      let status = 200;
      const headers = {};
      for (const line of output.subarray(0, split).toString().split(/\r?\n/)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim(), value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else headers[name] = value;
      }
      response.writeHead(status, headers);
      response.end(output.subarray(split + skip));
    });
  });
  server.listen(Number(options.port), '127.0.0.1', () => process.send('ready'));
}
