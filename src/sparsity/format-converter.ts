/**
 * TFLite sparse-tensor format conversion (dense <-> dim-metadata), with the semantics of TFLite's
 * reference FormatConverter (tensorflow/lite/kernels/internal/utils/sparsity_format_converter.cc),
 * reimplemented as two flat, iterative passes over typed arrays:
 *   pass 1 counts the stored positions of every sparse level, so every array is allocated once;
 *   pass 2 fills indices, segment counts and values.
 * The common layouts (every original level dense but the last: CSR over rows, 1x4 / 1x16 blocks)
 * take a fast path with the same output (lastLevelCsr below); everything else the generic walk.
 * Differences from the reference, on purpose: a block size that does not divide its dimension is
 * rejected (the reference silently drops the tail), and so are unsorted block maps, which the
 * reference misreads.
 */
import { PrunepackError } from '../errors.js';
import type { DType, NumericArray } from '../model/dtype.js';
import type { DimensionMetadata, IndexVector, SparsityParams } from './types.js';
import { verifySparsity } from './verify-sparsity.js';

export type LevelFormat = 'DENSE' | 'SPARSE_CSR';

/**
 * How to decide that an element is zero: a predicate on the element's flat (row-major) index
 * (called once per element in each of the two passes, so it must be pure), or
 * the element's dtype. Default: `value === 0` (so -0.0 is zero and NaN never is; BigInt arrays
 * compare with 0n). 'float16' / 'bfloat16' treat the Uint16 bit patterns 0x0000 and 0x8000 as zero.
 */
export type ZeroTest = ((index: number) => boolean) | DType;

export interface SparseEncoding<T extends NumericArray> {
  params: SparsityParams;
  /** Stored values in traversal order, same typed-array type as the dense input. */
  values: T;
}

type TypedArrayConstructor = { new (length: number): NumericArray };

const BASE_CONSTRUCTORS: TypedArrayConstructor[] = [
  Float32Array, Float64Array, Int8Array, Uint8Array, Int16Array, Uint16Array,
  Int32Array, Uint32Array, BigInt64Array, BigUint64Array,
];

/** A zeroed array of the same element type (Node Buffers become plain Uint8Arrays). */
function allocateLike<T extends NumericArray>(like: T, length: number): T {
  for (const ctor of BASE_CONSTRUCTORS) {
    if (like instanceof (ctor as unknown as Function)) return new ctor(length) as T;
  }
  throw new PrunepackError('INVALID_ARGUMENT', 'unsupported element array', {
    expected: 'a numeric typed array', found: Object.prototype.toString.call(like),
  });
}

function isBigIntArray(a: NumericArray): a is BigInt64Array | BigUint64Array {
  return a instanceof BigInt64Array || a instanceof BigUint64Array;
}

function invalidArgument(what: string, location: string, expected: string, found: string): PrunepackError {
  return new PrunepackError('INVALID_ARGUMENT', what, { location, expected, found });
}

/**
 * The narrowest TFLite index vector that holds `values`: max <= 255 -> Uint8Array, <= 65535 ->
 * Uint16Array, else Int32Array (the rule TFLite's exporter applies to indices by their maximum and
 * to segments by their last value, which for non-decreasing segments is the same thing).
 */
export function narrowestIndexVector(values: readonly number[] | Int32Array): IndexVector {
  let max = 0;
  let min = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > max) max = v;
    if (v < min) min = v;
  }
  if (!(values instanceof Int32Array)) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
        throw invalidArgument('index value does not fit an Int32 index vector', `value ${i}`,
          'an integer in [-2^31, 2^31)', String(v));
      }
    }
  }
  if (min >= 0 && max <= 0xff) return Uint8Array.from(values);
  if (min >= 0 && max <= 0xffff) return Uint16Array.from(values);
  return values instanceof Int32Array ? values : Int32Array.from(values);
}

/** Per-level layout shared by the encoder and the decoder. */
interface LevelLayout {
  levels: number;
  /** Size of the expanded dimension each level walks. */
  size: Float64Array;
  /** Row-major offset step in the dense tensor for one step of that level. */
  stride: Float64Array;
  elementCount: number;
}

/**
 * Expanded dimensions (n original, with blocked dims divided, then k block dims) and their
 * dense strides, put in traversal order.
 */
function levelLayout(shape: readonly number[], traversalOrder: readonly number[],
  blockMap: readonly number[], blockSize: readonly number[]): LevelLayout {
  const n = shape.length;
  const k = blockMap.length;
  const expandedSize = new Float64Array(n + k);
  const expandedStride = new Float64Array(n + k);
  let stride = 1;
  for (let d = n - 1; d >= 0; d--) {
    expandedSize[d] = shape[d]!;
    expandedStride[d] = stride;
    stride *= shape[d]!;
  }
  for (let j = 0; j < k; j++) {
    const d = blockMap[j]!;
    expandedSize[n + j] = blockSize[j]!;
    expandedStride[n + j] = expandedStride[d]!;
    expandedSize[d] = expandedSize[d]! / blockSize[j]!;
    expandedStride[d] = expandedStride[d]! * blockSize[j]!;
  }
  const levels = n + k;
  const size = new Float64Array(levels);
  const levelStride = new Float64Array(levels);
  for (let l = 0; l < levels; l++) {
    size[l] = expandedSize[traversalOrder[l]!]!;
    levelStride[l] = expandedStride[traversalOrder[l]!]!;
  }
  return { levels, size, stride: levelStride, elementCount: stride };
}

