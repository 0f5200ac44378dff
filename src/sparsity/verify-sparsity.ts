/**
 * Checks TFLite sparsity metadata the way TFLite's model verifier does
 * (tensorflow/lite/core/tools/verifier.cc: VerifyAndCountSparseElements, VerifyAndCountElements),
 * plus the rules the reference runtime silently relies on. The runtime itself checks nothing:
 * metadata that passes here is the only thing standing between a writer bug and garbage weights.
 *
 * Stricter than TFLite's verifier, on purpose: segments must start at 0; block_map must be
 * ascending and point at original dimensions; block sizes must divide their dimension; block
 * levels must be DENSE and dim_metadata[n + i] must be block dimension i's size (TFLite's verifier
 * and runtime both read the block size from there, whatever the block traversal order says).
 */
import { PrunepackError } from '../errors.js';
import type { IndexVector, SparsityParams } from './types.js';

export interface StoredBytes {
  /** Byte length of the tensor's buffer. */
  bufferBytes: number;
  /** Bytes per stored element. */
  elementSize: number;
}

export interface VerifySparsityOptions {
  /** Also require strictly increasing indices inside each segment (what our encoder emits). */
  requireSortedIndices?: boolean;
}

function invalid(what: string, location: string, expected: string, found: string): PrunepackError {
  return new PrunepackError('INVALID_SPARSITY', what, { location, expected, found });
}

function isIndexVector(v: unknown): v is IndexVector {
  return v instanceof Uint8Array || v instanceof Uint16Array || v instanceof Int32Array;
}

function levelName(level: number, dim: number, size: number): string {
  return `dim_metadata[${level}] (level ${level}, expanded dim ${dim} of size ${size})`;
}

/**
 * Verifies `params` for a tensor of dense `shape` whose buffer holds `stored` values (a count, or
 * buffer bytes + element size). Returns the number of stored elements. Throws PrunepackError
 * 'INVALID_SPARSITY' naming the field and position at fault, with expected and found values.
 */
export function verifySparsity(params: SparsityParams, shape: readonly number[],
  storedValueCount: number, options?: VerifySparsityOptions): number;
export function verifySparsity(params: SparsityParams, shape: readonly number[],
  bufferBytes: number, elementSize: number, options?: VerifySparsityOptions): number;
export function verifySparsity(params: SparsityParams, shape: readonly number[],
  stored: StoredBytes, options?: VerifySparsityOptions): number;
