/**
 * One weight of the sparse TFLite planner, without the graph: its zero pattern, the candidate
 * layouts and their exact sizes (analyzeWeight), and the checked encoding of the chosen layout
 * (encodeSparseWeight). Pure functions of the weight's bytes and a small spec, so they run in
 * worker threads as well as in-process (the `tasks` registry at the end); results are the same
 * either way. sparse-plan.ts decides per weight from these candidates; sparse-write.ts applies.
 */
import { PrunepackError } from '../../src/errors.js';
import { typedView, type DType, type NumericArray } from '../../src/model/dtype.js';
import { denseFromSparsity, firstSparseMismatch, sparsityFromDense, type LevelFormat } from '../../src/sparsity/format-converter.js';
import type { SparsityParams } from '../../src/sparsity/types.js';
import { verifySparsity } from '../../src/sparsity/verify-sparsity.js';
import type { TaskInput, TaskRegistry } from '../../src/parallel/types.js';
import type { BlockChoice, SparseLayout, SparseRoute } from './sparse-plan.js';
import { blockMask, makeZeroMask, maxCoordinates, prefixCounts, type ZeroMask } from './zero-mask.js';

// ---------------------------------------------------------------------------------------------
// Flatbuffer cost estimates (bytes). Measured on the writer's output: a DENSE level table with its
// slot in dim_metadata; a SPARSE_CSR level table with two index-vector union tables; the
// SparsityParameters table with its vectors' length words; a DENSIFY operator plus its output
// tensor (name and shape added separately).

const DENSE_LEVEL_BYTES = 12;
const SPARSE_LEVEL_BYTES = 36;
const SPARSITY_BASE_BYTES = 32;
const PER_LEVEL_BYTES = 4;
const DENSIFY_OP_BYTES = 52;
const DENSIFY_TENSOR_BYTES = 28;

function indexWidth(max: number): number {
  return max <= 0xff ? 1 : max <= 0xffff ? 2 : 4;
}

function vectorBytes(count: number, width: number): number {
  return 4 + Math.ceil((count * width) / 4) * 4;
}

/** Estimated bytes of the DENSIFY operator and output tensor added for one weight. */
export function densifyOverheadBytes(shape: readonly number[], outputName: string): number {
  return DENSIFY_OP_BYTES + DENSIFY_TENSOR_BYTES + 4 * shape.length + Math.ceil((outputName.length + 1) / 4) * 4;
}

/** Name of the DENSIFY output tensor for tensor `t` (short: names are stored in the file). */
export function densifiedName(t: number): string {
  return `densify/${t}`;
}

// ---------------------------------------------------------------------------------------------
// Layout search

export interface Candidate {
  layout: SparseLayout;
  /** Stored values, index vectors and sparsity tables. */
  bytes: number;
  values: number;
  description: string;
}

interface Block { dim: number; size: number }

/** Cost of one level-format choice, from the prefix counts of its traversal. */
function layoutCost(m: ZeroMask, perm: readonly number[], sparse: readonly boolean[], counts: Float64Array,
  elementBytes: number, block: Block | null): { bytes: number; values: number; widths: string[] } {
  const levels = perm.length + (block ? 1 : 0);
  let bytes = SPARSITY_BASE_BYTES + PER_LEVEL_BYTES * levels + (block ? 4 : 0);
  let positions = 1;
  const widths: string[] = [];
  for (let l = 0; l < perm.length; l++) {
    const size = m.shape[perm[l]!]!;
    if (!sparse[l]) {
      positions *= size;
      bytes += DENSE_LEVEL_BYTES;
      continue;
    }
    const stored = counts[l]!;
    const segmentWidth = indexWidth(stored);
    const index = indexWidth(Math.max(0, maxCoordinates(m)[perm[l]!]!));
    bytes += SPARSE_LEVEL_BYTES + vectorBytes(positions + 1, segmentWidth) + vectorBytes(stored, index);
    widths.push(`${index === 1 ? 'u8' : index === 2 ? 'u16' : 'i32'}`);
    positions = stored;
  }
  if (block) { positions *= block.size; bytes += DENSE_LEVEL_BYTES; }
  return { bytes: bytes + positions * elementBytes, values: positions, widths };
}

