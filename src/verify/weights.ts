/**
 * Weight-level equivalence of two models, whatever their format or encoding: every weight of A
 * is paired with a weight of B (by name; weights whose names have no partner are paired by
 * position among the unpaired, and the report says so) and their dense values are compared.
 *
 * Equal means numerically the same element by element: float16 and bfloat16 are decoded when
 * the two dtypes differ; +0.0 and -0.0 are equal (sparse encodings keep no zeros, so a -0.0
 * comes back as +0.0); a NaN equals a NaN with the same bits (across different float dtypes,
 * any NaN equals any NaN: the bits are not comparable). Integers compare by value, quantization
 * parameters (scale, zero point, axis) must match. Shapes must be equal, ignoring dimensions of
 * size 1 (ONNX [1, C] vs TFLite [C]); anything else is reported as a difference, with the first
 * differing elements (flat index, coordinates, both values).
 */
import { bfloat16ToFloat32, dtypeBits, elementCount, float16ToFloat32, typedView, type DType } from '../model/dtype.js';
import type { Model, Quantization, WeightTensor } from '../model/types.js';

export interface WeightDifference {
  /** Weight name in A (or in B for weights only B has). */
  weight: string;
  /** Name of its partner in B, when it has one. */
  other?: string;
  kind: 'missing' | 'extra' | 'shape' | 'dtype' | 'quantization' | 'value';
  /** Flat element index and its coordinates (kind 'value'). */
  index?: number;
  coordinates?: number[];
  /** The two values as text ("-0", "NaN (0x7fc00001)", "0.125"). */
  a?: string;
  b?: string;
  message: string;
}

export interface WeightPairSummary {
  a: string;
  b: string;
  matchedBy: 'name' | 'position';
  elements: number;
  /** Elements that differ (0 when equal; all elements when shape or dtype are incompatible). */
  differing: number;
  /** Largest |a - b| over differing float elements (0 when equal; null when not numeric). */
  maxAbsDiff: number | null;
}

export interface WeightComparison {
  equivalent: boolean;
  weightsA: number;
  weightsB: number;
  matchedByName: number;
  /** Pairs made by position because their names differ. */
  matchedByPosition: Array<{ a: string; b: string }>;
  onlyInA: string[];
  onlyInB: string[];
  pairs: WeightPairSummary[];
  /** Weights with any difference. */
  differingWeights: number;
  /** Differing elements over all weights. */
  differingElements: number;
  /** The first differences, at most `maxDifferences`, in A's weight order. */
  differences: WeightDifference[];
}

export interface WeightCompareOptions {
  /** How many differences to list (default 10). */
  maxDifferences?: number;
  /** How many of them one weight may take, so the list shows several weights (default 3). */
  maxDifferencesPerWeight?: number;
  /** Progress over A's dense bytes. */
  onProgress?: (event: { phase: string; done: number; total: number; item?: string }) => void;
}

// ---------------------------------------------------------------------------------------------
// Values

function hex(bits: number, digits: number): string {
  return `0x${(bits >>> 0).toString(16).padStart(digits, '0')}`;
}

/** Element i of dense bytes as text, keeping -0 and NaN payloads visible. */
export function elementText(dtype: DType, bytes: Uint8Array, i: number): string {
  const view = typedView(dtype, bytes);
  if (!view) return `byte ${bytes[i] ?? '?'}`;
  const raw = view[i]!;
  const show = (x: number, bits: string) => (Number.isNaN(x) ? `NaN (${bits})` : Object.is(x, -0) ? '-0' : String(x));
  if (dtype === 'float16') return show(float16ToFloat32(raw as number), hex(raw as number, 4));
  if (dtype === 'bfloat16') return show(bfloat16ToFloat32(raw as number), hex(raw as number, 4));
  if (dtype === 'float32') {
    const u = new Uint32Array(view.buffer, view.byteOffset + i * 4, 1)[0]!;
    return show(raw as number, hex(u, 8));
  }
  if (dtype === 'float64') return show(raw as number, 'float64');
  return String(raw);
}

