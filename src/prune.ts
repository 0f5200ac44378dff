/**
 * One-shot magnitude pruning, for size what-ifs and for building test models. No fine-tuning:
 * accuracy is NOT preserved. Each selected weight gets exactly round(count * sparsity) zeros
 * (elements already zero count toward it): the smallest magnitudes go first, ties broken by
 * position, so the result is deterministic. With a block shape, whole blocks of the weight's
 * matrix view (rows = dim 0, columns = the product of the other dims) are zeroed by smallest
 * L1 norm instead.
 */
import { PrunepackError } from './errors.js';
import { elementCount, typedView } from './model/dtype.js';
import type { Model, WeightTensor } from './model/types.js';
import { magnitudeFill, quantizedLayout } from './model/magnitude.js';

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
  const magnitude = new Float64Array(elementCount(w.shape));
  magnitudeFill(w, dense)!(0, magnitude);
  if (w.dtype !== 'int8' && w.dtype !== 'uint8') return { magnitude, zeroValue: () => 0 };
  const q = quantizedLayout(w);
  return { magnitude, zeroValue: (i) => q.zeroPoints[q.channelOf(i)] ?? q.zeroPoints[0]! };
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
