/**
 * The prunepack/tfjs loader: browser-safe (its compiled import graph has no Node built-ins, from
 * `node:` imports to `getBuiltinModule`; its DEFLATE reader is its own), small (bytes of its
 * import graph), its decode-only blob reader agrees with the sparsity core's
 * decodeSparse on every codec, dtype, block shape, row axis, fill table and entropy stage, and on
 * corrupted blobs; fetch with a URL prefix and query, errors, progress; decoding speed.
 * Run: npx tsc -p . && node --test dist/test/tfjs-loader.test.js
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'fflate';
import { layoutTfjs, readTfjs } from '../converters/tfjs/index.js';
import { decodeTfjsArtifacts, loadTfjsArtifacts, tfjsSparseHandler } from '../converters/tfjs/loader.js';
import { decodePpspInto, PPSP_DTYPE_CODES } from '../converters/tfjs/sparse-decode.js';
import { PrunepackError } from '../src/errors.js';
import type { DType } from '../src/model/dtype.js';
import { crc32, decodeSparse, encodeSparse, type SparseEncodeOptions } from '../src/sparsity/codecs.js';
import { mulberry32 } from '../src/verify/tflite-runtime.js';
import { buildModel, everyDtypeWeights, layoutFiles, memoryReadFile } from './tfjs-fixtures.js';
import { repoPath } from './helpers.js';

const LOADER = repoPath('dist', 'converters', 'tfjs', 'loader.js');
const FFLATE_BROWSER = repoPath('node_modules', 'fflate', 'esm', 'browser.js');

/** Module specifiers of an ES module's static and dynamic imports and re-exports. */
function specifiers(source: string): string[] {
  const out: string[] = [];
  const pattern = /(?:^|[;\s])(?:import|export)\s*(?:[^'"();]*?\sfrom\s*)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of source.matchAll(pattern)) out.push(m[1] ?? m[2]!);
  return out;
}

/** Source without block comments and whole-line comments (enough for tsc output and fflate). */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

/** Every file of the loader's import graph, resolving bare `fflate` as a browser bundler does. */
function importGraph(entry: string): { files: string[]; problems: string[] } {
  const files: string[] = [];
  const problems: string[] = [];
  const queue = [entry];
  const builtins = new Set(builtinModules);
  while (queue.length) {
    const file = queue.shift()!;
    if (files.includes(file)) continue;
    files.push(file);
    // Comments may show usage (`import ... from 'prunepack/tfjs'`); only code counts.
    const source = stripComments(fs.readFileSync(file, 'utf8'));
    if (/getBuiltinModule|createRequire|\brequire\s*\(/.test(source)) problems.push(`${file}: reaches for Node modules at run time`);
    for (const spec of specifiers(source)) {
      if (spec.startsWith('node:') || builtins.has(spec) || builtins.has(spec.split('/')[0]!)) { problems.push(`${path.basename(file)} imports ${spec}`); continue; }
      if (spec === 'fflate') { queue.push(FFLATE_BROWSER); continue; }
      if (!spec.startsWith('.')) { problems.push(`${path.basename(file)} imports package ${spec}`); continue; }
      queue.push(path.resolve(path.dirname(file), spec));
    }
  }
  return { files, problems };
}

describe('browser-safe and small', () => {
  test('the handler type-checks as a TF.js IOHandler (compile time)', () => {
    const handler: import('@tensorflow/tfjs-core').io.IOHandler = tfjsSparseHandler('https://cdn.example/m/model.json');
    assert.equal(typeof handler.load, 'function');
  });

  test('the compiled loader imports no Node built-in anywhere in its graph', () => {
    const { files, problems } = importGraph(LOADER);
    assert.deepEqual(problems, []);
    const ours = files.filter((f) => f !== FFLATE_BROWSER).map((f) => path.relative(repoPath('dist'), f)).sort();
    assert.deepEqual(ours, [
      'converters/tfjs/inflate.js', 'converters/tfjs/loader.js', 'converters/tfjs/manifest.js', 'converters/tfjs/paths.js', 'converters/tfjs/sparse-decode.js',
      'converters/tfjs/stream.js', 'src/errors.js', 'src/sparsity/crc32.js',
    ]);
    // The loader inflates with its own reader (inflate.ts), not fflate.
    assert.ok(!files.includes(FFLATE_BROWSER));
  });

  test('bundle size: the loader\'s files (its DEFLATE reader included)', (t) => {
    const { files } = importGraph(LOADER);
    const ours = files.map((f) => fs.readFileSync(f, 'utf8').replace(/\/\/# sourceMappingURL=.*$/m, ''));
    const oursBytes = ours.reduce((n, s) => n + Buffer.byteLength(s), 0);
    // Without comments and indentation: close to what a minifier keeps (names and messages stay).
    const code = ours.map((s) => stripComments(s).replace(/^\s+/gm, '').replace(/\n+/g, '\n'));
    const codeBytes = code.reduce((n, s) => n + Buffer.byteLength(s), 0);
    const codeGzip = gzipSync(new TextEncoder().encode(code.join('\n')), { level: 9 }).length;
    t.diagnostic(`loader files (${ours.length}): ${oursBytes} B as compiled, ${codeBytes} B without comments and indentation (${codeGzip} B gzip -9)`);
    // Regression guard: it was 40 KB plus 11 KB of fflate's inflate before the loader had its own.
    assert.ok(codeBytes < 56_000, `${codeBytes} B`);
  });
});

describe('the loader\'s blob reader agrees with decodeSparse', () => {
  const rand = mulberry32(42);
  /** Random dense bytes of a dtype, about `zeros` of them zero (or the zero point). */
  function weightOf(dtype: DType, shape: number[], zeros: number, zeroPoint = 0): Uint8Array {
    const count = shape.reduce((n, d) => n * d, 1);
    const width = dtype === 'complex64' ? 8 : dtype === 'float32' || dtype === 'int32' ? 4 : dtype === 'float16' || dtype === 'uint16' ? 2 : 1;
    const out = new Uint8Array(count * width);
    for (let i = 0; i < count; i++) {
      if (rand() < zeros) {
        if (zeroPoint) out[i * width] = zeroPoint;
        continue;
      }
      for (let j = 0; j < width; j++) out[i * width + j] = Math.floor(rand() * 256);
      if (dtype === 'bool') out[i] = 1;
    }
    return out;
  }

  const cases: Array<{ dtype: DType; shape: number[]; zeroPoint?: number; perChannel?: boolean }> = [
    { dtype: 'float32', shape: [12, 16] }, { dtype: 'float32', shape: [3, 4, 8] }, { dtype: 'float16', shape: [8, 24] },
    { dtype: 'uint8', shape: [16, 12], zeroPoint: 131 }, { dtype: 'uint8', shape: [6, 4, 8], zeroPoint: 7, perChannel: true },
    { dtype: 'uint16', shape: [10, 8], zeroPoint: 3 }, { dtype: 'int32', shape: [8, 8] }, { dtype: 'bool', shape: [5, 32] },
    { dtype: 'complex64', shape: [4, 8] }, { dtype: 'float32', shape: [37] }, { dtype: 'float32', shape: [] },
  ];
  const stages: Array<Partial<SparseEncodeOptions>> = [
    {}, { deflateIndex: true }, { deflateValues: true, shuffleValues: true }, { deflateIndex: true, deflateValues: true, shuffleValues: true }, { shuffleValues: true },
  ];

  test('every codec, dtype, block shape, row axis, fill table and entropy stage, into aligned and unaligned buffers', () => {
    let checked = 0;
    for (const c of cases) {
      const values = weightOf(c.dtype, c.shape, 0.7, c.zeroPoint);
      const quantization = c.zeroPoint === undefined ? undefined
        : c.perChannel ? { zeroPoint: Array.from({ length: c.shape[1]! }, (_, i) => (c.zeroPoint! + i) % 200), axis: 1 } : { zeroPoint: c.zeroPoint };
      if (c.perChannel) {
        // Zeros at each channel's own zero point.
        const inner = c.shape.slice(2).reduce((n, d) => n * d, 1);
        for (let i = 0; i < values.length; i++) if (rand() < 0.6) values[i] = (quantization!.zeroPoint as number[])[Math.floor(i / inner) % c.shape[1]!]!;
      }
      const weight = { values, dtype: c.dtype, shape: c.shape, ...(quantization ? { quantization } : {}) };
      for (const codec of ['bcsr', 'bitmap'] as const) {
        for (const rowAxis of c.shape.length >= 2 ? [0, c.shape.length - 1] : [0]) {
          for (const blockShape of [[1, 1], [1, 4], [2, 2]] as Array<[number, number]>) {
            for (const stage of stages) {
              let blob: Uint8Array;
              try {
                blob = encodeSparse(weight, { codec, blockShape, rowAxis, zeroRule: 'bitwise', ...stage });
              } catch (e) {
                if (e instanceof PrunepackError && /does not divide/.test(e.message)) continue;
                throw e;
              }
              const reference = decodeSparse(blob).values;
              const expect = { dtypeCode: PPSP_DTYPE_CODES[c.dtype]!, shape: c.shape, elements: values.length };
              const aligned = new Uint8Array(reference.length);
              decodePpspInto(blob, expect, aligned, 'w');
              assert.ok(Buffer.from(aligned).equals(Buffer.from(reference)), `${c.dtype} [${c.shape}] ${codec} axis ${rowAxis} ${blockShape} ${JSON.stringify(stage)}`);
              const unaligned = new Uint8Array(reference.length + 1).subarray(1);
              decodePpspInto(blob, expect, unaligned, 'w');
              assert.ok(Buffer.from(unaligned).equals(Buffer.from(reference)));
              checked++;
            }
          }
        }
      }
    }
    assert.ok(checked > 300, `${checked} combinations`);
  });

  test('corrupted blobs (checksum fixed up): rejected by both, or decoded identically by both; never a non-prunepack error', () => {
    const base = [
      encodeSparse({ values: weightOf('float32', [16, 16], 0.8), dtype: 'float32', shape: [16, 16] }, { codec: 'bitmap', deflateIndex: true, deflateValues: true, shuffleValues: true, zeroRule: 'bitwise' }),
      encodeSparse({ values: weightOf('uint8', [8, 32], 0.8, 99), dtype: 'uint8', shape: [8, 32], quantization: { zeroPoint: 99 } }, { codec: 'bcsr', blockShape: [1, 4] }),
      encodeSparse({ values: weightOf('float16', [4, 4, 8], 0.6), dtype: 'float16', shape: [4, 4, 8] }, { codec: 'bcsr', rowAxis: 2, deflateIndex: true }),
    ];
    let agreedRejects = 0;
    let agreedDecodes = 0;
    for (let round = 0; round < 1200; round++) {
      const original = base[round % base.length]!;
      let blob = original.slice();
      const kind = round % 3;
      if (kind === 0) blob = blob.subarray(0, Math.floor(rand() * blob.length)).slice();
      else {
        const flips = 1 + Math.floor(rand() * 3);
        for (let f = 0; f < flips; f++) blob[Math.floor(rand() * (kind === 1 ? Math.min(80, blob.length - 4) : blob.length - 4))]! ^= 1 << Math.floor(rand() * 8);
      }
      if (blob.length >= 8) new DataView(blob.buffer).setUint32(blob.length - 4, crc32(blob.subarray(0, blob.length - 4)), true);
      let reference: ReturnType<typeof decodeSparse> | null = null;
      try {
        reference = decodeSparse(blob, { maxDenseBytes: 1 << 20 });
      } catch (e) {
        assert.ok(e instanceof PrunepackError, `reference threw ${(e as Error).message}`);
      }
      const expect = reference
        ? { dtypeCode: blob[6]!, shape: reference.shape, elements: reference.shape.reduce((n, d) => n * d, 1) }
        : { dtypeCode: original[6]!, shape: null, elements: 256 };
      const out = new Uint8Array(reference ? reference.values.length : 1024);
      try {
        decodePpspInto(blob, expect, out, 'w');
        assert.ok(reference, `round ${round}: only the loader's reader accepted the blob`);
        assert.ok(Buffer.from(out).equals(Buffer.from(reference.values)), `round ${round}: different bytes`);
        agreedDecodes++;
      } catch (e) {
        if (!(e instanceof PrunepackError)) throw new Error(`round ${round}: ${(e as Error).stack}`);
        if (reference && !/output size|does not match/.test(e.message)) assert.fail(`round ${round}: only the reference accepted: ${e.message}`);
        agreedRejects++;
      }
    }
    assert.ok(agreedRejects > 500 && agreedDecodes > 0, `${agreedRejects} rejected, ${agreedDecodes} decoded`);
  });
});

describe('loading', () => {
  const weights = everyDtypeWeights();
  const built = buildModel(weights, { groups: 2, shardSize: 300 });
  const model = readTfjs(built.json, { shards: (p) => built.files.get(p)! });
  const sparse = layoutTfjs(model, 'tfjs-sparse', { shardSize: 256 });
  const files = layoutFiles(sparse);

  test('over fetch: weightPathPrefix, the query of the model URL on every shard, artifacts as TF.js builds them', async () => {
    const urls: string[] = [];
    const fetch = async (url: string) => {
      urls.push(url);
      const name = url.replace(/^https:\/\/(a|b)\.example\/(m|w)\//, '').replace(/\?.*$/, '');
      const bytes = files.get(name);
      return bytes ? new Response(bytes as Uint8Array<ArrayBuffer>) : new Response('', { status: 404 });
    };
    const artifacts = await tfjsSparseHandler('https://a.example/m/model.json?token=x', { fetch, weightPathPrefix: 'https://b.example/w/' }).load();
    assert.equal(urls[0], 'https://a.example/m/model.json?token=x');
    assert.deepEqual(urls.slice(1), sparse.shards.map((s) => `https://b.example/w/${s.path}?token=x`));
    assert.equal(artifacts.format, 'graph-model');
    assert.equal(artifacts.generatedBy, 'fixture');
    assert.equal(artifacts.weightSpecs!.length, weights.length);
    assert.ok(artifacts.weightSpecs!.every((s) => !('prunepack' in s)));
    const data = new Uint8Array(artifacts.weightData!);
    let at = 0;
    for (const w of weights) {
      assert.ok(Buffer.from(data.subarray(at, at + w.bytes.length)).equals(Buffer.from(w.bytes)), w.name);
      at += w.bytes.length;
    }
    assert.equal(at, data.length);
    // The same bytes without fetch.
    const direct = decodeTfjsArtifacts(files.get('model.json')!, sparse.shards.map((s) => files.get(s.path)!));
    assert.ok(Buffer.from(direct.weightData!).equals(Buffer.from(artifacts.weightData!)));
  });

  test('a missing shard or a failing network: IO errors that name the URL', async () => {
    const missing = async (url: string) => (url.endsWith('model.json') ? new Response(files.get('model.json')! as Uint8Array<ArrayBuffer>) : new Response('', { status: 404 }));
    await assert.rejects(loadTfjsArtifacts('https://a.example/m/model.json', { fetch: missing }), (e: unknown) => e instanceof PrunepackError && e.code === 'IO' && /status 404/.test(e.message));
    const offline = async () => { throw new TypeError('fetch failed'); };
    await assert.rejects(loadTfjsArtifacts('https://a.example/m/model.json', { fetch: offline }), (e: unknown) => e instanceof PrunepackError && e.code === 'IO' && /fetch failed/.test(e.message));
    await assert.rejects(loadTfjsArtifacts('m/model.json', { readFile: () => { throw new Error('EACCES'); } }), (e: unknown) => e instanceof PrunepackError && e.code === 'IO');
    await assert.rejects(loadTfjsArtifacts('m/model.json', { readFile: memoryReadFile(files, 'm'), maxBytes: 100 }), (e: unknown) => e instanceof PrunepackError && e.code === 'UNSUPPORTED' && /load limit/.test(e.message));
  });

  test('decoding speed on a 24 MB pruned model, against allocating and copying the same dense bytes', (t) => {
    const rand = mulberry32(9);
    const entries = [];
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) {
      const a = new Float32Array(1024 * 1024);
      for (let k = 0; k < a.length; k++) if (rand() >= 0.8) a[k] = (rand() - 0.5) * (rand() + 0.01);
      entries.push({ name: `dense_${i}/kernel`, shape: [1024, 1024], dtype: 'float32' as const, bytes: new Uint8Array(a.buffer) });
      parts.push(new Uint8Array(a.buffer));
    }
    const big = buildModel(entries);
    const bigModel = readTfjs(big.json, { shards: (p) => big.files.get(p)! });
    const layout = layoutTfjs(bigModel, 'tfjs-sparse', { level: 1 });
    const shards = layout.shards.map((s) => Buffer.concat(s.chunks));
    const dense = Buffer.concat(parts);
    let decode = Infinity;
    let copy = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      let start = performance.now();
      const artifacts = decodeTfjsArtifacts(layout.modelJson, shards);
      decode = Math.min(decode, performance.now() - start);
      if (rep === 0) assert.ok(Buffer.from(artifacts.weightData!).equals(dense));
      start = performance.now();
      const out = new Uint8Array(dense.length);
      out.set(dense);
      copy = Math.min(copy, performance.now() - start);
    }
    t.diagnostic(`decode ${decode.toFixed(0)} ms (${(dense.length / 1e6 / (decode / 1000)).toFixed(0)} MB/s of dense weights from ${layout.weightBytes} B), allocate + copy ${copy.toFixed(0)} ms: ${(decode / copy).toFixed(1)}x`);
    // Speed is reported here and measured by the benchmark; tests assert correctness only.
  });
});
