/**
 * Zero-structure analysis of one weight: how many zeros, where they sit (blocks, N:M groups,
 * whole rows and columns) and how evenly rows are filled. Browser-safe, no allocation per element.
 *
 * Matrix view (shared with codecs.ts): a tensor of shape [d0, ..., dn-1] (row-major) is seen as a
 * matrix of `rows` x `cols`:
 *   - rank 0: 1 x 1; rank 1: 1 x d0 (one row; the row axis must be 0);
 *   - rank >= 2: rows = d[rowAxis] (default 0), cols = product of every other dim, in order.
 * Element (r, c), with c = o * inner + i (inner = product of the dims after the row axis, o runs over
 * the dims before it), is flat index o * rows * inner + r * inner + i. With rowAxis 0 this is the
 * plain reshape to [d0, d1 * ... * dn-1]: for TFLite FULLY_CONNECTED [out, in] and CONV_2D OHWI
 * [out, h, w, in] the rows are the output channels and the columns the inputs (kernel taps x input
 * channels, input channel fastest). Use rowAxis 1 for ONNX MatMul [in, out] weights.
 *
 * Zero: numerically zero. Floats: +0 and -0 (bits & ~sign === 0), NaN never; float16/bfloat16:
 * (bits & 0x7fff) === 0; float8 e4m3fn/e5m2: (bits & 0x7f) === 0; the *fnuz kinds only 0x00 (0x80 is
 * their NaN); float8e8m0 has no zero. Integers: equal to the zero point (0 without quantization), per
 * channel along the quantization axis. The 'bitwise' rule makes -0 a nonzero (exact bit pattern +0
 * only), for callers that need sparse encodings to round-trip byte-exactly.
 */
import { PrunepackError } from '../errors.js';
import { elementCount, type DType } from '../model/dtype.js';

export type ZeroRule = 'numeric' | 'bitwise';

/** Zero points per tensor (one value) or per channel along `axis`; compatible with model Quantization. */
export interface ZeroPoints {
  zeroPoint: number | ArrayLike<number> | BigInt64Array;
  axis?: number;
}

/** The dense values of one weight. `values` may be any typed array over the raw little-endian bytes. */
export interface DenseWeight {
  values: ArrayBufferView;
  dtype: DType;
  shape: readonly number[];
  quantization?: ZeroPoints;
}

export interface MatrixView {
  rows: number;
  cols: number;
  rowAxis: number;
  /** Product of the dims before the row axis (1 when rowAxis is 0). */
  outer: number;
  /** Product of the dims after the row axis: flat distance between rows r and r + 1. */
  inner: number;
}

export interface BlockStats {
  /** Block height (rows) and width (columns). */
  rows: number;
  cols: number;
  /** False when the block does not divide the matrix; `reason` says which dimension. */
  applicable: boolean;
  reason?: string;
  blockCount: number;
  zeroBlocks: number;
  zeroBlockShare: number;
  /** Zero elements inside all-zero blocks (zeroBlocks * rows * cols). */
  zerosCovered: number;
  /** zerosCovered / all zeros of the weight. */
  zerosCoveredShare: number;
}

export interface NmStats {
  /** At most `n` nonzeros in every group of `m` consecutive columns (aligned, within a row). */
  n: number;
  m: number;
  applicable: boolean;
  reason?: string;
  groups: number;
  satisfyingGroups: number;
  share: number;
  /** True when every group satisfies the pattern. */
  satisfied: boolean;
}

export interface ZeroAnalysis {
  dtype: DType;
  shape: number[];
  zeroRule: ZeroRule;
  elementBytes: number;
  count: number;
  zeros: number;
  nonzeros: number;
  zeroShare: number;
  /**
   * Non-zero zero points that decoders must fill back in: per tensor (axis null) or per channel.
   * Null when every zero point is 0 (or there is no quantization).
   */
  zeroPoints: { axis: number | null; count: number } | null;
  matrix: MatrixView & { description: string };
  blocks: BlockStats[];
  /** Applicable block with the most zeros covered (ties: larger block, then listing order). */
  bestBlock: { rows: number; cols: number; zeroBlockShare: number; zerosCovered: number } | null;
  nm: NmStats[];
  /** Rows (output channels) that are entirely zero. */
  zeroRows: number;
  /** Matrix columns that are entirely zero. */
  zeroColumns: number;
  /**
   * Slices along the last axis (the input-channel axis of TFLite FC [out, in] and conv OHWI) that are
   * entirely zero; null for rank < 2 or when the last axis is the row axis.
   */
  zeroInputChannels: number | null;
  rowNnz: {
    min: number;
    max: number;
    mean: number;
    /** counts[k]: rows whose density nnz / cols lies in [binEdges[k], binEdges[k + 1]) (last bin closed). */
    histogram: { binEdges: number[]; counts: number[] };
  };
}

export interface AnalysisOptions {
  rowAxis?: number;
  blockShapes?: readonly (readonly [number, number])[];
  nmPatterns?: readonly (readonly [number, number])[];
  zeroRule?: ZeroRule;
  histogramBins?: number;
  /**
   * The weight's nonzero bits in flat element order (bit j of word i: element 32i + j is nonzero
   * under this zero rule, padding bits clear), when the caller computed them already (the audit's
   * WebAssembly kernel, src/audit/zero-bits-wasm.ts). Used only where `ZeroScanner.flatZeroTest`
   * is not null (rows are contiguous runs with one zero reference); the results are the same as
   * without it.
   */
  nonzeroBits?: Int32Array;
  /** Computes the bit-row counts instead of the JavaScript loops (same results); see BitStatsKernel. */
  bitStats?: BitStatsKernel;
}

/**
 * An accelerator for the per-row statistics over bit rows (the audit's WebAssembly kernel,
 * src/audit/zero-bits-wasm.ts). It works on word arrays in its own memory; analyzeZeros uses it
 * when it can (at most one block height fed straight by rows, the table N:M patterns accepted,
 * the arrays fit) and the JavaScript loops otherwise. Results are identical either way.
 */
export interface BitStatsKernel {
  /** `count` zeroed arrays of `words` words in the kernel's memory (valid for one analysis), or null. */
  wordArrays(count: number, words: number): Int32Array[] | null;
  /** Sets the N:M patterns (m in 2, 4, 8; at most three) of stats()'s nmOut; false when unsupported. */
  nmPatterns(patterns: readonly { n: number; m: number }[]): boolean;
  /** True when `words` lives in the kernel's memory (then stats() may read it in place). */
  owns(words: Int32Array): boolean;
  /**
   * Over words[start .. start + length): folds[0..5] += nonzero bits, bit pairs, nibbles, bytes,
   * 16-bit halves and words; nmOut[k] += groups violating pattern k; the words ORed into colAny
   * and into fed when given.
   */
  stats(words: Int32Array, start: number, length: number, colAny: Int32Array, fed: Int32Array | null, folds: Float64Array, nmOut: Float64Array | null): void;
  /** folds[0..5] += the counts of `words` (as stats), then ORs `words` into target (when given) and clears it. */
  foldPass(words: Int32Array, target: Int32Array | null, folds: Float64Array): void;
  /**
   * Optional: the whole row loop over rows read in place (stats of row r at r * wordsPerRow, then
   * in height order the foldPass of every height whose accumulator row r completed); returns
   * each row's nonzero count, or null (nothing changed) when it cannot. A height's `levels` (bit
   * k: folds[k]; default all) are the fold counts its caller reads: the others may stay unset.
   */
  scanRows?(flat: Int32Array, rows: number, wordsPerRow: number, colAny: Int32Array, fed: Int32Array | null,
    heights: readonly { height: number; acc: Int32Array; target: Int32Array | null; folds: Float64Array; levels?: number }[],
    rowFolds: Float64Array, nmOut: Float64Array | null): Int32Array | null;
}

