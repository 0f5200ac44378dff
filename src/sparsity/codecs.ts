/**
 * prunepack sparse blob ("PPSP"), version 1: Block CSR or block bitmap over the matrix view of
 * analysis.ts, with an optional DEFLATE stage. Browser-safe (fflate only). Also in docs/sparse-codec.md.
 *
 * All integers little-endian. u64 fields must be <= 2^53 - 1.
 *
 *   offset  size      field
 *   0       4         magic "PPSP" (50 50 53 50)
 *   4       1         version = 1
 *   5       1         codec: 1 = BCSR, 2 = BITMAP
 *   6       1         dtype code (DTYPE_CODES below)
 *   7       1         flags: bit 0 INDEX_DEFLATE  index stream is raw DEFLATE (RFC 1951)
 *                            bit 1 VALUES_DEFLATE values stream is raw DEFLATE
 *                            bit 2 VALUES_SHUFFLE value bytes are byte-shuffled (before DEFLATE)
 *                            bit 3 FILL_TABLE     a fill table follows the dims
 *                            bits 4-7 reserved, 0
 *   8       1         rank n (0..32)
 *   9       1         row axis (0 when n < 2, else < n)
 *   10      1         BCSR row-pointer width wp in bytes (1, 2 or 4); BITMAP: 0
 *   11      1         BCSR block-column index width wc (1, 2 or 4); BITMAP: 0
 *   12      4  u32    block rows R (>= 1, divides the matrix rows)
 *   16      4  u32    block cols C (>= 1, divides the matrix cols)
 *   20      8  u64    S, stored blocks
 *   28      8  u64    Li, index stream bytes in this blob
 *   36      8  u64    index stream bytes after inflate (== Li without INDEX_DEFLATE)
 *   44      8  u64    Lv, values stream bytes in this blob
 *   52      8  u64    values stream bytes after inflate (== Lv without VALUES_DEFLATE)
 *   60      4n u32[n] dims
 *   then, with FILL_TABLE: u32 axis (0xFFFFFFFF: one value for the whole tensor), u32 count
 *                          (1, or dims[axis]), count elements of the dtype (its zero points)
 *   then    Lv        values stream (its offset is a multiple of the element unit: 1, 2 or 4)
 *   then    Li        index stream
 *   end-4   4  u32    CRC-32 (IEEE, reflected 0xEDB88320, init and final xor 0xFFFFFFFF: zlib's
 *                     crc32) of every byte before it. The blob length is exactly the sum above.
 *
 * Matrix view: rows x cols as documented in analysis.ts (rank 0: 1x1, rank 1: 1 x d0, else rows =
 * dims[rowAxis], cols = product of the other dims in order). The block grid is (rows / R) x
 * (cols / C) blocks, numbered row-major: k = blockRow * blockCols + blockCol.
 *
 * Index stream (inflated):
 *   BCSR:   blockRows + 1 row pointers of wp bytes (unsigned; first 0, non-decreasing, last S), then
 *           S block-column indices of wc bytes (unsigned, < blockCols, strictly increasing within a
 *           block row). Encoders choose the narrowest width holding S (wp) and blockCols - 1 (wc).
 *   BITMAP: ceil(blockCount / 8) bytes; bit k (byte k >> 3, bit k & 7, LSB first) set when block k
 *           is stored; bits past blockCount are 0; S bits are set.
 * Values stream (inflated, unshuffled): S * R * C elements, the stored blocks in grid order, each
 *   block row-major (R lines of C elements), each element the dtype's little-endian bytes.
 *   VALUES_SHUFFLE with n elements of w bytes: byte j of element i sits at j * n + i.
 * Dense result: every element of a block that is not stored is its fill value: all-zero bytes, or
 *   with FILL_TABLE the value of its channel, channel = floor(flat / prod(dims after axis)) % count.
 *   Stored blocks are written as they are (they may contain zeros).
 *
 * Encoders here omit a block when all its elements are zero under the zero rule of analysis.ts
 * (numeric by default: -0.0 is omitted and comes back as +0.0; 'bitwise' keeps it, byte-exact).
 *
 * Decoders check, before using or allocating anything: the CRC, every length against the bytes
 * present, the inflated lengths against the lengths the header implies, a DEFLATE stream cannot
 * expand more than 1032:1, and the dense size against a caller limit; then every index entry.
 * Failures throw PrunepackError 'CORRUPT' with the byte offset, expected and found values (a
 * different version is 'UNSUPPORTED').
 */
import { deflateSync, inflateSync } from 'fflate';
import { PrunepackError } from '../errors.js';
import type { DType } from '../model/dtype.js';
import {
  ZeroScanner, matrixViewOf, popcount32, rangeHasBits, sparseElementBytes, isSparseDType,
  type DenseWeight, type MatrixView, type ZeroAnalysis, type ZeroRule,
} from './analysis.js';
import { portableCrc32 } from './crc32.js';
export { portableCrc32 } from './crc32.js';

// ---------------------------------------------------------------------------------------------
// CRC-32

/**
 * Node's native zlib.crc32 (Node >= 20.16 and 22.3), reached through process.getBuiltinModule so
 * that this module stays browser-safe; undefined elsewhere. It is 2.5x faster than the table loop
 * below, and the checksum pass over the blob was a quarter of encode and a third of decode time.
 */
const nativeCrc32 = (() => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const zlib = proc?.getBuiltinModule?.('node:zlib') as { crc32?: (data: Uint8Array, value?: number) => number } | undefined;
  return typeof zlib?.crc32 === 'function' ? zlib.crc32 : undefined;
})();

/** CRC-32 as zlib computes it; pass the previous result as `crc` to continue over more bytes. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  // zlib returns 0 for an empty buffer whatever the start value; continuing over nothing must not.
  if (bytes.length === 0) return crc >>> 0;
  // zlib's length argument is 32-bit.
  return nativeCrc32 !== undefined && bytes.length <= 0xffffffff ? nativeCrc32(bytes, crc) : portableCrc32(bytes, crc);
}

export type SparseCodec = 'bcsr' | 'bitmap';
export type DeflateLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

export interface SparseEncodeOptions {
  codec: SparseCodec;
  /** Block height and width; default [1, 1] (CSR, or one bit per element). Must divide the matrix. */
  blockShape?: readonly [number, number];
  /** Row axis of the matrix view (analysis.ts); default 0. */
  rowAxis?: number;
  /** Default 'numeric' (-0.0 is a zero and decodes as +0.0); 'bitwise' round-trips every bit. */
  zeroRule?: ZeroRule;
  deflateIndex?: boolean;
  deflateValues?: boolean;
  shuffleValues?: boolean;
  /** DEFLATE level for both streams; default 6 (level 9 is ~5x slower in fflate for ~0.6% fewer bytes). */
  level?: DeflateLevel;
}