export function verifySparsity(params: SparsityParams, shape: readonly number[],
  storedOrBytes: number | StoredBytes, elementSizeOrOptions?: number | VerifySparsityOptions,
  lastOptions?: VerifySparsityOptions): number {
  let stored: number | StoredBytes = storedOrBytes;
  let options: VerifySparsityOptions = {};
  if (typeof elementSizeOrOptions === 'number') {
    stored = { bufferBytes: storedOrBytes as number, elementSize: elementSizeOrOptions };
    options = lastOptions ?? {};
  } else if (elementSizeOrOptions) {
    options = elementSizeOrOptions;
  }
  const n = shape.length;
  if (n < 1) throw invalid('sparse tensor must have rank >= 1', 'shape', 'rank >= 1', '[]');
  for (let d = 0; d < n; d++) {
    const dim = shape[d]!;
    if (!Number.isSafeInteger(dim) || dim < 1 || dim > 0x7fffffff) {
      throw invalid('invalid dimension', `shape[${d}]`, 'an integer in [1, 2^31)', String(dim));
    }
  }
  const traversal = params.traversalOrder;
  const blockMap = params.blockMap ?? [];
  const meta = params.dimMetadata;
  if (!Array.isArray(traversal)) throw invalid('traversal_order missing', 'traversal_order', 'an array', String(traversal));
  if (!Array.isArray(meta)) throw invalid('dim_metadata missing', 'dim_metadata', 'an array', String(meta));
  const levels = traversal.length;
  if (levels < n) {
    throw invalid('traversal_order shorter than the tensor rank', 'traversal_order', `at least ${n} entries`, String(levels));
  }
  const k = levels - n;
  if (meta.length !== levels) {
    throw invalid('dim_metadata count differs from traversal_order length', 'dim_metadata', `${levels} entries`, String(meta.length));
  }
  if (blockMap.length !== k) {
    throw invalid('block_map length differs from the number of block dimensions', 'block_map',
      `${k} entries (traversal_order has ${levels} for rank ${n})`, String(blockMap.length));
  }

  // traversal_order: first n a permutation of 0..n-1, last k a permutation of n..n+k-1.
  const seen = new Uint8Array(levels);
  for (let i = 0; i < levels; i++) {
    const v = traversal[i]!;
    const lo = i < n ? 0 : n;
    const hi = i < n ? n : levels;
    if (!Number.isInteger(v) || v < lo || v >= hi) {
      throw invalid('traversal_order entry out of range', `traversal_order[${i}]`, `an integer in [${lo}, ${hi})`, String(v));
    }
    if (seen[v]) {
      throw invalid('traversal_order is not a permutation (repeated dimension)', `traversal_order[${i}]`,
        `a dimension not listed before, in [${lo}, ${hi})`, `${v} (repeated)`);
    }
    seen[v] = 1;
  }
  const levelOf = new Int32Array(levels); // expanded dim -> level that walks it
  for (let i = 0; i < levels; i++) levelOf[traversal[i]!] = i;

  // Expanded sizes: blocked dims divided by their block size, block dims = block sizes.
  const expanded = new Float64Array(levels);
  for (let d = 0; d < n; d++) expanded[d] = shape[d]!;
  for (let j = 0; j < k; j++) {
    const d = blockMap[j]!;
    if (!Number.isInteger(d) || d < 0 || d >= n) {
      throw invalid('block_map entry out of range', `block_map[${j}]`, `an original dimension in [0, ${n})`, String(d));
    }
    if (j > 0 && d <= blockMap[j - 1]!) {
      throw invalid('block_map must be strictly ascending (the TFLite runtime misreads any other order)',
        `block_map[${j}]`, `a dimension > ${blockMap[j - 1]}`, String(d));
    }
    const blockLevel = levelOf[n + j]!;
    const m = meta[blockLevel]!;
    if (m?.format !== 'DENSE') {
      throw invalid('block dimensions must be stored DENSE', `dim_metadata[${blockLevel}].format (block dim ${n + j})`,
        'DENSE', String(m?.format));
    }
    const b = m.denseSize;
    if (!Number.isSafeInteger(b) || b < 1) {
      throw invalid('block size must be >= 1', `dim_metadata[${blockLevel}].dense_size (block dim ${n + j})`, 'an integer >= 1', String(b));
    }
    const atFixedSlot = meta[n + j];
    if (atFixedSlot?.format !== 'DENSE' || atFixedSlot.denseSize !== b) {
      throw invalid('TFLite reads the size of block dimension i from dim_metadata[n + i]; this block traversal order makes it read another block size',
        `dim_metadata[${n + j}].dense_size (block dim ${n + j} is walked at level ${blockLevel})`,
        String(b), atFixedSlot?.format === 'DENSE' ? String(atFixedSlot.denseSize) : String(atFixedSlot?.format));
    }
    if (shape[d]! % b !== 0) {
      throw invalid('block size does not divide its dimension', `dim_metadata[${blockLevel}].dense_size (block dim ${n + j} of dim ${d})`,
        `a divisor of shape[${d}] = ${shape[d]}`, String(b));
    }
    expanded[n + j] = b;
    expanded[d] = expanded[d]! / b;
  }

  // Walk the levels: positions = stored positions of all levels so far.
  let positions = 1;
  for (let l = 0; l < levels; l++) {
    const dim = traversal[l]!;
    const size = expanded[dim]!;
    const m = meta[l]!;
    if (m?.format === 'DENSE') {
      if (m.denseSize !== size) {
        const j = dim < n ? blockMap.indexOf(dim) : -1;
        throw invalid('dense level size differs from its dimension', `${levelName(l, dim, size)}.dense_size`,
          j < 0 ? String(size) : `${size} (shape[${dim}] = ${shape[dim]} / block size ${expanded[n + j]} of block dim ${n + j})`,
          String(m.denseSize));
      }
      positions *= size;
      continue;
    }
    if (m?.format !== 'SPARSE_CSR') {
      throw invalid('unknown dimension format', `dim_metadata[${l}].format`, "'DENSE' or 'SPARSE_CSR'",
        String((m as { format?: unknown } | undefined)?.format));
    }
    const where = levelName(l, dim, size);
    const { segments, indices } = m;
    if (!isIndexVector(segments)) {
      throw invalid('array_segments missing or of an unsupported type', `${where}.array_segments`, 'Uint8Array, Uint16Array or Int32Array', String(segments));
    }
    if (!isIndexVector(indices)) {
      throw invalid('array_indices missing or of an unsupported type', `${where}.array_indices`, 'Uint8Array, Uint16Array or Int32Array', String(indices));
    }
    if (segments.length !== positions + 1) {
      throw invalid('array_segments length must be the stored positions of the outer levels + 1',
        `${where}.array_segments`, `${positions + 1} entries`, `${segments.length}`);
    }
    if (segments[0] !== 0) throw invalid('array_segments must start at 0', `${where}.array_segments[0]`, '0', String(segments[0]));
    for (let i = 1; i < segments.length; i++) {
      if (segments[i]! < segments[i - 1]!) {
        throw invalid('array_segments must be non-decreasing', `${where}.array_segments[${i}]`,
          `>= ${segments[i - 1]}`, String(segments[i]));
      }
    }
    const last = segments[segments.length - 1]!;
    if (last !== indices.length) {
      throw invalid('last array_segments value must equal the number of indices',
        `${where}.array_segments[${segments.length - 1}]`, String(indices.length), String(last));
    }
    // Sorted and in range in one pass (an index is above the previous one of its segment, which
    // starts at -1, and below the size); a violation is located by the two checks below.
    if (options.requireSortedIndices && sortedInRange(segments, indices, positions, size)) {
      positions = indices.length;
      continue;
    }
    for (let i = 0; i < indices.length; i++) {
      const v = indices[i]!;
      if (v < 0 || v >= size) {
        throw invalid('index outside its level', `${where}.array_indices[${i}]`, `an index in [0, ${size})`, String(v));
      }
    }
    if (options.requireSortedIndices) {
      for (let s = 0; s < positions; s++) {
        for (let i = segments[s]! + 1; i < segments[s + 1]!; i++) {
          if (indices[i]! <= indices[i - 1]!) {
            throw invalid('indices must be strictly increasing inside a segment', `${where}.array_indices[${i}] (segment ${s})`,
              `> ${indices[i - 1]}`, String(indices[i]));
          }
        }
      }
    }
    positions = indices.length;
  }

  if (typeof stored === 'number') {
    if (stored !== positions) {
      throw invalid('stored value count differs from the count the sparsity metadata implies', 'values',
        `${positions} values`, `${stored}`);
    }
  } else {
    const expectedBytes = positions * stored.elementSize;
    if (stored.bufferBytes !== expectedBytes) {
      throw invalid('buffer size differs from the size the sparsity metadata implies', 'buffer',
        `${expectedBytes} bytes (${positions} values x ${stored.elementSize} bytes)`, `${stored.bufferBytes} bytes`);
    }
  }
  return positions;
}

/** True when every segment's indices rise strictly and lie in [0, size) (segments already checked). */
function sortedInRange(segments: IndexVector, indices: IndexVector, positions: number, size: number): boolean {
  for (let s = 0; s < positions; s++) {
    let previous = -1;
    for (let i = segments[s]!, end = segments[s + 1]!; i < end; i++) {
      const v = indices[i]!;
      if (v <= previous) return false;
      previous = v;
    }
    if (previous >= size) return false;
  }
  return true;
}