export const DEFAULT_BLOCK_SHAPES: readonly (readonly [number, number])[] = [
  [1, 2], [1, 4], [1, 8], [1, 16], [2, 2], [4, 1], [4, 4], [8, 1], [16, 1],
];
export const DEFAULT_NM_PATTERNS: readonly (readonly [number, number])[] = [[2, 4], [1, 4], [2, 8]];

// ---------------------------------------------------------------------------------------------
// Element layout: how each dtype is read and what counts as zero.

/** Typed-array unit the kernels read: 1, 2 or 4 bytes; 8-byte elements are read as two u32 words. */
type UnitKind = 'u8' | 'u16' | 'u32' | 'pair';

interface ElementLayout {
  width: 1 | 2 | 4 | 8;
  unit: UnitKind;
  /** Bits that must all be clear (numeric rule) for a float to be zero; low/high word for 8-byte. */
  numericMask: [number, number];
  integer: boolean;
  signed: boolean;
  /** float8e8m0 has no zero at all. */
  neverZero: boolean;
}

const FULL = [-1, -1] as [number, number];
const LAYOUTS: Partial<Record<DType, ElementLayout>> = {
  float32: { width: 4, unit: 'u32', numericMask: [0x7fffffff, 0], integer: false, signed: false, neverZero: false },
  float16: { width: 2, unit: 'u16', numericMask: [0x7fff, 0], integer: false, signed: false, neverZero: false },
  bfloat16: { width: 2, unit: 'u16', numericMask: [0x7fff, 0], integer: false, signed: false, neverZero: false },
  float64: { width: 8, unit: 'pair', numericMask: [-1, 0x7fffffff], integer: false, signed: false, neverZero: false },
  complex64: { width: 8, unit: 'pair', numericMask: [0x7fffffff, 0x7fffffff], integer: false, signed: false, neverZero: false },
  float8e4m3fn: { width: 1, unit: 'u8', numericMask: [0x7f, 0], integer: false, signed: false, neverZero: false },
  float8e5m2: { width: 1, unit: 'u8', numericMask: [0x7f, 0], integer: false, signed: false, neverZero: false },
  float8e4m3fnuz: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: false, signed: false, neverZero: false },
  float8e5m2fnuz: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: false, signed: false, neverZero: false },
  float8e8m0: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: false, signed: false, neverZero: true },
  int8: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: true, signed: true, neverZero: false },
  uint8: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: true, signed: false, neverZero: false },
  bool: { width: 1, unit: 'u8', numericMask: [0xff, 0], integer: true, signed: false, neverZero: false },
  int16: { width: 2, unit: 'u16', numericMask: [0xffff, 0], integer: true, signed: true, neverZero: false },
  uint16: { width: 2, unit: 'u16', numericMask: [0xffff, 0], integer: true, signed: false, neverZero: false },
  int32: { width: 4, unit: 'u32', numericMask: [-1, 0], integer: true, signed: true, neverZero: false },
  uint32: { width: 4, unit: 'u32', numericMask: [-1, 0], integer: true, signed: false, neverZero: false },
  int64: { width: 8, unit: 'pair', numericMask: FULL, integer: true, signed: true, neverZero: false },
  uint64: { width: 8, unit: 'pair', numericMask: FULL, integer: true, signed: false, neverZero: false },
};

/** Byte width of one element for the dtypes the sparse analysis and codecs handle; throws otherwise. */
export function sparseElementBytes(dtype: DType): 1 | 2 | 4 | 8 {
  return layoutOf(dtype).width;
}

/** True when analysis and the sparse codecs handle this dtype. */
export function isSparseDType(dtype: DType): boolean {
  return LAYOUTS[dtype] !== undefined;
}

