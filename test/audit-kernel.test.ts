/**
 * The audit's WebAssembly zero-bits kernel (src/audit/zero-bits-wasm.ts): its bits equal the
 * JavaScript scanner's, analyzeZeros with its bits and counts equals analyzeZeros without (random
 * tensors of every kernel width, odd shapes, custom block shapes and N:M patterns, real models),
 * and PagedFile reads a range into a given array.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ZeroBitsKernel, zeroBitsModuleBytes } from '../src/audit/zero-bits-wasm.js';
import { analyzeZeros, createZeroScanner, type AnalysisOptions, type DenseWeight } from '../src/sparsity/analysis.js';
import { openModel } from '../src/index.js';
import { PagedFile } from '../src/io/paged.js';
import { mulberry32 } from '../src/random.js';
import { mediapipeModels, sampleModels, tempDir } from './helpers.js';

const kernel = ZeroBitsKernel.create();

test('the module is valid WebAssembly and Node 20 runs it; inputs over MAX_INPUT are refused, not a crash', () => {
  assert.ok(WebAssembly.validate(zeroBitsModuleBytes()));
  assert.ok(kernel, 'WebAssembly SIMD is available');
  assert.equal(kernel.input(ZeroBitsKernel.MAX_INPUT + 1), null);
  assert.ok(kernel.input(1000));
});

type Ctor = Float32Array | Int8Array | Uint8Array | Uint16Array | Int32Array;
const KINDS: Array<{ dtype: DenseWeight['dtype']; make: (n: number) => Ctor; nonzero: (r: () => number) => number; zero: (r: () => number) => number }> = [
  // -0 is a zero under the numeric rule: half the float zeros are -0.
  { dtype: 'float32', make: (n) => new Float32Array(n), nonzero: (r) => r() - 0.5 || 1, zero: (r) => (r() < 0.5 ? -0 : 0) },
  { dtype: 'float16', make: (n) => new Uint16Array(n), nonzero: (r) => 0x3c00 + Math.floor(r() * 100), zero: (r) => (r() < 0.5 ? 0x8000 : 0) },
  { dtype: 'int8', make: (n) => new Int8Array(n), nonzero: (r) => 1 + Math.floor(r() * 100), zero: () => 0 },
  { dtype: 'uint8', make: (n) => new Uint8Array(n), nonzero: (r) => 1 + Math.floor(r() * 200), zero: () => 0 },
  { dtype: 'int32', make: (n) => new Int32Array(n), nonzero: (r) => (r() < 0.5 ? -1 : 1) * (1 + Math.floor(r() * 1e6)), zero: () => 0 },
];
const SHAPES = [[64, 64], [16, 48], [3, 5], [1000], [8, 4, 6], [32, 2, 2, 8], [256, 64], [7, 96], [16, 1], [1, 1], [33, 31], [5, 2, 3], [4, 4192], [16, 160], [32, 32], [48, 2048]];
const OPTIONS: AnalysisOptions[] = [
  {},
  { blockShapes: [[2, 2], [3, 1], [1, 3], [1, 4]], nmPatterns: [[1, 2], [0, 4], [3, 8], [2, 4]] },
  { blockShapes: [[2, 1], [4, 2], [8, 8]], nmPatterns: [[0, 2], [3, 4], [7, 8]] },
  { nmPatterns: [[1, 16], [4, 32]] },
];

/** analyzeZeros through the kernel: bytes copied into its input area, bits and counts from it. */
function viaKernel(weight: DenseWeight, options: AnalysisOptions): ReturnType<typeof analyzeZeros> {
  const k = kernel!;
  const v = weight.values;
  const input = k.input(v.byteLength)!;
  input.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  const w = { ...weight, values: input };
  const t = createZeroScanner(w, options.rowAxis ?? 0).flatZeroTest();
  assert.ok(t, 'row-axis-0 weights of 1, 2 and 4 bytes take the flat kernel');
  const count = weight.shape.reduce((a, b) => a * b, 1);
  return analyzeZeros(w, { ...options, nonzeroBits: k.bits(count, t.width, t.mask, t.ref), bitStats: k });
}

test('bits and analyses from the kernel equal the JavaScript ones (random tensors)', () => {
  const random = mulberry32(0x5eed);
  let runs = 0;
  for (const kind of KINDS) {
    for (const shape of SHAPES) {
      for (const density of [0, 0.05, 0.3, 0.8, 1]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const a = kind.make(n);
        for (let i = 0; i < n; i++) a[i] = random() < density ? kind.nonzero(random) : kind.zero(random);
        const weight: DenseWeight = { values: a, dtype: kind.dtype, shape };
        // The bits themselves, against the scanner's flat bit row.
        const k = kernel!;
        k.input(a.byteLength)!.set(new Uint8Array(a.buffer));
        const t = createZeroScanner(weight).flatZeroTest()!;
        const bits = k.bits(n, t.width, t.mask, t.ref);
        const expected = new Int32Array(Math.ceil(n / 32));
        createZeroScanner({ ...weight, shape: [n] }).rowBits(0, expected);
        assert.deepEqual(Array.from(bits), Array.from(expected), `${kind.dtype} [${shape}] bits`);
        for (const options of OPTIONS) {
          assert.deepEqual(viaKernel(weight, options), analyzeZeros(weight, options), `${kind.dtype} [${shape}] ${density} ${JSON.stringify(options)}`);
          runs++;
        }
      }
    }
  }
  assert.ok(runs > 1000);
});