function coordinatesOf(index: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d]! || 1;
    out[d] = rest % size;
    rest = Math.floor(rest / size);
  }
  return out;
}

function aligned(bytes: Uint8Array, width: number): Uint8Array {
  return bytes.byteOffset % width === 0 ? bytes : bytes.slice();
}

type Reader = (i: number) => number;

function floatReader(dtype: DType, bytes: Uint8Array): Reader | null {
  const v = typedView(dtype, bytes);
  if (!v) return null;
  switch (dtype) {
    case 'float16': return (i) => float16ToFloat32((v as Uint16Array)[i]!);
    case 'bfloat16': return (i) => bfloat16ToFloat32((v as Uint16Array)[i]!);
    case 'float32': case 'float64': return (i) => (v as Float32Array | Float64Array)[i]!;
    default: return (i) => Number(v[i]!);
  }
}

/**
 * Calls `differ(i)` for every element index that differs (see the module comment for "equal").
 * Same dtype: compared on the bits with the zero rule; different float dtypes: decoded.
 */
function forEachDifference(dtype: DType, x: Uint8Array, otherDtype: DType, y: Uint8Array, count: number, differ: (i: number, abs: number | null) => void): void {
  if (dtype === otherDtype) {
    if (dtype === 'float32') {
      const a = new Uint32Array(aligned(x, 4).buffer, aligned(x, 4).byteOffset, count);
      const yb = aligned(y, 4);
      const b = new Uint32Array(yb.buffer, yb.byteOffset, count);
      const fa = new Float32Array(a.buffer, a.byteOffset, count);
      const fb = new Float32Array(b.buffer, b.byteOffset, count);
      for (let i = 0; i < count; i++) {
        const p = a[i]!;
        const q = b[i]!;
        if (p !== q && ((p | q) & 0x7fffffff) !== 0) differ(i, Math.abs(fa[i]! - fb[i]!));
      }
      return;
    }
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const xa = aligned(x, 2);
      const ya = aligned(y, 2);
      const a = new Uint16Array(xa.buffer, xa.byteOffset, count);
      const b = new Uint16Array(ya.buffer, ya.byteOffset, count);
      const decode = dtype === 'float16' ? float16ToFloat32 : bfloat16ToFloat32;
      for (let i = 0; i < count; i++) {
        const p = a[i]!;
        const q = b[i]!;
        if (p !== q && ((p | q) & 0x7fff) !== 0) differ(i, Math.abs(decode(p) - decode(q)));
      }
      return;
    }
    if (dtype === 'float64') {
      const xa = aligned(x, 8);
      const ya = aligned(y, 8);
      const a = new Uint32Array(xa.buffer, xa.byteOffset, count * 2);
      const b = new Uint32Array(ya.buffer, ya.byteOffset, count * 2);
      const fa = new Float64Array(xa.buffer, xa.byteOffset, count);
      const fb = new Float64Array(ya.buffer, ya.byteOffset, count);
      for (let i = 0; i < count; i++) {
        const lo = a[2 * i]! !== b[2 * i]!;
        const hi = a[2 * i + 1]! !== b[2 * i + 1]!;
        if (!lo && !hi) continue;
        const zero = (a[2 * i]! | b[2 * i]!) === 0 && ((a[2 * i + 1]! | b[2 * i + 1]!) & 0x7fffffff) === 0;
        if (!zero) differ(i, Math.abs(fa[i]! - fb[i]!));
      }
      return;
    }
    // Everything else (integers, bool, float8, complex, sub-byte, strings): the bytes of each element.
    const bits = dtypeBits(dtype);
    const width = bits >= 8 ? bits / 8 : 0;
    if (width === 0) {
      // Sub-byte and variable-size types: byte by byte (index is the byte).
      const n = Math.max(x.length, y.length);
      for (let i = 0; i < n; i++) if (x[i] !== y[i]) differ(i, null);
      return;
    }
    for (let i = 0; i < count; i++) {
      for (let j = 0; j < width; j++) {
        if (x[i * width + j] !== y[i * width + j]) { differ(i, null); break; }
      }
    }
    return;
  }
  // Different dtypes, both numeric: compare decoded values.
  const ra = floatReader(dtype, x);
  const rb = floatReader(otherDtype, y);
  if (!ra || !rb) {
    for (let i = 0; i < count; i++) differ(i, null);
    return;
  }
  for (let i = 0; i < count; i++) {
    const p = ra(i);
    const q = rb(i);
    if (p === q || (Number.isNaN(p) && Number.isNaN(q))) continue;
    differ(i, Math.abs(p - q));
  }
}