function layoutOf(dtype: DType): ElementLayout {
  const layout = LAYOUTS[dtype];
  if (!layout) {
    throw new PrunepackError('UNSUPPORTED', `sparse analysis does not handle dtype ${dtype}`, {
      expected: 'a whole-byte numeric dtype (float32/16, bfloat16, float64, float8, (u)int8..64, bool, complex64)',
      found: dtype,
      hint: 'sub-byte, string and complex128 weights stay dense',
    });
  }
  return layout;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Matrix view

export function matrixViewOf(shape: readonly number[], rowAxis = 0): MatrixView {
  const count = checkedCount(shape);
  const rank = shape.length;
  if (rank < 2) {
    if (rowAxis !== 0) {
      throw new PrunepackError('INVALID_ARGUMENT', `row axis ${rowAxis} is out of range for a rank-${rank} tensor`, {
        expected: '0', found: String(rowAxis),
      });
    }
    return { rows: 1, cols: count, rowAxis: 0, outer: 1, inner: count };
  }
  if (!Number.isInteger(rowAxis) || rowAxis < 0 || rowAxis >= rank) {
    throw new PrunepackError('INVALID_ARGUMENT', `row axis ${rowAxis} is out of range for shape [${shape.join(', ')}]`, {
      expected: `an integer in [0, ${rank - 1}]`, found: String(rowAxis),
    });
  }
  let outer = 1;
  for (let a = 0; a < rowAxis; a++) outer *= shape[a];
  let inner = 1;
  for (let a = rowAxis + 1; a < rank; a++) inner *= shape[a];
  const rows = shape[rowAxis];
  return { rows, cols: outer * inner, rowAxis, outer, inner };
}

function describeView(shape: readonly number[], view: MatrixView): string {
  if (shape.length < 2) return `rank-${shape.length} tensor viewed as one row of ${view.cols}`;
  const rest = shape.map((d, a) => (a === view.rowAxis ? null : `d${a}=${d}`)).filter((s) => s !== null);
  return `rows = dim ${view.rowAxis} (${view.rows}), cols = product of ${rest.join(' x ')} (${view.cols})`;
}

function checkedCount(shape: readonly number[]): number {
  try {
    return elementCount(shape);
  } catch (e) {
    throw new PrunepackError('INVALID_ARGUMENT', `invalid shape [${shape.join(', ')}]`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// Zero scanner: decides dtype, stride, zero test and zero points once; then tight loops per row.

/** Channel structure of the zero reference: channel of flat index f = floor(f / inner) % size. */
interface ChannelRefs {
  inner: number;
  size: number;
  lo: Int32Array;
  hi: Int32Array;
}

export class ZeroScanner {
  readonly view: MatrixView;
  readonly count: number;
  readonly width: 1 | 2 | 4 | 8;
  readonly unit: UnitKind;
  /** Raw bytes of the values (a view, or one aligned copy when the input was unaligned). */
  readonly bytes: Uint8Array;
  /** Aligned unit view over `bytes` (u32 for 4- and 8-byte elements). */
  readonly units: Uint8Array | Uint16Array | Uint32Array;
  /** Fill value bytes per channel (zero points as little-endian element bytes); null when all zero. */
  readonly fill: { axis: number | null; bytes: Uint8Array; count: number } | null;
  private readonly maskLo: number;
  private readonly maskHi: number;
  private readonly refLo: number;
  private readonly refHi: number;
  private readonly channels: ChannelRefs | null;

  constructor(weight: DenseWeight, rowAxis: number, zeroRule: ZeroRule) {
    if (!LITTLE_ENDIAN) throw new PrunepackError('UNSUPPORTED', 'sparse analysis needs a little-endian platform');
    const layout = layoutOf(weight.dtype);
    this.width = layout.width;
    this.unit = layout.unit;
    this.count = checkedCount(weight.shape);
    this.view = matrixViewOf(weight.shape, rowAxis);
    const v = weight.values;
    if (!ArrayBuffer.isView(v)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'weight values must be a typed array or DataView', { found: typeof v });
    }
    const expectedBytes = this.count * layout.width;
    if (v.byteLength !== expectedBytes) {
      throw new PrunepackError('INVALID_ARGUMENT', `weight values hold ${v.byteLength} bytes`, {
        expected: `${expectedBytes} bytes (${this.count} x ${weight.dtype} for shape [${weight.shape.join(', ')}])`,
        found: `${v.byteLength} bytes`,
      });
    }
    let bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const unitBytes = layout.unit === 'pair' ? 4 : layout.width;
    if (bytes.byteOffset % unitBytes !== 0) bytes = bytes.slice();
    this.bytes = bytes;
    this.units = layout.unit === 'u8' ? bytes
      : layout.unit === 'u16' ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1)
      : new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);

    if (layout.neverZero) {
      // (x & 0) !== 1 holds for every x.
      this.maskLo = 0; this.maskHi = 0; this.refLo = 1; this.refHi = 0;
    } else if (zeroRule === 'bitwise' || layout.integer) {
      this.maskLo = layout.width >= 4 ? -1 : (1 << (8 * layout.width)) - 1;
      this.maskHi = layout.width === 8 ? -1 : 0;
      this.refLo = 0; this.refHi = 0;
    } else {
      [this.maskLo, this.maskHi] = layout.numericMask;
      this.refLo = 0; this.refHi = 0;
    }
    this.channels = null;
    this.fill = null;
    if (weight.quantization && !layout.neverZero) {
      const refs = zeroPointBits(weight, layout);
      if (refs && layout.integer) {
        if (refs.lo.length === 1) {
          this.refLo = refs.lo[0] & this.maskLo;
          this.refHi = refs.hi[0] & this.maskHi;
        } else {
          this.channels = refs;
        }
        this.fill = { axis: refs.lo.length === 1 ? null : refs.axis, bytes: refs.bytes, count: refs.lo.length };
      }
    }
  }

  /**
   * The zero test as one unit width, mask and reference when every matrix row is one contiguous
   * run of elements with one zero reference (row axis 0 or rank < 2, no per-channel zero points,
   * elements of 1, 2 or 4 bytes): element x is zero when (x & mask) === ref. Null otherwise.
   */
  flatZeroTest(): { width: 1 | 2 | 4; mask: number; ref: number } | null {
    if (this.view.outer !== 1 || this.channels !== null || this.unit === 'pair') return null;
    return { width: this.width as 1 | 2 | 4, mask: this.maskLo, ref: this.refLo & this.maskLo };
  }

  /**
   * Writes 1 (nonzero) or 0 (zero) for every column of matrix row r to out[at .. at + cols) and
   * returns the row's nonzero count.
   */
  rowMask(r: number, out: Uint8Array, at: number): number {
    const { rows, inner, outer } = this.view;
    let n = 0;
    for (let o = 0; o < outer; o++) {
      n += this.segmentMask(o * rows * inner + r * inner, inner, out, at + o * inner);
    }
    return n;
  }

  /**
   * ORs 1 into flags[b] for every block b of `c` consecutive columns of matrix row r that holds a
   * nonzero (c divides cols); returns how many blocks of this row hold a nonzero. `scratch` is a
   * cols-byte buffer, used only when the row is not one contiguous run with one zero point.
   */
  rowBlockFlags(r: number, c: number, flags: Uint8Array, scratch: Uint8Array): number {
    const { inner, outer } = this.view;
    if (outer === 1 && this.channels === null) {
      const flat = r * inner;
      switch (this.unit) {
        case 'u8': return blockFlagsU8(this.units as Uint8Array, flat, c, this.maskLo, this.refLo, flags);
        case 'u16': return blockFlagsU16(this.units as Uint16Array, flat, c, this.maskLo, this.refLo, flags);
        case 'u32': return blockFlagsU32(this.units as Uint32Array, flat, c, this.maskLo, this.refLo, flags);
        default: break;
      }
    }
    this.rowMask(r, scratch, 0);
    let n = 0;
    for (let b = 0, i = 0; b < flags.length; b++) {
      let any = 0;
      for (const end = i + c; i < end; i++) any |= scratch[i];
      n += any;
      flags[b] |= any;
    }
    return n;
  }

  /** Sets bit c of words (LSB first) for every nonzero column c of matrix row r; words must be cleared. */
  rowBits(r: number, words: Int32Array): void {
    const { rows, inner, outer } = this.view;
    for (let o = 0; o < outer; o++) this.segmentBits(o * rows * inner + r * inner, inner, words, o * inner);
  }

  /**
   * Appends the nonzero elements of matrix row r to `dst` (units, starting at element `p`) and
   * returns the new element count. `columns[k]` gets the column of the k-th element and
   * `flags[c]` 0/1 per column when given. dst and columns need one spare slot: the loop is
   * branchless and writes every element before deciding whether to keep it.
   */
  rowCompact(r: number, dst: Uint8Array | Uint16Array | Uint32Array, p: number,
    columns: Uint8Array | Uint16Array | Uint32Array | null, flags: Uint8Array | null): number {
    const { rows, inner, outer } = this.view;
    const ch = this.channels;
    for (let o = 0; o < outer; o++) {
      const flat = o * rows * inner + r * inner;
      if (ch === null) {
        p = this.compactRun(flat, inner, this.refLo, this.refHi, dst, p, columns, flags, o * inner);
        continue;
      }
      for (let f = flat, end = flat + inner; f < end;) {
        const block = Math.floor(f / ch.inner);
        const stop = Math.min(end, (block + 1) * ch.inner);
        const c = block % ch.size;
        p = this.compactRun(f, stop - f, ch.lo[c] & this.maskLo, ch.hi[c] & this.maskHi, dst, p, columns, flags, o * inner + (f - flat));
        f = stop;
      }
    }
    return p;
  }

  private compactRun(flat: number, len: number, refLo: number, refHi: number, dst: Uint8Array | Uint16Array | Uint32Array,
    p: number, columns: Uint8Array | Uint16Array | Uint32Array | null, flags: Uint8Array | null, col: number): number {
    switch (this.unit) {
      case 'u8': return compactU8(this.units as Uint8Array, flat, len, this.maskLo, refLo, dst as Uint8Array, p, columns, flags, col);
      case 'u16': return compactU16(this.units as Uint16Array, flat, len, this.maskLo, refLo, dst as Uint16Array, p, columns, flags, col);
      case 'u32': return compactU32(this.units as Uint32Array, flat, len, this.maskLo, refLo, dst as Uint32Array, p, columns, flags, col);
      default: return compactPair(this.units as Uint32Array, flat, len, this.maskLo, this.maskHi, refLo, refHi,
        dst as Uint32Array, p, columns, flags, col);
    }
  }

  private segmentMask(flat: number, len: number, out: Uint8Array, at: number): number {
    const ch = this.channels;
    if (ch === null) return this.maskRun(flat, len, this.refLo, this.refHi, out, at);
    let n = 0;
    for (let f = flat, end = flat + len; f < end;) {
      const block = Math.floor(f / ch.inner);
      const stop = Math.min(end, (block + 1) * ch.inner);
      const c = block % ch.size;
      n += this.maskRun(f, stop - f, ch.lo[c] & this.maskLo, ch.hi[c] & this.maskHi, out, at + (f - flat));
      f = stop;
    }
    return n;
  }

  private segmentBits(flat: number, len: number, words: Int32Array, bit: number): void {
    const ch = this.channels;
    if (ch === null) {
      this.bitsRun(flat, len, this.refLo, this.refHi, words, bit);
      return;
    }
    for (let f = flat, end = flat + len; f < end;) {
      const block = Math.floor(f / ch.inner);
      const stop = Math.min(end, (block + 1) * ch.inner);
      const c = block % ch.size;
      this.bitsRun(f, stop - f, ch.lo[c] & this.maskLo, ch.hi[c] & this.maskHi, words, bit + (f - flat));
      f = stop;
    }
  }

  private maskRun(flat: number, len: number, refLo: number, refHi: number, out: Uint8Array, at: number): number {
    switch (this.unit) {
      case 'u8': return maskU8(this.units as Uint8Array, flat, len, this.maskLo, refLo, out, at);
      case 'u16': return maskU16(this.units as Uint16Array, flat, len, this.maskLo, refLo, out, at);
      case 'u32': return maskU32(this.units as Uint32Array, flat, len, this.maskLo, refLo, out, at);
      default: return maskPair(this.units as Uint32Array, flat, len, this.maskLo, this.maskHi, refLo, refHi, out, at);
    }
  }

  private bitsRun(flat: number, len: number, refLo: number, refHi: number, words: Int32Array, bit: number): void {
    if (len === 0) return;
    switch (this.unit) {
      case 'u8': bitsU8(this.units as Uint8Array, flat, len, this.maskLo, refLo, words, bit); break;
      case 'u16': bitsU16(this.units as Uint16Array, flat, len, this.maskLo, refLo, words, bit); break;
      case 'u32':
        if (this.maskLo === 0x7fffffff && refLo === 0) bitsFloat32(this.units as Uint32Array, flat, len, words, bit);
        else if (this.maskLo >= 0) bitsU32Positive(this.units as Uint32Array, flat, len, this.maskLo, refLo, words, bit);
        else bitsU32(this.units as Uint32Array, flat, len, this.maskLo, refLo, words, bit);
        break;
      default: bitsPair(this.units as Uint32Array, flat, len, this.maskLo, this.maskHi, refLo, refHi, words, bit);
    }
  }
}

/** Zero points as element bit patterns (lo/hi u32 words), validated against the dtype's range. */
function zeroPointBits(weight: DenseWeight, layout: ElementLayout):
  (ChannelRefs & { axis: number; bytes: Uint8Array }) | null {
  const q = weight.quantization!;
  const raw = q.zeroPoint;
  const list: (number | bigint)[] = typeof raw === 'number' ? [raw] : Array.from(raw as ArrayLike<number | bigint>);
  if (list.length === 0) return null;
  const where = `zero points of a ${weight.dtype} weight with shape [${weight.shape.join(', ')}]`;
  if (!layout.integer) {
    if (list.some((z) => Number(z) !== 0)) {
      throw new PrunepackError('INVALID_ARGUMENT', `non-zero zero point on a float weight`, {
        location: where, expected: '0', found: list.map(String).slice(0, 4).join(', '),
      });
    }
    return null;
  }
  let axis = 0;
  let inner = 1;
  let size = 1;
  if (list.length > 1) {
    const rank = weight.shape.length;
    axis = q.axis ?? -1;
    if (!Number.isInteger(axis) || axis < 0 || axis >= rank || weight.shape[axis] !== list.length) {
      throw new PrunepackError('INVALID_ARGUMENT', 'per-channel zero points do not match the quantization axis', {
        location: where,
        expected: `axis in [0, ${rank - 1}] whose dim equals the ${list.length} zero points`,
        found: `axis ${q.axis}`,
      });
    }
    size = list.length;
    for (let a = axis + 1; a < rank; a++) inner *= weight.shape[a];
  }
  const lo = new Int32Array(list.length);
  const hi = new Int32Array(list.length);
  const bytes = new Uint8Array(list.length * layout.width);
  const dv = new DataView(bytes.buffer);
  const bits = layout.width * 8;
  const min = layout.signed ? -(2n ** BigInt(bits - 1)) : 0n;
  const max = layout.signed ? 2n ** BigInt(bits - 1) - 1n : 2n ** BigInt(bits) - 1n;
  let anyNonzero = false;
  list.forEach((z, k) => {
    let big: bigint;
    try {
      big = BigInt(z);
    } catch {
      big = min - 1n; // non-integer: rejected below
    }
    const upper = weight.dtype === 'bool' ? 1n : max;
    if (big < min || big > upper) {
      throw new PrunepackError('INVALID_ARGUMENT', `zero point ${String(z)} is not a ${weight.dtype} value`, {
        location: `${where}, channel ${k}`, expected: `an integer in [${min}, ${upper}]`, found: String(z),
      });
    }
    const pattern = BigInt.asUintN(bits, big);
    if (pattern !== 0n) anyNonzero = true;
    lo[k] = Number(BigInt.asIntN(32, pattern));
    hi[k] = Number(BigInt.asIntN(32, pattern >> 32n));
    for (let b = 0; b < layout.width; b++) dv.setUint8(k * layout.width + b, Number((pattern >> BigInt(8 * b)) & 0xffn));
  });
  if (!anyNonzero) return null;
  return { axis, inner, size, lo, hi, bytes };
}

export function createZeroScanner(weight: DenseWeight, rowAxis = 0, zeroRule: ZeroRule = 'numeric'): ZeroScanner {
  return new ZeroScanner(weight, rowAxis, zeroRule);
}

// ---------------------------------------------------------------------------------------------
// Kernels: one copy per unit width keeps each loop monomorphic. Zero test without branches:
// y = (x & mask) ^ ref is 0 exactly for zeros, and (y | -y) >>> 31 is 1 for any other y.

function maskU8(a: Uint8Array, flat: number, len: number, mask: number, ref: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let k = 0; k < len; k++) {
    const y = (a[flat + k] & mask) ^ ref;
    const nz = (y | -y) >>> 31;
    out[at + k] = nz;
    n += nz;
  }
  return n;
}

