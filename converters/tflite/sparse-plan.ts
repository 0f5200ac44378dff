/**
 * The sparse TFLite planner: for every constant weight of a dense TfliteDocument, which encoding
 * to write (dense, read natively by FULLY_CONNECTED, or through a DENSIFY operator), in which
 * layout, why, and what it costs. The plan is plain data; sparse-write.ts applies it.
 *
 * Layout search: a weight's zero pattern is reduced to a byte mask once; each traversal order
 * (and block shape) is then one pass over the mask that counts, per level, the distinct prefixes
 * holding a nonzero. From those counts the exact size of every DENSE / SPARSE_CSR level choice
 * follows arithmetically (values + index vectors at their narrowest width), plus an estimate of
 * the flatbuffer tables around them. See FORMATS.md for which layouts each consumer reads.
 */
import { BuiltinOperator } from '../../schemas/generated/tflite/tflite/builtin-operator.js';
import { BuiltinOptions } from '../../schemas/generated/tflite/tflite/builtin-options.js';
import { FullyConnectedOptionsT } from '../../schemas/generated/tflite/tflite/fully-connected-options.js';
import { FullyConnectedOptionsWeightsFormat } from '../../schemas/generated/tflite/tflite/fully-connected-options-weights-format.js';
import type { TensorT } from '../../schemas/generated/tflite/tflite/tensor.js';
import { TensorType } from '../../schemas/generated/tflite/tflite/tensor-type.js';
import { PrunepackError } from '../../src/errors.js';
import type { DType } from '../../src/model/dtype.js';
import type { LevelFormat } from '../../src/sparsity/format-converter.js';
import type { TfliteDocument } from './document.js';
import { operatorName, tensorDType } from './model-view.js';
import {
  DENSE_PREDICTION, DEFAULT_RUNTIME, OPTIMIZE_GOALS, analyzeXnnpackNchw, chooseCandidate, nativeEncodingOf, predictDensify, predictNative,
  runtimeProfile, type CostPrediction, type OptimizeGoal, type XnnpackCluster,
} from './latency.js';

export type BlockChoice = 'auto' | 'none' | '1x4' | '1x16';
export const BLOCK_CHOICES: readonly BlockChoice[] = ['auto', 'none', '1x4', '1x16'];

export interface SparsePlanOptions {
  /** Least share of zeros for a weight to be considered (default 0.3, as the official converter). */
  minSparsity?: number;
  /**
   * Block shapes the planner may use: 'auto' any (FC native 1x4 float / 1x16 int8, and blocks of
   * 2..16 along any dimension behind DENSIFY), 'none' no blocks, '1x4' / '1x16' only that block
   * along the last (input) dimension. Unblocked layouts are always allowed.
   */
  block?: BlockChoice;
  /** Tensor names to leave dense. */
  keepDense?: readonly string[];
  /**
   * What to optimize (latency.ts): 'size' the smallest file (the default of this API, and what it
   * always did), 'balanced' the smallest file not predicted slower than dense in `runtime` (the
   * command line's default), 'latency' the encodings predicted fastest in `runtime`.
   */
  optimize?: OptimizeGoal;
  /** Runtime whose measured cost profile drives 'balanced' / 'latency' (default 'litert'). */
  runtime?: string;
}

/** How a weight is written: unchanged, sparse read by FULLY_CONNECTED itself, or sparse + DENSIFY. */
export type SparseRoute = 'dense' | 'native' | 'densify';

/** A layout in the terms of TFLite's FormatConverter (and of `sparsityFromDense`). */
export interface SparseLayout {
  /** n + k entries: a permutation of the n dimensions, then the k block dimensions. */
  traversalOrder: number[];
  /** k entries: the dimension each block dimension subdivides. */
  blockMap: number[];
  /** k entries: block sizes. */
  blockSize: number[];
  /** Format of each ORIGINAL dimension (index = dimension, not level); block levels are DENSE. */
  dimFormats: LevelFormat[];
}

