/**
 * One-shot magnitude pruning, for size what-ifs and for building test models. No fine-tuning:
 * accuracy is NOT preserved. Each selected weight gets exactly round(count * sparsity) zeros
 * (elements already zero count toward it): the smallest magnitudes go first, ties broken by
 * position, so the result is deterministic. With a block shape, whole blocks of the weight's
 * matrix view (rows = dim 0, columns = the product of the other dims) are zeroed by smallest
 * L1 norm instead.
 */
import { PrunepackError } from './errors.js';
import { elementCount, float16ToFloat32, bfloat16ToFloat32, typedView } from './model/dtype.js';
import type { Model, WeightTensor } from './model/types.js';

export interface PruneOptions {
  /** Share of elements (or blocks) to set to zero, 0..1. */
  sparsity: number;
  /** Block shape [rows, columns] over the matrix view; default element-wise. */
  block?: [number, number];
  /** Which weights to prune; default: float/int8/uint8 weights of rank >= 2 with >= 64 elements. */
  select?: (w: WeightTensor) => boolean;
}

export interface PruneResult {
  name: string;
  pruned: boolean;
  reason: string;
  zerosBefore: number;
  zerosAfter: number;
  elements: number;
}

const PRUNABLE = new Set(['float32', 'float16', 'bfloat16', 'int8', 'uint8']);

export function defaultPruneSelection(w: WeightTensor): boolean {
  return PRUNABLE.has(w.dtype) && w.shape.length >= 2 && elementCount(w.shape) >= 64;
}

/** Magnitudes in real units (dequantized for int8/uint8, per channel when quantized so). */
function magnitudes(w: WeightTensor, dense: Uint8Array): { magnitude: Float64Array; zeroValue: (i: number) => number } {
  const n = elementCount(w.shape);
  const magnitude = new Float64Array(n);
  const values = typedView(w.dtype, dense)!;
  if (w.dtype === 'float32') {
    const v = values as Float32Array;
    for (let i = 0; i < n; i++) magnitude[i] = Math.abs(v[i]!);
    return { magnitude, zeroValue: () => 0 };
  }
  if (w.dtype === 'float16' || w.dtype === 'bfloat16') {
    const v = values as Uint16Array;
    const decode = w.dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
    for (let i = 0; i < n; i++) magnitude[i] = Math.abs(decode(v[i]!));
    return { magnitude, zeroValue: () => 0 };
  }
  const v = values as Int8Array | Uint8Array;
  const q = w.quantization;
  const zp = q?.zeroPoint ? Array.from(q.zeroPoint as ArrayLike<number | bigint>, Number) : [0];
  const scale = q?.scale ? Array.from(q.scale) : [1];
  const axis = q?.axis;
  let inner = 1;
  if (axis !== undefined) for (let d = axis + 1; d < w.shape.length; d++) inner *= w.shape[d]!;
  const channels = axis !== undefined ? w.shape[axis]! : 1;
  const channelOf = (i: number) => (axis !== undefined && zp.length > 1 ? Math.floor(i / inner) % channels : 0);
  for (let i = 0; i < n; i++) {
    const c = channelOf(i);
    magnitude[i] = Math.abs(v[i]! - (zp[c] ?? zp[0]!)) * Math.abs(scale[c] ?? scale[0] ?? 1);
  }
  return { magnitude, zeroValue: (i) => zp[channelOf(i)] ?? zp[0]! };
}

/** Indices of the `k` smallest scores, ties by position (stable). */
function smallest(scores: Float64Array, k: number): Uint32Array {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => scores[a]! - scores[b]! || a - b);
  return order.subarray(0, k);
}

/** Returns pruned dense bytes for one weight (a new array), or a reason it was left alone. */
export function pruneWeight(w: WeightTensor, options: PruneOptions): { bytes?: Uint8Array; result: PruneResult } {
  const n = elementCount(w.shape);
  const dense = w.denseBytes();
  const { magnitude, zeroValue } = magnitudes(w, dense);
  let zerosBefore = 0;
  for (let i = 0; i < n; i++) if (magnitude[i] === 0) zerosBefore++;
  const base = { name: w.name, zerosBefore, elements: n };
  const out = dense.slice();
  const values = typedView(w.dtype, out)! as Float32Array | Uint16Array | Int8Array | Uint8Array;
  const zeroAt = (i: number) => { values[i] = zeroValue(i); };
  if (!options.block) {
    const k = Math.round(n * options.sparsity);
    for (const i of smallest(magnitude, k)) zeroAt(i);
  } else {
    const [r, c] = options.block;
    const rows = w.shape[0]!;
    const cols = n / rows;
    if (rows % r !== 0 || cols % c !== 0) {
      return { result: { ...base, pruned: false, zerosAfter: zerosBefore, reason: `block ${r}x${c} does not divide the ${rows}x${cols} matrix view` } };
    }
    const blockCols = cols / c;
    const norms = new Float64Array((rows / r) * blockCols);
    for (let i = 0; i < n; i++) {
      const row = Math.floor(i / cols);
      const col = i % cols;
      norms[Math.floor(row / r) * blockCols + Math.floor(col / c)]! += magnitude[i]!;
    }
    const k = Math.round(norms.length * options.sparsity);
    for (const b of smallest(norms, k)) {
      const row0 = Math.floor(b / blockCols) * r;
      const col0 = (b % blockCols) * c;
      for (let y = 0; y < r; y++) for (let x = 0; x < c; x++) zeroAt((row0 + y) * cols + col0 + x);
    }
  }
  const after = magnitudes({ ...w, denseBytes: () => out } as WeightTensor, out).magnitude;
  let zerosAfter = 0;
  for (let i = 0; i < n; i++) if (after[i] === 0) zerosAfter++;
  return { bytes: out, result: { ...base, pruned: true, zerosAfter, reason: options.block ? `${options.block.join('x')} blocks by L1 norm` : 'elements by magnitude' } };
}

/** Prunes every selected weight; returns the new dense bytes by weight name and a report. */
export function planPrune(model: Model, options: PruneOptions): { replacements: Map<string, Uint8Array>; results: PruneResult[] } {
  if (!(options.sparsity >= 0 && options.sparsity <= 1)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'sparsity must be between 0 and 1', { expected: '0..1', found: String(options.sparsity) });
  }
  if (options.block && !options.block.every((d) => Number.isInteger(d) && d > 0)) {
    throw new PrunepackError('INVALID_ARGUMENT', 'block dimensions must be positive integers', { found: options.block.join('x') });
  }
  const select = options.select ?? defaultPruneSelection;
  const replacements = new Map<string, Uint8Array>();
  const results: PruneResult[] = [];
  for (const w of model.weights) {
    if (!select(w)) continue;
    if (w.sparsity !== undefined) {
      results.push({ name: w.name, pruned: false, reason: 'stored sparse in the input: convert it to dense first', zerosBefore: 0, zerosAfter: 0, elements: elementCount(w.shape) });
      continue;
    }
    const { bytes, result } = pruneWeight(w, options);
    if (bytes) replacements.set(w.name, bytes);
    results.push(result);
  }
  return { replacements, results };
}