function maskU16(a: Uint16Array, flat: number, len: number, mask: number, ref: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let k = 0; k < len; k++) {
    const y = (a[flat + k] & mask) ^ ref;
    const nz = (y | -y) >>> 31;
    out[at + k] = nz;
    n += nz;
  }
  return n;
}

function maskU32(a: Uint32Array, flat: number, len: number, mask: number, ref: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let k = 0; k < len; k++) {
    const y = (a[flat + k] & mask) ^ ref;
    const nz = (y | -y) >>> 31;
    out[at + k] = nz;
    n += nz;
  }
  return n;
}

function maskPair(a: Uint32Array, flat: number, len: number, maskLo: number, maskHi: number,
  refLo: number, refHi: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let k = 0; k < len; k++) {
    const p = 2 * (flat + k);
    const y = ((a[p] & maskLo) ^ refLo) | ((a[p + 1] & maskHi) ^ refHi);
    const nz = (y | -y) >>> 31;
    out[at + k] = nz;
    n += nz;
  }
  return n;
}

// Block-flag kernels: any nonzero among c consecutive elements, per block of a row.

function blockFlagsU8(a: Uint8Array, flat: number, c: number, mask: number, ref: number, flags: Uint8Array): number {
  let n = 0;
  for (let b = 0, k = flat; b < flags.length; b++) {
    let any = 0;
    for (const end = k + c; k < end; k++) any |= (a[k] & mask) ^ ref;
    const nz = (any | -any) >>> 31;
    n += nz;
    flags[b] |= nz;
  }
  return n;
}

function blockFlagsU16(a: Uint16Array, flat: number, c: number, mask: number, ref: number, flags: Uint8Array): number {
  let n = 0;
  for (let b = 0, k = flat; b < flags.length; b++) {
    let any = 0;
    for (const end = k + c; k < end; k++) any |= (a[k] & mask) ^ ref;
    const nz = (any | -any) >>> 31;
    n += nz;
    flags[b] |= nz;
  }
  return n;
}

function blockFlagsU32(a: Uint32Array, flat: number, c: number, mask: number, ref: number, flags: Uint8Array): number {
  let n = 0;
  for (let b = 0, k = flat; b < flags.length; b++) {
    let any = 0;
    for (const end = k + c; k < end; k++) any |= (a[k] & mask) ^ ref;
    const nz = (any | -any) >>> 31;
    n += nz;
    flags[b] |= nz;
  }
  return n;
}

// Compaction kernels (sparse encoders): copy every element to dst[p], keep it by advancing p.

type IndexUnits = Uint8Array | Uint16Array | Uint32Array;

function compactU8(a: Uint8Array, flat: number, len: number, mask: number, ref: number, dst: Uint8Array, p: number,
  columns: IndexUnits | null, flags: Uint8Array | null, col: number): number {
  const end = flat + len;
  if (columns !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; columns[p] = col; p += (y | -y) >>> 31; }
  } else if (flags !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; const nz = (y | -y) >>> 31; dst[p] = x; flags[col] = nz; p += nz; }
  } else {
    for (let k = flat; k < end; k++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; p += (y | -y) >>> 31; }
  }
  return p;
}