function checkPermutation(order: readonly number[], from: number, to: number, name: string): void {
  const seen = new Uint8Array(to - from);
  for (let i = from; i < to; i++) {
    const v = order[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < from || v >= to || seen[v - from]) {
      throw invalidArgument(`${name} is not a valid traversal order`, `${name}[${i}]`,
        `a permutation of ${from}..${to - 1} in positions ${from}..${to - 1}`, `[${order.join(', ')}]`);
    }
    seen[v - from] = 1;
  }
}

const enum ZeroMode { Numeric, Masked, BigInt, Predicate }

/**
 * Encodes a dense row-major tensor as TFLite sparsity metadata plus stored values, with exactly the
 * output of TFLite's reference converter (FormatConverter(shape, traversal_order, format,
 * block_size, block_map) + DenseToSparse).
 *
 * `levelFormats` follows the reference's `format` argument: it is indexed by DIMENSION, not by
 * level: entry d is the format of original dimension d, and level i uses
 * `levelFormats[traversalOrder[i]]`. It has n entries, or n + k with the k block entries 'DENSE'
 * (the reference always stores block dimensions dense).
 *
 * Stored values: every nonzero; plus, when the last level is DENSE, every element (zeros included,
 * bit patterns kept, e.g. -0.0) of each stored position of the innermost sparse level.
 */
export function sparsityFromDense<T extends NumericArray>(
  dense: T,
  shape: readonly number[],
  traversalOrder: readonly number[],
  blockMap: readonly number[],
  blockSize: readonly number[],
  levelFormats: readonly LevelFormat[],
  isZero?: ZeroTest,
): SparseEncoding<T> {
  return encodeDense(dense, shape, traversalOrder, blockMap, blockSize, levelFormats, isZero, true);
}

/**
 * sparsityFromDense without the fast path: the generic two-pass walk for every layout. The output
 * is the same (byte for byte, with one exception: float32 signaling NaNs, which the generic walk
 * copies as numbers and the fast path copies as bits). Exported for the tests that compare the two.
 */
export function sparsityFromDenseGeneric<T extends NumericArray>(
  dense: T,
  shape: readonly number[],
  traversalOrder: readonly number[],
  blockMap: readonly number[],
  blockSize: readonly number[],
  levelFormats: readonly LevelFormat[],
  isZero?: ZeroTest,
): SparseEncoding<T> {
  return encodeDense(dense, shape, traversalOrder, blockMap, blockSize, levelFormats, isZero, false);
}