export interface SparseDecodeOptions {
  /** Largest dense tensor to allocate; default 2^32 - 1 bytes. */
  maxDenseBytes?: number;
}

export interface DecodedSparse {
  dtype: DType;
  shape: number[];
  /** Dense little-endian element bytes in row-major tensor order. */
  values: Uint8Array;
  codec: SparseCodec;
  blockShape: [number, number];
  rowAxis: number;
}

export const SPARSE_MAGIC = 'PPSP';
export const SPARSE_VERSION = 1;
export const SPARSE_HEADER_BYTES = 60;
const CRC_BYTES = 4;
const MAX_RANK = 32;
const MAX_DEFLATE_RATIO = 1032;
const DEFAULT_MAX_DENSE_BYTES = 2 ** 32 - 1;
const FORMAT = 'prunepack sparse blob';

const FLAG_INDEX_DEFLATE = 1;
const FLAG_VALUES_DEFLATE = 2;
const FLAG_VALUES_SHUFFLE = 4;
const FLAG_FILL_TABLE = 8;

const CODEC_IDS: Record<SparseCodec, number> = { bcsr: 1, bitmap: 2 };

/** Stable dtype codes of the byte layout; never renumber. */
export const DTYPE_CODES: Readonly<Partial<Record<DType, number>>> = {
  float32: 1, float16: 2, bfloat16: 3, float64: 4, int8: 5, uint8: 6, int16: 7, uint16: 8,
  int32: 9, uint32: 10, int64: 11, uint64: 12, bool: 13, complex64: 14,
  float8e4m3fn: 15, float8e4m3fnuz: 16, float8e5m2: 17, float8e5m2fnuz: 18, float8e8m0: 19,
};
const DTYPE_BY_CODE = new Map(Object.entries(DTYPE_CODES).map(([d, c]) => [c, d as DType]));

// ---------------------------------------------------------------------------------------------
// Errors

function corrupt(what: string, offset: number | string, expected: string, found: string, cause?: unknown): PrunepackError {
  return new PrunepackError('CORRUPT', what, {
    format: FORMAT,
    location: typeof offset === 'number' ? `byte ${offset}` : offset,
    expected,
    found,
    ...(cause === undefined ? {} : { cause }),
  });
}