function compactU16(a: Uint16Array, flat: number, len: number, mask: number, ref: number, dst: Uint16Array, p: number,
  columns: IndexUnits | null, flags: Uint8Array | null, col: number): number {
  const end = flat + len;
  if (columns !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; columns[p] = col; p += (y | -y) >>> 31; }
  } else if (flags !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; const nz = (y | -y) >>> 31; dst[p] = x; flags[col] = nz; p += nz; }
  } else {
    for (let k = flat; k < end; k++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; p += (y | -y) >>> 31; }
  }
  return p;
}

function compactU32(a: Uint32Array, flat: number, len: number, mask: number, ref: number, dst: Uint32Array, p: number,
  columns: IndexUnits | null, flags: Uint8Array | null, col: number): number {
  const end = flat + len;
  if (columns !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; columns[p] = col; p += (y | -y) >>> 31; }
  } else if (flags !== null) {
    for (let k = flat; k < end; k++, col++) { const x = a[k]; const y = (x & mask) ^ ref; const nz = (y | -y) >>> 31; dst[p] = x; flags[col] = nz; p += nz; }
  } else {
    for (let k = flat; k < end; k++) { const x = a[k]; const y = (x & mask) ^ ref; dst[p] = x; p += (y | -y) >>> 31; }
  }
  return p;
}

function compactPair(a: Uint32Array, flat: number, len: number, maskLo: number, maskHi: number, refLo: number, refHi: number,
  dst: Uint32Array, p: number, columns: IndexUnits | null, flags: Uint8Array | null, col: number): number {
  for (let k = flat, end = flat + len; k < end; k++, col++) {
    const lo = a[2 * k];
    const hi = a[2 * k + 1];
    const y = ((lo & maskLo) ^ refLo) | ((hi & maskHi) ^ refHi);
    const nz = (y | -y) >>> 31;
    dst[2 * p] = lo;
    dst[2 * p + 1] = hi;
    if (columns !== null) columns[p] = col;
    if (flags !== null) flags[col] = nz;
    p += nz;
  }
  return p;
}

// Bit kernels: whole 32-bit words while the output is word-aligned, then a bit-at-a-time loop
// (misaligned segments only happen for rowAxis > 0 or per-channel zero points inside a row).
// The word loop is unrolled by four by hand (V8 does not unroll; this took the float32 kernel from
// 1.8x to 1.1x a read pass). y = (x & mask) ^ ref lies in [0, 2^31) for every 1- and 2-byte unit and
// for 4-byte units with a mask below 2^31 (float32 numeric rule), and then (0 - y) >>> 31 is the
// nonzero bit in one operation; other 4-byte masks need (y | -y) >>> 31.

function bitsU8(a: Uint8Array, flat: number, len: number, mask: number, ref: number, words: Int32Array, bit: number): void {
  let k = flat;
  if ((bit & 31) === 0) {
    let wi = bit >>> 5;
    for (const full = flat + (len & ~31); k < full; k += 32) {
      let w = 0;
      for (let j = 0; j < 32; j += 4) {
        const y0 = (a[k + j] & mask) ^ ref;
        const y1 = (a[k + j + 1] & mask) ^ ref;
        const y2 = (a[k + j + 2] & mask) ^ ref;
        const y3 = (a[k + j + 3] & mask) ^ ref;
        w |= (((0 - y0) >>> 31) | (((0 - y1) >>> 31) << 1) | (((0 - y2) >>> 31) << 2) | (((0 - y3) >>> 31) << 3)) << j;
      }
      words[wi++] = w;
    }
  }
  for (let b = bit + (k - flat), end = flat + len; k < end; k++, b++) {
    const y = (a[k] & mask) ^ ref;
    words[b >>> 5] |= ((0 - y) >>> 31) << (b & 31);
  }
}

function bitsU16(a: Uint16Array, flat: number, len: number, mask: number, ref: number, words: Int32Array, bit: number): void {
  let k = flat;
  if ((bit & 31) === 0) {
    let wi = bit >>> 5;
    for (const full = flat + (len & ~31); k < full; k += 32) {
      let w = 0;
      for (let j = 0; j < 32; j += 4) {
        const y0 = (a[k + j] & mask) ^ ref;
        const y1 = (a[k + j + 1] & mask) ^ ref;
        const y2 = (a[k + j + 2] & mask) ^ ref;
        const y3 = (a[k + j + 3] & mask) ^ ref;
        w |= (((0 - y0) >>> 31) | (((0 - y1) >>> 31) << 1) | (((0 - y2) >>> 31) << 2) | (((0 - y3) >>> 31) << 3)) << j;
      }
      words[wi++] = w;
    }
  }
  for (let b = bit + (k - flat), end = flat + len; k < end; k++, b++) {
    const y = (a[k] & mask) ^ ref;
    words[b >>> 5] |= ((0 - y) >>> 31) << (b & 31);
  }
}

/** bitsU32Positive for float32 under the numeric rule: constants instead of mask and ref (10% faster). */
function bitsFloat32(a: Uint32Array, flat: number, len: number, words: Int32Array, bit: number): void {
  let k = flat;
  if ((bit & 31) === 0) {
    let wi = bit >>> 5;
    for (const full = flat + (len & ~31); k < full; k += 32) {
      let w = 0;
      for (let j = 0; j < 32; j += 4) {
        const y0 = a[k + j] & 0x7fffffff;
        const y1 = a[k + j + 1] & 0x7fffffff;
        const y2 = a[k + j + 2] & 0x7fffffff;
        const y3 = a[k + j + 3] & 0x7fffffff;
        w |= (((0 - y0) >>> 31) | (((0 - y1) >>> 31) << 1) | (((0 - y2) >>> 31) << 2) | (((0 - y3) >>> 31) << 3)) << j;
      }
      words[wi++] = w;
    }
  }
  for (let b = bit + (k - flat), end = flat + len; k < end; k++, b++) {
    words[b >>> 5] |= ((0 - (a[k] & 0x7fffffff)) >>> 31) << (b & 31);
  }
}

/** 4-byte units with 0 <= mask < 2^31 (the float32 numeric rule). */
function bitsU32Positive(a: Uint32Array, flat: number, len: number, mask: number, ref: number, words: Int32Array, bit: number): void {
  let k = flat;
  if ((bit & 31) === 0) {
    let wi = bit >>> 5;
    for (const full = flat + (len & ~31); k < full; k += 32) {
      let w = 0;
      for (let j = 0; j < 32; j += 4) {
        const y0 = (a[k + j] & mask) ^ ref;
        const y1 = (a[k + j + 1] & mask) ^ ref;
        const y2 = (a[k + j + 2] & mask) ^ ref;
        const y3 = (a[k + j + 3] & mask) ^ ref;
        w |= (((0 - y0) >>> 31) | (((0 - y1) >>> 31) << 1) | (((0 - y2) >>> 31) << 2) | (((0 - y3) >>> 31) << 3)) << j;
      }
      words[wi++] = w;
    }
  }
  for (let b = bit + (k - flat), end = flat + len; k < end; k++, b++) {
    const y = (a[k] & mask) ^ ref;
    words[b >>> 5] |= ((0 - y) >>> 31) << (b & 31);
  }
}

/** 4-byte units with any mask (integers, the bitwise rule): y may be negative. */
function bitsU32(a: Uint32Array, flat: number, len: number, mask: number, ref: number, words: Int32Array, bit: number): void {
  let k = flat;
  if ((bit & 31) === 0) {
    let wi = bit >>> 5;
    for (const full = flat + (len & ~31); k < full; k += 32) {
      let w = 0;
      for (let j = 0; j < 32; j += 4) {
        const y0 = (a[k + j] & mask) ^ ref;
        const y1 = (a[k + j + 1] & mask) ^ ref;
        const y2 = (a[k + j + 2] & mask) ^ ref;
        const y3 = (a[k + j + 3] & mask) ^ ref;
        w |= (((y0 | -y0) >>> 31) | (((y1 | -y1) >>> 31) << 1) | (((y2 | -y2) >>> 31) << 2) | (((y3 | -y3) >>> 31) << 3)) << j;
      }
      words[wi++] = w;
    }
  }
  for (let b = bit + (k - flat), end = flat + len; k < end; k++, b++) {
    const y = (a[k] & mask) ^ ref;
    words[b >>> 5] |= ((y | -y) >>> 31) << (b & 31);
  }
}