function encodeDense<T extends NumericArray>(
  dense: T,
  shape: readonly number[],
  traversalOrder: readonly number[],
  blockMap: readonly number[],
  blockSize: readonly number[],
  levelFormats: readonly LevelFormat[],
  isZero: ZeroTest | undefined,
  fast: boolean,
): SparseEncoding<T> {
  // ---- arguments ----
  const n = shape.length;
  if (n < 1) throw invalidArgument('sparse encoding needs a tensor of rank >= 1', 'shape', 'rank >= 1', '[]');
  let elementCount = 1;
  for (let d = 0; d < n; d++) {
    const dim = shape[d]!;
    if (!Number.isSafeInteger(dim) || dim < 1 || dim > 0x7fffffff) {
      throw invalidArgument('invalid dimension', `shape[${d}]`, 'an integer in [1, 2^31)', String(dim));
    }
    elementCount *= dim;
  }
  if (dense.length !== elementCount) {
    throw invalidArgument('dense data does not match the shape', 'dense.length',
      `${elementCount} elements for shape [${shape.join(', ')}]`, String(dense.length));
  }
  const k = blockMap.length;
  if (blockSize.length !== k) {
    throw invalidArgument('block_size and block_map differ in length', 'block_size', `${k} entries`, `${blockSize.length}`);
  }
  if (k > n) throw invalidArgument('more block dimensions than tensor dimensions', 'block_map', `at most ${n} entries`, `${k}`);
  for (let j = 0; j < k; j++) {
    const d = blockMap[j]!;
    // The reference matches block_map against dimensions in ascending order: anything else is misread.
    if (!Number.isInteger(d) || d < 0 || d >= n || (j > 0 && d <= blockMap[j - 1]!)) {
      throw invalidArgument('block_map must list distinct original dimensions in ascending order',
        `block_map[${j}]`, `an integer in [${j > 0 ? blockMap[j - 1]! + 1 : 0}, ${n})`, String(d));
    }
    const b = blockSize[j]!;
    if (!Number.isSafeInteger(b) || b < 1) {
      throw invalidArgument('invalid block size', `block_size[${j}]`, 'an integer >= 1', String(b));
    }
    if (shape[d]! % b !== 0) {
      throw invalidArgument(`block size does not divide dimension ${d}; TFLite would silently drop the tail`,
        `block_size[${j}]`, `a divisor of shape[${d}] = ${shape[d]}`, String(b));
    }
  }
  const levels = n + k;
  if (traversalOrder.length !== levels) {
    throw invalidArgument('traversal_order has the wrong length', 'traversal_order',
      `${levels} entries (n = ${n} + k = ${k})`, String(traversalOrder.length));
  }
  checkPermutation(traversalOrder, 0, n, 'traversal_order');
  checkPermutation(traversalOrder, n, levels, 'traversal_order');
  if (levelFormats.length !== n && levelFormats.length !== levels) {
    throw invalidArgument('formats have the wrong length', 'levelFormats', `${n} (or ${levels}) entries`, String(levelFormats.length));
  }
  for (let d = 0; d < levelFormats.length; d++) {
    const f = levelFormats[d];
    if (f !== 'DENSE' && f !== 'SPARSE_CSR') {
      throw invalidArgument('unknown dimension format', `levelFormats[${d}]`, "'DENSE' or 'SPARSE_CSR'", String(f));
    }
    if (d >= n && f !== 'DENSE') {
      throw new PrunepackError('UNSUPPORTED', 'block dimensions are always stored DENSE (as in TFLite)', {
        location: `levelFormats[${d}]`, expected: 'DENSE', found: f,
      });
    }
  }

  // ---- layout ----
  const layout = levelLayout(shape, traversalOrder, blockMap, blockSize);
  const size = layout.size;
  const stride = layout.stride;
  const sparse = new Uint8Array(levels);
  let lastSparse = -1;
  for (let l = 0; l < n; l++) {
    if (levelFormats[traversalOrder[l]!] === 'SPARSE_CSR') { sparse[l] = 1; lastSparse = l; }
  }

  if (lastSparse < 0) {
    // No sparse level: every element, in traversal order.
    const all = allocateLike(dense, elementCount);
    copyTraversal(dense, 0, size, stride, 0, levels, all, 0);
    return { params: { traversalOrder: [...traversalOrder], blockMap: [...blockMap], dimMetadata: denseMetadata(size, levels) }, values: all };
  }

  // ---- zero test, decided once ----
  let mode: ZeroMode = ZeroMode.Numeric;
  let mask = 0;
  let predicate: (index: number) => boolean = () => false;
  if (typeof isZero === 'function') {
    mode = ZeroMode.Predicate;
    predicate = isZero;
  } else if (isBigIntArray(dense)) {
    mode = ZeroMode.BigInt;
  } else if (isZero !== undefined) {
    switch (isZero) {
      case 'float16': case 'bfloat16': mode = ZeroMode.Masked; mask = 0x7fff; break;
      case 'float8e4m3fn': case 'float8e5m2': mode = ZeroMode.Masked; mask = 0x7f; break;
      case 'float8e8m0': mode = ZeroMode.Predicate; break; // no zero exists: predicate stays () => false
      case 'int4': case 'uint4': case 'int2': case 'uint2': case 'float4e2m1':
      case 'string': case 'resource': case 'variant': case 'complex64': case 'complex128':
        throw new PrunepackError('UNSUPPORTED', `no element-wise sparse encoding for dtype ${isZero}`, {
          expected: 'a dtype with one typed-array element per value', found: isZero,
        });
      default: mode = ZeroMode.Numeric;
    }
  }

  // ---- fast path: the last original level sparse, every other level dense, at most one block ----
  if (fast && lastSparse === n - 1 && k <= 1 && elementCount <= 0x7fffffff && (mode === ZeroMode.Numeric || mode === ZeroMode.Masked)) {
    let onlyLast = true;
    for (let l = 0; l < n - 1; l++) if (sparse[l]) onlyLast = false;
    const bits = onlyLast ? zeroTestBits(dense, mode === ZeroMode.Masked ? mask : -1) : null;
    if (bits) return lastLevelCsr(dense, bits.view, bits.mask, size, stride, n, k, traversalOrder, blockMap);
  }

  // ---- walk (pass 1 counts, pass 2 fills) ----
  const lastLevel = levels - 1;
  const lastIsDense = lastSparse < lastLevel;
  const innerSize = size[lastLevel]!;
  const innerStride = stride[lastLevel]!;
  const coord = new Float64Array(levels);
  const position = new Float64Array(levels);
  const storedCount = new Float64Array(levels);
  const indices: (Int32Array | null)[] = new Array<Int32Array | null>(levels).fill(null);
  const segmentCounts: (Int32Array | null)[] = new Array<Int32Array | null>(levels).fill(null);
  // Elements under one stored position of the innermost sparse level (last-level-dense case).
  let blockElements = 1;
  for (let l = lastSparse + 1; l < levels; l++) blockElements *= size[l]!;
  let storedValues: T | null = null;
  const num = dense as unknown as ArrayLike<number>;
  const big = dense as unknown as ArrayLike<bigint>;

  for (let pass = 1; pass <= 2; pass++) {
    const fill = pass === 2;
    coord.fill(0);
    storedCount.fill(0);
    let rowOffset = 0;
    let flagDepth = 0; // sparse levels above this one already hold the current prefix
    let changed = 0;   // first level whose coordinate changed when entering this row
    for (;;) {
      if (changed < flagDepth) flagDepth = changed;
      if (!(lastIsDense && flagDepth > lastSparse)) {
        let offset = rowOffset;
        for (let j = 0; j < innerSize; j++, offset += innerStride) {
          let zero: boolean;
          switch (mode) {
            case ZeroMode.Numeric: zero = num[offset] === 0; break;
            case ZeroMode.Masked: zero = (num[offset]! & mask) === 0; break;
            case ZeroMode.BigInt: zero = big[offset] === 0n; break;
            default: zero = predicate(offset);
          }
          if (zero) continue;
          // First nonzero under the prefixes of levels flagDepth..lastSparse: store them.
          coord[lastLevel] = j;
          for (let l = flagDepth; l <= lastSparse; l++) {
            if (sparse[l]) {
              if (fill) {
                const parent = l === 0 ? 0 : position[l - 1]!;
                segmentCounts[l]![parent + 1]!++;
                indices[l]![storedCount[l]!] = coord[l]!;
                position[l] = storedCount[l]!;
              }
              storedCount[l]!++;
            } else if (fill) {
              position[l] = (l === 0 ? 0 : position[l - 1]!) * size[l]! + coord[l]!;
            }
          }
          if (lastIsDense) {
            if (fill) {
              let base = offset - j * innerStride;
              for (let l = lastSparse + 1; l < lastLevel; l++) base -= coord[l]! * stride[l]!;
              copyTraversal(dense, base, size, stride, lastSparse + 1, levels, storedValues!,
                position[lastSparse]! * blockElements);
            }
            flagDepth = lastSparse + 1;
            break; // the rest of this row lies inside the block just stored
          }
          if (fill) (storedValues as unknown as { [i: number]: number | bigint })[storedCount[lastLevel]! - 1] = dense[offset]!;
          flagDepth = lastLevel;
        }
      }
      // Advance the odometer of levels 0..lastLevel-1.
      let l = lastLevel - 1;
      while (l >= 0) {
        coord[l]!++;
        rowOffset += stride[l]!;
        if (coord[l]! < size[l]!) break;
        rowOffset -= stride[l]! * size[l]!;
        coord[l] = 0;
        l--;
      }
      if (l < 0) break;
      changed = l;
    }

    if (!fill) {
      // Allocate everything once from the counts.
      let outerPositions = 1;
      for (let l = 0; l <= lastSparse; l++) {
        if (sparse[l]) {
          if (outerPositions + 1 > 0x7fffffff || storedCount[l]! > 0x7fffffff) {
            throw new PrunepackError('UNSUPPORTED', 'sparse level too large for Int32 index vectors', {
              location: `level ${l}`, expected: 'fewer than 2^31 stored positions', found: String(outerPositions),
            });
          }
          segmentCounts[l] = new Int32Array(outerPositions + 1);
          indices[l] = new Int32Array(storedCount[l]!);
          outerPositions = storedCount[l]!;
        } else {
          outerPositions *= size[l]!;
        }
      }
      storedValues = allocateLike(dense, lastIsDense ? outerPositions * blockElements : storedCount[lastLevel]!);
    }
  }

  const dimMetadata: DimensionMetadata[] = denseMetadata(size, levels);
  for (let l = 0; l <= lastSparse; l++) {
    if (!sparse[l]) continue;
    const segments = segmentCounts[l]!;
    for (let i = 1; i < segments.length; i++) segments[i] = segments[i]! + segments[i - 1]!;
    dimMetadata[l] = {
      format: 'SPARSE_CSR',
      segments: narrowestIndexVector(segments),
      indices: narrowestIndexVector(indices[l]!),
    };
  }
  return {
    params: { traversalOrder: [...traversalOrder], blockMap: [...blockMap], dimMetadata },
    values: storedValues!,
  };
}