export interface SparsePlanEntry {
  /** Tensor name (as in the file). */
  tensor: string;
  subgraph: number;
  tensorIndex: number;
  dtype: DType;
  shape: number[];
  /** Readers, traced through DEQUANTIZE: "DEQUANTIZE>CONV_2D:1", several joined by ", ". */
  consumer: string;
  /** Share of numerically zero elements (int8: equal to the zero point). */
  zeroShare: number;
  route: SparseRoute;
  /** Short description of the encoding, e.g. "DENSIFY 0d,1d,2d,3s u8" or "FC v8 CSR". */
  encoding: string;
  reason: string;
  /** Bytes of the dense weight. */
  bytesBefore: number;
  /**
   * Bytes after: values and index vectors exactly, flatbuffer tables (sparsity parameters, and for
   * DENSIFY the operator and its output tensor) estimated. Equal to bytesBefore when dense.
   */
  bytesAfter: number;
  /** Layout to write (route 'native' or 'densify'). */
  layout?: SparseLayout;
  /** Values in the sparse buffer (zeros inside stored blocks included). */
  storedValues?: number;
  /** float16 weights feeding DEQUANTIZE: the chain is sparse -> DENSIFY -> DEQUANTIZE. */
  viaDequantize?: boolean;
  /** Operators reading the weight natively (route 'native'): they must be FULLY_CONNECTED v8. */
  nativeOperators?: number[];
  /** Stored -0.0 values that the sparse encoding turns into +0.0 (numerically equal). */
  negativeZeros?: number;
  /**
   * Predicted per-inference time of the weight's reader(s) with this encoding relative to dense,
   * in the plan's runtime (latency.ts); absent for dense weights.
   */
  cost?: CostPrediction;
}

export interface XnnpackReport {
  /** True when XNNPACK may switch to its fast sparse (NCHW) inference. */
  qualifies: boolean;
  /** 1x1 CONV_2D filters in the model, and how many of them are read through DENSIFY. */
  conv1x1Filters: number;
  conv1x1Densified: number;
  /** Zero share over all 1x1 CONV_2D filter elements (null when there are none). */
  conv1x1ZeroShare: number | null;
  /** FULLY_CONNECTED operators at version 8 (XNNPACK does not take them). */
  nativeFullyConnected: number;
  /**
   * The operators around the 1x1 convolutions fit XNNPACK's NCHW rules: at least one cluster from
   * an entry convolution to an exit operator (latency.ts, analyzeXnnpackNchw).
   */
  patternFits: boolean;
  /**
   * XNNPACK is expected to switch to sparse inference at load time: a float weight is read through
   * DENSIFY by a delegated operator, and a fitting cluster's 1x1 filters are more than 2/3 zeros.
   * (`qualifies` is the zeros threshold alone.)
   */
  expected: boolean;
  /** The fitting clusters (operator indices refer to the dense model). */
  clusters: XnnpackCluster[];
  /** When the pattern does not fit: the first operators that break it and why. */
  blockers: string[];
  /** One line: why it qualifies or not. */
  reason: string;
}

export interface SparsePlan {
  options: Required<Omit<SparsePlanOptions, 'keepDense'>> & { keepDense: string[] };
  entries: SparsePlanEntry[];
  xnnpack: XnnpackReport;
  totals: { bytesBefore: number; bytesAfter: number; sparseWeights: number; densifyOps: number; nativeOperators: number };
}

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
// Zero masks and prefix counts

interface ZeroMask {
  shape: number[];
  /** 1 where the element (or block) holds a nonzero. */
  mask: Uint8Array;
  nonzeros: number;
  /** Per dimension: largest coordinate holding a nonzero (-1 when none). */
  maxCoord: number[];
}

function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) { strides[d] = s; s *= shape[d]!; }
  return strides;
}