function bitsPair(a: Uint32Array, flat: number, len: number, maskLo: number, maskHi: number,
  refLo: number, refHi: number, words: Int32Array, bit: number): void {
  for (let k = flat, b = bit, end = flat + len; k < end; k++, b++) {
    const y = ((a[2 * k] & maskLo) ^ refLo) | ((a[2 * k + 1] & maskHi) ^ refHi);
    words[b >>> 5] |= ((y | -y) >>> 31) << (b & 31);
  }
}

// ---------------------------------------------------------------------------------------------
// Bit-row statistics. Every statistic whose group is at most 8 bits wide is a function of one byte,
// so one 256-entry lookup per byte replaces a popcount per fold level. Table fields are sized to
// accumulate 8 words (32 bytes) before they are flushed.

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

const CHUNK_WORDS = 8;

/** Per byte: set bits (9-bit field), nonzero bit pairs (8), nibbles (7), byte (6) at bits 0, 9, 17, 24. */
const FOLD_TABLE = (() => {
  const t = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    let pairs = 0;
    for (let k = 0; k < 8; k += 2) pairs += (b >>> k) & 3 ? 1 : 0;
    const nibbles = (b & 0x0f ? 1 : 0) + (b & 0xf0 ? 1 : 0);
    t[b] = popcount32(b) | (pairs << 9) | (nibbles << 17) | ((b ? 1 : 0) << 24);
  }
  return t;
})();

/** Block widths with a fast path: index into the fold counts. */
const FOLD_LEVEL: Record<number, number> = { 1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5 };

/**
 * Adds to out[0..5] the nonzero 1xC blocks of one bit row for C = 1, 2, 4, 8, 16, 32 (out[0] is the
 * nnz). Padding bits past the row end are clear, so they never make a block nonzero; C must divide
 * the row length for the count to mean anything.
 */
function addFolds(words: Int32Array, out: Float64Array): void {
  const n = words.length;
  for (let j0 = 0; j0 < n; j0 += CHUNK_WORDS) {
    const j1 = Math.min(n, j0 + CHUNK_WORDS);
    let acc = 0;
    let c16 = 0;
    let c32 = 0;
    for (let j = j0; j < j1; j++) {
      const w = words[j];
      acc += FOLD_TABLE[w & 255] + FOLD_TABLE[(w >>> 8) & 255] + FOLD_TABLE[(w >>> 16) & 255] + FOLD_TABLE[w >>> 24];
      const lo = w & 0xffff;
      const hi = w >>> 16;
      c16 += ((lo | -lo) >>> 31) + ((hi | -hi) >>> 31);
      c32 += (w | -w) >>> 31;
    }
    out[0] += acc & 0x1ff;
    out[1] += (acc >>> 9) & 0xff;
    out[2] += (acc >>> 17) & 0x7f;
    out[3] += (acc >>> 24) & 0x3f;
    out[4] += c16;
    out[5] += c32;
  }
}

/** Up to three N:M patterns with M in {2, 4, 8} share one byte table: violations per byte in 8-bit fields. */
const NM_TABLE_SLOTS = 3;

function buildNmTable(patterns: readonly { n: number; m: number }[]): Int32Array {
  const t = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    let entry = 0;
    patterns.forEach(({ n, m }, slot) => {
      let violations = 0;
      for (let k = 0; k < 8; k += m) violations += popcount32((b >>> k) & ((1 << m) - 1)) > n ? 1 : 0;
      entry |= violations << (8 * slot);
    });
    t[b] = entry;
  }
  return t;
}

/** Groups of m aligned bits (m a power of two up to 32) holding more than n set bits, over one bit row. */
function nmViolationsSlow(words: Int32Array, cols: number, n: number, m: number): number {
  let violations = 0;
  const mask = m === 32 ? -1 : (1 << m) - 1;
  for (let start = 0; start < cols; start += m) {
    violations += popcount32((words[start >>> 5] >>> (start & 31)) & mask) > n ? 1 : 0;
  }
  return violations;
}

/**
 * One pass over a bit row: fold counts (folds[0] = nnz, see addFolds), N:M violations of the table
 * patterns, and the OR into the all-rows accumulator and the accumulators fed by single rows.
 */
function addRowStats(words: Int32Array, folds: Float64Array, colAny: Int32Array, accumulators: Int32Array[],
  nmTable: Int32Array | null, nmOut: Float64Array): void {
  const heights = accumulators.length;
  const n = words.length;
  const nmT = nmTable ?? FOLD_TABLE;
  const withNm = nmTable !== null;
  for (let j0 = 0; j0 < n; j0 += CHUNK_WORDS) {
    const j1 = Math.min(n, j0 + CHUNK_WORDS);
    let acc = 0;
    let c16 = 0;
    let c32 = 0;
    let nmAcc = 0;
    for (let j = j0; j < j1; j++) {
      const w = words[j];
      colAny[j] |= w;
      for (let h = 0; h < heights; h++) accumulators[h][j] |= w;
      const b0 = w & 255;
      const b1 = (w >>> 8) & 255;
      const b2 = (w >>> 16) & 255;
      const b3 = w >>> 24;
      acc += FOLD_TABLE[b0] + FOLD_TABLE[b1] + FOLD_TABLE[b2] + FOLD_TABLE[b3];
      const lo = w & 0xffff;
      const hi = w >>> 16;
      c16 += ((lo | -lo) >>> 31) + ((hi | -hi) >>> 31);
      c32 += (w | -w) >>> 31;
      if (withNm) nmAcc += nmT[b0] + nmT[b1] + nmT[b2] + nmT[b3];
    }
    folds[0] += acc & 0x1ff;
    folds[1] += (acc >>> 9) & 0xff;
    folds[2] += (acc >>> 17) & 0x7f;
    folds[3] += (acc >>> 24) & 0x3f;
    folds[4] += c16;
    folds[5] += c32;
    nmOut[0] += nmAcc & 0xff;
    nmOut[1] += (nmAcc >>> 8) & 0xff;
    nmOut[2] += (nmAcc >>> 16) & 0xff;
  }
}

/** Nonzero 1xC blocks of one bit row for widths without a fast path. */
function nonzeroBlocksSlow(words: Int32Array, cols: number, c: number): number {
  let n = 0;
  for (let start = 0; start < cols; start += c) n += rangeHasBits(words, start, c) ? 1 : 0;
  return n;
}

