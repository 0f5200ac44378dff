/** The prunepack/pack loader: no node: or built-in imports in its compiled graph, and its bundled size. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules, createRequire } from 'node:module';
import http from 'node:http';
import { buildPack } from '../src/pack/write.js';
import { restorePack } from '../src/pack/format.js';
import { NATIVE_INFLATE_MIN_BYTES, NODE_ASYNC_MIN_BYTES, nodeZlibInflater, restorePackAsync } from '../src/pack/restore-async.js';
import { crc32, decodePpspInto, PPSP_DTYPE_CODES } from '../converters/tfjs/sparse-decode.js';
import { decodeSparse, encodeSparse } from '../src/sparsity/codecs.js';
import { PrunepackError } from '../src/errors.js';
import type { DType } from '../src/model/dtype.js';
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

it('bitmaps read as 32-bit words: random masks of every density, widths 1/2/4/8, shuffled or not, blocks and row axes decode as the reference decoder does', () => {
  const random = mulberry32(11);
  const dtypes: Array<[DType, number]> = [['uint8', 1], ['float16', 2], ['float32', 4], ['int64', 8]];
  let checked = 0;
  // Element counts around the 8- and 32-bit boundaries of the bitmap (padding bits, no tail loop).
  for (const shape of [[1, 1], [3, 7], [4, 8], [5, 13], [8, 32], [2, 3, 33], [16, 65]]) {
    const count = shape.reduce((n, d) => n * d, 1);
    for (const [dtype, width] of dtypes) {
      for (const density of [0, 0.03, 0.2, 0.5, 0.9, 1]) {
        const bytes = new Uint8Array(count * width);
        for (let e = 0; e < count; e++) if (random() < density) for (let b = 0; b < width; b++) bytes[e * width + b] = 1 + Math.floor(random() * 255);
        const weight = { values: bytes, dtype, shape };
        for (const rowAxis of [0, shape.length - 1]) {
          for (const blockShape of [[1, 1], [1, 2], [shape[rowAxis]!, 1]] as Array<[number, number]>) {
            for (const stage of [{}, { shuffleValues: true }, { deflateIndex: true, deflateValues: true, shuffleValues: true }]) {
              let blob: Uint8Array;
              try {
                blob = encodeSparse(weight, { codec: 'bitmap', blockShape, rowAxis, zeroRule: 'bitwise', ...stage });
              } catch (e) {
                if (e instanceof PrunepackError && /does not divide/.test(e.message)) continue;
                throw e;
              }
              const reference = decodeSparse(blob).values;
              // The blob at an odd offset: a stored (not deflated) index stream is then unaligned.
              const shifted = new Uint8Array(blob.length + 1).subarray(1);
              shifted.set(blob);
              const out = new Uint8Array(reference.length);
              decodePpspInto(shifted, { dtypeCode: PPSP_DTYPE_CODES[dtype] ?? blob[6]!, shape, elements: count }, out, 'w', { zeroed: true });
              assert.ok(Buffer.from(out).equals(Buffer.from(reference)), `${dtype} [${shape}] density ${density} axis ${rowAxis} ${blockShape} ${JSON.stringify(stage)}`);
              checked++;
            }
          }
        }
      }
    }
  }
  assert.ok(checked > 1000, `${checked} blobs`);
});

it('bitmap errors: a set padding bit and a wrong bit count are refused with their location', () => {
  // 5 x 13 float32, one bit per element: 65 bits, so 7 padding bits in the last index byte.
  const values = new Float32Array(65);
  for (let i = 0; i < values.length; i += 4) values[i] = i + 1; // element 64 too
  const blob = encodeSparse({ values, dtype: 'float32', shape: [5, 13] }, { codec: 'bitmap', shuffleValues: true });
  const last = blob.length - 5; // the index stream ends just before the CRC-32
  const decode = (b: Uint8Array) => decodePpspInto(b, { dtypeCode: 1, shape: [5, 13], elements: 65 }, new Uint8Array(260), 'w');
  const withCrc = (b: Uint8Array) => { new DataView(b.buffer, b.byteOffset).setUint32(b.length - 4, crc32(b.subarray(0, b.length - 4)), true); return b; };
  decode(blob);
  // Element 64 (the last one) is set: move it into the padding (same count, padding bit set).
  assert.equal(blob[last]! & 1, 1);
  const padded = blob.slice();
  padded[last] = 2;
  assert.throws(() => decode(withCrc(padded)), (e: PrunepackError) => e.code === 'CORRUPT' && /padding bits/.test(e.message) && e.location === `w index stream byte ${(65 + 7) / 8 - 1}`);
  const extra = blob.slice();
  extra[last] = 3;
  assert.throws(() => decode(withCrc(extra)), (e: PrunepackError) => e.code === 'CORRUPT' && /bit count/.test(e.message) && e.location === 'w byte 20');
});

it('Node: unpack(bytes) sends the streams from NODE_ASYNC_MIN_BYTES on to the thread pool, smaller ones to inflateRawSync; same files as restorePack', async () => {
  const z = nodeZlibInflater();
  assert.ok(z, 'Node >= 20.16 has process.getBuiltinModule');
  assert.ok(NODE_ASYNC_MIN_BYTES < NATIVE_INFLATE_MIN_BYTES);
  // Weights whose value streams deflate to under 4 KiB, 4-32 KiB and over 32 KiB.
  const random = mulberry32(5);
  const sizes = [16 * 1024, 96 * 1024, 512 * 1024];
  const file = new Uint8Array(1024 + sizes.reduce((n, b) => n + b, 0));
  const ranges = [];
  let at = 1024;
  for (const [i, size] of sizes.entries()) {
    const v = new Float32Array(file.buffer, at, size / 4);
    for (let e = 0; e < v.length; e++) v[e] = random() < 0.7 ? 0 : random() - 0.5;
    ranges.push({ file: 0, offset: at, length: size, name: `w${i}`, dtype: 'float32' as const, shape: [size / 256, 64] });
    at += size;
  }
  const { bytes } = buildPack([{ name: 'm.bin', bytes: file }], ranges, { poolWeightBytes: 0 });
  const asyncSizes: number[] = [];
  const syncSizes: number[] = [];
  const restored = await restorePackAsync(bytes, {}, undefined, {
    async: (s, raw) => { asyncSizes.push(s.length); return z.async(s, raw); },
    sync: (s, raw) => { syncSizes.push(s.length); return z.sync(s, raw); },
  });
  assert.ok(Buffer.from(restored.primary).equals(Buffer.from(file)));
  assert.ok(Buffer.from(restorePack(bytes).primary).equals(Buffer.from(file)));
  assert.ok(asyncSizes.length > 0 && asyncSizes.every((n) => n >= NODE_ASYNC_MIN_BYTES), `async: ${asyncSizes}`);
  assert.ok(asyncSizes.some((n) => n < 32 * 1024), `a stream of 4-32 KiB went to the thread pool: ${asyncSizes}`);
  assert.ok(syncSizes.some((n) => n < NODE_ASYNC_MIN_BYTES) && syncSizes.every((n) => n < NODE_ASYNC_MIN_BYTES), `sync: ${syncSizes}`);
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
