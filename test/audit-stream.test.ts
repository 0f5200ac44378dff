/**
 * Paged TFLite reading (src/io/paged.ts) and the streaming audit: the same model and the same
 * per-weight findings as the whole-file path, weights loaded one at a time and dropped again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { openModel } from '../src/index.js';
import { auditModel, blockPruneCost, selectKth, selectKthNonNegative } from '../src/audit/audit.js';
import { auditFileStreaming, queueOrder, rangeTargetOf } from '../src/audit/parallel.js';
import { layoutTflite } from '../converters/tflite/write.js';
import { assembleLayout } from '../converters/tflite/write.js';
import type { TfliteDocument } from '../converters/tflite/document.js';
import { canonicalJson, mediapipeModels, repoPath, sampleModels, tempDir } from './helpers.js';
import { mulberry32 } from '../src/random.js';
import { ZeroBitsKernel } from '../src/audit/zero-bits-wasm.js';
import { READ_RING } from '../src/audit/weight.js';
import { generateTfliteModel } from '../bench/tflite-io.js';

const CLI = repoPath('dist', 'src', 'cli', 'bin.js');
const models = [...mediapipeModels(), ...sampleModels()];

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

test('paged reading gives the same weights and the same document as reading the whole file', () => {
  for (const file of models) {
    const whole = openModel(file).model;
    const { model: paged, source } = openModel(file, { paged: true });
    assert.ok(source.paged, `${file}: opened in pages`);
    assert.equal(source.bytes.length, Math.min(65536, fs.statSync(file).size), 'bytes is the first page only');
    assert.equal(paged.weights.length, whole.weights.length);
    for (let i = 0; i < whole.weights.length; i++) {
      const a = whole.weights[i]!;
      const b = paged.weights[i]!;
      assert.equal(b.name, a.name);
      assert.equal(b.storedByteLength, a.bytes.length, `${a.name}: stored length known before loading`);
      assert.ok(equalBytes(b.denseBytes(), a.denseBytes()), `${path.basename(file)} ${a.name}: dense bytes`);
      b.release?.();
      assert.ok(equalBytes(b.bytes, a.bytes), `${path.basename(file)} ${a.name}: stored bytes after release`);
      b.release?.();
    }
    // The documents write the same file (tables and buffers).
    const w = assembleLayout(layoutTflite(whole.document as TfliteDocument));
    const p = assembleLayout(layoutTflite(paged.document as TfliteDocument));
    assert.ok(equalBytes(p, w), `${path.basename(file)}: written the same`);
  }
});

test('paged reading reads the tables, not the weights', () => {
  const file = repoPath('samples', 'cnn-synthetic-80.tflite');
  const { model, source } = openModel(file, { paged: true });
  const size = fs.statSync(file).size;
  const paged = source.paged as unknown as { bytesRead: number };
  const afterOpen = paged.bytesRead;
  // The sample's 512 KiB dense1/weights sit past its first pages: opening reads a fraction.
  assert.ok(afterOpen < size / 2, `opening read ${afterOpen} of ${size} bytes`);
  const largest = model.weights.reduce((m, w) => (w.storedByteLength! > m.storedByteLength! ? w : m));
  largest.denseBytes();
  assert.ok(paged.bytesRead >= afterOpen + largest.storedByteLength!, 'a used weight is read from the file');
  largest.release?.();
  const before = paged.bytesRead;
  largest.denseBytes();
  assert.equal(paged.bytesRead, before + largest.storedByteLength!, 'a released weight is read again on its next use');
});

test('paged reading refuses damaged files with the same error as reading them whole', () => {
  const original = fs.readFileSync(repoPath('samples', 'cnn-synthetic-80.tflite'));
  const dir = tempDir('paged-fuzz');
  const random = mulberry32(0x9a9ed);
  try {
    const file = path.join(dir, 'm.tflite');
    let refused = 0;
    for (let k = 0; k < 150; k++) {
      const bytes = Uint8Array.from(original);
      const kind = k % 3;
      let data: Uint8Array = bytes;
      // Mutations in the tables (the first 4 KiB and the last 8 KiB: the weights sit between).
      const at = () => (random() < 0.5 ? Math.floor(random() * 4096) : bytes.length - 1 - Math.floor(random() * 8192));
      if (kind === 0) for (let f = 0; f < 4; f++) { const i = at(); bytes[i] = bytes[i]! ^ (1 << Math.floor(random() * 8)); }
      else if (kind === 1) data = bytes.subarray(0, Math.floor(random() * bytes.length));
      else { const i = at() & ~3; new DataView(bytes.buffer).setUint32(i, Math.floor(random() * 2 ** 32), true); }
      fs.writeFileSync(file, data);
      const outcome = (paged: boolean): string => {
        try {
          const { model } = openModel(file, { paged });
          for (const w of model.weights) { w.denseBytes(); w.release?.(); }
          return 'ok';
        } catch (e) {
          const code = (e as { code?: string }).code;
          assert.ok(code, `only PrunepackError escapes (${(e as Error).message})`);
          return code;
        }
      };
      const whole = outcome(false);
      const paged = outcome(true);
      if (whole !== 'ok') refused++;
      assert.equal(paged, whole, `mutation ${k}: paged ${paged}, whole ${whole}`);
    }
    assert.ok(refused > 30, `the mutations were refused ${refused} times (the test must exercise errors)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The per-weight part of a report that a streaming audit must reproduce. */