/** True when any bit of words in [start, start + len) is set. */
export function rangeHasBits(words: Int32Array, start: number, len: number): boolean {
  let b = start;
  const end = start + len;
  while (b < end) {
    const sh = b & 31;
    const take = Math.min(32 - sh, end - b);
    const mask = take === 32 ? -1 : ((1 << take) - 1) << sh;
    if ((words[b >>> 5] & mask) !== 0) return true;
    b += take;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Analysis

function share(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}

/** Copies bits [start, start + row.length * 32) of `flat` to `row` (bits past the source end clear), then clears bits from `cols` on. */
function copyBits(flat: Int32Array, start: number, cols: number, row: Int32Array): void {
  const shift = start & 31;
  const first = start >>> 5;
  const n = row.length;
  if (shift === 0 && first + n <= flat.length) {
    row.set(flat.subarray(first, first + n));
  } else if (shift === 0) {
    for (let j = 0; j < n; j++) row[j] = first + j < flat.length ? flat[first + j] : 0;
  } else {
    for (let j = 0; j < n; j++) {
      const lo = first + j < flat.length ? flat[first + j] >>> shift : 0;
      const hi = first + j + 1 < flat.length ? flat[first + j + 1] << (32 - shift) : 0;
      row[j] = lo | hi;
    }
  }
  const tail = cols & 31;
  if (tail !== 0) row[n - 1] &= (1 << tail) - 1;
}

/** What the row loop of analyzeZeros reads and accumulates (see there). */
interface RowScan {
  /** Precomputed flat nonzero bits (AnalysisOptions.nonzeroBits), or null: read the scanner. */
  flatBits: Int32Array | null;
  /** The counting kernel (AnalysisOptions.bitStats) when every word array lives in its memory. */
  kernel: BitStatsKernel | null;
  /** With the kernel: the accumulator each height's completed accumulator is ORed into (at most one), or null. */
  passTo: (Int32Array | null)[];
  /** With the kernel: rows are read from flatBits in place (word-aligned rows, nothing else reads the row). */
  inPlace: boolean;
  rows: number;
  cols: number;
  wordsPerRow: number;
  bins: number;
  row: Int32Array;
  colAny: Int32Array;
  fedByRows: Int32Array[];
  nmTable: Int32Array | null;
  nmTableCounts: Float64Array;
  nmSlow: NmStats[];
  nmSlowCounts: number[];
  heights: number[];
  accumulators: Int32Array[];
  source: number[];
  foldCounts: Float64Array[];
  slowShapes: boolean;
  blocks: BlockStats[];
  nonzeroBlocks: number[];
  histogram: number[];
  minNnz: number;
  maxNnz: number;
  zeroRows: number;
}

/**
 * The row loop of analyzeZeros, a function of its own: analyzeZeros creates closures on every call,
 * and V8 throws away optimized code that inlined a closure once it has been collected, so a loop
 * inside analyzeZeros ran unoptimized for a while after every garbage collection (15% slower).
 */
function scanRows(scanner: ZeroScanner, s: RowScan): void {
  const { rows, cols, wordsPerRow, bins, row, colAny, fedByRows, nmTable, nmTableCounts, nmSlow, nmSlowCounts,
    heights, accumulators, source, foldCounts, slowShapes, blocks, nonzeroBlocks, histogram, flatBits, kernel, passTo, inPlace } = s;
  const fed = fedByRows.length > 0 ? fedByRows[0] : null;
  const nmKernelOut = nmTable !== null ? nmTableCounts : null;
  let { minNnz, maxNnz, zeroRows } = s;
  if (inPlace && kernel!.scanRows) {
    // The whole loop in the kernel, then the per-row figures from its row counts.
    // Per height, the fold levels read below (nonzeroBlocks): the kernel counts only those.
    const above = heights.slice(1).map((height, k) => ({
      height, acc: accumulators[k + 1], target: passTo[k + 1], folds: foldCounts[k + 1],
      levels: blocks.reduce((m, b) => (b.applicable && b.rows === height && FOLD_LEVEL[b.cols] !== undefined ? m | (1 << FOLD_LEVEL[b.cols]) : m), 0),
    }));
    const nnzs = kernel!.scanRows(flatBits!, rows, wordsPerRow, colAny, fed, above, foldCounts[0], nmKernelOut);
    if (nnzs !== null) {
      for (let r = 0; r < rows; r++) {
        const nnz = nnzs[r];
        if (nnz < minNnz) minNnz = nnz;
        if (nnz > maxNnz) maxNnz = nnz;
        if (nnz === 0) zeroRows++;
        histogram[cols === 0 ? 0 : Math.min(bins - 1, Math.floor((nnz * bins) / cols))]++;
      }
      s.minNnz = minNnz;
      s.maxNnz = maxNnz;
      s.zeroRows = zeroRows;
      return;
    }
  }
  for (let r = 0; r < rows; r++) {
    const before = foldCounts[0][0];
    if (inPlace) {
      kernel!.stats(flatBits!, r * wordsPerRow, wordsPerRow, colAny, fed, foldCounts[0], nmKernelOut);
    } else {
      if (flatBits !== null) {
        copyBits(flatBits, r * cols, cols, row);
      } else {
        row.fill(0);
        scanner.rowBits(r, row);
      }
      if (kernel !== null) kernel.stats(row, 0, wordsPerRow, colAny, fed, foldCounts[0], nmKernelOut);
      else addRowStats(row, foldCounts[0], colAny, fedByRows, nmTable, nmTableCounts);
    }
    const nnz = foldCounts[0][0] - before;
    if (nnz < minNnz) minNnz = nnz;
    if (nnz > maxNnz) maxNnz = nnz;
    if (nnz === 0) zeroRows++;
    histogram[cols === 0 ? 0 : Math.min(bins - 1, Math.floor((nnz * bins) / cols))]++;
    for (let p = 0; p < nmSlow.length; p++) nmSlowCounts[p] += nmViolationsSlow(row, cols, nmSlow[p].n, nmSlow[p].m);

    for (let h = 0; h < heights.length; h++) {
      if ((r + 1) % heights[h] !== 0) continue;
      const acc = accumulators[h];
      if (h > 0 && kernel === null) addFolds(acc, foldCounts[h]);
      if (slowShapes) {
        for (let s = 0; s < blocks.length; s++) {
          const b = blocks[s];
          if (b.applicable && b.rows === heights[h] && FOLD_LEVEL[b.cols] === undefined) {
            nonzeroBlocks[s] += nonzeroBlocksSlow(acc, cols, b.cols);
          }
        }
      }
      if (h === 0) continue;
      if (kernel !== null) {
        // Counts, the OR into the next height, and the clearing in one pass.
        kernel.foldPass(acc, passTo[h], foldCounts[h]);
        continue;
      }
      for (let k = h + 1; k < heights.length; k++) {
        if (source[k] !== h) continue;
        const target = accumulators[k];
        for (let j = 0; j < wordsPerRow; j++) target[j] |= acc[j];
      }
      acc.fill(0);
    }
  }
  s.minNnz = minNnz;
  s.maxNnz = maxNnz;
  s.zeroRows = zeroRows;
}

/** Zero statistics of one weight in one pass over its values (plus per-row work on a bit row). */
export function analyzeZeros(weight: DenseWeight, options: AnalysisOptions = {}): ZeroAnalysis {
  const zeroRule = options.zeroRule ?? 'numeric';
  const scanner = new ZeroScanner(weight, options.rowAxis ?? 0, zeroRule);
  const view = scanner.view;
  const { rows, cols } = view;
  const blockShapes = options.blockShapes ?? DEFAULT_BLOCK_SHAPES;
  const nmPatterns = options.nmPatterns ?? DEFAULT_NM_PATTERNS;
  const bins = options.histogramBins ?? 10;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new PrunepackError('INVALID_ARGUMENT', 'histogram bins must be a positive integer', { found: String(bins) });
  }

  // Block shapes: validate, decide applicability, group by block height.
  const blocks: BlockStats[] = [];
  const nonzeroBlocks: number[] = [];
  for (const [br, bc] of blockShapes) {
    if (!Number.isInteger(br) || !Number.isInteger(bc) || br < 1 || bc < 1) {
      throw new PrunepackError('INVALID_ARGUMENT', 'block shape must be two positive integers', { found: `${br}x${bc}` });
    }
    const problems: string[] = [];
    if (rows % br !== 0) problems.push(`${rows} rows are not divisible by ${br}`);
    if (cols % bc !== 0) problems.push(`${cols} columns are not divisible by ${bc}`);
    const applicable = problems.length === 0;
    blocks.push({
      rows: br, cols: bc, applicable, ...(applicable ? {} : { reason: problems.join('; ') }),
      blockCount: applicable ? (rows / br) * (cols / bc) : 0,
      zeroBlocks: 0, zeroBlockShare: 0, zerosCovered: 0, zerosCoveredShare: 0,
    });
    nonzeroBlocks.push(0);
  }
  const nm: NmStats[] = [];
  for (const [n, m] of nmPatterns) {
    if (![2, 4, 8, 16, 32].includes(m) || !Number.isInteger(n) || n < 0 || n >= m) {
      throw new PrunepackError('INVALID_ARGUMENT', 'N:M pattern must have M in {2, 4, 8, 16, 32} and 0 <= N < M', {
        found: `${n}:${m}`,
      });
    }
    const applicable = cols % m === 0;
    nm.push({
      n, m, applicable, ...(applicable ? {} : { reason: `${cols} columns are not divisible by ${m}` }),
      groups: applicable ? rows * (cols / m) : 0, satisfyingGroups: 0, share: 0, satisfied: false,
    });
  }
  const wordsPerRow = (cols + 31) >>> 5;
  // Block heights: 1 (the row itself) and one OR accumulator per distinct height above 1. An
  // accumulator is fed by the largest smaller height dividing it (2 -> 4 -> 8 -> 16), so a row is
  // ORed into few accumulators; a completed accumulator is counted, passed on, then cleared.
  const heights = [1, ...new Set(blocks.filter((b) => b.applicable && b.rows > 1).map((b) => b.rows))].sort((x, y) => x - y);
  const source = heights.map((h, k) => {
    let from = 0;
    for (let g = 1; g < k; g++) if (h % heights[g] === 0) from = g;
    return from;
  });
  // N:M: the first three patterns with M <= 8 go through the byte table (or the kernel), the rest the slow path.
  const nmApplicable = nm.filter((p) => p.applicable);
  const nmTabled = nmApplicable.filter((p) => p.m <= 8).slice(0, NM_TABLE_SLOTS);
  // The word arrays: the bit row, the OR of all rows, one accumulator per height above 1; in the
  // kernel's memory when it takes this analysis.
  const arrayCount = 1 + heights.length;
  let kernel: BitStatsKernel | null = null;
  let arrays: Int32Array[] | null = null;
  // The kernel passes a completed accumulator on to at most one height, and takes at most one fed by rows.
  const singleTargets = heights.every((_, h) => source.filter((f, k) => k > h && f === h).length <= 1);
  if (options.bitStats && singleTargets && options.bitStats.nmPatterns(nmTabled)) {
    arrays = options.bitStats.wordArrays(arrayCount, wordsPerRow);
    if (arrays) kernel = options.bitStats;
  }
  arrays ??= Array.from({ length: arrayCount }, () => new Int32Array(wordsPerRow));
  const row = arrays[0];
  const colAny = arrays[1];
  const accumulators = heights.map((h, k) => (h === 1 ? row : arrays[1 + k]));
  const fedByRows = accumulators.filter((_, k) => k > 0 && source[k] === 0);
  const foldCounts = heights.map(() => new Float64Array(6));
  const slowShapes = blocks.some((b) => b.applicable && FOLD_LEVEL[b.cols] === undefined);
  const nmSlow = nmApplicable.filter((p) => !nmTabled.includes(p));
  const nmTable = nmTabled.length > 0 ? buildNmTable(nmTabled) : null;
  const nmTableCounts = new Float64Array(NM_TABLE_SLOTS);
  const nmSlowCounts = nmSlow.map(() => 0);
  let flatBits: Int32Array | null = null;
  if (options.nonzeroBits !== undefined && scanner.flatZeroTest() !== null) {
    if (options.nonzeroBits.length !== ((scanner.count + 31) >>> 5)) {
      throw new PrunepackError('INVALID_ARGUMENT', 'nonzeroBits does not match the weight', {
        expected: `${(scanner.count + 31) >>> 5} words for ${scanner.count} elements`, found: `${options.nonzeroBits.length} words`,
      });
    }
    flatBits = options.nonzeroBits;
  }
  const passTo = heights.map((_, h) => {
    const k = source.findIndex((f, j) => j > h && f === h);
    return h > 0 && k > 0 ? accumulators[k] : null;
  });
  const inPlace = kernel !== null && flatBits !== null && (cols & 31) === 0 && !slowShapes && nmSlow.length === 0 && kernel.owns(flatBits);
  const scan: RowScan = {
    flatBits, kernel, passTo, inPlace, rows, cols, wordsPerRow, bins, row, colAny, fedByRows, nmTable, nmTableCounts, nmSlow, nmSlowCounts,
    heights, accumulators, source, foldCounts, slowShapes, blocks, nonzeroBlocks,
    histogram: new Array<number>(bins).fill(0), minNnz: rows === 0 ? 0 : Infinity, maxNnz: 0, zeroRows: 0,
  };
  scanRows(scanner, scan);
  const { histogram, minNnz, maxNnz, zeroRows } = scan;
  const nonzeros = foldCounts[0][0];
  for (let s = 0; s < blocks.length; s++) {
    const b = blocks[s];
    const level = FOLD_LEVEL[b.cols];
    if (b.applicable && level !== undefined) nonzeroBlocks[s] = foldCounts[heights.indexOf(b.rows)][level];
  }
  const violations = nm.map((p) => {
    const tabled = nmTabled.indexOf(p);
    if (tabled >= 0) return nmTableCounts[tabled];
    const slow = nmSlow.indexOf(p);
    return slow >= 0 ? nmSlowCounts[slow] : 0;
  });

  const count = scanner.count;
  const zeros = count - nonzeros;
  for (let s = 0; s < blocks.length; s++) {
    const b = blocks[s];
    if (!b.applicable) continue;
    b.zeroBlocks = b.blockCount - nonzeroBlocks[s];
    b.zeroBlockShare = share(b.zeroBlocks, b.blockCount);
    b.zerosCovered = b.zeroBlocks * b.rows * b.cols;
    b.zerosCoveredShare = share(b.zerosCovered, zeros);
  }
  for (let p = 0; p < nm.length; p++) {
    const s = nm[p];
    if (!s.applicable) continue;
    s.satisfyingGroups = s.groups - violations[p];
    s.share = share(s.satisfyingGroups, s.groups);
    s.satisfied = violations[p] === 0;
  }

  let best: BlockStats | null = null;
  for (const b of blocks) {
    if (!b.applicable || b.zerosCovered === 0) continue;
    if (!best || b.zerosCovered > best.zerosCovered
      || (b.zerosCovered === best.zerosCovered && b.rows * b.cols > best.rows * best.cols)) best = b;
  }

  let nonzeroColumns = 0;
  for (let j = 0; j < wordsPerRow; j++) nonzeroColumns += popcount32(colAny[j]);
  let zeroInputChannels: number | null = null;
  const rank = weight.shape.length;
  if (rank >= 2 && view.rowAxis !== rank - 1) {
    // Columns enumerate the non-row dims in order, so the last axis index of column c is c % last.
    const last = weight.shape[rank - 1];
    const channelAny = new Uint8Array(last);
    for (let c = 0; c < cols; c++) if ((colAny[c >>> 5] >>> (c & 31)) & 1) channelAny[c % last] = 1;
    zeroInputChannels = last - channelAny.reduce((a, b) => a + b, 0);
  }

  const binEdges = Array.from({ length: bins + 1 }, (_, k) => k / bins);
  return {
    dtype: weight.dtype,
    shape: [...weight.shape],
    zeroRule,
    elementBytes: scanner.width,
    count,
    zeros,
    nonzeros,
    zeroShare: share(zeros, count),
    zeroPoints: scanner.fill ? { axis: scanner.fill.axis, count: scanner.fill.count } : null,
    matrix: { ...view, description: describeView(weight.shape, view) },
    blocks,
    bestBlock: best
      ? { rows: best.rows, cols: best.cols, zeroBlockShare: best.zeroBlockShare, zerosCovered: best.zerosCovered }
      : null,
    nm,
    zeroRows,
    zeroColumns: cols - nonzeroColumns,
    zeroInputChannels,
    rowNnz: {
      min: minNnz,
      max: maxNnz,
      mean: share(nonzeros, rows),
      histogram: { binEdges, counts: histogram },
    },
  };
}