function maxCoordinates(mask: Uint8Array, shape: readonly number[]): number[] {
  const n = shape.length;
  const max = new Array<number>(n).fill(-1);
  const coord = new Int32Array(n);
  const last = shape[n - 1]!;
  for (let i = 0; i < mask.length; i += last) {
    let lastMax = -1;
    for (let j = 0; j < last; j++) if (mask[i + j]) lastMax = j;
    if (lastMax >= 0) {
      if (lastMax > max[n - 1]!) max[n - 1] = lastMax;
      for (let d = 0; d < n - 1; d++) if (coord[d]! > max[d]!) max[d] = coord[d]!;
    }
    for (let d = n - 2; d >= 0; d--) {
      if (++coord[d]! < shape[d]!) break;
      coord[d] = 0;
    }
  }
  return max;
}

function makeMask(mask: Uint8Array, shape: number[]): ZeroMask {
  let nonzeros = 0;
  for (let i = 0; i < mask.length; i++) nonzeros += mask[i]!;
  return { shape, mask, nonzeros, maxCoord: maxCoordinates(mask, shape) };
}

/** The mask of blocks of `size` along dimension `dim`: a block is nonzero when any element is. */
function blockMask(m: ZeroMask, dim: number, size: number): ZeroMask {
  const shape = [...m.shape];
  shape[dim] = shape[dim]! / size;
  let inner = 1;
  for (let d = dim + 1; d < m.shape.length; d++) inner *= m.shape[d]!;
  let outer = 1;
  for (let d = 0; d < dim; d++) outer *= m.shape[d]!;
  const blocks = shape[dim]!;
  const out = new Uint8Array(m.mask.length / size);
  const src = m.mask;
  for (let o = 0; o < outer; o++) {
    for (let b = 0; b < blocks; b++) {
      const dst = (o * blocks + b) * inner;
      for (let e = 0; e < size; e++) {
        const from = ((o * blocks + b) * size + e) * inner;
        for (let i = 0; i < inner; i++) out[dst + i]! |= src[from + i]!;
      }
    }
  }
  return makeMask(out, shape);
}

/**
 * For the traversal `perm` of the mask's dimensions: counts[l] = number of distinct prefixes
 * (coordinates of levels 0..l) under which a nonzero lies. One pass in traversal order.
 */