function perWeight(report: ReturnType<typeof auditModel>) {
  return report.weights.map((w) => ({
    name: w.name, rank: w.rank, shape: w.shape, dtype: w.dtype, elements: w.elements, storedBytes: w.storedBytes, denseBytes: w.denseBytes,
    zeros: w.zeros, zeroShare: w.zeroShare, structure: w.structure, informationBound: w.informationBound,
    codecs: w.candidates.filter((c) => c.family === 'codec' || c.encoding === 'dense'),
  }));
}

test('a streaming audit finds what the whole-model audit finds, weight by weight', () => {
  for (const file of models) {
    const whole = auditModel(openModel(file).model, { gzipWeights: 0, zeroPatterns: 3, pruneCost: true });
    // Weights read straight into the analysis kernel's memory (the path of audit --stream).
    const { model, source } = openModel(file, { paged: true });
    const paged = rangeTargetOf(source);
    assert.ok(paged, 'a paged TFLite source reads ranges into a given array');
    const streamed = auditModel(model, { streaming: true, zeroPatterns: 3, pruneCost: true, paged });
    const name = path.basename(file);
    // Rank order may differ (targets add candidates), so compare by name.
    const byName = (r: ReturnType<typeof perWeight>) => canonicalJson(r.map(({ rank: _, ...w }) => w).sort((a, b) => a.name.localeCompare(b.name)));
    assert.equal(byName(perWeight(streamed)), byName(perWeight(whole)), `${name}: per-weight findings`);
    assert.equal(canonicalJson(streamed.fullyConnected), canonicalJson(whole.fullyConnected), `${name}: FULLY_CONNECTED blocks`);
    assert.equal(streamed.totals.zeros, whole.totals.zeros);
    // Summed in report order, which targets change: equal up to rounding.
    const [x, y] = [streamed.totals.informationBound.weightBytes, whole.totals.informationBound.weightBytes];
    assert.ok(Math.abs(x - y) <= 1e-9 * Math.max(1, y), `information bound ${x} vs ${y}`);
    assert.equal(streamed.totals.targets.length, 0, 'no writer targets when streaming');
    assert.ok(streamed.notes.some((n) => n.startsWith('streaming audit')), 'the report says it streamed');
    const pictures = (r: ReturnType<typeof auditModel>) => r.weights.filter((w) => w.zeroPattern).map((w) => w.name).sort();
    assert.deepEqual(pictures(streamed), pictures(whole), `${name}: zero patterns of the same weights`);
  }
});