test('per-tensor zero points: the kernel compares with the zero point', () => {
  const random = mulberry32(7);
  for (const zeroPoint of [0, 3, -128, 127]) {
    const a = new Int8Array(40 * 24);
    for (let i = 0; i < a.length; i++) a[i] = random() < 0.7 ? zeroPoint : Math.floor(random() * 256) - 128;
    const weight: DenseWeight = { values: a, dtype: 'int8', shape: [40, 24], quantization: { zeroPoint } };
    assert.deepEqual(viaKernel(weight, {}), analyzeZeros(weight), `zero point ${zeroPoint}`);
  }
  // Per-channel zero points and row axis 1 are not flat: the caller falls back to the scanner.
  const perChannel: DenseWeight = { values: new Int8Array(12), dtype: 'int8', shape: [3, 4], quantization: { zeroPoint: [1, 2, 3], axis: 0 } };
  assert.equal(createZeroScanner(perChannel).flatZeroTest(), null);
  assert.equal(createZeroScanner({ values: new Float32Array(12), dtype: 'float32', shape: [3, 4] }, 1).flatZeroTest(), null);
});

test('real models: every weight analysed through the kernel equals the JavaScript analysis', () => {
  const files = [...sampleModels().filter((f) => f.endsWith('.tflite')), ...mediapipeModels().slice(0, 3)];
  assert.ok(files.length > 0);
  let weights = 0;
  for (const file of files) {
    const { model } = openModel(file);
    for (const w of model.weights) {
      let weight: DenseWeight;
      try {
        weight = { values: w.denseBytes(), dtype: w.dtype, shape: w.shape, ...(w.quantization ? { quantization: { zeroPoint: w.quantization.zeroPoint, axis: w.quantization.axis } } : {}) };
        if (!createZeroScanner(weight).flatZeroTest() || w.shape.reduce((a, b) => a * b, 1) === 0) continue;
      } catch { continue; }
      assert.deepEqual(viaKernel(weight, {}), analyzeZeros(weight), `${path.basename(file)} ${w.name}`);
      weights++;
    }
  }
  assert.ok(weights > 20, `${weights} weights compared`);
});

test('PagedFile.readNextRangeInto: the next range of that length lands in the given array, once', () => {
  const dir = tempDir('paged-into');
  try {
    const file = path.join(dir, 'f.bin');
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 255);
    fs.writeFileSync(file, bytes);
    const paged = new PagedFile(fs.openSync(file, 'r'), bytes.length, file);
    const into = new Uint8Array(100);
    paged.readNextRangeInto(into);
    const other = paged.readRange(0, 50); // another length: a new array, the target stays armed
    assert.notEqual(other.buffer, into.buffer);
    const got = paged.readRange(200, 100);
    assert.equal(got, into);
    assert.deepEqual(Array.from(got), Array.from(bytes.subarray(200, 300)));
    assert.notEqual(paged.readRange(300, 100), into, 'used once');
    paged.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bits computed piece by piece while the input arrives equal the bits computed at once', () => {
  const random = mulberry32(99);
  const k = kernel!;
  for (const [width, n] of [[4, 10_000], [2, 7_777], [1, 40_001], [4, 32]] as const) {
    const bytes = Uint8Array.from({ length: n * width }, () => (random() < 0.7 ? 0 : 1 + Math.floor(random() * 255)));
    const mask = width === 4 ? 0x7fffffff : -1;
    k.input(bytes.length)!.set(bytes);
    const once = Array.from(k.bits(n, width, mask, 0));
    const input = k.input(bytes.length)!;
    // Pieces of uneven sizes, as reads of a file may return them; then the rest at the end.
    let done = 0;
    while (done < bytes.length) {
      const next = Math.min(bytes.length, done + 1 + Math.floor(random() * 3000));
      input.set(bytes.subarray(done, next), done);
      done = next;
      k.bitsUpTo(done, width, mask, 0);
    }
    assert.deepEqual(Array.from(k.bits(n, width, mask, 0)), once, `width ${width}`);
    // A different zero test than the pieces used: everything is recomputed.
    k.input(bytes.length)!.set(bytes);
    k.bitsUpTo(bytes.length, width, 0, 0);
    assert.deepEqual(Array.from(k.bits(n, width, mask, 0)), once, `width ${width}, other test`);
  }
});