/** Pairs of different dtypes that are compared by value. */
const DECODED_FLOATS: ReadonlySet<DType> = new Set<DType>(['float16', 'bfloat16', 'float32', 'float64']);
const INTEGERS: ReadonlySet<DType> = new Set<DType>(['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool']);

function squeeze(shape: readonly number[]): string {
  return shape.filter((d) => d !== 1).join(',');
}

function quantizationText(q: Quantization | undefined): string {
  if (!q) return 'none';
  const zp = Array.from(q.zeroPoint as ArrayLike<number | bigint>, Number);
  const scale = Array.from(q.scale);
  const trivial = zp.every((z) => z === 0) && (scale.length === 0 || scale.every((s) => s === 0));
  if (trivial && q.axis === undefined) return 'none';
  return `scale [${scale.join(',')}] zero point [${zp.join(',')}]${q.axis !== undefined && scale.length > 1 ? ` axis ${q.axis}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Matching and comparison

/** Pairs the weights of A and B: by name, then the unpaired by position. */
export function matchWeights(a: Model, b: Model): { pairs: Array<{ a: WeightTensor; b: WeightTensor; matchedBy: 'name' | 'position' }>; onlyInA: WeightTensor[]; onlyInB: WeightTensor[] } {
  const byName = new Map<string, number>();
  b.weights.forEach((w, i) => { if (!byName.has(w.name)) byName.set(w.name, i); });
  const usedB = new Set<number>();
  const pairs: Array<{ a: WeightTensor; b: WeightTensor; matchedBy: 'name' | 'position' }> = [];
  const unpairedA: WeightTensor[] = [];
  for (const w of a.weights) {
    const j = byName.get(w.name);
    if (j !== undefined && !usedB.has(j)) {
      usedB.add(j);
      pairs.push({ a: w, b: b.weights[j]!, matchedBy: 'name' });
    } else {
      unpairedA.push(w);
    }
  }
  const unpairedB = b.weights.filter((_, j) => !usedB.has(j));
  const n = Math.min(unpairedA.length, unpairedB.length);
  for (let k = 0; k < n; k++) pairs.push({ a: unpairedA[k]!, b: unpairedB[k]!, matchedBy: 'position' });
  // Keep A's order in the report.
  const order = new Map(a.weights.map((w, i) => [w, i]));
  pairs.sort((x, y) => order.get(x.a)! - order.get(y.a)!);
  return { pairs, onlyInA: unpairedA.slice(n), onlyInB: unpairedB.slice(n) };
}

/** Compares every weight of A with its partner in B as dense values. */
export function compareModelWeights(a: Model, b: Model, options: WeightCompareOptions = {}): WeightComparison {
  const maxDifferences = options.maxDifferences ?? 10;
  const perWeight = options.maxDifferencesPerWeight ?? 3;
  const { pairs, onlyInA, onlyInB } = matchWeights(a, b);
  const differences: WeightDifference[] = [];
  const note = (d: WeightDifference) => { if (differences.length < maxDifferences) differences.push(d); };
  const summaries: WeightPairSummary[] = [];
  let differingWeights = 0;
  let differingElements = 0;
  const totalBytes = pairs.reduce((n, p) => n + p.a.bytes.length, 0);
  let doneBytes = 0;

  for (const { a: wa, b: wb, matchedBy } of pairs) {
    options.onProgress?.({ phase: 'comparing weights', done: doneBytes, total: totalBytes, item: wa.name });
    doneBytes += wa.bytes.length;
    const label = { weight: wa.name, ...(wb.name !== wa.name ? { other: wb.name } : {}) };
    let count = 0;
    try { count = elementCount(wa.shape); } catch { /* the plugin rejects such shapes on read */ }
    const summary: WeightPairSummary = { a: wa.name, b: wb.name, matchedBy, elements: count, differing: 0, maxAbsDiff: 0 };
    summaries.push(summary);
    const fail = (kind: WeightDifference['kind'], message: string) => {
      summary.differing = count;
      summary.maxAbsDiff = null;
      differingWeights++;
      differingElements += count;
      note({ ...label, kind, message });
    };
    if (wa.shape.join(',') !== wb.shape.join(',') && squeeze(wa.shape) !== squeeze(wb.shape)) {
      fail('shape', `shape [${wa.shape.join(', ')}] vs [${wb.shape.join(', ')}]`);
      continue;
    }
    const compatible = wa.dtype === wb.dtype || (DECODED_FLOATS.has(wa.dtype) && DECODED_FLOATS.has(wb.dtype))
      || (INTEGERS.has(wa.dtype) && INTEGERS.has(wb.dtype));
    if (!compatible) {
      fail('dtype', `dtype ${wa.dtype} vs ${wb.dtype}`);
      continue;
    }
    const qa = quantizationText(wa.quantization);
    const qb = quantizationText(wb.quantization);
    if (qa !== qb) {
      fail('quantization', `quantization ${qa} vs ${qb}`);
      continue;
    }
    const x = wa.denseBytes();
    const y = wb.denseBytes();
    if (wa.dtype === wb.dtype && x.length !== y.length) {
      fail('value', `${x.length} dense bytes vs ${y.length}`);
      continue;
    }
    let differing = 0;
    let maxAbs = 0;
    let numeric = true;
    forEachDifference(wa.dtype, x, wb.dtype, y, count, (i, abs) => {
      differing++;
      if (abs === null) numeric = false;
      else if (abs > maxAbs || Number.isNaN(abs)) maxAbs = Number.isNaN(abs) ? Infinity : abs;
      if (differences.length < maxDifferences && differing <= perWeight) {
        note({
          ...label, kind: 'value', index: i, coordinates: coordinatesOf(i, wa.shape),
          a: elementText(wa.dtype, x, i), b: elementText(wb.dtype, y, i),
          message: `element ${i} [${coordinatesOf(i, wa.shape).join(', ')}]: ${elementText(wa.dtype, x, i)} vs ${elementText(wb.dtype, y, i)}`,
        });
      }
    });
    summary.differing = differing;
    summary.maxAbsDiff = numeric ? maxAbs : null;
    if (differing) { differingWeights++; differingElements += differing; }
  }
  for (const w of onlyInA) note({ weight: w.name, kind: 'missing', message: 'only in A (no weight of B left to pair it with)' });
  for (const w of onlyInB) note({ weight: w.name, kind: 'extra', message: 'only in B (no weight of A left to pair it with)' });
  options.onProgress?.({ phase: 'comparing weights', done: totalBytes, total: totalBytes });

  return {
    equivalent: differingWeights === 0 && onlyInA.length === 0 && onlyInB.length === 0,
    weightsA: a.weights.length,
    weightsB: b.weights.length,
    matchedByName: pairs.filter((p) => p.matchedBy === 'name').length,
    matchedByPosition: pairs.filter((p) => p.matchedBy === 'position').map((p) => ({ a: p.a.name, b: p.b.name })),
    onlyInA: onlyInA.map((w) => w.name),
    onlyInB: onlyInB.map((w) => w.name),
    pairs: summaries,
    differingWeights,
    differingElements,
    differences,
  };
}