function invalid(what: string, expected: string, found: string): PrunepackError {
  return new PrunepackError('INVALID_ARGUMENT', what, { format: FORMAT, expected, found });
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

type Units = Uint8Array | Uint16Array | Uint32Array;

/** Narrowest index width (bytes) holding `max`, the official TFLite exporter's rule. */
export function indexWidthFor(max: number): 1 | 2 | 4 {
  return max <= 0xff ? 1 : max <= 0xffff ? 2 : 4;
}

function unitsOf(bytes: Uint8Array, width: number): Units {
  if (width === 1) return bytes;
  if (width === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
}

/** Typed-array unit and units per element for an element width (8-byte elements: two u32). */
function unitLayout(width: number): { unitBytes: number; perElement: number } {
  return width === 8 ? { unitBytes: 4, perElement: 2 } : { unitBytes: width, perElement: 1 };
}

function blockShapeOf(option: readonly [number, number] | undefined): [number, number] {
  const [r, c] = option ?? [1, 1];
  if (!Number.isInteger(r) || !Number.isInteger(c) || r < 1 || c < 1 || r > 0xffffffff || c > 0xffffffff) {
    throw invalid('block shape must be two positive 32-bit integers', 'e.g. [1, 4]', `[${r}, ${c}]`);
  }
  return [r, c];
}

function checkDivides(view: MatrixView, r: number, c: number): void {
  if (view.rows % r !== 0 || view.cols % c !== 0) {
    throw invalid(`block ${r}x${c} does not divide the ${view.rows}x${view.cols} matrix view`,
      'a block shape whose height divides the rows and width divides the columns', `${r}x${c}`);
  }
}

/** Column c of the matrix view -> flat offset of (row 0, c); row r adds r * inner. */
function columnOffsets(view: MatrixView): Float64Array {
  const offsets = new Float64Array(view.cols);
  for (let o = 0, c = 0; o < view.outer; o++) {
    const base = o * view.rows * view.inner;
    for (let i = 0; i < view.inner; i++) offsets[c++] = base + i;
  }
  return offsets;
}

function writeU64(dv: DataView, offset: number, value: number): void {
  dv.setUint32(offset, value % 0x100000000, true);
  dv.setUint32(offset + 4, Math.floor(value / 0x100000000), true);
}

function readU64(dv: DataView, offset: number, field: string): number {
  const lo = dv.getUint32(offset, true);
  const hi = dv.getUint32(offset + 4, true);
  if (hi > 0x1fffff) throw corrupt(`${field} is larger than 2^53 - 1`, offset, '<= 2^53 - 1', `${hi} * 2^32 + ${lo}`);
  return hi * 0x100000000 + lo;
}

// ---------------------------------------------------------------------------------------------
// Encoding. Two passes over the values: the first keeps one bit per block (per element for 1x1)
// and counts the stored blocks, so the blob can be allocated at its exact size; the second copies
// the stored blocks straight into it. A scratch copy of the streams (and the page faults and copy
// that go with it) is made only when an entropy stage transforms them.

/** Stored-block bits of a weight: the result of the first pass. */
interface BlockPlan {
  r: number;
  c: number;
  blockRows: number;
  blockCols: number;
  /** Words per saved bit row. */
  wordsPerRow: number;
  /** log2(c) when c is a power of two up to 32 (bits folded to each block's first bit), else -1. */
  foldShift: number;
  /**
   * Per block row, wordsPerRow words: with foldShift >= 0 bit bc * c is set for each stored block
   * bc; otherwise the OR of the block row's element bits.
   */
  bits: Int32Array;
  /** Stored blocks before each block row (blockRows + 1 entries). */
  pointers: Float64Array;
  stored: number;
}

/** Bits at the first position of every 2^shift-bit block of a word, by shift. */
const BLOCK_STARTS = [-1, 0x55555555, 0x11111111, 0x01010101, 0x00010001, 0x00000001];

function planBlocks(scanner: ZeroScanner, r: number, c: number): BlockPlan {
  const { rows, cols } = scanner.view;
  const blockRows = rows / r;
  const blockCols = cols / c;
  const wordsPerRow = (cols + 31) >>> 5;
  const foldShift = c <= 32 && (c & (c - 1)) === 0 ? 31 - Math.clz32(c) : -1;
  const starts = foldShift >= 0 ? BLOCK_STARTS[foldShift] : 0;
  const bits = new Int32Array(blockRows * wordsPerRow);
  const line = r === 1 ? null : new Int32Array(wordsPerRow);
  const pointers = new Float64Array(blockRows + 1);
  let stored = 0;
  for (let br = 0; br < blockRows; br++) {
    const at = br * wordsPerRow;
    const any = bits.subarray(at, at + wordsPerRow);
    scanner.rowBits(br * r, any);
    for (let rr = 1; rr < r; rr++) {
      line!.fill(0);
      scanner.rowBits(br * r + rr, line!);
      for (let j = 0; j < wordsPerRow; j++) any[j] |= line![j];
    }
    if (foldShift > 0) {
      for (let j = 0; j < wordsPerRow; j++) {
        let f = any[j];
        for (let sh = 1; sh < c; sh <<= 1) f |= f >>> sh;
        any[j] = f & starts;
      }
    }
    if (foldShift >= 0) {
      for (let j = 0; j < wordsPerRow; j++) stored += popcount32(any[j]);
    } else {
      for (let bc = 0, start = 0; bc < blockCols; bc++, start += c) stored += rangeHasBits(any, start, c) ? 1 : 0;
    }
    pointers[br + 1] = stored;
  }
  return { r, c, blockRows, blockCols, wordsPerRow, foldShift, bits, pointers, stored };
}

/** Writes `value` as a little-endian unsigned integer of `width` bytes at bytes[at]. */
function writeUnsigned(bytes: Uint8Array, at: number, width: number, value: number): void {
  bytes[at] = value;
  if (width === 1) return;
  bytes[at + 1] = value >>> 8;
  if (width === 2) return;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}

/** Where the second pass writes: the value units and the raw index stream. */
interface BlockSink {
  src: Units;
  dst: Units;
  /** BCSR: column indices go to index[columnsAt + p * wc]; bitmap: bitWords gets one bit per stored block. */
  index: Uint8Array;
  columnsAt: number;
  wc: number;
  bitWords: Int32Array | null;
  /** Flat offset of each column when the view is strided (row axis > 0), else null. */
  offsets: Float64Array | null;
  inner: number;
  cols: number;
  r: number;
  c: number;
  perElement: number;
  blockCols: number;
}

/**
 * The second pass: copies every stored block of the plan to `values` (grid order, each block
 * row-major) and writes the raw index stream to `index` (BCSR pointers and columns, or the bitmap).
 */
function emitBlocks(scanner: ZeroScanner, plan: BlockPlan, codec: SparseCodec, wp: number, wc: number,
  values: Uint8Array, index: Uint8Array): void {
  const view = scanner.view;
  const { unitBytes, perElement } = unitLayout(scanner.width);
  const { blockRows, blockCols, wordsPerRow, bits, foldShift, r, c } = plan;
  const bcsr = codec === 'bcsr';
  const blockCount = blockRows * blockCols;
  const columnsAt = (blockRows + 1) * wp;
  const src = scanner.units;
  const dst = unitsOf(values, unitBytes);
  const bitWords = bcsr ? null : new Int32Array((blockCount + 31) >>> 5);
  if (bcsr) {
    for (let br = 0; br <= blockRows; br++) writeUnsigned(index, br * wp, wp, plan.pointers[br]);
  }
  // The hot case, CSR of 1-unit elements over contiguous rows, with aligned column indices.
  if (bcsr && r * c * perElement === 1 && view.outer === 1 && (index.byteOffset + columnsAt) % wc === 0) {
    emitUnitsCsr(bits, wordsPerRow, blockRows, view.cols, src, dst, unitsOf(index.subarray(columnsAt, columnsAt + plan.stored * wc), wc));
    return;
  }
  if (!bcsr && foldShift === 0 && (blockCols & 31) === 0) {
    // Bitmap of single columns with rows of whole words: the saved bits are the bitmap.
    bitWords!.set(bits);
    if (r * perElement === 1 && view.outer === 1) {
      emitUnitsValues(bits, wordsPerRow, blockRows, view.cols, src, dst);
      index.set(new Uint8Array(bitWords!.buffer, 0, index.length));
      return;
    }
  }
  if (view.outer === 1 && foldShift >= 0) {
    const columns = bcsr && (index.byteOffset + columnsAt) % wc === 0
      ? unitsOf(index.subarray(columnsAt, columnsAt + plan.stored * wc), wc) : null;
    emitFoldedContiguous(plan, src, dst, perElement, columns, bcsr ? index : null, columnsAt, wc, bitWords);
    if (!bcsr) index.set(new Uint8Array(bitWords!.buffer, 0, index.length));
    return;
  }
  const out: BlockSink = {
    src, dst, index, columnsAt, wc, bitWords,
    offsets: view.outer === 1 ? null : columnOffsets(view), inner: view.inner, cols: view.cols,
    r, c, perElement, blockCols,
  };
  let p = 0;
  for (let br = 0; br < blockRows; br++) {
    const at = br * wordsPerRow;
    if (foldShift >= 0) {
      for (let j = 0; j < wordsPerRow; j++) {
        let f = bits[at + j];
        while (f !== 0) {
          const low = f & -f;
          p = storeBlock(out, br, ((j << 5) + 31 - Math.clz32(low)) >>> foldShift, p);
          f ^= low;
        }
      }
    } else {
      const any = bits.subarray(at, at + wordsPerRow);
      for (let bc = 0, start = 0; bc < blockCols; bc++, start += c) {
        if (rangeHasBits(any, start, c)) p = storeBlock(out, br, bc, p);
      }
    }
  }
  if (!bcsr) index.set(new Uint8Array(bitWords!.buffer, 0, index.length));
}

/**
 * Blocks of width 2^k <= 32 over contiguous rows: one bit scan per stored block, its lines copied
 * in place. Column indices go to `columns` when aligned, else byte by byte to `index`; bitmap bits
 * to `bitWords`.
 */
function emitFoldedContiguous(plan: BlockPlan, src: Units, dst: Units, perElement: number, columns: Units | null,
  index: Uint8Array | null, columnsAt: number, wc: number, bitWords: Int32Array | null): void {
  const { blockRows, blockCols, wordsPerRow, bits, foldShift, r, c } = plan;
  const lineUnits = c * perElement;
  const rowUnits = blockCols * lineUnits;
  let p = 0;
  let to = 0;
  for (let br = 0, at = 0; br < blockRows; br++) {
    const rowStart = br * r * rowUnits;
    for (let j = 0; j < wordsPerRow; j++, at++) {
      let f = bits[at];
      while (f !== 0) {
        const low = f & -f;
        const bc = ((j << 5) + 31 - Math.clz32(low)) >>> foldShift;
        for (let rr = 0, from = rowStart + bc * lineUnits; rr < r; rr++, from += rowUnits) {
          for (let u = 0; u < lineUnits; u++) dst[to++] = src[from + u];
        }
        if (columns !== null) columns[p] = bc;
        else if (index !== null) writeUnsigned(index, columnsAt + p * wc, wc, bc);
        else {
          const k = br * blockCols + bc;
          bitWords![k >>> 5] |= 1 << (k & 31);
        }
        p++;
        f ^= low;
      }
    }
  }
}

/** CSR values and column indices of 1-unit elements, contiguous rows: one bit scan per element. */
function emitUnitsCsr(bits: Int32Array, wordsPerRow: number, rows: number, cols: number, src: Units, dst: Units, columns: Units): void {
  let p = 0;
  for (let row = 0, at = 0, base = 0; row < rows; row++, base += cols) {
    for (let j = 0, col0 = 0; j < wordsPerRow; j++, at++, col0 += 32) {
      let f = bits[at];
      while (f !== 0) {
        const low = f & -f;
        const col = col0 + 31 - Math.clz32(low);
        dst[p] = src[base + col];
        columns[p++] = col;
        f ^= low;
      }
    }
  }
}

/** Values of 1-unit elements at the set bits, contiguous rows (the bitmap's values stream). */
function emitUnitsValues(bits: Int32Array, wordsPerRow: number, rows: number, cols: number, src: Units, dst: Units): void {
  let p = 0;
  for (let row = 0, at = 0, base = 0; row < rows; row++, base += cols) {
    for (let j = 0, from = base; j < wordsPerRow; j++, at++, from += 32) {
      let f = bits[at];
      while (f !== 0) {
        const low = f & -f;
        dst[p++] = src[from + 31 - Math.clz32(low)];
        f ^= low;
      }
    }
  }
}

/** Copies block (br, bc) to stored block p, records its column or bit; returns p + 1. */
function storeBlock(out: BlockSink, br: number, bc: number, p: number): number {
  const { src, dst, r, c, perElement } = out;
  const lineUnits = c * perElement;
  let to = p * r * lineUnits;
  if (out.offsets === null) {
    const rowUnits = out.cols * perElement;
    for (let rr = 0, from = br * r * rowUnits + bc * lineUnits; rr < r; rr++, from += rowUnits) {
      for (let u = 0; u < lineUnits; u++) dst[to++] = src[from + u];
    }
  } else {
    for (let rr = 0; rr < r; rr++) {
      const rowFlat = (br * r + rr) * out.inner;
      for (let cc = 0; cc < c; cc++) {
        const from = (out.offsets[bc * c + cc] + rowFlat) * perElement;
        for (let u = 0; u < perElement; u++) dst[to++] = src[from + u];
      }
    }
  }
  if (out.bitWords === null) {
    writeUnsigned(out.index, out.columnsAt + p * out.wc, out.wc, bc);
  } else {
    const k = br * out.blockCols + bc;
    out.bitWords[k >>> 5] |= 1 << (k & 31);
  }
  return p + 1;
}

/** Byte shuffle: byte j of element i goes to j * n + i (n = elements). */
export function shuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  for (let j = 0; j < width; j++) {
    const base = j * n;
    for (let i = 0, s = j; i < n; i++, s += width) out[base + i] = bytes[s];
  }
  return out;
}

export function unshuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  for (let j = 0; j < width; j++) {
    const base = j * n;
    for (let i = 0, d = j; i < n; i++, d += width) out[d] = bytes[base + i];
  }
  return out;
}