function denseMetadata(size: Float64Array, levels: number): DimensionMetadata[] {
  const out: DimensionMetadata[] = [];
  for (let l = 0; l < levels; l++) out.push({ format: 'DENSE', denseSize: size[l]! });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fast path: the layouts TFLite's own exporter and FULLY_CONNECTED use, every original level DENSE
// but the last one (SPARSE_CSR), with no block or one block level (CSR over rows, 1x4 / 1x16
// blocks). The elements are read and copied as integer bit patterns, and the element test is
// branch-free: (-(bits & mask)) >>> 31 is 1 for a stored element, 0 for a zero. Anything else
// (sparse outer levels, several blocks, predicates, BigInt, float64) takes the generic walk.

type BitView = Int32Array | Uint16Array | Uint8Array;

/**
 * An integer view of `a`'s elements whose masked bits are zero exactly when the element is zero
 * under the zero test (`maskedBy` >= 0: ZeroMode.Masked with that mask; -1: the numeric rule), or
 * null when the fast path does not apply. The mask fits 31 bits, so `bits & mask` is never negative.
 */
function zeroTestBits(a: NumericArray, maskedBy: number): { view: BitView; mask: number } | null {
  if (a instanceof Float32Array) {
    // value === 0 is true for +0 and -0 only (NaN has exponent bits): the bits without the sign.
    return maskedBy < 0 ? { view: new Int32Array(a.buffer, a.byteOffset, a.length), mask: 0x7fffffff } : null;
  }
  if (a instanceof Uint16Array || a instanceof Int16Array) {
    return { view: new Uint16Array(a.buffer, a.byteOffset, a.length), mask: maskedBy < 0 ? 0xffff : maskedBy & 0xffff };
  }
  if (a instanceof Uint8Array || a instanceof Int8Array) {
    return { view: new Uint8Array(a.buffer, a.byteOffset, a.length), mask: maskedBy < 0 ? 0xff : maskedBy & 0xff };
  }
  return null;
}

/** The same kind of integer view over another array of the same element type (for copying values as bits). */
function sameBits(view: BitView, a: NumericArray): BitView {
  if (view instanceof Int32Array) return new Int32Array(a.buffer, a.byteOffset, a.length);
  if (view instanceof Uint16Array) return new Uint16Array(a.buffer, a.byteOffset, a.length);
  return new Uint8Array(a.buffer, a.byteOffset, a.length);
}

/** Stored units (elements, or blocks of `b` elements `bStride` apart) of one row. */
function countRow(bits: BitView, mask: number, offset: number, units: number, step: number, b: number, bStride: number): number {
  let count = 0;
  if (b === 1) {
    for (let j = 0, o = offset; j < units; j++, o += step) count += (-(bits[o]! & mask)) >>> 31;
  } else {
    for (let j = 0, o = offset; j < units; j++, o += step) {
      let any = 0;
      for (let e = 0, p = o; e < b; e++, p += bStride) any |= bits[p]!;
      count += (-(any & mask)) >>> 31;
    }
  }
  return count;
}

/** Index of the last stored unit of a row that has one. */
function lastStored(bits: BitView, mask: number, offset: number, units: number, step: number, b: number, bStride: number): number {
  for (let j = units - 1; j >= 0; j--) {
    let any = 0;
    for (let e = 0, p = offset + j * step; e < b; e++, p += bStride) any |= bits[p]!;
    if ((any & mask) !== 0) return j;
  }
  return -1;
}

/**
 * One row: its `units` units from dense offset `offset`, each written at the cursor k (index and
 * values; b elements per unit), k moving past a unit only when it holds a nonzero, so the next
 * unit overwrites a zero one. Stops at `end` (arrays of the exact size) or after the row. Returns k.
 */
function fillRow(bits: BitView, mask: number, offset: number, units: number, step: number, b: number, bStride: number,
  indices: IndexVector, values: BitView, k: number, end: number): number {
  if (b === 1) {
    for (let j = 0, o = offset; j < units && k < end; j++, o += step) {
      const x = bits[o]!;
      indices[k] = j;
      values[k] = x;
      k += (-(x & mask)) >>> 31;
    }
    return k;
  }
  for (let j = 0, o = offset; j < units && k < end; j++, o += step) {
    let any = 0;
    for (let e = 0, p = o, q = k * b; e < b; e++, p += bStride, q++) {
      const x = bits[p]!;
      values[q] = x;
      any |= x;
    }
    indices[k] = j;
    k += (-(any & mask)) >>> 31;
  }
  return k;
}

/**
 * Dense offset of each row (every level above the sparse one), in traversal order, by an odometer.
 * The fast path runs on tensors of fewer than 2^31 elements only, so offsets, sizes and strides are
 * small integers (int32 arithmetic in the loops, no double-to-index conversions).
 */
function rowOffsets(size: Float64Array, stride: Float64Array, sparseLevel: number, rows: number): Int32Array {
  const offsets = new Int32Array(rows);
  const coord = new Float64Array(sparseLevel);
  let offset = 0;
  for (let r = 0; r < rows; r++) {
    offsets[r] = offset;
    let l = sparseLevel - 1;
    while (l >= 0) {
      coord[l]!++;
      offset += stride[l]!;
      if (coord[l]! < size[l]!) break;
      offset -= stride[l]! * size[l]!;
      coord[l] = 0;
      l--;
    }
  }
  return offsets;
}

/**
 * Largest scratch (bytes) for the one-pass fast path: indices as Int32 and values for every unit
 * of the tensor. Larger tensors take the two-pass fill, which needs no scratch.
 */
let onePassMaxBytes = 160 << 20;

/** Tests: sets the scratch limit of the one-pass fast path (0 forces the two-pass fill); returns the previous one. */
export function setOnePassScratchLimit(bytes: number): number {
  const previous = onePassMaxBytes;
  onePassMaxBytes = bytes;
  return previous;
}

/** This thread's scratch for the one-pass fast path, grown on demand (kept: weights are encoded one after another). */
let scratchIndexBuffer = new Int32Array(0);
let scratchValueBuffer = new ArrayBuffer(0);

function csrScratchIndices(length: number): Int32Array {
  if (scratchIndexBuffer.length < length) scratchIndexBuffer = new Int32Array(length);
  return scratchIndexBuffer;
}

function csrScratchValues(like: BitView, length: number): BitView {
  const bytes = length * like.BYTES_PER_ELEMENT;
  if (scratchValueBuffer.byteLength < bytes) scratchValueBuffer = new ArrayBuffer(bytes);
  if (like instanceof Int32Array) return new Int32Array(scratchValueBuffer, 0, length);
  if (like instanceof Uint16Array) return new Uint16Array(scratchValueBuffer, 0, length);
  return new Uint8Array(scratchValueBuffer, 0, length);
}

/** dst[0..length) = src[0..length), both views of the same type (a memory copy). */
function copyInto(dst: BitView, src: BitView, length: number): void {
  if (dst instanceof Int32Array) dst.set((src as Int32Array).subarray(0, length));
  else if (dst instanceof Uint16Array) dst.set((src as Uint16Array).subarray(0, length));
  else dst.set((src as Uint8Array).subarray(0, length));
}

/**
 * One pass over every row into arrays that hold every unit plus one (fillRow, never stopping
 * early). Sets segments[r + 1] and returns the number of stored units.
 */
function fillRows(bits: BitView, mask: number, offsets: Int32Array, rows: number, units: number, step: number, b: number, bStride: number,
  indices: Int32Array, values: BitView, segments: Int32Array): number {
  let k = 0;
  for (let r = 0; r < rows; r++) {
    k = fillRow(bits, mask, offsets[r]!, units, step, b, bStride, indices, values, k, 0x7fffffff);
    segments[r + 1] = k;
  }
  return k;
}

/** sparsityFromDense for the layouts of the fast path (see above); same output as the generic walk. */
function lastLevelCsr<T extends NumericArray>(dense: T, bits: BitView, mask: number, size: Float64Array, stride: Float64Array,
  n: number, k: number, traversalOrder: readonly number[], blockMap: readonly number[]): SparseEncoding<T> {
  const s = n - 1;
  let rows = 1;
  for (let l = 0; l < s; l++) rows *= size[l]!;
  if (rows + 1 > 0x7fffffff) {
    throw new PrunepackError('UNSUPPORTED', 'sparse level too large for Int32 index vectors', {
      location: `level ${s}`, expected: 'fewer than 2^31 stored positions', found: String(rows),
    });
  }
  const units = size[s]! | 0;
  const step = stride[s]! | 0;
  const b = k ? size[n]! | 0 : 1;
  const bStride = k ? stride[n]! | 0 : 0;
  const offsets = rowOffsets(size, stride, s, rows);

  const segments = new Int32Array(rows + 1);
  let indices: IndexVector;
  let values: T;
  const capacity = rows * units + 1;
  if (capacity * (4 + b * bits.BYTES_PER_ELEMENT) <= onePassMaxBytes) {
    // One pass into this thread's scratch (every unit written, the cursor advancing past stored
    // ones), then the stored part copied out at its exact size and narrowest index width.
    const scratchIndices = csrScratchIndices(capacity);
    const scratchValues = csrScratchValues(bits, capacity * b);
    const total = fillRows(bits, mask, offsets, rows, units, step, b, bStride, scratchIndices, scratchValues, segments);
    let maxIndex = 0;
    for (let r = 0; r < rows; r++) {
      // Indices rise inside a row: its last stored unit is its largest index.
      if (segments[r + 1]! > segments[r]!) { const last = scratchIndices[segments[r + 1]! - 1]!; if (last > maxIndex) maxIndex = last; }
    }
    const stored = scratchIndices.subarray(0, total);
    indices = maxIndex <= 0xffff ? (maxIndex <= 0xff ? new Uint8Array(total) : new Uint16Array(total)) : new Int32Array(total);
    indices.set(stored); // every index fits the width: the conversion keeps it
    values = allocateLike(dense, total * b);
    copyInto(sameBits(bits, values), scratchValues, total * b);
  } else {
    // Too large for the scratch: pass 1 counts the stored units per row (cumulative: the
    // segments) and finds the largest stored unit index; pass 2 fills arrays of the exact size.
    let total = 0;
    let maxIndex = 0;
    for (let r = 0; r < rows; r++) {
      const count = countRow(bits, mask, offsets[r]!, units, step, b, bStride);
      if (count) {
        const last = lastStored(bits, mask, offsets[r]!, units, step, b, bStride);
        if (last > maxIndex) maxIndex = last;
      }
      total += count;
      segments[r + 1] = total;
    }
    // Indices at the narrowest width (what narrowestIndexVector picks), values as bits.
    indices = maxIndex <= 0xff ? new Uint8Array(total) : maxIndex <= 0xffff ? new Uint16Array(total) : new Int32Array(total);
    values = allocateLike(dense, total * b);
    const valueBits = sameBits(bits, values);
    for (let r = 0; r < rows; r++) {
      fillRow(bits, mask, offsets[r]!, units, step, b, bStride, indices, valueBits, segments[r]!, segments[r + 1]!);
    }
  }

  const levels = n + k;
  const dimMetadata = denseMetadata(size, levels);
  dimMetadata[s] = { format: 'SPARSE_CSR', segments: narrowestIndexVector(segments), indices };
  return { params: { traversalOrder: [...traversalOrder], blockMap: [...blockMap], dimMetadata }, values };
}

/** Integer view of a decode's source or target for a bit-exact copy, or null (BigInt, float64: generic decode). */
function copyBits(a: NumericArray): BitView | null {
  if (a instanceof Float32Array || a instanceof Int32Array || a instanceof Uint32Array) return new Int32Array(a.buffer, a.byteOffset, a.length);
  if (a instanceof Uint16Array || a instanceof Int16Array) return new Uint16Array(a.buffer, a.byteOffset, a.length);
  if (a instanceof Uint8Array || a instanceof Int8Array) return new Uint8Array(a.buffer, a.byteOffset, a.length);
  return null;
}

/**
 * The rows of a fast-path layout (every original level dense but the last, SPARSE_CSR; at most
 * one dense block level): each row's first dense position, the CSR vectors, the stride of one
 * stored unit and of one element inside a block.
 */
function lastLevelRows(params: SparsityParams, n: number, size: Float64Array, stride: Float64Array) {
  const k = params.traversalOrder.length - n;
  const s = n - 1;
  const level = params.dimMetadata[s] as Extract<DimensionMetadata, { format: 'SPARSE_CSR' }>;
  let rows = 1;
  for (let l = 0; l < s; l++) rows *= size[l]!;
  return {
    rows, offsets: rowOffsets(size, stride, s, rows), segments: level.segments, indices: level.indices,
    units: size[s]! | 0, step: stride[s]! | 0, b: k ? size[n]! | 0 : 1, bStride: k ? stride[n]! | 0 : 0,
  };
}

/**
 * denseFromSparsity for the fast path's layouts (verified metadata; `dst` zeroed): scatters each
 * row's stored units. Returns false (nothing written) for any other layout.
 */
function scatterLastLevelCsr(values: NumericArray, dst: NumericArray, params: SparsityParams, n: number, size: Float64Array, stride: Float64Array): boolean {
  const levels = params.traversalOrder.length;
  const k = levels - n;
  if (k > 1 || dst.length > 0x7fffffff) return false;
  for (let l = 0; l < levels; l++) if ((params.dimMetadata[l]!.format === 'SPARSE_CSR') !== (l === n - 1)) return false;
  const src = copyBits(values);
  const out = copyBits(dst);
  if (!src || !out || src.constructor !== out.constructor) return false;
  const { rows, offsets, segments, indices, step, b, bStride } = lastLevelRows(params, n, size, stride);
  for (let r = 0; r < rows; r++) {
    const base = offsets[r]!;
    const end = segments[r + 1]!;
    if (b === 1) {
      for (let q = segments[r]!; q < end; q++) out[base + indices[q]! * step] = src[q]!;
    } else {
      for (let q = segments[r]!; q < end; q++) {
        for (let e = 0, p = base + indices[q]! * step, v = q * b; e < b; e++, p += bStride, v++) out[p] = src[v]!;
      }
    }
  }
  return true;
}

/**
 * Checks stored `values` with verified `params` against the dense tensor they encode, without
 * decoding: the row-major index of an element where the decode would differ from `dense` other
 * than by a zero of either sign (the rule of `isZero`, as in sparsityFromDense; the first such
 * element in traversal order), -1 when none; null
 * when the layout is not one of the fast path's (or an index is not strictly increasing inside its
 * row): decode with denseFromSparsity and compare instead. One pass over each row: every stored
 * unit equals the dense elements it covers, and the row has no more nonzero elements than the
 * stored units hold, so no nonzero lies outside them. Used by the writer's check of every weight
 * and by the read-back of `convert`.
 */
export function firstSparseMismatch(values: NumericArray, shape: readonly number[], params: SparsityParams, dense: NumericArray, isZero?: ZeroTest): number | null {
  const n = shape.length;
  const levels = params.traversalOrder.length;
  const k = levels - n;
  if (n < 1 || k < 0 || k > 1 || params.dimMetadata.length !== levels) return null;
  for (let l = 0; l < levels; l++) if ((params.dimMetadata[l]!.format === 'SPARSE_CSR') !== (l === n - 1)) return null;
  const maskedBy = isZero === 'float16' || isZero === 'bfloat16' ? 0x7fff : isZero === 'float8e4m3fn' || isZero === 'float8e5m2' ? 0x7f
    : isZero === undefined || (typeof isZero === 'string' && isZero !== 'float8e8m0') ? -1 : null;
  if (maskedBy === null) return null;
  const test = zeroTestBits(dense, maskedBy);
  if (!test || values.constructor !== dense.constructor) return null;
  const bits = test.view;
  const mask = test.mask;
  const stored = sameBits(bits, values);
  const blockSize: number[] = k ? [(params.dimMetadata[n] as { denseSize: number }).denseSize] : [];
  const layout = levelLayout(shape, params.traversalOrder, params.blockMap, blockSize);
  if (layout.elementCount !== dense.length || dense.length > 0x7fffffff) return null;
  const size = layout.size;
  const stride = layout.stride;
  const { rows, offsets, segments, indices, units, step, b, bStride } = lastLevelRows(params, n, size, stride);
  for (let r = 0; r < rows; r++) {
    const base = offsets[r]!;
    const end = segments[r + 1]!;
    let previous = -1;
    let storedNonzeros = 0;
    if (b === 1) {
      for (let q = segments[r]!; q < end; q++) {
        const j = indices[q]!;
        if (j <= previous || j >= units) return null;
        previous = j;
        const p = base + j * step;
        const x = bits[p]!;
        const y = stored[q]!;
        if (x !== y && ((x | y) & mask) !== 0) return p;
        storedNonzeros += (-(y & mask)) >>> 31;
      }
    } else for (let q = segments[r]!; q < end; q++) {
      const j = indices[q]!;
      if (j <= previous || j >= units) return null;
      previous = j;
      for (let e = 0, p = base + j * step, v = q * b; e < b; e++, p += bStride, v++) {
        const x = bits[p]!;
        const y = stored[v]!;
        if (x !== y && ((x | y) & mask) !== 0) return p;
        storedNonzeros += (-(y & mask)) >>> 31;
      }
    }
    if (countElements(bits, mask, base, units, step, b, bStride) !== storedNonzeros) {
      return firstUnstoredNonzero(bits, mask, base, units, step, b, bStride, indices, segments[r]!, end);
    }
  }
  return -1;
}

/** Nonzero elements of one row (every element of every unit). */
function countElements(bits: BitView, mask: number, offset: number, units: number, step: number, b: number, bStride: number): number {
  if (b === 1) return countRow(bits, mask, offset, units, step, 1, 0);
  let count = 0;
  for (let j = 0, o = offset; j < units; j++, o += step) {
    for (let e = 0, p = o; e < b; e++, p += bStride) count += (-(bits[p]! & mask)) >>> 31;
  }
  return count;
}

/** Dense offset of the first nonzero element of a row outside its stored units (q..end-1, sorted). */
function firstUnstoredNonzero(bits: BitView, mask: number, offset: number, units: number, step: number, b: number, bStride: number,
  indices: IndexVector, q: number, end: number): number {
  for (let j = 0, o = offset; j < units; j++, o += step) {
    if (q < end && indices[q] === j) { q++; continue; }
    for (let e = 0, p = o; e < b; e++, p += bStride) if ((bits[p]! & mask) !== 0) return p;
  }
  return offset; // unreachable when the counts differed
}

/** Scratch coordinates for copyTraversal (levels never exceed this in practice; grown on demand). */
let scratch = new Float64Array(16);

/**
 * Copies the elements under one prefix (levels `from`..`to-1` vary) in traversal order from
 * `src` (starting at dense offset `base`) to `dst[dstStart...]`.
 */
function copyTraversal(src: NumericArray, base: number, size: Float64Array, stride: Float64Array,
  from: number, to: number, dst: NumericArray, dstStart: number): void {
  const s = src as unknown as ArrayLike<number>;
  const d = dst as unknown as { [i: number]: number };
  const last = to - 1;
  const innerSize = size[last]!;
  const innerStride = stride[last]!;
  if (scratch.length < to) scratch = new Float64Array(to);
  const coord = scratch;
  for (let l = from; l < last; l++) coord[l] = 0;
  let rowOffset = base;
  let out = dstStart;
  for (;;) {
    let offset = rowOffset;
    for (let j = 0; j < innerSize; j++, offset += innerStride) d[out++] = s[offset]!;
    let l = last - 1;
    while (l >= from) {
      coord[l]!++;
      rowOffset += stride[l]!;
      if (coord[l]! < size[l]!) break;
      rowOffset -= stride[l]! * size[l]!;
      coord[l] = 0;
      l--;
    }
    if (l < from) return;
  }
}

/**
 * Decodes stored values back into a dense row-major tensor (TFLite's SparseToDense). The metadata
 * is verified first (verifySparsity), so hostile metadata cannot write out of bounds. Block sizes
 * are read from the block levels' dense_size. Positions not stored are zero (+0, 0n).
 */
export function denseFromSparsity<T extends NumericArray>(values: T, shape: readonly number[],
  params: SparsityParams, out?: T): T {
  return decodeSparse(values, shape, params, out, true);
}

/** denseFromSparsity without the fast path (the generic walk for every layout); for the tests that compare the two. */
export function denseFromSparsityGeneric<T extends NumericArray>(values: T, shape: readonly number[],
  params: SparsityParams, out?: T): T {
  return decodeSparse(values, shape, params, out, false);
}

function decodeSparse<T extends NumericArray>(values: T, shape: readonly number[], params: SparsityParams, out: T | undefined, fast: boolean): T {
  verifySparsity(params, [...shape], values.length);
  const n = shape.length;
  const levels = params.traversalOrder.length;
  const k = levels - n;
  const blockSize: number[] = new Array<number>(k).fill(0);
  for (let l = n; l < levels; l++) {
    blockSize[params.traversalOrder[l]! - n] = (params.dimMetadata[l] as { denseSize: number }).denseSize;
  }
  const layout = levelLayout(shape, params.traversalOrder, params.blockMap, blockSize);
  const elementCount = layout.elementCount;
  let dense: T;
  if (out) {
    if (out.length !== elementCount) {
      throw invalidArgument('output array does not match the shape', 'out.length', String(elementCount), String(out.length));
    }
    dense = out;
  } else {
    dense = allocateLike(values, elementCount);
  }
  if (isBigIntArray(dense)) dense.fill(0n); else (dense as Exclude<NumericArray, BigInt64Array | BigUint64Array>).fill(0);

  const size = layout.size;
  const stride = layout.stride;
  if (fast && scatterLastLevelCsr(values, dense, params, n, size, stride)) return dense;
  const segments: (IndexVector | null)[] = [];
  const indices: (IndexVector | null)[] = [];
  for (let l = 0; l < levels; l++) {
    const m = params.dimMetadata[l]!;
    segments.push(m.format === 'SPARSE_CSR' ? m.segments : null);
    indices.push(m.format === 'SPARSE_CSR' ? m.indices : null);
  }
  const src = values as unknown as ArrayLike<number>;
  const dst = dense as unknown as { [i: number]: number };
  const last = levels - 1;
  // For each level: the child-position range under the current parent, and the dense offset of
  // the current prefix above it.
  const next = new Float64Array(levels);
  const end = new Float64Array(levels);
  const offsetAbove = new Float64Array(levels);
  const setRange = (l: number, parent: number): void => {
    const seg = segments[l];
    if (seg) { next[l] = seg[parent]!; end[l] = seg[parent + 1]!; } else { next[l] = parent * size[l]!; end[l] = next[l]! + size[l]!; }
  };
  setRange(0, 0);
  let l = 0;
  while (l >= 0) {
    if (l === last) {
      const base = offsetAbove[last]!;
      const idx = indices[last];
      const st = stride[last]!;
      const lo = next[last]!;
      const hi = end[last]!;
      if (idx) {
        for (let q = lo; q < hi; q++) dst[base + idx[q]! * st] = src[q]!;
      } else {
        for (let q = lo, o = base; q < hi; q++, o += st) dst[o] = src[q]!;
      }
      l--;
      continue;
    }
    const q = next[l]!;
    if (q >= end[l]!) { l--; continue; }
    next[l] = q + 1;
    const idx = indices[l];
    const c = idx ? idx[q]! : q - (end[l]! - size[l]!);
    offsetAbove[l + 1] = offsetAbove[l]! + c * stride[l]!;
    setRange(l + 1, q);
    l++;
  }
  return dense;
}