test('weights read through the read ring (only their zero bits needed) give the whole-model findings', async () => {
  // Default streaming options (no gzip, pictures or prune cost): weights over READ_RING bytes are
  // read through the ring, their bits computed piece by piece; count the pieces to be sure.
  let pieces = 0;
  const original = ZeroBitsKernel.prototype.ringBitsUpTo;
  ZeroBitsKernel.prototype.ringBitsUpTo = function (this: ZeroBitsKernel, ...args: Parameters<typeof original>) {
    pieces++;
    return original.apply(this, args);
  };
  const dir = tempDir('ring');
  try {
    const generated = path.join(dir, 'generated.tflite');
    generateTfliteModel(generated, 16 * 1024 * 1024); // one 2048 x 2048 float32 weight: 16 ring rounds
    // Its values repeat every 256: overwrite them with random ones (80% zeros, -0 too, some zero
    // rows and 1x4 blocks), found where they are in the file.
    const { model: located, source } = openModel(generated, { paged: true });
    const paged = rangeTargetOf(source)!;
    const fd = fs.openSync(generated, 'r+');
    const random = mulberry32(0x7269);
    for (const w of located.weights) {
      const range = paged.locateRange(() => w.denseBytes());
      w.release?.();
      if (!range || range.length <= READ_RING) continue;
      const values = new Float32Array(range.length / 4);
      for (let i = 0; i < values.length; i += 4) {
        const block = random() < 0.5;
        for (let k = i; k < i + 4; k++) values[k] = block || random() < 0.6 ? (random() < 0.5 ? -0 : 0) : random() - 0.5;
      }
      values.fill(0, 2048 * 5, 2048 * 9);
      fs.writeSync(fd, new Uint8Array(values.buffer), 0, range.length, range.offset);
    }
    fs.closeSync(fd);
    paged.close();
    for (const file of [generated, ...models]) {
      const whole = auditModel(openModel(file).model, { gzipWeights: 0 });
      const { report } = await auditFileStreaming(file, { top: null, jobs: 1 });
      const byName = (r: ReturnType<typeof perWeight>) => canonicalJson(r.map(({ rank: _, ...w }) => w).sort((a, b) => a.name.localeCompare(b.name)));
      assert.equal(byName(perWeight(report)), byName(perWeight(whole)), `${path.basename(file)}: per-weight findings`);
      assert.equal(canonicalJson(report.fullyConnected), canonicalJson(whole.fullyConnected), `${path.basename(file)}: FULLY_CONNECTED blocks`);
      assert.equal(report.totals.zeros, whole.totals.zeros);
    }
    assert.ok(pieces >= (16 * 1024 * 1024) / (READ_RING / 2), `weights went through the ring (${pieces} pieces)`);
    // The same on two threads (the worker reads its weights through its own ring).
    const one = await auditFileStreaming(generated, { top: null, jobs: 1 });
    const two = await auditFileStreaming(generated, { top: null, jobs: 2, parallelMinBytes: 0 });
    const strip = (r: ReturnType<typeof auditModel>) => canonicalJson({ ...r, timings: null, notes: r.notes.filter((n) => !n.includes('(--jobs)')) });
    assert.equal(strip(two.report), strip(one.report));
  } finally {
    ZeroBitsKernel.prototype.ringBitsUpTo = original;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a streaming audit holds one weight at a time', () => {
  const file = repoPath('samples', 'cnn-synthetic-80.tflite');
  const { model } = openModel(file, { paged: true });
  const loaded = new Set<string>();
  let most = 0;
  // Watch every weight: count those whose bytes are held (loaded and not released).
  const hold = (name: string) => { loaded.add(name); most = Math.max(most, loaded.size); };
  const watched = model.weights.map((w) => new Proxy(w, {
    get(target, key, receiver) {
      if (key === 'bytes') hold(target.name);
      if (key === 'denseBytes') return () => { hold(target.name); return target.denseBytes(); };
      if (key === 'release') return () => { loaded.delete(target.name); target.release!(); };
      return Reflect.get(target, key, receiver);
    },
  }));
  const report = auditModel({ ...model, weights: watched }, { streaming: true });
  assert.equal(report.weights.length, model.weights.length);
  assert.equal(most, 1, 'at most one weight loaded at any time');
  assert.equal(loaded.size, 0, 'every weight released');
});

test('a streaming audit on worker threads gives the same report as on one thread', async () => {
  for (const file of [repoPath('samples', 'cnn-synthetic-80.tflite'), ...mediapipeModels().filter((f) => f.includes('hand_landmark'))]) {
    const options = { gzipWeights: 3, zeroPatterns: 2, top: null, pruneCost: true };
    const one = await auditFileStreaming(file, { ...options, jobs: 1 });
    const two = await auditFileStreaming(file, { ...options, jobs: 2, parallelMinBytes: 0 });
    assert.equal(one.threads, 1);
    assert.equal(two.threads, 2);
    const strip = (r: ReturnType<typeof auditModel>) => canonicalJson({ ...r, timings: null, notes: r.notes.filter((n) => !n.includes('(--jobs)')) });
    assert.equal(strip(two.report), strip(one.report), path.basename(file));
    assert.ok(two.report.notes.some((n) => n.includes('analysed on 2 threads')));
    assert.ok(one.report.fullyConnected.some((f) => f.prune !== null), 'prune cost computed when asked');
  }
});

test('audit --stream on the command line: per-weight report, no targets; budgets refused', () => {
  const file = repoPath('samples', 'cnn-synthetic-80.tflite');
  const run = spawnSync(process.execPath, [CLI, 'audit', file, '--stream', '--json', '--quiet'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as ReturnType<typeof auditModel>;
  assert.equal(report.totals.targets.length, 0);
  assert.equal(report.weights.length, 11);
  assert.ok(report.weights.every((w) => w.gzipBytes === null), 'no per-weight gzip by default when streaming');
  const text = spawnSync(process.execPath, [CLI, 'audit', file, '--stream', '--quiet'], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /streaming audit: writer targets not built/);
  const budget = spawnSync(process.execPath, [CLI, 'audit', file, '--stream', '--max-bytes', '1000'], { encoding: 'utf8' });
  assert.equal(budget.status, 2);
  assert.match(budget.stderr, /budgets need the target outputs/);
  const both = spawnSync(process.execPath, [CLI, 'audit', file, '--stream', '--no-stream'], { encoding: 'utf8' });
  assert.equal(both.status, 2);
});

test('threads take weights from one queue, largest first', () => {
  const { model } = openModel(repoPath('samples', 'cnn-synthetic-80.tflite'), { paged: true });
  const order = queueOrder(model);
  assert.deepEqual([...order].sort((a, b) => a - b), model.weights.map((_, i) => i));
  const sizes = order.map((i) => model.weights[i]!.storedByteLength!);
  for (let k = 1; k < sizes.length; k++) assert.ok(sizes[k - 1]! >= sizes[k]!, `order by size: ${sizes.join(', ')}`);
});

test('selectKth and blockPruneCost agree with a plain sort-based reference', () => {
  const random = mulberry32(0xb10c);
  for (let t = 0; t < 300; t++) {
    const n = 1 + Math.floor(random() * 300);
    const a = Float64Array.from({ length: n }, () => (random() < 0.4 ? 0 : Math.floor(random() * 8)));
    const sorted = Float64Array.from(a).sort();
    const k = Math.floor(random() * n);
    const r = selectKth(Float64Array.from(a), k);
    assert.equal(r.value, sorted[k]);
    assert.equal(r.below, a.filter((x) => x < sorted[k]!).length);
  }
  // The bucketed select on large arrays of non-negative norms (many equal: zero blocks).
  for (let t = 0; t < 12; t++) {
    const n = 5000 + Math.floor(random() * 20000);
    const a = Float64Array.from({ length: n }, () => (random() < 0.4 ? 0 : t % 2 ? Math.floor(random() * 50) : random() * 3));
    const sorted = Float64Array.from(a).sort();
    for (const k of [0, n - 1, Math.floor(random() * n), Math.floor(n * 0.4), Math.floor(n * 0.8)]) {
      const copy = Float64Array.from(a);
      const r = selectKthNonNegative(copy, k);
      assert.equal(r.value, sorted[k], `n ${n} k ${k}`);
      assert.equal(r.below, sorted.findIndex((x) => x === sorted[k]), `n ${n} k ${k}: below`);
      assert.deepEqual(copy, a, 'the input is left as it was');
    }
  }
  // blockPruneCost against the definition: |value| per element, block sums in flat order, the
  // round(blocks * s) smallest norms with ties by position.
  for (const dtype of ['float32', 'int8'] as const) {
    for (let t = 0; t < 20; t++) {
      const rows = 4 * (1 + Math.floor(random() * 6));
      const cols = 4 * (1 + Math.floor(random() * 6));
      const n = rows * cols;
      const f = Float32Array.from({ length: n }, () => (random() < 0.6 ? 0 : Math.round((random() - 0.5) * 8) / 4));
      const q = Int8Array.from(f, (x) => Math.round(x * 4) + 3);
      const scale = Array.from({ length: rows }, () => 0.5 + random());
      const weight = dtype === 'float32'
        ? { dtype, shape: [rows, cols], quantization: undefined }
        : { dtype, shape: [rows, cols], quantization: { scale, zeroPoint: scale.map(() => 3), axis: 0 } };
      const bytes = dtype === 'float32' ? new Uint8Array(f.buffer) : new Uint8Array(q.buffer);
      const magnitude = (i: number) => (dtype === 'float32' ? Math.abs(f[i]!) : Math.abs(q[i]! - 3) * scale[Math.floor(i / cols)]!);
      for (const [br, bc] of [[1, 4], [2, 2], [4, 1]] as const) {
        const s = random();
        const got = blockPruneCost(weight as never, bytes, [br, bc], s)!;
        const blockCols = cols / bc;
        const norms = new Float64Array((rows / br) * blockCols);
        const nz = new Uint32Array(norms.length);
        let zeros = 0;
        let l1 = 0;
        for (let i = 0; i < n; i++) {
          const b = Math.floor(Math.floor(i / cols) / br) * blockCols + Math.floor((i % cols) / bc);
          const m = magnitude(i);
          norms[b] += m;
          l1 += m;
          if (m === 0) zeros++; else nz[b]++;
        }
        const order = Array.from(norms.keys()).sort((x, y) => norms[x]! - norms[y]! || x - y).slice(0, Math.round(norms.length * s));
        const extra = order.reduce((acc, b) => acc + nz[b]!, 0);
        const removed = order.reduce((acc, b) => acc + norms[b]!, 0);
        assert.equal(got.zerosBefore, zeros, `${dtype} ${rows}x${cols} ${br}x${bc}: zeros`);
        assert.equal(got.extraZeros, extra, `${dtype} ${rows}x${cols} ${br}x${bc}: extra zeros`);
        assert.ok(Math.abs(got.l1Removed - removed) <= 1e-9 * Math.max(1, l1) && Math.abs(got.l1Total - l1) <= 1e-9 * Math.max(1, l1), 'L1 sums');
      }
    }
  }
});