/** Encodes one weight as a PPSP blob (layout at the top of this file). */
export function encodeSparse(weight: DenseWeight, options: SparseEncodeOptions): Uint8Array {
  const codec = options.codec;
  if (codec !== 'bcsr' && codec !== 'bitmap') throw invalid('unknown sparse codec', "'bcsr' or 'bitmap'", String(codec));
  const dtypeCode = DTYPE_CODES[weight.dtype];
  if (dtypeCode === undefined) sparseElementBytes(weight.dtype); // throws UNSUPPORTED with details
  const level = options.level ?? 6;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw invalid('deflate level out of range', '0..9', String(level));
  const [r, c] = blockShapeOf(options.blockShape);
  const scanner = new ZeroScanner(weight, options.rowAxis ?? 0, options.zeroRule ?? 'numeric');
  const view = scanner.view;
  const shape = weight.shape;
  if (shape.length > MAX_RANK) throw invalid('rank too large for the sparse blob', `<= ${MAX_RANK}`, String(shape.length));
  for (const d of shape) if (d > 0xffffffff) throw invalid('dimension too large for the sparse blob', '< 2^32', String(d));
  checkDivides(view, r, c);
  const blockRows = view.rows / r;
  const blockCols = view.cols / c;
  if (blockRows * blockCols > 0xffffffff) {
    throw invalid('too many blocks for 32-bit indices', '< 2^32 blocks', String(blockRows * blockCols));
  }

  const plan = planBlocks(scanner, r, c);
  const stored = plan.stored;
  const bcsr = codec === 'bcsr';
  const wp = bcsr ? indexWidthFor(stored) : 0;
  const wc = bcsr ? indexWidthFor(blockCols - 1) : 0;
  const indexRaw = bcsr ? (blockRows + 1) * wp + stored * wc : Math.ceil((blockRows * blockCols) / 8);
  const valuesRaw = stored * r * c * scanner.width;
  const fill = scanner.fill;
  const fillBytes = fill ? 8 + fill.bytes.length : 0;
  const dimsAt = SPARSE_HEADER_BYTES;
  const fillAt = dimsAt + 4 * shape.length;
  // Values first: their offset is then a multiple of the element unit, so decoders can read them
  // in place when the blob itself is aligned.
  const valuesAt = fillAt + fillBytes;

  let flagBits = fill ? FLAG_FILL_TABLE : 0;
  let out: Uint8Array;
  let valuesStored = valuesRaw;
  let indexStored = indexRaw;
  if (!options.deflateIndex && !options.deflateValues && !options.shuffleValues) {
    out = new Uint8Array(valuesAt + valuesRaw + indexRaw + CRC_BYTES);
    emitBlocks(scanner, plan, codec, wp, wc, out.subarray(valuesAt, valuesAt + valuesRaw),
      out.subarray(valuesAt + valuesRaw, valuesAt + valuesRaw + indexRaw));
  } else {
    let values: Uint8Array = new Uint8Array(valuesRaw);
    let index: Uint8Array = new Uint8Array(indexRaw);
    emitBlocks(scanner, plan, codec, wp, wc, values, index);
    if (options.deflateIndex) {
      index = deflateSync(index, { level });
      flagBits |= FLAG_INDEX_DEFLATE;
    }
    if (options.shuffleValues) {
      values = shuffleBytes(values, scanner.width);
      flagBits |= FLAG_VALUES_SHUFFLE;
    }
    if (options.deflateValues) {
      values = deflateSync(values, { level });
      flagBits |= FLAG_VALUES_DEFLATE;
    }
    valuesStored = values.length;
    indexStored = index.length;
    out = new Uint8Array(valuesAt + valuesStored + indexStored + CRC_BYTES);
    out.set(values, valuesAt);
    out.set(index, valuesAt + valuesStored);
  }
  const total = out.length;
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = SPARSE_MAGIC.charCodeAt(i);
  out[4] = SPARSE_VERSION;
  out[5] = CODEC_IDS[codec];
  out[6] = dtypeCode!;
  out[7] = flagBits;
  out[8] = shape.length;
  out[9] = view.rowAxis;
  out[10] = wp;
  out[11] = wc;
  dv.setUint32(12, r, true);
  dv.setUint32(16, c, true);
  writeU64(dv, 20, stored);
  writeU64(dv, 28, indexStored);
  writeU64(dv, 36, indexRaw);
  writeU64(dv, 44, valuesStored);
  writeU64(dv, 52, valuesRaw);
  shape.forEach((d, a) => dv.setUint32(dimsAt + 4 * a, d, true));
  if (fill) {
    dv.setUint32(fillAt, fill.axis === null ? 0xffffffff : fill.axis, true);
    dv.setUint32(fillAt + 4, fill.count, true);
    out.set(fill.bytes, fillAt + 8);
  }
  dv.setUint32(total - CRC_BYTES, crc32(out.subarray(0, total - CRC_BYTES)), true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sizes

export interface SparseSizeOptions {
  codec: SparseCodec;
  blockShape?: readonly [number, number];
}

/**
 * Exact byte length of encodeSparse without the entropy stage (no deflate, shuffle irrelevant),
 * from the analysis counts alone. The analysis must use the same row axis and zero rule as the
 * encode, and (for blocks other than 1x1) list the block shape in `blockShapes`.
 */
export function sparseEncodedSize(analysis: ZeroAnalysis, options: SparseSizeOptions): number {
  const [r, c] = blockShapeOf(options.blockShape);
  const { rows, cols } = analysis.matrix;
  checkDivides(analysis.matrix, r, c);
  const blockRows = rows / r;
  const blockCols = cols / c;
  let stored: number;
  if (r === 1 && c === 1) {
    stored = analysis.nonzeros;
  } else {
    const stats = analysis.blocks.find((b) => b.rows === r && b.cols === c && b.applicable);
    if (!stats) {
      throw invalid(`the analysis has no ${r}x${c} block statistics`,
        `analyzeZeros(..., { blockShapes: [..., [${r}, ${c}]] })`, analysis.blocks.map((b) => `${b.rows}x${b.cols}`).join(', '));
    }
    stored = stats.blockCount - stats.zeroBlocks;
  }
  const w = analysis.elementBytes;
  const fill = analysis.zeroPoints ? 8 + analysis.zeroPoints.count * w : 0;
  const index = options.codec === 'bcsr'
    ? (blockRows + 1) * indexWidthFor(stored) + stored * indexWidthFor(blockCols - 1)
    : Math.ceil((blockRows * blockCols) / 8);
  return SPARSE_HEADER_BYTES + 4 * analysis.shape.length + fill + index + stored * r * c * w + CRC_BYTES;
}

/** Exact byte length with the entropy stage: encodes (and so deflates) for real. */
export function sparseEncodedSizeWithEntropy(weight: DenseWeight, options: SparseEncodeOptions): number {
  return encodeSparse(weight, options).byteLength;
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Header {
  codec: SparseCodec;
  dtype: DType;
  width: number;
  flags: number;
  shape: number[];
  rowAxis: number;
  wp: number;
  wc: number;
  r: number;
  c: number;
  stored: number;
  view: MatrixView;
  count: number;
  blockRows: number;
  blockCols: number;
  fill: { axis: number | null; count: number; at: number } | null;
  indexAt: number;
  indexStored: number;
  indexRaw: number;
  valuesAt: number;
  valuesStored: number;
  valuesRaw: number;
}

/** Decodes a PPSP blob to dense bytes; throws PrunepackError 'CORRUPT' on any inconsistency. */
export function decodeSparse(blob: Uint8Array, options: SparseDecodeOptions = {}): DecodedSparse {
  if (!(blob instanceof Uint8Array)) throw invalid('decodeSparse needs a Uint8Array', 'Uint8Array', typeof blob);
  const maxDense = options.maxDenseBytes ?? DEFAULT_MAX_DENSE_BYTES;
  const h = parseHeader(blob);
  const dense = h.count * h.width;
  if (dense > maxDense) {
    throw new PrunepackError('UNSUPPORTED', `dense tensor of ${dense} bytes exceeds the decode limit`, {
      format: FORMAT, location: 'byte 60', expected: `<= ${maxDense} bytes`, found: `${dense} bytes`,
      hint: 'pass a larger maxDenseBytes if the blob is trusted',
    });
  }
  const index = section(blob, h.indexAt, h.indexStored, h.indexRaw, (h.flags & FLAG_INDEX_DEFLATE) !== 0, 'index stream');
  let values = section(blob, h.valuesAt, h.valuesStored, h.valuesRaw, (h.flags & FLAG_VALUES_DEFLATE) !== 0, 'values stream');
  if (h.flags & FLAG_VALUES_SHUFFLE) values = unshuffleBytes(values, h.width);
  const { unitBytes, perElement } = unitLayout(h.width);
  if (values.byteOffset % unitBytes !== 0) values = values.slice();

  const out = new Uint8Array(dense);
  if (h.fill) fillDense(blob, h, out);
  const src = unitsOf(values, unitBytes);
  const dst = unitsOf(out, unitBytes);
  if (h.codec === 'bcsr') scatterBcsr(index, h, src, dst, perElement);
  else scatterBitmap(index, h, src, dst, perElement);
  return {
    dtype: h.dtype, shape: h.shape, values: out, codec: h.codec, blockShape: [h.r, h.c], rowAxis: h.rowAxis,
  };
}

function parseHeader(blob: Uint8Array): Header {
  const len = blob.byteLength;
  const minimum = SPARSE_HEADER_BYTES + CRC_BYTES;
  if (len < minimum) throw corrupt('blob is shorter than the fixed header and checksum', len, `>= ${minimum} bytes`, `${len} bytes`);
  for (let i = 0; i < 4; i++) {
    if (blob[i] !== SPARSE_MAGIC.charCodeAt(i)) {
      throw corrupt('bad magic', 0, `"${SPARSE_MAGIC}"`, JSON.stringify(String.fromCharCode(...blob.subarray(0, 4))));
    }
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const storedCrc = dv.getUint32(len - CRC_BYTES, true);
  const actualCrc = crc32(blob.subarray(0, len - CRC_BYTES));
  if (storedCrc !== actualCrc) {
    const declared = declaredLength(blob, dv);
    const note = declared !== null && declared !== len ? ` (header declares ${declared} bytes, blob has ${len}: truncated or extended)` : '';
    throw corrupt(`checksum mismatch${note}`, len - CRC_BYTES, `CRC-32 0x${hex(actualCrc)} of bytes 0..${len - CRC_BYTES}`, `0x${hex(storedCrc)}`);
  }
  if (blob[4] !== SPARSE_VERSION) {
    throw new PrunepackError('UNSUPPORTED', `sparse blob version ${blob[4]}`, {
      format: FORMAT, location: 'byte 4', expected: String(SPARSE_VERSION), found: String(blob[4]),
      hint: 'a newer prunepack wrote it',
    });
  }
  const codec = blob[5] === 1 ? 'bcsr' : blob[5] === 2 ? 'bitmap' : null;
  if (codec === null) throw corrupt('unknown codec id', 5, '1 (BCSR) or 2 (BITMAP)', String(blob[5]));
  const dtype = DTYPE_BY_CODE.get(blob[6]);
  if (dtype === undefined || !isSparseDType(dtype)) throw corrupt('unknown dtype code', 6, 'a code of DTYPE_CODES', String(blob[6]));
  const width = sparseElementBytes(dtype);
  const flags = blob[7];
  if (flags & 0xf0) throw corrupt('reserved flag bits set', 7, 'bits 4-7 clear', `0x${flags.toString(16)}`);
  const rank = blob[8];
  if (rank > MAX_RANK) throw corrupt('rank out of range', 8, `<= ${MAX_RANK}`, String(rank));
  const rowAxis = blob[9];
  if (rank < 2 ? rowAxis !== 0 : rowAxis >= rank) {
    throw corrupt('row axis out of range', 9, rank < 2 ? '0' : `< ${rank}`, String(rowAxis));
  }
  const wp = blob[10];
  const wc = blob[11];
  if (codec === 'bcsr') {
    if (wp !== 1 && wp !== 2 && wp !== 4) throw corrupt('row-pointer width', 10, '1, 2 or 4', String(wp));
    if (wc !== 1 && wc !== 2 && wc !== 4) throw corrupt('block-column index width', 11, '1, 2 or 4', String(wc));
  } else {
    if (wp !== 0) throw corrupt('row-pointer width of a bitmap blob', 10, '0', String(wp));
    if (wc !== 0) throw corrupt('column index width of a bitmap blob', 11, '0', String(wc));
  }
  const r = dv.getUint32(12, true);
  const c = dv.getUint32(16, true);
  if (r === 0) throw corrupt('block rows', 12, '>= 1', '0');
  if (c === 0) throw corrupt('block cols', 16, '>= 1', '0');
  const stored = readU64(dv, 20, 'stored block count');
  const indexStored = readU64(dv, 28, 'index stream length');
  const indexRaw = readU64(dv, 36, 'inflated index length');
  const valuesStored = readU64(dv, 44, 'values stream length');
  const valuesRaw = readU64(dv, 52, 'inflated values length');

  const dimsAt = SPARSE_HEADER_BYTES;
  const end = len - CRC_BYTES;
  if (dimsAt + 4 * rank > end) throw corrupt('dims run past the end', dimsAt, `${4 * rank} bytes of dims`, `${end - dimsAt} bytes`);
  const shape: number[] = [];
  let count = 1;
  for (let a = 0; a < rank; a++) {
    const d = dv.getUint32(dimsAt + 4 * a, true);
    shape.push(d);
    count *= d;
    if (!Number.isSafeInteger(count * width)) throw corrupt('shape is too large', dimsAt + 4 * a, 'a dense size below 2^53 bytes', `[${shape.join(', ')}, ...]`);
  }
  const view = matrixViewOf(shape, rowAxis);
  if (view.rows % r !== 0) throw corrupt('block rows do not divide the matrix rows', 12, `a divisor of ${view.rows}`, String(r));
  if (view.cols % c !== 0) throw corrupt('block cols do not divide the matrix cols', 16, `a divisor of ${view.cols}`, String(c));
  const blockRows = view.rows / r;
  const blockCols = view.cols / c;
  const blockCount = blockRows * blockCols;
  if (stored > blockCount) throw corrupt('more stored blocks than the grid has', 20, `<= ${blockCount}`, String(stored));

  let at = dimsAt + 4 * rank;
  let fill: Header['fill'] = null;
  if (flags & FLAG_FILL_TABLE) {
    if (at + 8 > end) throw corrupt('fill table header runs past the end', at, '8 bytes', `${end - at} bytes`);
    const axisField = dv.getUint32(at, true);
    const fillCount = dv.getUint32(at + 4, true);
    let axis: number | null = null;
    if (axisField === 0xffffffff) {
      if (fillCount !== 1) throw corrupt('per-tensor fill table count', at + 4, '1', String(fillCount));
    } else {
      if (axisField >= rank) throw corrupt('fill table axis out of range', at, `< ${rank} or 0xFFFFFFFF`, String(axisField));
      if (fillCount !== shape[axisField]) throw corrupt('fill table count', at + 4, `dims[${axisField}] = ${shape[axisField]}`, String(fillCount));
      axis = axisField;
    }
    const bytes = fillCount * width;
    if (at + 8 + bytes > end) throw corrupt('fill table runs past the end', at + 8, `${bytes} bytes`, `${end - at - 8} bytes`);
    fill = { axis, count: fillCount, at: at + 8 };
    at += 8 + bytes;
  }

  const valuesAt = at;
  if (valuesStored > end - valuesAt) throw corrupt('values stream runs past the end', 44, `<= ${end - valuesAt} bytes`, `${valuesStored} bytes`);
  const indexAt = valuesAt + valuesStored;
  if (indexStored !== end - indexAt) {
    throw corrupt('index stream length does not reach the checksum', 28, `${end - indexAt} bytes`, `${indexStored} bytes`);
  }

  const expectedIndex = codec === 'bcsr' ? (blockRows + 1) * wp + stored * wc : Math.ceil(blockCount / 8);
  if (indexRaw !== expectedIndex) {
    throw corrupt('inflated index length does not match the header', 36, `${expectedIndex} bytes`, `${indexRaw} bytes`);
  }
  const expectedValues = stored * r * c * width;
  if (valuesRaw !== expectedValues) {
    throw corrupt('inflated values length does not match the header', 52, `${expectedValues} bytes (${stored} blocks of ${r}x${c} x ${width} B)`, `${valuesRaw} bytes`);
  }
  checkStoredLength(flags & FLAG_INDEX_DEFLATE, indexStored, indexRaw, 28, 'index');
  checkStoredLength(flags & FLAG_VALUES_DEFLATE, valuesStored, valuesRaw, 44, 'values');

  return {
    codec, dtype, width, flags, shape, rowAxis, wp, wc, r, c, stored, view, count, blockRows, blockCols, fill,
    indexAt, indexStored, indexRaw, valuesAt, valuesStored, valuesRaw,
  };
}

function checkStoredLength(deflated: number, storedLength: number, raw: number, offset: number, what: string): void {
  if (!deflated) {
    if (storedLength !== raw) throw corrupt(`${what} stream is not deflated, so its length must equal the inflated length`, offset, `${raw} bytes`, `${storedLength} bytes`);
  } else if (raw > storedLength * MAX_DEFLATE_RATIO + 64) {
    throw corrupt(`${what} stream cannot inflate that far`, offset, `>= ${Math.ceil((raw - 64) / MAX_DEFLATE_RATIO)} deflated bytes for ${raw} inflated`, `${storedLength} bytes`);
  }
}

/** Best-effort total length the header declares (for error messages only). */
function declaredLength(blob: Uint8Array, dv: DataView): number | null {
  try {
    const rank = blob[8];
    let at = SPARSE_HEADER_BYTES + 4 * rank;
    if (blob[7] & FLAG_FILL_TABLE) {
      const dtype = DTYPE_BY_CODE.get(blob[6]);
      if (dtype === undefined) return null;
      at += 8 + dv.getUint32(at + 4, true) * sparseElementBytes(dtype);
    }
    return at + readU64(dv, 28, '') + readU64(dv, 44, '') + CRC_BYTES;
  } catch {
    return null;
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** The raw bytes of one stream: a view of the blob, or its inflation checked to the exact length. */
function section(blob: Uint8Array, at: number, storedLength: number, raw: number, deflated: boolean, what: string): Uint8Array {
  const bytes = blob.subarray(at, at + storedLength);
  if (!deflated) return bytes;
  // One spare byte: fflate silently stops writing at the end of a caller buffer, so a stream that
  // inflates to more than `raw` shows up as raw + 1 bytes.
  const out = new Uint8Array(raw + 1);
  let inflated: Uint8Array;
  try {
    inflated = inflateSync(bytes, { out });
  } catch (e) {
    throw corrupt(`${what} is not valid DEFLATE data (${(e as Error).message})`, at, 'a raw DEFLATE stream', `${storedLength} undecodable bytes`, e);
  }
  if (inflated.length !== raw) {
    throw corrupt(`${what} inflates to the wrong length`, at, `${raw} bytes`, inflated.length > raw ? `more than ${raw} bytes` : `${inflated.length} bytes`);
  }
  return out.subarray(0, raw);
}

function fillDense(blob: Uint8Array, h: Header, out: Uint8Array): void {
  const fill = h.fill!;
  const w = h.width;
  let inner = 1;
  if (fill.axis !== null) for (let a = fill.axis + 1; a < h.shape.length; a++) inner *= h.shape[a];
  const period = fill.count * inner;
  if (period === 0) return;
  // One period (channel after channel, `inner` elements each), then the period repeated by doubling.
  for (let ch = 0; ch < fill.count; ch++) {
    const value = blob.subarray(fill.at + ch * w, fill.at + (ch + 1) * w);
    repeatPattern(out, ch * inner * w, (ch + 1) * inner * w, value);
  }
  const periodBytes = period * w;
  for (let filled = periodBytes; filled < out.length;) {
    const n = Math.min(filled, out.length - filled);
    out.copyWithin(filled, 0, n);
    filled += n;
  }
}

/** Writes `pattern` over out[start..end) (a whole number of patterns) by doubling. */
function repeatPattern(out: Uint8Array, start: number, end: number, pattern: Uint8Array): void {
  if (start >= end) return;
  out.set(pattern, start);
  for (let filled = pattern.length; start + filled < end;) {
    const n = Math.min(filled, end - start - filled);
    out.copyWithin(start + filled, start, start + n);
    filled += n;
  }
}

function readIndex(bytes: Uint8Array, at: number, entries: number, width: number): Units {
  const region = bytes.subarray(at, at + entries * width);
  return unitsOf(region.byteOffset % width === 0 ? region : region.slice(), width);
}

function scatterBcsr(index: Uint8Array, h: Header, src: Units, dst: Units, perElement: number): void {
  const { blockRows, blockCols, stored, wp, wc, r, c, view } = h;
  const pointerBytes = (blockRows + 1) * wp;
  const pointers = readIndex(index, 0, blockRows + 1, wp);
  const columns = readIndex(index, pointerBytes, stored, wc);
  const where = (entry: number, width: number, base: number) => `index stream byte ${base + entry * width}${h.flags & FLAG_INDEX_DEFLATE ? ' (inflated)' : ''}`;
  if (pointers[0] !== 0) throw corrupt('first row pointer', where(0, wp, 0), '0', String(pointers[0]));
  if (pointers[blockRows] !== stored) throw corrupt('last row pointer', where(blockRows, wp, 0), `${stored} (stored blocks)`, String(pointers[blockRows]));
  const offsets = view.outer === 1 ? null : columnOffsets(view);
  const lineUnits = c * perElement;
  const rowUnits = view.cols * perElement;
  const blockUnits = r * lineUnits;
  for (let br = 0; br < blockRows; br++) {
    const start = pointers[br];
    const end = pointers[br + 1];
    if (end < start || end > stored) throw corrupt('row pointers must be non-decreasing and <= stored blocks', where(br + 1, wp, 0), `${start}..${stored}`, String(end));
    if (offsets === null && blockUnits === 1) {
      // CSR of 1-unit elements: the common case gets a loop of its own.
      const bad = scatterRow(src, dst, columns, start, end, br * rowUnits, blockCols);
      if (bad >= 0) {
        throw corrupt('block-column indices must increase within a row and stay below the block columns',
          where(bad, wc, pointerBytes), `${bad > start ? columns[bad - 1] + 1 : 0}..${blockCols - 1}`, String(columns[bad]));
      }
      continue;
    }
    if (offsets === null) {
      const bad = scatterRowBlocks(src, dst, columns, start, end, br * r * rowUnits, blockCols, r, lineUnits, rowUnits);
      if (bad >= 0) {
        throw corrupt('block-column indices must increase within a row and stay below the block columns',
          where(bad, wc, pointerBytes), `${bad > start ? columns[bad - 1] + 1 : 0}..${blockCols - 1}`, String(columns[bad]));
      }
      continue;
    }
    let previous = -1;
    for (let k = start; k < end; k++) {
      const bc = columns[k];
      if (bc <= previous || bc >= blockCols) {
        throw corrupt('block-column indices must increase within a row and stay below the block columns',
          where(k, wc, pointerBytes), `${previous + 1}..${blockCols - 1}`, String(bc));
      }
      previous = bc;
      if (offsets === null) {
        copyBlockContiguous(src, dst, k * blockUnits, br * r * rowUnits + bc * lineUnits, r, lineUnits, rowUnits);
      } else {
        copyBlockStrided(src, dst, k * blockUnits, offsets, view.inner, br * r, bc * c, r, c, perElement);
      }
    }
  }
}

/** dst[rowStart + columns[k]] = src[k] for k in start..end; returns the first bad entry, or -1. */
function scatterRow(src: Units, dst: Units, columns: Units, start: number, end: number, rowStart: number, limit: number): number {
  let previous = -1;
  for (let k = start; k < end; k++) {
    const col = columns[k];
    if (col <= previous || col >= limit) return k;
    previous = col;
    dst[rowStart + col] = src[k];
  }
  return -1;
}

/** scatterRow for blocks of r lines of lineUnits units, the copy inlined; returns the first bad entry, or -1. */
function scatterRowBlocks(src: Units, dst: Units, columns: Units, start: number, end: number, rowStart: number, limit: number,
  r: number, lineUnits: number, rowUnits: number): number {
  let previous = -1;
  let from = start * r * lineUnits;
  for (let k = start; k < end; k++) {
    const col = columns[k];
    if (col <= previous || col >= limit) return k;
    previous = col;
    for (let rr = 0, to = rowStart + col * lineUnits; rr < r; rr++, to += rowUnits) {
      for (let u = 0; u < lineUnits; u++) dst[to + u] = src[from++];
    }
  }
  return -1;
}

function scatterBitmap(bits: Uint8Array, h: Header, src: Units, dst: Units, perElement: number): void {
  const { blockRows, blockCols, stored, r, c, view } = h;
  const blockCount = blockRows * blockCols;
  let set = 0;
  for (let b = 0; b < bits.length; b++) set += BYTE_POPCOUNT[bits[b]];
  if (set !== stored) throw corrupt('bitmap bit count does not match the stored blocks', 20, String(stored), `${set} bits set`);
  if (blockCount & 7 && bits[bits.length - 1] >>> (blockCount & 7)) {
    throw corrupt('bitmap padding bits are set', `index stream byte ${bits.length - 1}`, '0', `0x${bits[bits.length - 1].toString(16)}`);
  }
  const lineUnits = c * perElement;
  const rowUnits = view.cols * perElement;
  const blockUnits = r * lineUnits;
  if (view.outer === 1 && r === 1 && c === 1) {
    if (perElement === 1) expandElements(bits, src, dst, blockCount);
    else expandPairs(bits, src as Uint32Array, dst as Uint32Array, blockCount);
    return;
  }
  const offsets = view.outer === 1 ? null : columnOffsets(view);
  for (let k = 0, p = 0; k < blockCount; k++) {
    if (((bits[k >>> 3] >>> (k & 7)) & 1) === 0) continue;
    const br = Math.floor(k / blockCols);
    const bc = k - br * blockCols;
    if (offsets === null) copyBlockContiguous(src, dst, p, br * r * rowUnits + bc * lineUnits, r, lineUnits, rowUnits);
    else copyBlockStrided(src, dst, p, offsets, view.inner, br * r, bc * c, r, c, perElement);
    p += blockUnits;
  }
}

const BYTE_POPCOUNT = (() => {
  const t = new Uint8Array(256);
  for (let b = 1; b < 256; b++) t[b] = (b & 1) + t[b >>> 1];
  return t;
})();

/** dst[k] = next value for every set bit k (the output is already filled); 32 bits at a time. */
function expandElements(bits: Uint8Array, src: Units, dst: Units, count: number): void {
  let p = 0;
  const fullWords = count >>> 5;
  for (let w = 0, base = 0; w < fullWords; w++, base += 32) {
    const i = 4 * w;
    let word = bits[i] | (bits[i + 1] << 8) | (bits[i + 2] << 16) | (bits[i + 3] << 24);
    while (word !== 0) {
      const low = word & -word;
      dst[base + 31 - Math.clz32(low)] = src[p++];
      word ^= low;
    }
  }
  for (let k = fullWords * 32; k < count; k++) {
    if ((bits[k >>> 3] >>> (k & 7)) & 1) dst[k] = src[p++];
  }
}

function expandPairs(bits: Uint8Array, src: Uint32Array, dst: Uint32Array, count: number): void {
  let p = 0;
  const fullWords = count >>> 5;
  for (let w = 0, base = 0; w < fullWords; w++, base += 32) {
    const i = 4 * w;
    let word = bits[i] | (bits[i + 1] << 8) | (bits[i + 2] << 16) | (bits[i + 3] << 24);
    while (word !== 0) {
      const low = word & -word;
      const k = base + 31 - Math.clz32(low);
      dst[2 * k] = src[p++];
      dst[2 * k + 1] = src[p++];
      word ^= low;
    }
  }
  for (let k = fullWords * 32; k < count; k++) {
    if ((bits[k >>> 3] >>> (k & 7)) & 1) {
      dst[2 * k] = src[p++];
      dst[2 * k + 1] = src[p++];
    }
  }
}

function copyBlockContiguous(src: Units, dst: Units, from: number, to: number, r: number, lineUnits: number, rowUnits: number): void {
  for (let rr = 0; rr < r; rr++, to += rowUnits) {
    for (let u = 0; u < lineUnits; u++) dst[to + u] = src[from++];
  }
}

function copyBlockStrided(src: Units, dst: Units, from: number, offsets: Float64Array, inner: number,
  row0: number, col0: number, r: number, c: number, perElement: number): void {
  for (let rr = 0; rr < r; rr++) {
    const rowFlat = (row0 + rr) * inner;
    for (let cc = 0; cc < c; cc++) {
      const to = (offsets[col0 + cc] + rowFlat) * perElement;
      for (let u = 0; u < perElement; u++) dst[to + u] = src[from++];
    }
  }
}