function prefixCounts(m: ZeroMask, perm: readonly number[]): Float64Array {
  const levels = perm.length;
  const strides = stridesOf(m.shape);
  const size = perm.map((d) => m.shape[d]!);
  const stride = perm.map((d) => strides[d]!);
  const counts = new Float64Array(levels);
  const coord = new Int32Array(levels);
  const mask = m.mask;
  const last = levels - 1;
  const innerSize = size[last]!;
  const innerStride = stride[last]!;
  let seen = 0; // levels below `seen` have their current prefix counted already
  let base = 0;
  let innerCount = 0;
  for (;;) {
    let offset = base;
    for (let j = 0; j < innerSize; j++, offset += innerStride) {
      if (mask[offset]) {
        if (seen < last) { for (let l = seen; l < last; l++) counts[l]!++; seen = last; }
        innerCount++;
      }
    }
    let l = last - 1;
    while (l >= 0) {
      base += stride[l]!;
      if (++coord[l]! < size[l]!) break;
      base -= stride[l]! * size[l]!;
      coord[l] = 0;
      l--;
    }
    if (l < 0) break;
    if (seen > l) seen = l;
  }
  counts[last] = innerCount;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Layout search

interface Candidate {
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
    const index = indexWidth(Math.max(0, m.maxCoord[perm[l]!]!));
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
  for (const block of blocks) {
    const reduced = blockMask(m, block.dim, block.size);
    // Values alone of the blocked layout: no better than the best so far means no gain.
    if (best && reduced.nonzeros * block.size * elementBytes >= best.bytes) continue;
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
// Weights and their readers

interface Reader { op: number; operand: number }

const SPARSE_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float16', 'int8']);

function tensorName(t: TensorT, s: number, i: number): string {
  return typeof t.name === 'string' && t.name ? t.name : `tensor_${s}_${i}`;
}

/** Nonzero mask (numeric rule) and the -0.0 count of a dense weight. */
function nonzeroMask(dtype: DType, bytes: Uint8Array, count: number): { mask: Uint8Array; negativeZeros: number } {
  const mask = new Uint8Array(count);
  let negativeZeros = 0;
  const aligned = (width: number) => (bytes.byteOffset % width === 0 ? bytes : bytes.slice());
  if (dtype === 'float32') {
    const b = aligned(4);
    const v = new Uint32Array(b.buffer, b.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const x = v[i]!;
      if ((x & 0x7fffffff) !== 0) mask[i] = 1; else if (x !== 0) negativeZeros++;
    }
  } else if (dtype === 'float16') {
    const b = aligned(2);
    const v = new Uint16Array(b.buffer, b.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const x = v[i]!;
      if ((x & 0x7fff) !== 0) mask[i] = 1; else if (x !== 0) negativeZeros++;
    }
  } else {
    for (let i = 0; i < count; i++) if (bytes[i] !== 0) mask[i] = 1;
  }
  return { mask, negativeZeros };
}

/** Zero share of an int8 weight against its (per-tensor or per-channel) zero points. */
function int8ZeroShare(bytes: Uint8Array, shape: readonly number[], tensor: TensorT): number {
  const q = tensor.quantization;
  const points = q?.zeroPoint.map(Number) ?? [];
  const v = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  if (points.length <= 1) {
    const zp = points[0] ?? 0;
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === zp) zeros++;
    return v.length ? zeros / v.length : 0;
  }
  const axis = q!.quantizedDimension;
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  const channels = shape[axis] ?? 1;
  let zeros = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === points[Math.floor(i / inner) % channels]) zeros++;
  return v.length ? zeros / v.length : 0;
}

function isFullyConnectedNativeReader(doc: TfliteDocument, s: number, op: number, dtype: DType): boolean {
  const sg = doc.model.subgraphs[s]!;
  const operator = sg.operators[op]!;
  const code = doc.model.operatorCodes[operator.opcodeIndex];
  if (!code || operatorName(code) !== 'FULLY_CONNECTED' || code.version > 8) return false;
  const options = operator.builtinOptionsType === BuiltinOptions.FullyConnectedOptions && operator.builtinOptions instanceof FullyConnectedOptionsT
    ? operator.builtinOptions : null;
  if (options && options.weightsFormat !== FullyConnectedOptionsWeightsFormat.DEFAULT) return false;
  const input = sg.tensors[operator.inputs[0] ?? -1];
  const output = sg.tensors[operator.outputs[0] ?? -1];
  if (!input || !output) return false;
  if (dtype === 'float32') return input.type === TensorType.FLOAT32 && output.type === TensorType.FLOAT32;
  if (dtype === 'int8') return input.type === TensorType.INT8 && output.type === TensorType.INT8;
  return false;
}

// ---------------------------------------------------------------------------------------------
// The planner

/**
 * Plans the sparse encoding of every constant weight of a dense document (densify first:
 * `densifyTfliteDocument`; already-sparse weights are re-planned from their dense values).
 */
export function planSparseTflite(doc: TfliteDocument, options: SparsePlanOptions = {}): SparsePlan {
  const minSparsity = options.minSparsity ?? 0.3;
  const block = options.block ?? 'auto';
  const keepDense = [...(options.keepDense ?? [])];
  const optimize = options.optimize ?? 'size';
  const runtime = options.runtime ?? DEFAULT_RUNTIME;
  if (!OPTIMIZE_GOALS.includes(optimize)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'unknown optimize goal', { expected: OPTIMIZE_GOALS.join(', '), found: String(optimize) });
  }
  const profile = runtimeProfile(runtime);
  if (!(minSparsity >= 0 && minSparsity <= 1)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'minimum sparsity out of range', { expected: 'a number in [0, 1]', found: String(options.minSparsity) });
  }
  if (!BLOCK_CHOICES.includes(block)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'unknown block choice', { expected: BLOCK_CHOICES.join(', '), found: String(block) });
  }
  const keep = new Set(keepDense);
  const names = doc.model.operatorCodes.map(operatorName);
  const entries: SparsePlanEntry[] = [];

  doc.model.subgraphs.forEach((sg, s) => {
    const readers = new Map<number, Reader[]>();
    sg.operators.forEach((op, o) => op.inputs.forEach((t, operand) => {
      if (t < 0) return;
      let list = readers.get(t);
      if (!list) readers.set(t, (list = []));
      list.push({ op: o, operand });
    }));
    const opName = (o: number) => names[sg.operators[o]!.opcodeIndex] ?? `OPCODE_${sg.operators[o]!.opcodeIndex}`;
    const consumerText = (t: number): string => {
      const parts: string[] = [];
      for (const r of readers.get(t) ?? []) {
        const name = opName(r.op);
        const out = sg.operators[r.op]!.outputs[0];
        if (name === 'DEQUANTIZE' && out !== undefined && out >= 0 && readers.has(out)) {
          for (const next of readers.get(out)!) parts.push(`DEQUANTIZE>${opName(next.op)}:${next.operand}`);
        } else {
          parts.push(`${name}:${r.operand}`);
        }
      }
      const counts = new Map<string, number>();
      for (const p of parts) counts.set(p, (counts.get(p) ?? 0) + 1);
      return [...counts].map(([p, c]) => (c > 1 ? `${p} x${c}` : p)).join(', ') || '-';
    };
    const outputs = new Set(sg.outputs);

    sg.tensors.forEach((tensor, t) => {
      const buffer = doc.buffers[tensor.buffer];
      if (tensor.buffer <= 0 || !buffer || !buffer.hasData || tensor.isVariable) return;
      const name = tensorName(tensor, s, t);
      const where = `subgraph ${s} tensor ${t} "${name}"`;
      if (tensor.sparsity) {
        throw new PrunepackError('INVALID_ARGUMENT', 'the planner needs a dense model', {
          format: 'tflite', location: where, hint: 'Densify first (densifyTfliteDocument); sparsifyTflite does it for you',
        });
      }
      const dtype = tensorDType(tensor.type, where);
      const shape = [...tensor.shape];
      const bytesBefore = buffer.byteLength;
      const entry: SparsePlanEntry = {
        tensor: name, subgraph: s, tensorIndex: t, dtype, shape, consumer: consumerText(t),
        zeroShare: 0, route: 'dense', encoding: 'dense', reason: '', bytesBefore, bytesAfter: bytesBefore,
      };
      entries.push(entry);
      const dense = (reason: string) => { entry.reason = reason; };

      if (!SPARSE_DTYPES.has(dtype)) return dense(`${dtype}: DENSIFY takes float32, float16 and int8 only`);
      const count = shape.reduce((a, b) => a * b, 1);
      if (shape.length === 0 || count === 0) return dense('scalar or empty');
      if (count * (dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 1) !== bytesBefore) {
        return dense('buffer size does not match the shape');
      }
      const { mask, negativeZeros } = nonzeroMask(dtype, buffer.bytes, count);
      let nonzeros = 0;
      for (let i = 0; i < count; i++) nonzeros += mask[i]!;
      entry.zeroShare = dtype === 'int8' ? int8ZeroShare(buffer.bytes, shape, tensor) : 1 - nonzeros / count;

      if (keep.has(name)) return dense('--keep-dense');
      if (entry.zeroShare < minSparsity) {
        return dense(`${(entry.zeroShare * 100).toFixed(1)}% zeros < ${(minSparsity * 100).toFixed(0)}%`);
      }
      if (dtype === 'int8' && (tensor.quantization?.zeroPoint ?? []).some((z) => z !== 0n)) {
        return dense('int8 zero point != 0: sparse storage can only leave out 0, which is not this weight\'s zero');
      }
      if (nonzeros === 0) return dense('all zeros: a sparse tensor would have an empty buffer, which TFLite reads as non-constant');
      if (outputs.has(t) || sg.inputs.includes(t)) return dense('constant is a subgraph input or output');
      const tensorReaders = readers.get(t) ?? [];
      if (tensorReaders.length === 0) return dense('no operator reads it');

      const elementBytes = dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 1;
      const m = makeMask(mask, shape);
      const candidates: Array<Candidate & { route: SparseRoute; total: number }> = [];

      // FULLY_CONNECTED operand 1 read natively: every reader must be such an operator.
      const native = shape.length === 2 && tensorReaders.every((r) => r.operand === 1 && isFullyConnectedNativeReader(doc, s, r.op, dtype))
        && (dtype !== 'int8' || (tensor.quantization?.scale.length ?? 0) <= 1);
      if (native) {
        for (const c of nativeLayouts(m, dtype, elementBytes, block)) candidates.push({ ...c, route: 'native', total: c.bytes });
      }
      const viaDequantize = dtype === 'float16' && tensorReaders.every((r) => opName(r.op) === 'DEQUANTIZE');
      const prefix = viaDequantize ? 'DENSIFY>DEQUANTIZE' : 'DENSIFY';
      const { best, tried } = bestDensifyLayout(m, elementBytes, block, prefix);
      if (best) candidates.push({ ...best, route: 'densify', total: best.bytes + densifyOverheadBytes(shape, densifiedName(t)) });
      if (candidates.length === 0) return dense('no sparse layout applies');
      candidates.sort((a, b) => a.total - b.total);
      // Predicted per-inference cost of each candidate in the plan's runtime (latency.ts)
      const costOf = (c: (typeof candidates)[number]): CostPrediction | null => (c.route === 'native'
        ? predictNative(profile, nativeEncodingOf(dtype, c.layout.blockSize)!, shape[0]!, shape[1]!, c.values)
        : predictDensify(profile, dtype));
      const costed = candidates.flatMap((c) => {
        const cost = costOf(c);
        return cost ? [{ ...c, cost }] : optimize === 'size' ? [{ ...c, cost: { relativeCost: Number.NaN, upperCost: Number.POSITIVE_INFINITY, basis: `${profile.name} cannot run it` } }] : [];
      });
      const chosen = chooseCandidate(optimize, [{ route: 'dense' as const, total: bytesBefore, cost: DENSE_PREDICTION }, ...costed]);
      const times = (c: { cost: CostPrediction }) => (Number.isFinite(c.cost.relativeCost) ? `${c.cost.relativeCost.toFixed(2)}x dense time` : c.cost.basis);
      if (chosen.route === 'dense') {
        const smallest = costed[0] ?? candidates[0]!;
        if (optimize === 'size' || smallest.total >= bytesBefore) {
          return dense(`sparse (${smallest.total} B as ${smallest.description}) not smaller than dense`);
        }
        const rejected = costed.map((c) => `${c.description} ${times(c)}`).join(', ')
          || `${profile.name} cannot run ${candidates.map((c) => c.description).join(', ')}`;
        return dense(`${optimize}: no sparse encoding predicted at least as fast as dense in ${profile.name} (${rejected})`);
      }
      entry.route = chosen.route;
      entry.encoding = chosen.description;
      entry.layout = chosen.layout;
      entry.bytesAfter = chosen.total;
      entry.storedValues = chosen.values;
      if (Number.isFinite(chosen.cost.relativeCost)) entry.cost = chosen.cost;
      if (negativeZeros) entry.negativeZeros = negativeZeros;
      // What the goal traded: a smaller encoding predicted slower, or a faster one that is larger.
      const smaller = optimize === 'size' ? undefined : costed.find((c) => c.total < chosen.total);
      const faster = optimize === 'size' ? undefined : costed.find((c) => c.cost.upperCost < chosen.cost.upperCost);
      const trade = smaller ? `; ${optimize}: not ${smaller.description} (${smaller.total} B, ${times(smaller)})`
        : faster ? `; ${optimize}: not ${faster.description} (${faster.total} B, ${times(faster)})` : '';
      const predicted = optimize === 'size' ? '' : `, ${times(chosen)} in ${profile.name}`;
      if (chosen.route === 'native') {
        entry.nativeOperators = tensorReaders.map((r) => r.op);
        const alternative = candidates.find((c) => c.route === 'densify');
        entry.reason = `${(entry.zeroShare * 100).toFixed(1)}% zeros; read natively by FULLY_CONNECTED${predicted}${alternative ? ` (DENSIFY: ${alternative.total} B)` : ''}${trade}`;
      } else {
        if (viaDequantize) entry.viaDequantize = true;
        const alternative = candidates.find((c) => c.route === 'native');
        entry.reason = `${(entry.zeroShare * 100).toFixed(1)}% zeros; smallest of ${tried} layouts tried${predicted}${alternative ? ` (FC native: ${alternative.total} B)` : ''}${trade}`;
      }
    });
  });

  return finishPlan(doc, { minSparsity, block, keepDense, optimize, runtime }, entries);
}

