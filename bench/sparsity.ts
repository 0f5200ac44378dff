/**
 * Benchmark: zero analysis, BCSR encode and decode of a float32 weight with 80% random zeros,
 * each as a ratio to a plain read pass (sum over the same Float32Array) in the same process.
 * Targets: analysis <= 2x, encode and decode <= 4x. Times are the best of `repeats` runs.
 * Also reported: 1x4 BCSR and bitmap on the same data (80% random zeros leave 59% of the 1x4
 * blocks nonzero: a poor fit for 1x4), and 1x4 BCSR on the array re-pruned in 1x4 blocks.
 */
import { analyzeZeros } from '../src/sparsity/analysis.js';
import { decodeSparse, encodeSparse } from '../src/sparsity/codecs.js';
import { mulberry32 } from '../src/random.js';

const ZERO_SHARE = 0.8;
const COLS = 4096;

/** Seeded generator (mulberry32): the same data on every run. */

function plainRead(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum;
}

/** Copy of the dense bytes into a fresh buffer (allocation included, as the codecs allocate). */
function memcpy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

function best(repeats: number, fn: () => unknown): number {
  let min = Infinity;
  for (let i = 0; i < repeats; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = performance.now();
    fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

function checkRoundTrip(values: Float32Array, decoded: Uint8Array): void {
  const original = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const back = new Uint32Array(decoded.buffer, decoded.byteOffset, decoded.byteLength >>> 2);
  if (back.length !== original.length) throw new Error('benchSparsity: decoded length differs');
  for (let i = 0; i < original.length; i++) {
    if (back[i] !== original[i]) throw new Error(`benchSparsity: decoded element ${i} differs`);
  }
}

export async function benchSparsity(sizeBytes: number, repeats = 3): Promise<Record<string, number>> {
  let count = Math.max(COLS, Math.floor(sizeBytes / 4 / COLS) * COLS);
  const rows = count / COLS;
  count = rows * COLS;
  const values = new Float32Array(count);
  const random = mulberry32(0x5eed);
  for (let i = 0; i < count; i++) values[i] = random() < ZERO_SHARE ? 0 : random() - 0.5;
  const weight = { values, dtype: 'float32' as const, shape: [rows, COLS] };

  let sink = 0;
  let readMs = best(repeats, () => { sink += plainRead(values); });
  const dense = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let memcpyMs = best(repeats, () => { sink += memcpy(dense).length; });
  const analysisMs = best(repeats, () => { sink += analyzeZeros(weight).zeros; });
  let csr: Uint8Array = new Uint8Array(0);
  const encodeMs = best(repeats, () => { csr = encodeSparse(weight, { codec: 'bcsr' }); });
  let decoded: Uint8Array = new Uint8Array(0);
  const decodeMs = best(repeats, () => { decoded = decodeSparse(csr).values; });
  let block: Uint8Array = new Uint8Array(0);
  const encode1x4Ms = best(repeats, () => { block = encodeSparse(weight, { codec: 'bcsr', blockShape: [1, 4] }); });
  const decode1x4Ms = best(repeats, () => { sink += decodeSparse(block).values.length; });
  let bitmap: Uint8Array = new Uint8Array(0);
  const bitmapEncodeMs = best(repeats, () => { bitmap = encodeSparse(weight, { codec: 'bitmap' }); });
  const bitmapDecodeMs = best(repeats, () => { sink += decodeSparse(bitmap).values.length; });

  // The round trip must be exact, or the timings mean nothing.
  checkRoundTrip(values, decoded);

  // The same array pruned in 1x4 blocks (80% of the blocks zero), the structure 1x4 BCSR is for.
  for (let b = 0; b < count; b += 4) {
    const keep = random() >= ZERO_SHARE;
    for (let k = 0; k < 4; k++) values[b + k] = keep ? random() - 0.5 || 0.25 : 0;
  }
  let pruned: Uint8Array = new Uint8Array(0);
  const prunedEncodeMs = best(repeats, () => { pruned = encodeSparse(weight, { codec: 'bcsr', blockShape: [1, 4] }); });
  const prunedDecodeMs = best(repeats, () => { decoded = decodeSparse(pruned).values; });
  checkRoundTrip(values, decoded);
  // The baseline again at the end: the best read of both, so load changes during the run
  // cannot flatter the ratios.
  readMs = Math.min(readMs, best(repeats, () => { sink += plainRead(values); }));
  memcpyMs = Math.min(memcpyMs, best(repeats, () => { sink += memcpy(dense).length; }));
  if (Number.isNaN(sink)) throw new Error('unreachable');


  return {
    sizeBytes: count * 4,
    zeroShare: ZERO_SHARE,
    readMs,
    memcpyMs,
    analysisMs,
    bcsrEncodeMs: encodeMs,
    bcsrDecodeMs: decodeMs,
    bcsr1x4EncodeMs: encode1x4Ms,
    bcsr1x4DecodeMs: decode1x4Ms,
    bitmapEncodeMs,
    bitmapDecodeMs,
    analysisRatio: analysisMs / readMs,
    bcsrEncodeRatio: encodeMs / readMs,
    bcsrDecodeRatio: decodeMs / readMs,
    bcsr1x4EncodeRatio: encode1x4Ms / readMs,
    bcsr1x4DecodeRatio: decode1x4Ms / readMs,
    bitmapEncodeRatio: bitmapEncodeMs / readMs,
    bitmapDecodeRatio: bitmapDecodeMs / readMs,
    bcsrEncodeMemcpyRatio: encodeMs / memcpyMs,
    bcsrDecodeMemcpyRatio: decodeMs / memcpyMs,
    bcsr1x4EncodeMemcpyRatio: encode1x4Ms / memcpyMs,
    bcsr1x4DecodeMemcpyRatio: decode1x4Ms / memcpyMs,
    bitmapEncodeMemcpyRatio: bitmapEncodeMs / memcpyMs,
    bitmapDecodeMemcpyRatio: bitmapDecodeMs / memcpyMs,
    bcsr1x4PrunedEncodeMs: prunedEncodeMs,
    bcsr1x4PrunedDecodeMs: prunedDecodeMs,
    bcsr1x4PrunedEncodeRatio: prunedEncodeMs / readMs,
    bcsr1x4PrunedDecodeRatio: prunedDecodeMs / readMs,
    bcsr1x4PrunedEncodeMemcpyRatio: prunedEncodeMs / memcpyMs,
    bcsr1x4PrunedDecodeMemcpyRatio: prunedDecodeMs / memcpyMs,
    bcsrBytesRatio: csr.length / (count * 4),
    bcsr1x4BytesRatio: block.length / (count * 4),
    bitmapBytesRatio: bitmap.length / (count * 4),
    bcsr1x4PrunedBytesRatio: pruned.length / (count * 4),
  };
}