function permutations(items: number[]): number[][] {
  if (items.length <= 1) return [items];
  const out: number[][] = [];
  items.forEach((x, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

/** Traversal orders to try: every order of the dimensions larger than 1 (size-1 ones go first). */
function traversalOrders(shape: readonly number[], elementCount: number): number[][] {
  const ones = shape.flatMap((d, i) => (d === 1 ? [i] : []));
  const active = shape.flatMap((d, i) => (d > 1 ? [i] : []));
  let orders: number[][];
  // Every order up to 5 dimensions (120); beyond that, or for very large tensors, a few.
  if (active.length <= 5 && (active.length <= 3 || elementCount <= 4_000_000)) {
    orders = permutations(active);
  } else {
    const seen = new Set<string>();
    orders = [];
    const add = (o: number[]) => { const k = o.join(); if (!seen.has(k)) { seen.add(k); orders.push(o); } };
    add(active);
    add([...active].reverse());
    for (const d of active) {
      add([...active.filter((x) => x !== d), d]);
      add([d, ...active.filter((x) => x !== d)]);
    }
  }
  return orders.map((o) => [...ones, ...o]);
}

function describeLayout(prefix: string, perm: readonly number[], sparse: readonly boolean[], widths: string[], block: Block | null): string {
  const levels = perm.map((d, l) => `${d}${sparse[l] ? 's' : 'd'}`).join(',');
  const blockText = block ? ` block ${block.size}@${block.dim}` : '';
  const unique = [...new Set(widths)].join('/');
  return `${prefix} ${levels}${blockText}${unique ? ` ${unique}` : ''}`;
}

function toLayout(n: number, perm: readonly number[], sparse: readonly boolean[], block: Block | null): SparseLayout {
  const dimFormats = new Array<LevelFormat>(n).fill('DENSE');
  perm.forEach((d, l) => { if (sparse[l]) dimFormats[d] = 'SPARSE_CSR'; });
  return {
    traversalOrder: block ? [...perm, n] : [...perm],
    blockMap: block ? [block.dim] : [],
    blockSize: block ? [block.size] : [],
    dimFormats: block ? [...dimFormats, 'DENSE'] : dimFormats,
  };
}

/** Smallest layout over the given traversal orders and every DENSE/SPARSE_CSR level choice. */
function searchLayouts(m: ZeroMask, orders: number[][], elementBytes: number, block: Block | null, prefix: string): { best: Candidate | null; tried: number } {
  let best: Candidate | null = null;
  let tried = 0;
  const n = m.shape.length;
  for (const perm of orders) {
    const counts = prefixCounts(m, perm);
    const choosable = perm.map((d) => m.shape[d]! > 1);
    const free = choosable.flatMap((c, l) => (c ? [l] : []));
    for (let bits = 1; bits < 1 << free.length; bits++) {
      const sparse = new Array<boolean>(n).fill(false);
      free.forEach((l, i) => { if (bits & (1 << i)) sparse[l] = true; });
      const cost = layoutCost(m, perm, sparse, counts, elementBytes, block);
      tried++;
      if (cost.values === 0) continue; // an empty buffer would read as a non-constant tensor
      if (!best || cost.bytes < best.bytes) {
        best = { layout: toLayout(n, perm, sparse, block), bytes: cost.bytes, values: cost.values, description: describeLayout(prefix, perm, sparse, cost.widths, block) };
      }
    }
  }
  return { best, tried };
}

/** Best layout read through DENSIFY: every traversal order, level choice and allowed block. */
function bestDensifyLayout(m: ZeroMask, elementBytes: number, choice: BlockChoice, prefix: string): { best: Candidate | null; tried: number } {
  const elementCount = m.mask.length;
  const orders = traversalOrders(m.shape, elementCount);
  let { best, tried } = searchLayouts(m, orders, elementBytes, null, prefix);
  const n = m.shape.length;
  const blocks: Block[] = [];
  if (choice === 'auto') {
    for (let d = 0; d < n; d++) for (const size of [2, 4, 8, 16]) if (m.shape[d]! > size && m.shape[d]! % size === 0) blocks.push({ dim: d, size });
  } else if (choice === '1x4' || choice === '1x16') {
    const size = choice === '1x4' ? 4 : 16;
    if (m.shape[n - 1]! % size === 0 && m.shape[n - 1]! > size) blocks.push({ dim: n - 1, size });
  }
  // Smallest block size per dimension whose values alone were no better than the best layout.
  // Larger multiples of it store at least as many values (a nonzero block of 2k holds at most two
  // nonzero blocks of k), and the best only gets smaller: they are skipped without their mask.
  const pruned = new Map<number, number>();
  for (const block of blocks) {
    const smaller = pruned.get(block.dim);
    if (smaller !== undefined && block.size % smaller === 0) continue;
    const reduced = blockMask(m, block.dim, block.size);
    // Values alone of the blocked layout: no better than the best so far means no gain.
    if (best && reduced.nonzeros * block.size * elementBytes >= best.bytes) {
      if (smaller === undefined) pruned.set(block.dim, block.size);
      continue;
    }
    const blocked = searchLayouts(reduced, traversalOrders(reduced.shape, reduced.mask.length), elementBytes, block, prefix);
    tried += blocked.tried;
    if (blocked.best && (!best || blocked.best.bytes < best.bytes)) best = blocked.best;
  }
  return { best, tried };
}

/** The fixed layouts FULLY_CONNECTED reads natively (FORMATS.md). */
function nativeLayouts(m: ZeroMask, dtype: DType, elementBytes: number, choice: BlockChoice): Candidate[] {
  const out: Candidate[] = [];
  const [, cols] = m.shape as [number, number];
  const add = (mask: ZeroMask, block: Block | null, description: string) => {
    const counts = prefixCounts(mask, [0, 1]);
    const cost = layoutCost(mask, [0, 1], [false, true], counts, elementBytes, block);
    if (cost.values === 0) return;
    out.push({ layout: toLayout(2, [0, 1], [false, true], block), bytes: cost.bytes, values: cost.values, description });
  };
  if (dtype === 'float32') {
    if (choice !== '1x4') add(m, null, 'FC v8 CSR');
    if ((choice === 'auto' || choice === '1x4') && cols % 4 === 0) add(blockMask(m, 1, 4), { dim: 1, size: 4 }, 'FC v8 block 1x4');
    if (choice === '1x4' && out.length === 0) add(m, null, 'FC v8 CSR');
  } else if (dtype === 'int8') {
    if ((choice === 'auto' || choice === '1x16') && cols % 16 === 0) add(blockMask(m, 1, 16), { dim: 1, size: 16 }, 'FC v8 block 1x16');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Zeros

/** Memory byte order (the word-wide mask writes assume little-endian; others take the byte loop). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Negative zeros seen by the last maskFloat32Words call. */
let wordNegativeZeros = 0;

/**
 * The float32 mask four elements per word (`m`: the mask's words; the mask is fresh, byteOffset
 * 0), summed like countOnes; the byte order inside the word follows the platform's (little
 * endian only). Returns the nonzero count, the negative zeros in wordNegativeZeros.
 *
 * A function of its own with nothing after the loop but a return: V8 compiles a long loop
 * on-stack (OSR) while the code after it has never run, and code there without type feedback
 * (the tail loop, the result object) made the cached OSR code bail out at the end of every call
 * in worker threads (64 deopts per 64 weights with --trace-deopt; removing them did not change
 * the timings measurably: the slowdown in workers then was the detached-buffer one, see
 * src/parallel/worker.ts).
 */
function maskFloat32Words(v: Int32Array, m: Int32Array, words: number): number {
  let nonzeros = 0;
  let negativeZeros = 0;
  for (let w = 0, i = 0; w < words; w++, i += 4) {
    const x0 = v[i]!;
    const x1 = v[i + 1]!;
    const x2 = v[i + 2]!;
    const x3 = v[i + 3]!;
    const word = ((-(x0 & 0x7fffffff)) >>> 31) | (((-(x1 & 0x7fffffff)) >>> 31) << 8)
      | (((-(x2 & 0x7fffffff)) >>> 31) << 16) | (((-(x3 & 0x7fffffff)) >>> 31) << 24);
    m[w] = word;
    nonzeros += Math.imul(word, 0x01010101) >>> 24;
    negativeZeros += (x0 === -0x80000000 ? 1 : 0) + (x1 === -0x80000000 ? 1 : 0) + (x2 === -0x80000000 ? 1 : 0) + (x3 === -0x80000000 ? 1 : 0);
  }
  wordNegativeZeros = negativeZeros;
  return nonzeros;
}

/** Nonzero mask (numeric rule), its nonzero count and the -0.0 count of a dense weight. */
function nonzeroMask(dtype: DType, bytes: Uint8Array, count: number): { mask: Uint8Array; nonzeros: number; negativeZeros: number } {
  const mask = new Uint8Array(count);
  let nonzeros = 0;
  let negativeZeros = 0;
  const aligned = (width: number) => (bytes.byteOffset % width === 0 ? bytes : bytes.slice());
  // One loop per element type, each monomorphic; Int32 rather than Uint32 views keep the bit
  // patterns in V8's small-integer range. Branch-free: (-(bits without sign)) >>> 31 is 1 for a
  // nonzero (pruned weights put zeros at random positions, where a branch mispredicts often).
  if (dtype === 'float32') {
    const b = aligned(4);
    const v = new Int32Array(b.buffer, b.byteOffset, count);
    const words = LITTLE_ENDIAN ? count >>> 2 : 0;
    nonzeros = maskFloat32Words(v, new Int32Array(mask.buffer, 0, words), words);
    negativeZeros = wordNegativeZeros;
    for (let i = words * 4; i < count; i++) {
      const x = v[i]!;
      const nonzero = (-(x & 0x7fffffff)) >>> 31;
      mask[i] = nonzero;
      nonzeros += nonzero;
      negativeZeros += x === -0x80000000 ? 1 : 0;
    }
  } else if (dtype === 'float16') {
    const b = aligned(2);
    const v = new Uint16Array(b.buffer, b.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const x = v[i]!;
      const nonzero = (-(x & 0x7fff)) >>> 31;
      mask[i] = nonzero;
      nonzeros += nonzero;
      negativeZeros += x === 0x8000 ? 1 : 0;
    }
  } else {
    for (let i = 0; i < count; i++) {
      const nonzero = (-bytes[i]!) >>> 31;
      mask[i] = nonzero;
      nonzeros += nonzero;
    }
  }
  return { mask, nonzeros, negativeZeros };
}

/** Zero share of an int8 weight against its (per-tensor or per-channel) zero points. */
function int8ZeroShare(bytes: Uint8Array, shape: readonly number[], points: readonly number[], axis: number): number {
  const v = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  if (points.length <= 1) {
    const zp = points[0] ?? 0;
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === zp) zeros++;
    return v.length ? zeros / v.length : 0;
  }
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  const channels = shape[axis] ?? 1;
  let zeros = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === points[Math.floor(i / inner) % channels]) zeros++;
  return v.length ? zeros / v.length : 0;
}

// ---------------------------------------------------------------------------------------------
// Analysis of one weight

/** What the analysis needs to know about a weight besides its bytes (plain data: crosses threads). */
export interface WeightSpec {
  dtype: DType;
  shape: number[];
  /** int8: zero points (per tensor, or per channel along quantizedDimension). */
  zeroPoints: number[];
  quantizedDimension: number;
  /** Candidates are searched only when the weight may become sparse: not kept dense by the graph or the caller. */
  search: boolean;
  minSparsity: number;
  block: BlockChoice;
  /** FULLY_CONNECTED reads it natively (every reader is operand 1 of a suitable FULLY_CONNECTED). */
  native: boolean;
  /** Prefix of the DENSIFY description ("DENSIFY" or "DENSIFY>DEQUANTIZE"). */
  densifyPrefix: string;
  /** Estimated bytes of the DENSIFY operator and its output tensor. */
  densifyOverhead: number;
}

export interface WeightCandidate extends Candidate {
  route: Exclude<SparseRoute, 'dense'>;
  /** Bytes including the DENSIFY operator and tensor. */
  total: number;
}

export interface WeightAnalysis {
  zeroShare: number;
  nonzeros: number;
  negativeZeros: number;
  /** Sorted by total bytes (stable: native before DENSIFY on ties); empty when not searched. */
  candidates: WeightCandidate[];
  /** DENSIFY layouts tried. */
  tried: number;
}

const ELEMENT_BYTES: Partial<Record<DType, number>> = { float32: 4, float16: 2, int8: 1 };

/**
 * The zeros of one float32 / float16 / int8 weight and, when `spec.search` and it has enough of
 * them, every candidate layout with its exact size.
 */
export function analyzeWeight(bytes: Uint8Array, spec: WeightSpec): WeightAnalysis {
  const { dtype, shape } = spec;
  const count = shape.reduce((a, b) => a * b, 1);
  const { mask, nonzeros, negativeZeros } = nonzeroMask(dtype, bytes, count);
  const zeroShare = dtype === 'int8' ? int8ZeroShare(bytes, shape, spec.zeroPoints, spec.quantizedDimension) : 1 - nonzeros / count;
  const candidates: WeightCandidate[] = [];
  let tried = 0;
  if (spec.search && zeroShare >= spec.minSparsity && nonzeros > 0) {
    const elementBytes = ELEMENT_BYTES[dtype]!;
    const m = makeZeroMask(mask, shape, nonzeros);
    if (spec.native) {
      for (const c of nativeLayouts(m, dtype, elementBytes, spec.block)) candidates.push({ ...c, route: 'native', total: c.bytes });
    }
    const densify = bestDensifyLayout(m, elementBytes, spec.block, spec.densifyPrefix);
    tried = densify.tried;
    if (densify.best) candidates.push({ ...densify.best, route: 'densify', total: densify.best.bytes + spec.densifyOverhead });
    candidates.sort((a, b) => a.total - b.total);
  }
  return { zeroShare, nonzeros, negativeZeros, candidates, tried };
}

// ---------------------------------------------------------------------------------------------
// Encoding one weight

export interface WeightEncoding {
  params: SparsityParams;
  /** The sparse buffer's bytes. */
  stored: Uint8Array;
}

/** Decode target reused between calls (one per thread): the check decodes every weight. */
let scratch = new ArrayBuffer(0);

/**
 * Encodes dense weight bytes in `layout`, then checks the result: sparsity verifier (sorted
 * indices, exact buffer size) and, unless `checkValues` is false, a decode that must give back
 * every value (a -0.0 may come back as +0.0: both are zero, and TFLite stores no zeros). Callers
 * that compare the written file with the dense weights anyway (`convert`'s read-back) pass false:
 * the values are then checked once, in the read-back, not twice.
 */
export function encodeSparseWeight(dense: Uint8Array, dtype: DType, shape: readonly number[], layout: SparseLayout, where: string,
  checkValues = true): WeightEncoding {
  const elementBytes = ELEMENT_BYTES[dtype];
  const values = typedView(dtype, dense);
  if (!elementBytes || !values) {
    throw new PrunepackError('UNSUPPORTED', `sparse TFLite tensors of type ${dtype} are not written`, { format: 'tflite', location: where, expected: 'float32, float16 or int8' });
  }
  const encoding = sparsityFromDense(values, shape, layout.traversalOrder, layout.blockMap, layout.blockSize, layout.dimFormats,
    dtype === 'float16' ? 'float16' : undefined);
  const stored = new Uint8Array(encoding.values.buffer, encoding.values.byteOffset, encoding.values.byteLength);
  if (stored.length === 0) throw new Error(`internal: empty sparse buffer for ${where}`);
  verifySparsity(encoding.params, shape, stored.length, elementBytes, { requireSortedIndices: true });
  if (!checkValues) return { params: encoding.params, stored };
  // The common layouts are checked against the dense values in one pass, without decoding; the
  // others (and a mismatch, for its message) are decoded and compared.
  const zeroTest = dtype === 'float16' ? 'float16' : undefined;
  if (firstSparseMismatch(encoding.values, shape, encoding.params, values, zeroTest) === -1) return { params: encoding.params, stored };
  if (scratch.byteLength < dense.length) scratch = new ArrayBuffer(dense.length);
  const decoded = denseFromSparsity(encoding.values, shape, encoding.params, typedView(dtype, new Uint8Array(scratch, 0, dense.length)) ?? undefined);
  const mismatch = firstMismatch(values, decoded, dtype);
  if (mismatch >= 0) {
    throw new PrunepackError('VERIFY_FAILED', 'sparse encoding does not decode to the dense values', {
      format: 'tflite', location: `${where} element ${mismatch}`, expected: String(values[mismatch]), found: String(decoded[mismatch]),
    });
  }
  return { params: encoding.params, stored };
}

/** First index where two decodings differ, other than a zero of either sign; -1 when none. */
function firstMismatch(a: NumericArray, b: NumericArray, dtype: DType): number {
  if (a.length !== b.length) return 0;
  if (dtype === 'float32') {
    const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && ((x[i]! | y[i]!) & 0x7fffffff) !== 0) return i;
    return -1;
  }
  const x = a as Uint16Array | Int8Array;
  const y = b as Uint16Array | Int8Array;
  const zeroMask = dtype === 'float16' ? 0x7fff : 0xff;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && ((x[i]! | y[i]!) & zeroMask) !== 0) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Worker tasks (src/parallel): the same two functions, one weight per task.

export const ANALYZE_TASK = 'tflite-sparse/analyze';
export const ENCODE_TASK = 'tflite-sparse/encode';

export const tasks: TaskRegistry = {
  [ANALYZE_TASK]: ({ bytes, params }: TaskInput) => analyzeWeight(bytes[0]!, params as WeightSpec),
  [ENCODE_TASK]: ({ bytes, params }: TaskInput) => {
    const { dtype, shape, layout, where, checkValues } = params as { dtype: DType; shape: number[]; layout: SparseLayout; where: string; checkValues?: boolean };
    return encodeSparseWeight(bytes[0]!, dtype, shape, layout, where, checkValues ?? true);
  },
};