/** Turns the given entries dense (e.g. after the runtime refused them) and recomputes the report. */
export function keepDenseInPlan(doc: TfliteDocument, plan: SparsePlan, which: ReadonlyMap<SparsePlanEntry, string>): SparsePlan {
  const entries = plan.entries.map((e) => {
    const reason = which.get(e);
    if (reason === undefined || e.route === 'dense') return e;
    return { ...e, route: 'dense' as const, encoding: 'dense', reason, bytesAfter: e.bytesBefore, layout: undefined, viaDequantize: undefined, nativeOperators: undefined, negativeZeros: undefined, cost: undefined, storedValues: undefined };
  });
  return finishPlan(doc, plan.options, entries);
}

function finishPlan(doc: TfliteDocument, options: SparsePlan['options'], entries: SparsePlanEntry[]): SparsePlan {
  const totals = { bytesBefore: 0, bytesAfter: 0, sparseWeights: 0, densifyOps: 0, nativeOperators: 0 };
  for (const e of entries) {
    totals.bytesBefore += e.bytesBefore;
    totals.bytesAfter += e.bytesAfter;
    if (e.route !== 'dense') totals.sparseWeights++;
    if (e.route === 'densify') totals.densifyOps++;
    if (e.route === 'native') totals.nativeOperators += e.nativeOperators?.length ?? 0;
  }
  return { options, entries, xnnpack: xnnpackReport(doc, entries), totals };
}

