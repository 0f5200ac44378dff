/** The prunepack/pack loader: no node: or built-in imports in its compiled graph, and its bundled size. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules, createRequire } from 'node:module';
import http from 'node:http';
import { buildPack } from '../src/pack/write.js';
import { restorePack } from '../src/pack/format.js';
import { mulberry32 } from '../src/random.js';
import { repoPath } from './helpers.js';
import { bundlePackLoader, LOADER_BUNDLE_LIMIT } from '../bench/pack.js';

it('prunepack/pack is browser-safe (import graph) and decode-only', () => {
  const pkg = JSON.parse(fs.readFileSync(repoPath('package.json'), 'utf8'));
  const entry = repoPath(pkg.exports['./pack'].default);
  const seen = new Set<string>();
  const external = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const code = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const m of code.matchAll(/(?:import|export)\s*(?:[^'"]*?from\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) stack.push(path.resolve(path.dirname(file), spec));
      else external.add(spec);
    }
  }
  for (const spec of external) {
    assert.ok(!spec.startsWith('node:') && !builtinModules.includes(spec), `the loader imports ${spec}`);
  }
  // No package at all: its own inflate (converters/tfjs/inflate.ts) replaced fflate's.
  assert.deepEqual([...external], []);
  // Decode-only: no encoder, cost model or zero analysis in the graph.
  const names = [...seen].map((f) => path.relative(repoPath('dist'), f));
  for (const writer of ['src/sparsity/codecs.js', 'src/sparsity/cost.js', 'src/sparsity/analysis.js', 'src/pack/write.js', 'src/pack/pool-encode.js', 'src/pack/range-encoder.js']) {
    assert.ok(!names.includes(writer), `the loader imports ${writer}`);
  }
});

it('prunepack/pack bundled and minified with esbuild is under 50 KB (it imports no package)', () => {
  const { bytes, inputs } = bundlePackLoader();
  console.log(`prunepack/pack: ${bytes} bytes minified (${inputs.length} modules)`);
  assert.ok(inputs.some((f) => f.endsWith('src/pack/format.js')), 'the bundle holds the pack decoder');
  assert.ok(bytes < LOADER_BUNDLE_LIMIT, `${bytes} bytes`);
});

const CHROMIUM = '/usr/bin/chromium';
const noChromium = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)`;

it('in Chromium: the inflate worker (and DecompressionStream on the page) restore what the JavaScript decoder restores; corrupt packs are refused', { skip: noChromium }, async () => {
  // Two float32 weights of 512 x 512 (1 MiB each, ~70% zeros): PPSP blobs with value streams of > 32 KiB.
  const random = mulberry32(7);
  const file = new Uint8Array(3 * 1024 * 1024);
  const values = new Float32Array(file.buffer, 4096, 2 * 512 * 512);
  for (let i = 0; i < values.length; i++) values[i] = random() < 0.7 ? 0 : random() - 0.5;
  const { bytes } = buildPack([{ name: 'm.bin', bytes: file }], [
    { file: 0, offset: 4096, length: 512 * 512 * 4, name: 'a', dtype: 'float32', shape: [512, 512] },
    { file: 0, offset: 4096 + 512 * 512 * 4, length: 512 * 512 * 4, name: 'b', dtype: 'float32', shape: [512, 512] },
  ], { poolWeightBytes: 0 });
  assert.ok(Buffer.from(restorePack(bytes).primary).equals(Buffer.from(file)));
  const damaged = bytes.slice();
  damaged[damaged.length - 100]! ^= 0x10;
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const bundle = esbuild.buildSync({
    stdin: { contents: `export { restorePackAsync, workerInflater, nativeInflater } from './src/pack/restore-async.js'; export { unpack } from './src/loaders/pack.js';`, resolveDir: repoPath('dist'), loader: 'js' },
    bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent',
  }).outputFiles[0]!.text;
  const server = http.createServer((req, res) => {
    if (req.url === '/') { res.setHeader('content-type', 'text/html'); res.end('<!doctype html><title>pack</title>'); }
    else if (req.url === '/t.js') { res.setHeader('content-type', 'text/javascript'); res.end(bundle); }
    else if (req.url === '/pack') res.end(bytes);
    else if (req.url === '/damaged') res.end(damaged);
    else { res.statusCode = 404; res.end(); }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
    const result = await page.evaluate(async () => {
      const m = await import('/t.js' as string);
      const get = async (url: string) => new Uint8Array(await (await fetch(url)).arrayBuffer());
      const [pack, damaged] = [await get('/pack'), await get('/damaged')];
      const hex = (b: Uint8Array) => { let h = 0; for (let i = 0; i < b.length; i++) h = (Math.imul(h, 31) + b[i]!) | 0; return `${b.length}:${h}`; };
      const worker = m.workerInflater();
      const out: Record<string, string> = {};
      let served = 0;
      const counted = (s: Uint8Array, raw: number) => worker.async(s, raw).then((o: Uint8Array) => { if (o.length === raw) served++; return o; });
      out.worker = hex((await m.restorePackAsync(pack, {}, 0, { async: counted })).primary);
      out.served = String(served);
      out.page = hex((await m.restorePackAsync(pack, {}, 0, { async: m.nativeInflater() })).primary);
      out.unpack = hex((await m.unpack(pack)).primary);
      out.url = hex((await m.unpack('/pack')).primary);
      out.damaged = await m.restorePackAsync(damaged, {}, 0, { async: worker.async }).then(() => 'restored', (e: { code?: string }) => e.code ?? String(e));
      // A worker that fails to start: its streams are rejected and the JavaScript decoder takes them.
      const Saved = globalThis.Worker;
      (globalThis as { Worker: unknown }).Worker = class { postMessage() { (this as unknown as { onerror: () => void }).onerror(); } terminate() {} };
      try { out.broken = hex((await m.restorePackAsync(pack, {}, 0, { async: m.workerInflater().async })).primary); } finally { globalThis.Worker = Saved; }
      worker.end();
      return out;
    });
    const expected = (() => { let h = 0; for (let i = 0; i < file.length; i++) h = (Math.imul(h, 31) + file[i]!) | 0; return `${file.length}:${h}`; })();
    assert.deepEqual(result, { worker: expected, served: '4', page: expected, unpack: expected, url: expected, damaged: 'CORRUPT', broken: expected });
  } finally {
    await browser.close();
    server.close();
  }
});