// ---------------------------------------------------------------------------------------------
// XNNPACK

/**
 * Whether XNNPACK's fast sparse (NCHW) inference can kick in. Two conditions, reported apart:
 *  - the zeros: the 1x1 CONV_2D filters (traced back through DEQUANTIZE to their constant) must be
 *    more than 2/3 zeros (FORMATS.md; XNNPACK counts zeros * 3 > params * 2), and a float weight
 *    must reach a delegated operator through DENSIFY (that is what makes the delegate ask for sparse
 *    inference) -> `qualifies`;
 *  - the pattern: the operators around them must form an NCHW cluster by XNNPACK's rules
 *    (latency.ts, analyzeXnnpackNchw, which also counts the zeros per cluster) -> `patternFits`;
 *    both -> `expected`.
 */
export function xnnpackReport(doc: TfliteDocument, entries: readonly SparsePlanEntry[]): XnnpackReport {
  const names = doc.model.operatorCodes.map(operatorName);
  const byTensor = new Map(entries.map((e) => [`${e.subgraph}:${e.tensorIndex}`, e]));
  let filters = 0;
  let densified = 0;
  let elements = 0;
  let zeros = 0;
  let nativeFullyConnected = 0;
  let patternFits = false;
  let expected = false;
  const clusters: XnnpackCluster[] = [];
  const blockers: string[] = [];
  const seen = new Set<string>();
  doc.model.subgraphs.forEach((sg, s) => {
    const producer = new Map<number, number>();
    sg.operators.forEach((op, o) => op.outputs.forEach((t) => producer.set(t, o)));
    const native = new Set<number>();
    for (const e of entries) {
      if (e.subgraph === s && e.route === 'native') {
        nativeFullyConnected += e.nativeOperators?.length ?? 0;
        for (const o of e.nativeOperators ?? []) native.add(o);
      }
    }
    sg.operators.forEach((op) => {
      if (names[op.opcodeIndex] !== 'CONV_2D') return;
      let filter = op.inputs[1] ?? -1;
      const from = producer.get(filter);
      if (from !== undefined && names[sg.operators[from]!.opcodeIndex] === 'DEQUANTIZE') filter = sg.operators[from]!.inputs[0] ?? -1;
      const tensor = sg.tensors[filter];
      if (!tensor || tensor.shape.length !== 4 || tensor.shape[1] !== 1 || tensor.shape[2] !== 1) return;
      const key = `${s}:${filter}`;
      const entry = byTensor.get(key);
      if (!entry || seen.has(key)) return;
      seen.add(key);
      const count = entry.shape.reduce((a, b) => a * b, 1);
      filters++;
      elements += count;
      zeros += Math.round(entry.zeroShare * count);
      if (entry.route === 'densify') densified++;
    });
    const analysis = analyzeXnnpackNchw(doc, s, (t) => {
      const e = byTensor.get(`${s}:${t}`);
      if (!e) return null;
      const count = e.shape.reduce((a, b) => a * b, 1);
      return { zeros: Math.round(e.zeroShare * count), count };
    }, (t) => byTensor.get(`${s}:${t}`)?.route === 'densify', native);
    patternFits ||= analysis.patternFits;
    expected ||= analysis.expected;
    clusters.push(...analysis.clusters);
    for (const b of analysis.blockers) if (blockers.length < 4 && !blockers.includes(b)) blockers.push(b);
  });
  const share = elements ? zeros / elements : null;
  const percent = (x: number) => `${(x * 100).toFixed(1)}%`;
  let qualifies = false;
  let reason: string;
  if (filters === 0) reason = 'no 1x1 CONV_2D filters: XNNPACK has nothing to run sparse';
  else if (densified === 0) reason = `none of the ${filters} 1x1 CONV_2D filters is read through DENSIFY (too few zeros or not smaller sparse)`;
  else if (zeros * 3 <= elements * 2) reason = `1x1 CONV_2D filters are ${percent(share!)} zeros; XNNPACK needs at least 66.7% (more than 2/3)`;
  else {
    qualifies = true;
    reason = `${densified} of ${filters} 1x1 CONV_2D filters read through DENSIFY, ${percent(share!)} zeros (>= 66.7%)`
      + (densified < filters ? `; ${filters - densified} stay dense` : '');
  }
  if (filters > 0) {
    if (patternFits) {
      const best = clusters.reduce((a, b) => (b.params > a.params ? b : a));
      reason += `; NCHW pattern fits (${clusters.length} cluster${clusters.length > 1 ? 's' : ''}, largest ${best.operators.length} operators from ${best.entry} to ${best.exit}, `
        + `its 1x1 filters ${best.params ? percent(best.zeros / best.params) : '-'} zeros)`;
    } else {
      reason += `; NCHW pattern does not fit: ${blockers.join('; ') || 'no cluster'}`;
    }
    reason += expected ? ': XNNPACK is expected to run it sparse' : ': XNNPACK is expected to keep its dense kernels';
  }
  if (nativeFullyConnected) reason += `; ${nativeFullyConnected} FULLY_CONNECTED op(s) read sparse weights natively (version 8), which XNNPACK leaves to the builtin kernels`;
  return {
    qualifies, conv1x1Filters: filters, conv1x1Densified: densified, conv1x1ZeroShare: share, nativeFullyConnected,
    patternFits, expected, clusters, blockers, reason,
  };
}
